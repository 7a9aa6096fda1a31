"""niche: agent-based 3D simulation of the bone-marrow niche in postmenopausal osteoporosis.

Public API::

    sc = niche.load_scenario("default", overrides={"run.days": 2})
    model = niche.NicheModel(sc)             # a mesa.Model with the scenario's rule set
    model.run()                              # or model.step() yourself
    res = niche.run(sc, out="runs/x.h5", checkpoint_every=1)  # a RunResult: model, readouts,
                                             # history, path; the file keeps a checkpoint
    niche.resume(res.path, days=4)           # so it can be continued to day 4
    rf = niche.open_run(res.path)            # a RunFile: lazy reader of the run file

Layers (each imports only those before it): ``kernels`` -> ``scenario`` -> ``core`` ->
``biology``, ``io`` -> ``runner`` -> ``experiments`` -> ``validation`` -> ``viz``,
``tools`` -> ``cli``. This module is the facade over them.
"""
from .core import Observer
from .io import RunFile, RunFileError, open_run
from .provenance import __version__
from .runner import NicheModel, RunResult, RunStopped, resume, run, rules_for
from .scenario import ConfigError, Scenario, load_scenario

__all__ = ["__version__", "ConfigError", "Scenario", "load_scenario", "NicheModel", "run",
           "resume", "RunStopped", "RunResult", "rules_for", "open_run", "RunFile", "RunFileError", "Observer"]
