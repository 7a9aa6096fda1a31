"""``niche experiment run|status|report``: the experiment layer on the command line.

Errors in the input (experiment file, folder, scheduler address) print one line,
``niche: error: ...``, and exit with status 2 (the caller, :mod:`niche.cli`, catches
:class:`~niche.scenario.ConfigError`, KeyError and ValueError).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_subcommands"]


def _run(a) -> int:
    from .folder import run_experiment
    from .spec import load_experiment

    out = Path(a.out) if a.out else Path("experiments") / load_experiment(a.experiment).name
    if a.workers is not None and a.workers < 0:
        raise ValueError(f"--workers {a.workers}: use 0 (serial) or a positive count")
    try:
        st = run_experiment(a.experiment, out, workers=a.workers, scheduler=a.scheduler,
                            progress=None if not a.quiet else False,
                            allow_large=a.allow_large)
    except OSError as e:  # no scheduler at that address, unwritable folder
        raise ValueError(f"{type(e).__name__}: {e}".splitlines()[0]) from None
    print(f"experiment folder {out}: {st.executed} runs run now")
    print(st.summary())
    return 1 if st.failed else 0


def _status(a) -> int:
    from .folder import status

    st = status(a.folder)
    print(st.summary())
    return 0


def _report(a) -> int:
    from .report import write_report

    readouts = a.readouts.split(",") if a.readouts else None
    controls = a.control.split(",") if a.control else None
    print(f"wrote {write_report(a.folder, readouts=readouts, control=controls)}")
    return 0


def _one_line(fn):
    def run(a) -> int:
        try:
            return fn(a)
        except ValueError as e:  # ConfigError (a ValueError) included
            print(f"niche: error: {e.args[0] if e.args else e}", file=sys.stderr)
            return 2
    return run


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Add ``niche experiment`` with its ``run``, ``status`` and ``report`` commands."""
    e = sub.add_parser("experiment", help="scripted experiments: arms x seeds x sweeps")
    es = e.add_subparsers(dest="experiment_cmd", required=True)
    r = es.add_parser("run", help="run (or resume) an experiment into a folder")
    r.add_argument("experiment", help="experiment TOML file")
    r.add_argument("--out", "-o", help="experiment folder (default experiments/<name>)")
    r.add_argument("--workers", type=int, default=None,
                   help="LocalCluster worker processes (default: CPU count; 0 = serial here)")
    r.add_argument("--scheduler", help="address of a running dask scheduler, tcp://host:8786")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    r.add_argument("--allow-large", action="store_true",
                   help="run although a run exceeds this machine's memory, time or disk "
                        "estimate (for a cluster's bigger workers)")
    r.set_defaults(func=_one_line(_run))
    s = es.add_parser("status", help="finished, failed and pending runs of a folder")
    s.add_argument("folder")
    s.set_defaults(func=_one_line(_status))
    p = es.add_parser("report", help="Markdown + PNG report of a folder")
    p.add_argument("folder")
    p.add_argument("--readouts", help="comma-separated readouts (default: the first six)")
    p.add_argument("--control", help="comma-separated arms effects are taken against, one "
                                     "table each (default: the first arm)")
    p.set_defaults(func=_one_line(_report))
