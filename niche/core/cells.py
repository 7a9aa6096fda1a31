"""Structure-of-arrays storage for every cell in a run.

All per-cell state lives in flat numpy arrays indexed by *slot* (``0 .. capacity-1``);
``alive[slot] == 1`` marks a used slot. Slots are reused after deaths (lowest free slot
first, so allocation is deterministic). The occupancy grid ``occ`` (Z, Y, X) int32 holds
``slot + 1`` of the cell anchored in a voxel, 0 where free: at most one cell per voxel.
Osteoclasts are anchored in one voxel and act on bone within a footprint radius that
grows with their nuclei.

Arrays (length = capacity unless noted):
    alive uint8, type int8 (see :data:`TYPE_CODES`), state uint32 (bit flags, see
    :class:`State`), z/y/x int32, dirz/diry/dirx float32 (unit direction), age_days float32,
    nuclei int16, cell_id int64 (the cell's lifelong id: kept over differentiation and by
    the surviving cell of a fusion; never reused), parent_id int64 (the mother's
    ``cell_id`` for a daughter of a division, else -1), bone_credit_um3 float32
    (osteoclasts and osteoblasts: bone resorbed/formed but not yet a whole voxel, um^3),
    committed_days float32 (committed osteoclast precursors: days since commitment),
    secretion/uptake/vmax (capacity, S) float32 per-cell rates (molecules/s, 1/s,
    molecules/s).
"""
from __future__ import annotations

import enum

import numpy as np

from ..scenario import CELL_TYPES

__all__ = ["CellStore", "State", "TYPE_CODES", "TYPE_NAMES", "BONE_CELL_TYPES"]

#: cell-type names in the order of their integer codes (the scenario's ``[cells.*]`` keys)
TYPE_NAMES: tuple[str, ...] = CELL_TYPES
TYPE_CODES: dict[str, int] = {n: i for i, n in enumerate(TYPE_NAMES)}
#: the types that sit on the bone surface and remodel it
BONE_CELL_TYPES: tuple[str, ...] = ("osteoclast", "osteoblast")


class State(enum.IntFlag):
    """Per-cell state bits (uint32). Meaning depends on the cell type where noted."""

    NONE = 0
    REGULATORY = 1 << 0     # T cell: Foxp3+ regulatory (else effector)
    CXCR3 = 1 << 1          # Treg: CXCR3+ subset
    TNF_PRODUCER = 1 << 2   # T cell: TNF+
    IL17_PRODUCER = 1 << 3  # T cell: IL-17+
    IL10_PRODUCER = 1 << 4  # ILC2 / Treg: IL-10+
    CGRP_PRODUCER = 1 << 5  # ILC2: CGRP+
    PRE_OSTEOCLAST = 1 << 6  # monocyte committed to the osteoclast lineage
    RESORBING = 1 << 7      # osteoclast: static, resorbing (else moving)
    # bit 8 is unused (it was an osteoblast flag that nothing set)
    IFN_PROGRAM = 1 << 9    # monocyte: IL-2 triggered STAT1-IRF1 programme
    WNT10B_PRODUCER = 1 << 10  # CD8 T cell making Wnt10b (Treg-driven)
    CD8 = 1 << 11           # T cell: CD8+ (non-regulatory; the Wnt10b producers)


_SCALAR_COLUMNS: dict[str, tuple[type, object]] = {
    "alive": (np.uint8, 0),
    "type": (np.int8, -1),
    "state": (np.uint32, 0),
    "z": (np.int32, -1),
    "y": (np.int32, -1),
    "x": (np.int32, -1),
    "dirz": (np.float32, 0.0),
    "diry": (np.float32, 0.0),
    "dirx": (np.float32, 1.0),
    "age_days": (np.float32, 0.0),
    "nuclei": (np.int16, 0),
    "cell_id": (np.int64, -1),
    "parent_id": (np.int64, -1),
    "bone_credit_um3": (np.float32, 0.0),
    "committed_days": (np.float32, 0.0),
}
_RATE_COLUMNS = ("secretion", "uptake", "vmax")


class CellStore:
    """Structure-of-arrays cell storage with an occupancy grid.

    Args:
        shape: lattice shape (Z, Y, X).
        n_substrates: number of fields (columns of the per-cell rate arrays).
        capacity: initial number of slots (grows by doubling).
    """

    def __init__(self, shape: tuple[int, int, int], n_substrates: int, capacity: int = 1024):
        self.shape = tuple(int(s) for s in shape)
        self.n_substrates = int(n_substrates)
        self.capacity = 0
        self.occ = np.zeros(self.shape, np.int32)
        self._next_id = 0
        for name, (dt, fill) in _SCALAR_COLUMNS.items():
            setattr(self, name, np.zeros(0, dt))
        for name in _RATE_COLUMNS:
            setattr(self, name, np.zeros((0, self.n_substrates), np.float32))
        self._grow(max(int(capacity), 16))

    # ------------------------------------------------------------------ storage
    @staticmethod
    def columns() -> tuple[str, ...]:
        return tuple(_SCALAR_COLUMNS)

    def _grow(self, new_cap: int) -> None:
        old = self.capacity
        for name, (dt, fill) in _SCALAR_COLUMNS.items():
            a = np.full(new_cap, fill, dt)
            a[:old] = getattr(self, name)
            setattr(self, name, a)
        for name in _RATE_COLUMNS:
            a = np.zeros((new_cap, self.n_substrates), np.float32)
            a[:old] = getattr(self, name)
            setattr(self, name, a)
        self.capacity = new_cap

    @property
    def n_alive(self) -> int:
        return int(self.alive.sum())

    def alive_slots(self) -> np.ndarray:
        return np.flatnonzero(self.alive)

    def slots_of_type(self, code: int) -> np.ndarray:
        return np.flatnonzero((self.alive == 1) & (self.type == code))

    def _free_slots(self, n: int) -> np.ndarray:
        free = np.flatnonzero(self.alive == 0)
        if free.size < n:
            cap = self.capacity
            while cap - self.n_alive < n:
                cap *= 2
            self._grow(cap)
            free = np.flatnonzero(self.alive == 0)
        return free[:n]

    # ------------------------------------------------------------------ batches
    def add(self, type_code, z, y, x, state=0, nuclei=1, direction=None,
            parent_id=-1) -> np.ndarray:
        """Add cells at free, valid voxels (the caller checks walls). Returns their slots.

        Each gets the next lifelong ``cell_id``; ``parent_id``: the mothers' ids (-1: none).

        Raises ValueError if a target voxel is occupied or two targets coincide.
        """
        z = np.asarray(z, np.int32).ravel()
        y = np.asarray(y, np.int32).ravel()
        x = np.asarray(x, np.int32).ravel()
        n = z.size
        if n == 0:
            return np.zeros(0, np.int64)
        flat = np.ravel_multi_index((z, y, x), self.shape)
        if np.unique(flat).size != n or np.any(self.occ.ravel()[flat] != 0):
            raise ValueError("CellStore.add: target voxel occupied or duplicated")
        slots = self._free_slots(n)
        self.alive[slots] = 1
        self.type[slots] = np.broadcast_to(np.asarray(type_code, np.int8), n)
        self.state[slots] = np.broadcast_to(np.asarray(state, np.uint32), n)
        self.z[slots], self.y[slots], self.x[slots] = z, y, x
        self.age_days[slots] = 0.0
        self.nuclei[slots] = np.broadcast_to(np.asarray(nuclei, np.int16), n)
        self.bone_credit_um3[slots] = 0.0
        self.committed_days[slots] = 0.0
        self.cell_id[slots] = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        self.parent_id[slots] = np.broadcast_to(np.asarray(parent_id, np.int64), n)
        if direction is not None:
            d = np.asarray(direction, np.float32).reshape(n, 3)
            self.dirz[slots], self.diry[slots], self.dirx[slots] = d[:, 0], d[:, 1], d[:, 2]
        else:
            self.dirz[slots], self.diry[slots], self.dirx[slots] = 0.0, 0.0, 1.0
        self.secretion[slots] = 0.0
        self.uptake[slots] = 0.0
        self.vmax[slots] = 0.0
        self.occ.ravel()[flat] = (slots + 1).astype(np.int32)
        return slots

    def remove(self, slots) -> None:
        """Kill cells: free their slots and voxels."""
        slots = np.unique(np.asarray(slots, np.int64))
        if slots.size == 0:
            return
        if np.any(self.alive[slots] == 0):
            raise ValueError("CellStore.remove: slot is not alive")
        flat = np.ravel_multi_index((self.z[slots], self.y[slots], self.x[slots]), self.shape)
        self.occ.ravel()[flat] = 0
        self.alive[slots] = 0
        self.type[slots] = -1
        self.cell_id[slots] = -1
        self.parent_id[slots] = -1
        self.z[slots] = self.y[slots] = self.x[slots] = -1

    def set_type(self, slots, type_code, state=None) -> None:
        """Differentiate cells in place (slot, position and ``cell_id`` are kept; the
        precursor's ``committed_days`` end)."""
        slots = np.asarray(slots, np.int64)
        self.type[slots] = type_code
        self.committed_days[slots] = 0.0
        if state is not None:
            self.state[slots] = state

    def fuse(self, absorbed, into) -> None:
        """Fuse each ``absorbed[i]`` into ``into[i]``: nuclei add up, the absorbed cell goes.

        Pairs are applied in order, so a cell may absorb several others in one batch.
        """
        absorbed = np.asarray(absorbed, np.int64)
        into = np.asarray(into, np.int64)
        if absorbed.shape != into.shape:
            raise ValueError("CellStore.fuse: absorbed and into differ in length")
        if np.intersect1d(absorbed, into).size:
            raise ValueError("CellStore.fuse: a cell cannot both absorb and be absorbed")
        np.add.at(self.nuclei, into, self.nuclei[absorbed])
        self.remove(absorbed)

    def move(self, slot: int, z: int, y: int, x: int) -> None:
        """Move one cell to a free voxel (checked), keeping the occupancy grid."""
        if self.occ[z, y, x] != 0:
            raise ValueError(f"voxel {(z, y, x)} is occupied")
        self.occ[self.z[slot], self.y[slot], self.x[slot]] = 0
        self.z[slot], self.y[slot], self.x[slot] = z, y, x
        self.occ[z, y, x] = slot + 1

    def check(self, wall: np.ndarray | None = None) -> None:
        """Assert the invariants (used by tests and ``--check``)."""
        s = self.alive_slots()
        flat = np.ravel_multi_index((self.z[s], self.y[s], self.x[s]), self.shape)
        if np.unique(flat).size != s.size:
            raise AssertionError("two cells share a voxel")
        occ = np.zeros(self.shape, np.int32)
        occ.ravel()[flat] = s + 1
        if not np.array_equal(occ, self.occ):
            raise AssertionError("occupancy grid out of sync with cell positions")
        if wall is not None and np.any(wall.ravel()[flat]):
            raise AssertionError("a cell sits in a wall (bone or vessel) voxel")
