"""Numba kernels for osteoclast fusion and surface contact.

Pure array functions (no model imports). Cell arrays are slot-indexed as in
:mod:`niche.kernels.motility`; ``occ`` holds slot + 1 of the occupant, 0 = free.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from niche.kernels.motility import NEIGHBOUR_OFFSETS

__all__ = ["pair_fusions", "touches_bone"]


@njit(cache=True)
def pair_fusions(cands, z, y, x, occ, role, max_nuclei, nuclei, absorbed, into):
    """Pair fusing cells with touching partners, serially in the order of ``cands``.

    ``role[s]``: 1 = committed mononuclear precursor, 2 = osteoclast, 0 = neither.
    Each candidate precursor (role 1) that is not yet paired fuses into a touching
    (26-neighbour) osteoclast with fewer than ``max_nuclei`` nuclei if there is one
    (the first in neighbour order), else with a touching unpaired precursor, which it
    absorbs (the candidate becomes the new osteoclast's anchor). Nuclei are counted
    as pairs are made so an osteoclast never exceeds ``max_nuclei``.

    Writes pairs to ``absorbed[:n]`` / ``into[:n]`` and returns n. ``role`` and
    ``nuclei`` are scratch copies the caller may discard (they are updated).
    """
    Z, Y, X = occ.shape
    n = 0
    for k in range(cands.shape[0]):
        s = cands[k]
        if role[s] != 1:
            continue
        pz = np.int64(z[s])
        py = np.int64(y[s])
        px = np.int64(x[s])
        best_oc = -1
        best_pre = -1
        for o in range(26):
            vz = pz + NEIGHBOUR_OFFSETS[o, 0]
            vy = py + NEIGHBOUR_OFFSETS[o, 1]
            vx = px + NEIGHBOUR_OFFSETS[o, 2]
            if vz < 0 or vy < 0 or vx < 0 or vz >= Z or vy >= Y or vx >= X:
                continue
            t = occ[vz, vy, vx] - 1
            if t < 0:
                continue
            if role[t] == 2 and best_oc < 0 and nuclei[t] + nuclei[s] <= max_nuclei:
                best_oc = t
            elif role[t] == 1 and best_pre < 0:
                best_pre = t
        if best_oc >= 0:
            absorbed[n] = s
            into[n] = best_oc
            nuclei[best_oc] += nuclei[s]
            role[s] = 0
            n += 1
        elif best_pre >= 0:
            absorbed[n] = best_pre
            into[n] = s
            nuclei[s] += nuclei[best_pre]
            role[best_pre] = 0
            role[s] = 3  # the new osteoclast: neither fuses again in this batch
            n += 1
    return n


@njit(cache=True)
def touches_bone(slots, z, y, x, bone, out):
    """out[k] = 1 if the voxel of ``slots[k]`` has a face neighbour that is bone."""
    Z, Y, X = bone.shape
    for k in range(slots.shape[0]):
        s = slots[k]
        pz = z[s]
        py = y[s]
        px = x[s]
        t = 0
        if pz > 0 and bone[pz - 1, py, px]:
            t = 1
        elif pz < Z - 1 and bone[pz + 1, py, px]:
            t = 1
        elif py > 0 and bone[pz, py - 1, px]:
            t = 1
        elif py < Y - 1 and bone[pz, py + 1, px]:
            t = 1
        elif px > 0 and bone[pz, py, px - 1]:
            t = 1
        elif px < X - 1 and bone[pz, py, px + 1]:
            t = 1
        out[k] = t
    return out
