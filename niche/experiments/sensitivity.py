"""Global sensitivity analysis: Morris screening and Sobol' indices through SALib.

Which scenario parameters move which readouts, over whole ranges rather than one step from a
baseline. The machinery has three steps, and the middle one belongs to the caller:

1. :func:`design` turns a :class:`Problem` into ``n_samples`` parameter dicts (dotted
   scenario keys to values, in SALib's order).
2. ``evaluate(samples, replicate) -> np.ndarray`` is passed in. It gets the whole list of
   samples once per replicate and returns an array of shape ``(n_samples, n_outputs)``,
   columns in the order of ``problem.outputs`` (shape ``(n_samples,)`` is accepted when there
   is one output). ``replicate`` runs ``0 .. replicates - 1``; the caller derives its
   simulation seeds from it (e.g. ``base_seed + replicate``), so every sample of one
   replicate can share a seed (common random numbers, which lowers the noise in the
   differences the indices are made of). The niche experiment layer turns each sample into
   an arm whose overrides are the sample dict and runs one seed per replicate.
3. :func:`analyse` averages nothing: it takes the sample matrix and outputs ``Y`` of shape
   ``(n_samples, n_outputs)`` and returns a tidy :class:`pandas.DataFrame` with columns
   ``output, parameter, index, value``. Index names: ``S1, S1_conf, ST, ST_conf`` (Sobol;
   plus ``S2, S2_conf`` with parameter ``"a:b"`` when second-order indices are asked for) and
   ``mu_star, mu_star_conf, sigma, mu`` (Morris). ``*_conf`` are half-widths of bootstrap
   confidence intervals at ``conf_level``.

:func:`run_sensitivity` does the three in a row; for ``replicates > 1`` it calls ``evaluate``
once per replicate and averages the outputs per sample (array ``(replicates, n_samples,
n_outputs)`` averaged over axis 0) before the analysis. :func:`sensitivity_table` and
:func:`plot_indices` turn the tidy table into Markdown and a bar plot.

Sample counts (``D`` parameters, ``n`` as passed):

* ``"sobol"``: ``n`` base samples (a power of two, for the Sobol' sequence's balance
  properties; SALib warns otherwise), ``n * (D + 2)`` samples, or ``n * (2 D + 2)`` with
  ``calc_second_order=True``.
* ``"morris"``: ``n`` trajectories on a ``num_levels`` grid, ``n * (D + 1)`` samples.

Parameters with ``scale="log"`` are sampled uniformly in ``log10`` and handed to ``evaluate``
in natural units; Morris elementary effects of such a parameter are per step in ``log10``
units.

Randomness: the Sobol' sequence's scrambling, the Morris trajectories and the bootstrap
confidence intervals all draw from generators seeded with the integer ``seed``; the same
seed gives the same samples and the same table.

Why SALib: it is the standard, maintained implementation of both methods (Saltelli's
sampling scheme on scrambled Sobol' sequences, Jansen/Saltelli estimators with bootstrap
intervals, Morris trajectories with Campolongo's mu*), pure Python on numpy/scipy/pandas
which niche already depends on, and its estimators are the ones the literature's reference
values were computed with. Writing them here would be code to validate instead of code that
is validated. Only the current function API is used (``SALib.sample.sobol``, not the
deprecated ``SALib.sample.saltelli``).

This module imports nothing from niche; matplotlib is imported only by :func:`plot_indices`.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from SALib.analyze import morris as _morris_analyze
from SALib.analyze import sobol as _sobol_analyze
from SALib.sample import morris as _morris_sample
from SALib.sample import sobol as _sobol_sample

Method = Literal["sobol", "morris"]
Scale = Literal["linear", "log"]
METHODS: tuple[str, ...] = ("sobol", "morris")
SCALES: tuple[str, ...] = ("linear", "log")
SOBOL_INDICES: tuple[str, ...] = ("S1", "S1_conf", "ST", "ST_conf")
MORRIS_INDICES: tuple[str, ...] = ("mu_star", "mu_star_conf", "sigma", "mu")
COLUMNS: tuple[str, ...] = ("output", "parameter", "index", "value")

#: ``evaluate(samples, replicate) -> (n_samples, n_outputs)`` array.
Evaluate = Callable[[list[dict[str, float]], int], np.ndarray]


@dataclass(frozen=True)
class Problem:
    """What is varied, over which ranges, and what is read out.

    Args:
        parameters: dotted scenario keys (``"il2.dose_iu"``) to ``(lo, hi)`` bounds, as a
            mapping or a sequence of ``(name, (lo, hi))`` pairs. Order is kept; it is the
            column order of sample matrices.
        outputs: readout names, in the column order ``evaluate`` returns.
        scale: per-parameter ``"linear"`` (default) or ``"log"`` (log-uniform; needs
            ``0 < lo``).

    Raises:
        ValueError: one line naming the bad parameter (or output) and why.
    """

    parameters: Mapping[str, tuple[float, float]] | Sequence[tuple[str, tuple[float, float]]]
    outputs: Sequence[str]
    scale: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        items = list(self.parameters.items()) if isinstance(self.parameters, Mapping) \
            else list(self.parameters)
        if not items:
            raise ValueError("Problem: no parameters")
        params: dict[str, tuple[float, float]] = {}
        for item in items:
            try:
                name, bounds = item
            except (TypeError, ValueError):
                raise ValueError(f"Problem: parameter entry {item!r} is not (name, (lo, hi))")\
                    from None
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"Problem: parameter name {name!r} is not a non-empty string")
            if name in params:
                raise ValueError(f"parameter {name!r}: duplicate name")
            try:
                lo, hi = (float(b) for b in bounds)
            except (TypeError, ValueError):
                raise ValueError(f"parameter {name!r}: bounds {bounds!r} are not two numbers "
                                 "(lo, hi)") from None
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"parameter {name!r}: bounds ({lo}, {hi}) are not finite")
            if not lo < hi:
                raise ValueError(f"parameter {name!r}: lower bound {lo} is not below upper "
                                 f"bound {hi}")
            params[name] = (lo, hi)
        scale = dict(self.scale)
        for name, s in scale.items():
            if name not in params:
                raise ValueError(f"parameter {name!r}: scale given for a parameter not in "
                                 "the problem")
            if s not in SCALES:
                raise ValueError(f"parameter {name!r}: scale {s!r} is not one of {SCALES}")
            lo, hi = params[name]
            if s == "log" and lo <= 0:
                raise ValueError(f"parameter {name!r}: log scale needs positive bounds, got "
                                 f"({lo}, {hi})")
        outputs = tuple(self.outputs) if not isinstance(self.outputs, str) else (self.outputs,)
        if not outputs:
            raise ValueError("Problem: no outputs")
        seen: set[str] = set()
        for out in outputs:
            if not isinstance(out, str) or not out.strip():
                raise ValueError(f"Problem: output name {out!r} is not a non-empty string")
            if out in seen:
                raise ValueError(f"output {out!r}: duplicate name")
            seen.add(out)
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "scale", {n: scale.get(n, "linear") for n in params})

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in column order."""
        return tuple(self.parameters)

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        """``(lo, hi)`` per parameter, natural units."""
        return tuple(self.parameters.values())

    def _is_log(self) -> np.ndarray:
        return np.array([self.scale[n] == "log" for n in self.names])

    def salib(self) -> dict:
        """The SALib problem dict; log-scaled parameters have ``log10`` bounds."""
        bounds = [[math.log10(lo), math.log10(hi)] if self.scale[n] == "log" else [lo, hi]
                  for n, (lo, hi) in self.parameters.items()]
        return {"num_vars": len(self.names), "names": list(self.names), "bounds": bounds}

    def to_natural(self, matrix: np.ndarray) -> np.ndarray:
        """SALib-space matrix ``(n_samples, D)`` to natural units (``10**x`` where log)."""
        x = np.array(matrix, dtype=float, copy=True)
        log = self._is_log()
        if log.any():
            x[:, log] = 10.0 ** x[:, log]
            lo = np.array([b[0] for b in self.bounds])[log]
            hi = np.array([b[1] for b in self.bounds])[log]
            x[:, log] = np.clip(x[:, log], lo, hi)   # 10**log10(hi) may overshoot by an ulp
        return x

    def to_salib(self, matrix: np.ndarray) -> np.ndarray:
        """Natural-unit matrix ``(n_samples, D)`` to SALib space (``log10`` where log)."""
        x = np.array(matrix, dtype=float, copy=True)
        log = self._is_log()
        if log.any():
            x[:, log] = np.log10(x[:, log])
        return x

    def matrix(self, samples: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Sample dicts to a natural-unit matrix ``(n_samples, D)`` in column order."""
        try:
            return np.array([[float(s[n]) for n in self.names] for s in samples], dtype=float)
        except KeyError as exc:
            raise ValueError(f"parameter {exc.args[0]!r}: missing from a sample") from None


@dataclass(frozen=True)
class SensitivityResult:
    """What :func:`run_sensitivity` did and found.

    Attributes:
        problem, method, n, seed, replicates: as passed.
        samples: the ``n_samples`` parameter dicts, natural units.
        outputs: ``(n_samples, n_outputs)``, averaged over replicates.
        replicate_outputs: ``(replicates, n_samples, n_outputs)``, as ``evaluate`` returned.
        indices: the tidy table of :func:`analyse`.
    """

    problem: Problem
    method: str
    n: int
    seed: int
    replicates: int
    samples: list[dict[str, float]]
    outputs: np.ndarray
    replicate_outputs: np.ndarray
    indices: pd.DataFrame


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {METHODS}")
    return method


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def design_matrix(problem: Problem, method: Method, n: int, seed: int, *,
                  calc_second_order: bool = False, num_levels: int = 4) -> np.ndarray:
    """The SALib sample matrix ``(n_samples, D)``, natural units, in SALib's order."""
    _check_method(method)
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    sp = problem.salib()
    if method == "sobol":
        x = _sobol_sample.sample(sp, n, calc_second_order=calc_second_order, seed=seed)
    else:
        num_levels = _check_int("num_levels", num_levels, 2)
        x = _morris_sample.sample(sp, n, num_levels=num_levels, seed=seed)
    return problem.to_natural(x)


def design(problem: Problem, method: Method, n: int, seed: int, *,
           calc_second_order: bool = False, num_levels: int = 4) -> list[dict[str, float]]:
    """One parameter dict per sample (natural units), in SALib's order.

    Args:
        problem: the parameters and their ranges.
        method: ``"sobol"`` (``n`` base samples, a power of two) or ``"morris"`` (``n``
            trajectories).
        n: see ``method``; the module docstring gives the sample counts.
        seed: seeds the Sobol' scrambling or the Morris trajectories.
        calc_second_order: Sobol only; pass the same value to :func:`analyse`.
        num_levels: Morris grid levels; pass the same value to :func:`analyse`.
    """
    x = design_matrix(problem, method, n, seed, calc_second_order=calc_second_order,
                      num_levels=num_levels)
    return [dict(zip(problem.names, map(float, row))) for row in x]


def _outputs_array(problem: Problem, Y: np.ndarray, n_samples: int, what: str) -> np.ndarray:
    y = np.asarray(Y, dtype=float)
    k = len(problem.outputs)
    if y.ndim == 1 and k == 1:
        y = y[:, None]
    if y.shape != (n_samples, k):
        raise ValueError(f"{what} has shape {y.shape}, expected (n_samples, n_outputs) = "
                         f"({n_samples}, {k})")
    bad = ~np.isfinite(y)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"output {problem.outputs[j]!r}: {what} is not finite at sample {i} "
                         f"({int(bad.sum())} non-finite values in all)")
    return y


def analyse(problem: Problem, method: Method, samples: np.ndarray | Sequence[Mapping[str, float]],
            Y: np.ndarray, seed: int, *, calc_second_order: bool = False, num_levels: int = 4,
            num_resamples: int = 100, conf_level: float = 0.95) -> pd.DataFrame:
    """Sensitivity indices of every output to every parameter, as a tidy table.

    Args:
        problem: as passed to :func:`design`.
        method: as passed to :func:`design`.
        samples: the design, as the list of dicts of :func:`design` or a natural-unit matrix
            ``(n_samples, D)`` (:func:`design_matrix`), rows in SALib's order.
        Y: outputs ``(n_samples, n_outputs)``, columns in ``problem.outputs`` order.
        seed: seeds the bootstrap confidence intervals.
        calc_second_order, num_levels: as passed to :func:`design`.
        num_resamples, conf_level: bootstrap resamples and confidence level of ``*_conf``.

    Returns:
        Columns ``output, parameter, index, value``; see the module docstring for the index
        names.
    """
    _check_method(method)
    seed = _check_int("seed", seed, 0)
    if isinstance(samples, np.ndarray):
        x = np.asarray(samples, dtype=float)
    else:
        x = problem.matrix(samples)
    if x.ndim != 2 or x.shape[1] != len(problem.names):
        raise ValueError(f"samples have shape {x.shape}, expected (n_samples, "
                         f"{len(problem.names)})")
    y = _outputs_array(problem, Y, x.shape[0], "Y")
    sp = problem.salib()
    names = problem.names
    rows: list[tuple[str, str, str, float]] = []
    for j, out in enumerate(problem.outputs):
        if method == "sobol":
            si = _sobol_analyze.analyze(sp, y[:, j], calc_second_order=calc_second_order,
                                        num_resamples=num_resamples, conf_level=conf_level,
                                        seed=seed)
            for i, p in enumerate(names):
                rows.extend((out, p, k, float(si[k][i])) for k in SOBOL_INDICES)
            if calc_second_order:
                for a in range(len(names)):
                    for b in range(a + 1, len(names)):
                        pair = f"{names[a]}:{names[b]}"
                        rows.append((out, pair, "S2", float(si["S2"][a, b])))
                        rows.append((out, pair, "S2_conf", float(si["S2_conf"][a, b])))
        else:
            si = _morris_analyze.analyze(sp, problem.to_salib(x), y[:, j],
                                         num_resamples=num_resamples, conf_level=conf_level,
                                         num_levels=num_levels, seed=seed)
            for i, p in enumerate(names):
                rows.extend((out, p, k, float(si[k][i])) for k in MORRIS_INDICES)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def run_sensitivity(problem: Problem, method: Method, n: int, evaluate: Evaluate, seed: int,
                    replicates: int = 1, *, calc_second_order: bool = False,
                    num_levels: int = 4, num_resamples: int = 100,
                    conf_level: float = 0.95) -> SensitivityResult:
    """Design, evaluate each replicate, average per sample, analyse.

    Args:
        problem, method, n: see :func:`design`.
        evaluate: ``evaluate(samples, replicate) -> (n_samples, n_outputs)``, called once per
            replicate with the full sample list and ``replicate`` in ``0 .. replicates - 1``.
        seed: seeds the design and the bootstrap (the same integer to both, as
            :func:`design` and :func:`analyse` would get it).
        replicates: how many times ``evaluate`` is called; outputs are averaged per sample
            over replicates before the analysis.
        calc_second_order, num_levels, num_resamples, conf_level: see :func:`analyse`.
    """
    replicates = _check_int("replicates", replicates, 1)
    samples = design(problem, method, n, seed, calc_second_order=calc_second_order,
                     num_levels=num_levels)
    per_rep = np.stack([_outputs_array(problem, evaluate(samples, r), len(samples),
                                       f"evaluate(samples, replicate={r})")
                        for r in range(replicates)])
    y = per_rep.mean(axis=0)
    table = analyse(problem, method, samples, y, seed, calc_second_order=calc_second_order,
                    num_levels=num_levels, num_resamples=num_resamples, conf_level=conf_level)
    return SensitivityResult(problem=problem, method=method, n=int(n), seed=int(seed),
                             replicates=replicates, samples=samples, outputs=y,
                             replicate_outputs=per_rep, indices=table)


def _fmt(v: float) -> str:
    return "" if pd.isna(v) else f"{v:.4g}"


def sensitivity_table(df: pd.DataFrame) -> str:
    """Markdown table: one row per (output, parameter), one column per index."""
    if df.empty:
        raise ValueError("sensitivity_table: no indices")
    wide = df.pivot_table(index=["output", "parameter"], columns="index", values="value",
                          sort=False)
    order = [k for k in (*SOBOL_INDICES, "S2", "S2_conf", *MORRIS_INDICES) if k in wide.columns]
    wide = wide[order]
    header = ["output", "parameter", *order]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---", "---"] + ["---:"] * len(order)) + "|"]
    for (out, par), row in wide.iterrows():
        lines.append("| " + " | ".join([str(out), f"`{par}`", *(_fmt(row[k]) for k in order)])
                     + " |")
    return "\n".join(lines) + "\n"


def plot_indices(df: pd.DataFrame, path: str | Path) -> Path:
    """Bar plot of the indices, one panel per output, error bars from the ``*_conf`` columns.

    Sobol: S1 and ST side by side per parameter. Morris: mu* (with its interval) and sigma.
    Written with the Agg canvas (no pyplot, no global backend change).

    Returns:
        ``path``, as a :class:`~pathlib.Path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if df.empty:
        raise ValueError("plot_indices: no indices")
    path = Path(path)
    sobol = "S1" in set(df["index"])
    bars = [("S1", "S1_conf"), ("ST", "ST_conf")] if sobol else \
        [("mu_star", "mu_star_conf"), ("sigma", None)]
    first = df[df["index"].isin([b for b, _ in bars])]
    outputs = list(dict.fromkeys(first["output"]))
    fig = Figure(figsize=(max(4.0, 4.5 * len(outputs)), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(outputs), squeeze=False)[0]
    width = 0.8 / len(bars)
    for ax, out in zip(axes, outputs):
        sub = df[df["output"] == out]
        params = list(dict.fromkeys(sub[sub["index"] == bars[0][0]]["parameter"]))
        val = sub.pivot_table(index="parameter", columns="index", values="value",
                              sort=False).reindex(params)
        xs = np.arange(len(params))
        for b, (key, conf) in enumerate(bars):
            err = val[conf].to_numpy() if conf and conf in val else None
            ax.bar(xs + (b - (len(bars) - 1) / 2) * width, val[key].to_numpy(), width,
                   yerr=err, capsize=3, label=key)
        ax.set_xticks(xs, params, rotation=30, ha="right", fontsize=8)
        ax.axhline(0.0, color="0.5", lw=0.6)
        ax.set_title(out, fontsize=10)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("Sobol index" if sobol else "elementary effect")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
