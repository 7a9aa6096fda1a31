"""Births, deaths, differentiation and fusion, queued during a step and applied in one batch.

Rules never add or remove cells themselves: they fill ``model.changes`` (a
:class:`ChangeSet`) and the engine applies it after the hook returns
(:meth:`~niche.core.model.Model.apply_changes`), keeping the cell arrays and the Mesa
handles in step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ChangeSet"]


@dataclass
class ChangeSet:
    """Births, deaths, differentiation and fusion queued during a decision step."""

    births: list[dict[str, Any]] = field(default_factory=list)
    deaths: list[np.ndarray] = field(default_factory=list)
    differentiations: list[tuple[np.ndarray, int, Any]] = field(default_factory=list)
    fusions: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def birth_at(self, type_code: int, z, y, x, state=0, nuclei=1, parents=None) -> None:
        """Add cells at given voxels (skipped where the voxel is taken or a wall).

        ``parents``: for daughters of a division, the mothers' slots (one per voxel); each
        daughter records its mother's id (``parent_id``) and the event log a division.
        """
        z, y, x = np.asarray(z), np.asarray(y), np.asarray(x)
        if parents is not None:
            parents = np.asarray(parents, np.int64).ravel()
            if parents.size != z.size:
                raise ValueError(f"birth_at: {parents.size} parents for {z.size} voxels")
        self.births.append(dict(kind="at", type=int(type_code), z=z, y=y, x=x, state=state,
                                nuclei=nuclei, parents=parents))

    def birth_random(self, type_code: int, n: int, state=0, nuclei=1,
                     near_bone: bool = False, at_vessels: bool = False) -> None:
        """Add ``n`` cells at random free voxels (marrow, bone surface, or vessel entries)."""
        self.births.append(dict(kind="random", type=int(type_code), n=int(n), state=state,
                                nuclei=nuclei, near_bone=near_bone, at_vessels=at_vessels))

    def die(self, slots) -> None:
        """Remove the cells in ``slots`` (dead ones are skipped)."""
        self.deaths.append(np.asarray(slots, np.int64))

    def differentiate(self, slots, new_type: int, new_state=None) -> None:
        """Turn the cells in ``slots`` into ``new_type`` in place (same slot, same id)."""
        self.differentiations.append((np.asarray(slots, np.int64), int(new_type), new_state))

    def fuse(self, absorbed, into) -> None:
        """Fuse each ``absorbed[i]`` into ``into[i]`` (nuclei add up)."""
        self.fusions.append((np.asarray(absorbed, np.int64), np.asarray(into, np.int64)))

    def __bool__(self) -> bool:
        return bool(self.births or self.deaths or self.differentiations or self.fusions)
