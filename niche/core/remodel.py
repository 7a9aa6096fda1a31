"""Bone remodelling: the rule set's credits become resorbed and formed voxels.

Each bone step the rule set says how much bone each osteoclast resorbs and each
osteoblast forms (:class:`BoneWork`, returned by ``Rules.remodel``); the engine adds it to
the cells' ``bone_credit_um3`` and the kernels (:mod:`niche.kernels.bone`) turn every
whole voxel of credit into a resorbed or formed voxel. Osteoblasts walled into the matrix
become osteocytes and leave the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..kernels import bone as bone_k
from .cells import TYPE_CODES

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model

__all__ = ["BoneWork", "bone_step"]

_EMPTY = np.zeros(0, np.int64)


@dataclass
class BoneWork:
    """Bone volume (um^3) added to cells' credit in one bone step.

    ``resorb_slots``/``resorb_um3``: osteoclasts and what each resorbs; ``form_slots``/
    ``form_um3``: osteoblasts and what each forms. Values are float32 (as the credit).
    """

    resorb_slots: np.ndarray = field(default_factory=lambda: _EMPTY)
    resorb_um3: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    form_slots: np.ndarray = field(default_factory=lambda: _EMPTY)
    form_um3: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def bone_step(model: "Model", work: BoneWork | None) -> bool:
    """Credit ``work`` and resorb/form whole voxels; True if the bone changed."""
    cells, lat = model.cells, model.lattice
    credit = cells.bone_credit_um3
    if work is not None:
        if work.resorb_slots.size:
            credit[work.resorb_slots] += work.resorb_um3
        if work.form_slots.size:
            credit[work.form_slots] += work.form_um3
    vv = np.float32(lat.voxel_volume_um3)
    oc = cells.slots_of_type(TYPE_CODES["osteoclast"])
    ob = cells.slots_of_type(TYPE_CODES["osteoblast"])
    changed = False
    if oc.size:
        radius = np.zeros(cells.capacity, np.int64)
        radius[oc] = 1 + cells.nuclei[oc].astype(np.int64) // 8
        cap = int(np.floor(credit[oc] / vv).sum())
        out = np.empty(max(cap, 1), np.int64)
        n = bone_k.resorb(lat.bone, lat.vessel, oc, cells.z, cells.y, cells.x, credit,
                          radius, vv, out)
        if n:
            model.wall.ravel()[out[:n]] = lat.vessel.ravel()[out[:n]]
            model.record_remodelling(resorbed=n)
            changed = True
    if ob.size:
        cap = int(np.floor(credit[ob] / vv).sum()) + ob.size
        out = np.empty(max(cap, 1), np.int64)
        emb = np.empty(ob.size, np.int64)
        n, n_emb = bone_k.form(lat.bone, model.wall, cells.occ, ob, cells.z, cells.y,
                               cells.x, credit, vv, np.int64(bone_k.EMBED_FACES), out, emb)
        if n_emb:  # osteoblasts walled into the matrix become osteocytes
            model.remove_cells(emb[:n_emb])
            model.osteoblasts_embedded += n_emb
        if n:
            model.record_remodelling(formed=n)
            changed = True
    return changed
