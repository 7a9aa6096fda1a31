"""``niche experiment report DIR``: Markdown and PNG figures of an experiment folder.

The report (``DIR/report/report.md``) shows the folder's status (failed runs with their
first error line), one table of paired effects against the control arm per readout at the
last day (:func:`niche.experiments.compare.paired_effects`), and for every readout:

- trajectories: the mean over seeds per arm (and swept value) with a 95 % t band;
- end-point distributions: every seed's value at the last day, with the mean;
- dose-response, for each numeric swept parameter: the mean end value per arm against the
  swept value, with 95 % t intervals.
"""
from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .compare import paired_effects, param_columns, values_at
from .folder import load, status
from .spec import load_experiment
from .stats import fmt_value, mean_ci

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["write_report"]


def _label(arm: str, key: tuple, params: Sequence[str]) -> str:
    extra = [f"{p.split('.')[-1]}={v:g}" if isinstance(v, (int, float)) else f"{p}={v}"
             for p, v in zip(params, key) if v is not None and not _nan(v)]
    return arm + (f" ({', '.join(extra)})" if extra else "")


def _nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _groups(df: "pd.DataFrame", params: Sequence[str]):
    keys = ["arm", *params]
    for k, g in df.groupby(keys, dropna=False, sort=False):
        k = k if isinstance(k, tuple) else (k,)
        yield k[0], tuple(None if _nan(v) else v for v in k[1:]), g


def _fig(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n, 3)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return plt, fig, axes.ravel()


def _trajectories(df, readouts, params, path: Path) -> Path:
    plt, fig, axes = _fig(len(readouts))
    for ax, r in zip(axes, readouts):
        sub = df[df["readout"] == r]
        for arm, key, g in _groups(sub, params):
            piv = g.pivot_table(index="t_days", columns="seed", values="value")
            t = piv.index.to_numpy()
            cis = [mean_ci(row[np.isfinite(row)]) for row in piv.to_numpy()]
            m = np.array([c.mean for c in cis])
            lo = np.array([c.lo for c in cis])
            hi = np.array([c.hi for c in cis])
            (line,) = ax.plot(t, m, label=_label(arm, key, params))
            ok = np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(t[ok], lo[ok], hi[ok], color=line.get_color(), alpha=0.2)
        ax.set_title(r)
        ax.set_xlabel("day")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _endpoints(df, readouts, params, path: Path) -> Path:
    plt, fig, axes = _fig(len(readouts))
    for ax, r in zip(axes, readouts):
        vals = values_at(df, r)
        labels = []
        for i, (arm, key, g) in enumerate(_groups(vals, params)):
            v = g["value"].to_numpy(float)
            x = np.full(v.size, i) + np.linspace(-0.15, 0.15, v.size)
            ax.plot(x, v, "o", ms=4, alpha=0.7)
            ax.plot([i - 0.3, i + 0.3], [np.nanmean(v)] * 2, "k-")
            labels.append(_label(arm, key, params))
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{r} (last day)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _dose_response(df, readouts, param: str, path: Path) -> Path:
    plt, fig, axes = _fig(len(readouts))
    for ax, r in zip(axes, readouts):
        vals = values_at(df, r)
        swept = vals[vals[param].notna()]
        for arm, g in swept.groupby("arm", sort=False):
            xs = sorted(g[param].unique())
            cis = [mean_ci(g[g[param] == x]["value"].to_numpy(float)) for x in xs]
            m = np.array([c.mean for c in cis])
            err = np.array([[c.mean - c.lo, c.hi - c.mean] for c in cis]).T
            ax.errorbar(xs, m, yerr=np.nan_to_num(err), marker="o", capsize=3, label=arm)
        ax.set_xlabel(param)
        ax.set_title(f"{r} (last day)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _effects_md(df, readouts, control, params) -> list[str]:
    lines = [f"## Paired effects against `{control}` at the last day", "",
             "Mean paired difference over seeds with its 95 % t and BCa-bootstrap intervals, "
             "the paired t-test p-value, Holm-adjusted over the arms of each readout, "
             "Cohen's d of the differences and the seeds a paired t-test needs for 80 % "
             "power at alpha 0.05.", ""]
    head = ["readout", "arm", *params, "n", "effect", "95 % CI (t)", "95 % CI (bootstrap)",
            "p", "p (Holm)", "d", "seeds for 80 %"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in readouts:
        eff = paired_effects(df, r, control)
        for _, e in eff.iterrows():
            cells = [r, e["arm"], *[("" if e[p] is None or _nan(e[p]) else f"{e[p]:g}")
                                    for p in params], str(int(e["n"])),
                     fmt_value(e["effect"], ""),
                     f"[{fmt_value(e['ci_lo'], '')}, {fmt_value(e['ci_hi'], '')}]",
                     f"[{fmt_value(e['boot_lo'], '')}, {fmt_value(e['boot_hi'], '')}]",
                     f"{e['p']:.3g}", f"{e['p_adj']:.3g}", f"{e['d']:.2f}",
                     "" if _nan(e["n_for_power"]) else str(int(e["n_for_power"]))]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def write_report(out: str | Path, *, readouts: Sequence[str] | None = None,
                 control: str | Sequence[str] | None = None, max_readouts: int = 6) -> Path:
    """Write ``out/report/report.md`` with its figures; returns the Markdown path.

    Args:
        out: an experiment folder.
        readouts: readouts shown (default: the experiment's first ``max_readouts``).
        control: the arm(s) effects are taken against, one table each (default: the
            first arm).
    """
    out = Path(out)
    exp = load_experiment(out / "experiment.toml")
    st = status(out, exp)
    df = load(out)
    rdir = out / "report"
    rdir.mkdir(exist_ok=True)
    lines = [f"# Experiment `{exp.name}`", "", exp.description or "", "",
             f"Written {_dt.datetime.now().isoformat(timespec='seconds')} from `{out}`.", "",
             "## Status", "", "```", st.summary(), "```", ""]
    if df.empty:
        lines.append("No finished runs yet.")
        path = rdir / "report.md"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
    have = list(dict.fromkeys(df["readout"]))
    if readouts is None:
        readouts = have[:max_readouts]
    missing = [r for r in readouts if r not in have]
    if missing:
        raise KeyError(f"no readout {missing[0]!r} in the experiment (has: {', '.join(have)})")
    controls = [control] if isinstance(control, str) else list(control or [next(iter(exp.arms))])
    for c in controls:
        if c not in set(df["arm"]):
            raise KeyError(f"no finished runs of control arm {c!r}")
    params = param_columns(df)
    figs = [("Trajectories (mean, 95 % band)", _trajectories(df, readouts, params,
                                                          rdir / "trajectories.png")),
            ("End points", _endpoints(df, readouts, params, rdir / "endpoints.png"))]
    for p in params:
        if np.issubdtype(df[p].dropna().to_numpy().dtype, np.number):
            figs.append((f"Dose response: {p}",
                         _dose_response(df, readouts, p, rdir / f"dose_{p.replace('.', '_')}.png")))
    if len(set(df["arm"])) > 1:
        for c in controls:
            lines += _effects_md(df, readouts, c, params)
    for title, f in figs:
        lines += [f"## {title}", "", f"![{title}]({f.name})", ""]
    if exp.sensitivity is not None:
        from .gsa import folder_sensitivity
        from .sensitivity import plot_indices, sensitivity_table

        sa = exp.sensitivity
        idx = folder_sensitivity(out)
        png = plot_indices(idx, rdir / "sensitivity.png")
        lines += [f"## Sensitivity ({sa.method}, arm `{sa.arm}`, n = {sa.n}, "
                  f"{len(exp.seed_list())} seeds averaged per sample)", "",
                  sensitivity_table(idx), "", f"![sensitivity]({png.name})", ""]
    path = rdir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
