"""In-vitro assay mode: the lattice of a culture well.

The well is ``domain.shape_voxels`` = (height, width, width): a bone (dentine) slice of
``invitro.bone_slice_um`` at the bottom (resorption pits are read from it), culture medium
above, and the top voxel layer held at the medium concentrations (the well-mixed bulk
medium, renewed at medium changes) through the same Dirichlet mechanism as vessels in
vivo. No cells enter or leave; monocytes (and Tregs) are seeded on the slice.
"""
from __future__ import annotations

import math

import numpy as np

from ..lattice import Lattice

__all__ = ["well_lattice"]


def well_lattice(shape, voxel_um: float, invitro) -> Lattice:
    """The lattice of a culture well (bone slice below, medium reservoir on top)."""
    shape = tuple(int(s) for s in shape)
    nb = max(1, int(math.ceil(invitro.bone_slice_um / voxel_um - 1e-9)))
    if nb + 2 > shape[0]:
        raise ValueError(f"domain.shape_voxels: a well needs height > {nb + 1} voxels "
                         f"(bone slice {nb} + medium + reservoir), got {shape[0]}")
    bone = np.zeros(shape, np.uint8)
    bone[:nb] = 1
    vessel = np.zeros(shape, np.uint8)
    vessel[-1] = 1
    return Lattice(shape=shape, voxel_um=float(voxel_um), bone=bone, vessel=vessel)
