"""Running an experiment into a folder: one file per run, resumable, failures kept apart.

Layout of an experiment folder::

    DIR/experiment.toml          the resolved description, seeds written out (a rerun must match)
    DIR/runs/<run_id>.parquet    one finished run: its tidy readouts (written atomically, last)
    DIR/runs/<run_id>.json       its wall time and how it ran (numba threads, domain)
    DIR/runs/<run_id>.h5         its run file, if ``output.run_file`` asks for one
    DIR/failed/<run_id>.txt      one failed run: the error and its traceback

:func:`run_experiment` runs what is missing (finished runs are skipped, so an interrupted
experiment resumes by running it again; failed runs are tried again), on an in-process
``LocalCluster`` (workers = cores, one single-threaded simulation each), on an existing
cluster (``scheduler="tcp://host:8786"``), or serially in this process (``workers=0``).
Workers run the simulation and send back the run's table; this process writes the files,
so a cluster needs no shared file system. :func:`load` returns every finished run as one
tidy table (pandas): one row per run x time x readout, with columns ``experiment``,
``run_id``, ``arm``, ``seed``, one per swept parameter, ``t_days``, ``readout``,
``value``. :func:`status` counts finished, failed and pending runs.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..scenario import ConfigError
from .execution import local_client, run_meta
from .spec import Experiment, RunSpec, load_experiment

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["run_experiment", "load", "status", "ExperimentStatus", "execute_run", "tidy",
           "run_records", "histories"]

SPEC_FILE = "experiment.toml"
ID_COLUMNS = ("experiment", "run_id", "arm", "seed")


def tidy(history: "pd.DataFrame", run: RunSpec, experiment: Experiment) -> "pd.DataFrame":
    """A run's history (one row per frame) as tidy rows, filtered to the experiment's
    readouts and times. Raises ValueError naming a readout or time the run lacks."""
    out = experiment.output
    cols = [c for c in history.columns if c != "t_days"]
    if out.readouts is not None:
        missing = [r for r in out.readouts if r not in cols]
        if missing:
            raise ValueError(f"run {run.run_id}: no readout {missing[0]!r} "
                             f"(it has: {', '.join(sorted(cols))})")
        cols = list(out.readouts)
    h = history
    if out.times is not None:
        t = history["t_days"].to_numpy()
        keep = []
        for want in out.times:
            hit = abs(t - want) < 1e-6
            if not hit.any():
                raise ValueError(f"run {run.run_id}: no frame at day {want:g} (frames at "
                                 f"{', '.join(f'{v:g}' for v in t[:8])}{' ...' if t.size > 8 else ''})")
            keep.append(int(hit.argmax()))
        h = history.iloc[keep]
    long = h.melt(id_vars=["t_days"], value_vars=cols, var_name="readout", value_name="value")
    long.insert(0, "experiment", experiment.name)
    long.insert(1, "run_id", run.run_id)
    long.insert(2, "arm", run.arm)
    long.insert(3, "seed", run.seed)
    for i, (k, v) in enumerate(run.params):
        long.insert(4 + i, k, v)
    long["t_days"] = long["t_days"].astype("float64")
    long["value"] = long["value"].astype("float64")
    return long.reset_index(drop=True)


def execute_run(run: RunSpec, experiment: Experiment, base_dir: str | None = None,
                out: str | None = None, allow_large: bool = False) -> dict:
    """Worker side: run one :class:`RunSpec` (in memory, or writing its run file into
    ``out/runs/`` when the experiment keeps run files); return ``{"ok", "table" | "error",
    "traceback", "wall_s", "meta"}``. Never raises.

    With ``output.checkpoint_every_days`` the run checkpoints as it goes, and a run that
    was killed continues from its last checkpoint (in ``out/checkpoints/`` for runs in
    memory, in the run file's journal otherwise)."""
    t0 = time.perf_counter()
    level = experiment.output.run_file
    every = experiment.output.checkpoint_every_days
    h5 = Path(out) / "runs" / f"{run.run_id}.h5" if out is not None and level != "none" else None
    ckpt = None
    if every is not None and out is not None and h5 is None:
        ckpt = Path(out) / "checkpoints" / f"{run.run_id}.ckpt"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    try:
        from ..io.journal import Journal
        from ..runner import resume, run as run_scenario

        if h5 is not None and every is not None and Journal.has_checkpoint(h5):
            res = resume(h5, progress=False, allow_large=allow_large)
        else:
            ov = run.all_overrides(run.seed)
            if h5 is not None:
                ov["output.level"] = level
                ov["output.xdmf"] = False  # ensembles: the sidecar is one `niche export-xdmf` away
            res = run_scenario(run.resolve_scenario(Path(base_dir) if base_dir else None),
                               out=h5, overwrite=True, write=h5 is not None, overrides=ov,
                               progress=False, checkpoint_every=every, checkpoint=ckpt,
                               allow_large=allow_large)
        table = tidy(res.history, run, experiment)
        return {"ok": True, "table": table, "meta": run_meta(res),
                "wall_s": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001 - reported per run
        if h5 is not None:
            _drop_journal(h5)
        return {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0],
                "traceback": traceback.format_exc(), "wall_s": time.perf_counter() - t0}


def _drop_journal(h5: Path) -> None:
    """Delete a failed run's journal unless it holds a checkpoint to continue from."""
    from ..io.journal import Journal, OutputBusy

    try:
        j = Journal.open(h5)
    except (OutputBusy, ValueError, OSError):
        return
    if j.checkpoint_path.exists():
        j.release()
    else:
        j.discard()


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _paths(out: Path, run_id: str) -> tuple[Path, Path]:
    return out / "runs" / f"{run_id}.parquet", out / "failed" / f"{run_id}.txt"


def _record(out: Path, run: RunSpec, r: dict) -> None:
    done, failed = _paths(out, run.run_id)
    if r["ok"]:
        meta = {"wall_s": r.get("wall_s"), **r.get("meta", {})}
        _atomic_write(done.with_suffix(".json"),
                      lambda p: p.write_text(json.dumps(meta), encoding="utf-8"))
        _atomic_write(done, lambda p: r["table"].to_parquet(p, index=False))
        failed.unlink(missing_ok=True)
    else:
        text = f"{r['error']}\n\n{r.get('traceback', '')}"
        _atomic_write(failed, lambda p: p.write_text(text, encoding="utf-8"))


def _prepare(experiment: Experiment, out: Path) -> None:
    """Create the folder, or check that it holds this same experiment."""
    spec = out / SPEC_FILE
    if spec.exists():
        try:
            old = load_experiment(spec)
        except ConfigError as e:
            raise ConfigError(f"{str(out)!r} holds an unreadable {SPEC_FILE}: {e}") from None
        if old.digest() != experiment.digest():
            raise ConfigError(f"{str(out)!r} holds another experiment ({old.name!r}, "
                              "different arms, seeds, sweeps or outputs): choose a new --out")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{str(out)!r} exists and is not an experiment folder (no {SPEC_FILE})")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "failed").mkdir(exist_ok=True)
    if not spec.exists():
        text = experiment.resolved().to_toml()
        _atomic_write(spec, lambda p: p.write_text(text, encoding="utf-8"))


@dataclass
class ExperimentStatus:
    """Runs of an experiment folder: finished, failed (with their first error line), pending."""

    total: int
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    executed: int = 0

    def summary(self) -> str:
        s = (f"{len(self.done)}/{self.total} runs finished, {len(self.failed)} failed, "
             f"{len(self.pending)} pending")
        for rid, err in list(self.failed.items())[:10]:
            s += f"\n  FAILED {rid}: {err}"
        if len(self.failed) > 10:
            s += f"\n  ... and {len(self.failed) - 10} more (see failed/)"
        return s


def status(out: str | Path, experiment: Experiment | None = None) -> ExperimentStatus:
    """What an experiment folder holds (``experiment`` defaults to its own description)."""
    out = Path(out)
    if experiment is None:
        if not (out / SPEC_FILE).is_file():
            raise ConfigError(f"{str(out)!r} is not an experiment folder (no {SPEC_FILE})")
        experiment = load_experiment(out / SPEC_FILE)
    runs = experiment.runs()
    st = ExperimentStatus(total=len(runs))
    for r in runs:
        done, failed = _paths(out, r.run_id)
        if done.is_file():
            st.done.append(r.run_id)
        elif failed.is_file():
            st.failed[r.run_id] = failed.read_text(encoding="utf-8").splitlines()[0]
        else:
            st.pending.append(r.run_id)
    return st


def run_experiment(experiment: Experiment | str | Path, out: str | Path, *,
                   workers: int | None = None, scheduler: str | None = None,
                   client: Any = None, progress: bool | None = None,
                   check: bool = True, allow_large: bool = False) -> ExperimentStatus:
    """Run every run of ``experiment`` that ``out`` does not hold yet.

    Args:
        experiment: an :class:`Experiment` or the path of its TOML file (scenario paths in
            it are relative to that file).
        out: the experiment folder (created; a folder of another experiment is refused).
        workers: LocalCluster worker processes (default: the CPU count); ``0`` runs
            serially in this process (for debugging).
        scheduler: address of an existing dask scheduler (``tcp://host:8786``); its
            workers should run one thread each (``--nthreads 1``, ``NUMBA_NUM_THREADS=1``).
        client: an existing ``distributed.Client`` to run on (instead of the above).
        progress: a progress bar over runs with an ETA (None: only on a terminal).
        check: load every run's scenario before anything runs (a bad key fails at once);
            False lets such a run fail on its own, reported in ``failed/``.
        allow_large: run runs whose memory, time or file-size estimate exceeds this
            machine (:mod:`niche.scenario.limits`; for a cluster's bigger workers).

    Returns:
        The folder's :class:`ExperimentStatus` afterwards (``executed``: runs tried now).
    """
    from tqdm import tqdm

    base_dir = None
    if not isinstance(experiment, Experiment):
        base_dir = str(Path(experiment).resolve().parent)
        experiment = load_experiment(experiment)
    out = Path(out)
    runs = (experiment.check(Path(base_dir) if base_dir else None, allow_large=allow_large)
            if check else experiment.runs())
    _prepare(experiment, out)
    todo = [r for r in runs if not _paths(out, r.run_id)[0].is_file()]
    bar = tqdm(total=len(todo), unit="run", desc=experiment.name,
               disable=None if progress is None else not progress)
    try:
        if not todo:
            pass
        elif workers == 0 and scheduler is None and client is None:
            for r in todo:
                _record(out, r, execute_run(r, experiment, base_dir, str(out), allow_large))
                bar.update(1)
        else:
            _run_on_dask(todo, experiment, base_dir, out, bar, workers, scheduler, client,
                         allow_large)
    finally:
        bar.close()
    st = status(out, experiment)
    st.executed = len(todo)
    return st


def _run_on_dask(todo, experiment, base_dir, out, bar, workers, scheduler, client,
                 allow_large: bool = False) -> None:
    from contextlib import nullcontext

    from distributed import Client, as_completed

    if client is not None:
        ctx = nullcontext(client)
    else:
        n = min(int(workers or os.cpu_count() or 1), len(todo))
        ctx = Client(scheduler) if scheduler else local_client(n)
    with ctx as client:
        futs = {}
        for r in todo:
            fut = client.submit(execute_run, r, experiment, base_dir, str(out.resolve()),
                                allow_large, pure=False,
                                key=f"niche-run-{r.run_id}-{uuid.uuid4().hex[:6]}")
            futs[fut] = r
        for fut in as_completed(list(futs)):
            r = futs.pop(fut)
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - a worker died, a cancelled task
                res = {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0],
                       "traceback": traceback.format_exc()}
            _record(out, r, res)
            fut.release()
            bar.update(1)
            if not res["ok"]:
                bar.write(f"FAILED {r.run_id}: {res['error']}", file=sys.stderr)


def load(out: str | Path) -> "pd.DataFrame":
    """Every finished run of an experiment folder as one tidy table, sorted by arm, swept
    parameters, seed, time and readout."""
    import pandas as pd

    out = Path(out)
    st = status(out)
    exp = load_experiment(out / SPEC_FILE)
    frames = [pd.read_parquet(out / "runs" / f"{rid}.parquet") for rid in st.done]
    if not frames:
        cols = [*ID_COLUMNS, *exp.swept_keys(), "t_days", "readout", "value"]
        return pd.DataFrame({c: [] for c in cols})
    df = pd.concat(frames, ignore_index=True)
    keys = [k for k in exp.swept_keys() if k in df.columns]
    cols = [*ID_COLUMNS, *keys, "t_days", "readout", "value"]
    df = df[cols]
    df = df.sort_values(["arm", *keys, "seed", "t_days", "readout"], kind="stable",
                        na_position="first")
    return df.reset_index(drop=True)


def run_records(out: str | Path, experiment: Experiment | None = None) -> list[dict]:
    """Every run of a folder in the experiment's order: ``{"run": RunSpec, "ok": bool,
    "wall_s", "meta"}`` plus ``"error"``/``"traceback"`` for failed and ``"error":
    "pending"`` for runs not tried yet."""
    out = Path(out)
    experiment = experiment or load_experiment(out / SPEC_FILE)
    recs = []
    for r in experiment.runs():
        done, failed = _paths(out, r.run_id)
        if done.is_file():
            mp = done.with_suffix(".json")
            meta = json.loads(mp.read_text(encoding="utf-8")) if mp.is_file() else {}
            if "shape" in meta:
                meta["shape"] = tuple(meta["shape"])
            recs.append({"run": r, "ok": True, "wall_s": meta.pop("wall_s", float("nan")),
                         "meta": meta})
        elif failed.is_file():
            err, _, tb = failed.read_text(encoding="utf-8").partition("\n\n")
            recs.append({"run": r, "ok": False, "error": err, "traceback": tb,
                         "wall_s": float("nan"), "meta": {}})
        else:
            recs.append({"run": r, "ok": False, "error": "pending", "traceback": "",
                         "wall_s": float("nan"), "meta": {}})
    return recs


def histories(out: str | Path) -> dict[str, "pd.DataFrame"]:
    """Every finished run's readouts as a wide history (one row per frame, ``t_days`` plus
    one column per readout), by run id."""
    df = load(out)
    hist = {}
    for rid, g in df.groupby("run_id", sort=False):
        h = g.pivot_table(index="t_days", columns="readout", values="value", sort=True,
                          dropna=False, aggfunc="first")
        h.columns.name = None
        hist[rid] = h.reset_index()
    return hist
