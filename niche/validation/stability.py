"""How stable is a row's verdict? A bootstrap over the seeds of a validation.

A validation block of ``n`` seeds passes or fails a row by chance as well as by the model:
at a small domain a few seeds can lose or gain bone by luck. :func:`verdict_stability`
estimates, for the model that produced a report's histories, the probability that a fresh
block of ``n`` seeds passes each row: it draws ``n`` seeds with replacement from the
report's seeds (the same draw for every arm, so the arms stay paired by seed), evaluates
every row on them, and counts the passes (Efron's bootstrap of the whole validation,
Efron & Tibshirani 1993 ch. 6). The pooled seeds stand in for the model's seed
distribution, so the estimate is only as good as their number: it is meant to choose how
many seeds a validation needs (``niche validate --stability 5,8,10``), not to replace
running new blocks.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..experiments.stats import fmt_value
from .report import Report
from .run import evaluate

__all__ = ["verdict_stability", "stability_markdown", "parse_sizes", "write_stability"]


def parse_sizes(text: str | Sequence[int]) -> list[int]:
    """``"5,8,10"`` (or a list) -> [5, 8, 10]; anything else is a ValueError naming it."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for it in items:
        try:
            n = int(str(it).strip())
        except ValueError:
            raise ValueError(f"bad --stability {text!r}: {it!r} is not a whole number of "
                             "seeds") from None
        if n < 2:
            raise ValueError(f"bad --stability {text!r}: a block needs at least 2 seeds "
                             f"(got {n})")
        out.append(n)
    if not out:
        raise ValueError("--stability needs at least one block size, e.g. 5,8,10")
    return out


def verdict_stability(rep: Report, sizes: Sequence[int], draws: int = 400,
                      seed: int = 0) -> "pd.DataFrame":
    """For each row of ``rep`` and each block size in ``sizes``: the share of ``draws``
    bootstrap blocks (seeds drawn with replacement, arms kept paired) that pass the row,
    with the 5th, 50th and 95th percentiles of the row's headline effect.

    Returns a table with columns ``row, seeds, p_pass, effect_p05, effect_p50,
    effect_p95, pool`` (``pool``: the number of seeds resampled)."""
    import pandas as pd

    if draws < 1:
        raise ValueError(f"bad draws {draws!r}: must be >= 1")
    n_pool = len(rep.seeds) or rep.replicates
    if n_pool < 2:
        raise ValueError("a stability estimate needs a report with at least 2 seeds")
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        picks = rng.integers(0, n_pool, size=(draws, n))
        for row in rep.rows:
            hist = {a: rep.histories[a] for a in row.arms if a in rep.histories}
            ok = np.zeros(draws, bool)
            eff = np.full(draws, np.nan)
            for d in range(draws):
                arms = {a: [h[i] for i in picks[d]] for a, h in hist.items()}
                r = evaluate(row, arms)
                ok[d] = r.passed
                eff[d] = r.effect
            q = np.nanpercentile(eff, [5, 50, 95]) if np.isfinite(eff).any() else [np.nan] * 3
            out.append({"row": row.id, "seeds": int(n), "p_pass": float(ok.mean()),
                        "effect_p05": float(q[0]), "effect_p50": float(q[1]),
                        "effect_p95": float(q[2]), "unit": rep.results[row.id].unit,
                        "pool": int(n_pool)})
    return pd.DataFrame(out)


def stability_markdown(tab: "pd.DataFrame", draws: int) -> str:
    """The table as markdown: one line per row, one column per block size."""
    sizes = sorted(tab["seeds"].unique())
    lines = [f"Probability that a fresh block passes each row, by block size (bootstrap of "
             f"{int(tab['pool'].iloc[0])} seeds, {draws} draws per size), and the 5-95 % "
             "range of the row's headline effect over the draws.", "",
             "| row | " + " | ".join(f"P(pass), {n} seeds" for n in sizes)
             + f" | effect 5-95 % ({sizes[-1]} seeds) |",
             "|---|" + "---|" * (len(sizes) + 1)]
    for rid, g in tab.groupby("row", sort=False):
        g = g.set_index("seeds")
        last = g.loc[sizes[-1]]
        unit = last["unit"]
        lines.append(f"| {rid} | " + " | ".join(f"{g.loc[n, 'p_pass']:.2f}" for n in sizes)
                     + f" | {fmt_value(last['effect_p05'], unit)} to "
                       f"{fmt_value(last['effect_p95'], unit)} |")
    p_all = tab.groupby("seeds")["p_pass"].apply(lambda s: float(np.prod(s)))
    lines += ["", "If rows failed independently, a block would pass all of them with "
              "probability " + ", ".join(f"{p_all[n]:.2f} ({n} seeds)" for n in sizes) + "."]
    return "\n".join(lines)


def write_stability(tab: "pd.DataFrame", draws: int, out_dir: str | Path) -> Path:
    """Write ``stability.csv`` and ``stability.md`` into ``out_dir``; returns the .md path."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    tab.to_csv(d / "stability.csv", index=False)
    p = d / "stability.md"
    p.write_text("# Verdict stability\n\n" + stability_markdown(tab, draws) + "\n")
    return p
