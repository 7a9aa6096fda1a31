"""Shared fixtures: tiny scenarios that run in a second or two."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def tiny_overrides(days: float = 0.25) -> dict:
    """Shrink any scenario to a 16^3 domain and a few hours."""
    return {
        "domain.shape_voxels": [16, 16, 16],
        "run.days": days,
        "run.frame_interval_days": days / 2,
        "vessels.count": 2,
    }


@pytest.fixture
def tiny():
    return tiny_overrides


@pytest.fixture
def cli(tmp_path):
    """Run the CLI in a subprocess; returns CompletedProcess."""
    import subprocess

    def _run(*args, env=None):
        import os

        e = dict(os.environ)
        e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
        if env:
            e.update(env)
        return subprocess.run([sys.executable, "-m", "niche.cli", *map(str, args)],
                              capture_output=True, text=True, cwd=tmp_path, env=e, timeout=600)

    return _run


@pytest.fixture(scope="session")
def run_path(tmp_path_factory):
    """A small real run file for the viewer tests: 24^3, three frames, every cell type."""
    import niche

    out = tmp_path_factory.mktemp("viz") / "small.h5"
    niche.run("default", out, overrides={
        **tiny_overrides(1.0), "domain.shape_voxels": [24, 24, 24],
        "cells.ilc2.initial_per_mm3": 20000.0, "cells.osteoclast.initial_per_mm3": 20000.0})
    return out
