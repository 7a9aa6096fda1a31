"""Benchmark suite (pytest-benchmark). Run it through ``niche bench`` (``--quick`` for a
smoke run), which also writes the JSON record, the Markdown table and the scaling plot.

Every benchmark stores in ``benchmark.extra_info``:
    group     what it measures, e.g. "field" or "move"; rows of one group share a baseline
    work      units of work per call (substrate-voxel updates, agent-steps, bytes, frames)
    unit      name of that unit
    size      the problem size (voxels or agents), for the scaling fits
    bytes_per_unit   memory traffic per unit for roofline-bound kernels (optional)
``NICHE_BENCH_QUICK=1`` shrinks every size so the whole suite takes seconds.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

QUICK = os.environ.get("NICHE_BENCH_QUICK", "") not in ("", "0")


def sizes(full, quick):
    return quick if QUICK else full


def record(benchmark, group, work, unit, size=None, **extra):
    benchmark.extra_info.update(group=group, work=float(work), unit=unit,
                                size=None if size is None else float(size), **extra)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
