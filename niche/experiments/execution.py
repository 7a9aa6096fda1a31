"""Running experiment tasks on ``dask.distributed``.

An :class:`Arm` is one experiment arm: a scenario run for some days with overrides. A task
is one (arm, seed) pair, with optional overrides for every arm (``extra``, e.g. ``--set``)
and a domain shape for in-vivo arms: :func:`run_task` runs it in memory and returns the
run's history (one row per frame: ``t_days`` plus the readouts) or the error. Nothing in
here knows what the histories are compared for.

:func:`run_tasks` submits many tasks to a dask client and collects one
:class:`TaskOutcome` each, in the order given; :func:`local_client` starts a
``LocalCluster`` whose workers are separate processes started by a dask Nanny with
``NUMBA_NUM_THREADS=1`` placed in ``distributed.nanny.pre-spawn-environ`` (the dask
setting documented for variables that must be set before the worker process starts and
imports anything), so N single-threaded simulations share N cores without
oversubscription.

:func:`task_overrides` says what a task runs with and :func:`parse_shape` reads a domain
shape (``--shape``).
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "Arm", "TaskOutcome", "MIN_SHAPE", "task_overrides", "parse_shape", "run_task",
    "run_tasks", "local_client", "run_meta",
]

NAN = float("nan")
#: smallest domain edge (voxels) :func:`parse_shape` accepts
MIN_SHAPE = 8


@dataclass(frozen=True)
class Arm:
    """One experiment arm: a scenario run for ``days`` with ``overrides`` (dotted keys).

    ``in_vitro`` arms have their own well geometry and never get a domain-shape override.
    """

    name: str
    scenario: str
    days: float
    overrides: Mapping[str, Any] = field(default_factory=dict)
    in_vitro: bool = False


def parse_shape(shape: str | Sequence[int] | None) -> tuple[int, int, int] | None:
    """``"Z,Y,X"`` (or ``ZxYxX``, or one number for a cube) -> ``(Z, Y, X)``; each at
    least 8 voxels. Raises ValueError naming the bad value."""
    if shape is None:
        return None
    raw = shape
    if isinstance(shape, str):
        parts = [p for p in shape.replace("x", ",").replace(" ", ",").split(",") if p]
    else:
        parts = list(shape)
    try:
        dims = [int(p) for p in parts]
        if any(float(p) != d for p, d in zip(parts, dims)):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"bad --shape {raw!r}: expected three integers Z,Y,X") from None
    if len(dims) == 1:
        dims = dims * 3
    if len(dims) != 3:
        raise ValueError(f"bad --shape {raw!r}: expected three integers Z,Y,X")
    if any(d < MIN_SHAPE for d in dims):
        raise ValueError(f"bad --shape {raw!r}: every dimension must be >= {MIN_SHAPE} voxels")
    return (dims[0], dims[1], dims[2])


def task_overrides(arm: Arm, shape: Sequence[int] | None,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The overrides one task runs with: the arm's, then ``extra`` (``--set``, for every
    arm; it wins over the arm's own), plus the domain shape for in-vivo arms."""
    ov = dict(arm.overrides)
    ov.update(extra or {})
    if shape is not None and not arm.in_vitro:
        ov["domain.shape_voxels"] = [int(s) for s in shape]
    return ov


def run_task(arm: Arm, seed: int, shape: tuple[int, int, int] | None,
             extra: Mapping[str, Any] | None = None) -> dict:
    """Worker side: run one (arm, seed) in memory; return its history (or the error).

    Returns a dict: ``ok``, ``wall_s`` and either ``history`` (a DataFrame) and ``meta``
    (numba threads, domain shape and voxel size, best effort) or ``error`` (one line) and
    ``traceback``; it never raises."""
    t0 = time.perf_counter()
    try:
        from niche.runner import run

        res = run(arm.scenario, write=False, seed=seed, days=arm.days,
                  overrides=task_overrides(arm, shape, extra), progress=False)
        hist = res.history.reset_index(drop=True)
        meta = run_meta(res)
        del res
        return {"ok": True, "history": hist, "meta": meta, "wall_s": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001 - reported per (arm, seed)
        return {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0],
                "traceback": traceback.format_exc(), "wall_s": time.perf_counter() - t0}


def run_meta(res) -> dict[str, Any]:
    """How a run ran (best effort): numba threads, domain shape, voxel size."""
    meta: dict[str, Any] = {}
    try:
        import numba

        meta["numba_threads"] = int(numba.config.NUMBA_NUM_THREADS)
        meta["shape"] = tuple(int(s) for s in res.model.lattice.shape)
        meta["voxel_um"] = float(res.model.scenario.domain.voxel_um)
    except Exception:  # noqa: BLE001 - metadata is best effort
        pass
    return meta


@contextmanager
def _restored_environ() -> Iterator[None]:
    # LocalCluster's nannies live in this process and write their pre-spawn environment
    # into os.environ before spawning; keep this process's own environment as it was.
    saved = dict(os.environ)
    try:
        yield
    finally:
        for k in set(os.environ) - set(saved):
            del os.environ[k]
        for k, v in saved.items():
            if os.environ.get(k) != v:
                os.environ[k] = v


@contextmanager
def local_client(workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on a fresh ``LocalCluster`` of ``workers`` single-threaded
    worker processes (default ``os.cpu_count()``), each started with
    ``NUMBA_NUM_THREADS=1`` via ``distributed.nanny.pre-spawn-environ``."""
    import dask
    from distributed import Client, LocalCluster

    n = int(workers or os.cpu_count() or 1)
    # The workers are up when LocalCluster() returns: restore this process's environment
    # right away (and again at the end, should a nanny have restarted a worker).
    with _restored_environ():
        with _restored_environ(), dask.config.set(
                {"distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": "1"}):
            # a NUMBA_NUM_THREADS already in this process's environment would win over
            # pre-spawn-environ in the spawned workers: set it here too (restored above)
            os.environ["NUMBA_NUM_THREADS"] = "1"
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


@dataclass
class TaskOutcome:
    """What one (arm, seed) task gave: its history, or the error (``ok=False``)."""

    arm: str
    seed: int
    ok: bool
    history: "pd.DataFrame | None" = None
    error: str = ""
    traceback: str = ""
    wall_s: float = NAN
    meta: dict = field(default_factory=dict)


def run_tasks(client: Any, tasks: Sequence[tuple[Arm, int]],
              shape: tuple[int, int, int] | None = None,
              progress: bool = False,
              extra: Mapping[str, Any] | None = None, *,
              key_prefix: str = "niche-task") -> list[TaskOutcome]:
    """Run every (arm, seed) on the dask ``client`` (with ``extra`` overrides on every arm);
    outcomes in the order of ``tasks``. ``key_prefix`` starts the dask key of each task.

    A task that raises (or whose worker dies) gives ``ok=False`` with the error, never an
    exception here."""
    from distributed import as_completed

    futs = {}
    for i, (arm, seed) in enumerate(tasks):
        key = f"{key_prefix}-{arm.name}-seed{seed}-{uuid.uuid4().hex[:8]}"
        fut = client.submit(run_task, arm, int(seed), shape, dict(extra or {}), key=key,
                            pure=False)
        futs[fut] = i
    out: list[TaskOutcome | None] = [None] * len(tasks)
    for done, fut in enumerate(as_completed(list(futs)), start=1):
        i = futs[fut]
        arm, seed = tasks[i]
        try:
            r = fut.result()
        except Exception as e:  # noqa: BLE001 - worker died, cancelled, ...
            r = {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0],
                 "traceback": "", "wall_s": NAN}
        oc = TaskOutcome(arm.name, int(seed), bool(r["ok"]), r.get("history"),
                         r.get("error", ""), r.get("traceback", ""),
                         float(r.get("wall_s", NAN)), r.get("meta", {}))
        out[i] = oc
        if progress:
            state = f"{oc.wall_s:.1f} s" if oc.ok else f"FAILED: {oc.error}"
            print(f"[{done}/{len(tasks)}] {arm.name} seed {seed}: {state}", file=sys.stderr,
                  flush=True)
        fut.release()
    return out  # type: ignore[return-value]
