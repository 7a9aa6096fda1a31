"""Comparator therapies (niche.scenario.therapy): anti-RANKL antibody, bisphosphonate,
intermittent PTH. Pharmacokinetics against analytic solutions, each mechanism against its
formula, the scenarios on tiny domains, and the config errors."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from niche import NicheModel, load_scenario
from niche.biology import monocyte, osteoblast, osteoclast
from niche.biology.context import occupancy
from niche.core.cells import State
from niche.scenario import ConfigError
from niche.scenario.therapy import (
    AntiRANKLConfig, BisphosphonateConfig, PTHConfig, anti_rankl_marrow_pM, anti_rankl_serum_pM,
    bisphosphonate_apoptosis_per_day, bisphosphonate_bound_ug_per_kg, dose_times_days,
    pth_mean_pM, pth_recruit_factor, pth_serum_pM, pth_signal, pth_survival_factor)

from .conftest import tiny_overrides

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- PK

def _bateman(cfg, s):
    """Analytic one-dose one-compartment curve with first-order absorption."""
    ka, ke = cfg.ka_per_day, cfg.ke_per_day
    return cfg.bioavailability * cfg.c0_pM * ka / (ka - ke) * (np.exp(-ke * s) - np.exp(-ka * s))


def test_anti_rankl_single_dose_is_the_bateman_curve_with_auc_f_dose_over_cl():
    cfg = AntiRANKLConfig(dose_mg_per_kg=10.0, start_day=2.0, duration_days=1.0)
    assert dose_times_days(cfg).tolist() == [2.0]
    t = np.linspace(0.0, 2.0 + 40 * cfg.elimination_half_life_days, 400_001)
    c = anti_rankl_serum_pM(cfg, t)
    assert np.all(c[t < 2.0] == 0.0)
    on = t >= 2.0
    np.testing.assert_allclose(c[on], _bateman(cfg, t[on] - 2.0), rtol=1e-10, atol=1e-9)
    # AUC = F * dose / CL, CL = ke * V (pM * day): trapezoid on a fine grid, 0.1 %
    mol_pmol = cfg.dose_mg_per_kg * cfg.body_weight_g * 1e-6 / (cfg.molecular_weight_kDa * 1e3) * 1e12
    auc = cfg.bioavailability * mol_pmol / (cfg.ke_per_day * cfg.volume_l)
    assert np.trapezoid(c, t) == pytest.approx(auc, rel=1e-3)
    # the marrow sees the serum level times the biodistribution coefficient
    assert anti_rankl_marrow_pM(cfg, 5.0) == pytest.approx(
        anti_rankl_serum_pM(cfg, 5.0) * cfg.marrow_to_serum, rel=1e-12)


def test_anti_rankl_repeated_doses_reach_the_analytic_steady_state_trough():
    tau = 3.5
    cfg = AntiRANKLConfig(dose_mg_per_kg=10.0, interval_days=tau, duration_days=60 * tau)
    ka, ke = cfg.ka_per_day, cfg.ke_per_day
    trough = (cfg.bioavailability * cfg.c0_pM * ka / (ka - ke)
              * (math.exp(-ke * tau) / -math.expm1(-ke * tau)
                 - math.exp(-ka * tau) / -math.expm1(-ka * tau)))
    t_last = 59 * tau  # just before the 60th dose: 59 doses given, ke * 59 tau ~ 20
    assert anti_rankl_serum_pM(cfg, t_last - 1e-12) == pytest.approx(trough, rel=1e-6)


def test_pth_interval_mean_is_the_exact_integral_and_pulses_are_short():
    cfg = PTHConfig(dose_ug_per_kg=80.0, start_day=1.0, duration_days=5.0)
    t = np.linspace(3.0, 3.0 + 1.0 / 24.0, 200_001)   # one hour from the third dose on
    num = np.trapezoid(pth_serum_pM(cfg, t), t) / (t[-1] - t[0])
    assert pth_mean_pM(cfg, t[0], t[-1]) == pytest.approx(num, rel=1e-6)
    # at steady state each interval holds one dose's AUC: mean = F c0 / (ke * interval)
    assert pth_mean_pM(cfg, 3.0, 4.0) == pytest.approx(
        cfg.bioavailability * cfg.c0_pM / cfg.ke_per_day, rel=1e-6)
    # a pulse: peaks within the hour (t_max = ln(ke/ka)/(ke-ka)), gone within 12 h
    ka, ke = cfg.ka_per_day, cfg.ke_per_day
    t_max = math.log(ke / ka) / (ke - ka)
    assert t_max * 1440 < 60
    peak = pth_serum_pM(cfg, 3.0 + t_max)
    assert pth_serum_pM(cfg, 3.5) < 1e-3 * peak
    assert pth_serum_pM(cfg, 0.99) == 0.0


def test_bisphosphonate_binds_at_once_and_leaves_bone_with_its_half_life():
    cfg = BisphosphonateConfig(dose_ug_per_kg=100.0, start_day=10.0)
    b0 = cfg.skeletal_uptake * 100.0
    assert bisphosphonate_bound_ug_per_kg(cfg, 9.999) == 0.0
    assert bisphosphonate_bound_ug_per_kg(cfg, 10.0) == pytest.approx(b0, rel=1e-12)
    h = cfg.bound_half_life_days
    assert bisphosphonate_bound_ug_per_kg(cfg, 10.0 + h) == pytest.approx(b0 / 2, rel=1e-12)
    two = BisphosphonateConfig(dose_ug_per_kg=100.0, interval_days=28.0, duration_days=29.0)
    assert bisphosphonate_bound_ug_per_kg(two, 28.0) == pytest.approx(
        b0 * (1 + math.exp(-LN2 * 28.0 / h)), rel=1e-12)


def test_no_dose_means_no_drug():
    for f, cfg in ((anti_rankl_serum_pM, AntiRANKLConfig()), (pth_serum_pM, PTHConfig()),
                   (bisphosphonate_bound_ug_per_kg, BisphosphonateConfig())):
        assert dose_times_days(cfg).size == 0
        assert f(cfg, np.linspace(-5, 50, 11)).tolist() == [0.0] * 11


# ----------------------------------------------------------------------------- mechanisms

def _model_ctx(name, day, **ov):
    """A tiny model of ``name`` with its host forcing (therapies included) set to ``day``."""
    m = NicheModel(load_scenario(name, tiny_overrides(0.1) | {
        "domain.shape_voxels": [20, 20, 20], "cells.osteoclast.initial_per_mm3": 20000.0} | ov))
    m.rules.forcing(m, day)
    return m, m.rules._ctx_now(m, 1.0 / 24.0)


def test_anti_rankl_is_a_decoy_on_soluble_and_membrane_rankl():
    m, ctx = _model_ctx("ovx_antirankl", 30.0)
    drug = ctx.host.anti_rankl_marrow_pM
    assert drug > 1e3  # nM in the marrow two days after the first dose
    s = ctx.slots("monocyte")
    p = ctx.P.monocyte
    kd = m.scenario.anti_rankl.kd_pM
    for on_bone in (np.zeros(s.size, bool), np.ones(s.size, bool)):
        rankl = ctx.conc("RANKL", s) + osteoblast.surface_rankl_pM(ctx, s, on_bone)
        opg = ctx.conc("OPG", s) / p.opg_k_pM
        want = occupancy(rankl / (1.0 + opg + drug / kd), p.rankl_k_pM)
        np.testing.assert_allclose(monocyte.rankl_signal(ctx, s, on_bone), want, rtol=1e-12)
        untreated = dataclasses.replace(ctx, host=dataclasses.replace(ctx.host,
                                                                      anti_rankl_marrow_pM=0.0))
        r0 = monocyte.rankl_signal(untreated, s, on_bone)
        np.testing.assert_allclose(r0, occupancy(rankl / (1.0 + opg), p.rankl_k_pM), rtol=1e-12)
        assert np.all(monocyte.rankl_signal(ctx, s, on_bone) <= r0)
    # membrane RANKL is blocked too: on bone the untreated signal is large, the treated tiny
    assert r0.mean() > 0.1 and monocyte.rankl_signal(ctx, s, on_bone).mean() < 0.01 * r0.mean()


def test_bisphosphonate_kills_resorbing_osteoclasts_only_at_a_rate_rising_with_bound_drug():
    cfg = BisphosphonateConfig()
    rates = [bisphosphonate_apoptosis_per_day(cfg, b) for b in (0.0, 1.0, 5.0, 50.0, 1e6)]
    assert rates[0] == 0.0 and np.all(np.diff(rates) > 0)
    assert rates[2] == pytest.approx(cfg.max_apoptosis_per_day / 2)
    assert rates[-1] == pytest.approx(cfg.max_apoptosis_per_day, rel=1e-5)

    m, ctx = _model_ctx("ovx_zoledronate", 2.0)
    s = ctx.slots("osteoclast")
    assert s.size >= 4
    res = np.zeros(s.size, bool)
    res[::2] = True
    ctx.set_flag(s[res], State.RESORBING)
    ctx.set_flag(s[~res], State.RESORBING, on=False)
    bound = ctx.host.bisphosphonate_bound_ug_per_kg
    assert bound == pytest.approx(bisphosphonate_bound_ug_per_kg(m.scenario.bisphosphonate, 2.0))
    treated = osteoclast.apoptosis_rate(ctx, s)
    untreated = osteoclast.apoptosis_rate(dataclasses.replace(
        ctx, host=dataclasses.replace(ctx.host, bisphosphonate_bound_ug_per_kg=0.0)), s)
    extra = bisphosphonate_apoptosis_per_day(m.scenario.bisphosphonate, bound)
    np.testing.assert_array_equal(treated[~res], untreated[~res])
    np.testing.assert_allclose(treated[res] - untreated[res], extra, rtol=1e-12)
    assert extra > 10 * untreated.max()


def test_pth_raises_osteoblast_recruitment_and_survival_during_pulses_only(monkeypatch):
    seen: list[np.ndarray] = []
    real_hazard = osteoblast.hazard

    def recording_hazard(rate, dt):
        seen.append(np.array(rate, dtype=float, copy=True))
        return real_hazard(rate, dt)

    monkeypatch.setattr(osteoblast, "hazard", recording_hazard)
    m, ctx = _model_ctx("ovx_pth", 30.0)
    cfg = m.scenario.pth
    by_time = {}
    for label, day in (("pulse", 30.01), ("trough", 30.9), ("before", 27.5)):
        m.rules.forcing(m, day)
        ctx = m.rules._ctx_now(m, 1.0 / 24.0)
        seen.clear()
        osteoblast.recruit(ctx)
        s = ctx.slots("osteoblast")
        by_time[label] = (ctx.host.pth_serum_pM, seen[0], osteoblast.death_rate(ctx, s, 7.0),
                          ctx)
    pth_pulse, rec_pulse, death_pulse, ctx_pulse = by_time["pulse"]
    pth_before, rec_before, death_before, _ = by_time["before"]
    assert pth_before == 0.0  # before the regimen: no PTH
    assert pth_signal(cfg, pth_pulse) > 0.8
    assert pth_signal(cfg, by_time["trough"][0]) < 1e-3
    # recruitment: the same candidate voxels, the rate times exactly 1 + gain * signal
    untreated = dataclasses.replace(ctx_pulse, host=dataclasses.replace(ctx_pulse.host,
                                                                        pth_serum_pM=0.0))
    seen.clear()
    osteoblast.recruit(untreated)
    np.testing.assert_allclose(rec_pulse / seen[0], pth_recruit_factor(cfg, pth_pulse),
                               rtol=1e-12)
    assert pth_recruit_factor(cfg, pth_pulse) > 5
    # survival: the death rate divided by 1 + survival_gain * signal
    s = ctx_pulse.slots("osteoblast")
    np.testing.assert_allclose(osteoblast.death_rate(untreated, s, 7.0) / death_pulse,
                               pth_survival_factor(cfg, pth_pulse), rtol=1e-12)
    # between pulses both factors are ~1
    assert pth_recruit_factor(cfg, by_time["trough"][0]) < 1.01
    assert pth_survival_factor(cfg, by_time["trough"][0]) < 1.01


# ----------------------------------------------------------------------------- scenarios

def _run(name, **ov):
    m = NicheModel(load_scenario(name, {
        "domain.shape_voxels": [24, 24, 24], "run.days": 3.0, "run.frame_interval_days": 1.0,
        "vessels.count": 2, "run.seed": 5} | ov))
    m.run()
    m.cells.check(m.wall)
    return m.frame_readouts


@pytest.fixture(scope="module")
def ovx_3d():
    return _run("ovx")


def test_untreated_scenarios_carry_no_therapy_and_a_zero_dose_changes_nothing():
    for name in ("sham", "ovx", "ovx_il2"):
        text = load_scenario(name).to_toml()
        assert not any(k in text for k in ("anti_rankl", "bisphosphonate", "[pth"))
    ov = tiny_overrides(0.5)
    a = NicheModel(load_scenario("ovx", ov))
    b = NicheModel(load_scenario("ovx", ov | {"bisphosphonate.dose_ug_per_kg": 0.0,
                                              "anti_rankl.dose_mg_per_kg": 0.0,
                                              "pth.dose_ug_per_kg": 0.0}))
    a.run()
    b.run()
    assert a.frame_readouts == b.frame_readouts
    np.testing.assert_array_equal(a.lattice.bone, b.lattice.bone)
    np.testing.assert_array_equal(a.fields.c, b.fields.c)


def test_treated_scenario_round_trips_through_its_toml():
    sc = load_scenario("ovx_antirankl")
    again = load_scenario(__import__("tomllib").loads(sc.to_toml()))
    assert again.anti_rankl == sc.anti_rankl and again.pth is None


def test_anti_rankl_scenario_stops_osteoclastogenesis(ovx_3d):
    r = _run("ovx_antirankl", **{"anti_rankl.start_day": 0.0})
    assert r["n_preoc"] < 0.3 * ovx_3d["n_preoc"]
    assert r["n_osteoclast"] + r["n_preoc"] < 0.5 * (ovx_3d["n_osteoclast"] + ovx_3d["n_preoc"])


def _resorption_3d(name):
    """Mean resorbing-osteoclast count and bone resorbed (um^3 x 1e-6) over 3 days, read
    every half day."""
    m = NicheModel(load_scenario(name, {
        "domain.shape_voxels": [24, 24, 24], "run.days": 3.0, "run.frame_interval_days": 0.5,
        "vessels.count": 2, "run.seed": 5, "cells.osteoclast.initial_per_mm3": 5000.0}))
    n, vol = [], 0.0
    for _ in range(6):
        m.run(0.5)
        n.append(m.frame_readouts["n_oc_resorbing"])
        vol += m.frame_readouts["resorbed_mm3_per_day"] * 0.5 * 1e3
    return float(np.mean(n)), vol


def test_zoledronate_scenario_kills_resorbing_osteoclasts():
    """Given at OVX, the drug removes the cells that resorb: fewer resorbing osteoclasts
    and less bone resorbed over the first 3 days than untreated OVX, same seed (seeds 1, 2,
    5, 7 gave 0.6-0.8x for both; seed 5 here)."""
    n0, v0 = _resorption_3d("ovx")
    n1, v1 = _resorption_3d("ovx_zoledronate")
    assert n1 < 0.85 * n0
    assert v1 < 0.85 * v0


def test_pth_scenario_adds_osteoblasts(ovx_3d):
    r = _run("ovx_pth", **{"pth.start_day": 0.0})
    assert r["n_osteoblast"] > 1.1 * ovx_3d["n_osteoblast"]


def test_late_zoledronate_waits_for_its_day():
    sc = load_scenario("ovx_zoledronate_late")
    assert dose_times_days(sc.bisphosphonate).tolist() == [28.0]
    assert bisphosphonate_bound_ug_per_kg(sc.bisphosphonate, 27.9) == 0.0


def test_same_seed_same_treated_run():
    a = _run("ovx_zoledronate", **{"run.days": 1.0})
    b = _run("ovx_zoledronate", **{"run.days": 1.0})
    assert a == b


# ----------------------------------------------------------------------------- config errors

@pytest.mark.parametrize("key,value,match", [
    ("anti_rankl.dose_mg_per_kg", -1.0, r"anti_rankl\.dose_mg_per_kg: .*greater than or equal to 0"),
    ("bisphosphonate.dose_ug_per_kg", -5.0, r"bisphosphonate\.dose_ug_per_kg: "),
    ("pth.dose_ug_per_kg", "lots", r"pth\.dose_ug_per_kg: "),
    ("pth.interval_days", 0.0, r"pth\.interval_days: .*greater than 0"),
    ("anti_rankl.kd_nM", 3.0, r"anti_rankl\.kd_nM: unknown key"),
    ("bisphosphonate.half_life", 3.0, r"bisphosphonate\.half_life: unknown key"),
    ("pth.marrow_to_serum", 0.5, r"pth\.marrow_to_serum: unknown key"),
    ("pth.interval_days", 1e-6, r"pth: .*exceeds"),
    ("anti_rankl.bioavailability", 1.5, r"anti_rankl\.bioavailability: "),
    ("bisphosphonate.start_day", float("nan"), r"bisphosphonate\.start_day: "),
])
def test_bad_therapy_input_is_a_one_line_error_naming_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match) as e:
        load_scenario("ovx", {key: value})
    assert "\n" not in str(e.value)
