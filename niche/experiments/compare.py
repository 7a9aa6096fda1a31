"""Comparing the arms of an experiment on its tidy table: paired effects, corrections, power.

Every arm runs with the same seeds, so the effect of arm A against a control C on a
readout at a day is the mean over seeds of the paired difference ``A_s - C_s`` (or of the
relative difference ``A_s / C_s - 1``). For each comparison :func:`paired_effects` reports:

- the mean paired effect with a Student-t 95 % interval (:func:`scipy.stats.ttest_rel`'s
  ``confidence_interval``) and a bias-corrected and accelerated bootstrap interval
  (:func:`scipy.stats.bootstrap`, seeded);
- the paired t-test p-value, and the p-values adjusted over all comparisons of the call
  (Holm by default, or Benjamini-Hochberg: :func:`statsmodels.stats.multitest.multipletests`);
- the standardised effect (Cohen's d of the differences) and the number of replicate seeds
  that would detect it with a paired t-test at the stated power
  (:class:`statsmodels.stats.power.TTestPower`).

Swept arms are compared per parameter set against a control that has no sweep (or the
same parameter set when the control is swept too).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["paired_effects", "replicates_needed", "values_at"]

NAN = float("nan")
_ID = ("experiment", "run_id", "arm", "seed", "t_days", "readout", "value")


def param_columns(df: "pd.DataFrame") -> list[str]:
    """The swept-parameter columns of a tidy table."""
    return [c for c in df.columns if c not in _ID]


def values_at(df: "pd.DataFrame", readout: str, day: float | None = None,
              tol: float = 1e-6) -> "pd.DataFrame":
    """One value per run: ``readout`` at ``day`` (default: each run's last frame), with the
    run's arm, seed and swept parameters. Raises KeyError naming a missing readout/day."""
    sub = df[df["readout"] == readout]
    if sub.empty:
        have = sorted(df["readout"].unique())
        raise KeyError(f"no readout {readout!r} in the table (has: {', '.join(have)})")
    if day is None:
        last = sub.groupby("run_id")["t_days"].transform("max")
        sub = sub[sub["t_days"] == last]
    else:
        sub = sub[(sub["t_days"] - day).abs() < tol]
        if sub.empty:
            raise KeyError(f"readout {readout!r} has no value at day {day:g}")
    return sub.drop(columns=["readout"]).reset_index(drop=True)


def replicates_needed(effect_size: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Seeds a paired t-test needs to detect a standardised effect ``effect_size`` (mean
    difference / its standard deviation) at two-sided ``alpha`` with ``power``: the
    smallest n (at least 2) whose power (:class:`statsmodels.stats.power.TTestPower`)
    reaches it."""
    from statsmodels.stats.power import TTestPower

    d = abs(float(effect_size))
    if not math.isfinite(d) or d == 0.0:
        return NAN
    tp = TTestPower()

    def pw(n: int) -> float:
        return float(tp.power(effect_size=d, nobs=n, alpha=alpha, alternative="two-sided"))

    # power rises with n: the smallest n that reaches it, by doubling then bisection
    lo, hi = 2, 2
    while pw(hi) < power:
        lo, hi = hi, hi * 2
        if hi > 10**7:
            return NAN
    if hi == 2:
        return 2.0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if pw(mid) < power else (lo, mid)
    return float(hi)


def _key(row: "pd.Series", params: Sequence[str]) -> tuple:
    return tuple(None if _isnan(row[p]) else row[p] for p in params)


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def paired_effects(df: "pd.DataFrame", readout: str, control: str, *,
                   day: float | None = None, arms: Sequence[str] | None = None,
                   relative: bool = False, correction: str = "holm", level: float = 0.95,
                   power: float = 0.8, n_boot: int = 2000, seed: int = 0) -> "pd.DataFrame":
    """Effects of ``arms`` (default: every other arm) against ``control`` on ``readout``.

    Returns one row per (arm, parameter set): ``arm``, the swept parameters, ``n`` (paired
    seeds), ``effect``, ``ci_lo``/``ci_hi`` (t), ``boot_lo``/``boot_hi`` (BCa bootstrap),
    ``p``, ``p_adj`` (``correction``: ``"holm"`` or ``"fdr_bh"``), ``d`` (Cohen's d of the
    paired differences) and ``n_for_power`` (seeds for ``power`` at alpha 0.05).
    Raises KeyError naming a missing arm or readout, ValueError for a bad correction.
    """
    import pandas as pd
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    if correction not in ("holm", "fdr_bh"):
        raise ValueError(f"correction {correction!r}: use 'holm' or 'fdr_bh'")
    vals = values_at(df, readout, day)
    params = param_columns(vals)
    present = list(dict.fromkeys(vals["arm"]))
    for a in [control, *(arms or [])]:
        if a not in present:
            raise KeyError(f"no arm {a!r} in the table (arms: {', '.join(present)})")
    targets = [a for a in (arms or present) if a != control]
    vals = vals.assign(_pset=[_key(r, params) for _, r in vals.iterrows()])
    ctrl = vals[vals["arm"] == control]
    ctrl_sets = set(ctrl["_pset"])
    none = tuple(None for _ in params)
    rows = []
    for arm in targets:
        va = vals[vals["arm"] == arm]
        for key in dict.fromkeys(va["_pset"]):
            grp = va[va["_pset"] == key]
            ref = ctrl[ctrl["_pset"] == (key if key in ctrl_sets else none)]
            m = grp.merge(ref[["seed", "value"]], on="seed", suffixes=("", "_control"))
            a_v, c_v = m["value"].to_numpy(float), m["value_control"].to_numpy(float)
            diff = a_v / c_v - 1.0 if relative else a_v - c_v
            diff = diff[np.isfinite(diff)]
            row = {"arm": arm, **dict(zip(params, key)), "n": int(diff.size)}
            row.update(_summarise(diff, level, power, n_boot, seed, stats))
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    ok = out["p"].notna()
    out["p_adj"] = NAN
    if ok.any():
        out.loc[ok, "p_adj"] = multipletests(out.loc[ok, "p"].to_numpy(), method=correction)[1]
    out.insert(0, "readout", readout)
    out.insert(1, "control", control)
    out["relative"] = relative
    return out


def _summarise(diff: np.ndarray, level: float, power: float, n_boot: int, seed: int,
               stats) -> dict:
    n = diff.size
    res = dict(effect=float(diff.mean()) if n else NAN, ci_lo=NAN, ci_hi=NAN, boot_lo=NAN,
               boot_hi=NAN, p=NAN, d=NAN, n_for_power=NAN)
    if n < 2:
        return res
    sd = float(diff.std(ddof=1))
    if sd == 0.0:
        res.update(ci_lo=res["effect"], ci_hi=res["effect"], boot_lo=res["effect"],
                   boot_hi=res["effect"], p=1.0 if res["effect"] == 0.0 else 0.0)
        return res
    t = stats.ttest_1samp(diff, 0.0)
    ci = t.confidence_interval(confidence_level=level)
    res.update(ci_lo=float(ci.low), ci_hi=float(ci.high), p=float(t.pvalue), d=res["effect"] / sd)
    if n >= 3:
        b = stats.bootstrap((diff,), np.mean, confidence_level=level, n_resamples=n_boot,
                            method="BCa", random_state=np.random.default_rng(seed))
        res.update(boot_lo=float(b.confidence_interval.low), boot_hi=float(b.confidence_interval.high))
    res["n_for_power"] = replicates_needed(res["d"], power=power)
    return res
