"""What every cell-type module sees during a decision step (one :class:`Ctx`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.cells import TYPE_CODES, State
from ..kernels.motility import count_contacts

if TYPE_CHECKING:  # pragma: no cover
    from ..core.model import Model
    from ..scenario.biology import BiologyParams

__all__ = ["Ctx", "occupancy", "hazard", "add_rate"]


def occupancy(c: np.ndarray, k: float) -> np.ndarray:
    """Receptor occupancy c / (c + k) (0 where c <= 0)."""
    c = np.maximum(c, 0.0)
    return c / (c + k)


def hill(c: np.ndarray, k: float, h: float) -> np.ndarray:
    """A steep sigmoidal signal ``x / (1 + x)`` of ``x = (c / k) ** h`` (c >= 0)."""
    x = (c / k) ** h
    return x / (1.0 + x)


def hazard(rate_per_day, dt_days: float) -> np.ndarray:
    """Probability of an event with the given rate within ``dt_days``."""
    return -np.expm1(-np.asarray(rate_per_day, np.float64) * dt_days)


def add_rate(arr: np.ndarray, idx: dict[str, int], field: str, slots: np.ndarray,
             values) -> None:
    """Add per-cell rates (molecules/s) for ``field`` to ``arr[slots]``; a no-op when the
    scenario has no such field."""
    j = idx.get(field)
    if j is not None:
        arr[slots, j] += np.asarray(values, np.float32)


@dataclass
class Ctx:
    """Per-decision-step view of the model for the rules.

    Attributes:
        model: the engine's :class:`~niche.core.model.Model`.
        P: the scenario's :class:`~niche.scenario.biology.BiologyParams`.
        host: the systemic :class:`~niche.scenario.host.HostState` now.
        dt: the decision interval in days.
        knockouts: names of the pathways knocked out now.
    """

    model: "Model"
    P: "BiologyParams"
    host: Any
    dt: float
    knockouts: frozenset[str]
    scfa_blood_pM: float = 0.0
    _treg_code: np.ndarray | None = None

    @property
    def cells(self):
        return self.model.cells

    @property
    def rng(self) -> np.random.Generator:
        return self.model.rng_decide

    def slots(self, type_name: str) -> np.ndarray:
        return self.cells.slots_of_type(TYPE_CODES[type_name])

    def has(self, slots: np.ndarray, flag: State) -> np.ndarray:
        return (self.cells.state[slots] & np.uint32(flag)) != 0

    def set_flag(self, slots: np.ndarray, flag: State, on: bool = True) -> None:
        st = self.cells.state
        if on:
            st[slots] |= np.uint32(flag)
        else:
            st[slots] &= ~np.uint32(flag)

    def conc(self, name: str, slots: np.ndarray) -> np.ndarray:
        """Field ``name`` (pM, float64) at the cells' voxels; zeros if the scenario has no such field."""
        m = self.model
        if name not in m.field_names:
            return np.zeros(slots.size)
        return m.sample(name, slots, np.float64)

    def events(self, slots: np.ndarray, rate_per_day) -> np.ndarray:
        """The subset of ``slots`` whose event (rate per day, scalar or per slot) fires now."""
        if slots.size == 0:
            return slots
        p = hazard(rate_per_day, self.dt)
        return slots[self.rng.random(slots.size) < p]

    def treg_contacts(self, slots: np.ndarray) -> np.ndarray:
        """Number of touching (26-neighbour) Tregs of each cell in ``slots``."""
        c = self.cells
        if self._treg_code is None:  # once per decision step, for the whole store
            reg = (c.alive == 1) & (c.type == TYPE_CODES["tcell"]) & (
                (c.state & np.uint32(State.REGULATORY)) != 0)
            code = np.where(reg, 1, 0).astype(np.int8)
            out = np.zeros(c.capacity, np.int32)
            self._treg_code = count_contacts(c.z, c.y, c.x, c.alive, c.occ, code, np.int8(1), out)
        return self._treg_code[slots]

    def divide(self, parents: np.ndarray, type_name: str, state) -> None:
        """Queue one daughter per parent on a free touching voxel (none if all are taken)."""
        if parents.size == 0:
            return
        from ..kernels.motility import neighbour_free_voxel

        c, m = self.cells, self.model
        flat = neighbour_free_voxel(parents, c.z, c.y, c.x, c.cell_id, c.occ, m.wall,
                                    m.kernel_seed, np.int64(m.tick))
        ok = flat >= 0
        if not ok.any():
            return
        z, y, x = np.unravel_index(flat[ok], c.shape)
        st = np.broadcast_to(np.asarray(state, np.uint32), parents.shape)[ok]
        m.changes.birth_at(TYPE_CODES[type_name], z, y, x, state=st, parents=parents[ok])
