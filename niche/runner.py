"""Run a scenario end to end: model + run-file writer + progress bar."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .config import Scenario, load_scenario, parse_overrides
from .io import RunWriter
from .model import NicheModel, Observer

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["run", "RunResult", "History", "default_output"]


class _Progress(Observer):
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
    if isinstance(scenario, Scenario):
        if ov:
            scenario = load_scenario(scenario.model_dump(mode="python", exclude_none=True), ov)
    else:
        scenario = load_scenario(scenario, ov)
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
