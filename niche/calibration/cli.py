"""``niche calibrate CONFIG``: the command line of :func:`niche.calibration.core.calibrate`.

Bad input (the file, a key, an output folder that already holds a calibration) raises
ValueError or ConfigError with one line; :mod:`niche.cli` prints it and exits with 2.
"""
from __future__ import annotations

import argparse

__all__ = ["add_arguments", "main"]


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("config", help="calibration file (TOML; see docs/calibration.md)")
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help="output folder (default calibrations/<name>)")
    p.add_argument("--workers", "-w", type=int, default=1, metavar="N",
                   help="particles in parallel on a local dask cluster of N single-threaded "
                        "processes (default 1: one after another here)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="run the particles on a running dask scheduler, tcp://host:8786")
    p.add_argument("--resume", action="store_true",
                   help="continue the calibration in --out (up to its generations in all)")
    return p


def main(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import load_calibration
    from .core import calibrate

    if a.workers < 1:
        raise ValueError(f"--workers {a.workers}: must be >= 1")
    cfg = load_calibration(a.config)
    out = Path(a.out) if a.out else Path("calibrations") / cfg.name
    s = calibrate(cfg, out, workers=a.workers, scheduler=a.scheduler, resume=a.resume)
    for k, v in s["parameters"].items():
        print(f"{k}: median {v['median']:.4g}, 95 % [{v['ci95'][0]:.4g}, {v['ci95'][1]:.4g}]"
              f" (prior [{v['prior'][0]:g}, {v['prior'][1]:g}])")
    for r, v in s["predictive"].items():
        print(f"{r}: predictive median {v['median']:.4g}, {100 * v['inside']:.0f} % of draws "
              f"in [{v['target'][0]:g}, {v['target'][1]:g}]")
    return 0
