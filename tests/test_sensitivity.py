"""Global sensitivity analysis (niche.experiments.sensitivity) on functions with known indices.

No simulations: every ``evaluate`` here is a closed-form function of the sample dicts.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from niche.experiments.sensitivity import (
    MORRIS_INDICES, SOBOL_INDICES, Problem, analyse, design, design_matrix, plot_indices,
    run_sensitivity, sensitivity_table,
)

PI = math.pi
ISHIGAMI = Problem({"x1": (-PI, PI), "x2": (-PI, PI), "x3": (-PI, PI)}, ["y"])
# Ishigami & Homma (1990), a = 7, b = 0.1: analytic first-order and total indices.
ISHIGAMI_S1 = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
ISHIGAMI_ST = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}


def _x(samples, names=("x1", "x2", "x3")) -> np.ndarray:
    return np.array([[s[n] for n in names] for s in samples])


def ishigami(samples, replicate=0, a=7.0, b=0.1) -> np.ndarray:
    x = _x(samples)
    y = np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])
    return y[:, None]


def _values(df: pd.DataFrame, index: str, output: str = "y") -> dict[str, float]:
    sub = df[(df["index"] == index) & (df["output"] == output)]
    return dict(zip(sub["parameter"], sub["value"]))


def test_sobol_ishigami_matches_analytic_indices():
    """S1 and ST of Ishigami (a=7, b=0.1) within 0.05 of the analytic values, N = 1024, seed 7.

    Why 0.05: with N = 1024 base samples (5120 evaluations) the scrambled Sobol' design gives
    an RMS error over 20 seeds of at most 0.008 on any index and a worst error of 0.024; the
    bootstrap 95 % half-widths SALib reports are 0.03-0.08. 0.05 is about six RMS errors, so
    the test does not flake on a seed, yet an estimator or ordering bug (indices swapped
    between parameters, samples not in SALib's order, ST and S1 confused) is off by > 0.1.
    """
    res = run_sensitivity(ISHIGAMI, "sobol", 1024, ishigami, seed=7)
    df = res.indices
    assert list(df.columns) == ["output", "parameter", "index", "value"]
    assert len(res.samples) == 1024 * (3 + 2)
    s1, st = _values(df, "S1"), _values(df, "ST")
    for p in ISHIGAMI.names:
        assert s1[p] == pytest.approx(ISHIGAMI_S1[p], abs=0.05), p
        assert st[p] == pytest.approx(ISHIGAMI_ST[p], abs=0.05), p
    # the same seed gives the same table
    again = run_sensitivity(ISHIGAMI, "sobol", 1024, ishigami, seed=7).indices
    pd.testing.assert_frame_equal(df, again)


def test_sobol_second_order_rows():
    """With calc_second_order, S2 of (x1, x3) carries Ishigami's only interaction (0.2437)."""
    res = run_sensitivity(ISHIGAMI, "sobol", 1024, ishigami, seed=3, calc_second_order=True)
    assert len(res.samples) == 1024 * (2 * 3 + 2)
    s2 = _values(res.indices, "S2")
    assert set(s2) == {"x1:x2", "x1:x3", "x2:x3"}
    assert s2["x1:x3"] == pytest.approx(0.2437, abs=0.1)
    assert abs(s2["x1:x2"]) < 0.1 and abs(s2["x2:x3"]) < 0.1


def test_morris_ranks_linear_model_exactly():
    """y = 10 x1 + 3 x2 + 0.1 x3 on [0, 2]^3: every elementary effect is exact.

    SALib's elementary effects are per step in unit-hypercube coordinates, so for a linear
    model mu* = mu = coefficient * (hi - lo) = (20, 6, 0.2) and sigma = 0, whatever the
    trajectories. Parameters are listed out of rank order so a sort-by-name bug shows.
    """
    prob = Problem([("x3", (0.0, 2.0)), ("x1", (0.0, 2.0)), ("x2", (0.0, 2.0))], ["y"])

    def linear(samples, replicate):
        x = _x(samples)
        return 10 * x[:, 0] + 3 * x[:, 1] + 0.1 * x[:, 2]

    df = run_sensitivity(prob, "morris", 20, linear, seed=11).indices
    assert set(df["index"]) == set(MORRIS_INDICES)
    mu_star, mu, sigma = _values(df, "mu_star"), _values(df, "mu"), _values(df, "sigma")
    for p, want in {"x1": 20.0, "x2": 6.0, "x3": 0.2}.items():
        assert mu_star[p] == pytest.approx(want, rel=1e-9)
        assert mu[p] == pytest.approx(want, rel=1e-9)
        assert sigma[p] == pytest.approx(0.0, abs=1e-9)
    assert sorted(mu_star, key=mu_star.get, reverse=True) == ["x1", "x2", "x3"]


def test_morris_ishigami_grid_values_and_interaction():
    """Morris (4 levels, 500 trajectories) on Ishigami, against values computed on the grid.

    Sobol ranks x1 > x2 > x3 by ST, but Morris does not rank x1 and x2 apart: on the 4-level
    grid (-pi, -pi/3, pi/3, pi; step 4pi/3 = 2/3 of the range) every step of x2 changes
    7 sin^2 x2 by 7 * 0.75, so mu*(x2) = 5.25 / (2/3) = 7.875 exactly, while
    mu*(x1) = 1.5 * sin(pi/3) * (1 + 0.1 E[x3^4]) = 7.704 with E[x3^4] averaged over the
    grid, a near tie. What is checked: mu*(x2) exactly; mu*(x1) ~ 7.70 and
    mu*(x3) = 1.5 * 0.1 * (pi^4 - (pi/3)^4) * E|sin x1| = 6.25 within 1.0 (the bootstrap
    half-widths are ~0.4 at 500 trajectories); and that x3, which acts only through its
    interaction with x1, has mu ~ 0 but mu* and sigma far from negligible (sigma > mu*).
    """
    df = run_sensitivity(ISHIGAMI, "morris", 500, ishigami, seed=5).indices
    mu_star, mu, sigma = _values(df, "mu_star"), _values(df, "mu"), _values(df, "sigma")
    assert mu_star["x2"] == pytest.approx(7.875, rel=1e-9)
    ex3 = (PI ** 4 + (PI / 3) ** 4) / 2
    assert mu_star["x1"] == pytest.approx(1.5 * math.sin(PI / 3) * (1 + 0.1 * ex3), abs=1.0)
    e_abs_sin = (0 + 2 * math.sin(PI / 3) + 0) / 4
    assert mu_star["x3"] == pytest.approx(1.5 * 0.1 * (PI ** 4 - (PI / 3) ** 4) * e_abs_sin,
                                          abs=1.0)
    assert abs(mu["x3"]) < 0.25 * mu_star["x3"]
    assert mu_star["x3"] > 0.5 * max(mu_star.values())
    assert sigma["x3"] > mu_star["x3"]


@pytest.mark.parametrize("method,n", [("sobol", 256), ("morris", 50)])
def test_replicates_are_averaged_per_sample(method, n):
    """evaluate = f(x) + r for replicate r: the averaged outputs are f(x) + mean(r), and the
    indices (shift-invariant) equal the noiseless ones; evaluate sees every replicate once."""
    seen = []

    def shifted(samples, replicate):
        seen.append(replicate)
        return ishigami(samples) + replicate

    clean = run_sensitivity(ISHIGAMI, method, n, ishigami, seed=2)
    rep = run_sensitivity(ISHIGAMI, method, n, shifted, seed=2, replicates=4)
    assert seen == [0, 1, 2, 3]
    assert rep.replicate_outputs.shape == (4, len(rep.samples), 1)
    np.testing.assert_allclose(rep.outputs, clean.outputs + 1.5)
    np.testing.assert_allclose(rep.indices["value"], clean.indices["value"], atol=1e-9)


def test_more_replicates_average_noise_away():
    """Per-sample noise (sd 4, about the Ishigami output's own sd 3.7) drawn from a generator
    seeded by the replicate: S1/ST with 16 replicates are closer to the noiseless ones than
    with 1 (noise variance in the average is 16 times smaller). Deterministic: fixed seeds."""
    def noisy(samples, replicate):
        rng = np.random.default_rng(1000 + replicate)
        return ishigami(samples) + rng.normal(0.0, 4.0, size=(len(samples), 1))

    def err(df, ref):
        keep = df["index"].isin(["S1", "ST"])
        return float(np.abs(df["value"][keep] - ref["value"][keep]).max())

    clean = run_sensitivity(ISHIGAMI, "sobol", 512, ishigami, seed=4).indices
    e1 = err(run_sensitivity(ISHIGAMI, "sobol", 512, noisy, seed=4, replicates=1).indices, clean)
    e16 = err(run_sensitivity(ISHIGAMI, "sobol", 512, noisy, seed=4,
                              replicates=16).indices, clean)
    assert e16 < e1 / 2


def test_log_scaled_parameter_is_log_uniform_within_bounds():
    """A log-scaled parameter on [1e-2, 1e4] stays in bounds; Sobol samples have the geometric
    mean (1e1) as median within a factor 1.2 (a linear-uniform one would have ~5e3); Morris
    samples sit on the log-spaced 4-level grid 1e-2, 1, 1e2, 1e4."""
    prob = Problem({"il2.dose_iu": (1e-2, 1e4), "biology.tcell.treg_butyrate_gain": (0.0, 2.0)},
                   ["treg"], scale={"il2.dose_iu": "log"})
    for method, n in (("sobol", 512), ("morris", 200)):
        samples = design(prob, method, n, seed=1)
        dose = np.array([s["il2.dose_iu"] for s in samples])
        gain = np.array([s["biology.tcell.treg_butyrate_gain"] for s in samples])
        assert dose.min() >= 1e-2 and dose.max() <= 1e4, method
        assert gain.min() >= 0.0 and gain.max() <= 2.0, method
        if method == "sobol":
            assert 10 / 1.2 < np.median(dose) < 10 * 1.2
        else:
            np.testing.assert_allclose(np.unique(dose.round(9)), [1e-2, 1.0, 1e2, 1e4])
    # the Morris elementary effect of y = log10(dose) is the log10 range per unit step
    df = run_sensitivity(prob, "morris", 10,
                         lambda s, r: np.log10([x["il2.dose_iu"] for x in s]), seed=1).indices
    assert _values(df, "mu_star", "treg")["il2.dose_iu"] == pytest.approx(6.0, rel=1e-9)
    # the sample matrix round-trips through the dicts
    np.testing.assert_array_equal(design_matrix(prob, "sobol", 8, seed=3),
                                  prob.matrix(design(prob, "sobol", 8, seed=3)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(parameters=[("a", (0, 1)), ("a", (0, 2))], outputs=["y"]), r"parameter 'a': dup"),
    (dict(parameters={"a": (1, 1)}, outputs=["y"]), r"parameter 'a': lower bound 1.0 is not"),
    (dict(parameters={"a": (2, 1)}, outputs=["y"]), r"parameter 'a': lower bound"),
    (dict(parameters={"a": (0, 1)}, outputs=["y"], scale={"a": "log"}),
     r"parameter 'a': log scale needs positive bounds"),
    (dict(parameters={"a": (1, 2)}, outputs=["y"], scale={"a": "sqrt"}),
     r"parameter 'a': scale 'sqrt'"),
    (dict(parameters={"a": (1, 2)}, outputs=["y"], scale={"b": "log"}),
     r"parameter 'b': scale given for a parameter not in"),
    (dict(parameters={"a": (0, float("inf"))}, outputs=["y"]), r"parameter 'a': bounds"),
    (dict(parameters={"a": (0,)}, outputs=["y"]), r"parameter 'a': bounds"),
    (dict(parameters={"a": (0, 1)}, outputs=["y", "y"]), r"output 'y': duplicate"),
    (dict(parameters={}, outputs=["y"]), r"no parameters"),
])
def test_bad_problems_raise_one_line_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        Problem(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_calls_raise():
    with pytest.raises(ValueError, match="method 'fast'"):
        design(ISHIGAMI, "fast", 8, seed=0)
    with pytest.raises(ValueError, match="seed must be an integer"):
        design(ISHIGAMI, "sobol", 8, seed=None)
    with pytest.raises(ValueError, match=r"expected \(n_samples, n_outputs\)"):
        run_sensitivity(ISHIGAMI, "sobol", 8, lambda s, r: np.zeros((3, 1)), seed=0)
    with pytest.raises(ValueError, match="output 'y': .* not finite at sample 0"):
        run_sensitivity(ISHIGAMI, "sobol", 8, lambda s, r: np.full(len(s), np.nan), seed=0)


def test_table_and_plot(tmp_path):
    prob = Problem({"x1": (-PI, PI), "x2": (-PI, PI), "x3": (-PI, PI)}, ["y", "y2"])

    def two(samples, replicate):
        y = ishigami(samples)
        return np.hstack([y, 2 * y + _x(samples)[:, [0]]])

    for method, n in (("sobol", 64), ("morris", 20)):
        df = run_sensitivity(prob, method, n, two, seed=0).indices
        assert len(df) == 2 * 3 * 4
        md = sensitivity_table(df)
        lines = md.strip().splitlines()
        assert len(lines) == 2 + 2 * 3
        names = SOBOL_INDICES if method == "sobol" else MORRIS_INDICES
        assert lines[0] == "| output | parameter | " + " | ".join(names) + " |"
        assert "| y2 | `x3` |" in md
        png = plot_indices(df, tmp_path / method / "indices.png")
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # analyse on the dicts or the matrix gives the same table
    samples = design(prob, "morris", 10, seed=9)
    y = two(samples, 0)
    pd.testing.assert_frame_equal(analyse(prob, "morris", samples, y, seed=9),
                                  analyse(prob, "morris", prob.matrix(samples), y, seed=9))
