"""The experiment layer: descriptions, folders that resume, dask execution, statistics."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from niche.experiments import compare
from niche.experiments.folder import load, run_experiment, status
from niche.experiments.spec import Experiment, derive_seeds, load_experiment
from niche.scenario import ConfigError

TINY_SET = {"domain.shape_voxels": [16, 16, 16], "run.frame_interval_days": 0.125,
            "vessels.count": 2}


def tiny(**extra) -> dict:
    """2 arms x 3 seeds, the second arm swept over 2 values: 9 runs of 6 hours at 16^3."""
    d = {"name": "tiny", "seed": 11, "replicates": 3, "days": 0.25, "set": dict(TINY_SET),
         "arms": {"sham": {"scenario": "sham"}, "ovx": {"scenario": "ovx"}},
         "sweeps": [{"arms": ["ovx"], "grid": {"cells.tcell.speed_um_per_min": [5.0, 10.0]}}],
         "output": {"readouts": ["bv_tv", "n_tcell", "n_osteoclast"]}}
    d.update(extra)
    return d


@pytest.fixture(scope="module")
def local_result(tmp_path_factory):
    """The tiny experiment on a two-worker LocalCluster (shared by the tests below)."""
    out = tmp_path_factory.mktemp("exp") / "local"
    st = run_experiment(Experiment.model_validate(tiny()), out, workers=2, progress=False)
    return out, st, load(out)


# ------------------------------------------------------------------ description
def test_expansion_seeds_and_run_ids():
    exp = Experiment.model_validate(tiny())
    runs = exp.runs()
    assert len(runs) == 3 + 2 * 3
    assert len({r.run_id for r in runs}) == 9
    assert exp.seed_list() == derive_seeds(11, 3) == derive_seeds(11, 5)[:3]
    assert len(set(derive_seeds(11, 50))) == 50 and derive_seeds(12, 3) != derive_seeds(11, 3)
    swept = [r for r in runs if r.arm == "ovx"]
    assert {dict(r.params)["cells.tcell.speed_um_per_min"] for r in swept} == {5.0, 10.0}
    assert all(r.overrides["domain.shape_voxels"] == [16, 16, 16] for r in runs)
    # explicit seeds, samples, TOML dotted keys nest and are flattened
    e2 = Experiment.model_validate(tiny(replicates=None, seeds=[4, 5], sweeps=[
        {"samples": [{"il2": {"dose_iu": 1e4}}, {"il2.dose_iu": 5e4}]}]))
    assert [r.seed for r in e2.runs()][:2] == [4, 5]
    assert {dict(r.params)["il2.dose_iu"] for r in e2.runs()} == {1e4, 5e4}


@pytest.mark.parametrize("change, message", [
    ({"bogus": 1}, "bogus: unknown key"),
    ({"seeds": [1, 2]}, "either replicates"),
    ({"replicates": None}, "either replicates"),
    ({"arms": {}}, "at least one arm"),
    ({"arms": {"bad name": {"scenario": "sham"}}}, "arm name 'bad name'"),
    ({"sweeps": [{"arms": ["nope"], "grid": {"il2.dose_iu": [1]}}]}, "no arm 'nope'"),
    ({"sweeps": [{"grid": {"il2.dose_iu": []}}]}, "at least one value"),
    ({"days": -1}, "days"),
])
def test_bad_descriptions_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(tiny(**change))


def test_check_names_arm_sweep_value_and_scenario_key(tmp_path):
    exp = Experiment.model_validate(tiny(sweeps=[
        {"arms": ["ovx"], "grid": {"cells.tcell.speed_um_per_min": [5.0, -1.0]}}]))
    with pytest.raises(ConfigError, match=r"arm 'ovx' with \{'cells.tcell.speed_um_per_min': "
                                          r"-1.0\}.*cells.tcell.speed_um_per_min"):
        exp.check()
    with pytest.raises(ConfigError, match="output.times 9 d is after the end"):
        Experiment.model_validate(tiny(output={"times": [0, 9]})).check()
    # nothing was written for a description that fails its check
    with pytest.raises(ConfigError):
        run_experiment(exp, tmp_path / "never", workers=0)
    assert not (tmp_path / "never").exists()


def test_toml_file_and_relative_scenario_paths(tmp_path):
    (tmp_path / "my.toml").write_text('extends = "sham.toml"\nname = "mine"\n')
    (tmp_path / "e.toml").write_text(
        'name = "filed"\nseeds = [3]\ndays = 0.125\n[set]\n"domain.shape_voxels" = [16,16,16]\n'
        '[arms.mine]\nscenario = "my.toml"\n[output]\nreadouts = ["bv_tv"]\ntimes = [0, 0.125]\n')
    st = run_experiment(tmp_path / "e.toml", tmp_path / "out", workers=0, progress=False)
    assert st.executed == 1 and not st.failed
    df = load(tmp_path / "out")
    assert list(df["t_days"]) == [0.0, 0.125] and set(df["readout"]) == {"bv_tv"}
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a text"):
        load_experiment(tmp_path / "bin.toml")


# ------------------------------------------------------------------ running
def test_local_cluster_table_is_tidy_and_complete(local_result):
    out, st, df = local_result
    assert st.executed == 9 and len(st.done) == 9 and not st.failed
    assert list(df.columns) == ["experiment", "run_id", "arm", "seed",
                                "cells.tcell.speed_um_per_min", "t_days", "readout", "value"]
    assert len(df) == 9 * 3 * 3  # runs x frames (0, 0.125, 0.25 d) x readouts
    assert df[df["arm"] == "sham"]["cells.tcell.speed_um_per_min"].isna().all()
    assert set(df[df["arm"] == "ovx"]["cells.tcell.speed_um_per_min"]) == {5.0, 10.0}
    # same seed, same initial bone in every arm (paired design)
    t0 = df[(df["t_days"] == 0) & (df["readout"] == "bv_tv")]
    assert t0.groupby("seed")["value"].nunique().eq(1).all()


def test_serial_run_gives_the_same_table_and_reruns_resume(local_result, tmp_path):
    out, _, df = local_result
    serial = tmp_path / "serial"
    run_experiment(Experiment.model_validate(tiny()), serial, workers=0, progress=False)
    pd.testing.assert_frame_equal(load(serial), df)
    # a rerun runs nothing; deleting half the runs reruns exactly those
    again = run_experiment(Experiment.model_validate(tiny()), serial, workers=0, progress=False)
    assert again.executed == 0
    files = sorted((serial / "runs").glob("*.parquet"))
    gone = files[::2]
    for f in gone:
        f.unlink()
    before = {f.name: f.stat().st_mtime_ns for f in files[1::2]}
    resumed = run_experiment(Experiment.model_validate(tiny()), serial, workers=2,
                             progress=False)
    assert resumed.executed == len(gone) and len(resumed.done) == 9
    assert {f.name: f.stat().st_mtime_ns for f in files[1::2]} == before  # not rewritten
    pd.testing.assert_frame_equal(load(serial), df)
    # another experiment is refused in that folder
    with pytest.raises(ConfigError, match="holds another experiment"):
        run_experiment(Experiment.model_validate(tiny(seed=12)), serial, workers=0)


def test_a_failing_arm_is_reported_and_the_others_complete(tmp_path):
    # a culture well too shallow for its bone slice: valid keys, fails when the run starts
    exp = Experiment.model_validate(tiny(arms={
        "sham": {"scenario": "sham"},
        "broken": {"scenario": "invitro_osteoclastogenesis",
                   "set": {"domain.shape_voxels": [4, 16, 16],
                           "invitro.bone_slice_um": 40.0}}}, sweeps=[]))
    st = run_experiment(exp, tmp_path / "f", workers=2, progress=False)
    assert len(st.done) == 3 and len(st.failed) == 3 and not st.pending
    text = next((tmp_path / "f" / "failed").glob("broken__*.txt")).read_text()
    assert text.startswith("ValueError: domain.shape_voxels: a well needs height")
    assert "Traceback (most recent call last)" in text
    assert set(load(tmp_path / "f")["arm"]) == {"sham"}
    assert "3 failed" in status(tmp_path / "f").summary()


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.2)


def test_external_scheduler_and_worker_processes(local_result, tmp_path):
    """A real `dask scheduler` and `dask worker` on loopback, as on a cluster."""
    _, _, df = local_result
    env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    sched_file = tmp_path / "scheduler.json"
    bindir = Path(sys.executable).parent
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                              "--port", "0", "--no-dashboard", "--scheduler-file",
                              str(sched_file)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    worker = None
    try:
        _wait_for(sched_file)
        worker = subprocess.Popen([str(bindir / "dask"), "worker", "--scheduler-file",
                                   str(sched_file), "--nthreads", "1", "--nworkers", "2",
                                   "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        st = run_experiment(Experiment.model_validate(tiny()), tmp_path / "remote",
                            scheduler=address, progress=False)
        assert st.executed == 9 and not st.failed
        pd.testing.assert_frame_equal(load(tmp_path / "remote"), df)
    finally:
        for p in (worker, sched):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    p.kill()


def test_cli_run_status_report(local_result, cli, tmp_path):
    out, _, _ = local_result
    r = cli("experiment", "status", out)
    assert r.returncode == 0 and "9/9 runs finished" in r.stdout
    r = cli("experiment", "report", out, "--readouts", "bv_tv,n_tcell")
    assert r.returncode == 0, r.stderr
    md = (out / "report" / "report.md").read_text()
    assert "Paired effects against `sham`" in md and "| n_tcell | ovx |" in md
    for png in ("trajectories.png", "endpoints.png", "dose_cells_tcell_speed_um_per_min.png"):
        assert (out / "report" / png).stat().st_size > 5000
    r = cli("experiment", "report", out, "--readouts", "nope")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no readout 'nope'" in r.stderr
    (tmp_path / "e.toml").write_text('name = "x"\nreplicates = 1\n[arms.a]\nscenario = "shamm"\n')
    r = cli("experiment", "run", tmp_path / "e.toml", "--workers", "0")
    assert r.returncode == 2 and "arm 'a'" in r.stderr and "shamm" in r.stderr
    r = cli("experiment", "status", tmp_path)
    assert r.returncode == 2 and "not an experiment folder" in r.stderr


# ------------------------------------------------------------------ statistics
def _table(effects: dict[str, np.ndarray], base: np.ndarray) -> pd.DataFrame:
    rows = []
    for arm, vals in {"ctrl": base, **effects}.items():
        for s, v in enumerate(vals):
            rows.append(dict(experiment="x", run_id=f"{arm}{s}", arm=arm, seed=s, t_days=1.0,
                             readout="r", value=float(v)))
    return pd.DataFrame(rows)


def test_paired_effects_match_scipy_and_statsmodels():
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    base = rng.normal(10, 1, 8)
    arms = {"a": base + 1.0 + rng.normal(0, 0.3, 8), "b": base + rng.normal(0, 0.3, 8),
            "c": base * 1.2}
    eff = compare.paired_effects(_table(arms, base), "r", "ctrl").set_index("arm")
    for arm, vals in arms.items():
        t = stats.ttest_rel(vals, base)
        ci = t.confidence_interval()
        assert eff.loc[arm, "effect"] == pytest.approx((vals - base).mean(), rel=1e-12)
        assert eff.loc[arm, "p"] == pytest.approx(t.pvalue, rel=1e-9)
        assert (eff.loc[arm, "ci_lo"], eff.loc[arm, "ci_hi"]) == pytest.approx(
            (ci.low, ci.high), rel=1e-9)
        assert eff.loc[arm, "boot_lo"] < eff.loc[arm, "effect"] < eff.loc[arm, "boot_hi"]
    holm = multipletests(eff["p"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(eff["p_adj"].to_numpy(), holm)
    assert eff.loc["a", "p_adj"] < 0.001 < eff.loc["b", "p_adj"]
    rel = compare.paired_effects(_table(arms, base), "r", "ctrl", arms=["c"], relative=True)
    assert rel["effect"].iloc[0] == pytest.approx(0.2) and rel["n"].iloc[0] == 8
    with pytest.raises(KeyError, match="no arm 'zz'"):
        compare.paired_effects(_table(arms, base), "r", "zz")
    with pytest.raises(ValueError, match="correction 'bonf'"):
        compare.paired_effects(_table(arms, base), "r", "ctrl", correction="bonf")


def test_replicates_needed_matches_the_power_table():
    # paired (one-sample) t-test, two-sided alpha 0.05, power 0.8: d = 0.5 needs 33.4 -> 34
    # seeds, d = 1 needs 9.9 -> 10, d = 0.8 needs 14.3 -> 15 (Cohen 1988 Table 2.4.1)
    assert compare.replicates_needed(0.5) == 34
    assert compare.replicates_needed(1.0) == 10
    assert compare.replicates_needed(-0.8) == 15
    assert np.isnan(compare.replicates_needed(0.0))


def test_sensitivity_design_runs_through_the_experiment_folder(tmp_path):
    """A Morris design over one arm: its samples run as that arm's parameter sets, resume
    like any run, and the indices come from the seed-averaged readouts."""
    from niche.experiments.gsa import folder_sensitivity

    exp = Experiment.model_validate(tiny(sweeps=[], arms={"sham": {"scenario": "sham"}},
                                         replicates=2, sensitivity={
        "arm": "sham", "method": "morris", "n": 2, "readouts": ["n_tcell", "bv_tv"],
        "parameters": {"cells.tcell.influx_per_mm3_per_day": [0.0, 400000.0],
                       "cells.tcell.speed_um_per_min": [2.0, 12.0]}}))
    samples = exp.sensitivity_samples()
    assert len(samples) == 2 * 3 and samples == exp.sensitivity_samples()
    run_experiment(exp, tmp_path / "s", workers=0, progress=False)
    idx = folder_sensitivity(tmp_path / "s").set_index(["output", "parameter", "index"])
    mu = idx["value"]
    # T-cell influx is what sets the T-cell count over 6 hours; speed moves none of it
    assert mu["n_tcell", "cells.tcell.influx_per_mm3_per_day", "mu_star"] > 5 * max(
        mu["n_tcell", "cells.tcell.speed_um_per_min", "mu_star"], 1e-9)
    assert np.isfinite(mu.to_numpy()).all()
    from niche.experiments.report import write_report

    md = write_report(tmp_path / "s").read_text()
    assert "## Sensitivity (morris" in md
    assert (tmp_path / "s" / "report" / "sensitivity.png").is_file()
    (tmp_path / "s" / "runs" / f"{exp.runs()[0].run_id}.parquet").unlink()
    with pytest.raises(ConfigError, match="1 runs of arm 'sham' are not finished"):
        folder_sensitivity(tmp_path / "s")


def test_run_files_at_an_output_level(tmp_path):
    import niche

    exp = Experiment.model_validate(tiny(sweeps=[], arms={"sham": {"scenario": "sham"}},
                                         replicates=1, output={"run_file": "summary"}))
    run_experiment(exp, tmp_path / "h", workers=0, progress=False)
    (h5,) = (tmp_path / "h" / "runs").glob("*.h5")
    df = load(tmp_path / "h")
    with niche.open_run(h5) as rf:
        assert rf.level == "summary" and rf.n_frames == 3
        assert list(rf.stored_frames("bone")) == [0, 2]
        for r in ("bv_tv", "n_tcell"):  # the table holds the run file's own readouts
            np.testing.assert_array_equal(df[df["readout"] == r]["value"].to_numpy(),
                                          rf.readouts[r].to_numpy())
    assert not list((tmp_path / "h" / "runs").glob("*.xdmf*"))


def test_runs_too_large_for_this_machine_are_refused_unless_allowed(tmp_path):
    """An arm whose runs need more memory than this machine has fails the check before
    anything runs (naming the arm); allow_large (--allow-large) lets a cluster job through."""
    exp = Experiment.model_validate(tiny(arms={"huge": {
        "scenario": "sham", "set": {"domain.shape_voxels": [1024, 1024, 1024]}}}, sweeps=[]))
    with pytest.raises(ConfigError, match=r"arm 'huge'.*memory.*--allow-large"):
        exp.check()
    assert len(exp.check(allow_large=True)) == 3
    with pytest.raises(ConfigError, match="arm 'huge'"):
        run_experiment(exp, tmp_path / "x", workers=0, progress=False)
    assert not (tmp_path / "x").exists()
