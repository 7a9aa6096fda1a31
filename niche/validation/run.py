"""Running a validation: the arms behind the selected rows x seeds, then the rows' checks.

:func:`run_validation` turns the arms behind the rows it is given and the seeds into an
experiment (:func:`validation_experiment`) and runs it on the experiment layer
(:func:`niche.experiments.folder.run_experiment`: a local ``dask.distributed`` cluster or a
given client) into ``<out>/runs/<digest>/``, so an interrupted validation resumes where it
stopped; then it evaluates the rows (:func:`evaluate`) and writes the report; :func:`evaluate_saved` evaluates rows on the
``histories.csv`` of earlier validations instead, pooling their seeds (no runs).

Seeds are ``first_seed .. first_seed + N - 1`` (default 1..N) in every arm, and the same
seed gives the same initial bone geometry, so effects are computed *paired by seed*.

Quick mode (``quick=True``) runs only the cheap in-vitro rows (:data:`QUICK_ROWS`) with 2
seeds unless rows / replicates say otherwise; in-vivo arms requested in quick mode keep
their simulated days but run on a tiny :data:`QUICK_SHAPE` domain (unless a shape is
given), which is a smoke test of the pipeline, not a validation of the biology. In-vitro
arms (``Arm.in_vitro``) have their own well geometry: the shape applies to in-vivo arms
only.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..scenario import MAX_SEED, load_scenario, parse_overrides
from ..experiments.execution import Arm, TaskOutcome, parse_shape, task_overrides
from ..experiments.folder import histories, run_experiment, run_records
from ..experiments.spec import Experiment
from ..experiments.stats import Histories, MissingReadout
from .report import Report, seed_text, write_report
from .rows import ARMS, ROWS, Row, RowResult, parse_rows

__all__ = [
    "CALIBRATION_SEED_BASE", "QUICK_ROWS", "QUICK_REPLICATES", "DEFAULT_REPLICATES",
    "QUICK_SHAPE", "FULL_SHAPE",
    "evaluate", "evaluate_saved", "run_validation",
]

NAN = float("nan")
#: seeds from here on (2**62) are reserved for calibrations (``niche calibrate``): no
#: validation may use them, so no validation reuses a seed a calibration was fitted on
CALIBRATION_SEED_BASE = 2 ** 62
#: rows run by ``--quick`` when no ``--rows`` are given (cheap in-vitro arms)
QUICK_ROWS: tuple[str, ...] = ("V10", "V11")
QUICK_REPLICATES = 2
#: seeds per arm of a full validation: with 15 seeds of a 48^3 domain a block passes every
#: row with probability ~0.94 (verdict-stability bootstrap over 26 seeds,
#: docs/validation/three-blocks.md); with 5, ~0.26. About 45 min on 2 idle cores.
DEFAULT_REPLICATES = 15
#: domain of in-vivo arms in quick mode (unless ``--shape``)
QUICK_SHAPE: tuple[int, int, int] = (24, 24, 24)
#: domain of in-vivo arms in a full run (unless ``--shape``): 480 um cubes, 0.11 mm^3,
#: ~20 trabeculae; one seed of all arms takes ~6 min of one core
FULL_SHAPE: tuple[int, int, int] = (48, 48, 48)


def evaluate(row: Row, arms: Histories) -> RowResult:
    """Run a row's check; a missing readout or any error in the check is a FAIL with the
    reason as detail, never an exception."""
    try:
        missing = [a for a in row.arms if a not in arms]
        if missing:
            return RowResult(NAN, (NAN, NAN), False, f"no data for arm(s) {', '.join(missing)}")
        return row.check(arms)
    except MissingReadout as e:
        return RowResult(NAN, (NAN, NAN), False, str(e))
    except Exception as e:  # noqa: BLE001
        return RowResult(NAN, (NAN, NAN), False,
                         f"check failed: {type(e).__name__}: {e}".splitlines()[0])


def _needed_arms(sel: Sequence[Row], arms: Mapping[str, Arm]) -> list[str]:
    """The arms behind rows ``sel``, in first-use order; an undefined arm is a ValueError."""
    needed: list[str] = []
    for r in sel:
        for a in r.arms:
            if a not in arms:
                raise ValueError(f"row {r.id} needs arm {a!r}, which is not defined")
            if a not in needed:
                needed.append(a)
    return needed


def _seed_block(first_seed: int, replicates: int, calibration: bool = False) -> list[int]:
    """Seeds ``first_seed .. first_seed + replicates - 1``; a bad count or first seed (the
    last seed must fit :data:`~niche.config.MAX_SEED`) is a ValueError, and so is a block
    reaching the seeds reserved for calibrations (:data:`CALIBRATION_SEED_BASE` and above)
    unless ``calibration`` (only ``niche calibrate`` runs those)."""
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) \
            or replicates < 1:
        raise ValueError(f"bad --replicates {replicates!r}: must be an integer >= 1")
    if isinstance(first_seed, bool) or not isinstance(first_seed, (int, np.integer)) \
            or not 0 <= first_seed <= MAX_SEED - int(replicates) + 1:
        raise ValueError(f"bad --first-seed {first_seed!r}: must be an integer with "
                         f"0 <= first seed and last seed (first + replicates - 1) <= {MAX_SEED}")
    last = int(first_seed) + int(replicates) - 1
    if calibration != (int(first_seed) >= CALIBRATION_SEED_BASE) or (
            not calibration and last >= CALIBRATION_SEED_BASE):
        if calibration:
            raise ValueError(f"calibration seeds start above {CALIBRATION_SEED_BASE}")
        raise ValueError(f"bad --first-seed {first_seed!r}: seeds from {CALIBRATION_SEED_BASE} "
                         "(2**62) on are reserved for calibrations, so that no validation "
                         "reuses a seed a calibration was fitted on")
    return list(range(int(first_seed), int(first_seed) + int(replicates)))


def evaluate_saved(paths: Sequence[str | Path], rows: str | Sequence[str] | None = None,
                   out_dir: str | Path | None = "validation", *, table: Sequence[Row] = ROWS,
                   arms: Mapping[str, Arm] | None = None) -> Report:
    """Evaluate ``rows`` (default all) on the histories saved by earlier validations
    (their ``histories.csv``), pooling the seeds of every file: no simulation runs.

    Pooling disjoint seed blocks (``--first-seed``) gives a larger sample: e.g. seeds 1-5
    and 6-10 evaluate as 10 seeds. A seed present in two files, an arm missing from all
    of them, or arms of one evaluation with different seeds (rows pair arms by seed) is a
    ValueError with a one-line message, raised before anything is written; so is an
    ``out_dir`` whose ``histories.csv`` is one of the inputs."""
    import pandas as pd

    t0 = time.perf_counter()
    arms = dict(ARMS if arms is None else arms)
    sel = parse_rows(rows, table)
    files = [Path(f) for f in paths]
    if not files:
        raise ValueError("--from needs at least one histories.csv")
    if out_dir is not None:
        target = (Path(out_dir) / "histories.csv").resolve()
        for f in files:
            if f.resolve() == target:
                raise ValueError(f"--from {f}: the report in {out_dir} would overwrite it; "
                                 "choose another --out")
    needed = _needed_arms(sel, arms)
    runs: dict[tuple[str, int], tuple["pd.DataFrame", Path]] = {}
    for f in files:
        try:
            d = pd.read_csv(f)
        except FileNotFoundError:
            raise ValueError(f"--from {f}: no such file") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                IsADirectoryError) as e:
            raise ValueError(f"--from {f}: not a histories CSV ({type(e).__name__})") from None
        miss = [c for c in ("arm", "seed", "t_days") if c not in d.columns]
        if miss:
            raise ValueError(f"--from {f}: not a niche validate histories.csv "
                             f"(no column {miss[0]!r})")
        for a in d["arm"].astype(str).unique():
            if a not in needed:
                continue
            da = d[d["arm"].astype(str) == a]
            da = da.loc[:, da.notna().any()]  # readouts this arm never has (in vitro/vivo)
            for seed, g in da.groupby("seed", sort=True):
                key = (a, int(seed))
                if key in runs:
                    raise ValueError(f"--from {f}: arm {a} seed {int(seed)} is also in "
                                     f"{runs[key][1]}: pool disjoint blocks of seeds")
                g = g.drop(columns=["arm", "seed"]).sort_values("t_days", kind="stable")
                runs[key] = (g.reset_index(drop=True), f)
    seeds_of = {a: sorted(s for (b, s) in runs if b == a) for a in needed}
    for a in needed:
        if not seeds_of[a]:
            row = next(r.id for r in sel if a in r.arms)
            raise ValueError(f"arm {a} (row {row}) is in none of the --from files; "
                             "pick rows with --rows")
    ref = needed[0]
    for a in needed:
        if seeds_of[a] != seeds_of[ref]:
            raise ValueError(f"arm {a} has seeds {seed_text(seeds_of[a])} but arm {ref} has "
                             f"{seed_text(seeds_of[ref])}: rows pair arms by seed; pick rows "
                             "with --rows or pool files of the same rows")
    seeds = seeds_of[ref]
    histories = {a: [runs[(a, s)][0] for s in seeds] for a in needed}
    results = {r.id: evaluate(r, {a: histories[a] for a in r.arms}) for r in sel}
    rep = Report(rows=sel, results=results, arms={a: arms[a] for a in needed},
                 histories=histories, outcomes=[], replicates=len(seeds), quick=False,
                 shape=None, workers=0, seeds=seeds, sources=[str(f) for f in files])
    rep.wall_s = time.perf_counter() - t0
    if out_dir is not None:
        write_report(rep, out_dir)
    return rep


def validation_experiment(arms: Mapping[str, Arm], seeds: Sequence[int],
                          shape: Sequence[int] | None, extra: Mapping[str, Any]) -> Experiment:
    """The experiment behind a validation: its arms (with the domain shape for in-vivo
    arms and ``extra`` overrides on every arm) x the seeds, every readout kept."""
    return Experiment.model_validate({
        "name": "validation", "seeds": list(seeds),
        "arms": {a: {"scenario": arm.scenario, "days": arm.days,
                     "set": task_overrides(arm, shape, extra)} for a, arm in arms.items()}})


@contextmanager
def _runs_folder(out_dir: str | Path | None, exp: Experiment) -> Iterator[Path]:
    """``out_dir/runs/<digest>``: the same validation resumes there, another one gets its
    own folder; without ``out_dir``, a temporary folder."""
    if out_dir is not None:
        yield Path(out_dir) / "runs" / exp.digest()
        return
    with tempfile.TemporaryDirectory(prefix="niche-validate-") as d:
        yield Path(d) / "runs"


def run_validation(rows: str | Sequence[str] | None = None, replicates: int | None = None,
                   quick: bool = False, workers: int | None = None,
                   out_dir: str | Path | None = "validation",
                   shape: str | Sequence[int] | None = None, progress: bool = True, *,
                   table: Sequence[Row] = ROWS, arms: Mapping[str, Arm] | None = None,
                   client: Any = None,
                   overrides: Sequence[str] | Mapping[str, Any] | None = None,
                   first_seed: int = 1, calibration: bool = False) -> Report:
    """Run the arms behind ``rows`` (ids; default all, or :data:`QUICK_ROWS` in quick mode)
    with ``replicates`` seeds each (default 15; 2 in quick mode) on a local dask cluster of
    ``workers`` processes (default ``os.cpu_count()``, at most one per task), evaluate the
    rows and write the report to ``out_dir`` (None: no report).

    ``table``/``arms`` replace :data:`ROWS`/:data:`ARMS` (tests, new experiments);
    ``client`` runs the tasks on an existing dask client instead of a new cluster.
    ``overrides`` (``["biology.osteoblast.x=1", ...]`` or a mapping) apply to every arm,
    after the arm's own: a sensitivity check of the rows. Every arm's scenario is loaded
    with them before any run starts, so a bad key fails at once.
    ``first_seed``: the seeds are ``first_seed .. first_seed + replicates - 1`` (default
    1..N); another block of seeds is an out-of-sample check of the same rows. Seeds from
    ``CALIBRATION_SEED_BASE`` on are refused unless ``calibration`` (``niche calibrate``
    runs those, and only those). ``workers=0`` runs every task here, one after another.
    Bad input raises ValueError with a one-line message.
    """
    t0 = time.perf_counter()
    own_arms = arms is not None
    arms = dict(ARMS if arms is None else arms)
    if rows is None and quick:
        rows = [r for r in QUICK_ROWS if r in {x.id for x in table}] or None
    sel = parse_rows(rows, table)
    if replicates is None:
        replicates = QUICK_REPLICATES if quick else DEFAULT_REPLICATES
    seeds = _seed_block(first_seed, replicates, calibration)
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers
                                or workers < 0):
        raise ValueError(f"bad --workers {workers!r}: must be an integer >= 1 (0: serial, "
                         "in this process)")
    shp = parse_shape(shape)
    if shp is None and quick:
        shp = QUICK_SHAPE
    elif shp is None and not own_arms:  # the shipped arms: the stated validation domain
        shp = FULL_SHAPE
    needed = _needed_arms(sel, arms)
    extra = parse_overrides(overrides)
    if extra:
        for a in needed:  # a bad key or value: one ConfigError naming it, before any run
            load_scenario(arms[a].scenario, task_overrides(arms[a], shp, extra))
    exp = validation_experiment({a: arms[a] for a in needed}, seeds, shp, extra)
    n_runs = len(needed) * len(seeds)
    n_workers = 0 if workers == 0 else max(1, min(int(workers or os.cpu_count() or 1),
                                                  n_runs))
    if client is not None:
        n_workers = len(client.scheduler_info().get("workers", {})) or n_workers
    if progress:
        print(f"niche validate: rows {', '.join(r.id for r in sel)}; {len(needed)} arms x "
              f"{replicates} seeds = {n_runs} runs on {n_workers} workers",
              file=sys.stderr, flush=True)
    with _runs_folder(out_dir, exp) as folder:
        # an unknown scenario or a run that raises is a failed run, reported by its row
        run_experiment(exp, folder, workers=n_workers, client=client, progress=progress,
                       check=False)
        records = run_records(folder, exp)
        hist = histories(folder)
    outcomes = [TaskOutcome(r["run"].arm, r["run"].seed, r["ok"],
                            hist.get(r["run"].run_id), r.get("error", ""),
                            r.get("traceback", ""), float(r["wall_s"]), r["meta"])
                for r in records]
    failed: dict[str, list[TaskOutcome]] = {}
    histories_by_arm: dict[str, list] = {a: [] for a in needed}
    for o in outcomes:
        if o.ok:
            histories_by_arm[o.arm].append(o.history)
        else:
            failed.setdefault(o.arm, []).append(o)
    results: dict[str, RowResult] = {}
    for r in sel:
        bad = [o for a in r.arms for o in failed.get(a, [])]
        if bad:
            o = bad[0]
            more = f" (+{len(bad) - 1} more failed runs)" if len(bad) > 1 else ""
            results[r.id] = RowResult(NAN, (NAN, NAN), False,
                                      f"run failed: arm {o.arm} seed {o.seed}: {o.error}{more}")
        else:
            results[r.id] = evaluate(r, {a: histories_by_arm[a] for a in r.arms})
    histories_ok = {a: h for a, h in histories_by_arm.items() if a not in failed}
    rep = Report(rows=sel, results=results, arms={a: arms[a] for a in needed},
                 histories=histories_ok,
                 outcomes=outcomes, replicates=int(replicates), quick=quick, shape=shp,
                 workers=n_workers, overrides=extra, seeds=seeds)
    rep.wall_s = time.perf_counter() - t0
    if out_dir is not None:
        write_report(rep, out_dir)
    return rep
