"""The validation report: the results table, time-course plots, the saved histories and
the provenance of a validation.

:class:`Report` is what a validation returns (rows, results, arms, histories, task
outcomes and how it ran); :meth:`Report.table_text` and :meth:`Report.table_markdown`
print its table. :func:`write_report` writes ``report.md``, one PNG per readout
(:func:`plot_histories`: every arm's mean over seeds with a 95 % t band) and
``histories.csv`` (every frame of every run, long format: ``arm``, ``seed``, ``t_days``,
readouts). :func:`versions` is the provenance the report lists.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..experiments.execution import Arm, TaskOutcome, task_overrides
from ..experiments.stats import fmt_ci
from ..provenance import provenance
from .rows import Row, RowResult

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "Report", "write_report", "plot_histories", "seed_text", "versions",
    "PLOT_READOUTS_IN_VIVO", "PLOT_READOUTS_IN_VITRO",
]

NAN = float("nan")


def _md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def seed_text(seeds: Sequence[int]) -> str:
    """Seeds as runs of consecutive values: ``[1, 2, 3, 7]`` -> ``"1..3, 7"``."""
    out: list[str] = []
    ss = sorted(int(x) for x in seeds)
    i = 0
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[j] + 1:
            j += 1
        out.append(f"{ss[i]}..{ss[j]}" if j > i else f"{ss[i]}")
        i = j + 1
    return ", ".join(out) or "none"


@dataclass
class Report:
    """What a validation returns (and :func:`write_report` writes to
    ``out_dir/report.md``)."""

    rows: list[Row]
    results: dict[str, RowResult]
    arms: dict[str, Arm]
    histories: dict[str, list["pd.DataFrame"]]
    outcomes: list[TaskOutcome]
    replicates: int
    quick: bool
    shape: tuple[int, int, int] | None
    workers: int
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the seeds of every arm, in pairing order (default 1..replicates)
    seeds: list[int] = field(default_factory=list)
    #: saved histories.csv files the rows were re-evaluated from (no runs; ``--from``)
    sources: list[str] = field(default_factory=list)
    wall_s: float = NAN
    out_dir: Path | None = None
    plots: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results.values())

    @property
    def failures(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def table_markdown(self) -> str:
        lines = ["| row | condition | readout | measured (95 % CI) | expected | criterion | result |",
                 "|---|---|---|---|---|---|---|"]
        for row in self.rows:
            r = self.results[row.id]
            lines.append(f"| {row.id} | {_md(row.condition)} | {_md(row.readout)} | "
                         f"{_md(fmt_ci(r))} | {_md(row.expected)} | {_md(row.criterion)} | "
                         f"**{'PASS' if r.passed else 'FAIL'}** |")
        return "\n".join(lines)

    def table_text(self) -> str:
        lines = []
        w = max([len(fmt_ci(r)) for r in self.results.values()] + [20])
        lines.append(f"{'row':<4} {'measured (95 % CI)':<{w}}  {'result':<6} expected")
        for row in self.rows:
            r = self.results[row.id]
            lines.append(f"{row.id:<4} {fmt_ci(r):<{w}}  {'PASS' if r.passed else 'FAIL':<6} "
                         f"{row.expected}")
            lines.append(f"{'':<4}   criterion: {row.criterion}" if row.criterion else "")
            lines.append(f"{'':<4}   {r.detail}")
        return "\n".join(x for x in lines if x)


def versions() -> dict[str, str]:
    """Provenance of a validation (the report's ``Versions`` section):
    :func:`niche.provenance.provenance`."""
    return provenance()


#: readouts plotted over time (only those present in the histories)
PLOT_READOUTS_IN_VIVO = ("bv_tv", "oc_s_bs", "ob_s_bs", "n_osteoclast", "n_osteoblast",
                         "resorbed_mm3_per_day", "formed_mm3_per_day", "n_treg",
                         "n_tnf_tcell", "n_treg_cxcr3", "n_ilc2_il10", "n_ilc2_cgrp")
PLOT_READOUTS_IN_VITRO = ("n_oc_multinuc", "resorbed_area_um2", "n_osteoclast", "n_monocyte")


def _band(hists: Sequence["pd.DataFrame"], col: str):
    import pandas as pd
    from scipy import stats

    series = []
    for h in hists:
        if col in h.columns and "t_days" in h.columns:
            s = pd.Series(h[col].to_numpy(float), index=np.round(h["t_days"].to_numpy(float), 6))
            series.append(s[~s.index.duplicated(keep="last")])
    if not series:
        return None
    df = pd.concat(series, axis=1).sort_index()
    n = df.count(axis=1).to_numpy()
    m = df.mean(axis=1).to_numpy()
    sd = df.std(axis=1, ddof=1).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        tq = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
        half = tq * sd / np.sqrt(n)
    return df.index.to_numpy(), m, half


def plot_histories(histories: Mapping[str, Sequence["pd.DataFrame"]], arms: Mapping[str, Arm],
                   out_dir: str | Path) -> list[Path]:
    """One PNG per readout and group (in vivo / in vitro): every arm's mean over seeds with
    a 95 % t-interval band. Returns the files written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    written = []
    for group, cols, vitro in (("invivo", PLOT_READOUTS_IN_VIVO, False),
                               ("invitro", PLOT_READOUTS_IN_VITRO, True)):
        names = [a for a in histories if histories[a] and arms[a].in_vitro == vitro]
        if not names:
            continue
        for col in cols:
            bands = {a: _band(histories[a], col) for a in names}
            bands = {a: b for a, b in bands.items() if b is not None}
            if not bands:
                continue
            fig = Figure(figsize=(6.4, 4.0), layout="constrained")
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            for a, (t, m, half) in bands.items():
                (line,) = ax.plot(t, m, label=f"{a} (n={len(histories[a])})", lw=1.5)
                ok = np.isfinite(half)
                if ok.any():
                    ax.fill_between(t, m - np.where(ok, half, 0), m + np.where(ok, half, 0),
                                    color=line.get_color(), alpha=0.2, lw=0)
            ax.set_xlabel("time (days)")
            ax.set_ylabel(col)
            ax.set_title(f"{col}: mean over seeds, 95 % CI band")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            path = out / f"{group}_{col}.png"
            fig.savefig(path, dpi=110)
            written.append(path)
    return written


def _threads_seen(outcomes: Sequence[TaskOutcome]) -> str:
    seen = sorted({o.meta["numba_threads"] for o in outcomes if "numba_threads" in o.meta})
    return ", ".join(map(str, seen)) or "unknown"


def _arms_table(rep: Report) -> list[str]:
    """The report's table of arms: scenario, overrides, domain, runs ok, mean run wall."""
    L = ["", "## Arms", "",
         "| arm | scenario | days | overrides | domain (voxels) | runs ok | mean run wall (s) |",
         "|---|---|---|---|---|---|---|"]
    for a, arm in rep.arms.items():
        ocs = [o for o in rep.outcomes if o.arm == a]
        ok = [o for o in ocs if o.ok]
        shapes = sorted({"x".join(map(str, o.meta["shape"])) + (
            f" @ {o.meta['voxel_um']:g} um" if "voxel_um" in o.meta else "")
            for o in ok if "shape" in o.meta})
        ov = task_overrides(arm, rep.shape, rep.overrides)
        wall = np.mean([o.wall_s for o in ok]) if ok else NAN
        L.append(f"| {a} | {arm.scenario} | {arm.days:g} | "
                 f"{_md(', '.join(f'{k}={v}' for k, v in ov.items()) or '-')} | "
                 f"{', '.join(shapes) or '?'} | {len(ok)}/{len(ocs)} | {wall:.1f} |")
    return L


def write_report(rep: Report, out_dir: str | Path) -> Path:
    """Write ``report.md``, the PNG plots and ``histories.csv`` (every frame of every run,
    long format) to ``out_dir``; returns the report path."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rep.out_dir = out
    rep.plots = plot_histories(rep.histories, rep.arms, out)
    frames = []
    seeds = rep.seeds or list(range(1, rep.replicates + 1))
    for a, hs in rep.histories.items():
        for seed, h in zip(seeds, hs):
            frames.append(h.assign(arm=a, seed=seed))
    if frames:
        long = pd.concat(frames, ignore_index=True)
        long = long[["arm", "seed"] + [c for c in long.columns if c not in ("arm", "seed")]]
        long.to_csv(out / "histories.csv", index=False)

    n_pass = sum(r.passed for r in rep.results.values())
    dom = "x".join(map(str, rep.shape)) + " voxels" if rep.shape else "none (scenario default)"
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    L = ["# niche validation report",
         "",
         (f"{stamp} - **{n_pass} of {len(rep.results)} rows pass** "
          f"({'PASS' if rep.passed else 'FAIL'})"),
         "",
         (f"- replicates: {rep.replicates} seeds per arm (seeds {seed_text(seeds)}); "
          "effects paired by seed, mean with 95 % Student-t interval")]
    if rep.sources:
        L.append("- re-evaluated from saved histories (no runs): " + _md(", ".join(rep.sources)))
    else:
        L += [(f"- mode: {'quick (smoke test)' if rep.quick else 'full'}; domain override "
               f"for in-vivo arms: {dom}"),
              (f"- workers: {rep.workers} dask worker processes, 1 thread each; "
               f"NUMBA_NUM_THREADS seen in the runs: {_threads_seen(rep.outcomes)}"),
              ("- overrides on every arm (--set): "
               + (_md(", ".join(f"{k}={v}" for k, v in rep.overrides.items()))
                  if rep.overrides else "none (the shipped parameters)"))]
    L += [f"- wall time: {rep.wall_s:.1f} s", "", "## Results", "", rep.table_markdown(), "",
          "### Details", ""]
    for row in rep.rows:
        L.append(f"- **{row.id}** {_md(rep.results[row.id].detail)}")
    if not rep.sources:  # saved histories carry no run metadata
        L += _arms_table(rep)
    if rep.failures:
        L += ["", "## Failed runs", ""]
        for o in rep.failures:
            L.append(f"- {o.arm} seed {o.seed}: `{_md(o.error)}`")
        tb = next((o.traceback for o in rep.failures if o.traceback), "")
        if tb:
            L += ["", "First traceback:", "", "```", tb.rstrip(), "```"]
    if rep.plots:
        L += ["", "## Time courses", ""]
        for p in rep.plots:
            L += [f"![{p.stem}]({p.name})", ""]
    L += ["", "## Versions", ""]
    for k, v in versions().items():
        L.append(f"- {k}: {v}")
    path = out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path
