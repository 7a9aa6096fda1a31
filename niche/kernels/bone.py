"""Bone remodelling kernels: osteoclasts resorb, osteoblasts form, one voxel at a time.

Pure numba functions over arrays. Each cell carries a ``credit`` (um^3 of bone it has
resorbed or formed but not yet turned into a whole voxel). Cells are processed serially in
slot order so the result is independent of thread count.
"""
from __future__ import annotations

import numba as nb

__all__ = ["resorb", "form", "EMBED_FACES"]

#: An osteoblast whose own voxel has this many bone faces (a pocket or a groove) walls
#: itself in and becomes an osteocyte: some 10-20 % of osteoblasts end as osteocytes
#: (Franz-Odendaal 2006 Dev Dyn 10.1002/dvdy.20603), and a 10 um lacuna is below what
#: micro-CT resolves, so the voxel counts as bone.
EMBED_FACES = 4


@nb.njit(cache=True)
def _faces_equal(bone, zz, yy, xx, v):
    """Number of face neighbours of voxel (zz, yy, xx) inside the domain whose value is
    ``v`` (1: bone faces, 0: faces on marrow; the domain edge counts as neither)."""
    Z, Y, X = bone.shape
    n = 0
    if zz > 0 and bone[zz - 1, yy, xx] == v:
        n += 1
    if zz < Z - 1 and bone[zz + 1, yy, xx] == v:
        n += 1
    if yy > 0 and bone[zz, yy - 1, xx] == v:
        n += 1
    if yy < Y - 1 and bone[zz, yy + 1, xx] == v:
        n += 1
    if xx > 0 and bone[zz, yy, xx - 1] == v:
        n += 1
    if xx < X - 1 and bone[zz, yy, xx + 1] == v:
        n += 1
    return n


@nb.njit(cache=True)
def resorb(bone, vessel, slots, z, y, x, credit, radius, voxel_volume, out_flat):
    """Remove bone voxels near osteoclasts.

    For each osteoclast (``slots`` in order), while its credit holds a whole voxel, one
    bone voxel within ``radius[i]`` voxels (Chebyshev box) is turned into marrow: the
    most exposed one (most faces on marrow, so bumps go before the bone beneath them and
    the surface stays smooth, the mirror of :func:`form`), then the nearest, then the first
    in scan order. Returns the number of voxels removed; their flat indices are written to
    ``out_flat`` (length >= total possible).
    """
    Z, Y, X = bone.shape
    n_out = 0
    for k in range(slots.size):
        i = slots[k]
        r = radius[i]
        while credit[i] >= voxel_volume:
            best = -1
            bestd = 1 << 30
            best_open = -1
            for dz in range(-r, r + 1):
                zz = z[i] + dz
                if zz < 0 or zz >= Z:
                    continue
                for dy in range(-r, r + 1):
                    yy = y[i] + dy
                    if yy < 0 or yy >= Y:
                        continue
                    for dx in range(-r, r + 1):
                        xx = x[i] + dx
                        if xx < 0 or xx >= X:
                            continue
                        if bone[zz, yy, xx] == 1:
                            n_open = _faces_equal(bone, zz, yy, xx, 0)  # on marrow
                            d = dz * dz + dy * dy + dx * dx
                            if n_open > best_open or (n_open == best_open and d < bestd):
                                best_open = n_open
                                bestd = d
                                best = (zz * Y + yy) * X + xx
            if best < 0:
                break
            bz = best // (Y * X)
            by = (best // X) % Y
            bx = best % X
            bone[bz, by, bx] = 0
            out_flat[n_out] = best
            n_out += 1
            credit[i] -= voxel_volume
    return n_out


@nb.njit(cache=True)
def form(bone, wall, occ, slots, z, y, x, credit, voxel_volume, embed_faces, out_flat,
         embedded):
    """Add bone voxels next to osteoblasts.

    While an osteoblast's credit holds a whole voxel, one free marrow voxel in its
    26-neighbourhood that touches bone through a face (and is not a vessel, not occupied)
    becomes bone: the one with the most bone faces (a smooth, layer-by-layer apposition),
    ties broken by scan order. An osteoblast whose own voxel has at least ``embed_faces``
    bone faces, more than any free neighbour, fills its own voxel instead: it walls itself
    into the matrix and becomes an osteocyte (its slot goes to ``embedded``), so pockets
    close rather than stay as marrow cavities. Returns (voxels formed, cells embedded);
    flat indices go to ``out_flat``. Credit is capped at one voxel when no site is free.
    """
    Z, Y, X = bone.shape
    n_out = 0
    n_emb = 0
    for k in range(slots.size):
        i = slots[k]
        while credit[i] >= voxel_volume:
            best = -1
            best_touch = 0
            for dz in range(-1, 2):
                zz = z[i] + dz
                if zz < 0 or zz >= Z:
                    continue
                for dy in range(-1, 2):
                    yy = y[i] + dy
                    if yy < 0 or yy >= Y:
                        continue
                    for dx in range(-1, 2):
                        xx = x[i] + dx
                        if xx < 0 or xx >= X:
                            continue
                        if wall[zz, yy, xx] != 0 or occ[zz, yy, xx] != 0:
                            continue
                        touch = _faces_equal(bone, zz, yy, xx, 1)
                        if touch > best_touch:
                            best_touch = touch
                            best = (zz * Y + yy) * X + xx
            own = _faces_equal(bone, z[i], y[i], x[i], 1)
            if own >= embed_faces and own > best_touch:
                # embedded: the voxel becomes bone, the cell an osteocyte
                bone[z[i], y[i], x[i]] = 1
                wall[z[i], y[i], x[i]] = 1
                out_flat[n_out] = (z[i] * Y + y[i]) * X + x[i]
                n_out += 1
                embedded[n_emb] = i
                n_emb += 1
                credit[i] = 0.0
                break
            if best < 0:
                credit[i] = min(credit[i], voxel_volume)
                break
            bz = best // (Y * X)
            by = (best // X) % Y
            bx = best % X
            bone[bz, by, bx] = 1
            wall[bz, by, bx] = 1
            out_flat[n_out] = best
            n_out += 1
            credit[i] -= voxel_volume
    return n_out, n_emb
