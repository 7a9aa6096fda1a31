"""What crash safety and checkpoints cost on the reference run, against an older writer.

    python benchmarks/reliability_cost.py --against REV [--scenario reference] [--days 4]
                                          [--checkpoint-every 1]

Runs, one after the other on the same machine, with the same ``NUMBA_NUM_THREADS``:

1. ``old``: the scenario with the niche of git revision ``REV`` (checked out into a
   temporary worktree; its numba kernels are compiled once first, with a 1-day run that is
   not timed), writing its run file the old way (one HDF5 file flushed after every frame);
2. ``journal``: this checkout, frames committed to the crash-safe journal and assembled
   into the run file at the end;
3. ``journal+ckpt``: the same with a checkpoint every ``--checkpoint-every`` days.

and prints one JSON record per case: wall seconds, the run file's size, and for this
checkout the seconds spent committing frames, assembling and checkpointing, the bytes of
one checkpoint and the journal's peak size on disk. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_TIMED = r"""
import json, sys, time
from pathlib import Path
import niche
scenario, out, days, every = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
kw = {}
if every != "none":
    kw["checkpoint_every"] = float(every)
stats = {"commit_s": 0.0, "assemble_s": 0.0, "checkpoint_s": 0.0, "checkpoint_bytes": 0,
         "journal_peak_bytes": 0}
try:
    from niche.io import journal as J
except ImportError:  # the old writer
    J = None
if J is not None:
    def timed(name, fn, size=None):
        def wrap(self, *a, **k):
            t0 = time.perf_counter()
            r = fn(self, *a, **k)
            stats[name] += time.perf_counter() - t0
            if name == "checkpoint_s":
                stats["checkpoint_bytes"] = int(r)
            if name == "commit_s":
                used = sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file())
                stats["journal_peak_bytes"] = max(stats["journal_peak_bytes"], used)
            return r
        return wrap
    J.Journal.write_frame = timed("commit_s", J.Journal.write_frame)
    J.Journal.assemble = timed("assemble_s", J.Journal.assemble)
    J.Journal.write_checkpoint = timed("checkpoint_s", J.Journal.write_checkpoint)
t0 = time.perf_counter()
res = niche.run(scenario, out, days=days, overwrite=True,
                overrides={"output.xdmf": False}, **kw)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": round(wall, 2), "frames": res.frames,
                  "file_mb": round(out.stat().st_size / 1e6, 2),
                  **({k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()}
                     if J is not None else {})}))
"""


def _run(src: Path, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    p = subprocess.run([sys.executable, "-c", _TIMED, *args], env=env, cwd=src,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"benchmark run failed in {src}:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", required=True, help="git revision with the old writer")
    p.add_argument("--scenario", default="reference")
    p.add_argument("--days", type=float, default=4.0)
    p.add_argument("--checkpoint-every", type=float, default=1.0)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        old = d / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old),
                        a.against], check=True)
        try:
            _run(old, [a.scenario, str(d / "warm.h5"), "1", "none"])  # compile its kernels
            cases = [("old", old, "none"), ("journal", ROOT, "none"),
                     ("journal+ckpt", ROOT, str(a.checkpoint_every))]
            for name, src, every in cases:
                rec = _run(src, [a.scenario, str(d / f"{name}.h5"), str(a.days), every])
                print(json.dumps({"case": name, "scenario": a.scenario, "days": a.days,
                                  "threads": os.environ.get("NUMBA_NUM_THREADS", "default"),
                                  **rec}), flush=True)
                (d / f"{name}.h5").unlink()
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False)


if __name__ == "__main__":
    main()
