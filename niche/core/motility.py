"""Movement: per-cell motility parameters for a decision interval, and the move step.

Every decision step the engine builds a :class:`Motility` from the per-type tables
(speed, persistence, chemotaxis field and strength of ``[cells.<type>]``); the rule set
may then hold cells in place or point them up another gradient through
:meth:`Motility.hold` and :meth:`Motility.follow` (its ``adjust_motility`` hook). Each
move tick the cells hop in a counter-based random order, ``n_sub`` sub-steps of at most one
voxel, reading the gradient of their group's field at their voxel (kernels in
:mod:`niche.kernels.motility`).

Arrays (length = the cell store's capacity): ``hop_prob`` float32 (probability of a hop
per sub-step), ``persistence`` float32, ``chemotaxis`` float32 (bias strength),
``grad`` (3, capacity) float32; ``groups`` lists ``(field index, slots)`` of the cells
that climb that field's gradient.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from ..kernels import motility as mot_k
from .fields import _PARALLEL_MIN_CELLS

__all__ = ["Motility"]


class Motility:
    """Per-cell movement parameters for the current decision interval.

    Args:
        cells: the :class:`~niche.core.cells.CellStore`.
        speed_vox_per_min, persistence, chemo_strength, chemo_field: per-type tables
            (index = type code; ``chemo_field`` is -1 for no chemotaxis).
        dt_move_min: the movement tick (minutes).
    """

    def __init__(self, cells, speed_vox_per_min: np.ndarray, persistence: np.ndarray,
                 chemo_strength: np.ndarray, chemo_field: np.ndarray, dt_move_min: float):
        cap = cells.capacity
        s = cells.alive_slots()
        t = cells.type[s]
        hop = speed_vox_per_min[t] * dt_move_min
        self.n_sub = max(1, int(math.ceil(hop.max() - 1e-12))) if s.size else 1
        self.hop_prob = np.zeros(cap, np.float32)
        self.hop_prob[s] = (hop / self.n_sub).astype(np.float32)
        self.persistence = np.zeros(cap, np.float32)
        self.persistence[s] = persistence[t]
        self.chemotaxis = np.zeros(cap, np.float32)
        self.grad = np.zeros((3, cap), np.float32)
        cf = chemo_field[t]
        self.groups: list[tuple[int, np.ndarray]] = [
            (int(fi), s[cf == fi]) for fi in np.unique(cf[cf >= 0])]
        for _, sel in self.groups:
            self.chemotaxis[sel] = chemo_strength[cells.type[sel]]
        self._active: int | None = None  # one past the last moving slot
        self._buffers: mot_k.MoveBuffers | None = None

    @property
    def capacity(self) -> int:
        return self.hop_prob.size

    def hold(self, slots: np.ndarray) -> None:
        """The cells in ``slots`` stay where they are until the next decision step."""
        self.hop_prob[slots] = 0.0
        self._active = None

    def follow(self, slots: np.ndarray, field_index: int, strength) -> None:
        """The cells in ``slots`` climb the gradient of field ``field_index`` with bias
        ``strength`` (scalar or per slot) instead of their type's chemotaxis."""
        groups = [(f, g[~np.isin(g, slots)]) for f, g in self.groups]
        self.groups = [gr for gr in groups if gr[1].size] + [(int(field_index), slots)]
        self.chemotaxis[slots] = np.asarray(strength, np.float64).astype(np.float32)

    def move(self, cells, fields, wall: np.ndarray, kernel_seed, tick: int) -> None:
        """One movement tick of every cell (``n_sub`` sub-steps, random order per tick).

        Only the slots up to the last one with ``hop_prob > 0`` are planned (found once
        per decision interval); with more than one numba thread the planning pass runs in parallel.
        Same result for any thread count (:func:`~niche.kernels.motility.move_tick`)."""
        if fields is not None:
            for fi, sel in self.groups:
                fields.gradient_into(fi, sel, cells.z, cells.y, cells.x, self.grad)
        if self._active is None:
            moving = np.flatnonzero(self.hop_prob > 0)
            self._active = int(moving[-1]) + 1 if moving.size else 0
        if self._buffers is None:
            self._buffers = mot_k.MoveBuffers(self.capacity)
        order = mot_k.shuffled_order(cells.alive, cells.cell_id, kernel_seed, np.int64(tick))
        nchunk = numba.get_num_threads()
        if self._active < _PARALLEL_MIN_CELLS:
            nchunk = 1
        mot_k.move_tick(cells.z, cells.y, cells.x, cells.alive, cells.cell_id,
                        cells.dirz, cells.diry, cells.dirx, self.hop_prob, self.persistence,
                        self.chemotaxis, self.grad[0], self.grad[1], self.grad[2], cells.occ,
                        wall, kernel_seed, np.int64(tick), order, self.n_sub, self._active,
                        self._buffers, nchunk)

    # scratch is rebuilt after a restore rather than stored in a checkpoint
    def __getstate__(self) -> dict:
        return {**self.__dict__, "_buffers": None}
