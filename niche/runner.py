"""Run a scenario end to end: choose the rule set, build the model, write the run file.

The runner is where the engine (:mod:`niche.core`) meets the biology
(:mod:`niche.biology`): :func:`rules_for` picks the rule set a scenario names, and
:class:`NicheModel` is the engine's :class:`~niche.core.model.Model` with that choice
made, the class users and Mesa's ``batch_run`` build. :func:`run` adds the run-file
writer, the readout history and a progress bar.
"""
from __future__ import annotations

import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .biology import OsteoimmuneRules
from .core import GenericRules, Model, Observer, Rules
from .io import RunFileError, RunWriter
from .io.checkpoint import dump_checkpoint, load_checkpoint, write_atomic
from .io.journal import Journal, load_file_checkpoint, target_of
from .scenario import ConfigError, Scenario, load_scenario, parse_overrides
from .scenario.limits import check_resources
from .scenario.schema import check_well, shown

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["run", "resume", "RunStopped", "RunResult", "History", "default_output", "rules_for", "NicheModel",
           "RULE_SETS", "DEFAULT_COLLECT", "with_overrides"]

#: the rule sets a scenario's ``rules`` key can name
RULE_SETS: dict[str, type[Rules]] = {"osteoimmune": OsteoimmuneRules, "generic": GenericRules}


def rules_for(scenario: Scenario) -> Rules:
    """A fresh instance of the rule set that ``scenario.rules`` names."""
    return RULE_SETS[scenario.rules]()


#: readouts a NicheModel's DataCollector records by default (``collect=`` changes them)
DEFAULT_COLLECT = ("bv_tv", "n_tcell", "n_treg", "n_ilc2", "n_monocyte", "n_osteoclast",
                   "n_osteoblast", "resorbed_mm3_per_day", "formed_mm3_per_day")


def with_overrides(scenario: Scenario | str | Path, overrides: Mapping[str, Any] | None
                   ) -> Scenario:
    """A scenario (object, path or name) with dotted-key overrides applied and validated."""
    ov = parse_overrides(overrides)
    if isinstance(scenario, Scenario):
        if not ov:
            return scenario
        return load_scenario(scenario.model_dump(mode="python", exclude_none=True), ov)
    return load_scenario(scenario, ov)


class NicheModel(Model):
    """The bone-marrow niche model (a ``mesa.Model``) with the scenario's rule set.

    Any scenario value can be set as a keyword with its dotted key, which is what
    ``mesa.batch_run(NicheModel, parameters={"scenario": "ovx", "il2.dose_iu": [...],
    "seed": [1, 2, 3]}, max_steps=...)`` passes. ``model.datacollector`` (a
    ``mesa.DataCollector``) records, after every step, ``t_days`` and the ``collect``
    readouts of the latest frame (readouts are computed on frames,
    ``run.frame_interval_days``); ``model.running`` turns False when ``run.days`` is reached.
    In ``batch_run`` parameters a Scenario object goes in a list (``{"scenario": [sc]}``):
    Mesa iterates any other value.

    Each cell has one Mesa agent for life: ``unique_id`` is its lifelong id (kept when a
    monocyte becomes an osteoclast, and by the surviving cell of a fusion), so DataCollector
    agent reporters follow cells; ``agent.remove()`` removes the cell; a handle of a cell
    that is gone raises :class:`~niche.core.agents.StaleAgentError`. ``model.frame_events``
    holds the births, deaths, fusions, differentiations and divisions up to the last frame.

    ``model.run_model()`` and ``model.run(days)`` step to the end and call
    ``model.finish()``; ``run(days)`` called again continues the same run. A model stepped
    by hand under a run-file writer ends its file with ``model.finish()``, which assembles
    the complete run file and removes the ``.partial`` journal::

        writer = niche.io.RunWriter("out.h5")
        model = NicheModel("ovx", seed=1, observers=[writer])
        for _ in range(model.n_ticks):
            model.step()
        model.finish()  # out.h5 complete, no out.h5.partial left

    Args:
        scenario: a :class:`~niche.scenario.Scenario`, a TOML path or a scenario name.
        seed: overrides ``run.seed``.
        rules: a rule set to use instead of the one the scenario names.
        observers: objects with ``on_start/on_frame/on_tick/on_end`` hooks.
        collect: readouts the DataCollector records.
        allow_large: build a model beyond this machine's memory or compute limits
            (:mod:`niche.scenario.limits`); refused by default.
        **overrides: dotted scenario keys, e.g. ``**{"il2.dose_iu": 5e4}``.
    """

    def __init__(self, scenario: Scenario | str | Path = "default", seed: int | None = None,
                 rules: Rules | None = None, observers=(),
                 collect: Sequence[str] = DEFAULT_COLLECT, allow_large: bool = False,
                 **overrides: Any):
        if not isinstance(scenario, (Scenario, str, os.PathLike)):
            raise ConfigError(
                f"scenario={scenario!r}: expected a Scenario, a TOML path or a scenario name "
                "(in mesa.batch_run parameters put a Scenario object in a list: "
                "{'scenario': [sc]})")
        scenario = with_overrides(scenario, overrides)
        super().__init__(scenario, seed=seed, rules=rules or rules_for(scenario),
                         observers=observers, allow_large=allow_large)
        self.collect = tuple(collect)
        self._new_datacollector()

    def _new_datacollector(self) -> None:
        import mesa

        reporters = {"t_days": lambda m: m.t_days}
        reporters.update({k: (lambda m, k=k: m.frame_readouts.get(k, float("nan")))
                          for k in self.collect})
        self.datacollector = mesa.DataCollector(model_reporters=reporters)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_collected"] = self.datacollector.model_vars
        return state

    def __setstate__(self, state: dict) -> None:
        collected = state.pop("_collected")
        super().__setstate__(state)
        self._new_datacollector()
        self.datacollector.model_vars.update(collected)

    def step(self) -> None:
        """One movement tick; then the DataCollector records; ``running`` ends at
        ``run.days``."""
        super().step()
        self.datacollector.collect(self)


class _Progress(Observer):
    """A tqdm progress bar over ticks (None: only on a terminal)."""

    def __init__(self, enabled: bool | None):
        self.enabled = enabled
        self.bar = None

    def on_start(self, model):
        from tqdm import tqdm

        self.bar = tqdm(total=model.n_ticks, unit="tick", desc=model.scenario.name,
                        disable=None if self.enabled is None else not self.enabled,
                        leave=False)

    def on_tick(self, model):
        if self.bar is not None:
            self.bar.update(1)
            if model.tick % 60 == 0:
                self.bar.set_postfix(day=f"{model.t_days:.2f}", cells=model.cells.n_alive)

    def on_end(self, model):
        if self.bar is not None:
            self.bar.close()


@dataclass
class RunResult:
    """What a finished run returns.

    ``history`` holds the readouts of every frame (one row per frame, ``t_days`` first),
    the same series the run file stores under ``/readouts``.
    """

    path: Path | None
    wall_s: float
    frames: int
    readouts: dict[str, float]
    model: NicheModel = field(repr=False)
    history: "pd.DataFrame" = field(default=None, repr=False)


class History(Observer):
    """Collects every frame's readouts in memory (Mesa DataCollector's role)."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    @classmethod
    def restored(cls, rows: list[dict[str, float]]) -> "History":
        h = cls()
        h.rows = list(rows)
        return h

    def state(self) -> list[dict[str, float]]:
        return self.rows

    def on_frame(self, model):
        self.rows.append(dict(model.frame_readouts))

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(self.rows)


def default_output(sc: Scenario) -> Path:
    return Path("runs") / f"{sc.name}_seed{sc.run.seed}.h5"


#: longest suffix the run file's companions add to its name (``.partial``, ``.xdmf.h5``)
_COMPANION_SUFFIX_BYTES = 16


def _checked_interval(checkpoint_every: float | None) -> float | None:
    """``checkpoint_every`` if it is None or a positive number of days, else ConfigError."""
    if checkpoint_every is not None and not (math.isfinite(checkpoint_every)
                                             and checkpoint_every > 0):
        raise ConfigError(f"--checkpoint-every {checkpoint_every!r}: expected a positive "
                          "number of days")
    return checkpoint_every


def check_output(path: Path) -> None:
    """Refuse, before anything is created, an output path the run could not write: a NUL
    character, a name too long for the file system (with room for the ``.partial`` journal
    and the XDMF sidecars), a folder in the way, or a file where a folder must be."""
    text = str(path)
    if "\x00" in text:
        raise ConfigError(f"output {shown(text)}: the name contains a NUL character")
    try:
        name_max = os.pathconf(".", "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    parts = path.parts
    for i, part in enumerate(parts):
        try:
            n = len(os.fsencode(part))
        except UnicodeError:
            raise ConfigError(f"output {shown(text)}: the name cannot be encoded") from None
        if n + (_COMPANION_SUFFIX_BYTES if i == len(parts) - 1 else 0) > name_max:
            raise ConfigError(f"output {shown(text)}: the name {shown(part)} is too long for "
                              f"the file system ({n} bytes; at most "
                              f"{name_max - _COMPANION_SUFFIX_BYTES} for a run file)")
    try:
        where = path.absolute()
        existing = next((p for p in (where, *where.parents) if p.exists()), None)
        if existing is not None and existing != where and not existing.is_dir():
            raise ConfigError(f"output {shown(text)}: {shown(str(existing))} is not a folder")
        if where.is_dir():
            raise ConfigError(f"output {shown(text)} is a folder")
    except OSError as e:
        raise ConfigError(f"output {shown(text)}: {e.strerror or e}") from None


def run(
    scenario: Scenario | str | Path,
    out: str | Path | None = None,
    *,
    seed: int | None = None,
    days: float | None = None,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool | None = False,
    write: bool = True,
    checkpoint_every: float | None = None,
    checkpoint: str | Path | None = None,
    allow_large: bool = False,
    observers: Sequence[Observer] = (),
) -> RunResult:
    """Run a scenario and write its run file.

    Args:
        scenario: a :class:`Scenario`, a TOML path or a scenario name.
        out: run-file path (default ``runs/<name>_seed<seed>.h5``).
        seed: overrides ``run.seed``; days: overrides ``run.days``.
        overrides: ``["a.b=v", ...]`` or ``{"a.b": v}``.
        overwrite: replace an existing ``out``.
        progress: show a progress bar (None: only on a terminal).
        write: write a run file (False: run in memory only).
        checkpoint_every: simulated days between checkpoints (None: none, but a run stopped
            by SIGINT/SIGTERM/SIGHUP still writes one). With a run file they go into its
            journal and the finished file keeps the last (``niche resume`` continues it).
        checkpoint: for a run in memory (``write=False``): the checkpoint file; when it
            exists the run continues from it, and it is deleted when the run ends.
        observers: more observers (``on_start/on_frame/on_tick/on_end`` hooks).
        allow_large: run although the estimate of memory, compute time or run-file size
            exceeds this machine (:mod:`niche.scenario.limits`; refused by default).

    Returns:
        :class:`RunResult` with the path, wall time, frame count and final readouts.

    Raises:
        ConfigError: an invalid scenario, override or output path, or a run this machine
            cannot do; raised before any file or folder is created.
        RunStopped: a signal stopped the run after a checkpoint (``exit_code``: 128 + signal).
    """
    ov = parse_overrides(overrides)
    if seed is not None:
        ov["run.seed"] = int(seed)
    if days is not None:
        ov["run.days"] = float(days)
    scenario = with_overrides(scenario, ov)
    _checked_interval(checkpoint_every)
    path = None
    if write:  # everything is checked before the writer creates a file or folder
        check_well(scenario)
        path = Path(out) if out is not None else default_output(scenario)
        check_output(path)
    check_resources(scenario, allow_large=allow_large, out=path)
    t0 = time.perf_counter()
    if not write and checkpoint is not None and Path(checkpoint).exists():
        ck = load_checkpoint(checkpoint)
        model = ck.model
        history = History.restored(ck.observers.get("History", []))
        model.observers = [history, _Progress(progress), *observers]
        if checkpoint_every is None:
            checkpoint_every = ck.observers.get("_run", {}).get("checkpoint_every")
        return _drive(model, None, history, checkpoint_every, Path(checkpoint), t0)
    writer = None
    if write:
        writer = RunWriter(path, overwrite=overwrite)
    history = History()
    watchers: list[Observer] = [history, _Progress(progress), *observers]
    if writer is not None:
        watchers.insert(0, writer)
    try:
        model = NicheModel(scenario, observers=watchers, allow_large=allow_large)
    except BaseException:
        if writer is not None:
            writer.close(complete=False)
        raise
    return _drive(model, writer, history, checkpoint_every,
                  Path(checkpoint) if checkpoint is not None else None, t0)


def resume(run_path: str | Path, *, days: float | None = None,
           checkpoint_every: float | None = None, progress: bool | None = False,
           allow_large: bool = False) -> RunResult:
    """Continue a killed, stopped or finished run from its last checkpoint.

    ``run_path`` names the run file (``x.h5``; ``x.h5.partial`` works too). A killed or
    stopped run continues from the checkpoint in its journal; a finished (or repaired) run
    file from the checkpoint it keeps (``/checkpoint``, written when it ran with
    ``checkpoint_every``). The frames after the checkpoint are computed again, so the result
    is the file the uninterrupted run writes, bit for bit. ``days``: run to this length in
    all (``run.days``; default the scenario's). ``checkpoint_every``: default the interval
    the run was checkpointing at. Bad arguments are refused before anything is touched.
    """
    _checked_interval(checkpoint_every)
    target = target_of(run_path)
    journal = None
    if Journal.exists(target):
        journal = Journal.open(target)
        try:
            ck = journal.checkpoint()
        except BaseException:
            journal.release()
            raise
        if ck is None:
            n = len(journal.frame_numbers())
            journal.release()
            raise RunFileError(
                f"{str(target)!r}: the run stopped before its first checkpoint (start runs "
                f"with --checkpoint-every to make them resumable); `niche repair {target}` "
                f"keeps its {n} frames")
    elif target.is_file():
        ck = load_file_checkpoint(target)
        if ck is None:
            raise RunFileError(f"{str(target)!r} keeps no checkpoint (run it with "
                               "--checkpoint-every to be able to continue it)")
    else:
        raise RunFileError(f"no run {str(target)!r} (neither it nor {target.name}.partial "
                           "exists)")
    t0 = time.perf_counter()
    model = ck.model
    try:
        if days is not None:
            model.extend_to(days)
        check_resources(model.scenario, allow_large=allow_large)
        if journal is None:  # a finished run file: a new journal continues it
            journal = Journal.create(target, overwrite=True, base=target,
                                     base_frames=ck.frames)
        writer = RunWriter(target, overwrite=True, journal=journal)
        writer.restore(ck.observers["RunWriter"])
    except BaseException:
        if journal is not None:
            journal.release()
        raise
    history = History.restored(ck.observers.get("History", []))
    bar = _Progress(progress)
    model.observers = [writer, history, bar]
    bar.on_start(model)
    bar.bar.update(model.tick)
    if checkpoint_every is None:
        checkpoint_every = ck.observers.get("_run", {}).get("checkpoint_every")
    return _drive(model, writer, history, checkpoint_every, None, t0)


class RunStopped(Exception):
    """A signal stopped a run; its checkpoint and its journal's frames are kept."""

    def __init__(self, signum: int, model, path: Path | None, frames: int,
                 checkpointed: bool = True):
        self.signum = signum
        self.checkpointed = checkpointed
        self.exit_code = 128 + signum
        self.path = path
        self.frames = frames
        self.t_days = model.t_days
        name = signal.Signals(signum).name
        where = (f"; {frames} frames kept, continue with: niche resume {path}"
                 if path is not None else "")
        done = ", checkpoint written" if checkpointed else " (a run in memory: nothing kept)"
        super().__init__(f"stopped by {name} at day {model.t_days:g}{done}{where}")


class _StopSignals:
    """While active (main thread only), SIGINT, SIGTERM and SIGHUP ask the run to stop
    after the tick in progress instead of killing it; repeats are ignored."""

    SIGNALS = tuple(s for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s))

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    #: keep the handlers after a stop (the command line does: it exits right after, and a
    #: second Ctrl-C must not turn the clean stop into a KeyboardInterrupt)
    keep_after_stop = False

    def __exit__(self, *exc) -> None:
        if self.signum is not None and self.keep_after_stop:
            return
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _observer_states(model, checkpoint_every: float | None) -> dict[str, Any]:
    """What a checkpoint keeps besides the model: each observer's state and the run's
    checkpoint interval (a resumed run keeps checkpointing at it)."""
    states = {type(ob).__name__: ob.state() for ob in model.observers if hasattr(ob, "state")}
    states["_run"] = {"checkpoint_every": checkpoint_every}
    return states


def _drive(model: Model, writer: RunWriter | None, history: "History",
           checkpoint_every: float | None, ckpt_path: Path | None, t0: float) -> RunResult:
    """Step ``model`` to its end, checkpointing; stop cleanly on a signal."""
    every = None
    if _checked_interval(checkpoint_every) is not None:
        every = max(1, int(round(checkpoint_every * 1440.0 / model.dt_move_min)))

    def snapshot() -> list[bytes]:
        return dump_checkpoint(model, _observer_states(model, checkpoint_every),
                               writer.frames if writer is not None else 0)

    def save() -> bool:
        if writer is not None:
            writer.journal.write_checkpoint(snapshot())
        elif ckpt_path is not None:
            write_atomic(ckpt_path, snapshot())
        else:
            return False  # a run in memory without a checkpoint file: nothing to keep
        return True

    try:
        with _StopSignals() as stop:
            model.start()
            while model.tick < model.n_ticks and stop.signum is None:
                model.step()
                if every is not None and model.tick % every == 0 and stop.signum is None:
                    save()
            if stop.signum is not None:
                saved = save()
                if writer is not None:
                    writer.close(complete=False)
                raise RunStopped(stop.signum, model, writer.path if writer else None,
                                 writer.frames if writer else 0, saved)
            if writer is not None and every is not None:
                writer.checkpoint_bytes = b"".join(snapshot())
            model.finish()
    except RunStopped:
        raise
    except BaseException:
        if writer is not None:
            writer.close(complete=False)
        raise
    if ckpt_path is not None and writer is None:
        ckpt_path.unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    return RunResult(path=writer.path if writer else None, wall_s=wall,
                     frames=writer.frames if writer else 0, readouts=model.frame_readouts,
                     model=model, history=history.frame())
