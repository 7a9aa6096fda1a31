"""niche calibrate: ABC-SMC recovers a known parameter, resumes, refuses bad input, keeps
its seeds apart from validation seeds, and runs the real rows end to end (tiny)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from niche.calibration import CALIBRATION_SEED_BASE, load_calibration
from niche.calibration.core import MISSING_DISTANCE, calibrate, row_distance, \
    weighted_quantile
from niche.cli import main as cli_main
from niche.scenario import ConfigError
from niche.validation.run import run_validation

pytest.importorskip("pyabc")


def toy_config(**kw) -> dict:
    cfg = {"name": "toy", "rows": ["T"],
           "targets": {"T": {"range": [0.58, 0.62], "source": "synthetic: 2 x 0.3 +- 0.02"}},
           "parameters": [{"key": "a", "low": 0.0, "high": 1.0, "source": "synthetic"},
                          {"key": "b", "low": 0.1, "high": 10.0, "scale": "log",
                           "source": "a nuisance parameter the data do not constrain"}],
           "population": 60, "generations": 5, "predictive": 12}
    cfg.update(kw)
    return cfg


def toy_simulator(seed=0):
    """Synthetic data from a = 0.3: the effect is 2a plus a little noise; b plays no part."""
    rng = np.random.default_rng(seed)
    calls = []

    def sim(v):
        calls.append(dict(v))
        return {"T": 2.0 * v["a"] + 0.004 * rng.standard_normal()}

    sim.calls = calls
    return sim


def test_recovers_the_parameter_that_generated_the_data(tmp_path):
    sim = toy_simulator()
    s = calibrate(toy_config(), tmp_path, simulate=sim, progress=None)
    a = s["parameters"]["a"]
    lo, hi = a["ci95"]
    assert lo <= 0.3 <= hi                      # the true value is inside the interval
    assert hi - lo < 0.1                        # and the data narrowed the prior (width 1)
    assert abs(s["adopted"]["a"] - 0.3) < 0.02
    b = s["parameters"]["b"]["ci95"]             # the unconstrained one stays wide
    assert b[1] / b[0] > 10
    assert all(0.1 <= c["b"] <= 10 for c in sim.calls)   # log prior kept to its range
    post = pd.read_csv(tmp_path / "posterior.csv")
    assert len(post) == 60 and post["weight"].sum() == pytest.approx(1.0)
    pred = pd.read_csv(tmp_path / "predictive.csv")
    assert len(pred) == 12 and s["predictive"]["T"]["inside"] >= 0.5
    assert s["generations"] == 5 and s["epsilons"][-1] <= s["epsilons"][0]
    assert (tmp_path / "pairs.png").stat().st_size > 1000
    md = (tmp_path / "report.md").read_text()
    assert "| a | [0, 1] | linear |" in md and "synthetic" in md
    assert json.loads((tmp_path / "posterior.json").read_text())["adopted"]["a"] == \
        s["adopted"]["a"]


def test_resume_continues_the_same_history(tmp_path):
    s2 = calibrate(toy_config(generations=2, predictive=0), tmp_path,
                   simulate=toy_simulator(), progress=None)
    assert s2["generations"] == 2
    with pytest.raises(ValueError, match="already holds a calibration"):
        calibrate(toy_config(generations=3), tmp_path, simulate=toy_simulator(),
                  progress=None)
    with pytest.raises(ValueError, match="differs"):
        calibrate(toy_config(generations=3, population=30), tmp_path,
                  simulate=toy_simulator(), resume=True, progress=None)
    s3 = calibrate(toy_config(generations=3, predictive=0), tmp_path,
                   simulate=toy_simulator(1), resume=True, progress=None)
    assert s3["generations"] == 3
    assert s3["epsilons"][:2] == s2["epsilons"]         # the first two kept as they were
    with pytest.raises(ValueError, match="no abc.db"):
        calibrate(toy_config(), tmp_path / "empty", simulate=toy_simulator(), resume=True,
                  progress=None)


@pytest.mark.parametrize("change,match", [
    ({"rows": ["T", "U"]}, "no \\[targets"),
    ({"targets": {"T": {"range": [0.6, 0.5], "source": "x"}}}, "low < high"),
    ({"targets": {"T": {"range": [0.5, 0.6]}}}, "source"),
    ({"parameters": [{"key": "a", "low": 1.0, "high": 1.0, "source": "x"}]}, "low < high"),
    ({"parameters": [{"key": "a", "low": 0.0, "high": 1.0, "scale": "log", "source": "x"}]},
     "log-scale prior needs low > 0"),
    ({"parameters": [{"key": "a", "low": 0.0, "high": 1.0}]}, "source"),
    ({"parameters": [{"key": "a", "low": 0, "high": 1, "source": "x"}] * 2}, "listed twice"),
    ({"population": 1}, "population"),
    ({"colour": "red"}, "colour"),
])
def test_bad_configuration_names_the_key(change, match):
    with pytest.raises(ConfigError, match=match):
        load_calibration(toy_config(**change))


def test_unknown_scenario_key_fails_before_any_run(tmp_path):
    cfg = toy_config(rows=["V10"], targets={"V10": {"range": [2.5, 5], "source": "x"}},
                     parameters=[{"key": "biology.monocyte.no_such_rate", "low": 0, "high": 1,
                                  "source": "x"}])
    with pytest.raises(ConfigError, match="no_such_rate"):
        calibrate(cfg, tmp_path, progress=None)
    assert not (tmp_path / "abc.db").exists()


def test_calibration_and_validation_seeds_are_disjoint():
    cfg = load_calibration(toy_config(replicates=3))
    assert min(cfg.seeds) > CALIBRATION_SEED_BASE
    with pytest.raises(ValueError, match="reserved for calibrations"):
        run_validation(rows="V10", replicates=1, first_seed=CALIBRATION_SEED_BASE,
                       out_dir=None, progress=False)
    with pytest.raises(ValueError, match="reserved for calibrations"):
        run_validation(rows="V10", replicates=3, first_seed=CALIBRATION_SEED_BASE - 1,
                       out_dir=None, progress=False)
    with pytest.raises(ValueError, match="calibration seeds"):
        run_validation(rows="V10", replicates=1, first_seed=1, out_dir=None,
                       progress=False, calibration=True)


def test_row_distance_and_weighted_quantile():
    assert row_distance(0.5, 0.0, 1.0) == 0.0
    assert row_distance(-0.5, 0.0, 2.0) == pytest.approx(0.25)
    assert row_distance(3.0, 0.0, 2.0) == pytest.approx(0.5)
    assert row_distance(float("nan"), 0, 1) == MISSING_DISTANCE
    x = np.array([3.0, 1.0, 2.0])
    assert weighted_quantile(x, np.ones(3), 0.5) == pytest.approx(2.0)
    assert weighted_quantile(x, np.array([0.0, 0.0, 1.0]), 0.5) == pytest.approx(2.0)


def test_real_rows_end_to_end_on_the_command_line(tmp_path, capsys):
    """The culture-well row V10 (osteoclast onset) with its real arm, two particles, one
    generation, one seed: the plumbing from the CLI to the report."""
    cfg = tmp_path / "cal.toml"
    cfg.write_text("""
name = "onset"
rows = ["V10"]
replicates = 1
population = 2
generations = 1
predictive = 1
[targets.V10]
range = [2.5, 5.0]
source = "biology.md V10: multinucleated osteoclasts by day 3-5"
[[parameters]]
key = "biology.monocyte.commitment_per_day"
low = 0.5
high = 4.0
scale = "log"
source = "test range"
""")
    rc = cli_main(["calibrate", str(cfg), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0, out
    s = json.loads((tmp_path / "out" / "posterior.json").read_text())
    v = s["parameters"]["biology.monocyte.commitment_per_day"]
    assert 0.5 <= v["ci95"][0] <= v["ci95"][1] <= 4.0
    assert s["seeds"] == [str(CALIBRATION_SEED_BASE + 1)]
    assert "V10: predictive median" in out
    assert cli_main(["calibrate", str(cfg), "--out", str(tmp_path / "out")]) == 2
    assert "already holds a calibration" in capsys.readouterr().err


def _deterministic_toy(v):
    return {"T": 2.0 * v["a"]}


def test_particles_on_a_local_dask_cluster(tmp_path):
    """--workers 2: the particles of each generation run on a local dask cluster."""
    s = calibrate(toy_config(population=16, generations=2, predictive=2), tmp_path,
                  simulate=_deterministic_toy, workers=2, progress=None)
    lo, hi = s["parameters"]["a"]["ci95"]
    assert 0.0 <= lo < hi <= 1.0 and s["generations"] == 2
    assert s["simulations"] >= 32


def test_the_callers_global_random_state_is_left_alone(tmp_path):
    np.random.seed(123)
    want = np.random.random()
    np.random.seed(123)
    calibrate(toy_config(population=8, generations=1, predictive=0), tmp_path,
              simulate=_deterministic_toy, progress=None)
    assert np.random.random() == want


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "docs" / "calibration")
                                        .glob("*.toml")), ids=lambda p: p.name)
def test_committed_calibrations_load_and_name_real_keys(path):
    """Every calibration committed under docs/calibration/ is a valid configuration whose
    parameters are scenario keys every arm of its rows accepts at both prior bounds, and
    its report sits beside it."""
    from niche.calibration.core import _check_keys

    cfg = load_calibration(path)
    _check_keys(cfg)
    assert path.with_suffix(".md").exists()
    assert cfg.parameters and all(p.source for p in cfg.parameters)
