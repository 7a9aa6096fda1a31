"""Validation: run the experiments behind the targets V1-V13 and check the model against
the published effects (``niche validate``).

The biology lives in data: :data:`~niche.validation.rows.ARMS` are the experiment arms
(:class:`~niche.experiments.Arm`: a scenario, a length and overrides) and
:data:`~niche.validation.rows.ROWS` the targets, one :class:`~niche.validation.rows.Row`
each (what it compares, the published range, the criterion and a short check function
over the arms' histories). Every (arm, seed) pair is one task run on a local
``dask.distributed`` cluster (:mod:`niche.experiments.execution`); effects are paired by
seed, e.g. the OVX effect of seed 3 is ``bv_tv(ovx, seed 3) / bv_tv(sham, seed 3) - 1``,
and each row reports the mean effect over seeds with a 95 % t-interval
(:mod:`niche.experiments.stats`).

Modules: :mod:`~niche.validation.rows` (the table), :mod:`~niche.validation.run`
(:func:`run_validation`, :func:`evaluate`, :func:`evaluate_saved`),
:mod:`~niche.validation.report` (:class:`Report`, ``report.md``, plots, CSV) and
:mod:`~niche.validation.cli` (the ``niche validate`` options and entry point).
"""
from __future__ import annotations

from .report import Report, seed_text, write_report
from .rows import ARMS, ROWS, Row, RowResult, parse_rows
from .run import QUICK_ROWS, evaluate, evaluate_saved, run_validation

__all__ = [
    "ARMS", "ROWS", "Row", "RowResult", "parse_rows", "Report", "write_report", "seed_text",
    "QUICK_ROWS", "evaluate", "evaluate_saved", "run_validation",
]
