"""niche validate: statistics helpers, the V1-V12 checks on synthetic histories, and the
dask machinery on tiny runs of the default scenario (one shared 2-worker cluster)."""
from __future__ import annotations

import argparse
import math
import os
import re

import numpy as np
import pandas as pd
import pytest

from niche.experiments.execution import Arm, local_client, parse_shape, run_tasks, \
    task_overrides
from niche.experiments.stats import (MissingReadout, mean_ci, paired_ratio, paired_rel_effect,
                                     per_seed, prevented_fraction, value_at, window_mean,
                                     window_slope)
from niche.validation.cli import add_arguments, main
from niche.validation.report import seed_text
from niche.validation.rows import ARMS, ROWS, Row, RowResult, parse_rows
from niche.validation.run import evaluate, evaluate_saved, run_validation

TINY = {"domain.shape_voxels": [24, 24, 24]}


# ---------------------------------------------------------------------------------------
# statistics and history helpers (analytic values)
# ---------------------------------------------------------------------------------------
def test_mean_ci_t_interval():
    m = mean_ci([1, 2, 3])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert m.mean == pytest.approx(2.0)
    assert m.lo == pytest.approx(2 - half) and m.hi == pytest.approx(2 + half)
    assert m.n == 3 and m.note == ""
    one = mean_ci([0.7])
    assert one.mean == 0.7 and math.isnan(one.lo) and math.isnan(one.hi)
    assert "n=1" in one.note
    dropped = mean_ci([1.0, float("nan"), 3.0])
    assert dropped.n == 2 and dropped.mean == 2.0 and "1 of 3" in dropped.note


def _hist(t, **cols):
    return pd.DataFrame({"t_days": np.asarray(t, float), **{k: np.asarray(v, float)
                                                            for k, v in cols.items()}})


def test_history_helpers():
    h = _hist([0, 1, 2, 3, 4], x=[0, 10, 20, 30, 40])
    assert value_at(h, "x", 2.4) == 20.0
    assert window_mean(h, "x", 1, 3) == 20.0
    assert window_slope(h, "x", 0, 4) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="no frame within"):
        value_at(h, "x", 10)
    with pytest.raises(MissingReadout, match="readout y missing"):
        value_at(h, "y", 1)


def test_paired_effects():
    arms = {"a": [_hist([0, 1], x=[1, 3]), _hist([0, 1], x=[1, 4])],
            "b": [_hist([0, 1], x=[1, 2]), _hist([0, 1], x=[1, 5])],
            "c": [_hist([0, 1], x=[1, 2.5]), _hist([0, 1], x=[1, 4.5])]}
    np.testing.assert_allclose(paired_rel_effect(arms, "a", "b", "x", 1), [0.5, -0.2])
    np.testing.assert_allclose(paired_ratio(arms, "a", "b", "x", window=(0, 1)),
                               [2 / 1.5, 2.5 / 3])
    # (treated - disease) / (control - disease): (2.5-3)/(2-3), (4.5-4)/(5-4)
    np.testing.assert_allclose(prevented_fraction(arms, "c", "a", "b", "x", 1), [0.5, 0.5])


# ---------------------------------------------------------------------------------------
# the V1-V12 table on synthetic histories built to meet every target
# ---------------------------------------------------------------------------------------
def _synthetic(n_seeds=3, drop=None, swap=False):
    rng = np.random.default_rng(0)
    out = {}
    base = {"oc_s_bs": 0.05, "ob_s_bs": 0.10, "n_tnf_tcell": 10,
            "tnf_per_producer_molecules_per_s": 1.0, "n_osteoclast": 20,
            "formed_mm3_per_day": 1e-3, "n_treg": 50, "n_treg_cxcr3": 5, "n_ilc2_il10": 3,
            "n_ilc2_cgrp": 3}
    ovx = dict(base, oc_s_bs=0.08, ob_s_bs=0.13, n_tnf_tcell=20, n_osteoclast=40)
    for name, arm in ARMS.items():
        hs = []
        for s in range(n_seeds):
            g = 1 + 0.05 * (s - 1)  # the seed's geometry, shared by all arms
            if arm.in_vitro:
                t = np.arange(0, arm.days + 1e-9, 0.25)
                oc = np.maximum(0, 10 * (t - 2.5))
                res = 1000 * np.maximum(0, t - 3)
                f_oc, f_res = {"vitro": (1, 1), "vitro_il2": (0.5, 1),
                               "vitro_treg_lo": (0.85, 0.7),
                               "vitro_treg_hi": (0.5, 0.25)}[name]
                cols = {"n_oc_multinuc": oc * f_oc, "resorbed_area_um2": res * f_res}
            else:
                t = np.arange(0, arm.days + 1e-9, 1.0)
                loss = 0.22 * (1 - np.exp(-t / 10))
                p = dict(base)
                if name == "sham":
                    bv = np.ones_like(t)
                elif name == "ovx":
                    bv, p = 1 - loss, ovx
                elif name in ("ovx_scfa", "ovx_probiotic"):
                    bv = 1 - 0.05 * (1 - np.exp(-t / 10))
                    p = dict(ovx, n_osteoclast=28, formed_mm3_per_day=1.02e-3)
                elif name in ("ovx_il2", "ovx_il2_noilc2"):
                    # ILC2-depleted: 30 % of the IL-2 gain over untreated OVX is kept
                    keep = 1.0 if name == "ovx_il2" else 0.3
                    bv = np.where(t <= 28, 1 - loss, 1 - loss + keep * (
                        0.22 * (np.exp(-t / 10) - np.exp(-2.8)) + 0.002 * (t - 28)))
                    p = dict(ovx, n_treg_cxcr3=20, n_ilc2_il10=6, n_ilc2_cgrp=6)
                else:  # sham_butyrate
                    bv = 1 + 0.1 * t / 28
                    p = dict(base, formed_mm3_per_day=1.3e-3, n_treg=70)
                cols = {"bv_tv": 0.15 * g * bv, **{k: np.full_like(t, v) for k, v in p.items()}}
            cols = {k: v * (1 + 0.01 * rng.standard_normal()) for k, v in cols.items()}
            h = pd.DataFrame({"t_days": t, **cols})
            if drop and drop[0] == name:
                h = h.drop(columns=[drop[1]])
            hs.append(h)
        out[name] = hs
    if swap:
        out["sham"], out["ovx"] = out["ovx"], out["sham"]
    return out


def test_table_structure():
    assert [r.id for r in ROWS] == [f"V{i}" for i in range(1, 14)]
    for r in ROWS:
        assert r.arms and all(a in ARMS for a in r.arms), r.id
    vitro = {a for a, arm in ARMS.items() if arm.in_vitro}
    assert vitro == {"vitro", "vitro_il2", "vitro_treg_lo", "vitro_treg_hi"}
    assert ARMS["vitro_treg_hi"].overrides == {"invitro.treg_per_monocyte": 0.5}
    assert task_overrides(ARMS["vitro_treg_lo"], (24, 24, 24)) == \
        {"invitro.treg_per_monocyte": 0.1}
    assert task_overrides(ARMS["ovx"], (24, 24, 24)) == \
        {"domain.shape_voxels": [24, 24, 24]}


def test_all_rows_pass_on_synthetic_targets():
    data = _synthetic()
    for row in ROWS:
        r = evaluate(row, data)
        assert r.passed, (row.id, r.detail)
        assert np.isfinite(r.effect) and r.ci[0] <= r.effect <= r.ci[1], row.id
    assert evaluate(ROWS[0], data).effect == pytest.approx(-0.207, abs=0.02)
    assert evaluate(ROWS[12], data).effect == pytest.approx(0.7, abs=0.1)  # 1 % noise


def test_rows_fail_when_they_should():
    rows = {r.id: r for r in ROWS}
    swapped = evaluate(rows["V1"], _synthetic(swap=True))
    assert not swapped.passed and swapped.effect > 0
    missing = evaluate(rows["V3"], _synthetic(drop=("ovx", "oc_s_bs")))
    assert not missing.passed and missing.detail == "readout oc_s_bs missing"
    one = evaluate(rows["V11"], _synthetic(n_seeds=1))
    assert not one.passed and "n=1" in one.detail
    # an OVX arm that loses bone and then rebounds toward sham is not at a new steady state
    rebound = _synthetic()
    for h in rebound["ovx"]:
        t = h["t_days"].to_numpy()
        h["bv_tv"] = h["bv_tv"] * (1 + 0.006 * np.clip(t - 56, 0, None))
    v2 = evaluate(rows["V2"], rebound)
    assert not v2.passed and "(c)" in v2.detail
    assert evaluate(rows["V1"], rebound).passed  # the d28 loss is unchanged
    # V13: depleting ILC2s that cost only 30 % of the IL-2 benefit is not "required"
    weak = _synthetic()
    for hd, hf, ho in zip(weak["ovx_il2_noilc2"], weak["ovx_il2"], weak["ovx"]):
        hd["bv_tv"] = ho["bv_tv"] + 0.7 * (hf["bv_tv"] - ho["bv_tv"])
    v13 = evaluate(rows["V13"], weak)
    assert not v13.passed and v13.effect == pytest.approx(0.3, abs=0.01)
    assert "cut" in v13.detail and "NO" in v13.detail


# ---------------------------------------------------------------------------------------
# input checking (no cluster needed: rejected before anything starts)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, word", [
    ({"rows": "V1,V99"}, "V99"),
    ({"replicates": 0}, "replicates"),
    ({"shape": "24,24"}, "24,24"),
    ({"shape": "4,4,4"}, "4,4,4"),
    ({"shape": "a,b,c"}, "a,b,c"),
    ({"workers": -1}, "workers"),
    ({"workers": 1.5}, "workers"),
    ({"first_seed": -1}, "first-seed"),
    ({"first_seed": 2**63 - 2, "replicates": 5}, "first-seed"),
    ({"first_seed": 1.5}, "first-seed"),
])
def test_bad_input(kw, word, tmp_path):
    with pytest.raises(ValueError, match=word):
        run_validation(out_dir=tmp_path, progress=False, **kw)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("sets, word", [
    (["biology.osteoblast.no_such_param=1"], "no_such_param"),
    (["biology.osteoblast.recruit_per_mm2_per_day=-1"], "recruit_per_mm2_per_day"),
    (["novalue"], "KEY=VALUE"),
])
def test_bad_overrides_rejected_before_any_run(sets, word, tmp_path):
    with pytest.raises(ValueError, match=word):
        run_validation(rows="V10", out_dir=tmp_path, progress=False, overrides=sets)
    assert not any(tmp_path.iterdir())


def test_overrides_apply_to_every_arm_after_its_own():
    arm = Arm("x", "sham", 28, {"bone.bv_tv": 0.2, "run.seed": 3})
    ov = task_overrides(arm, (24, 24, 24), {"bone.bv_tv": 0.1, "cells.tcell.speed_um_per_min": 8})
    assert ov == {"bone.bv_tv": 0.1, "run.seed": 3, "cells.tcell.speed_um_per_min": 8,
                  "domain.shape_voxels": [24, 24, 24]}


def test_cli_arguments():
    p = add_arguments(argparse.ArgumentParser())
    a = p.parse_args(["--rows", "V1,V5", "--quick", "--shape", "32,32,32", "-w", "2",
                      "--set", "a.b=1", "--set", "c.d=x"])
    assert a.set == ["a.b=1", "c.d=x"] and a.first_seed == 1
    assert p.parse_args(["--first-seed", "6"]).first_seed == 6
    assert (a.rows, a.quick, a.shape, a.workers, a.replicates, a.out) == \
        ("V1,V5", True, "32,32,32", 2, None, "validation")
    assert [r.id for r in parse_rows(a.rows)] == ["V1", "V5"]
    assert parse_shape(a.shape) == (32, 32, 32) and parse_shape("16") == (16, 16, 16)


# ---------------------------------------------------------------------------------------
# dask machinery on tiny runs of the default scenario
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    before = os.environ.get("NUMBA_NUM_THREADS")
    with local_client(2) as c:
        assert os.environ.get("NUMBA_NUM_THREADS") == before  # this process untouched
        yield c


def test_workers_single_threaded(client):
    env = client.run(lambda: os.environ.get("NUMBA_NUM_THREADS"))
    assert len(env) == 2 and set(env.values()) == {"1"}


def test_tasks_run_and_are_deterministic(client):
    arm = Arm("tiny", "default", 1, TINY)
    out = run_tasks(client, [(arm, 1), (arm, 1), (arm, 2)])
    assert all(o.ok for o in out), [o.error for o in out]
    assert [o.seed for o in out] == [1, 1, 2]
    assert out[0].meta["numba_threads"] == 1 and out[0].meta["shape"] == (24, 24, 24)
    h = out[0].history
    assert list(h["t_days"]) == [0.0, 1.0] and "bv_tv" in h.columns
    pd.testing.assert_frame_equal(out[0].history, out[1].history)
    assert not out[0].history.equals(out[2].history)


def _args(tmp_path, *argv):
    p = add_arguments(argparse.ArgumentParser())
    return p.parse_args(["--out", str(tmp_path / "val"), "--replicates", "2", "-q", *argv])


def _ci_up(arms):  # paired: denser bone in "b" than in "a", same seeds
    m = mean_ci(paired_rel_effect(arms, "b", "a", "bv_tv", 1))
    return RowResult(m.mean, m.ci, bool(m.lo > 0), "bv_tv b vs a")


def _impossible(arms):
    m = mean_ci(per_seed(arms, "a", lambda h: value_at(h, "bv_tv", 1)))
    return RowResult(m.mean, m.ci, bool(m.mean > 1), "bv_tv > 1", unit="")


def _needs_missing(arms):
    return RowResult(value_at(arms["a"][0], "no_such_readout", 1), (0, 0), True, "")


TEST_ARMS = {
    "a": Arm("a", "default", 1, TINY),
    "b": Arm("b", "default", 1, dict(TINY, **{"bone.bv_tv": 0.2})),
    "broken": Arm("broken", "no_such_scenario", 1),
}
TEST_TABLE = [
    Row("T1", "denser bone", "BV/TV", "up", ("a", "b"), _ci_up, "CI > 0"),
    Row("T2", "impossible", "BV/TV", "> 1", ("a",), _impossible),
    Row("T3", "missing readout", "x", "-", ("a",), _needs_missing),
    Row("T4", "broken scenario", "x", "-", ("broken",), _ci_up),
]


def test_main_pass_and_report(client, tmp_path, capsys):
    assert main(_args(tmp_path, "--rows", "T1"), table=TEST_TABLE, arms=TEST_ARMS,
                client=client) == 0
    report = (tmp_path / "val" / "report.md").read_text()
    assert "| T1 |" in report and "**PASS**" in report and "2 seeds per arm" in report
    assert "overrides on every arm (--set): none" in report
    png = tmp_path / "val" / "invivo_bv_tv.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![invivo_bv_tv](invivo_bv_tv.png)" in report
    assert "T1" in capsys.readouterr().out


def test_first_seed_runs_that_block_of_seeds(client, tmp_path, capsys):
    """``--first-seed 6 -n 2`` runs seeds 6 and 7 of every arm, pairs them in that order,
    and names them in the report, the CSV and the summary line."""
    args = _args(tmp_path, "--rows", "T1", "--first-seed", "6")
    assert main(args, table=TEST_TABLE, arms=TEST_ARMS, client=client) == 0
    out = tmp_path / "val"
    assert "2 seeds per arm (seeds 6..7)" in (out / "report.md").read_text()
    csv = pd.read_csv(out / "histories.csv")
    assert sorted(set(csv["seed"])) == [6, 7] and set(csv["arm"]) == {"a", "b"}
    assert "2 seeds per arm (6..7)" in capsys.readouterr().out
    # the histories are those of seeds 6 and 7, in that order (not 1 and 2)
    rep = run_validation(rows="T1", replicates=1, first_seed=7, out_dir=None,
                         progress=False, table=TEST_TABLE, arms=TEST_ARMS, client=client)
    assert rep.seeds == [7]
    cols = [c for c in csv.columns if c not in ("arm", "seed")]
    seven = csv.loc[(csv["arm"] == "a") & (csv["seed"] == 7), cols].to_numpy(float)
    six = csv.loc[(csv["arm"] == "a") & (csv["seed"] == 6), cols].to_numpy(float)
    np.testing.assert_allclose(seven, rep.histories["a"][0][cols].to_numpy(float), rtol=1e-12)
    assert not np.allclose(six, seven, rtol=1e-12, equal_nan=True)


def test_from_pools_saved_seed_blocks(client, tmp_path, capsys):
    """Seeds 1-2 and 3-4 saved by two validations, re-evaluated with ``--from``, give
    exactly the row result of one 4-seed validation, and no run."""
    for first, name in ((1, "A"), (3, "B")):
        args = _args(tmp_path, "--rows", "T1", "--first-seed", str(first), "--out",
                     str(tmp_path / name))
        assert main(args, table=TEST_TABLE, arms=TEST_ARMS, client=client) == 0
    direct = run_validation(rows="T1", replicates=4, out_dir=None, progress=False,
                            table=TEST_TABLE, arms=TEST_ARMS, client=client)
    srcs = [str(tmp_path / n / "histories.csv") for n in "AB"]
    args = _args(tmp_path, "--rows", "T1", "--out", str(tmp_path / "C"))
    args.replicates, args.sources = None, srcs
    capsys.readouterr()
    assert main(args, table=TEST_TABLE, arms=TEST_ARMS) == 0  # no client: nothing runs
    assert "4 seeds per arm (1..4)" in capsys.readouterr().out
    pooled = evaluate_saved(srcs, rows="T1", out_dir=None, table=TEST_TABLE, arms=TEST_ARMS)
    assert pooled.seeds == [1, 2, 3, 4] and pooled.outcomes == []
    got, want = pooled.results["T1"], direct.results["T1"]
    assert got.passed == want.passed and got.detail == want.detail
    np.testing.assert_allclose([got.effect, *got.ci], [want.effect, *want.ci], rtol=1e-12)
    report = (tmp_path / "C" / "report.md").read_text()
    assert "seeds 1..4" in report and "re-evaluated from saved histories (no runs)" in report
    assert "## Arms" not in report
    assert sorted(set(pd.read_csv(tmp_path / "C" / "histories.csv")["seed"])) == [1, 2, 3, 4]


def _saved(path, arms_seeds):
    rows = [{"arm": a, "seed": s, "t_days": t, "bv_tv": 0.1 + 0.01 * s}
            for a, seeds in arms_seeds.items() for s in seeds for t in (0.0, 1.0)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_from_bad_input(tmp_path):
    one = _saved(tmp_path / "one.csv", {"a": [1, 2], "b": [1, 2]})
    cases = [
        ([one, one], "T1", "arm a seed 1 is also in"),
        ([_saved(tmp_path / "c.csv", {"a": [1, 2]})], "T1", "arm b (row T1) is in none"),
        ([_saved(tmp_path / "d.csv", {"a": [1, 2], "b": [1, 3]})], "T1", "has seeds 1, 3"),
        ([str(tmp_path / "nope.csv")], "T1", "no such file"),
        ([_saved(tmp_path / "e.csv", {})], "T1", "not a histories CSV"),
        ([one], "T9", "T9"),
    ]
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    cases.append(([str(tmp_path / "x.csv")], "T1", "no column 'arm'"))
    for srcs, rows, word in cases:
        with pytest.raises(ValueError, match=re.escape(word)):
            evaluate_saved(srcs, rows=rows, out_dir=tmp_path / "out", table=TEST_TABLE,
                           arms=TEST_ARMS)
    assert not (tmp_path / "out").exists()
    # the report would overwrite its own input
    (tmp_path / "val").mkdir()
    own = _saved(tmp_path / "val" / "histories.csv", {"a": [1, 2], "b": [1, 2]})
    with pytest.raises(ValueError, match="would overwrite it"):
        evaluate_saved([own], rows="T1", out_dir=tmp_path / "val", table=TEST_TABLE,
                       arms=TEST_ARMS)
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == ["histories.csv"]
    # run options make no sense with saved runs
    args = _args(tmp_path, "--rows", "T1", "--from", one, "--set", "a.b=1")
    with pytest.raises(ValueError, match="--replicates, --set cannot be used"):
        main(args, table=TEST_TABLE, arms=TEST_ARMS)


def test_seed_text():
    assert seed_text([3, 1, 2, 7, 9, 10]) == "1..3, 7, 9..10"
    assert seed_text([5]) == "5" and seed_text([]) == "none"


def test_overrides_reach_the_runs(client, tmp_path):
    """``--set`` on every arm: T1 (denser bone in b than in a) fails once both arms are
    forced to the same initial BV/TV, and the report names the override."""
    args = _args(tmp_path, "--rows", "T1", "--set", "bone.bv_tv=0.2")
    assert main(args, table=TEST_TABLE, arms=TEST_ARMS, client=client) == 1
    report = (tmp_path / "val" / "report.md").read_text()
    assert "overrides on every arm (--set): bone.bv_tv=0.2" in report


def test_main_failures(client, tmp_path, capsys):
    assert main(_args(tmp_path), table=TEST_TABLE, arms=TEST_ARMS, client=client) == 1
    rep = run_validation(rows="T2,T3,T4", replicates=1, out_dir=None, progress=False,
                         table=TEST_TABLE, arms=TEST_ARMS, client=client)
    r = rep.results
    assert not rep.passed and not any(x.passed for x in r.values())
    assert r["T3"].detail == "readout no_such_readout missing"
    assert "arm broken seed 1" in r["T4"].detail and "no_such_scenario" in r["T4"].detail
    assert [(o.arm, o.seed) for o in rep.failures] == [("broken", 1)]
    out = capsys.readouterr().out
    assert "FAIL" in out and "run failed: arm broken seed 1" in out


def test_quick_shapes(client, tmp_path):
    arms = {"iv": Arm("iv", "default", 1),
            "vt": Arm("vt", "default", 1, {"domain.shape_voxels": [16, 16, 16]},
                      in_vitro=True)}
    table = [Row("V10", "", "", "", ("vt",), _impossible),
             Row("V11", "", "", "", ("iv",), _impossible),
             Row("V1", "", "", "", ("iv", "vt"), _impossible)]
    rep = run_validation(quick=True, out_dir=None, progress=False, table=table, arms=arms,
                         client=client)
    assert [r.id for r in rep.rows] == ["V10", "V11"] and rep.replicates == 2
    shapes = {(o.arm, o.meta["shape"]) for o in rep.outcomes}
    assert shapes == {("iv", (24, 24, 24)), ("vt", (16, 16, 16))}


def test_quick_validation_rows_pass_with_the_real_culture_scenarios(tmp_path):
    """The quick subset (V10 onset, V11 IL-2) of `niche validate` passes on the shipped
    in-vitro scenarios (2 seeds, the suite's budget)."""
    rep = run_validation(rows=["V10", "V11"], quick=True, workers=2, out_dir=tmp_path,
                         progress=False)
    assert [rep.results[k].passed for k in ("V10", "V11")] == [True, True], rep.table_text()
    assert (tmp_path / "report.md").is_file()


# ---------------------------------------------------------------------------------------
# verdict stability (bootstrap over seeds)
# ---------------------------------------------------------------------------------------
def test_verdict_stability_matches_the_analytic_pass_probability():
    """A pool of 4 seeds, one of them an outlier that fails the row whenever it is drawn:
    a block of n seeds drawn with replacement passes with probability (3/4)^n. A second
    row needs the arms paired by seed (it fails if any draw mixes seeds across arms)."""
    from niche.validation.report import Report
    from niche.validation.stability import parse_sizes, verdict_stability

    vals = [1.0, 1.0, 1.0, -10.0]
    a = [pd.DataFrame({"t_days": [0.0], "v": [v], "seed": [i]}) for i, v in enumerate(vals)]
    b = [pd.DataFrame({"t_days": [0.0], "v": [v], "seed": [i]}) for i, v in enumerate(vals)]

    def mean_up(arms):
        m = float(np.mean([h["v"].iloc[0] for h in arms["a"]]))
        return RowResult(m, (m, m), m > 0, "")

    def paired(arms):
        same = all(ha["seed"].iloc[0] == hb["seed"].iloc[0]
                   for ha, hb in zip(arms["a"], arms["b"]))
        return RowResult(float(same), (0.0, 1.0), same, "")

    rows = [Row("S1", "", "", "", ("a",), mean_up), Row("S2", "", "", "", ("a", "b"), paired)]
    rep = Report(rows=rows, results={"S1": RowResult(0, (0, 0), True, ""),
                                     "S2": RowResult(0, (0, 0), True, "")},
                 arms={}, histories={"a": a, "b": b}, outcomes=[], replicates=4, quick=False,
                 shape=None, workers=0, seeds=[0, 1, 2, 3])
    draws = 3000
    tab = verdict_stability(rep, [2, 5], draws=draws, seed=1).set_index(["row", "seeds"])
    for n in (2, 5):
        p = 0.75 ** n
        assert abs(tab.loc[("S1", n), "p_pass"] - p) < 4 * math.sqrt(p * (1 - p) / draws)
        assert tab.loc[("S2", n), "p_pass"] == 1.0
    assert tab.loc[("S1", 5), "effect_p95"] == 1.0
    assert parse_sizes("5, 8") == [5, 8]
    for bad, msg in (("5,x", "'x' is not a whole number"), ("1", "at least 2 seeds"),
                     ("", "not a whole number")):
        with pytest.raises(ValueError, match=msg):
            parse_sizes(bad)
