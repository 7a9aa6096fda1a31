"""Observers watch a model; the model notifies them, the biology never calls them.

The run-file writer (:mod:`niche.io`), the readout history and the progress bar
(:mod:`niche.runner`) are observers, in the role of py-pde's trackers or Mesa's
DataCollector.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["Observer"]


class Observer:
    """Something that watches a model: readouts, the run-file writer, progress bars.

    Every hook is optional. ``on_start`` runs once before frame 0, ``on_frame`` after each
    frame's readouts (``model.frame_readouts``) are computed, ``on_tick`` after every
    movement tick, ``on_end`` when :meth:`~niche.core.model.Model.run` finishes.
    """

    def on_start(self, model: "Model") -> None: ...

    def on_frame(self, model: "Model") -> None: ...

    def on_tick(self, model: "Model") -> None: ...

    def on_end(self, model: "Model") -> None: ...
