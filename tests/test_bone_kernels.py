"""Remodelling kernels: which voxel an osteoclast resorbs, which an osteoblast fills, and
when an osteoblast walls itself in (osteocyte)."""
from __future__ import annotations

import numpy as np
import pytest

from niche.kernels import bone as bone_k

from .test_model import handles_match, small_model

VV = np.float32(1000.0)      # one 10 um voxel, um^3


def _slab(shape=(12, 12, 12), top=5):
    """Bone below z = ``top`` (a flat surface facing +z)."""
    bone = np.zeros(shape, np.uint8)
    bone[:top] = 1
    return bone


def _one_cell(z, y, x, shape, credit):
    n = 1
    zs, ys, xs = (np.array([v], np.int64) for v in (z, y, x))
    occ = np.zeros(shape, np.int32)
    occ[z, y, x] = 1
    return np.array([0], np.int64), zs, ys, xs, np.array([credit], np.float32), occ, n


def test_resorption_takes_the_most_exposed_voxel_first():
    """A bump on a flat surface goes before the surface voxel beneath the osteoclast (both
    face neighbours at distance 1; scan order alone would take the surface voxel)."""
    bone = _slab()
    bone[5, 6, 7] = 1                                  # bump: 5 faces on marrow
    slots, z, y, x, credit, _, _ = _one_cell(5, 6, 6, bone.shape, VV)
    out = np.empty(4, np.int64)
    n = bone_k.resorb(bone, np.zeros_like(bone), slots, z, y, x, credit,
                      np.array([1], np.int64), VV, out)
    assert n == 1
    assert np.unravel_index(out[0], bone.shape) == (5, 6, 7)
    assert bone[5, 6, 7] == 0 and bone[4, 6, 6] == 1
    assert credit[0] == pytest.approx(0.0)


def test_resorption_of_a_flat_surface_takes_the_nearest_voxel():
    """Equal exposure: the nearest voxel (the one under the cell) goes; credit for two
    voxels removes two, then stops."""
    bone = _slab()
    slots, z, y, x, credit, _, _ = _one_cell(5, 6, 6, bone.shape, 2 * VV + 1)
    out = np.empty(4, np.int64)
    n = bone_k.resorb(bone, np.zeros_like(bone), slots, z, y, x, credit,
                      np.array([1], np.int64), VV, out)
    assert n == 2
    assert np.unravel_index(out[0], bone.shape) == (4, 6, 6)
    assert credit[0] == pytest.approx(1.0)
    assert bone.sum() == 5 * 12 * 12 - 2


def test_formation_fills_the_most_enclosed_free_voxel():
    """On a flat surface an osteoblast fills a free neighbour (not its own voxel)."""
    bone = _slab()
    wall = bone.copy()
    slots, z, y, x, credit, occ, _ = _one_cell(5, 6, 6, bone.shape, VV)
    out = np.empty(4, np.int64)
    emb = np.empty(1, np.int64)
    n, n_emb = bone_k.form(bone, wall, occ, slots, z, y, x, credit, VV,
                           np.int64(bone_k.EMBED_FACES), out, emb)
    assert (n, n_emb) == (1, 0)
    fz, fy, fx = np.unravel_index(out[0], bone.shape)
    assert fz == 5 and (fy, fx) != (6, 6) and max(abs(fy - 6), abs(fx - 6)) == 1
    assert bone[fz, fy, fx] == 1 and wall[fz, fy, fx] == 1 and bone[5, 6, 6] == 0


def test_an_osteoblast_in_a_pocket_walls_itself_in():
    """Own voxel with 5 bone faces (more than any free neighbour): it becomes bone and the
    cell is reported as embedded; at a threshold above 5 it forms next door instead."""
    for faces, embeds in ((bone_k.EMBED_FACES, True), (6, False)):
        bone = _slab()
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            bone[5, 6 + dy, 6 + dx] = 1                # a pocket open only to +z
        wall = bone.copy()
        slots, z, y, x, credit, occ, _ = _one_cell(5, 6, 6, bone.shape, VV)
        out = np.empty(4, np.int64)
        emb = np.empty(1, np.int64)
        n, n_emb = bone_k.form(bone, wall, occ, slots, z, y, x, credit, VV, np.int64(faces),
                               out, emb)
        assert n == 1
        if embeds:
            assert n_emb == 1 and emb[0] == 0
            assert np.unravel_index(out[0], bone.shape) == (5, 6, 6)
            assert bone[5, 6, 6] == 1 and credit[0] == 0.0
        else:
            assert n_emb == 0 and bone[5, 6, 6] == 0


def test_embedded_osteoblasts_leave_the_model_consistent():
    """In a run where osteoblasts wall themselves in, no cell is left inside bone and the
    Mesa handles stay in sync."""
    m = small_model(days=2.0, **{"cells.osteoblast.initial_per_mm3": 60000.0,
                                 "cells.osteoblast.apposition_um_per_day": 20.0})
    m.run()
    assert m.osteoblasts_embedded > 0
    m.cells.check(wall=m.wall)
    handles_match(m)
    assert np.array_equal(m.fields.solid, m.lattice.bone)
