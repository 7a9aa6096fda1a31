"""Mesa handles over the cell arrays: one ``mesa.Agent`` subclass per cell type.

A handle holds only its slot and its cell's lifelong id; every attribute reads or writes
the model's :class:`~niche.core.cells.CellStore`. Handles are created and removed in
batches by :meth:`niche.core.model.Model.apply_changes`, so ``model.agents_by_type[Osteoclast]``
always matches the arrays. The hot path never loops over handles.

- ``unique_id`` is the cell's lifelong id (``cell_id``): a monocyte that differentiates
  into an osteoclast keeps its handle and its id (the handle changes class), so Mesa's
  DataCollector follows one cell through its life.
- ``agent.remove()`` removes the cell itself (arrays, occupancy lattice, handle set; the
  event log records a death).
- A handle whose cell is gone (died, fused away, removed) raises :class:`StaleAgentError`
  naming the cell on any attribute access, instead of reading a freed or reused slot.
"""
from __future__ import annotations

import mesa

from .cells import TYPE_CODES, State

__all__ = ["Cell", "TCell", "ILC2", "Monocyte", "Osteoclast", "Osteoblast", "AGENT_CLASSES",
           "StaleAgentError"]


class StaleAgentError(RuntimeError):
    """A Mesa handle was used after its cell died, fused into another or was removed."""


class Cell(mesa.Agent):
    """Base handle. ``slot`` indexes the model's cell arrays; ``unique_id`` is the cell's
    lifelong id."""

    type_name: str = ""
    type_code: int = -1

    def __init__(self, model: "mesa.Model", slot: int) -> None:
        super().__init__(model)
        self._slot = int(slot)
        self.unique_id = int(model.cells.cell_id[self._slot])

    @property
    def _store(self):
        return self.model.cells

    @property
    def alive(self) -> bool:
        """The cell is still in the model (never raises)."""
        s = self._store
        return bool(s.alive[self._slot]) and int(s.cell_id[self._slot]) == self.unique_id

    @property
    def slot(self) -> int:
        """The cell's slot in the arrays (:class:`StaleAgentError` once the cell is gone)."""
        if not self.alive:
            raise StaleAgentError(
                f"{type(self).__name__} handle of cell {self.unique_id} is stale: the cell "
                "died, fused into another or was removed")
        return self._slot

    @property
    def cell_id(self) -> int:
        """The cell's lifelong id (equal to ``unique_id``)."""
        return int(self._store.cell_id[self.slot])

    @property
    def parent_id(self) -> int:
        """The mother's id for a daughter of a division, else -1."""
        return int(self._store.parent_id[self.slot])

    @property
    def position(self) -> tuple[int, int, int]:
        """(z, y, x) voxel of the cell."""
        s, i = self._store, self.slot
        return int(s.z[i]), int(s.y[i]), int(s.x[i])

    @position.setter
    def position(self, zyx: tuple[int, int, int]) -> None:
        i = self.slot
        z, y, x = (int(v) for v in zyx)
        if self.model.lattice.wall[z, y, x]:
            raise ValueError(f"voxel {(z, y, x)} is bone or vessel")
        self._store.move(i, z, y, x)

    @property
    def state(self) -> State:
        return State(int(self._store.state[self.slot]))

    @state.setter
    def state(self, value: int) -> None:
        self._store.state[self.slot] = int(value)

    @property
    def age_days(self) -> float:
        return float(self._store.age_days[self.slot])

    @property
    def nuclei(self) -> int:
        return int(self._store.nuclei[self.slot])

    def remove(self) -> None:
        """Remove the cell from the model: arrays, occupancy lattice and handle set (the
        event log records a death). Removing a handle whose cell is gone does nothing."""
        if self.alive:
            self.model.remove_cells([self._slot])
        else:
            self._detach()

    def _detach(self) -> None:
        """Leave Mesa's agent sets (the model does this when the cell goes)."""
        super().remove()

    def _become(self, cls: type["Cell"]) -> None:
        """Turn into a handle of another type (differentiation): same object, same
        ``unique_id``, moved to ``cls``'s agent set."""
        if type(self) is cls:
            return
        self.model.deregister_agent(self)
        self.__class__ = cls
        self.model.register_agent(self)

    def __repr__(self) -> str:
        if not self.alive:
            return f"{type(self).__name__}(id={self.unique_id}, gone)"
        return f"{type(self).__name__}(id={self.cell_id}, slot={self.slot}, pos={self.position})"


class TCell(Cell):
    """CD4 T cell: effector (TNF/IL-17/RANKL producers) or regulatory (Foxp3+, CD25-high)."""

    type_name = "tcell"
    type_code = TYPE_CODES["tcell"]

    @property
    def is_regulatory(self) -> bool:
        return bool(self.state & State.REGULATORY)


class ILC2(Cell):
    """Group-2 innate lymphoid cell (CD25+; IL-10, CGRP, IL-4/IL-13)."""

    type_name = "ilc2"
    type_code = TYPE_CODES["ilc2"]


class Monocyte(Cell):
    """Monocyte / osteoclast precursor."""

    type_name = "monocyte"
    type_code = TYPE_CODES["monocyte"]


class Osteoclast(Cell):
    """Multinucleated bone-resorbing cell."""

    type_name = "osteoclast"
    type_code = TYPE_CODES["osteoclast"]

    @property
    def is_resorbing(self) -> bool:
        return bool(self.state & State.RESORBING)


class Osteoblast(Cell):
    """Bone-forming cell (also the main RANKL/OPG source)."""

    type_name = "osteoblast"
    type_code = TYPE_CODES["osteoblast"]


#: Handle class per integer type code.
AGENT_CLASSES: tuple[type[Cell], ...] = (TCell, ILC2, Monocyte, Osteoclast, Osteoblast)
