"""The cell event log: births, deaths, fusions, differentiations and divisions, one row each.

The model records an event wherever the cell arrays change membership or type
(:meth:`~niche.core.model.Model.apply_changes` and
:meth:`~niche.core.model.Model.remove_cells`), in the order the changes are applied, so the
log is decided by the seed alone. Events gather in :class:`EventLog` until the next frame;
the frame then takes them (``model.frame_events``), which keeps memory bounded: the run-file
writer stores each frame's events with the frame (``/events``, docs/file-format.md).

Columns (:data:`EVENT_COLUMNS`): ``t_days`` and ``tick`` of the event, ``kind``
(:data:`EVENT_KINDS`), ``id`` (the cell's lifelong id, Mesa's ``unique_id``), ``other_id``
(-1 if none: the mother for a birth by division, the daughter for a division, the surviving
cell for a fusion), ``type`` (the cell's type code after the event; for a death or a fusion
the type it had) and its voxel ``z``, ``y``, ``x``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["EVENT_KINDS", "EVENT_COLUMNS", "EventLog"]

#: event kind -> code (the ``kind`` column; stored as the ``kinds`` attribute of ``/events``)
EVENT_KINDS: dict[str, int] = {"birth": 1, "death": 2, "fusion": 3, "differentiation": 4,
                               "division": 5}

#: event column -> dtype
EVENT_COLUMNS: dict[str, str] = {
    "t_days": "float64", "tick": "int64", "kind": "uint8", "id": "int64",
    "other_id": "int64", "type": "int8", "z": "int32", "y": "int32", "x": "int32",
}


def empty_events() -> dict[str, np.ndarray]:
    """An event table with no rows."""
    return {c: np.zeros(0, dt) for c, dt in EVENT_COLUMNS.items()}


class EventLog:
    """Events since the last frame (``pending``) and the events of the last frame."""

    def __init__(self) -> None:
        self._pending: list[dict[str, np.ndarray]] = []
        self.frame: dict[str, np.ndarray] = empty_events()

    def record(self, kind: str, tick: int, t_days: float, ids, other_ids, types, z, y, x) -> None:
        """Append one row per cell in ``ids`` (arrays of equal length; ``other_ids`` may be
        None for -1)."""
        ids = np.asarray(ids, np.int64).ravel()
        n = ids.size
        if n == 0:
            return
        other = np.full(n, -1, np.int64) if other_ids is None else other_ids
        cols = {"t_days": np.full(n, t_days), "tick": np.full(n, tick),
                "kind": np.full(n, EVENT_KINDS[kind]), "id": ids, "other_id": other,
                "type": types, "z": z, "y": y, "x": x}
        self._pending.append({c: np.asarray(cols[c], dt).ravel().copy()
                              for c, dt in EVENT_COLUMNS.items()})

    @property
    def n_pending(self) -> int:
        return sum(p["id"].size for p in self._pending)

    def end_frame(self) -> dict[str, np.ndarray]:
        """Close the frame: its events (those since the previous frame) become ``frame``."""
        if self._pending:
            self.frame = {c: np.concatenate([p[c] for p in self._pending])
                          for c in EVENT_COLUMNS}
        else:
            self.frame = empty_events()
        self._pending = []
        return self.frame
