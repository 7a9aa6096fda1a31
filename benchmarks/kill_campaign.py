"""SIGKILL campaign against any revision's writer: how many killed runs stay readable.

    python benchmarks/kill_campaign.py [--against REV] [--kills 20] [--seed 1]

Starts a small run (ovx_il2, 16^3, 2 days, frames every 0.25 day) with the niche of this
checkout, or of git revision ``REV`` (a temporary worktree), and SIGKILLs it at a random
moment after it started writing; then tries to read what it left with this checkout's
reader: the run file, else the old writer's ``.partial`` file (``open_run``), else the
journal (``niche repair``, then ``open_run``), and reads every frame. Prints one JSON line:
kills, kills that left a run file or a partial one, kills before the journal's first frame
(the run was still starting: nothing to read), readable files and frames read. The evidence for the journal (issue 17): the old writer's
killed files do not open. Not part of the test suite (tests/test_reliability.py has the
campaign that checks frame contents).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["run", "ovx_il2", "-q", "--days", "2", "--set", "domain.shape_voxels=[16,16,16]",
        "--set", "run.frame_interval_days=0.25", "--set", "vessels.count=2",
        "--set", "output.xdmf=false"]


def _readable(out: Path) -> int | None:
    """Frames read from what a killed run left, or None when nothing opens."""
    from niche.io import RunFileError, open_run
    from niche.io.journal import repair

    partial = out.with_name(out.name + ".partial")
    try:
        if partial.is_dir():
            repair(out)
        path = out if out.exists() else partial
        with open_run(path) as rf:
            for k in range(rf.n_frames):
                rf.bone(k)
                rf.agents(k)
                for name in rf.field_names:
                    rf.field(name, k)
            return rf.n_frames
    except (RunFileError, OSError, ValueError, KeyError, IndexError):
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", help="git revision whose writer is killed (default: this one)")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = random.Random(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = ROOT
        if a.against:
            src = tmp / "src"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(src), a.against], check=True)
        try:
            env = dict(os.environ, PYTHONPATH=str(src))
            stats = {"writer": a.against or "this checkout", "kills": 0, "left_something": 0,
                     "before_first_frame": 0, "readable": 0, "frames_read": 0}
            for i in range(a.kills):
                out = tmp / f"k{i}.h5"
                proc = subprocess.Popen([sys.executable, "-m", "niche.cli", *ARGS, "--out",
                                         str(out)], env=env, cwd=src,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                partial = out.with_name(out.name + ".partial")
                t_end = time.monotonic() + 120
                while not partial.exists() and proc.poll() is None \
                        and time.monotonic() < t_end:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 1.5))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                stats["kills"] += 1
                if partial.is_dir() and not (partial / "header.h5").exists():
                    stats["before_first_frame"] += 1  # killed while starting: nothing to read
                elif out.exists() or partial.exists():
                    stats["left_something"] += 1
                    n = _readable(out)
                    if n is not None:
                        stats["readable"] += 1
                        stats["frames_read"] += n
                for leftover in tmp.glob(f"k{i}.*"):
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            print(json.dumps(stats))
        finally:
            if a.against:
                with contextlib.suppress(Exception):
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                    str(src)], check=False)


if __name__ == "__main__":
    main()
