"""Run a scenario end to end: choose the rule set, build the model, write the run file.

The runner is where the engine (:mod:`niche.core`) meets the biology
(:mod:`niche.biology`): :func:`rules_for` picks the rule set a scenario names, and
:class:`NicheModel` is the engine's :class:`~niche.core.model.Model` with that choice
made, the class users and Mesa's ``batch_run`` build. :func:`run` adds the run-file
writer, the readout history and a progress bar.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .biology import OsteoimmuneRules
from .core import GenericRules, Model, Observer, Rules
from .io import RunWriter
from .scenario import Scenario, load_scenario, parse_overrides

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["run", "RunResult", "History", "default_output", "rules_for", "NicheModel",
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

    Args:
        scenario: a :class:`~niche.scenario.Scenario`, a TOML path or a scenario name.
        seed: overrides ``run.seed``.
        rules: a rule set to use instead of the one the scenario names.
        observers: objects with ``on_start/on_frame/on_tick/on_end`` hooks.
        collect: readouts the DataCollector records.
        **overrides: dotted scenario keys, e.g. ``**{"il2.dose_iu": 5e4}``.
    """

    def __init__(self, scenario: Scenario | str | Path = "default", seed: int | None = None,
                 rules: Rules | None = None, observers=(),
                 collect: Sequence[str] = DEFAULT_COLLECT, **overrides: Any):
        import mesa

        scenario = with_overrides(scenario, overrides)
        super().__init__(scenario, seed=seed, rules=rules or rules_for(scenario),
                         observers=observers)
        reporters = {"t_days": lambda m: m.t_days}
        reporters.update({k: (lambda m, k=k: m.frame_readouts.get(k, float("nan")))
                          for k in collect})
        self.datacollector = mesa.DataCollector(model_reporters=reporters)

    def step(self) -> None:
        """One movement tick; then the DataCollector records; ``running`` ends at
        ``run.days``."""
        super().step()
        if self.tick >= self.n_ticks:
            self.running = False
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

    def on_frame(self, model):
        self.rows.append(dict(model.frame_readouts))

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(self.rows)


def default_output(sc: Scenario) -> Path:
    return Path("runs") / f"{sc.name}_seed{sc.run.seed}.h5"


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

    Returns:
        :class:`RunResult` with the path, wall time, frame count and final readouts.
    """
    ov = parse_overrides(overrides)
    if seed is not None:
        ov["run.seed"] = int(seed)
    if days is not None:
        ov["run.days"] = float(days)
    scenario = with_overrides(scenario, ov)
    writer = None
    if write:
        path = Path(out) if out is not None else default_output(scenario)
        writer = RunWriter(path, overwrite=overwrite)
    t0 = time.perf_counter()
    history = History()
    observers: list[Observer] = [history, _Progress(progress)]
    if writer is not None:
        observers.insert(0, writer)
    model = NicheModel(scenario, observers=observers)
    try:
        model.run()
    except BaseException:
        if writer is not None:
            writer.close(complete=False)
        raise
    wall = time.perf_counter() - t0
    return RunResult(path=writer.path if writer else None, wall_s=wall,
                     frames=writer.frames if writer else 0, readouts=model.frame_readouts,
                     model=model, history=history.frame())
