"""Experiments: arms x seeds x sweeps of simulation runs, and the statistics that compare them.

The layer between the runner (one scenario, one run) and what experiments are for (e.g.
:mod:`niche.validation`). Nothing here imports :mod:`niche.validation`.

Modules::

    spec         Experiment descriptions (TOML or Python): arms, seeds, sweeps, sensitivity
    folder       run_experiment (LocalCluster, a scheduler, or serial), resume, load, status
    execution    dask plumbing: LocalCluster of single-threaded workers, (arm, seed) tasks
    stats        per-seed histories -> paired effects with t intervals (validation rows)
    compare      the tidy table -> paired effects, t and BCa CIs, Holm/BH, power
    sensitivity  SALib designs and Morris/Sobol indices
    gsa          the sensitivity of an experiment folder
    report       niche experiment report: Markdown and PNG
    cli          niche experiment run|status|report
"""
from __future__ import annotations

from .execution import Arm, TaskOutcome, local_client, parse_shape, run_task, run_tasks, \
    task_overrides
from .folder import ExperimentStatus, histories, load, run_experiment, status
from .spec import Experiment, load_experiment
from .stats import MeanCI, MissingReadout, mean_ci

__all__ = [
    "Experiment", "load_experiment", "run_experiment", "load", "status", "histories",
    "ExperimentStatus", "Arm", "TaskOutcome", "local_client", "parse_shape", "run_task",
    "run_tasks", "task_overrides", "MeanCI", "MissingReadout", "mean_ci",
]
