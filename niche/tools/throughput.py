"""``niche bench --throughput``: what an ensemble worker gets done per core.

Every scientific answer of niche comes from ensembles of single-threaded runs (one per
core), so the figure that decides what users can afford is the per-core throughput of the
whole model, and, for one large run, its wall time on all cores. This benchmark runs, each
in a fresh process:

- the validation arms' scenarios (``sham``, ``ovx``, ``ovx_il2``) at 48^3 voxels and a
  culture well (``invitro_osteoclastogenesis``, its own well), in memory as the validation
  workers run them, with ``NUMBA_NUM_THREADS=1``;
- the reference scenario (ovx_il2 on 100^3 voxels, daily frames) writing its run file,
  with ``NUMBA_NUM_THREADS=1`` and with 2 threads (wall time of one large run);

and reports simulated days per core-minute, cells x days per core-second (cells
integrated over the run's frames, trapezoid rule) and the share of time by phase
(``model.timings``). Times are of the run alone, in a process that has loaded its compiled
kernels already (a short untimed run first), as an ensemble worker is. With ``--against REV`` the same cases run, interleaved, with the niche
of git revision ``REV`` (checked out into a temporary worktree; its kernels are compiled
first by an untimed tiny run), so a speed-up is a ratio measured on the same machine at the
same time.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["CASES", "run_throughput", "measure_case", "markdown"]

#: (name, scenario, overrides, threads, write a run file)
CASES: list[tuple[str, str, dict, int, bool]] = [
    ("sham 48^3", "sham", {"domain.shape_voxels": [48, 48, 48]}, 1, False),
    ("ovx 48^3", "ovx", {"domain.shape_voxels": [48, 48, 48]}, 1, False),
    ("ovx_il2 48^3", "ovx_il2", {"domain.shape_voxels": [48, 48, 48]}, 1, False),
    ("culture well", "invitro_osteoclastogenesis", {}, 1, False),
    ("reference 100^3", "reference", {}, 1, True),
    ("reference 100^3, 2 threads", "reference", {}, 2, True),
]

_CELL_COUNTS = ("n_tcell", "n_ilc2", "n_monocyte", "n_osteoclast", "n_osteoblast")

#: runs one case in a fresh process (works with older niche revisions too)
_CASE = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
import numpy as np
import niche
scenario, days, write = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
ov = json.loads(sys.argv[4])
ov.setdefault("output.xdmf", False)
# an ensemble worker is warm: load the compiled kernels first (untimed)
niche.run(scenario, write=False, days=0.02,
          overrides={**ov, "domain.shape_voxels": [12, 12, 12], "vessels.count": 1}
          if scenario != "invitro_osteoclastogenesis" and "invitro" not in scenario else ov)
with tempfile.TemporaryDirectory() as d:
    out = Path(d) / "run.h5"
    t0 = time.perf_counter()
    res = niche.run(scenario, out if write else None, days=days, overrides=ov, write=write)
    wall = time.perf_counter() - t0
    size = out.stat().st_size if write else 0
h = res.history
cells = sum(h[c].to_numpy(float) for c in %r if c in h)
t = h["t_days"].to_numpy(float)
cell_days = float(np.sum(0.5 * (cells[1:] + cells[:-1]) * np.diff(t))) if len(t) > 1 else 0.0
print(json.dumps({"wall_s": wall, "days": float(res.model.t_days), "cell_days": cell_days,
                  "cells_end": int(res.model.cells.n_alive), "file_bytes": size,
                  "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "timings": dict(res.model.timings)}))
""" % (_CELL_COUNTS,)


def measure_case(src: Path, scenario: str, days: float, overrides: dict, threads: int,
                 write: bool) -> dict:
    """Run one case in a fresh process with the niche found in ``src``; its record."""
    env = dict(os.environ, PYTHONPATH=str(src), NUMBA_NUM_THREADS=str(threads))
    p = subprocess.run([sys.executable, "-c", _CASE, scenario, str(days), "1" if write else "0",
                        json.dumps(overrides)], env=env, cwd=src, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError(f"throughput case {scenario!r} failed with the niche in {src}:\n"
                           + p.stderr[-3000:])
    rec = json.loads(p.stdout.strip().splitlines()[-1])
    core_s = rec["wall_s"] * threads
    rec.update(threads=threads, core_s=core_s,
               days_per_core_min=rec["days"] / (core_s / 60.0),
               cell_days_per_core_s=rec["cell_days"] / core_s)
    total = sum(rec["timings"].values()) or 1.0
    rec["phases"] = {k: v / total for k, v in rec["timings"].items()}
    return rec


@contextlib.contextmanager
def _checkout(rev: str):
    """A temporary git worktree of ``rev`` (removed afterwards)."""
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "against"
        r = subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "-q",
                            str(path), rev], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"--against {rev}: cannot check it out ({r.stderr.strip()})")
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force",
                            str(path)], capture_output=True)


def run_throughput(out_dir: str | Path = "bench", days: float = 14.0, ref_days: float = 4.0,
                   against: str | None = None, cases=None, progress=print) -> dict:
    """Run the throughput cases (and those of ``against``); write ``throughput.json`` and
    ``throughput.md`` into ``out_dir``; return the record."""
    from ..provenance import git_commit, library_versions

    cases = CASES if cases is None else cases
    here = Path(__file__).resolve().parents[2]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rec: dict = {"commit": git_commit(), "against": against, "days": days, "ref_days": ref_days,
                 "versions": library_versions(), "date": time.strftime("%Y-%m-%d"),
                 "cpus": os.cpu_count(), "cases": []}
    with (_checkout(against) if against is not None else contextlib.nullcontext()) as old:
        if old is not None:
            measure_case(old, "default", 0.05, {"domain.shape_voxels": [12, 12, 12]}, 1,
                         True)  # compile its kernels (untimed)
        for name, scenario, ov, threads, write in cases:
            d = ref_days if scenario == "reference" else days
            row = {"case": name, "scenario": scenario, "threads": threads, "days": d}
            row["this"] = measure_case(here, scenario, d, ov, threads, write)
            if old is not None:
                row["against"] = measure_case(old, scenario, d, ov, threads, write)
                row["speedup"] = row["against"]["core_s"] / row["this"]["core_s"]
            rec["cases"].append(row)
            if progress:
                progress(_line(row))
    (out / "throughput.json").write_text(json.dumps(rec, indent=1))
    (out / "throughput.md").write_text(markdown(rec))
    return rec


def _line(row: dict) -> str:
    t = row["this"]
    s = (f"{row['case']}: {t['days_per_core_min']:.3g} simulated days per core-minute, "
         f"{t['cell_days_per_core_s']:.3g} cell-days per core-second")
    if "speedup" in row:
        s += f", {row['speedup']:.2f}x against {row['against']['core_s']:.1f} core-s"
    return s


def markdown(rec: dict) -> str:
    L = [f"# niche bench --throughput\n",
         f"commit `{rec['commit']}`" + (f" against `{rec['against']}`" if rec["against"] else "")
         + f", {rec['cpus']} cpus, {rec['date']}; {rec['days']:g} simulated days per 48^3 case, "
         f"{rec['ref_days']:g} for the reference\n"]
    has = any("against" in r for r in rec["cases"])
    head = "| case | threads | wall s | days / core-min | cell-days / core-s | peak GB |"
    L += [head + (" against: wall s | speed-up |" if has else ""),
          "|---" * (6 + 2 * has) + "|"]
    for r in rec["cases"]:
        t = r["this"]
        line = (f"| {r['case']} | {r['threads']} | {t['wall_s']:.1f} | "
                f"{t['days_per_core_min']:.3g} | {t['cell_days_per_core_s']:.3g} | "
                f"{t['peak_bytes'] / 1e9:.2f} |")
        if has:
            line += (f" {r['against']['wall_s']:.1f} | {r['speedup']:.2f}x |"
                     if "against" in r else " - | - |")
        L.append(line)
    L += ["", "Time by phase, wall seconds per simulated day (this commit"
          + (" / against" if has else "") + "; the share of the run in brackets):", ""]
    phases = sorted({k for r in rec["cases"] for k in r["this"]["phases"]})
    L += ["| case | " + " | ".join(phases) + " |", "|---" * (len(phases) + 1) + "|"]

    def cell(x: dict, k: str) -> str:
        return (f"{x['timings'].get(k, 0.0) / x['days']:.3g} "
                f"({100 * x['phases'].get(k, 0.0):.0f} %)")

    for r in rec["cases"]:
        cells = []
        for k in phases:
            v = cell(r["this"], k)
            if "against" in r:
                v += " / " + cell(r["against"], k)
            cells.append(v)
        L.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    return "\n".join(L) + "\n"
