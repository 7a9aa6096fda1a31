"""Comparator therapies: an anti-RANKL antibody, a bisphosphonate and intermittent PTH.

Standard-of-care drugs that a user sets against low-dose IL-2 (``../shared/biology.md``
section 4). Each is a top-level section of the scenario TOML (``[anti_rankl]``,
``[bisphosphonate]``, ``[pth]``) and is absent (``None``) unless the scenario gives it, so an
untreated scenario runs exactly as before. Like :mod:`.host`, everything here is a pure,
closed-form function of time; the cell rules read the result through
:class:`~niche.scenario.host.HostState` (:func:`therapy_fields`).

* **Anti-RANKL antibody** (denosumab-like), :class:`AntiRANKLConfig`: s.c. doses, one
  compartment with first-order absorption (Bateman function, doses superposed), a long
  IgG half-life. The free antibody in the marrow interstitium (serum x
  ``marrow_to_serum``) binds RANKL as a high-affinity decoy, as OPG does: the monocyte and
  osteoclast rules see ``free RANKL = RANKL / (1 + OPG / K_opg + drug / kd_pM)``
  (:func:`niche.biology.monocyte.rankl_signal`), soluble and membrane RANKL alike.
* **Bisphosphonate** (zoledronate-like), :class:`BisphosphonateConfig`: a dose binds bone
  mineral at once (``skeletal_uptake`` of it; the rest is excreted) and leaves the skeleton
  slowly (``bound_half_life_days``); the host-level bound drug is
  :func:`bisphosphonate_bound_ug_per_kg`. Osteoclasts that resorb take it up and die at an
  extra rate ``max_apoptosis_per_day * B / (B + half_effect_ug_per_kg)``
  (:func:`bisphosphonate_apoptosis_per_day`); osteoclasts that do not resorb are spared.
* **Intermittent PTH** (teriparatide-like), :class:`PTHConfig`: daily s.c. pulses, one
  compartment with fast absorption and a minutes-long elimination half-life; the serum
  level (exact mean over the field step, :func:`pth_mean_pM`) occupies PTH1R on the
  osteoblast lineage (``pth / (pth + k_pM)``), which raises osteoblast recruitment and
  lowers osteoblast apoptosis while the pulse lasts (:func:`pth_recruit_factor`,
  :func:`pth_survival_factor`).

:data:`PARAMETERS` lists every default with its unit and source for ``docs/parameters.md``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import model_validator

from .base import Strict, param, parameter_rows
from .host import LN2, Day, _phi_vec, bateman_integral, check_dose_count, regimen_mean

__all__ = [
    "PARAMETERS",
    "AntiRANKLConfig",
    "BisphosphonateConfig",
    "PTHConfig",
    "anti_rankl_marrow_pM",
    "anti_rankl_serum_pM",
    "bisphosphonate_apoptosis_per_day",
    "bisphosphonate_bound_ug_per_kg",
    "dose_times_days",
    "pth_mean_pM",
    "pth_recruit_factor",
    "pth_serum_pM",
    "pth_signal",
    "pth_survival_factor",
    "therapy_fields",
]

MIN_PER_DAY = 1440.0
H_PER_DAY = 24.0
#: Largest dose any therapy block accepts (mg/kg or ug/kg): far above any used in mice.
MAX_DOSE = 1e4
#: Largest effect gain of a therapy on a cell rate.
MAX_GAIN = 100.0

_UNTREATED = "scenario default: no treatment"
_BODY_WEIGHT = ("calibrated: a 25-g adult female mouse, as the IL-2 plasma volume "
                "(niche.scenario.host)")
_KOSTENUIK = ("Kostenuik et al. 2009 J Bone Miner Res 10.1359/jbmr.081112 (denosumab in "
              "huRANKL knock-in mice)")
_FU2023 = "Fu et al. 2023 JCI Insight 10.1172/jci.insight.167790 (denosumab, huRANKL mice)"
_BROUWERS = "Brouwers et al. 2008 Calcif Tissue Int 10.1007/s00223-007-9084-3"
_VEGGER = ("Vegger, Bruel & Thomsen 2018 J Musculoskelet Neuronal Interact 18:165 (PMC6016491): "
           "zoledronate 100 ug/kg s.c. once in adult female C57BL/6 mice")
_FORTEO = ("Forteo (teriparatide) label: s.c. bioavailability 95 %, t_max ~30 min, apparent "
           "s.c. half-life ~1 h set by absorption, i.v. half-life 5 min, Vd ~0.12 l/kg, "
           "M 4117.8 Da")
_JILKA = "Jilka et al. 1999 J Clin Invest 10.1172/JCI5817"
_LI2020 = "Li et al. 2020 J Clin Invest 10.1172/JCI133473"

class _Regimen(Strict):
    """Doses at ``start_day + n * interval_days`` for every ``n >= 0`` with
    ``n * interval_days < duration_days``."""

    start_day: Day = param(0.0, "day", _UNTREATED, "Day of the first dose.")

    @model_validator(mode="after")
    def _dose_count(self):
        check_dose_count(self.duration_days, self.interval_days, "doses")
        return self

    @property
    def dose(self) -> float:  # pragma: no cover - each subclass names its dose
        raise NotImplementedError


def dose_times_days(cfg: _Regimen) -> np.ndarray:
    """Dosing times (days) of a regimen; empty when its dose is 0."""
    if cfg.dose == 0.0 or cfg.duration_days == 0.0:
        return np.empty(0)
    n = math.ceil(cfg.duration_days / cfg.interval_days - 1e-9)
    return cfg.start_day + cfg.interval_days * np.arange(n, dtype=float)


def _bateman(t_days, times: np.ndarray, c0: float, f: float, ka: float,
             ke: float) -> float | np.ndarray:
    """One compartment, first-order absorption, doses at ``times`` superposed:
    ``F c0 ka (exp(-ke s) - exp(-ka s)) / (ka - ke)`` per dose (``s`` = time since the dose;
    0 before it)."""
    t = np.asarray(t_days, dtype=float)
    out = np.zeros_like(t)
    for td in times:
        s = t - td
        on = s >= 0.0
        if on.any():
            out += np.where(on, f * c0 * ka * _phi_vec(ke, ka, np.where(on, s, 0.0)), 0.0)
    return float(out) if out.ndim == 0 else out


# ============================================================================ anti-RANKL

class AntiRANKLConfig(_Regimen):
    """``[anti_rankl]``: a denosumab-like anti-RANKL antibody given s.c.

    The antibody needs a RANKL it binds: denosumab binds human, not murine, RANKL, so the
    mouse this stands for is the huRANKL knock-in (Kostenuik 2009; Fu 2023), or an
    anti-mouse-RANKL antibody with the same properties.
    """

    dose_mg_per_kg: float = param(
        0.0, "mg/kg", f"{_UNTREATED}; {_KOSTENUIK} gave denosumab s.c. at up to 10 mg/kg "
        "(the shipped scenario's 10 mg/kg twice weekly is a saturating mouse regimen, not "
        "re-verified against that paper's table)",
        "Antibody per s.c. injection.", ge=0.0, le=MAX_DOSE, allow_inf_nan=False)
    interval_days: float = param(
        3.5, "day", f"{_KOSTENUIK}: twice-weekly injections (assumed, see dose)",
        "Time between injections.", gt=0.0, allow_inf_nan=False)
    duration_days: float = param(
        28.0, "day", "scenario default: 4 weeks, as the low-dose IL-2 arm (biology.md V7)",
        "Length of the regimen; injections fall in [start_day, start_day + duration_days).",
        ge=0.0, allow_inf_nan=False)
    body_weight_g: float = param(25.0, "g", _BODY_WEIGHT, "Body weight the dose is scaled by.",
                                 gt=0.0, allow_inf_nan=False)
    absorption_half_life_days: float = param(
        1.0, "day",
        "Richter, Bhansali & Morris 2012 AAPS J 10.1208/s12248-012-9367-0: s.c. monoclonal "
        "antibodies peak in rodent serum after ~1-3 days (lymphatic uptake); t1/2 = 1 d "
        "gives t_max ~2.5 d",
        "Half-life of first-order absorption from the s.c. depot.", gt=0.0,
        allow_inf_nan=False)
    elimination_half_life_days: float = param(
        7.0, "day",
        "Vieira & Rajewsky 1988 Eur J Immunol 10.1002/eji.1830180214: IgG half-lives of "
        "~6-8 days in mice (human IgG, recycled by murine FcRn, is of the same order); "
        "denosumab's 26 days in humans (Prolia label) does not apply to mice",
        "Serum elimination half-life (linear; target-mediated disposition neglected at "
        "mg/kg doses).", gt=0.0, allow_inf_nan=False)
    bioavailability: float = param(
        0.62, "fraction", "Prolia (denosumab) label: s.c. bioavailability 62 % (human); "
        "assumed for mouse s.c.",
        "Fraction of an s.c. dose that reaches the blood.", gt=0.0, le=1.0,
        allow_inf_nan=False)
    distribution_volume_ml_per_kg: float = param(
        100.0, "ml/kg",
        "calibrated: IgG distributes into plasma (~40 ml/kg in mice, Diehl 2001 J Appl "
        "Toxicol 10.1002/jat.727) and part of the interstitial fluid; mAb steady-state "
        "volumes in mice are ~0.1 l/kg",
        "Volume of distribution of the one-compartment model per kg body weight.",
        gt=0.0, allow_inf_nan=False)
    molecular_weight_kDa: float = param(
        147.0, "kDa", "Prolia (denosumab) label: IgG2, ~147 kDa",
        "Molar mass used to convert mass to moles.", gt=0.0, allow_inf_nan=False)
    marrow_to_serum: float = param(
        0.073, "fraction",
        "Shah & Betts 2013 mAbs 10.4161/mabs.23684: antibody biodistribution coefficient "
        "of bone 7.3 % of plasma (marrow sinusoids are leakier; a lower bound)",
        "Free antibody in the marrow interstitium as a fraction of serum.", gt=0.0, le=1.0,
        allow_inf_nan=False)
    kd_pM: float = param(
        3.0, "pM",
        "denosumab binds human RANKL with Kd ~3 pM, a higher affinity than OPG's (the value "
        f"quoted for denosumab; {_KOSTENUIK} show the binding is specific to human RANKL; "
        "the number is not re-verified against a primary binding assay here)",
        "Dissociation constant of the antibody-RANKL complex.", gt=0.0, allow_inf_nan=False)

    @property
    def dose(self) -> float:
        return self.dose_mg_per_kg

    @property
    def volume_l(self) -> float:
        return self.distribution_volume_ml_per_kg * self.body_weight_g * 1e-6

    @property
    def c0_pM(self) -> float:
        """One whole dose spread instantly in the distribution volume (pM)."""
        mg = self.dose_mg_per_kg * self.body_weight_g * 1e-3
        pmol = mg * 1e-3 / (self.molecular_weight_kDa * 1e3) * 1e12
        return pmol / self.volume_l

    @property
    def ka_per_day(self) -> float:
        return LN2 / self.absorption_half_life_days

    @property
    def ke_per_day(self) -> float:
        return LN2 / self.elimination_half_life_days


def anti_rankl_serum_pM(cfg: AntiRANKLConfig, t_days) -> float | np.ndarray:
    """Serum antibody (pM) at ``t_days`` (float or array); exactly 0 before the first dose."""
    return _bateman(t_days, dose_times_days(cfg), cfg.c0_pM, cfg.bioavailability,
                    cfg.ka_per_day, cfg.ke_per_day)


def anti_rankl_marrow_pM(cfg: AntiRANKLConfig, t_days) -> float | np.ndarray:
    """Free antibody in the marrow interstitium (pM): serum x ``marrow_to_serum``."""
    return anti_rankl_serum_pM(cfg, t_days) * cfg.marrow_to_serum


# ============================================================================ bisphosphonate

class BisphosphonateConfig(_Regimen):
    """``[bisphosphonate]``: a zoledronate-like nitrogen-containing bisphosphonate."""

    dose_ug_per_kg: float = param(
        0.0, "ug/kg", f"{_UNTREATED}; {_VEGGER}; {_BROUWERS} gave one dose to OVX rats "
        "at OVX or 8 weeks later",
        "Bisphosphonate per injection.", ge=0.0, le=MAX_DOSE, allow_inf_nan=False)
    interval_days: float = param(
        28.0, "day", "scenario default (a single dose unless duration_days > interval_days)",
        "Time between doses.", gt=0.0, allow_inf_nan=False)
    duration_days: float = param(
        1.0, "day", f"{_BROUWERS}; {_VEGGER}: a single injection",
        "Length of the regimen; doses fall in [start_day, start_day + duration_days).",
        ge=0.0, allow_inf_nan=False)
    skeletal_uptake: float = param(
        0.55, "fraction",
        "Zometa (zoledronic acid) label: 39 +/- 16 % of a dose is in the urine within 24 h "
        "and the rest binds bone (Chen et al. 2002 J Clin Pharmacol "
        "10.1177/009127002762491316)",
        "Fraction of a dose that binds bone mineral (at once: plasma clearance takes hours).",
        gt=0.0, le=1.0, allow_inf_nan=False)
    bound_half_life_days: float = param(
        200.0, "day",
        "calibrated: bisphosphonates stay in the rodent skeleton for months (Monkkonen et "
        "al. 1987 Toxicol Appl Pharmacol 10.1016/0041-008x(87)90050-0: clodronate still "
        "high in mouse bone 90 days after one dose); zoledronate's terminal half-life of "
        "146 h in human plasma reflects its slow release from bone (Zometa label)",
        "Half-life of the mineral-bound drug (release and burial under new bone).",
        gt=0.0, allow_inf_nan=False)
    max_apoptosis_per_day: float = param(
        1.0, "1/day",
        "calibrated: resorbing osteoclasts take up mineral-bound nitrogen-containing "
        "bisphosphonates and undergo apoptosis within a day or two (Hughes et al. 1995 "
        "J Bone Miner Res 10.1002/jbmr.5650101007; Rogers et al. 2011 Bone "
        "10.1016/j.bone.2010.11.008); only resorbing cells are hit (Vegger 2018)",
        "Largest extra apoptosis rate of a resorbing osteoclast on drug-laden bone.",
        ge=0.0, le=MAX_GAIN, allow_inf_nan=False)
    half_effect_ug_per_kg: float = param(
        5.0, "ug/kg",
        f"calibrated: a single 100 ug/kg dose (55 ug/kg bound) keeps resorption suppressed "
        f"for months ({_BROUWERS}: prevention over 16 weeks; {_VEGGER}), i.e. it saturates; "
        "a tenth of it would still act at half strength",
        "Bound drug (dose equivalents per kg body weight) of half the largest apoptosis "
        "rate.", gt=0.0, allow_inf_nan=False)

    @property
    def dose(self) -> float:
        return self.dose_ug_per_kg

    @property
    def loss_per_day(self) -> float:
        return LN2 / self.bound_half_life_days


def bisphosphonate_bound_ug_per_kg(cfg: BisphosphonateConfig,
                                   t_days) -> float | np.ndarray:
    """Mineral-bound drug (ug per kg body weight) at ``t_days``: ``skeletal_uptake x dose``
    added at each dose (right-continuous), decaying with ``bound_half_life_days``."""
    t = np.asarray(t_days, dtype=float)
    out = np.zeros_like(t)
    a = cfg.skeletal_uptake * cfg.dose_ug_per_kg
    for td in dose_times_days(cfg):
        s = t - td
        out += np.where(s >= 0.0, a * np.exp(-cfg.loss_per_day * np.maximum(s, 0.0)), 0.0)
    return float(out) if out.ndim == 0 else out


def bisphosphonate_apoptosis_per_day(cfg: BisphosphonateConfig, bound: float) -> float:
    """Extra apoptosis rate (1/day) of a resorbing osteoclast at bound drug ``bound``:
    ``max_apoptosis_per_day * B / (B + half_effect_ug_per_kg)``."""
    b = max(bound, 0.0)
    return cfg.max_apoptosis_per_day * b / (b + cfg.half_effect_ug_per_kg)


# ============================================================================ PTH

class PTHConfig(_Regimen):
    """``[pth]``: intermittent (daily) s.c. hPTH(1-34), teriparatide-like."""

    dose_ug_per_kg: float = param(
        0.0, "ug/kg", f"{_UNTREATED}; {_LI2020}: iPTH 80 ug/kg/day s.c. in mice (the "
        f"Pacifici laboratory's regimen); {_JILKA} used daily hPTH(1-34) in mice",
        "hPTH(1-34) per daily injection.", ge=0.0, le=MAX_DOSE, allow_inf_nan=False)
    interval_days: float = param(
        1.0, "day", f"{_LI2020}; {_JILKA}: daily injections (intermittent)",
        "Time between injections.", gt=0.0, allow_inf_nan=False)
    duration_days: float = param(
        28.0, "day", f"{_LI2020}: 4 weeks", "Length of the regimen.", ge=0.0,
        allow_inf_nan=False)
    body_weight_g: float = param(25.0, "g", _BODY_WEIGHT, "Body weight the dose is scaled by.",
                                 gt=0.0, allow_inf_nan=False)
    absorption_half_life_min: float = param(
        60.0, "min", f"{_FORTEO}: the apparent s.c. half-life of ~1 h is the absorption "
        "half-life (flip-flop kinetics; t_max = 20 min here); mouse s.c. absorption may be "
        "faster (not measured here)",
        "Half-life of first-order absorption from the s.c. depot.", gt=0.0,
        allow_inf_nan=False)
    elimination_half_life_min: float = param(
        5.0, "min", _FORTEO, "Serum elimination half-life (i.v.).", gt=0.0,
        allow_inf_nan=False)
    bioavailability: float = param(0.95, "fraction", _FORTEO,
                                   "Fraction of an s.c. dose that reaches the blood.",
                                   gt=0.0, le=1.0, allow_inf_nan=False)
    distribution_volume_ml_per_kg: float = param(
        120.0, "ml/kg", _FORTEO, "Volume of distribution per kg body weight.", gt=0.0,
        allow_inf_nan=False)
    molecular_weight_kDa: float = param(4.1178, "kDa", _FORTEO,
                                        "Molar mass used to convert mass to moles.",
                                        gt=0.0, allow_inf_nan=False)
    k_pM: float = param(
        1000.0, "pM",
        "calibrated: hPTH(1-34) raises cAMP in osteoblastic cells with EC50 ~0.1-1 nM "
        "(PTH1R); 1 nM puts the half-effect where serum PTH stays ~3 h after a dose, the "
        "time teriparatide stays measurable (Forteo label: unquantifiable within 3 h)",
        "PTH level of half-maximal PTH1R signalling in the osteoblast lineage.", gt=0.0,
        allow_inf_nan=False)
    recruit_gain: float = param(
        8.0, "1",
        f"calibrated: daily PTH about doubles osteoblast number and surface in mice "
        f"({_JILKA}; {_LI2020}; it activates lining cells, Kim et al. 2012 J Bone Miner Res "
        "10.1002/jbmr.1667). The pulse stays above k_pM ~4 h a day (mean signal 0.16 at 80 ug/kg), "
        "so 8 at full occupancy raises the daily mean recruitment 2.3-fold",
        "Rise of osteoblast recruitment at full PTH1R occupancy: rate x (1 + gain x signal).",
        ge=0.0, le=MAX_GAIN, allow_inf_nan=False)
    survival_gain: float = param(
        3.0, "1",
        f"calibrated: {_JILKA}: daily PTH lowered the prevalence of apoptotic osteoblasts "
        "(the gain is assumed, not fitted to that paper's numbers); acting only during the "
        "pulse, a 4-fold fall of the death rate at full occupancy lowers the daily mean "
        "death rate by ~18 %",
        "Fall of osteoblast apoptosis at full PTH1R occupancy: death rate / (1 + gain x "
        "signal).", ge=0.0, le=MAX_GAIN, allow_inf_nan=False)

    @property
    def dose(self) -> float:
        return self.dose_ug_per_kg

    @property
    def c0_pM(self) -> float:
        ug = self.dose_ug_per_kg * self.body_weight_g * 1e-3
        pmol = ug * 1e-6 / (self.molecular_weight_kDa * 1e3) * 1e12
        return pmol / (self.distribution_volume_ml_per_kg * self.body_weight_g * 1e-6)

    @property
    def ka_per_day(self) -> float:
        return LN2 / (self.absorption_half_life_min / MIN_PER_DAY)

    @property
    def ke_per_day(self) -> float:
        return LN2 / (self.elimination_half_life_min / MIN_PER_DAY)


def pth_serum_pM(cfg: PTHConfig, t_days) -> float | np.ndarray:
    """Serum PTH (pM) of the regimen at ``t_days`` (float or array); 0 before the first dose."""
    return _bateman(t_days, dose_times_days(cfg), cfg.c0_pM, cfg.bioavailability,
                    cfg.ka_per_day, cfg.ke_per_day)


def pth_mean_pM(cfg: PTHConfig, t0_days: float, t1_days: float) -> float:
    """Exact time average of serum PTH (pM) over ``[t0_days, t1_days]``."""
    return regimen_mean(
        dose_times_days(cfg),
        lambda s0, s1: bateman_integral(cfg.c0_pM, cfg.bioavailability, cfg.ka_per_day,
                                        cfg.ke_per_day, s0, s1),
        lambda t: pth_serum_pM(cfg, t), t0_days, t1_days, "pth_mean_pM")


def pth_signal(cfg: PTHConfig, pth_pM: float) -> float:
    """PTH1R occupancy ``pth / (pth + k_pM)`` of the osteoblast lineage."""
    c = max(pth_pM, 0.0)
    return c / (c + cfg.k_pM)


def pth_recruit_factor(cfg: PTHConfig, pth_pM: float) -> float:
    """Factor on osteoblast recruitment: ``1 + recruit_gain * signal``."""
    return 1.0 + cfg.recruit_gain * pth_signal(cfg, pth_pM)


def pth_survival_factor(cfg: PTHConfig, pth_pM: float) -> float:
    """Divisor of the osteoblast death rate: ``1 + survival_gain * signal``."""
    return 1.0 + cfg.survival_gain * pth_signal(cfg, pth_pM)


# ============================================================================ all together

def therapy_fields(anti_rankl: AntiRANKLConfig | None, bisphosphonate: BisphosphonateConfig | None,
                   pth: PTHConfig | None, t_days: float,
                   dt_days: float | None = None) -> dict[str, float]:
    """The :class:`~niche.scenario.host.HostState` fields of the therapies given, at
    ``t_days`` (PTH: the exact mean over ``[t, t + dt_days]`` when ``dt_days`` is given;
    its pulses last hours). Empty when no therapy is given, so an untreated host state is
    left exactly as it was."""
    out: dict[str, float] = {}
    if anti_rankl is not None and anti_rankl.dose_mg_per_kg > 0.0:
        out["anti_rankl_marrow_pM"] = float(anti_rankl_marrow_pM(anti_rankl, t_days))
    if bisphosphonate is not None and bisphosphonate.dose_ug_per_kg > 0.0:
        out["bisphosphonate_bound_ug_per_kg"] = float(
            bisphosphonate_bound_ug_per_kg(bisphosphonate, t_days))
    if pth is not None and pth.dose_ug_per_kg > 0.0:
        out["pth_serum_pM"] = (float(pth_serum_pM(pth, t_days)) if dt_days is None
                               else pth_mean_pM(pth, t_days, t_days + dt_days))
    return out


# ============================================================================ parameter table

def _collect(prefix: str, model) -> list[dict[str, Any]]:
    return [{"name": r["name"], "value": r["value"], "unit": r["unit"], "source": r["source"],
             "description": r["description"]}
            for r in parameter_rows(model, prefix, nested=False, dotted=True)
            if r["documented"]]


#: Every default of this module: ``name`` (dotted TOML key), ``value``, ``unit``, ``source``
#: and ``description``.
PARAMETERS: list[dict[str, Any]] = [
    *_collect("anti_rankl", AntiRANKLConfig),
    *_collect("bisphosphonate", BisphosphonateConfig),
    *_collect("pth", PTHConfig),
]
