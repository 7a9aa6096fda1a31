"""``niche bench``: run the benchmark suite and write a JSON record, a Markdown table and a
scaling plot.

The timings come from pytest-benchmark (the suite in ``benchmarks/``, installed as
``niche.benchmarks``; it needs the ``bench`` extra); this module adds what one
harness run cannot: numba compile time (a tiny run with a cold cache minus the same run
with a warm one), the end-to-end reference scenario in a separate process (wall time and
peak memory), and the ratios against the baselines measured in the same run (STREAM triad
bandwidth, the numpy diffusion step, Mesa's per-agent loop).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_bench", "TARGETS", "BenchUnavailable"]


class BenchUnavailable(RuntimeError):
    """The benchmark suite or pytest-benchmark is not installed (one-line message)."""


def _bench_dir() -> Path:
    """The benchmark suite: ``niche.benchmarks`` (source folder ``benchmarks/``)."""
    from importlib.resources import files

    try:
        return Path(str(files("niche.benchmarks")))
    except ModuleNotFoundError:  # a source checkout on PYTHONPATH, not installed
        d = Path(__file__).resolve().parents[2] / "benchmarks"
        if not (d / "conftest.py").is_file():
            msg = 'niche bench: the benchmark suite (niche.benchmarks) is not installed'
            raise BenchUnavailable(msg + '; reinstall: pip install "niche[bench]"') from None
        return d

#: (description, target) pairs checked against the measurements.
TARGETS = {
    "field_rate": ("field solver, 8 f32 substrates, 128^3 with bone: updates/s", 1.2e9),
    "field_roofline": ("field solver 128^3 f32 bone: fraction of triad roofline", 0.40),
    "field_vs_numpy": ("field solver vs numpy LOD step (same size)", 20.0),
    "move_rate": ("movement 1e5 agents: agent-steps/s", 30e6),
    "move_vs_mesa": ("movement 1e5 agents vs Mesa shuffle_do loop", 100.0),
    "handles_frac": ("Mesa-handle bookkeeping, fraction of a full step (max)", 0.10),
    "max_other_phase": ("largest non-field phase of a full step (max)", 0.30),
    "scale_voxels": ("time per step, 64^3 -> 192^3, relative to linear (|x-1| max)", 0.15),
    "scale_agents": ("time per step, 1e4 -> 1e6 agents, relative to linear (|x-1| max)", 0.15),
    "e2e_wall_s": ("reference scenario, 8 weeks: wall seconds (max)", 600.0),
    "e2e_peak_gb": ("reference scenario: peak memory GB (max)", 2.0),
}
_MAX_TARGETS = {"handles_frac", "max_other_phase", "scale_voxels", "scale_agents",
                "e2e_wall_s", "e2e_peak_gb"}


def _machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


_TINY_RUN = (
    "import time, niche; t=time.perf_counter(); "
    "niche.run('default', write=False, overrides={'domain.shape_voxels':[12,12,12],"
    "'run.days':0.05,'vessels.count':1}); print(time.perf_counter()-t)"
)


def _compile_time(env) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        e = dict(env, NUMBA_CACHE_DIR=cache)
        cold = float(subprocess.run([sys.executable, "-c", _TINY_RUN], env=e, check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
        warm = float(subprocess.run([sys.executable, "-c", _TINY_RUN], env=e, check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
    return {"cold_s": cold, "warm_s": warm, "compile_s": cold - warm}


_E2E = (
    "import json, resource, sys, time, niche\n"
    "t = time.perf_counter()\n"
    "r = niche.run('reference', sys.argv[1], overrides={'run.days': float(sys.argv[2]),"
    " 'output.xdmf': False}, overwrite=True)\n"  # the engine, not the ParaView sidecar
    "wall = time.perf_counter() - t\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
    "print(json.dumps({'wall_s': wall, 'peak_bytes': peak, 'days': float(sys.argv[2]),"
    " 'frames': r.frames, 'cells': r.model.cells.n_alive,"
    " 'file_bytes': r.path.stat().st_size, 'timings': dict(r.model.timings)}))\n"
)


def _e2e(days: float, env) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run([sys.executable, "-c", _E2E, str(Path(d) / "ref.h5"), str(days)],
                             env=env, check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["days_per_wall_min"] = res["days"] / (res["wall_s"] / 60.0)
    res["projected_56d_wall_s"] = res["wall_s"] * 56.0 / res["days"]
    return res


def _rows(raw: dict) -> list[dict]:
    rows = []
    for b in raw["benchmarks"]:
        x = b["extra_info"]
        st = b["stats"]
        med = st["median"]
        rows.append(dict(name=b["name"], group=x.get("group"), size=x.get("size"),
                         unit=x.get("unit"), work=x.get("work"), median_s=med, min_s=st["min"],
                         rate=(x["work"] / med) if x.get("work") else None,
                         extra={k: v for k, v in x.items()
                                if k not in ("group", "size", "unit", "work")}))
    return rows


def _find(rows, group, **match):
    for r in rows:
        if r["group"] == group and all(r["extra"].get(k) == v for k, v in match.items()):
            return r
    return None


def _derive(rows, e2e) -> dict:
    m: dict = {}
    triad = _find(rows, "stream")
    bw = triad["rate"] if triad else None
    m["triad_GBps"] = bw / 1e9 if bw else None
    for r in rows:
        if r["group"] == "field" and bw:
            r["roofline_frac"] = r["rate"] * r["extra"]["bytes_per_unit"] / bw
    f128 = _find(rows, "field", n=128, dtype="float32", bone=True)
    if f128:
        m["field_rate"] = f128["rate"]
        m["field_roofline"] = f128.get("roofline_frac")
    fields = [r for r in rows if r["group"] == "field" and r["extra"]["dtype"] == "float32"
              and r["extra"]["bone"]]
    for r in rows:
        if r["group"] == "field_numpy":
            same = _find(rows, "field", n=r["extra"]["n"], dtype="float32", bone=False)
            if same:
                r["speedup_of_niche"] = same["rate"] / r["rate"]
    npb = [r for r in rows if r["group"] == "field_numpy" and "speedup_of_niche" in r]
    if npb:
        m["field_vs_numpy"] = max(npb, key=lambda r: r["extra"]["n"])["speedup_of_niche"]
    mv = _find(rows, "move", n_agents=100_000) or next(
        (r for r in rows if r["group"] == "move"), None)
    mm = next((r for r in rows if r["group"] == "move_mesa"), None)
    if mv:
        m["move_rate"] = mv["rate"]
    if mv and mm:
        m["move_vs_mesa"] = mv["rate"] / mm["rate"]
        mm["speedup_of_niche"] = m["move_vs_mesa"]
    fs = next((r for r in rows if r["group"] == "full_step"), None)
    if fs:
        ph = fs["extra"]["phases"]
        m["phases"] = ph
        m["handles_frac"] = ph.get("handles", 0.0)
        m["max_other_phase"] = max(v for k, v in ph.items() if k != "fields")
    if len(fields) >= 2:
        a, b = min(fields, key=lambda r: r["size"]), max(fields, key=lambda r: r["size"])
        m["scale_voxels"] = abs((b["median_s"] / a["median_s"]) / (b["size"] / a["size"]) - 1)
        m["scale_voxels_sizes"] = [a["extra"]["n"], b["extra"]["n"]]
    mvs = [r for r in rows if r["group"] == "move"]
    if len(mvs) >= 2:
        a, b = min(mvs, key=lambda r: r["size"]), max(mvs, key=lambda r: r["size"])
        m["scale_agents"] = abs((b["median_s"] / a["median_s"]) / (b["size"] / a["size"]) - 1)
        m["scale_agents_sizes"] = [a["size"], b["size"]]
    if e2e:
        m["e2e_wall_s"] = e2e["projected_56d_wall_s"]
        m["e2e_peak_gb"] = e2e["peak_bytes"] / 1e9
    return m


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1e6:
            return f"{v / 1e6:.3g} M{unit}" if abs(v) < 1e9 else f"{v / 1e9:.3g} G{unit}"
        return f"{v:.3g}{unit}"
    return str(v)


def _markdown(rec: dict) -> str:
    L = []
    mach = rec["machine"]
    L.append(f"# niche bench ({'quick' if rec['quick'] else 'full'})\n")
    L.append(f"commit `{rec['commit']}`, {mach.get('cpu', '?')}, {mach.get('cpus')} cpus, "
             f"{mach.get('mem_gb', '?')} GB, NUMBA_NUM_THREADS={rec['threads']}, "
             f"numpy {rec['versions'].get('numpy')}, numba {rec['versions'].get('numba')}, "
             f"mesa {rec['versions'].get('mesa')}\n")
    L.append("| benchmark | median | rate | vs baseline | roofline |")
    L.append("|---|---|---|---|---|")
    for r in rec["rows"]:
        vs = r.get("speedup_of_niche")
        vs = f"niche {vs:.3g}x faster" if vs else "-"
        rf = r.get("roofline_frac")
        L.append(f"| {r['name'].replace('test_', '')} | {r['median_s'] * 1e3:.3g} ms | "
                 f"{_fmt(r['rate'])} {r['unit'] or ''}/s | {vs} | "
                 f"{'-' if rf is None else f'{100 * rf:.0f} %'} |")
    d = rec["derived"]
    L.append("")
    L.append(f"STREAM triad bandwidth: {_fmt(d.get('triad_GBps'))} GB/s. "
             f"numba compile time (cold - warm cache, tiny run): "
             f"{rec['compile']['compile_s']:.1f} s.")
    if d.get("phases"):
        L.append("")
        L.append("Full step at the reference size, share of time per phase: " + ", ".join(
            f"{k} {100 * v:.1f} %" for k, v in sorted(d["phases"].items(), key=lambda kv: -kv[1])))
    if rec.get("e2e"):
        e = rec["e2e"]
        L.append("")
        L.append(f"End to end, reference scenario ({e['days']:g} simulated days, "
                 f"{e['frames']} frames, {e['cells']} cells): {e['wall_s']:.1f} s wall, "
                 f"{e['days_per_wall_min']:.2f} simulated days per wall minute, peak "
                 f"{e['peak_bytes'] / 1e9:.2f} GB, file {e['file_bytes'] / 1e6:.0f} MB; "
                 f"56 days projected {e['projected_56d_wall_s']:.0f} s.")
    L.append("")
    L.append("| target | goal | measured | met |")
    L.append("|---|---|---|---|")
    for key, t in rec["targets"].items():
        L.append(f"| {t['what']} | {'<=' if t['max'] else '>='} {_fmt(t['goal'])} | "
                 f"{_fmt(t['value'])} | {'-' if t['met'] is None else ('yes' if t['met'] else 'NO')} |")
    return "\n".join(L) + "\n"


def _plot(rec: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, group, xlabel in ((axes[0], "field", "voxels"), (axes[1], "move", "agents")):
        series: dict[str, list] = {}
        for r in rec["rows"]:
            if r["group"] != group:
                continue
            e = r["extra"]
            label = f"{e.get('dtype', '')} {'bone' if e.get('bone') else 'open'}" \
                if group == "field" else "niche move"
            series.setdefault(label, []).append((r["size"], r["median_s"]))
        for label, pts in series.items():
            pts.sort()
            xs, ys = zip(*pts)
            ax.loglog(xs, ys, "o-", label=label)
            ax.loglog(xs, [ys[0] * x / xs[0] for x in xs], "k:", lw=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per step")
        ax.set_title(f"{group} (dotted: linear)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_bench(out_dir: str | Path = "bench", quick: bool = False, e2e_days: float | None = None,
              threads: int | None = None, select: str | None = None) -> dict:
    """Run the suite; returns the record (also written to ``out_dir``)."""
    from ..provenance import git_commit, library_versions

    try:
        import pytest_benchmark  # noqa: F401
    except ImportError:
        raise BenchUnavailable('niche bench needs the bench extra (pytest-benchmark is not '
                               'installed): pip install "niche[bench]"') from None
    bench_dir = _bench_dir()
    root = bench_dir.parent  # the repository, or site-packages/niche for an installed copy
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    if quick:
        env["NICHE_BENCH_QUICK"] = "1"
    here = str(Path(__file__).resolve().parents[2])  # niche importable without an install
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    raw_path = (out / "pytest-benchmark.json").resolve()
    cmd = [sys.executable, "-m", "pytest", str(bench_dir), "-q", "-p", "no:cacheprovider",
           f"--benchmark-json={raw_path}", "--benchmark-disable-gc", "--rootdir", str(root)]
    if quick:
        cmd += ["--benchmark-min-rounds=1", "--benchmark-max-time=0.05",
                "--benchmark-warmup=off"]
    if select:
        cmd += ["-k", select]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("benchmark run failed:\n" + proc.stdout[-3000:] + proc.stderr[-2000:])
    raw = json.loads(raw_path.read_text())
    rows = _rows(raw)
    comp = _compile_time(env)
    if e2e_days is None:
        e2e_days = 0.25 if quick else 56.0
    e2e = _e2e(e2e_days, env) if e2e_days > 0 else None
    derived = _derive(rows, e2e)
    targets = {}
    for key, (what, goal) in TARGETS.items():
        v = derived.get(key)
        is_max = key in _MAX_TARGETS
        met = None if v is None or quick else (v <= goal if is_max else v >= goal)
        targets[key] = dict(what=what, goal=goal, value=v, max=is_max, met=met)
    import numba

    rec = dict(quick=quick, commit=git_commit(), machine=_machine(),
               threads=int(env.get("NUMBA_NUM_THREADS", numba.config.NUMBA_NUM_THREADS)),
               versions=library_versions(), rows=rows, compile=comp, e2e=e2e, derived=derived,
               targets=targets, suite_wall_s=time.perf_counter() - t0,
               date=time.strftime("%Y-%m-%d"))
    (out / "bench.json").write_text(json.dumps(rec, indent=1, default=float))
    (out / "bench.md").write_text(_markdown(rec))
    _plot(rec, out / "scaling.png")
    return rec
