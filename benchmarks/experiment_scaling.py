"""Ensemble throughput of the experiment layer: the same 8 runs on 1 and on 2 workers.

    python benchmarks/experiment_scaling.py [--shape 32] [--days 7] [--runs 8]

Each configuration runs the same experiment (one arm, ``--runs`` seeds) into a fresh
folder on a LocalCluster of single-threaded workers, timed from submission to the last
file written (cluster start-up included). Prints one JSON record: wall seconds per worker
count and the speed-up (the target for 2 workers is >= 1.8x). Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from niche.experiments.folder import run_experiment
from niche.experiments.spec import Experiment


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, default=32)
    p.add_argument("--days", type=float, default=7.0)
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--scenario", default="ovx")
    a = p.parse_args()
    exp = Experiment.model_validate({
        "name": "scaling", "seeds": list(range(1, a.runs + 1)), "days": a.days,
        "set": {"domain.shape_voxels": [a.shape] * 3}, "arms": {"x": {"scenario": a.scenario}},
        "output": {"readouts": ["bv_tv"]}})
    rec = {"runs": a.runs, "shape": a.shape, "days": a.days, "scenario": a.scenario,
           "cpus": os.cpu_count(), "wall_s": {}}
    with tempfile.TemporaryDirectory() as d:
        run_experiment(exp.model_copy(update={"seeds": [999]}), Path(d) / "warm", workers=0,
                       progress=False)  # numba's cache is filled before anything is timed
        for n in (1, 2):
            t0 = time.perf_counter()
            st = run_experiment(exp, Path(d) / f"w{n}", workers=n, progress=False)
            rec["wall_s"][n] = round(time.perf_counter() - t0, 2)
            assert len(st.done) == a.runs, st.summary()
    rec["speedup_2_vs_1"] = round(rec["wall_s"][1] / rec["wall_s"][2], 3)
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
