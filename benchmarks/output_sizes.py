"""Disk used by one run file at each output level (``output.level``).

    python benchmarks/output_sizes.py [--scenario reference] [--days 56] [--levels full,frames,summary]

Runs the scenario once per level (the reference scenario: ovx_il2 on 100^3 voxels, daily
frames) and prints one JSON record per level: file size (MB), wall seconds and the stored
frames. The levels never change the simulation (same readouts), only what is stored.
Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import niche


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="reference")
    p.add_argument("--days", type=float, default=None)
    p.add_argument("--levels", default="full,frames,summary")
    p.add_argument("--out", default=None, help="folder for the files (default: temporary)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(a.out or d)
        folder.mkdir(parents=True, exist_ok=True)
        for level in a.levels.split(","):
            out = folder / f"{a.scenario}_{level}.h5"
            t0 = time.perf_counter()
            res = niche.run(a.scenario, out, days=a.days, overwrite=True,
                            overrides={"output.level": level, "output.xdmf": False})
            wall = time.perf_counter() - t0
            with niche.open_run(out) as rf:
                stored = {k: len(rf.stored_frames(k)) for k in ("fields", "bone", "agents")}
            print(json.dumps({"scenario": a.scenario, "level": level,
                              "days": res.model.t_days, "frames": res.frames,
                              "stored_frames": stored,
                              "size_mb": round(out.stat().st_size / 1e6, 1),
                              "wall_s": round(wall, 1)}), flush=True)
            out.unlink()


if __name__ == "__main__":
    main()
