"""Experiments: arms x seeds of simulation runs and the statistics that compare them.

The layer between the runner (one scenario, one run) and what experiments are for (e.g.
:mod:`niche.validation`). :mod:`niche.experiments.execution` runs (arm, seed) tasks on
``dask.distributed`` and returns their histories; :mod:`niche.experiments.stats` turns
per-seed histories into paired effects with confidence intervals. Nothing here imports
:mod:`niche.validation`.
"""
from __future__ import annotations

from .execution import Arm, TaskOutcome, local_client, parse_shape, run_task, run_tasks, \
    task_overrides
from .stats import MeanCI, MissingReadout, mean_ci

__all__ = [
    "Arm", "TaskOutcome", "local_client", "parse_shape", "run_task", "run_tasks",
    "task_overrides", "MeanCI", "MissingReadout", "mean_ci",
]
