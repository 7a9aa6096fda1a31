"""Host factors: systemic estrogen, gut microbiota and therapeutic IL-2 as functions of time.

Each factor is one section of the scenario TOML (``[estrogen]``, ``[microbiota]`` with its
``[[microbiota.interventions]]`` tables, ``[il2]``) and is validated into a frozen pydantic
model whose defaults describe an intact, untreated, eubiotic mouse. Times are days from the
start of the run and may be negative (an event before the run, e.g. an ovariectomy 28 days
earlier for an established-bone-loss scenario). Everything here is a pure, closed-form
function of time: no state, no ODE integrator, no randomness.

* :func:`estrogen_level` -- systemic estradiol as a fraction of intact (1 = intact).
  Piecewise first-order relaxation: 1 before ovariectomy (OVX), falling with
  ``washout_half_life_days`` to ``ovx_residual`` after it, rising with the same half-life
  to ``replacement_level`` from ``replacement_day``. Continuous in time.
* :func:`microbiota_drive` -- the gut: a dysbiosis index ``D`` in [0, 1] that relaxes with
  time constant ``dysbiosis_tau_days`` toward a target ``m * (b + (1 - b) * (1 - E))``
  (``b`` = 0 eubiotic / 1 dysbiotic community, ``E`` = estrogen level when
  ``dysbiosis_follows_estrogen``, ``m`` = product of ``1 - efficacy`` of active probiotics);
  the Th17/TNF priming drive ``1 + th17_priming_gain * D`` (0 germ-free); blood SCFA
  (propionate + butyrate) relative to eubiotic, and its butyrate share.
  Because the estrogen level is piecewise exponential, ``D`` is solved exactly.
* :func:`il2_blood_pM` / :func:`il2_mean_pM` -- serum IL-2 of a dosing regimen: one
  compartment with first-order absorption (Bateman function; i.v. = bolus), superposed
  over all doses; the interval mean is exact (closed-form integral).
* :func:`il2_treg_pool_fold` -- the systemic Treg pool that IL-2 expands in lymphoid
  organs (a decaying rise per injection), which scales the Tregs entering the marrow.
* :func:`host_state` -- all of the above at one time, for the model's field step.

:data:`PARAMETERS` lists every default of this module with its unit and source (citation,
or ``calibrated: <how>``), for the generated parameter table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from .base import Strict, param, parameter_rows

__all__ = [
    "PARAMETERS",
    "EstrogenConfig",
    "FMTIntervention",
    "HostState",
    "IL2Config",
    "Intervention",
    "MicrobiotaConfig",
    "MicrobiotaState",
    "PrebioticIntervention",
    "ProbioticIntervention",
    "SCFASupplementIntervention",
    "bateman_integral",
    "estrogen_level",
    "host_state",
    "il2_blood_pM",
    "il2_dose_pmol",
    "il2_dose_times_days",
    "il2_mean_pM",
    "il2_treg_pool_fold",
    "microbiota_drive",
    "regimen_mean",
]

LN2 = math.log(2.0)
MIN_PER_DAY = 1440.0
H_PER_DAY = 24.0
#: Most IL-2 doses a regimen may hold (guards against an accidental tiny interval).
MAX_DOSES = 100_000
#: Largest gain of a host factor on cell entry (``th17_priming_gain``,
#: ``treg_expansion_max``): the data show 2-3 fold changes; 100 keeps entry rates finite.
MAX_GAIN = 100.0
#: Strongest SCFA supplement (mM in the drinking water): 1 M; studies use 150 mM (Lucas 2018).
MAX_DOSE_MM = 1000.0
#: Highest blood SCFA (fold of eubiotic) the host model returns: far above any physiological
#: or supplemented level; keeps the product of many overlapping interventions finite.
MAX_SCFA_FOLD = 1e6

# Sources used more than once.
_LI2016 = "Li et al. 2016 JCI 10.1172/JCI86062"
_CHANG1984 = "Chang, Hyatt & Rosenberg 1984 J Biol Response Mod 3:561 (PMID 6334141)"
_KONRAD1990 = "Konrad et al. 1990 Cancer Res 50:2009 (PMID 2317789)"
_SCENARIO = "scenario default: intact, untreated, eubiotic mouse"


Day = Annotated[float, Field(allow_inf_nan=False)]



# ============================================================================ estrogen

class EstrogenConfig(Strict):
    """``[estrogen]``: ovariectomy and estradiol replacement."""

    ovariectomy_day: Day | None = param(
        None, "day", _SCENARIO,
        "Day of ovariectomy (OVX); None = intact (sham). May be negative (before the run).")
    replacement_day: Day | None = param(
        None, "day", _SCENARIO,
        "Estradiol replacement from this day on (needs ovariectomy_day, and must be later); "
        "None = no replacement.")
    replacement_level: float = param(
        1.0, "fraction of intact", "definition: 1 = replacement to the intact level",
        "Systemic estradiol reached under replacement, as a fraction of intact (total, "
        "residual included: a value below ovx_residual has no effect).",
        ge=0.0, le=1.0, allow_inf_nan=False)
    washout_half_life_days: float = param(
        0.5, "day",
        "calibrated: serum estradiol reaches OVX levels within ~1-3 days of OVX in mice "
        "(biology.md); t1/2 = 0.5 d completes 94 % of the fall in 2 days. The same "
        "half-life sets the rise under replacement (approach to steady state under "
        "constant input is governed by the elimination rate)",
        "Half-life of the fall of systemic estradiol after OVX (and of its rise to the "
        "replacement level).",
        gt=0.0, allow_inf_nan=False)
    ovx_residual: float = param(
        0.1, "fraction of intact",
        "calibrated: extragonadal (adrenal, adipose aromatase) estradiol is small in mice; "
        "OVX serum E2 is commonly at or below assay detection; 10 % of intact is a "
        "working value",
        "Residual systemic estradiol after OVX, fraction of intact.",
        ge=0.0, le=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _order(self) -> EstrogenConfig:
        if self.replacement_day is not None:
            if self.ovariectomy_day is None:
                raise ValueError(
                    f"replacement_day={self.replacement_day} needs ovariectomy_day "
                    "(replacement of what?)")
            if self.replacement_day <= self.ovariectomy_day:
                raise ValueError(
                    f"replacement_day={self.replacement_day} must be later than "
                    f"ovariectomy_day={self.ovariectomy_day}")
        return self

    @property
    def washout_rate_per_day(self) -> float:
        return LN2 / self.washout_half_life_days


def _estrogen_piece(cfg: EstrogenConfig, t: float) -> tuple[float, float, float]:
    """``(s, E(s), target)``: the estrogen breakpoint ``s <= t`` in effect at ``t``.

    On ``[s, next breakpoint)``: ``E(t) = target + (E(s) - target) exp(-k (t - s))``.
    """
    ovx, rep = cfg.ovariectomy_day, cfg.replacement_day
    if ovx is None or t < ovx:
        return -math.inf, 1.0, 1.0
    r = cfg.ovx_residual
    if rep is None or t < rep:
        return ovx, 1.0, r
    k = cfg.washout_rate_per_day
    e_rep = r + (1.0 - r) * math.exp(-k * (rep - ovx))
    return rep, e_rep, max(r, cfg.replacement_level)


def estrogen_level(cfg: EstrogenConfig, t_days: float) -> float:
    """Systemic estradiol at ``t_days`` as a fraction of intact, in [0, 1]; continuous."""
    s, e_s, target = _estrogen_piece(cfg, t_days)
    if s == -math.inf:
        return 1.0
    return target + (e_s - target) * math.exp(-cfg.washout_rate_per_day * (t_days - s))


def _estrogen_breaks(cfg: EstrogenConfig) -> list[float]:
    return [d for d in (cfg.ovariectomy_day, cfg.replacement_day) if d is not None]


# ============================================================================ microbiota

class _Timed(Strict):
    start_day: Day = param(0.0, "day", _SCENARIO, "First day of the intervention.")
    end_day: Day | None = param(
        None, "day", _SCENARIO,
        "Day the intervention stops (exclusive); None = until the end of the run.")

    @model_validator(mode="after")
    def _window(self) -> _Timed:
        if self.end_day is not None and self.end_day <= self.start_day:
            raise ValueError(
                f"end_day={self.end_day} must be later than start_day={self.start_day}")
        return self

    def active(self, t: float) -> bool:
        return self.start_day <= t and (self.end_day is None or t < self.end_day)


class ProbioticIntervention(_Timed):
    """A probiotic (Li 2016: LGG or VSL#3 twice weekly; Britton 2014: L. reuteri)."""

    kind: Literal["probiotic"]
    strain: Literal["LGG", "VSL3", "L_reuteri"] = param(
        "LGG", "-", f"{_LI2016} (LGG, VSL#3); Britton et al. 2014 J Cell Physiol "
        "10.1002/jcp.24636 (L. reuteri)",
        "Strain (for the record; the effect is set by efficacy and butyrate_fold).")
    efficacy: float = param(
        0.9, "fraction",
        f"calibrated: {_LI2016}: LGG/VSL#3 blocked the OVX rise of gut permeability, "
        "marrow Th17/TNF and bone loss almost completely; Britton 2014: L. reuteri "
        "suppressed the OVX rise of marrow CD4+ T cells",
        "Fraction of the dysbiosis drive removed while given: the dysbiosis target is "
        "multiplied by (1 - efficacy); dysbiosis and the Th17 priming excess follow with "
        "dysbiosis_tau_days.",
        ge=0.0, le=1.0, allow_inf_nan=False)
    butyrate_fold: float = param(
        2.0, "fold",
        "calibrated: Tyagi et al. 2018 Immunity 10.1016/j.immuni.2018.10.013 (LGG raises "
        "gut and serum butyrate; its bone effect needs butyrate); magnitude assumed",
        "Multiplier of the community's butyrate production while given (colonised host).",
        ge=1.0, allow_inf_nan=False)


class PrebioticIntervention(_Timed):
    """A fermentable fibre (prebiotic), e.g. inulin or a high-fibre diet."""

    kind: Literal["prebiotic"]
    scfa_fold: float = param(
        1.5, "fold",
        "calibrated: Lucas et al. 2018 Nat Commun 10.1038/s41467-017-02490-4 (high-fibre "
        "diet raises SCFA and bone mass); magnitude assumed",
        "Multiplier of the community's propionate and butyrate production while given "
        "(colonised host; no effect germ-free: nothing ferments the fibre).",
        ge=1.0, allow_inf_nan=False)


class FMTIntervention(Strict):
    """Faecal microbiota transplantation: a one-time event at ``start_day``."""

    kind: Literal["fmt"]
    start_day: Day = param(0.0, "day", _SCENARIO, "Day of the transplant.")
    donor: Literal["eubiotic", "dysbiotic"] = param(
        "eubiotic", "-", "seed review 000 (FMT as an intervention)",
        "Donor community: sets dysbiosis to 0 (eubiotic) or 1 (dysbiotic) at start_day and "
        "becomes the host's baseline community (a germ-free host is colonised); dysbiosis "
        "then relaxes toward the host-determined target.")


class SCFASupplementIntervention(_Timed):
    """Short-chain fatty acid in the drinking water (Lucas 2018; Tyagi 2018)."""

    kind: Literal["scfa_supplement"]
    compound: Literal["propionate", "butyrate", "mix"] = param(
        "butyrate", "-",
        "Lucas 2018 (C3, C4); Tyagi 2018 (butyrate)",
        "Supplemented acid; 'mix' = half the dose each of propionate and butyrate.")
    dose_mM: float = param(
        150.0, "mM",
        "Lucas et al. 2018 Nat Commun 10.1038/s41467-017-02490-4 (150 mM C3 or C4 in "
        "drinking water); Tyagi 2018 used butyrate in drinking water",
        "Concentration in the drinking water.",
        ge=0.0, le=MAX_DOSE_MM, allow_inf_nan=False)


Intervention = Annotated[
    ProbioticIntervention | PrebioticIntervention | FMTIntervention | SCFASupplementIntervention,
    Field(discriminator="kind"),
]

_BASE_COMMUNITY = {"eubiotic": 0.0, "dysbiotic": 1.0}


class MicrobiotaConfig(Strict):
    """``[microbiota]``: the gut community, its coupling to estrogen, and interventions."""

    state: Literal["eubiotic", "dysbiotic", "germ_free"] = param(
        "eubiotic", "-", _SCENARIO,
        "Baseline community: eubiotic (dysbiosis 0), dysbiotic (1) or germ_free (none).")
    dysbiosis_follows_estrogen: bool = param(
        True, "-",
        f"{_LI2016}: sex-steroid deficiency raises gut permeability and Th17 expansion; "
        "germ-free mice are spared",
        "Estrogen loss drives dysbiosis: target = b + (1 - b) * (1 - estrogen).")
    dysbiosis_tau_days: float = param(
        7.0, "day",
        f"calibrated: {_LI2016} find the gut/marrow Th17-TNF changes established within "
        "4 weeks of sex-steroid deprivation; tau = 7 d reaches 98 % by day 28",
        "Time constant of first-order relaxation of dysbiosis toward its target.",
        gt=0.0, allow_inf_nan=False)
    th17_priming_gain: float = param(
        1.0, "-",
        "calibrated: OVX roughly doubles marrow TNF+ / Th17 T cells (Roggia et al. 2001 "
        f"PNAS 10.1073/pnas.251534698; {_LI2016}); priming = 1 + gain * dysbiosis",
        "Rise of the gut Th17/TNF priming drive at full dysbiosis, relative to eubiotic.",
        ge=0.0, le=MAX_GAIN, allow_inf_nan=False)
    germ_free_scfa_fold: float = param(
        0.05, "fold",
        "Hoverstad & Midtvedt 1986 J Nutr 10.1093/jn/116.9.1772: germ-free caecal SCFA "
        "~1 % of conventional, >90 % acetate (propionate/butyrate near-absent, diet-derived)",
        "Blood propionate + butyrate of a germ-free host, relative to eubiotic.",
        ge=0.0, le=1.0, allow_inf_nan=False)
    dysbiosis_scfa_loss: float = param(
        0.3, "fraction",
        "calibrated: dysbiosis lowers SCFA producers (seed review 000); magnitude assumed",
        "Fractional fall of community SCFA production at full dysbiosis.",
        ge=0.0, le=1.0, allow_inf_nan=False)
    butyrate_fraction_eubiotic: float = param(
        0.45, "fraction",
        "calibrated: peripheral venous propionate ~5 uM and butyrate ~4 uM in humans "
        "(Cummings et al. 1987 Gut 10.1136/gut.28.10.1221), butyrate/(C3+C4) ~ 0.45",
        "Butyrate share of blood propionate + butyrate in a eubiotic host.",
        ge=0.0, le=1.0, allow_inf_nan=False)
    supplement_gain_per_mM: float = param(
        2.0 / 150.0, "1/mM",
        "calibrated: assumed linear in dose (intake = concentration x ~4 ml water/day); "
        "150 mM (Lucas 2018) set to triple the blood level of the supplemented acid; no "
        "dose-response data",
        "Rise of the blood level of the supplemented acid per mM in the drinking water, as "
        "a fraction of that acid's eubiotic blood level.",
        ge=0.0, le=1.0, allow_inf_nan=False)
    interventions: tuple[Intervention, ...] = param(
        (), "-", _SCENARIO, "[[microbiota.interventions]] tables, each with a kind.")


@dataclass(frozen=True)
class MicrobiotaState:
    """The gut's systemic outputs at one time."""

    dysbiosis: float
    """Dysbiosis/leakiness index in [0, 1] (0 eubiotic; 0 when germ-free)."""
    th17_priming: float
    """Relative Th17/TNF T-cell priming drive from the gut (1 eubiotic intact; 0 germ-free)."""
    scfa_blood_fold: float
    """Blood propionate + butyrate relative to an eubiotic untreated host."""
    butyrate_fraction: float
    """Butyrate share of the blood propionate + butyrate, in [0, 1]."""


def _phi(a: float, b: float, u: float) -> float:
    """``(exp(-a u) - exp(-b u)) / (b - a)`` for ``u >= 0``, stable (limit ``u exp(-a u)``)."""
    lo, hi = (a, b) if a <= b else (b, a)
    d = hi - lo
    if d == 0.0:
        return u * math.exp(-lo * u)
    return math.exp(-lo * u) * -math.expm1(-d * u) / d


def _community(cfg: MicrobiotaConfig, ecfg: EstrogenConfig, t: float) -> tuple[bool, float]:
    """``(colonised, dysbiosis)`` at ``t``: exact piecewise solution of the relaxation."""
    fmts = sorted((iv for iv in cfg.interventions if isinstance(iv, FMTIntervention)),
                  key=lambda iv: iv.start_day)
    probiotics = [iv for iv in cfg.interventions if isinstance(iv, ProbioticIntervention)]
    colonised = cfg.state != "germ_free"
    base = _BASE_COMMUNITY.get(cfg.state, 0.0)
    follow = 1.0 if cfg.dysbiosis_follows_estrogen else 0.0
    tau, k = cfg.dysbiosis_tau_days, ecfg.washout_rate_per_day

    breaks = set(_estrogen_breaks(ecfg)) | {iv.start_day for iv in fmts}
    for p in probiotics:
        breaks.add(p.start_day)
        if p.end_day is not None:
            breaks.add(p.end_day)
    breaks = sorted(b for b in breaks if b <= t)

    # Before the first breakpoint nothing changes: estrogen is 1, no probiotic is active,
    # and the community sits at its steady state.
    d = base if colonised else 0.0
    for i, s in enumerate(breaks):
        for iv in fmts:
            if iv.start_day == s:
                colonised, base = True, _BASE_COMMUNITY[iv.donor]
                d = base
        end = breaks[i + 1] if i + 1 < len(breaks) else t
        if not colonised:
            continue
        m = 1.0
        for p in probiotics:
            if p.active(s):
                m *= 1.0 - p.efficacy
        _, _, e_tgt = _estrogen_piece(ecfg, s)
        e_s = estrogen_level(ecfg, s)
        # Target on this piece: T(u) = A + B exp(-k u), u = time since s.
        a_ = m * (base + (1.0 - base) * follow * (1.0 - e_tgt))
        b_ = -m * (1.0 - base) * follow * (e_s - e_tgt)
        u = end - s
        d = a_ + (d - a_) * math.exp(-u / tau) + (b_ / tau) * _phi(k, 1.0 / tau, u)
    return colonised, min(1.0, max(0.0, d))


def microbiota_drive(cfg: MicrobiotaConfig, estrogen_cfg: EstrogenConfig,
                     t_days: float) -> MicrobiotaState:
    """The gut's outputs at ``t_days`` (closed form; cost grows with the number of events).

    Interventions take effect on ``[start_day, end_day)``. Probiotics act on the dysbiosis
    target (so their effect on dysbiosis and priming builds up and wears off with
    ``dysbiosis_tau_days``); SCFA effects (prebiotic, probiotic butyrate, supplement) follow
    intake without lag at the day scale. A germ-free host has no priming and only
    diet-derived SCFA; prebiotics and probiotics do nothing there (mono-colonisation is not
    modelled); FMT colonises it.
    """
    colonised, d = _community(cfg, estrogen_cfg, t_days)
    fb = cfg.butyrate_fraction_eubiotic
    if colonised:
        priming = 1.0 + cfg.th17_priming_gain * d
        prod = 1.0 - cfg.dysbiosis_scfa_loss * d
        prop, but = prod * (1.0 - fb), prod * fb
        for iv in cfg.interventions:
            if not (isinstance(iv, (PrebioticIntervention, ProbioticIntervention))
                    and iv.active(t_days)):
                continue
            if isinstance(iv, PrebioticIntervention):
                prop *= iv.scfa_fold
                but *= iv.scfa_fold
            else:
                but *= iv.butyrate_fold
    else:
        priming = 0.0
        prop = cfg.germ_free_scfa_fold * (1.0 - fb)
        but = cfg.germ_free_scfa_fold * fb
    g = cfg.supplement_gain_per_mM
    for iv in cfg.interventions:
        if isinstance(iv, SCFASupplementIntervention) and iv.active(t_days):
            share_b = {"propionate": 0.0, "butyrate": 1.0, "mix": 0.5}[iv.compound]
            prop += (1.0 - fb) * g * iv.dose_mM * (1.0 - share_b)
            but += fb * g * iv.dose_mM * share_b
    prop, but = min(prop, MAX_SCFA_FOLD), min(but, MAX_SCFA_FOLD)
    total = prop + but
    frac = but / total if total > 0.0 else fb
    return MicrobiotaState(dysbiosis=d, th17_priming=priming, scfa_blood_fold=total,
                           butyrate_fraction=frac)


# ============================================================================ IL-2

def check_dose_count(duration_days: float, interval_days: float, what: str) -> None:
    """A regimen of at most :data:`MAX_DOSES` doses (``what`` names them in the error)."""
    n = duration_days / interval_days
    if n > MAX_DOSES:
        raise ValueError(f"duration_days/interval_days = {n:.0f} {what} exceeds {MAX_DOSES}")


class IL2Config(Strict):
    """``[il2]``: an IL-2 dosing regimen and the pharmacokinetics of serum IL-2.

    Doses are given at ``start_day + n * interval_days`` for every ``n >= 0`` with
    ``n * interval_days < duration_days``.
    """

    dose_iu: float = param(
        0.0, "IU", f"{_SCENARIO}; low dose in mice ~25,000 IU/day (Baeyens et al. 2013 "
        "Diabetes 10.2337/db13-0214; seed 004)",
        "IL-2 per injection.", ge=0.0, allow_inf_nan=False)
    interval_days: float = param(
        1.0, "day", "Baeyens 2013 (daily injections)", "Time between injections.",
        gt=0.0, allow_inf_nan=False)
    start_day: Day = param(0.0, "day", _SCENARIO, "Day of the first injection.")
    duration_days: float = param(
        28.0, "day", "biology.md V7 (low-dose IL-2 for 4 weeks)",
        "Length of the regimen; injections fall in [start_day, start_day + duration_days).",
        ge=0.0, allow_inf_nan=False)
    route: Literal["sc", "ip", "iv"] = param(
        "ip", "-", "scenario default", "Route: sc/ip (first-order absorption) or iv (bolus).")
    absorption_half_life_h: float = param(
        0.5, "h",
        "Choi et al. 1989 Korean J Immunol 11:169 (i.p. IL-2 in mice peaks at ~5 min and "
        "falls with t1/2 ~30 min; with 1.6-min elimination this is flip-flop kinetics, so "
        "30 min is the absorption half-life; model t_max = 7 min). Check against serum "
        f">= 10 U/ml for 3-5 h after i.p./s.c. ({_CHANG1984}): the model keeps 1e5 IU i.p. "
        "above 10 IU/ml (40 pM) for 3.7 h (that paper's dose and unit not verified)",
        "Half-life of first-order absorption from the s.c./i.p. depot.",
        gt=0.0, allow_inf_nan=False)
    elimination_half_life_min: float = param(
        1.6, "min", f"{_CHANG1984}: i.v. serum half-life 1.6 +/- 0.3 min",
        "Serum elimination half-life.", gt=0.0, allow_inf_nan=False)
    bioavailability: float = param(
        0.3, "fraction",
        f"{_KONRAD1990}: ~30 % of i.m. IL-2 activity reaches the blood (human); assumed "
        "for mouse s.c./i.p.",
        "Fraction of an s.c./i.p. dose reaching the blood (i.v.: 1).",
        gt=0.0, le=1.0, allow_inf_nan=False)
    distribution_volume_ml: float = param(
        1.0, "ml",
        "calibrated: plasma volume of a 25-g mouse = 25 g x 72 ml/kg blood (Diehl et al. "
        "2001 J Appl Toxicol 10.1002/jat.727) x (1 - haematocrit 0.45); after an i.v. "
        f"bolus serum IL-2 = dose / plasma volume ({_KONRAD1990})",
        "Volume of distribution of the one-compartment model.",
        gt=0.0, allow_inf_nan=False)
    specific_activity_iu_per_mg: float = param(
        18e6 / 1.1, "IU/mg", "Proleukin (aldesleukin) label: 18e6 IU = 1.1 mg",
        "Specific activity used to convert IU to mass.", gt=0.0, allow_inf_nan=False)
    molecular_weight_kDa: float = param(
        15.3, "kDa",
        "Proleukin label: aldesleukin ~15,300 Da (natural glycosylated IL-2 15.5-16 kDa)",
        "Molar mass used to convert mass to moles.", gt=0.0, allow_inf_nan=False)

    treg_expansion_max: float = param(
        0.54, "1",
        "calibrated: low-dose IL-2 (25,000 IU/day) about doubles circulating and lymphoid "
        "Tregs in mice (Grinberg-Bleyer 2010 J Exp Med 207:1871; Tang 2008 Immunity 28:687); "
        "with the half dose below and 5-day decay, daily "
        "25,000 IU i.p. settles at 2.0x",
        "Largest rise of the systemic Treg pool one injection can cause (fold - 1, added "
        "per dose and decaying), reached at a bioavailable dose >> the half dose.",
        ge=0.0, le=MAX_GAIN, allow_inf_nan=False)
    treg_expansion_half_dose_iu: float = param(
        15000.0, "IU", "calibrated: IL-2R alpha-beta-gamma saturates near 10 U/ml serum (Kd "
        "~10 pM; Busse 2010 PNAS), reached for hours by 1e4-1e5 IU doses",
        "Bioavailable dose (dose x bioavailability; i.v. 1) giving half the largest "
        "per-dose Treg expansion.", gt=0.0, allow_inf_nan=False)
    treg_expansion_decay_days: float = param(
        5.0, "day", "Webster 2009 JEM 10.1084/jem.20082004: IL-2-expanded Tregs return to "
        "baseline within 1-2 weeks",
        "Time constant of the systemic Treg pool's return to baseline after a dose.",
        gt=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _dose_count(self) -> IL2Config:
        check_dose_count(self.duration_days, self.interval_days, "injections")
        return self

    @property
    def ka_per_day(self) -> float:
        return LN2 / (self.absorption_half_life_h / H_PER_DAY)

    @property
    def ke_per_day(self) -> float:
        return LN2 / (self.elimination_half_life_min / MIN_PER_DAY)

    @property
    def clearance_l_per_day(self) -> float:
        return self.ke_per_day * self.distribution_volume_ml * 1e-3


def il2_dose_times_days(cfg: IL2Config) -> np.ndarray:
    """Injection times (days); empty when ``dose_iu`` is 0."""
    if cfg.dose_iu == 0.0 or cfg.duration_days == 0.0:
        return np.empty(0)
    n = math.ceil(cfg.duration_days / cfg.interval_days - 1e-9)
    return cfg.start_day + cfg.interval_days * np.arange(n, dtype=float)


def il2_dose_pmol(cfg: IL2Config) -> float:
    """One injection in pmol (IU -> mg -> mol)."""
    grams = cfg.dose_iu / cfg.specific_activity_iu_per_mg * 1e-3
    return grams / (cfg.molecular_weight_kDa * 1e3) * 1e12


def _bolus_pM(cfg: IL2Config) -> float:
    """Serum concentration (pM) of one whole dose spread instantly in the volume."""
    return il2_dose_pmol(cfg) / (cfg.distribution_volume_ml * 1e-3)


def _phi_vec(a: float, b: float, u: np.ndarray) -> np.ndarray:
    lo, hi = (a, b) if a <= b else (b, a)
    d = hi - lo
    if d == 0.0:
        return u * np.exp(-lo * u)
    return np.exp(-lo * u) * -np.expm1(-d * u) / d


def il2_blood_pM(cfg: IL2Config, t_days: float | np.ndarray) -> float | np.ndarray:
    """Serum IL-2 (pM) at ``t_days`` (a float, or an array: vectorised).

    s.c./i.p.: ``F c0 ka (exp(-ke s) - exp(-ka s)) / (ka - ke)`` per dose, ``s`` = time since
    the dose, ``c0`` = dose / volume; i.v.: ``c0 exp(-ke s)`` (right-continuous at the
    dose). Doses superpose. Exactly 0 before the first dose.
    """
    t = np.asarray(t_days, dtype=float)
    out = np.zeros_like(t)
    times = il2_dose_times_days(cfg)
    if times.size:
        c0, ke, ka = _bolus_pM(cfg), cfg.ke_per_day, cfg.ka_per_day
        for td in times:
            s = t - td
            on = s >= 0.0
            if not on.any():
                continue
            sc = np.where(on, s, 0.0)
            if cfg.route == "iv":
                out += np.where(on, c0 * np.exp(-ke * sc), 0.0)
            else:
                out += np.where(on, cfg.bioavailability * c0 * ka * _phi_vec(ke, ka, sc), 0.0)
    return float(out) if out.ndim == 0 else out


def il2_treg_pool_fold(cfg: IL2Config, t_days: float | np.ndarray) -> float | np.ndarray:
    """Systemic (blood and lymphoid) Treg pool relative to untreated, at ``t_days``.

    IL-2 drives STAT5-dependent Treg proliferation in lymphoid organs (Webster 2009;
    Grinberg-Bleyer 2010); the marrow receives these cells through its vessels. Each
    injection adds ``a = treg_expansion_max * D / (D + D50)`` (``D`` the bioavailable
    dose in IU), which decays with ``treg_expansion_decay_days``::

        fold(t) = 1 + sum over doses t_i <= t of a * exp(-(t - t_i) / tau)

    Exactly 1 before the first dose; daily dosing settles at ``1 + a / (1 - exp(-1/tau))``.
    """
    t = np.asarray(t_days, dtype=float)
    out = np.ones_like(t)
    times = il2_dose_times_days(cfg)
    if times.size:
        f = 1.0 if cfg.route == "iv" else cfg.bioavailability
        d = cfg.dose_iu * f
        a = cfg.treg_expansion_max * d / (d + cfg.treg_expansion_half_dose_iu)
        if t.ndim == 0:  # one time (every field step): only the doses given so far, the
            # same arithmetic in the same order as below (a later dose adds exactly 0)
            s = float(t) - times[times <= float(t)]
            v = 1.0
            for term in (a * np.exp(-np.maximum(s, 0.0) / cfg.treg_expansion_decay_days)
                         ).tolist():
                v += term
            return v
        for td in times:
            s = t - td
            out += np.where(s >= 0.0, a * np.exp(-np.maximum(s, 0.0)
                                                 / cfg.treg_expansion_decay_days), 0.0)
    return float(out) if out.ndim == 0 else out


def _exp_integral(k: float, s0: float, w: float) -> float:
    """``int_{s0}^{s0 + w} exp(-k s) ds``, stable."""
    return math.exp(-k * s0) * -math.expm1(-k * w) / k


def bateman_integral(c0: float, f: float, ka: float, ke: float, s0: float,
                     s1: float) -> float:
    """Integral over ``[s0, s1]`` (times since one dose; before it the curve is 0) of the
    one-dose Bateman curve ``F c0 ka (exp(-ke s) - exp(-ka s)) / (ka - ke)``: one
    compartment with first-order absorption; exact, and stable as ``ka -> ke`` (the
    gamma-variate limit at the midpoint)."""
    s0 = max(s0, 0.0)
    if s1 <= s0:
        return 0.0
    w = s1 - s0
    lo, hi = min(ke, ka), max(ke, ka)
    if hi - lo <= 1e-6 * hi:  # near-coincident rates: gamma-variate limit at the midpoint
        m = 0.5 * (lo + hi)
        integral = ((1.0 + m * s0) * math.exp(-m * s0)
                    - (1.0 + m * s1) * math.exp(-m * s1)) / (m * m)
    else:
        integral = (_exp_integral(lo, s0, w) - _exp_integral(hi, s0, w)) / (hi - lo)
    return f * c0 * ka * integral


def _il2_integral_one(cfg: IL2Config, s0: float, s1: float) -> float:
    """Integral (pM * day) of one dose's curve over ``[s0, s1]`` (times since the dose)."""
    c0, ke, ka = _bolus_pM(cfg), cfg.ke_per_day, cfg.ka_per_day
    if cfg.route == "iv":
        s0 = max(s0, 0.0)
        return 0.0 if s1 <= s0 else c0 * _exp_integral(ke, s0, s1 - s0)
    return bateman_integral(c0, cfg.bioavailability, ka, ke, s0, s1)


def regimen_mean(times: np.ndarray, integral_one, level_at, t0_days: float,
                 t1_days: float, what: str) -> float:
    """Exact time average over ``[t0_days, t1_days]`` of a level made of one curve per dose
    at ``times``: ``integral_one(s0, s1)`` integrates one dose's curve over times since the
    dose, ``level_at(t)`` is the level itself (for an empty interval)."""
    if t1_days < t0_days:
        raise ValueError(f"{what}: t1_days={t1_days} < t0_days={t0_days}")
    if t1_days == t0_days:
        return float(level_at(t0_days))
    total = 0.0
    for td in times:
        if td < t1_days:
            total += integral_one(t0_days - td, t1_days - td)
    return total / (t1_days - t0_days)


def il2_mean_pM(cfg: IL2Config, t0_days: float, t1_days: float) -> float:
    """Exact time average of serum IL-2 (pM) over ``[t0_days, t1_days]`` (closed form)."""
    return regimen_mean(il2_dose_times_days(cfg),
                        lambda s0, s1: _il2_integral_one(cfg, s0, s1),
                        lambda t: il2_blood_pM(cfg, t), t0_days, t1_days, "il2_mean_pM")


# ============================================================================ all together

@dataclass(frozen=True)
class HostState:
    """Every host factor at one time (what the model reads at each field step)."""

    estrogen: float
    """Systemic estradiol, fraction of intact."""
    dysbiosis: float
    """Gut dysbiosis index in [0, 1]."""
    th17_priming: float
    """Relative gut Th17/TNF priming drive (1 eubiotic intact, 0 germ-free)."""
    scfa_blood_fold: float
    """Blood propionate + butyrate relative to eubiotic."""
    butyrate_fraction: float
    """Butyrate share of blood propionate + butyrate."""
    il2_blood_pM: float
    """Serum IL-2 (pM): instantaneous, or the mean over the step when ``dt_days`` is given."""
    treg_pool_fold: float = 1.0
    """Systemic Treg pool relative to untreated (IL-2 therapy; :func:`il2_treg_pool_fold`)."""
    anti_rankl_marrow_pM: float = 0.0
    """Free anti-RANKL antibody in the marrow (pM; :mod:`niche.scenario.therapy`)."""
    bisphosphonate_bound_ug_per_kg: float = 0.0
    """Mineral-bound bisphosphonate (ug per kg body weight; :mod:`niche.scenario.therapy`)."""
    pth_serum_pM: float = 0.0
    """Serum PTH (pM), the mean over the field step (:mod:`niche.scenario.therapy`)."""


def host_state(estrogen: EstrogenConfig, microbiota: MicrobiotaConfig, il2: IL2Config,
               t_days: float, dt_days: float | None = None) -> HostState:
    """All host factors at ``t_days``.

    With ``dt_days`` the IL-2 value is the exact mean over ``[t_days, t_days + dt_days]``
    (IL-2 pulses last hours; a field step is ~10 min), the others are taken at ``t_days``.
    """
    mb = microbiota_drive(microbiota, estrogen, t_days)
    il = (il2_blood_pM(il2, t_days) if dt_days is None
          else il2_mean_pM(il2, t_days, t_days + dt_days))
    return HostState(estrogen=estrogen_level(estrogen, t_days), dysbiosis=mb.dysbiosis,
                     th17_priming=mb.th17_priming, scfa_blood_fold=mb.scfa_blood_fold,
                     butyrate_fraction=mb.butyrate_fraction, il2_blood_pM=float(il),
                     treg_pool_fold=float(il2_treg_pool_fold(il2, t_days)))


# ============================================================================ parameter table

def _collect(prefix: str, model: type[BaseModel]) -> list[dict[str, Any]]:
    rows = []
    for r in parameter_rows(model, prefix, nested=False, dotted=True):
        if r["name"].endswith(".kind") or not r["documented"]:
            continue
        value = list(r["value"]) if isinstance(r["value"], tuple) else r["value"]
        rows.append({"name": r["name"], "value": value, "unit": r["unit"],
                     "source": r["source"], "description": r["description"]})
    return rows


#: Every default of this module: ``name`` (dotted TOML key), ``value``, ``unit``,
#: ``source`` (citation, or ``calibrated: <how>``) and ``description``.
PARAMETERS: list[dict[str, Any]] = [
    *_collect("estrogen", EstrogenConfig),
    *_collect("microbiota", MicrobiotaConfig),
    *_collect("microbiota.interventions[probiotic]", ProbioticIntervention),
    *_collect("microbiota.interventions[prebiotic]", PrebioticIntervention),
    *_collect("microbiota.interventions[fmt]", FMTIntervention),
    *_collect("microbiota.interventions[scfa_supplement]", SCFASupplementIntervention),
    *_collect("il2", IL2Config),
]
