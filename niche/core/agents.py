"""Mesa handles over the cell arrays: one ``mesa.Agent`` subclass per cell type.

A handle holds only its slot; every attribute reads or writes the model's
:class:`~niche.core.cells.CellStore`. Handles are created and removed in batches by
:meth:`niche.core.model.Model.apply_changes`, so ``model.agents_by_type[Osteoclast]``
always matches the arrays. The hot path never loops over handles.
"""
from __future__ import annotations

import mesa

from .cells import TYPE_CODES, State

__all__ = ["Cell", "TCell", "ILC2", "Monocyte", "Osteoclast", "Osteoblast", "AGENT_CLASSES"]


class Cell(mesa.Agent):
    """Base handle. ``slot`` indexes the model's cell arrays."""

    type_name: str = ""
    type_code: int = -1

    def __init__(self, model: "mesa.Model", slot: int) -> None:
        super().__init__(model)
        self.slot = int(slot)

    @property
    def _store(self):
        return self.model.cells

    @property
    def cell_id(self) -> int:
        return int(self._store.cell_id[self.slot])

    @property
    def position(self) -> tuple[int, int, int]:
        """(z, y, x) voxel of the cell."""
        s = self._store
        return int(s.z[self.slot]), int(s.y[self.slot]), int(s.x[self.slot])

    @position.setter
    def position(self, zyx: tuple[int, int, int]) -> None:
        z, y, x = (int(v) for v in zyx)
        if self.model.lattice.wall[z, y, x]:
            raise ValueError(f"voxel {(z, y, x)} is bone or vessel")
        self._store.move(self.slot, z, y, x)

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

    def __repr__(self) -> str:
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
