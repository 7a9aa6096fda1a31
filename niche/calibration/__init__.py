"""Calibration of scenario parameters against the validation rows (``niche calibrate``).

    config   CalibrationConfig: rows and their target intervals, fitted parameters with
             priors and sources, seeds (a reserved block), ABC-SMC budget
    core     calibrate(): pyABC ABC-SMC on the experiment layer, resumable; posterior,
             adopted point, pair plot, posterior predictive, report
    cli      niche calibrate CONFIG --out DIR [--workers N] [--scheduler ADDR] [--resume]
"""
from __future__ import annotations

from .config import CALIBRATION_SEED_BASE, CalibrationConfig, load_calibration

__all__ = ["CALIBRATION_SEED_BASE", "CalibrationConfig", "calibrate", "load_calibration"]


def calibrate(*args, **kwargs):
    """:func:`niche.calibration.core.calibrate` (imported on first use: pyABC is heavy)."""
    from .core import calibrate as run

    return run(*args, **kwargs)
