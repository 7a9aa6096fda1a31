"""Host factors (niche.scenario.host): estrogen, microbiota and IL-2 against analytic expectations."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from pydantic import ValidationError

from niche.scenario.host import (
    PARAMETERS,
    EstrogenConfig,
    IL2Config,
    MicrobiotaConfig,
    estrogen_level,
    host_state,
    il2_blood_pM,
    il2_dose_pmol,
    il2_dose_times_days,
    il2_mean_pM,
    il2_treg_pool_fold,
    microbiota_drive,
)

LN2 = math.log(2.0)


def _trapz(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


# ----------------------------------------------------------------------------- estrogen

def test_estrogen_intact_is_one_and_ovx_decays_with_half_life():
    assert estrogen_level(EstrogenConfig(), 100.0) == 1.0
    cfg = EstrogenConfig(ovariectomy_day=5.0, washout_half_life_days=0.5, ovx_residual=0.1)
    assert estrogen_level(cfg, 4.999) == 1.0
    assert estrogen_level(cfg, 5.0) == 1.0
    for n in (1, 2, 5):  # after n half-lives the excess over the residual is 2^-n
        e = estrogen_level(cfg, 5.0 + 0.5 * n)
        assert e == pytest.approx(0.1 + 0.9 * 2.0 ** -n, rel=1e-12)
    assert estrogen_level(cfg, 200.0) == pytest.approx(0.1, abs=1e-12)


def test_estrogen_replacement_restores_continuously():
    cfg = EstrogenConfig(ovariectomy_day=0.0, replacement_day=10.0, replacement_level=1.0,
                         washout_half_life_days=0.5, ovx_residual=0.1)
    e10 = estrogen_level(cfg, 10.0)
    assert e10 == pytest.approx(0.1 + 0.9 * 2.0 ** -20, rel=1e-12)
    assert abs(estrogen_level(cfg, 10.0 - 1e-9) - e10) < 1e-8  # continuous at the switch
    # rises toward the replacement level with the same half-life
    assert estrogen_level(cfg, 10.5) == pytest.approx(1.0 - (1.0 - e10) / 2.0, rel=1e-12)
    assert estrogen_level(cfg, 60.0) == pytest.approx(1.0, abs=1e-12)
    half = EstrogenConfig(ovariectomy_day=0.0, replacement_day=10.0, replacement_level=0.6)
    assert estrogen_level(half, 60.0) == pytest.approx(0.6, abs=1e-12)


# ----------------------------------------------------------------------------- microbiota

def test_germ_free_has_no_priming_and_low_scfa():
    e = EstrogenConfig(ovariectomy_day=0.0)
    gf = microbiota_drive(MicrobiotaConfig(state="germ_free"), e, 30.0)
    assert gf.th17_priming == 0.0 and gf.dysbiosis == 0.0
    assert gf.scfa_blood_fold <= 0.1
    eu = microbiota_drive(MicrobiotaConfig(), EstrogenConfig(), 30.0)
    assert eu.th17_priming == pytest.approx(1.0, abs=1e-12)
    assert eu.scfa_blood_fold == pytest.approx(1.0, abs=1e-12)


def test_dysbiosis_follows_estrogen_loss_with_its_time_constant():
    k_half, tau = 0.5, 7.0
    e = EstrogenConfig(ovariectomy_day=2.0, washout_half_life_days=k_half, ovx_residual=0.1)
    m = MicrobiotaConfig(dysbiosis_tau_days=tau, th17_priming_gain=1.0)
    k = LN2 / k_half
    assert microbiota_drive(m, e, 1.0).dysbiosis == 0.0
    for t in (2.5, 5.0, 9.0, 30.0):
        u = t - 2.0
        # dD/dt = ((1 - E) - D)/tau, 1 - E = 0.9 (1 - exp(-k u)), D(0) = 0
        expected = 0.9 * (1.0 - math.exp(-u / tau)) - 0.9 * (
            (math.exp(-k * u) - math.exp(-u / tau)) / (1.0 - k * tau))
        st = microbiota_drive(m, e, t)
        assert st.dysbiosis == pytest.approx(expected, rel=1e-10, abs=1e-14)
        assert st.th17_priming == pytest.approx(1.0 + expected, rel=1e-10)
    # without the coupling, OVX leaves the gut alone
    off = MicrobiotaConfig(dysbiosis_follows_estrogen=False)
    assert microbiota_drive(off, e, 30.0).dysbiosis == 0.0


def test_dysbiosis_degenerate_rates_match_limit():
    # washout rate == 1/tau: the solution is the limit form (no division by zero)
    tau = 2.0
    e = EstrogenConfig(ovariectomy_day=0.0, washout_half_life_days=tau * LN2, ovx_residual=0.0)
    d = microbiota_drive(MicrobiotaConfig(dysbiosis_tau_days=tau), e, 3.0).dysbiosis
    u = 3.0
    assert d == pytest.approx(1.0 - math.exp(-u / tau) - (u / tau) * math.exp(-u / tau),
                              rel=1e-12)


def test_probiotic_reduces_priming_by_its_efficacy():
    e = EstrogenConfig(ovariectomy_day=0.0)
    plain = MicrobiotaConfig()
    pro = MicrobiotaConfig(interventions=[{"kind": "probiotic", "strain": "VSL3",
                                           "efficacy": 0.6, "start_day": 0.0}])
    t = 200.0  # >> tau: steady state
    ex_plain = microbiota_drive(plain, e, t).th17_priming - 1.0
    ex_pro = microbiota_drive(pro, e, t).th17_priming - 1.0
    assert ex_plain > 0.5
    assert ex_pro == pytest.approx((1.0 - 0.6) * ex_plain, rel=1e-9)
    # stopping it lets dysbiosis return with tau
    stop = MicrobiotaConfig(interventions=[{"kind": "probiotic", "efficacy": 0.6,
                                            "start_day": 0.0, "end_day": 100.0}])
    d_end = microbiota_drive(stop, e, 100.0).dysbiosis
    d_inf = microbiota_drive(plain, e, 200.0).dysbiosis
    d_later = microbiota_drive(stop, e, 107.0).dysbiosis
    assert d_later == pytest.approx(d_inf + (d_end - d_inf) * math.exp(-1.0), rel=1e-9)


def test_supplement_raises_scfa_monotonically_with_dose():
    e = EstrogenConfig()
    folds, fracs = [], []
    for dose in (0.0, 25.0, 50.0, 100.0, 150.0, 300.0):
        m = MicrobiotaConfig(interventions=[{"kind": "scfa_supplement", "compound": "butyrate",
                                             "dose_mM": dose, "start_day": 1.0}])
        assert microbiota_drive(m, e, 0.5).scfa_blood_fold == pytest.approx(1.0)
        st = microbiota_drive(m, e, 2.0)
        folds.append(st.scfa_blood_fold)
        fracs.append(st.butyrate_fraction)
    assert folds[0] == pytest.approx(1.0)
    assert all(b > a for a, b in itertools.pairwise(folds))
    assert all(b > a for a, b in itertools.pairwise(fracs))  # butyrate raises butyrate's share
    prop = MicrobiotaConfig(interventions=[{"kind": "scfa_supplement",
                                            "compound": "propionate", "dose_mM": 150.0}])
    st = microbiota_drive(prop, e, 1.0)
    assert st.butyrate_fraction < MicrobiotaConfig().butyrate_fraction_eubiotic
    # germ-free: the supplement is the only SCFA source that works
    gf = MicrobiotaConfig(state="germ_free", interventions=[
        {"kind": "scfa_supplement", "dose_mM": 150.0},
        {"kind": "prebiotic", "scfa_fold": 3.0}])
    gf0 = microbiota_drive(MicrobiotaConfig(state="germ_free"), e, 1.0).scfa_blood_fold
    assert microbiota_drive(gf, e, 1.0).scfa_blood_fold > gf0


def test_prebiotic_and_dysbiosis_change_scfa():
    e = EstrogenConfig(ovariectomy_day=0.0)
    m = MicrobiotaConfig(dysbiosis_scfa_loss=0.3)
    late = microbiota_drive(m, e, 300.0)
    assert late.scfa_blood_fold == pytest.approx(1.0 - 0.3 * late.dysbiosis, rel=1e-12)
    pre = MicrobiotaConfig(interventions=[{"kind": "prebiotic", "scfa_fold": 2.0,
                                           "start_day": 0.0, "end_day": 10.0}])
    assert microbiota_drive(pre, EstrogenConfig(), 5.0).scfa_blood_fold == pytest.approx(2.0)
    assert microbiota_drive(pre, EstrogenConfig(), 10.0).scfa_blood_fold == pytest.approx(1.0)


def test_fmt_resets_the_community():
    e = EstrogenConfig(ovariectomy_day=0.0, ovx_residual=0.1)
    tau = 7.0
    fmt = MicrobiotaConfig(dysbiosis_tau_days=tau, interventions=[
        {"kind": "fmt", "donor": "eubiotic", "start_day": 60.0}])
    before = microbiota_drive(fmt, e, 59.999).dysbiosis
    assert before > 0.8
    assert microbiota_drive(fmt, e, 60.0).dysbiosis == 0.0
    # then the estrogen-deficient host re-induces dysbiosis toward 0.9 with tau
    assert microbiota_drive(fmt, e, 67.0).dysbiosis == pytest.approx(
        0.9 * (1.0 - math.exp(-1.0)), rel=1e-9)
    # dysbiotic donor into an intact host: transmissible dysbiosis
    bad = MicrobiotaConfig(interventions=[{"kind": "fmt", "donor": "dysbiotic",
                                           "start_day": 3.0}])
    assert microbiota_drive(bad, EstrogenConfig(), 2.0).dysbiosis == 0.0
    assert microbiota_drive(bad, EstrogenConfig(), 3.0).dysbiosis == 1.0
    # germ-free host is colonised by FMT
    gf = MicrobiotaConfig(state="germ_free", interventions=[{"kind": "fmt", "start_day": 5.0}])
    assert microbiota_drive(gf, EstrogenConfig(), 4.0).th17_priming == 0.0
    assert microbiota_drive(gf, EstrogenConfig(), 5.0).th17_priming == pytest.approx(1.0)


# ----------------------------------------------------------------------------- IL-2

def _single(route: str = "ip", **kw) -> IL2Config:
    return IL2Config(dose_iu=25_000.0, route=route, start_day=0.0, duration_days=1.0, **kw)


def test_il2_dose_conversion():
    # 25,000 IU / (18e6 IU / 1.1 mg) = 1.528 ug; / 15.3 kDa = 99.9 pmol
    assert il2_dose_pmol(_single()) == pytest.approx(25_000 / (18e6 / 1.1) * 1e-3 / 15_300 * 1e12,
                                                    rel=1e-12)
    assert il2_dose_pmol(_single()) == pytest.approx(99.87, rel=1e-3)
    reg = IL2Config(dose_iu=1.0, start_day=28.0, duration_days=28.0, interval_days=1.0)
    times = il2_dose_times_days(reg)
    assert len(times) == 28 and times[0] == 28.0 and times[-1] == 55.0
    assert il2_dose_times_days(IL2Config()).size == 0


def test_il2_bateman_auc_times_clearance_is_bioavailable_dose():
    cfg = _single("sc")
    t = np.concatenate([np.linspace(0.0, 0.02, 200_001), np.linspace(0.02, 2.0, 200_001)[1:]])
    c = il2_blood_pM(cfg, t)
    auc = _trapz(c, t)  # pM * day
    amount = auc * cfg.clearance_l_per_day  # pmol
    assert amount == pytest.approx(cfg.bioavailability * il2_dose_pmol(cfg), rel=1e-4)
    iv = _single("iv")
    c = il2_blood_pM(iv, t)
    assert _trapz(c, t) * iv.clearance_l_per_day == pytest.approx(il2_dose_pmol(iv), rel=1e-4)


def test_il2_peak_time_matches_analytic():
    cfg = _single("ip")
    ka, ke = cfg.ka_per_day, cfg.ke_per_day
    tmax = math.log(ka / ke) / (ka - ke)
    assert 5.0 < tmax * 1440 < 10.0  # minutes
    t = np.linspace(0.0, 3 * tmax, 300_001)
    c = il2_blood_pM(cfg, t)
    dt = t[1] - t[0]
    assert abs(t[int(np.argmax(c))] - tmax) <= dt
    # after the peak the curve falls with the absorption half-life (flip-flop)
    h = cfg.absorption_half_life_h / 24.0
    assert il2_blood_pM(cfg, 0.3 + h) / il2_blood_pM(cfg, 0.3) == pytest.approx(0.5, rel=1e-6)


def test_il2_iv_bolus_decays_with_elimination_half_life():
    cfg = _single("iv")
    c0 = il2_blood_pM(cfg, 0.0)
    assert c0 == pytest.approx(il2_dose_pmol(cfg) / 1e-3, rel=1e-12)  # dose / 1 ml
    half = 1.6 / 1440.0
    for n in (1, 2, 4):
        assert il2_blood_pM(cfg, n * half) / c0 == pytest.approx(2.0 ** -n, rel=1e-10)


def test_il2_interval_mean_equals_fine_average():
    cfg = IL2Config(dose_iu=25_000.0, route="sc", start_day=0.0, duration_days=5.0)
    step = 10.0 / 1440.0
    cases = [(0.0, step), (1.0 - step / 3, 1.0 + 2 * step / 3), (2.01, 2.01 + step),
             (0.5, 1.5), (-0.2, 0.05)]
    for t0, t1 in cases:
        pts = [np.linspace(t0, t1, 400_001)]
        pts += [np.array([d]) for d in il2_dose_times_days(cfg) if t0 < d < t1]
        t = np.unique(np.concatenate(pts))
        num = _trapz(il2_blood_pM(cfg, t), t) / (t1 - t0)
        assert il2_mean_pM(cfg, t0, t1) == pytest.approx(num, rel=1e-6)
    iv = IL2Config(dose_iu=25_000.0, route="iv", duration_days=2.0)
    t = np.linspace(0.0, step, 400_001)
    num = _trapz(il2_blood_pM(iv, t), t) / step
    assert il2_mean_pM(iv, 0.0, step) == pytest.approx(num, rel=1e-6)
    st = host_state(EstrogenConfig(), MicrobiotaConfig(), cfg, 1.0, dt_days=step)
    assert st.il2_blood_pM == pytest.approx(il2_mean_pM(cfg, 1.0, 1.0 + step), rel=1e-12)


def test_il2_zero_before_start_and_after_washout():
    cfg = IL2Config(dose_iu=25_000.0, start_day=10.0, duration_days=3.0)
    assert il2_blood_pM(cfg, 9.999) == 0.0
    assert il2_mean_pM(cfg, 0.0, 9.999) == 0.0
    assert il2_blood_pM(cfg, 10.0 + 1.0 / 1440) > 100.0  # pM, minutes after the dose
    assert il2_blood_pM(cfg, 12.0 + 2.0) < 1e-12
    assert il2_blood_pM(IL2Config(), 5.0) == 0.0  # default: untreated


def test_il2_treg_pool_matches_closed_form():
    """Systemic Treg pool: exactly 1 untreated and before the first dose; each dose adds
    a = max * D / (D + D50) (D bioavailable IU) decaying with tau; daily dosing settles at
    1 + a / (1 - exp(-1/tau)); it returns to 1 after the regimen."""
    cfg = IL2Config(dose_iu=25_000.0, start_day=28.0, duration_days=28.0)
    assert il2_treg_pool_fold(IL2Config(), 40.0) == 1.0
    assert il2_treg_pool_fold(cfg, 27.999) == 1.0
    d = 25_000.0 * cfg.bioavailability
    a = cfg.treg_expansion_max * d / (d + cfg.treg_expansion_half_dose_iu)
    tau = cfg.treg_expansion_decay_days
    assert il2_treg_pool_fold(cfg, 28.0) == pytest.approx(1.0 + a, rel=1e-12)
    # just after the 28th dose (day 55): geometric sum of 28 doses one day apart
    q = math.exp(-1.0 / tau)
    assert il2_treg_pool_fold(cfg, 55.0) == pytest.approx(1.0 + a * (1 - q ** 28) / (1 - q),
                                                          rel=1e-12)
    assert il2_treg_pool_fold(cfg, 55.0) == pytest.approx(1.0 + a / (1 - q), rel=5e-3)  # q^28
    assert 1.8 <= il2_treg_pool_fold(cfg, 55.0) <= 2.2  # low dose ~doubles Tregs (calibrated)
    later = il2_treg_pool_fold(cfg, 55.0 + 3 * tau)
    assert later - 1.0 == pytest.approx((il2_treg_pool_fold(cfg, 55.0) - 1.0)
                                        * math.exp(-3.0), rel=1e-12)
    # the same dose i.v. is fully bioavailable; a higher dose expands more
    iv = IL2Config(dose_iu=25_000.0, start_day=28.0, duration_days=28.0, route="iv")
    hi = IL2Config(dose_iu=250_000.0, start_day=28.0, duration_days=28.0)
    assert il2_treg_pool_fold(iv, 40.0) > il2_treg_pool_fold(cfg, 40.0)
    assert il2_treg_pool_fold(hi, 40.0) > il2_treg_pool_fold(iv, 40.0)
    st = host_state(EstrogenConfig(), MicrobiotaConfig(), cfg, 40.0)
    assert st.treg_pool_fold == il2_treg_pool_fold(cfg, 40.0)


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("model, kwargs, key", [
    (IL2Config, {"dose_iu": -1.0}, "dose_iu"),
    (IL2Config, {"interval_days": 0.0}, "interval_days"),
    (IL2Config, {"route": "oral"}, "route"),
    (EstrogenConfig, {"ovariectomy_day": 5.0, "replacement_day": 3.0}, "replacement_day"),
    (EstrogenConfig, {"replacement_day": 3.0}, "replacement_day"),
    (EstrogenConfig, {"ovx_residual": 1.5}, "ovx_residual"),
    (EstrogenConfig, {"ovx_day": 1.0}, "ovx_day"),
    (MicrobiotaConfig, {"colour": "green"}, "colour"),
    (MicrobiotaConfig, {"interventions": [{"kind": "probiotic", "dose_mM": 3}]}, "dose_mM"),
    (MicrobiotaConfig, {"interventions": [{"kind": "probiotic", "efficacy": 2}]}, "efficacy"),
    (MicrobiotaConfig, {"interventions": [{"kind": "scfa_supplement", "dose_mM": -1}]},
     "dose_mM"),
    (MicrobiotaConfig, {"interventions": [{"kind": "prebiotic", "start_day": 5,
                                           "end_day": 2}]}, "end_day"),
    (MicrobiotaConfig, {"interventions": [{"kind": "antibiotic"}]}, "kind"),
])
def test_bad_input_names_the_key(model, kwargs, key):
    with pytest.raises(ValidationError) as err:
        model(**kwargs)
    assert key in str(err.value)


def test_models_are_frozen_and_toml_shaped():
    import tomllib

    raw = tomllib.loads("""
[microbiota]
state = "eubiotic"
[[microbiota.interventions]]
kind = "scfa_supplement"
compound = "propionate"
dose_mM = 150
start_day = 0
[[microbiota.interventions]]
kind = "fmt"
donor = "eubiotic"
start_day = 7
""")
    m = MicrobiotaConfig.model_validate(raw["microbiota"])
    assert [iv.kind for iv in m.interventions] == ["scfa_supplement", "fmt"]
    with pytest.raises(ValidationError):
        m.state = "dysbiotic"  # type: ignore[misc]
    hash(m)  # frozen all the way down (tuples), usable as a cache key


def test_parameters_table_is_complete_and_sourced():
    names = {p["name"] for p in PARAMETERS}
    for key in ("estrogen.washout_half_life_days", "estrogen.ovx_residual",
                "microbiota.dysbiosis_tau_days", "microbiota.germ_free_scfa_fold",
                "microbiota.supplement_gain_per_mM",
                "microbiota.interventions[probiotic].efficacy",
                "microbiota.interventions[prebiotic].scfa_fold",
                "il2.elimination_half_life_min", "il2.absorption_half_life_h",
                "il2.distribution_volume_ml", "il2.specific_activity_iu_per_mg",
                "il2.molecular_weight_kDa", "il2.bioavailability"):
        assert key in names
    for p in PARAMETERS:
        assert p["source"].strip() and p["unit"].strip() and p["description"].strip(), p
    by = {p["name"]: p for p in PARAMETERS}
    assert by["il2.elimination_half_life_min"]["value"] == IL2Config().elimination_half_life_min
    assert "6334141" in by["il2.elimination_half_life_min"]["source"]
