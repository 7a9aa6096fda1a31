"""``niche validate``: run the experiments behind the validation targets V1-V12 and check
the model against the published effects.

The biology lives in data: an :class:`Arm` is one experiment arm (a scenario, a length and
overrides) and a :class:`Row` is one validation target (what it compares, the published
range, and a short check function over the arms' histories). Every (arm, seed) pair is one
task, run on a local ``dask.distributed`` cluster; a task returns only the run's history
(one row per frame: ``t_days`` plus the readouts). Seeds are 1..N in every arm, and the
same seed gives the same initial bone geometry, so effects are computed *paired by seed*:
e.g. the OVX effect of seed 3 is ``bv_tv(ovx, seed 3) / bv_tv(sham, seed 3) - 1``. Each row
reports the mean effect over seeds with a 95 % t-interval.

Quick mode (``--quick``) runs only the cheap in-vitro rows (V10, V11) with 2 seeds unless
``--rows`` / ``--replicates`` say otherwise; in-vivo arms requested in quick mode keep
their simulated days but run on a tiny 24^3 domain (unless ``--shape`` is given), which is
a smoke test of the pipeline, not a validation of the biology.

In-vitro arms (``Arm.in_vitro``) have their own well geometry: ``--shape`` and the quick
tiny shape are applied to in-vivo arms only.

Workers: each is a separate process started by a dask Nanny with ``NUMBA_NUM_THREADS=1``
placed in ``distributed.nanny.pre-spawn-environ`` (the dask setting documented for
variables that must be set before the worker process starts and imports anything), so N
single-threaded simulations share N cores without oversubscription.

Public API: :data:`ARMS`, :data:`ROWS`, :class:`Arm`, :class:`Row`, :class:`RowResult`,
:func:`run_validation` -> :class:`Report`, and for the command line :func:`add_arguments`
and :func:`main`. Row helpers: :func:`value_at`, :func:`window_mean`,
:func:`window_slope`, :func:`per_seed`, :func:`paired_values`, :func:`paired_rel_effect`,
:func:`paired_ratio`, :func:`prevented_fraction`, :func:`mean_ci`.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import os
import platform
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .scenario import MAX_SEED, load_scenario, parse_overrides

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "Arm", "Row", "RowResult", "Report", "ARMS", "ROWS", "QUICK_ROWS", "QUICK_SHAPE", "FULL_SHAPE",
    "MissingReadout", "MeanCI", "run_validation", "run_tasks", "local_client", "evaluate",
    "add_arguments", "main", "parse_rows", "parse_shape", "value_at", "window_mean",
    "window_slope", "per_seed", "paired_values", "paired_rel_effect", "paired_ratio",
    "prevented_fraction", "mean_ci", "evaluate_saved", "seed_text",
]

NAN = float("nan")
#: rows run by ``--quick`` when no ``--rows`` are given (cheap in-vitro arms)
QUICK_ROWS: tuple[str, ...] = ("V10", "V11")
QUICK_REPLICATES = 2
DEFAULT_REPLICATES = 5
#: domain of in-vivo arms in quick mode (unless ``--shape``)
QUICK_SHAPE: tuple[int, int, int] = (24, 24, 24)
#: domain of in-vivo arms in a full run (unless ``--shape``): 480 um cubes, 0.11 mm^3,
#: ~20 trabeculae; five seeds of all arms take ~20 min on 2 cores
FULL_SHAPE: tuple[int, int, int] = (48, 48, 48)
MIN_SHAPE = 8


# ---------------------------------------------------------------------------------------
# data model
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """One experiment arm: a scenario run for ``days`` with ``overrides`` (dotted keys).

    ``in_vitro`` arms have their own well geometry and never get a domain-shape override.
    """

    name: str
    scenario: str
    days: float
    overrides: Mapping[str, Any] = field(default_factory=dict)
    in_vitro: bool = False


@dataclass
class RowResult:
    """Outcome of one row: the headline effect with its 95 % CI, PASS/FAIL and a detail
    line listing every sub-criterion. ``unit`` says how ``effect`` prints: ``"%"`` (a
    fraction, printed x100), ``"x"`` (a fold), ``"d"`` (days) or ``""``."""

    effect: float
    ci: tuple[float, float]
    passed: bool
    detail: str
    unit: str = "%"


Histories = Mapping[str, Sequence["pd.DataFrame"]]


@dataclass(frozen=True)
class Row:
    """One validation target. ``check(arms)`` gets ``{arm name: [history per seed]}``
    (seed order 1..N in every arm, so index i pairs the same seed) for the arms listed in
    ``arms`` and returns a :class:`RowResult`."""

    id: str
    condition: str
    readout: str
    expected: str
    arms: tuple[str, ...]
    check: Callable[[Histories], RowResult]
    criterion: str = ""


class MissingReadout(LookupError):
    """A readout column a row needs is not in a history."""

    def __init__(self, col: str):
        super().__init__(f"readout {col} missing")
        self.col = col


# ---------------------------------------------------------------------------------------
# statistics and history helpers
# ---------------------------------------------------------------------------------------
class MeanCI(NamedTuple):
    """Mean of per-seed samples with a two-sided t confidence interval."""

    mean: float
    lo: float
    hi: float
    n: int
    note: str = ""

    @property
    def ci(self) -> tuple[float, float]:
        return (self.lo, self.hi)


def mean_ci(samples: Sequence[float] | np.ndarray, level: float = 0.95) -> MeanCI:
    """Mean and ``level`` Student-t interval (``mean +/- t_{n-1} * sd / sqrt(n)``).

    NaN samples (undefined per-seed values) are dropped and counted in ``note``. With one
    sample the interval is NaN and ``note`` says so; criteria that need a CI then fail.
    """
    from scipy import stats

    x = np.asarray(samples, dtype=float).ravel()
    notes = []
    bad = np.isnan(x)
    if bad.any():
        notes.append(f"{int(bad.sum())} of {x.size} samples undefined (NaN), dropped")
        x = x[~bad]
    n = int(x.size)
    if n == 0:
        return MeanCI(NAN, NAN, NAN, 0, "; ".join(notes + ["no samples"]))
    m = float(x.mean())
    if n == 1:
        return MeanCI(m, NAN, NAN, 1, "; ".join(notes + ["n=1: no confidence interval"]))
    if not np.isfinite(x).all():
        return MeanCI(m, NAN, NAN, n, "; ".join(notes + ["infinite samples: no CI"]))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return MeanCI(m, m - half, m + half, n, "; ".join(notes))


def _column(hist: "pd.DataFrame", col: str) -> np.ndarray:
    if col not in hist.columns:
        raise MissingReadout(col)
    return hist[col].to_numpy(dtype=float)


def _times(hist: "pd.DataFrame") -> np.ndarray:
    if "t_days" not in hist.columns:
        raise MissingReadout("t_days")
    t = hist["t_days"].to_numpy(dtype=float)
    if t.size == 0:
        raise ValueError("empty history (no frames)")
    return t


def value_at(hist: "pd.DataFrame", col: str, day: float, tol: float = 1.0) -> float:
    """Value of ``col`` at the frame nearest to ``day`` (that frame must lie within
    ``tol`` days of it)."""
    v = _column(hist, col)
    t = _times(hist)
    i = int(np.argmin(np.abs(t - day)))
    if abs(t[i] - day) > tol:
        raise ValueError(f"no frame within {tol:g} d of day {day:g} "
                         f"(frames at {t[0]:g}..{t[-1]:g} d)")
    return float(v[i])


def _window(hist: "pd.DataFrame", col: str, d0: float, d1: float) -> tuple[np.ndarray, np.ndarray]:
    v = _column(hist, col)
    t = _times(hist)
    m = (t >= d0 - 1e-9) & (t <= d1 + 1e-9)
    if not m.any():
        raise ValueError(f"no frame in days {d0:g}-{d1:g} (frames at {t[0]:g}..{t[-1]:g} d)")
    return t[m], v[m]


def window_mean(hist: "pd.DataFrame", col: str, d0: float, d1: float) -> float:
    """Mean of ``col`` over the frames with ``d0 <= t_days <= d1``."""
    return float(_window(hist, col, d0, d1)[1].mean())


def window_slope(hist: "pd.DataFrame", col: str, d0: float, d1: float) -> float:
    """Least-squares slope of ``col`` per day over the frames in ``[d0, d1]``."""
    t, v = _window(hist, col, d0, d1)
    if t.size < 2:
        raise ValueError(f"need 2 frames in days {d0:g}-{d1:g} for a slope, got {t.size}")
    return float(np.polyfit(t, v, 1)[0])


def _measure(hist: "pd.DataFrame", col: str, day: float | None,
             window: tuple[float, float] | None) -> float:
    if (day is None) == (window is None):
        raise TypeError("give exactly one of day= or window=")
    return value_at(hist, col, day) if window is None else window_mean(hist, col, *window)


def per_seed(arms: Histories, arm: str, fn: Callable[["pd.DataFrame"], float]) -> np.ndarray:
    """``fn(history)`` for every seed of ``arm``."""
    return np.array([fn(h) for h in arms[arm]], dtype=float)


def paired_values(arms: Histories, a: str, b: str, col: str, day: float | None = None, *,
                  window: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed values of ``col`` in arms ``a`` and ``b`` at ``day`` (nearest frame) or
    averaged over ``window=(d0, d1)``; element i of both is seed i."""
    ha, hb = arms[a], arms[b]
    if len(ha) != len(hb):
        raise ValueError(f"arms {a} and {b} have {len(ha)} and {len(hb)} seeds: cannot pair")
    va = np.array([_measure(h, col, day, window) for h in ha], dtype=float)
    vb = np.array([_measure(h, col, day, window) for h in hb], dtype=float)
    return va, vb


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(a, dtype=float) / np.asarray(b, dtype=float)


def paired_rel_effect(arms: Histories, a: str, b: str, col: str, day: float | None = None, *,
                      window: tuple[float, float] | None = None) -> np.ndarray:
    """Per-seed relative effect ``a / b - 1`` of ``col`` (at ``day`` or over ``window``)."""
    va, vb = paired_values(arms, a, b, col, day, window=window)
    return _div(va, vb) - 1.0


def paired_ratio(arms: Histories, a: str, b: str, col: str, day: float | None = None, *,
                 window: tuple[float, float] | None = None) -> np.ndarray:
    """Per-seed ratio ``a / b`` of ``col`` (at ``day`` or over ``window``)."""
    va, vb = paired_values(arms, a, b, col, day, window=window)
    return _div(va, vb)


def prevented_fraction(arms: Histories, treated: str, disease: str, control: str,
                       col: str = "bv_tv", day: float = 28) -> np.ndarray:
    """Per-seed fraction of the disease effect the treatment prevents:
    ``(treated - disease) / (control - disease)`` at ``day`` (1: fully prevented)."""
    vt, vd = paired_values(arms, treated, disease, col, day)
    vc, _ = paired_values(arms, control, disease, col, day)
    return _div(vt - vd, vc - vd)


def _pct(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{100 * x:+.1f} %"


def fmt_value(x: float, unit: str = "%") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if unit == "%":
        return _pct(x)
    if unit == "x":
        return f"{x:.2f}x"
    if unit == "d":
        return f"{x:.2f} d"
    return f"{x:.4g}"


def fmt_ci(mc: MeanCI | RowResult, unit: str = "%") -> str:
    """``"-18.2 % [-22.0 %, -14.4 %]"`` (``[no CI]`` when the interval is undefined)."""
    if isinstance(mc, RowResult):
        m, (lo, hi), unit = mc.effect, mc.ci, mc.unit
        note = ""
    else:
        m, lo, hi, note = mc.mean, mc.lo, mc.hi, mc.note
    s = fmt_value(m, unit)
    if np.isfinite(lo) and np.isfinite(hi):
        s += f" [{fmt_value(lo, unit)}, {fmt_value(hi, unit)}]"
    else:
        s += " [no CI]"
    if note:
        s += f" ({note})"
    return s


class _Checks:
    """Accumulates sub-criteria of a row into a verdict and a detail line."""

    def __init__(self):
        self.parts: list[str] = []
        self.ok = True

    def add(self, label: str, value: MeanCI | float | str, ok: bool, criterion: str,
            unit: str = "%") -> bool:
        ok = bool(ok)
        if isinstance(value, MeanCI):
            shown = fmt_ci(value, unit)
        elif isinstance(value, str):
            shown = value
        else:
            shown = fmt_value(value, unit)
        self.parts.append(f"{label} {shown} {criterion}: {'ok' if ok else 'NO'}")
        self.ok &= ok
        return ok

    def result(self, headline: MeanCI, unit: str = "%") -> RowResult:
        return RowResult(headline.mean, headline.ci, self.ok, "; ".join(self.parts), unit)


def _gt0(mc: MeanCI) -> bool:
    return bool(np.isfinite(mc.lo) and mc.lo > 0)


def _lt0(mc: MeanCI) -> bool:
    return bool(np.isfinite(mc.hi) and mc.hi < 0)


def _within(x: float, lo: float, hi: float) -> bool:
    return bool(np.isfinite(x) and lo <= x <= hi)


# ---------------------------------------------------------------------------------------
# the validation table (biology.md section 3)
# ---------------------------------------------------------------------------------------
def _a(name, scenario, days, overrides=None, in_vitro=False) -> Arm:
    return Arm(name, scenario, float(days), dict(overrides or {}), in_vitro)


#: experiment arms; rows refer to them by name
ARMS: dict[str, Arm] = {a.name: a for a in [
    _a("sham", "sham", 84),
    _a("ovx", "ovx", 84),
    _a("ovx_scfa", "ovx_scfa", 28),
    _a("ovx_probiotic", "ovx_probiotic", 28),
    _a("ovx_il2", "ovx_il2", 56),
    _a("sham_butyrate", "sham_butyrate", 28),
    _a("vitro", "invitro_osteoclastogenesis", 7, in_vitro=True),
    _a("vitro_il2", "invitro_osteoclastogenesis_il2", 7, in_vitro=True),
    _a("vitro_treg_lo", "invitro_osteoclastogenesis_treg", 7,
       {"invitro.treg_per_monocyte": 0.1}, in_vitro=True),
    _a("vitro_treg_hi", "invitro_osteoclastogenesis_treg", 7,
       {"invitro.treg_per_monocyte": 0.5}, in_vitro=True),
]}


def _v1(arms: Histories) -> RowResult:
    c = _Checks()
    e = mean_ci(paired_rel_effect(arms, "ovx", "sham", "bv_tv", 28))
    c.add("BV/TV d28", e, _within(e.mean, -0.30, -0.15), "mean in [-30 %, -15 %]")
    return c.result(e)


def _v2(arms: Histories) -> RowResult:
    c = _Checks()
    e28 = mean_ci(paired_rel_effect(arms, "ovx", "sham", "bv_tv", 28))
    e56 = mean_ci(paired_rel_effect(arms, "ovx", "sham", "bv_tv", 56))
    c.add("(a) BV/TV d28", e28, _lt0(e28), "< 0 (CI)")
    c.add("(b) d56", e56, e56.mean <= e28.mean, "<= d28 (mean)")
    # (c) a new steady state: the OVX effect (paired against sham, so that both arms'
    # common remodelling fluctuations cancel) changes between weeks 8 and 12 by less than
    # half of what it changed in the first 4 weeks
    e84 = mean_ci(paired_rel_effect(arms, "ovx", "sham", "bv_tv", 84))
    late = e84.mean - e56.mean
    c.add("(c) effect change d56-84", f"{fmt_value(late)} vs d0-28 {fmt_value(e28.mean)}",
          abs(late) < 0.5 * abs(e28.mean), "|change| < 0.5 |d28 effect|")
    return c.result(e56)


def _v3(arms: Histories) -> RowResult:
    c = _Checks()
    w = (21, 28)
    oc = mean_ci(paired_rel_effect(arms, "ovx", "sham", "oc_s_bs", window=w))
    ob = mean_ci(paired_rel_effect(arms, "ovx", "sham", "ob_s_bs", window=w))
    bv = mean_ci(paired_rel_effect(arms, "ovx", "sham", "bv_tv", 28))
    c.add("Oc.S/BS d21-28", oc, _gt0(oc), "> 0 (CI)")
    c.add("Ob.S/BS d21-28", ob, _gt0(ob), "> 0 (CI)")
    c.add("BV/TV d28", bv, bv.mean < 0, "< 0 (mean)")
    return c.result(oc)


def _v4(arms: Histories) -> RowResult:
    c = _Checks()
    w = (21, 28)
    n = mean_ci(paired_rel_effect(arms, "ovx", "sham", "n_tnf_tcell", window=w))
    r = mean_ci(paired_ratio(arms, "ovx", "sham", "tnf_per_producer_molecules_per_s",
                             window=w))
    c.add("TNF+ T cells d21-28", n, _gt0(n), "> 0 (CI)")
    c.add("TNF per producer ratio", r, _within(r.mean, 0.95, 1.05), "mean in [0.95, 1.05]",
          unit="x")
    return c.result(n)


def _prevention_row(treated: str, extra: bool) -> Callable[[Histories], RowResult]:
    def check(arms: Histories) -> RowResult:
        c = _Checks()
        pf = mean_ci(prevented_fraction(arms, treated, "ovx", "sham", "bv_tv", 28))
        c.add("BV/TV loss prevented d28", pf, pf.mean >= 0.5, ">= 50 % (mean)")
        if extra:
            w = (14, 28)
            oc = mean_ci(paired_rel_effect(arms, treated, "ovx", "n_osteoclast", window=w))
            fo = mean_ci(paired_rel_effect(arms, treated, "ovx", "formed_mm3_per_day",
                                           window=w))
            c.add("osteoclasts d14-28", oc, _lt0(oc), "< 0 (CI)")
            c.add("formation d14-28", fo, _within(fo.mean, -0.15, 0.15),
                  "mean in [-15 %, +15 %]")
        return c.result(pf)

    return check


def _v7(arms: Histories) -> RowResult:
    c = _Checks()
    e = mean_ci(paired_rel_effect(arms, "ovx_il2", "ovx", "bv_tv", 56))
    gain = mean_ci(per_seed(arms, "ovx_il2",
                            lambda h: value_at(h, "bv_tv", 56) - value_at(h, "bv_tv", 28)))
    c.add("BV/TV d56 vs OVX", e, _gt0(e), "> 0 (CI)")
    c.add("IL-2 arm BV/TV d56 - d28", gain, _gt0(gain), "> 0 (CI)", unit="")
    return c.result(e)


def _v8(arms: Histories) -> RowResult:
    c = _Checks()
    w = (49, 56)
    tr = mean_ci(paired_ratio(arms, "ovx_il2", "ovx", "n_treg_cxcr3", window=w))
    il10 = mean_ci(paired_rel_effect(arms, "ovx_il2", "ovx", "n_ilc2_il10", window=w))
    cgrp = mean_ci(paired_rel_effect(arms, "ovx_il2", "ovx", "n_ilc2_cgrp", window=w))
    c.add("CXCR3+ Treg fold d49-56", tr, bool(tr.mean >= 2), ">= 2x (mean)", unit="x")
    c.add("IL-10+ ILC2 d49-56", il10, _gt0(il10), "> 0 (CI)")
    c.add("CGRP+ ILC2 d49-56", cgrp, _gt0(cgrp), "> 0 (CI)")
    return c.result(tr, unit="x")


def _v9(arms: Histories) -> RowResult:
    c = _Checks()
    bv = mean_ci(paired_rel_effect(arms, "sham_butyrate", "sham", "bv_tv", 28))
    fo = mean_ci(paired_rel_effect(arms, "sham_butyrate", "sham", "formed_mm3_per_day",
                                   window=(14, 28)))
    tr = mean_ci(paired_rel_effect(arms, "sham_butyrate", "sham", "n_treg", window=(21, 28)))
    c.add("BV/TV d28", bv, _gt0(bv), "> 0 (CI)")
    c.add("formation d14-28", fo, _gt0(fo), "> 0 (CI)")
    c.add("Tregs d21-28", tr, _gt0(tr), "> 0 (CI)")
    return c.result(bv)


def _onset(h: "pd.DataFrame") -> float:
    t = _times(h)
    v = _column(h, "n_oc_multinuc")
    hit = np.nonzero(v >= 1)[0]
    return float(t[hit[0]]) if hit.size else NAN


def _v10(arms: Histories) -> RowResult:
    c = _Checks()
    onsets = per_seed(arms, "vitro", _onset)
    on = mean_ci(onsets)
    by5 = per_seed(arms, "vitro", lambda h: value_at(h, "n_oc_multinuc", 5))
    c.add("onset of >=3-nuclei osteoclasts", on,
          on.n == onsets.size and _within(on.mean, 2, 5), "mean in [2, 5] d", unit="d")
    c.add("seeds with osteoclasts at d5", f"{int((by5 > 0).sum())}/{by5.size}",
          bool((by5 > 0).all()), "all")
    return c.result(on, unit="d")


def _v11(arms: Histories) -> RowResult:
    c = _Checks()
    e = mean_ci(paired_rel_effect(arms, "vitro_il2", "vitro", "n_oc_multinuc", 7))
    c.add("multinucleated OCs d7", e, _lt0(e), "< 0 (CI)")
    return c.result(e)


def _v12(arms: Histories) -> RowResult:
    c = _Checks()
    red_lo = 1 - paired_ratio(arms, "vitro_treg_lo", "vitro", "resorbed_area_um2", 7)
    red_hi = 1 - paired_ratio(arms, "vitro_treg_hi", "vitro", "resorbed_area_um2", 7)
    hi = mean_ci(red_hi)
    lo = mean_ci(red_lo)
    dose = mean_ci(red_hi - red_lo)
    oc = mean_ci(paired_rel_effect(arms, "vitro_treg_hi", "vitro", "n_oc_multinuc", 7))
    c.add("resorption reduction, hi dose", hi, _within(hi.mean, 0.5, 0.9),
          "mean in [50 %, 90 %]")
    c.add("hi - lo dose reduction", dose, dose.mean > 0,
          f"> 0 (paired mean; lo dose {fmt_value(lo.mean)})")
    c.add("multinucleated OCs, hi dose", oc, oc.mean < 0, "< 0 (mean)")
    return c.result(hi)


_SPEC = {  # biology.md section 3
    "V1": ("OVX vs sham, 4 weeks", "trabecular BV/TV",
           "-15 % to -30 % (Bouxsein 2005 JBMR 10.1359/JBMR.050307)"),
    "V2": ("OVX vs sham, time course", "BV/TV over 12 weeks",
           "loss by 2-4 weeks, progressive, then a new steady state"),
    "V3": ("OVX vs sham", "Oc.S/BS, Ob.S/BS", "both up (high turnover), net loss"),
    "V4": ("OVX vs sham", "TNF+ T cells in marrow",
           "number up; TNF per producing cell unchanged"),
    "V5": ("OVX + propionate/butyrate from day 0 vs OVX", "BV/TV; osteoclasts; formation",
           "most of the loss prevented; osteoclasts down; formation unchanged"),
    "V6": ("OVX + probiotic from day 0 vs OVX", "BV/TV", "loss prevented"),
    "V7": ("OVX, low-dose IL-2 weeks 4-8 vs untreated OVX", "BV/TV at week 8",
           "above untreated OVX and above its own week-4 value"),
    "V8": ("as V7", "CXCR3+ Tregs; IL-10+ and CGRP+ ILC2s", "up (Tregs several-fold)"),
    "V9": ("intact + butyrate vs intact", "BV/TV; formation; marrow Tregs",
           "up through formation; Tregs up"),
    "V10": ("culture: monocytes + M-CSF + RANKL", "multinucleated (>= 3 nuclei) OCs",
            "appear by day 3-5"),
    "V11": ("culture as V10 + IL-2", "osteoclasts", "fewer than without IL-2"),
    "V12": ("culture as V10 + Tregs", "osteoclasts / resorption",
            "dose-dependently fewer, up to ~80 % less resorption"),
}
_CRIT = {
    "V1": "paired BV/TV effect at d28: mean in [-30 %, -15 %]",
    "V2": "d28 effect < 0 (CI); d56 <= d28; |effect d84 - d56| < 0.5 |effect d28|",
    "V3": "d21-28 Oc.S/BS and Ob.S/BS up (CI); BV/TV d28 down",
    "V4": "d21-28 TNF+ T cells up (CI); TNF per producer ratio in [0.95, 1.05]",
    "V5": "prevented fraction >= 50 %; OCs d14-28 down (CI); formation within +/-15 %",
    "V6": "prevented fraction at d28 >= 50 %",
    "V7": "BV/TV d56 vs OVX up (CI); own d56 - d28 > 0 (CI)",
    "V8": "d49-56 CXCR3+ Treg fold >= 2; IL-10+ and CGRP+ ILC2 up (CI)",
    "V9": "BV/TV d28, formation d14-28, Tregs d21-28 up (CI)",
    "V10": "mean onset in [2, 5] d; every seed has OCs at d5",
    "V11": "d7 multinucleated OCs down (CI)",
    "V12": "hi-dose resorption reduction in [50 %, 90 %]; hi > lo; OCs down",
}
_ROW_ARMS = {
    "V1": ("ovx", "sham"), "V2": ("ovx", "sham"), "V3": ("ovx", "sham"),
    "V4": ("ovx", "sham"), "V5": ("ovx_scfa", "ovx", "sham"),
    "V6": ("ovx_probiotic", "ovx", "sham"), "V7": ("ovx_il2", "ovx"),
    "V8": ("ovx_il2", "ovx"), "V9": ("sham_butyrate", "sham"), "V10": ("vitro",),
    "V11": ("vitro_il2", "vitro"), "V12": ("vitro_treg_lo", "vitro_treg_hi", "vitro"),
}
_CHECKS = {"V1": _v1, "V2": _v2, "V3": _v3, "V4": _v4,
           "V5": _prevention_row("ovx_scfa", True), "V6": _prevention_row("ovx_probiotic", False),
           "V7": _v7, "V8": _v8, "V9": _v9, "V10": _v10, "V11": _v11, "V12": _v12}

#: validation rows V1-V12, in order
ROWS: tuple[Row, ...] = tuple(
    Row(k, *_SPEC[k], arms=_ROW_ARMS[k], check=_CHECKS[k], criterion=_CRIT[k]) for k in _SPEC
)


# ---------------------------------------------------------------------------------------
# input parsing
# ---------------------------------------------------------------------------------------
def parse_rows(rows: str | Sequence[str] | None, table: Sequence[Row] = ROWS) -> list[Row]:
    """Rows by id (``"V1,V5"`` or ``["V1", "V5"]``, case-insensitive), in table order;
    ``None``: all. Raises ValueError naming an unknown id."""
    if rows is None:
        return list(table)
    if isinstance(rows, str):
        rows = rows.split(",")
    by_id = {r.id.upper(): r for r in table}
    want = []
    for raw in rows:
        rid = str(raw).strip().upper()
        if not rid:
            continue
        if rid not in by_id:
            raise ValueError(f"unknown validation row {str(raw).strip()!r} "
                             f"(known: {', '.join(r.id for r in table)})")
        want.append(rid)
    if not want:
        raise ValueError("no validation rows selected")
    return [r for r in table if r.id.upper() in want]


def parse_shape(shape: str | Sequence[int] | None) -> tuple[int, int, int] | None:
    """``"Z,Y,X"`` (or ``ZxYxX``, or one number for a cube) -> ``(Z, Y, X)``; each at
    least 8 voxels. Raises ValueError naming the bad value."""
    if shape is None:
        return None
    raw = shape
    if isinstance(shape, str):
        parts = [p for p in shape.replace("x", ",").replace(" ", ",").split(",") if p]
    else:
        parts = list(shape)
    try:
        dims = [int(p) for p in parts]
        if any(float(p) != d for p, d in zip(parts, dims)):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"bad --shape {raw!r}: expected three integers Z,Y,X") from None
    if len(dims) == 1:
        dims = dims * 3
    if len(dims) != 3:
        raise ValueError(f"bad --shape {raw!r}: expected three integers Z,Y,X")
    if any(d < MIN_SHAPE for d in dims):
        raise ValueError(f"bad --shape {raw!r}: every dimension must be >= {MIN_SHAPE} voxels")
    return (dims[0], dims[1], dims[2])


def task_overrides(arm: Arm, shape: Sequence[int] | None,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The overrides one task runs with: the arm's, then ``extra`` (``--set``, for every
    arm; it wins over the arm's own), plus the domain shape for in-vivo arms."""
    ov = dict(arm.overrides)
    ov.update(extra or {})
    if shape is not None and not arm.in_vitro:
        ov["domain.shape_voxels"] = [int(s) for s in shape]
    return ov


# ---------------------------------------------------------------------------------------
# running tasks on dask
# ---------------------------------------------------------------------------------------
def _run_task(arm: Arm, seed: int, shape: tuple[int, int, int] | None,
              extra: Mapping[str, Any] | None = None) -> dict:
    """Worker side: run one (arm, seed) in memory; return its history (or the error)."""
    t0 = time.perf_counter()
    try:
        from niche.runner import run

        res = run(arm.scenario, write=False, seed=seed, days=arm.days,
                  overrides=task_overrides(arm, shape, extra), progress=False)
        hist = res.history.reset_index(drop=True)
        meta: dict[str, Any] = {}
        try:
            import numba

            meta["numba_threads"] = int(numba.config.NUMBA_NUM_THREADS)
            meta["shape"] = tuple(int(s) for s in res.model.lattice.shape)
            meta["voxel_um"] = float(res.model.scenario.domain.voxel_um)
        except Exception:  # noqa: BLE001 - metadata is best effort
            pass
        del res
        return {"ok": True, "history": hist, "meta": meta, "wall_s": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001 - reported per (arm, seed)
        return {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0],
                "traceback": traceback.format_exc(), "wall_s": time.perf_counter() - t0}


@contextmanager
def _restored_environ() -> Iterator[None]:
    # LocalCluster's nannies live in this process and write their pre-spawn environment
    # into os.environ before spawning; keep this process's own environment as it was.
    saved = dict(os.environ)
    try:
        yield
    finally:
        for k in set(os.environ) - set(saved):
            del os.environ[k]
        for k, v in saved.items():
            if os.environ.get(k) != v:
                os.environ[k] = v


@contextmanager
def local_client(workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on a fresh ``LocalCluster`` of ``workers`` single-threaded
    worker processes (default ``os.cpu_count()``), each started with
    ``NUMBA_NUM_THREADS=1`` via ``distributed.nanny.pre-spawn-environ``."""
    import dask
    from distributed import Client, LocalCluster

    n = int(workers or os.cpu_count() or 1)
    # The workers are up when LocalCluster() returns: restore this process's environment
    # right away (and again at the end, should a nanny have restarted a worker).
    with _restored_environ():
        with _restored_environ(), dask.config.set(
                {"distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": "1"}):
            # a NUMBA_NUM_THREADS already in this process's environment would win over
            # pre-spawn-environ in the spawned workers: set it here too (restored above)
            os.environ["NUMBA_NUM_THREADS"] = "1"
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


@dataclass
class TaskOutcome:
    arm: str
    seed: int
    ok: bool
    history: "pd.DataFrame | None" = None
    error: str = ""
    traceback: str = ""
    wall_s: float = NAN
    meta: dict = field(default_factory=dict)


def run_tasks(client: Any, tasks: Sequence[tuple[Arm, int]],
              shape: tuple[int, int, int] | None = None,
              progress: bool = False,
              extra: Mapping[str, Any] | None = None) -> list[TaskOutcome]:
    """Run every (arm, seed) on the dask ``client`` (with ``extra`` overrides on every arm);
    outcomes in the order of ``tasks``.

    A task that raises (or whose worker dies) gives ``ok=False`` with the error, never an
    exception here."""
    from distributed import as_completed

    futs = {}
    for i, (arm, seed) in enumerate(tasks):
        key = f"niche-validate-{arm.name}-seed{seed}-{uuid.uuid4().hex[:8]}"
        fut = client.submit(_run_task, arm, int(seed), shape, dict(extra or {}), key=key,
                            pure=False)
        futs[fut] = i
    out: list[TaskOutcome | None] = [None] * len(tasks)
    for done, fut in enumerate(as_completed(list(futs)), start=1):
        i = futs[fut]
        arm, seed = tasks[i]
        try:
            r = fut.result()
        except Exception as e:  # noqa: BLE001 - worker died, cancelled, ...
            r = {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0],
                 "traceback": "", "wall_s": NAN}
        oc = TaskOutcome(arm.name, int(seed), bool(r["ok"]), r.get("history"),
                         r.get("error", ""), r.get("traceback", ""),
                         float(r.get("wall_s", NAN)), r.get("meta", {}))
        out[i] = oc
        if progress:
            state = f"{oc.wall_s:.1f} s" if oc.ok else f"FAILED: {oc.error}"
            print(f"[{done}/{len(tasks)}] {arm.name} seed {seed}: {state}", file=sys.stderr,
                  flush=True)
        fut.release()
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------
# evaluation and report
# ---------------------------------------------------------------------------------------
def evaluate(row: Row, arms: Histories) -> RowResult:
    """Run a row's check; a missing readout or any error in the check is a FAIL with the
    reason as detail, never an exception."""
    try:
        missing = [a for a in row.arms if a not in arms]
        if missing:
            return RowResult(NAN, (NAN, NAN), False, f"no data for arm(s) {', '.join(missing)}")
        return row.check(arms)
    except MissingReadout as e:
        return RowResult(NAN, (NAN, NAN), False, str(e))
    except Exception as e:  # noqa: BLE001
        return RowResult(NAN, (NAN, NAN), False,
                         f"check failed: {type(e).__name__}: {e}".splitlines()[0])


def _md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


@dataclass
class Report:
    """What :func:`run_validation` returns (and writes to ``out_dir/report.md``)."""

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


def _versions() -> dict[str, str]:
    from importlib import metadata

    v = {"python": platform.python_version()}
    for pkg in ("niche", "numpy", "numba", "pandas", "scipy", "dask", "distributed",
                "matplotlib", "mesa"):
        try:
            v[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            v[pkg] = "not installed"
    try:
        v["git commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        v["git commit"] = "unknown"
    v["platform"] = platform.platform()
    v["cpus"] = str(os.cpu_count())
    return v


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
    for k, v in _versions().items():
        L.append(f"- {k}: {v}")
    path = out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path


# ---------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------
def _needed_arms(sel: Sequence[Row], arms: Mapping[str, Arm]) -> list[str]:
    """The arms behind rows ``sel``, in first-use order; an undefined arm is a ValueError."""
    needed: list[str] = []
    for r in sel:
        for a in r.arms:
            if a not in arms:
                raise ValueError(f"row {r.id} needs arm {a!r}, which is not defined")
            if a not in needed:
                needed.append(a)
    return needed


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


def evaluate_saved(paths: Sequence[str | Path], rows: str | Sequence[str] | None = None,
                   out_dir: str | Path | None = "validation", *, table: Sequence[Row] = ROWS,
                   arms: Mapping[str, Arm] | None = None) -> Report:
    """Evaluate ``rows`` (default all) on the histories saved by earlier validations
    (their ``histories.csv``), pooling the seeds of every file: no simulation runs.

    Pooling disjoint seed blocks (``--first-seed``) gives a larger sample: e.g. seeds 1-5
    and 6-10 evaluate as 10 seeds. A seed present in two files, an arm missing from all
    of them, or arms of one evaluation with different seeds (rows pair arms by seed) is a
    ValueError with a one-line message, raised before anything is written; so is an
    ``out_dir`` whose ``histories.csv`` is one of the inputs."""
    import pandas as pd

    t0 = time.perf_counter()
    arms = dict(ARMS if arms is None else arms)
    sel = parse_rows(rows, table)
    files = [Path(f) for f in paths]
    if not files:
        raise ValueError("--from needs at least one histories.csv")
    if out_dir is not None:
        target = (Path(out_dir) / "histories.csv").resolve()
        for f in files:
            if f.resolve() == target:
                raise ValueError(f"--from {f}: the report in {out_dir} would overwrite it; "
                                 "choose another --out")
    needed = _needed_arms(sel, arms)
    runs: dict[tuple[str, int], tuple["pd.DataFrame", Path]] = {}
    for f in files:
        try:
            d = pd.read_csv(f)
        except FileNotFoundError:
            raise ValueError(f"--from {f}: no such file") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                IsADirectoryError) as e:
            raise ValueError(f"--from {f}: not a histories CSV ({type(e).__name__})") from None
        miss = [c for c in ("arm", "seed", "t_days") if c not in d.columns]
        if miss:
            raise ValueError(f"--from {f}: not a niche validate histories.csv "
                             f"(no column {miss[0]!r})")
        for a in d["arm"].astype(str).unique():
            if a not in needed:
                continue
            da = d[d["arm"].astype(str) == a]
            da = da.loc[:, da.notna().any()]  # readouts this arm never has (in vitro/vivo)
            for seed, g in da.groupby("seed", sort=True):
                key = (a, int(seed))
                if key in runs:
                    raise ValueError(f"--from {f}: arm {a} seed {int(seed)} is also in "
                                     f"{runs[key][1]}: pool disjoint blocks of seeds")
                g = g.drop(columns=["arm", "seed"]).sort_values("t_days", kind="stable")
                runs[key] = (g.reset_index(drop=True), f)
    seeds_of = {a: sorted(s for (b, s) in runs if b == a) for a in needed}
    for a in needed:
        if not seeds_of[a]:
            row = next(r.id for r in sel if a in r.arms)
            raise ValueError(f"arm {a} (row {row}) is in none of the --from files; "
                             "pick rows with --rows")
    ref = needed[0]
    for a in needed:
        if seeds_of[a] != seeds_of[ref]:
            raise ValueError(f"arm {a} has seeds {seed_text(seeds_of[a])} but arm {ref} has "
                             f"{seed_text(seeds_of[ref])}: rows pair arms by seed; pick rows "
                             "with --rows or pool files of the same rows")
    seeds = seeds_of[ref]
    histories = {a: [runs[(a, s)][0] for s in seeds] for a in needed}
    results = {r.id: evaluate(r, {a: histories[a] for a in r.arms}) for r in sel}
    rep = Report(rows=sel, results=results, arms={a: arms[a] for a in needed},
                 histories=histories, outcomes=[], replicates=len(seeds), quick=False,
                 shape=None, workers=0, seeds=seeds, sources=[str(f) for f in files])
    rep.wall_s = time.perf_counter() - t0
    if out_dir is not None:
        write_report(rep, out_dir)
    return rep


def run_validation(rows: str | Sequence[str] | None = None, replicates: int | None = None,
                   quick: bool = False, workers: int | None = None,
                   out_dir: str | Path | None = "validation",
                   shape: str | Sequence[int] | None = None, progress: bool = True, *,
                   table: Sequence[Row] = ROWS, arms: Mapping[str, Arm] | None = None,
                   client: Any = None,
                   overrides: Sequence[str] | Mapping[str, Any] | None = None,
                   first_seed: int = 1) -> Report:
    """Run the arms behind ``rows`` (ids; default all, or :data:`QUICK_ROWS` in quick mode)
    with ``replicates`` seeds each (default 5; 2 in quick mode) on a local dask cluster of
    ``workers`` processes (default ``os.cpu_count()``, at most one per task), evaluate the
    rows and write the report to ``out_dir`` (None: no report).

    ``table``/``arms`` replace :data:`ROWS`/:data:`ARMS` (tests, new experiments);
    ``client`` runs the tasks on an existing dask client instead of a new cluster.
    ``overrides`` (``["biology.osteoblast.x=1", ...]`` or a mapping) apply to every arm,
    after the arm's own: a sensitivity check of the rows. Every arm's scenario is loaded
    with them before any run starts, so a bad key fails at once.
    ``first_seed``: the seeds are ``first_seed .. first_seed + replicates - 1`` (default
    1..N); another block of seeds is an out-of-sample check of the same rows.
    Bad input raises ValueError with a one-line message.
    """
    t0 = time.perf_counter()
    own_arms = arms is not None
    arms = dict(ARMS if arms is None else arms)
    if rows is None and quick:
        rows = [r for r in QUICK_ROWS if r in {x.id for x in table}] or None
    sel = parse_rows(rows, table)
    if replicates is None:
        replicates = QUICK_REPLICATES if quick else DEFAULT_REPLICATES
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) \
            or replicates < 1:
        raise ValueError(f"bad --replicates {replicates!r}: must be an integer >= 1")
    if isinstance(first_seed, bool) or not isinstance(first_seed, (int, np.integer)) \
            or not 0 <= first_seed <= MAX_SEED - int(replicates) + 1:
        raise ValueError(f"bad --first-seed {first_seed!r}: must be an integer with "
                         f"0 <= first seed and last seed (first + replicates - 1) <= {MAX_SEED}")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers
                                or workers < 1):
        raise ValueError(f"bad --workers {workers!r}: must be an integer >= 1")
    shp = parse_shape(shape)
    if shp is None and quick:
        shp = QUICK_SHAPE
    elif shp is None and not own_arms:  # the shipped arms: the stated validation domain
        shp = FULL_SHAPE
    needed = _needed_arms(sel, arms)
    extra = parse_overrides(overrides)
    if extra:
        for a in needed:  # a bad key or value: one ConfigError naming it, before any run
            load_scenario(arms[a].scenario, task_overrides(arms[a], shp, extra))
    seeds = list(range(int(first_seed), int(first_seed) + int(replicates)))
    tasks = [(arms[a], s) for a in needed for s in seeds]
    n_workers = max(1, min(int(workers or os.cpu_count() or 1), len(tasks)))
    if progress:
        print(f"niche validate: rows {', '.join(r.id for r in sel)}; {len(needed)} arms x "
              f"{replicates} seeds = {len(tasks)} runs on {n_workers} workers",
              file=sys.stderr, flush=True)
    if client is None:
        with local_client(n_workers) as c:
            outcomes = run_tasks(c, tasks, shp, progress, extra)
    else:
        n_workers = len(client.scheduler_info().get("workers", {})) or n_workers
        outcomes = run_tasks(client, tasks, shp, progress, extra)

    failed: dict[str, list[TaskOutcome]] = {}
    histories: dict[str, list] = {a: [] for a in needed}
    for o in outcomes:
        if o.ok:
            histories[o.arm].append(o.history)
        else:
            failed.setdefault(o.arm, []).append(o)
    results: dict[str, RowResult] = {}
    for r in sel:
        bad = [o for a in r.arms for o in failed.get(a, [])]
        if bad:
            o = bad[0]
            more = f" (+{len(bad) - 1} more failed runs)" if len(bad) > 1 else ""
            results[r.id] = RowResult(NAN, (NAN, NAN), False,
                                      f"run failed: arm {o.arm} seed {o.seed}: {o.error}{more}")
        else:
            results[r.id] = evaluate(r, {a: histories[a] for a in r.arms})
    rep = Report(rows=sel, results=results, arms={a: arms[a] for a in needed},
                 histories={a: h for a, h in histories.items() if a not in failed},
                 outcomes=outcomes, replicates=int(replicates), quick=quick, shape=shp,
                 workers=n_workers, overrides=extra, seeds=seeds)
    rep.wall_s = time.perf_counter() - t0
    if out_dir is not None:
        write_report(rep, out_dir)
    return rep


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``niche validate`` options to ``parser`` (a subcommand parser)."""
    parser.add_argument("--replicates", "-n", type=int, default=None, metavar="N",
                        help=f"seeds per arm (default {DEFAULT_REPLICATES}; "
                             f"{QUICK_REPLICATES} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: rows {','.join(QUICK_ROWS)} (cheap in-vitro arms) "
                             f"unless --rows; {QUICK_REPLICATES} seeds unless --replicates; "
                             f"in-vivo arms keep their days but run on "
                             f"{'x'.join(map(str, QUICK_SHAPE))} voxels unless --shape")
    parser.add_argument("--workers", "-w", type=int, default=None, metavar="W",
                        help="dask worker processes (default: CPU count), 1 thread each")
    parser.add_argument("--out", "-o", default="validation", metavar="DIR",
                        help="report folder (default validation/)")
    parser.add_argument("--rows", default=None, metavar="V1,V5",
                        help="comma-separated row ids (default: all V1-V12)")
    parser.add_argument("--shape", default=None, metavar="Z,Y,X",
                        help="domain of the in-vivo arms in voxels (default "
                             f"{'x'.join(map(str, FULL_SHAPE))}, or the quick shape; in-vitro "
                             "arms keep theirs)")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        help="override a scenario value in every arm (repeatable), e.g. "
                             "--set biology.osteoblast.recruit_per_mm2_per_day=20: a "
                             "sensitivity check; the report lists the overrides")
    parser.add_argument("--first-seed", type=int, default=1, metavar="S",
                        help="seeds S .. S+N-1 (default 1): another block of seeds is an "
                             "out-of-sample check of the rows")
    parser.add_argument("--from", dest="sources", action="append", default=None,
                        metavar="CSV", help="evaluate the rows on the histories.csv of earlier "
                        "validations instead of running (repeatable: seeds are pooled, e.g. "
                        "the blocks of --first-seed 1 and --first-seed 6 as 10 seeds)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-run progress lines")
    return parser


def main(args: argparse.Namespace, *, table: Sequence[Row] = ROWS,
         arms: Mapping[str, Arm] | None = None, client: Any = None) -> int:
    """``niche validate``: run, print the table, write the report. Returns 0 if every row
    passes, 1 otherwise; bad input raises ValueError (the CLI maps it to status 2)."""
    sources = getattr(args, "sources", None)
    if sources:
        clash = [o for o, on in (("--replicates", args.replicates is not None),
                                 ("--quick", args.quick), ("--shape", args.shape is not None),
                                 ("--workers", args.workers is not None),
                                 ("--set", bool(getattr(args, "set", None))),
                                 ("--first-seed", getattr(args, "first_seed", 1) != 1)) if on]
        if clash:
            raise ValueError(f"--from evaluates saved runs, so {', '.join(clash)} cannot be "
                             "used with it")
        rep = evaluate_saved(sources, rows=args.rows, out_dir=args.out, table=table,
                             arms=arms)
    else:
        rep = run_validation(rows=args.rows, replicates=args.replicates, quick=args.quick,
                             workers=args.workers, out_dir=args.out, shape=args.shape,
                             progress=not getattr(args, "quiet", False), table=table,
                             arms=arms, client=client, overrides=getattr(args, "set", None),
                             first_seed=getattr(args, "first_seed", 1))
    print(rep.table_text())
    for o in rep.failures:
        print(f"run failed: arm {o.arm} seed {o.seed}: {o.error}")
    n_pass = sum(r.passed for r in rep.results.values())
    print(f"{n_pass}/{len(rep.results)} rows pass; {rep.replicates} seeds per arm "
          f"({seed_text(rep.seeds)}); "
          f"wall {rep.wall_s:.1f} s; report {Path(args.out) / 'report.md'}")
    return 0 if rep.passed else 1
