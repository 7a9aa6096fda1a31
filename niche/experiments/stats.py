"""Statistics over run histories, for any experiment that compares arms seed by seed.

A history is one run's readouts (a DataFrame, one row per frame: ``t_days`` plus the
readout columns). Experiments run every arm with the same seeds 1..N, and the same seed
gives the same initial bone geometry, so effects are computed *paired by seed*: element i
of every per-seed array is seed i. :func:`mean_ci` reduces a per-seed array to its mean
with a Student-t interval (the quantile from :mod:`scipy.stats`).

Helpers: :func:`value_at`, :func:`window_mean`, :func:`window_slope` read one history;
:func:`per_seed`, :func:`paired_values`, :func:`paired_rel_effect`, :func:`paired_ratio`
and :func:`prevented_fraction` work on ``{arm name: [history per seed]}``;
:func:`fmt_value` and :func:`fmt_ci` print the results.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "Histories", "MissingReadout", "MeanCI", "mean_ci", "column", "times", "value_at",
    "window_mean", "window_slope", "per_seed", "paired_values", "paired_rel_effect",
    "paired_ratio", "prevented_fraction", "fmt_value", "fmt_ci",
]

NAN = float("nan")

#: ``{arm name: [history per seed]}``, seeds in the same order in every arm
Histories = Mapping[str, Sequence["pd.DataFrame"]]


class MissingReadout(LookupError):
    """A readout column a row needs is not in a history."""

    def __init__(self, col: str):
        super().__init__(f"readout {col} missing")
        self.col = col


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


def column(hist: "pd.DataFrame", col: str) -> np.ndarray:
    """Readout ``col`` of a history as floats; :class:`MissingReadout` if it has none."""
    if col not in hist.columns:
        raise MissingReadout(col)
    return hist[col].to_numpy(dtype=float)


def times(hist: "pd.DataFrame") -> np.ndarray:
    """The frame times (``t_days``) of a history; ValueError if it has no frames."""
    if "t_days" not in hist.columns:
        raise MissingReadout("t_days")
    t = hist["t_days"].to_numpy(dtype=float)
    if t.size == 0:
        raise ValueError("empty history (no frames)")
    return t


def value_at(hist: "pd.DataFrame", col: str, day: float, tol: float = 1.0) -> float:
    """Value of ``col`` at the frame nearest to ``day`` (that frame must lie within
    ``tol`` days of it)."""
    v = column(hist, col)
    t = times(hist)
    i = int(np.argmin(np.abs(t - day)))
    if abs(t[i] - day) > tol:
        raise ValueError(f"no frame within {tol:g} d of day {day:g} "
                         f"(frames at {t[0]:g}..{t[-1]:g} d)")
    return float(v[i])


def _window(hist: "pd.DataFrame", col: str, d0: float, d1: float) -> tuple[np.ndarray, np.ndarray]:
    v = column(hist, col)
    t = times(hist)
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
    """``x`` as ``unit`` says: ``"%"`` (a fraction, printed x100), ``"x"`` (a fold), ``"d"``
    (days) or ``""`` (4 significant digits)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if unit == "%":
        return _pct(x)
    if unit == "x":
        return f"{x:.2f}x"
    if unit == "d":
        return f"{x:.2f} d"
    return f"{x:.4g}"


def fmt_ci(mc: MeanCI | Any, unit: str = "%") -> str:
    """``"-18.2 % [-22.0 %, -14.4 %]"`` (``[no CI]`` when the interval is undefined).

    ``mc`` is a :class:`MeanCI` (printed in ``unit``, with its note) or a result with
    ``effect``, ``ci`` and ``unit`` attributes (such as a validation row's result), which
    prints in its own unit."""
    if isinstance(mc, MeanCI):
        m, lo, hi, note = mc.mean, mc.lo, mc.hi, mc.note
    else:
        m, (lo, hi), unit = mc.effect, mc.ci, mc.unit
        note = ""
    s = fmt_value(m, unit)
    if np.isfinite(lo) and np.isfinite(hi):
        s += f" [{fmt_value(lo, unit)}, {fmt_value(hi, unit)}]"
    else:
        s += " [no CI]"
    if note:
        s += f" ({note})"
    return s
