"""``niche calibrate``: ABC-SMC (pyABC) of scenario parameters against validation rows.

Each particle sets the fitted parameters (``--set``-style overrides on every arm), runs
the arms behind the chosen rows with the calibration seeds (:mod:`niche.validation.run`,
on the experiment layer) and returns the rows' headline effects. The distance of a
particle is the sum over rows of how far its effect lies outside the row's target interval,
in units of the interval's width (0 inside; a row whose effect cannot be computed counts
:data:`MISSING_DISTANCE`). pyABC runs the generations (its median epsilon schedule and
multivariate normal transitions) and keeps them in ``<out>/abc.db`` (SQLite), so a stopped
calibration resumes with ``--resume``; particles run one after another here, on a local
dask cluster (``--workers N``) or on a running scheduler (``--scheduler ADDR``), a
generation's batch of particles mapped onto it.

At the end it writes to ``<out>``: ``posterior.csv`` (the last generation's particles,
their parameter values and weights), ``posterior.json`` (weighted mean, median and 95 %
interval per parameter, the adopted point = the weighted median, and the run's budget),
``pairs.png`` (pair plot of the posterior), ``predictive.csv`` (each row's effect for
``predictive`` parameter sets drawn from the posterior) and ``report.md``.
"""
from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .config import CalibrationConfig, load_calibration

__all__ = ["MISSING_DISTANCE", "calibrate", "row_distance", "rows_simulator",
           "weighted_quantile"]

#: distance of a row whose effect is not a number (failed run, no event)
MISSING_DISTANCE = 10.0

Simulator = Callable[[Mapping[str, float]], Mapping[str, float]]


def row_distance(effect: float, lo: float, hi: float) -> float:
    """How far ``effect`` lies outside ``[lo, hi]``, in widths of the interval (0 inside)."""
    if effect is None or not math.isfinite(effect):
        return MISSING_DISTANCE
    if effect < lo:
        return (lo - effect) / (hi - lo)
    if effect > hi:
        return (effect - hi) / (hi - lo)
    return 0.0


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """Quantile ``q`` of values ``x`` with weights ``w`` (inverse of the weighted CDF at
    the midpoints of the weights)."""
    order = np.argsort(x, kind="stable")
    x, w = np.asarray(x, float)[order], np.asarray(w, float)[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(q, cdf, x))


def rows_simulator(cfg: CalibrationConfig, *, table=None, arms=None) -> Simulator:
    """The particle simulator of ``cfg``: scenario values -> {row id: headline effect},
    running the rows' arms with the calibration seeds, one after another in this process
    (a particle is one task of the sampler)."""
    from ..validation.rows import ARMS, ROWS
    from ..validation.run import run_validation

    table = ROWS if table is None else table
    arms = ARMS if arms is None else arms
    shape = None if cfg.shape is None else list(cfg.shape)

    def simulate(values: Mapping[str, float]) -> dict[str, float]:
        rep = run_validation(rows=list(cfg.rows), replicates=cfg.replicates, workers=0,
                             out_dir=None, shape=shape, progress=False, table=table,
                             arms=arms, overrides=dict(values), first_seed=cfg.first_seed(),
                             calibration=True)
        return {r: float(rep.results[r].effect) for r in cfg.rows}

    return simulate


def _check_keys(cfg: CalibrationConfig, arms=None) -> None:
    """Every fitted key loads in every arm at both ends of its prior (one ConfigError
    naming the key otherwise), before any run starts."""
    from ..experiments.execution import task_overrides
    from ..scenario import load_scenario
    from ..validation.rows import ARMS, ROWS, parse_rows
    from ..validation.run import _needed_arms

    arms = ARMS if arms is None else arms
    needed = _needed_arms(parse_rows(list(cfg.rows), ROWS), arms)
    for p in cfg.parameters:
        for v in (p.low, p.high):
            for a in needed:
                load_scenario(arms[a].scenario, task_overrides(arms[a], cfg.shape, {p.key: v}))


def _names(cfg: CalibrationConfig) -> list[str]:
    return [f"p{i}" for i in range(len(cfg.parameters))]


def calibrate(config: CalibrationConfig | str | Path | dict, out_dir: str | Path, *,
              simulate: Simulator | None = None, workers: int = 1,
              scheduler: str | None = None, resume: bool = False,
              progress: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) the calibration ``config`` into ``out_dir``;
    returns the summary written to ``posterior.json``.

    ``simulate`` replaces the rows simulator (tests, other models): scenario values ->
    {row id: effect}. ``workers`` > 1 runs particles on a local dask cluster of that many
    single-threaded processes; ``scheduler`` on a running one. A finished calibration is
    not run again: ``resume`` continues one (up to ``generations`` in all), and an
    ``out_dir`` that holds a calibration is refused without it."""
    import pyabc

    cfg = config if isinstance(config, CalibrationConfig) else load_calibration(config)
    out = Path(out_dir)
    db_file = out / "abc.db"
    if db_file.exists() and not resume:
        raise ValueError(f"{out} already holds a calibration (abc.db): use --resume to "
                         "continue it or choose another --out")
    if resume and not db_file.exists():
        raise ValueError(f"--resume: {out} holds no calibration (no abc.db)")
    if resume:  # more generations or predictive draws may be asked for; nothing else
        def fixed(d: dict) -> dict:
            return {k: v for k, v in d.items() if k not in ("generations", "predictive")}

        saved = json.loads((out / "config.json").read_text())
        if fixed(saved) != fixed(cfg.model_dump(mode="json")):
            raise ValueError(f"--resume: the configuration differs from the one {out} was "
                             "started with (config.json) in more than generations/predictive")
    if simulate is None:
        _check_keys(cfg)
        simulate = rows_simulator(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=1))

    names = _names(cfg)
    prior = pyabc.Distribution(**{
        n: pyabc.RV("uniform", p.bounds[0], p.bounds[1] - p.bounds[0])
        for n, p in zip(names, cfg.parameters)})
    targets = {r: cfg.targets[r].range for r in cfg.rows}

    def model(par):
        values = {p.key: p.to_value(float(par[n])) for n, p in zip(names, cfg.parameters)}
        got = simulate(values)
        return {r: float(got.get(r, float("nan"))) for r in cfg.rows}

    def distance(x, x0):
        return float(sum(row_distance(x[r], *targets[r]) for r in cfg.rows))

    with contextlib.ExitStack() as stack:
        # pyABC draws only from numpy's global generator: seed it from the file for this
        # calibration and give the caller's state back afterwards
        stack.callback(np.random.set_state, np.random.get_state())
        np.random.seed(cfg.seed)
        if scheduler is not None or workers > 1:
            from distributed import Client

            from ..experiments.execution import local_client

            client = stack.enter_context(Client(scheduler) if scheduler
                                         else local_client(workers))

            def dask_map(fn, items):  # one generation's batch of particles on the cluster
                return client.gather(client.map(fn, list(items), pure=False))

            sampler = pyabc.sampler.MappingSampler(map_=dask_map)
        else:
            sampler = pyabc.sampler.SingleCoreSampler()
        abc = pyabc.ABCSMC(model, prior, distance, population_size=cfg.population,
                           sampler=sampler,
                           eps=pyabc.epsilon.MedianEpsilon(initial_epsilon="from_sample"))
        db = f"sqlite:///{db_file.resolve()}"
        observed = {r: 0.5 * (lo + hi) for r, (lo, hi) in targets.items()}
        if resume:
            abc.load(db, 1)
            done = abc.history.max_t + 1
        else:
            abc.new(db, observed)
            done = 0
        left = cfg.generations - done
        if left > 0:
            if progress:
                progress(f"niche calibrate {cfg.name}: generations {done + 1}..{cfg.generations}"
                         f" of {cfg.population} particles")
            abc.run(minimum_epsilon=cfg.min_epsilon, max_nr_populations=left)
        history = abc.history
        summary = _summarise(cfg, history, simulate, out)
    if progress:
        progress(f"wrote {out / 'report.md'}")
    return summary


def _summarise(cfg: CalibrationConfig, history, simulate: Simulator, out: Path) -> dict:
    """Posterior table, intervals, adopted point, pair plot, posterior predictive, report."""
    import pandas as pd

    names = _names(cfg)
    df, w = history.get_distribution(m=0, t=history.max_t)
    w = np.asarray(w, float)
    post = pd.DataFrame({p.key: [p.to_value(float(v)) for v in df[n]]
                         for n, p in zip(names, cfg.parameters)})
    post["weight"] = w
    post.to_csv(out / "posterior.csv", index=False)
    params = {}
    for p in cfg.parameters:
        x = post[p.key].to_numpy(float)
        params[p.key] = {"mean": float(np.sum(w * x) / w.sum()),
                         "median": weighted_quantile(x, w, 0.5),
                         "ci95": [weighted_quantile(x, w, 0.025),
                                  weighted_quantile(x, w, 0.975)],
                         "prior": [p.low, p.high], "scale": p.scale, "source": p.source}
    adopted = {k: v["median"] for k, v in params.items()}
    pops = history.get_all_populations()
    pops = pops[pops["t"] >= 0]
    rng = np.random.default_rng(cfg.seed)
    draws = rng.choice(len(post), size=cfg.predictive, p=w / w.sum()) if cfg.predictive else []
    pred_rows = []
    for i, j in enumerate(draws):
        values = {p.key: float(post[p.key].iloc[j]) for p in cfg.parameters}
        eff = simulate(values)
        pred_rows.append({"draw": i, **values, **{f"effect_{r}": float(eff.get(r, np.nan))
                                                    for r in cfg.rows}})
    pred = pd.DataFrame(pred_rows)
    pred.to_csv(out / "predictive.csv", index=False)
    predictive = {}
    for r in cfg.rows:
        lo, hi = cfg.targets[r].range
        e = pred[f"effect_{r}"].to_numpy(float) if len(pred) else np.zeros(0)
        ok = e[np.isfinite(e)]
        predictive[r] = {
            "target": [lo, hi], "source": cfg.targets[r].source,
            "median": float(np.median(ok)) if ok.size else float("nan"),
            "ci95": ([float(np.quantile(ok, 0.025)), float(np.quantile(ok, 0.975))]
                     if ok.size else [float("nan")] * 2),
            "inside": float(np.mean((e >= lo) & (e <= hi))) if e.size else float("nan")}
    summary = {"name": cfg.name, "generations": int(history.max_t + 1),
               "population": cfg.population, "seeds": [str(s) for s in cfg.seeds],
               "simulations": int(history.total_nr_simulations),
               "epsilons": [float(e) for e in pops["epsilon"]],
               "parameters": params, "adopted": adopted, "predictive": predictive}
    (out / "posterior.json").write_text(json.dumps(summary, indent=1))
    _pairs(post, w, out / "pairs.png")
    (out / "report.md").write_text(_report(cfg, summary))
    return summary


def _pairs(post, w, path: Path) -> None:
    """Pair plot of the weighted posterior (histograms on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [c for c in post.columns if c != "weight"]
    k = len(keys)
    fig, ax = plt.subplots(k, k, figsize=(2.6 * k + 1, 2.6 * k + 1), squeeze=False)
    for i, a in enumerate(keys):
        for j, b in enumerate(keys):
            axis = ax[i][j]
            if i == j:
                axis.hist(post[a], bins=20, weights=w, color="tab:blue")
            elif i > j:
                axis.scatter(post[b], post[a], s=8 + 200 * w / w.max(), alpha=0.5)
            else:
                axis.axis("off")
            if i == k - 1:
                axis.set_xlabel(b, fontsize=7)
            if j == 0 and i > 0:
                axis.set_ylabel(a, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _report(cfg: CalibrationConfig, s: dict) -> str:
    L = [f"# niche calibrate: {cfg.name}", "",
         f"ABC-SMC (pyABC), {s['generations']} generations of {cfg.population} particles, "
         f"{s['simulations']} simulated particles; rows {', '.join(cfg.rows)}; "
         f"{cfg.replicates} calibration seeds per arm (from 2**62 + 1; `niche validate` "
         f"cannot use them); domain {'x'.join(map(str, cfg.shape)) if cfg.shape else 'the '}"
         f"{'' if cfg.shape else 'validation default'}.", "",
         "Epsilon by generation: " + ", ".join(f"{e:.3g}" for e in s["epsilons"]), "",
         "| parameter | prior | scale | posterior median | 95 % interval | adopted | source |",
         "|---|---|---|---|---|---|---|"]
    for k, v in s["parameters"].items():
        L.append(f"| {k} | [{v['prior'][0]:g}, {v['prior'][1]:g}] | {v['scale']} | "
                 f"{v['median']:.4g} | [{v['ci95'][0]:.4g}, {v['ci95'][1]:.4g}] | "
                 f"{s['adopted'][k]:.4g} | {v['source']} |")
    L += ["", f"Posterior predictive ({cfg.predictive} draws):", "",
          "| row | target | median | 95 % interval | draws inside the target | source |",
          "|---|---|---|---|---|---|"]
    for r, v in s["predictive"].items():
        L.append(f"| {r} | [{v['target'][0]:g}, {v['target'][1]:g}] | {v['median']:.4g} | "
                 f"[{v['ci95'][0]:.4g}, {v['ci95'][1]:.4g}] | {100 * v['inside']:.0f} % | "
                 f"{v['source']} |")
    L += ["", "Files: posterior.csv, posterior.json, predictive.csv, pairs.png, abc.db "
          "(pyABC history), config.json.", ""]
    return "\n".join(L)
