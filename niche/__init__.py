"""niche: agent-based 3D simulation of the bone-marrow niche in postmenopausal osteoporosis.

Public API::

    sc = niche.load_scenario("scenarios/default.toml", overrides={"run.days": 2})
    model = niche.NicheModel(sc)            # a mesa.Model
    path = niche.run(sc, out="runs/x.h5")    # run with a run-file writer
    run = niche.open_run(path)               # lazy reader
"""
__version__ = "0.1.0"

from .config import ConfigError, Scenario, load_scenario  # noqa: E402
from .io import RunFileError, open_run  # noqa: E402
from .model import NicheModel  # noqa: E402
from .runner import run  # noqa: E402

__all__ = ["__version__", "ConfigError", "Scenario", "load_scenario", "NicheModel", "run",
           "open_run", "RunFileError"]
