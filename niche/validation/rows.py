"""The validation targets V1-V13 (biology.md section 3): the arms they need and one
:class:`Row` each.

A :class:`Row` holds everything about one target in one place: its id, the condition (the
row's label), the readout, the published range (``expected``), the criterion text, the
arms it compares and its ``check`` function. A check gets ``{arm name: [history per
seed]}`` (seeds in the same order in every arm, so index i pairs the same seed) and
returns a :class:`RowResult`: the headline effect with its 95 % CI, PASS/FAIL and a
detail line listing every sub-criterion. :data:`ROWS` is the table, in order;
:data:`ARMS` are the experiment arms the rows refer to by name.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..experiments.execution import Arm
from ..experiments.stats import (Histories, MeanCI, column, fmt_ci, fmt_value, mean_ci,
                                 paired_ratio, paired_rel_effect, paired_values, per_seed,
                                 prevented_fraction, times, value_at)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Row", "RowResult", "ARMS", "ROWS", "parse_rows"]

NAN = float("nan")


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
# experiment arms
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
    _a("ovx_il2_noilc2", "ovx_il2_ilc2_depleted", 56),
    _a("sham_butyrate", "sham_butyrate", 28),
    _a("vitro", "invitro_osteoclastogenesis", 7, in_vitro=True),
    _a("vitro_il2", "invitro_osteoclastogenesis_il2", 7, in_vitro=True),
    _a("vitro_treg_lo", "invitro_osteoclastogenesis_treg", 7,
       {"invitro.treg_per_monocyte": 0.1}, in_vitro=True),
    _a("vitro_treg_hi", "invitro_osteoclastogenesis_treg", 7,
       {"invitro.treg_per_monocyte": 0.5}, in_vitro=True),
]}


# ---------------------------------------------------------------------------------------
# the rows: each check function, then its Row
# ---------------------------------------------------------------------------------------
def _v1(arms: Histories) -> RowResult:
    c = _Checks()
    e = mean_ci(paired_rel_effect(arms, "ovx", "sham", "bv_tv", 28))
    c.add("BV/TV d28", e, _within(e.mean, -0.30, -0.15), "mean in [-30 %, -15 %]")
    return c.result(e)


V1 = Row("V1", "OVX vs sham, 4 weeks", "trabecular BV/TV",
         "-15 % to -30 % (Bouxsein 2005 JBMR 10.1359/JBMR.050307)",
         arms=("ovx", "sham"), check=_v1,
         criterion="paired BV/TV effect at d28: mean in [-30 %, -15 %]")


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


V2 = Row("V2", "OVX vs sham, time course", "BV/TV over 12 weeks",
         "loss by 2-4 weeks, progressive, then a new steady state",
         arms=("ovx", "sham"), check=_v2,
         criterion="d28 effect < 0 (CI); d56 <= d28; |effect d84 - d56| < 0.5 |effect d28|")


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


V3 = Row("V3", "OVX vs sham", "Oc.S/BS, Ob.S/BS", "both up (high turnover), net loss",
         arms=("ovx", "sham"), check=_v3,
         criterion="d21-28 Oc.S/BS and Ob.S/BS up (CI); BV/TV d28 down")


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


V4 = Row("V4", "OVX vs sham", "TNF+ T cells in marrow",
         "number up; TNF per producing cell unchanged",
         arms=("ovx", "sham"), check=_v4,
         criterion="d21-28 TNF+ T cells up (CI); TNF per producer ratio in [0.95, 1.05]")


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


V5 = Row("V5", "OVX + propionate/butyrate from day 0 vs OVX", "BV/TV; osteoclasts; formation",
         "most of the loss prevented; osteoclasts down; formation unchanged",
         arms=("ovx_scfa", "ovx", "sham"), check=_prevention_row("ovx_scfa", True),
         criterion="prevented fraction >= 50 %; OCs d14-28 down (CI); formation within +/-15 %")

V6 = Row("V6", "OVX + probiotic from day 0 vs OVX", "BV/TV", "loss prevented",
         arms=("ovx_probiotic", "ovx", "sham"), check=_prevention_row("ovx_probiotic", False),
         criterion="prevented fraction at d28 >= 50 %")


def _v7(arms: Histories) -> RowResult:
    c = _Checks()
    e = mean_ci(paired_rel_effect(arms, "ovx_il2", "ovx", "bv_tv", 56))
    gain = mean_ci(per_seed(arms, "ovx_il2",
                            lambda h: value_at(h, "bv_tv", 56) - value_at(h, "bv_tv", 28)))
    c.add("BV/TV d56 vs OVX", e, _gt0(e), "> 0 (CI)")
    c.add("IL-2 arm BV/TV d56 - d28", gain, _gt0(gain), "> 0 (CI)", unit="")
    return c.result(e)


V7 = Row("V7", "OVX, low-dose IL-2 weeks 4-8 vs untreated OVX", "BV/TV at week 8",
         "above untreated OVX and above its own week-4 value",
         arms=("ovx_il2", "ovx"), check=_v7,
         criterion="BV/TV d56 vs OVX up (CI); own d56 - d28 > 0 (CI)")


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


V8 = Row("V8", "as V7", "CXCR3+ Tregs; IL-10+ and CGRP+ ILC2s", "up (Tregs several-fold)",
         arms=("ovx_il2", "ovx"), check=_v8,
         criterion="d49-56 CXCR3+ Treg fold >= 2; IL-10+ and CGRP+ ILC2 up (CI)")


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


V9 = Row("V9", "intact + butyrate vs intact", "BV/TV; formation; marrow Tregs",
         "up through formation; Tregs up",
         arms=("sham_butyrate", "sham"), check=_v9,
         criterion="BV/TV d28, formation d14-28, Tregs d21-28 up (CI)")


def _onset(h: "pd.DataFrame") -> float:
    t = times(h)
    v = column(h, "n_oc_multinuc")
    hit = np.nonzero(v >= 1)[0]
    return float(t[hit[0]]) if hit.size else NAN


def _v10(arms: Histories) -> RowResult:
    c = _Checks()
    onsets = per_seed(arms, "vitro", _onset)
    on = mean_ci(onsets)
    by5 = per_seed(arms, "vitro", lambda h: value_at(h, "n_oc_multinuc", 5))
    c.add("onset of >=3-nuclei osteoclasts", on,
          on.n == onsets.size and _within(on.mean, 2.5, 5), "mean in [2.5, 5] d", unit="d")
    c.add("seeds with osteoclasts at d5", f"{int((by5 > 0).sum())}/{by5.size}",
          bool((by5 > 0).all()), "all")
    return c.result(on, unit="d")


V10 = Row("V10", "culture: monocytes + M-CSF + RANKL", "multinucleated (>= 3 nuclei) OCs",
          "appear by day 3-5",
          arms=("vitro",), check=_v10,
          criterion="mean onset in [2.5, 5] d; every seed has OCs at d5")


def _v11(arms: Histories) -> RowResult:
    c = _Checks()
    e = mean_ci(paired_rel_effect(arms, "vitro_il2", "vitro", "n_oc_multinuc", 7))
    c.add("multinucleated OCs d7", e, _lt0(e), "< 0 (CI)")
    return c.result(e)


V11 = Row("V11", "culture as V10 + IL-2", "osteoclasts", "fewer than without IL-2",
          arms=("vitro_il2", "vitro"), check=_v11,
          criterion="d7 multinucleated OCs down (CI)")


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


V12 = Row("V12", "culture as V10 + Tregs", "osteoclasts / resorption",
          "dose-dependently fewer, up to ~80 % less resorption",
          arms=("vitro_treg_lo", "vitro_treg_hi", "vitro"), check=_v12,
          criterion="hi-dose resorption reduction in [50 %, 90 %]; hi > lo; OCs down")

def ilc2_benefit_cut(arms: Histories, day: float = 56) -> tuple[np.ndarray, np.ndarray]:
    """Per seed, the IL-2 benefit on BV/TV over untreated OVX at ``day`` with ILC2s
    present (``ovx_il2 - ovx``) and with them depleted (``ovx_il2_noilc2 - ovx``),
    paired by seed (absolute BV/TV)."""
    il2, ovx = paired_values(arms, "ovx_il2", "ovx", "bv_tv", day)
    dep, _ = paired_values(arms, "ovx_il2_noilc2", "ovx", "bv_tv", day)
    return il2 - ovx, dep - ovx


def _v13(arms: Histories) -> RowResult:
    c = _Checks()
    full, dep = ilc2_benefit_cut(arms)
    b = mean_ci(full)
    lost = mean_ci(full - dep)
    # the cut is a ratio of seed means (a per-seed ratio is unstable where one seed's
    # benefit is near 0); its interval is the paired interval of the lost benefit / mean
    cut = lost.mean / b.mean if b.mean > 0 else NAN
    cut_ci = MeanCI(cut, lost.lo / b.mean, lost.hi / b.mean, lost.n) if b.mean > 0 else \
        MeanCI(NAN, NAN, NAN, lost.n)
    c.add("IL-2 benefit d56 (BV/TV, absolute)", b, _gt0(b), "> 0 (CI)", unit="")
    c.add("benefit lost with ILC2s depleted", lost, _gt0(lost), "> 0 (CI)", unit="")
    c.add("cut", cut_ci, _within(cut, 0.5, np.inf), ">= 50 % (ratio of means)")
    return c.result(cut_ci)


V13 = Row("V13", "as V7, ILC2s depleted from week 3", "IL-2 benefit on BV/TV at week 8 over "
          "untreated OVX", "cut by at least half (seed 004: IL-10/CGRP ILC2s required)",
          arms=("ovx_il2", "ovx_il2_noilc2", "ovx"), check=_v13,
          criterion="IL-2 benefit at d56 > 0 (CI); benefit lost on depletion > 0 (CI) and "
          ">= 50 % of the benefit (ratio of seed means)")

#: validation rows V1-V13, in order
ROWS: tuple[Row, ...] = (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12, V13)


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
