"""Trabecular bone morphometry and 3D histomorphometry of a voxel bone mask.

Arrays are (Z, Y, X), C order, isotropic voxels of edge ``voxel_um``. ``bone`` is a
uint8/bool mask (1 = bone); marrow is its complement.

Local thickness (Tb.Th, Tb.Sp) follows Hildebrand & Rüegsegger 1997 (J Microsc 185:67) as
implemented in BoneJ / Fiji "Local Thickness" (Dougherty & Kunzelmann 2007): the thickness
at a point is the diameter of the largest sphere that fits inside the structure and
contains the point. On the voxel grid:

1. ``a(p)``: squared Euclidean distance from the centre of structure voxel ``p`` to the
   centre of the nearest background voxel (an integer). Only voxels inside the array are
   background: beyond the array edge counts as structure, so the domain walls are no
   edge of the structure (as in BoneJ's ``EDT_S1D``); a structure lying along a wall
   reads as if mirrored across it (a plate on a wall reads twice as thick).
2. The sphere of ``p`` is the voxel set ``{x : |x - p|^2 <= a(p)}``. The thickness map is
   ``T(x) = 2 sqrt(max a(p))`` over all structure voxels ``p`` whose sphere holds ``x``,
   restricted to the structure (BoneJ trims the overhang the same way).
3. Only the distance ridge is painted: a voxel whose sphere lies inside the sphere of one
   of its 26 neighbours is dropped. The containment test is exact on the voxel grid
   (integer tables, see ``_containment_tables``), so the map is identical to painting
   every voxel's sphere. Spheres are painted largest first, so each voxel is written
   once, by its largest sphere; spheres skip, through union-find pointers, the bricks
   and voxels already painted (``_paint_spheres``, parallel over planes of bricks). The
   result does not depend on the thread count.

Diameter convention: ``2 * sqrt(a)`` with no further correction, exactly as BoneJ (its
``Local_Thickness_Parallel`` doubles the EDT radius; it applies no +1 correction). So,
in voxels: a plate ``t`` thick reads ``t`` for even ``t`` and ``t + 1`` for odd ``t``
(a 1-voxel plate reads 2); a ball or rod of diameter ``d`` centred on a voxel centre
reads ``d`` to ``d + 1``; a ball centred on a voxel corner (even ``d``) reads 1.2 to
1.6 less than ``d``, because sphere centres are voxel centres. BoneJ's final surface
"clean-up" (surface voxels replaced by the mean of their interior neighbours) is not
applied: the map is the plain definition above.

Bone surface area (BS) uses the Crofton formula on the 13 line directions of the 3x3x3
neighbourhood (Ohser & Mücklich 2000; Legland et al. 2007): the bone/marrow transitions
between voxel pairs along each direction, weighted per direction class (axis, face
diagonal, body diagonal). The weights are the minimax fit over all plane orientations
under the constraint that the estimate is unbiased for isotropic surfaces: a flat surface
reads between -6.1 % (normals along the lattice axes and diagonals) and +2.7 % of its
true area, whatever its orientation. Voxel pairs that cross a domain wall count with the
wall voxels replicated and half weight per wall crossed, so the walls themselves are no
surface and a plate spanning the domain measures its full extent.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import prange
from scipy import ndimage

__all__ = [
    "bone_surface_area_um2",
    "bone_surface_faces",
    "count_per_surface",
    "local_thickness",
    "surface_fraction_near",
    "trabecular_morphometry",
]

#: The 13 Crofton directions (one of each +-pair) and their class: 0 axis, 1 face
#: diagonal, 2 body diagonal.
_DIRS = np.array(
    [(1, 0, 0), (0, 1, 0), (0, 0, 1),
     (0, 1, 1), (0, 1, -1), (1, 0, 1), (1, 0, -1), (1, 1, 0), (1, -1, 0),
     (1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1)], dtype=np.int64)
_DIR_CLASS = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2], dtype=np.int64)

#: Area per transition (voxel-edge^2) for each direction class. Fitted by linear
#: programming on a 601 x 601 grid of plane normals over the octant: minimise the largest
#: relative error of sum_u k_u |n . u| against 1 subject to its mean over the sphere being
#: 1 (1.5 k0 + 3 sqrt(2) k1 + 2 sqrt(3) k2 = 1).
_CROFTON_K = np.array([0.145159, 0.121869, 0.076561])


def _check_args(mask: np.ndarray, voxel_um: float) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ValueError(f"mask must be 3-D (Z, Y, X), got shape {m.shape}")
    if not (np.isfinite(voxel_um) and voxel_um > 0):
        raise ValueError(f"voxel_um must be positive, got {voxel_um}")
    return m.astype(bool, copy=False)


@nb.njit(cache=True)
def _isqrt(n):
    r = int(math.sqrt(n))
    while r * r > n:
        r -= 1
    while (r + 1) * (r + 1) <= n:
        r += 1
    return r


@nb.njit(cache=True)
def _containment_tables(amax):
    """need[c, a]: smallest squared radius a neighbour at offset class c needs to hold a sphere.

    Classes: c = 0 face (|o|^2 = 1), 1 edge (2), 2 corner (3) neighbour. The sphere
    {x : |x|^2 <= a} lies in {x : |x - o|^2 <= b} iff b >= max |x - o|^2 over its lattice
    points = max over representable s <= a of (s + 2 m_c(s) + c + 1), where m_c(s) is the
    largest sum of the c + 1 largest |components| of a lattice point with |x|^2 = s.
    """
    best = np.full((3, amax + 1), -1, np.int64)
    r = _isqrt(amax)
    for x1 in range(r + 1):
        s1 = x1 * x1
        for x2 in range(x1 + 1):
            s2 = s1 + x2 * x2
            if s2 > amax:
                break
            for x3 in range(x2 + 1):
                s = s2 + x3 * x3
                if s > amax:
                    break
                best[0, s] = max(best[0, s], x1)
                best[1, s] = max(best[1, s], x1 + x2)
                best[2, s] = max(best[2, s], x1 + x2 + x3)
    need = np.empty((3, amax + 1), np.int64)
    for c in range(3):
        run = 0
        for s in range(amax + 1):
            if best[c, s] >= 0:
                f = s + 2 * best[c, s] + c + 1
                run = max(run, f)
            need[c, s] = run
    return need


@nb.njit(cache=True)
def _distance_ridge(a, need):
    """Voxels whose sphere is not inside a 26-neighbour's sphere: (z, y, x, a) arrays."""
    Z, Y, X = a.shape
    n = 0
    for z in range(Z):
        for y in range(Y):
            for x in range(X):
                if a[z, y, x] > 0:
                    n += 1
    rz = np.empty(n, np.int64)
    ry = np.empty(n, np.int64)
    rx = np.empty(n, np.int64)
    ra = np.empty(n, np.int64)
    k = 0
    for z in range(Z):
        for y in range(Y):
            for x in range(X):
                v = a[z, y, x]
                if v == 0:
                    continue
                keep = True
                for dz in range(-1, 2):
                    zz = z + dz
                    if zz < 0 or zz >= Z:
                        continue
                    for dy in range(-1, 2):
                        yy = y + dy
                        if yy < 0 or yy >= Y:
                            continue
                        for dx in range(-1, 2):
                            xx = x + dx
                            if xx < 0 or xx >= X:
                                continue
                            c = abs(dz) + abs(dy) + abs(dx) - 1
                            if c < 0:
                                continue
                            if a[zz, yy, xx] >= need[c, v]:
                                keep = False
                                break
                        if not keep:
                            break
                    if not keep:
                        break
                if keep:
                    rz[k] = z
                    ry[k] = y
                    rx[k] = x
                    ra[k] = v
                    k += 1
    return rz[:k], ry[:k], rx[:k], ra[:k]


@nb.njit(cache=True)
def _find(parent, i):
    """Union-find root with path halving: the first unpainted slot at or after ``i``."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


#: Edge (voxels) of the bricks that keep count of unpainted voxels while painting.
_BRICK = 4


@nb.njit(cache=True)
def _paint_slab(mask, bz, pz, py, px, pv, pr, out, nx, left, nb_):
    """Paint the brick plane ``bz`` (voxel planes ``bz * _BRICK`` to the next plane's
    start): set up its union-find pointers and brick counts, then go through the
    spheres (centres ``pz, py, px``, squared radii ``pv``, radii ``pr``, in painting
    order) and paint its unpainted mask voxels inside each. Touches only the rows of
    ``out``, ``nx`` (voxel rows), ``nb_`` (brick rows) and ``left`` (bricks) that lie in
    the plane."""
    B = _BRICK
    Z, Y, X = mask.shape
    BY = (Y + B - 1) // B
    BX = (X + B - 1) // B
    lz = bz * B
    hz = min(lz + B - 1, Z - 1)
    for bi in range(bz * BY * BX, (bz + 1) * BY * BX):
        left[bi] = 0
    for z in range(lz, hz + 1):
        for y in range(Y):
            base = (z * Y + y) * (X + 1)
            for x in range(X):
                out[z, y, x] = 0
                if mask[z, y, x]:
                    nx[base + x] = base + x
                    left[(bz * BY + y // B) * BX + x // B] += 1
                else:
                    nx[base + x] = base + x + 1
            nx[base + X] = base + X
    for by in range(BY):
        base = (bz * BY + by) * (BX + 1)
        for bx in range(BX):
            full = left[(bz * BY + by) * BX + bx] > 0
            nb_[base + bx] = base + bx if full else base + bx + 1
        nb_[base + BX] = base + BX
    for k in range(pz.shape[0]):
        z = pz[k]
        r = pr[k]
        if z + r < lz or z - r > hz:
            continue
        y = py[k]
        x = px[k]
        v = pv[k]
        bx0 = max(x - r, 0) // B
        bx1 = min(x + r, X - 1) // B
        dz = lz - z if z < lz else (z - hz if z > hz else 0)
        for by in range(max(y - r, 0) // B, min(y + r, Y - 1) // B + 1):
            ly = by * B
            hy = min(ly + B - 1, Y - 1)
            dy = ly - y if y < ly else (y - hy if y > hy else 0)
            if dz * dz + dy * dy > v:
                continue
            bbase = (bz * BY + by) * (BX + 1)
            bx = _find(nb_, bbase + bx0) - bbase
            while bx <= bx1:
                lx = bx * B
                hx = min(lx + B - 1, X - 1)
                dx = lx - x if x < lx else (x - hx if x > hx else 0)
                if dz * dz + dy * dy + dx * dx <= v:
                    bi = (bz * BY + by) * BX + bx
                    for zz in range(max(lz, z - r), min(hz, z + r) + 1):
                        rem = v - (zz - z) * (zz - z)
                        s = _isqrt(rem)
                        for yy in range(max(ly, y - s), min(hy, y + s) + 1):
                            w = _isqrt(rem - (yy - y) * (yy - y))
                            xa = max(lx, x - w)
                            xb = min(hx, x + w)
                            base = (zz * Y + yy) * (X + 1)
                            xx = _find(nx, base + xa) - base
                            while xx <= xb:
                                out[zz, yy, xx] = v
                                nx[base + xx] = base + xx + 1
                                left[bi] -= 1
                                xx = _find(nx, base + xx + 1) - base
                    if left[bi] == 0:
                        nb_[bbase + bx] = bbase + bx + 1
                bx = _find(nb_, bbase + bx + 1) - bbase


@nb.njit(parallel=True, cache=True)
def _paint_spheres(mask, order, rz, ry, rx, ra, nchunk):
    """Paint spheres in ``order`` (largest first); each voxel keeps the first value.

    Returns the int64 map of squared radii on the mask (0 elsewhere). Painting largest
    first, the first sphere to reach a voxel is its largest, so every voxel is written
    once; what costs is finding the few spheres that still reach unpainted voxels. Each
    sphere visits only the bricks (``_BRICK``^3) that it meets and that still hold
    unpainted mask voxels, and within them only the unpainted voxels of its x-runs, both
    through union-find "next unpainted" pointers (over bricks along each brick row, over
    voxels along each voxel row). The result does not depend on that bookkeeping.

    Parallel over z: the planes of bricks go, in turn, to ``nchunk`` tasks; each plane
    goes through all spheres in ``order`` and paints only its own voxels
    (:func:`_paint_slab`). A voxel is thus painted by the first sphere in ``order`` that
    reaches it, as in a serial pass, and every union-find row, brick count and voxel
    belongs to one plane: the map is the same for any ``nchunk`` and thread count.
    """
    B = _BRICK
    Z, Y, X = mask.shape
    BZ = (Z + B - 1) // B
    BY = (Y + B - 1) // B
    BX = (X + B - 1) // B
    n = order.shape[0]
    nt = max(1, min(nchunk, BZ))
    # the spheres in painting order, with their radius bound
    pz = np.empty(n, np.int64)
    py = np.empty(n, np.int64)
    px = np.empty(n, np.int64)
    pv = np.empty(n, np.int64)
    pr = np.empty(n, np.int64)
    for t in prange(nt):
        for i in range(t * n // nt, (t + 1) * n // nt):
            k = order[i]
            pz[i] = rz[k]
            py[i] = ry[k]
            px[i] = rx[k]
            pv[i] = ra[k]
            pr[i] = _isqrt(ra[k])
    out = np.empty((Z, Y, X), np.int64)
    nx = np.empty(Z * Y * (X + 1), np.int64)
    left = np.empty(BZ * BY * BX, np.int64)
    nb_ = np.empty(BZ * BY * (BX + 1), np.int64)
    for t in prange(nt):
        for bz in range(t, BZ, nt):
            _paint_slab(mask, bz, pz, py, px, pv, pr, out, nx, left, nb_)
    return out


def local_thickness(mask: np.ndarray, voxel_um: float) -> np.ndarray:
    """Local thickness map (Hildebrand & Rüegsegger 1997; BoneJ convention).

    The thickness at a structure voxel is the diameter of the largest sphere that fits in
    the structure and contains the voxel; spheres are centred on voxel centres with radius
    the distance to the nearest background voxel centre, diameter ``2 * radius`` (see the
    module docstring: a ``t``-voxel plate reads ``t`` for even ``t``, ``t + 1`` for odd).
    Outside the array is not background.

    Args:
        mask: (Z, Y, X) structure mask (nonzero = structure): bone for Tb.Th, marrow for
            Tb.Sp.
        voxel_um: voxel edge length.

    Returns:
        float32 (Z, Y, X) thickness in um; 0 outside the mask. A mask with no background
        voxel has no defined thickness: NaN on the mask.
    """
    m = np.ascontiguousarray(_check_args(mask, voxel_um))
    out = np.zeros(m.shape, np.float32)
    if not m.any():
        return out
    if m.all():
        out[:] = np.nan
        return out
    edt = ndimage.distance_transform_edt(m)
    a = np.rint(edt * edt).astype(np.int64)  # exact integer squared distances
    a[~m] = 0
    need = _containment_tables(int(a.max()))
    rz, ry, rx, ra = _distance_ridge(a, need)
    order = np.argsort(-ra, kind="stable")
    painted = _paint_spheres(m, order, rz, ry, rx, ra, nb.get_num_threads())
    out[m] = (2.0 * voxel_um) * np.sqrt(painted[m].astype(np.float64))
    return out


@nb.njit(cache=True)
def _crofton_transitions(b, dirs, dir_class):
    """Weighted count of bone/marrow transitions per direction class.

    Pairs (p, p + u) whose midpoint lies on a domain wall read the replicated edge voxel
    and count 1/2 per wall they straddle; pairs beyond the walls count 0.
    """
    Z, Y, X = b.shape
    dims = (Z, Y, X)
    counts = np.zeros(3)
    for k in range(dirs.shape[0]):
        lo = np.empty(3, np.int64)
        hi = np.empty(3, np.int64)
        for i in range(3):
            if dirs[k, i] == 0:
                lo[i] = 0
                hi[i] = dims[i] - 1
            elif dirs[k, i] == 1:
                lo[i] = -1
                hi[i] = dims[i] - 1
            else:
                lo[i] = 0
                hi[i] = dims[i]
        uz, uy, ux = dirs[k, 0], dirs[k, 1], dirs[k, 2]
        total = 0.0
        for z in range(lo[0], hi[0] + 1):
            wz = 0.5 if (uz != 0 and (z == lo[0] or z == hi[0])) else 1.0
            z0 = min(max(z, 0), Z - 1)
            z1 = min(max(z + uz, 0), Z - 1)
            for y in range(lo[1], hi[1] + 1):
                wy = 0.5 if (uy != 0 and (y == lo[1] or y == hi[1])) else 1.0
                y0 = min(max(y, 0), Y - 1)
                y1 = min(max(y + uy, 0), Y - 1)
                row = 0.0
                for x in range(lo[2], hi[2] + 1):
                    x0 = min(max(x, 0), X - 1)
                    x1 = min(max(x + ux, 0), X - 1)
                    if b[z0, y0, x0] != b[z1, y1, x1]:
                        if ux != 0 and (x == lo[2] or x == hi[2]):
                            row += 0.5
                        else:
                            row += 1.0
                total += wz * wy * row
        counts[dir_class[k]] += total
    return counts


def bone_surface_area_um2(bone: np.ndarray, voxel_um: float) -> float:
    """Bone surface area BS (um^2) by the 13-direction Crofton formula.

    Orientation error of a flat surface: -6.1 % to +2.7 %, unbiased for isotropic
    surfaces (module docstring). The domain walls are no surface.

    Args:
        bone: (Z, Y, X) mask, nonzero = bone.
        voxel_um: voxel edge length.

    Returns:
        BS in um^2 (0.0 for an empty or full mask).
    """
    b = _check_args(bone, voxel_um).view(np.uint8)
    counts = _crofton_transitions(np.ascontiguousarray(b), _DIRS, _DIR_CLASS)
    # an exactly rounded sum, not a BLAS dot product, whose rounding depends on the CPU
    return math.fsum((counts * _CROFTON_K).tolist()) * voxel_um**2


def _mean_on(values: np.ndarray, where: np.ndarray) -> float:
    if not where.any():
        return float("nan")
    return float(values[where].mean(dtype=np.float64))


def trabecular_morphometry(bone: np.ndarray, voxel_um: float) -> dict[str, float]:
    """Standard 3D trabecular morphometry of a bone mask (BoneJ / CTAn definitions).

    Args:
        bone: (Z, Y, X) mask, nonzero = bone; marrow is the complement.
        voxel_um: voxel edge length.

    Returns:
        ``bv_tv`` (voxel count fraction), ``tb_th_um`` (mean local thickness of bone
        voxels), ``tb_sp_um`` (mean local thickness of marrow voxels), ``tb_n_per_mm``
        (BV/TV / Tb.Th), ``bs_um2`` (Crofton surface area) and ``bs_bv_per_mm``. Values
        that are undefined (no bone, no marrow) are NaN; nothing raises.
    """
    b = _check_args(bone, voxel_um)
    n = b.size
    nbone = int(np.count_nonzero(b))
    bv_tv = nbone / n if n else float("nan")
    tb_th = _mean_on(local_thickness(b, voxel_um), b)
    marrow = ~b
    tb_sp = _mean_on(local_thickness(marrow, voxel_um), marrow)
    tb_n = bv_tv / tb_th * 1000.0 if np.isfinite(tb_th) and tb_th > 0 else float("nan")
    bs = bone_surface_area_um2(b, voxel_um) if n else float("nan")
    bs_bv = bs / (nbone * voxel_um**3) * 1000.0 if nbone else float("nan")
    return {"bv_tv": float(bv_tv), "tb_th_um": tb_th, "tb_sp_um": tb_sp,
            "tb_n_per_mm": float(tb_n), "bs_um2": float(bs), "bs_bv_per_mm": float(bs_bv)}


def bone_surface_faces(bone: np.ndarray) -> np.ndarray:
    """Bone-surface faces per marrow voxel.

    The 3D bone surface is the set of voxel faces between a marrow voxel and a bone
    voxel; faces on the domain walls are not counted.

    Args:
        bone: (Z, Y, X) mask, nonzero = bone.

    Returns:
        uint8 (Z, Y, X): for each marrow voxel, how many of its 6 face neighbours are
        bone (0 on bone voxels).
    """
    b = np.asarray(bone).astype(bool)
    if b.ndim != 3:
        raise ValueError(f"bone must be 3-D (Z, Y, X), got shape {b.shape}")
    faces = np.zeros(b.shape, np.uint8)
    marrow = ~b
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax] = slice(0, -1)
        hi[ax] = slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        faces[lo] += marrow[lo] & b[hi]
        faces[hi] += marrow[hi] & b[lo]
    return faces


@nb.njit(cache=True)
def _faces_near(faces, zyx, r):
    """Mark the voxels within Chebyshev distance r of any cell, then sum faces there."""
    Z, Y, X = faces.shape
    mark = np.zeros(faces.shape, np.uint8)
    for i in range(zyx.shape[0]):
        z0 = max(zyx[i, 0] - r, 0)
        z1 = min(zyx[i, 0] + r, Z - 1)
        y0 = max(zyx[i, 1] - r, 0)
        y1 = min(zyx[i, 1] + r, Y - 1)
        x0 = max(zyx[i, 2] - r, 0)
        x1 = min(zyx[i, 2] + r, X - 1)
        for z in range(z0, z1 + 1):
            for y in range(y0, y1 + 1):
                for x in range(x0, x1 + 1):
                    mark[z, y, x] = 1
    near = 0
    for z in range(Z):
        for y in range(Y):
            for x in range(X):
                if mark[z, y, x]:
                    near += faces[z, y, x]
    return near


def surface_fraction_near(bone: np.ndarray, zyx: np.ndarray, radius_vox: int) -> float:
    """Fraction of the bone surface covered by cells (Oc.S/BS, Ob.S/BS in 3D).

    A bone-surface face (see :func:`bone_surface_faces`) is covered when its marrow voxel
    lies within Chebyshev distance ``radius_vox`` of a cell (the (2r+1)^3 box around the
    cell, as the resorption kernel uses).

    Args:
        bone: (Z, Y, X) mask, nonzero = bone.
        zyx: (N, 3) integer cell positions; positions outside the domain cover only the
            part of their box inside it.
        radius_vox: Chebyshev radius in voxels (>= 0).

    Returns:
        Covered faces / all bone-surface faces; NaN when there is no bone surface.
    """
    if radius_vox < 0:
        raise ValueError(f"radius_vox must be >= 0, got {radius_vox}")
    faces = bone_surface_faces(bone)
    total = int(faces.sum(dtype=np.int64))
    if total == 0:
        return float("nan")
    pos = np.ascontiguousarray(np.asarray(zyx, dtype=np.int64).reshape(-1, 3))
    return _faces_near(faces, pos, int(radius_vox)) / total


def count_per_surface(n_cells: float, bs_um2: float) -> float:
    """Cells per mm^2 of 3D bone surface (``n_oc_per_bs_per_mm2`` for osteoclasts).

    2D histomorphometry reports N.Oc/B.Pm per mm of bone perimeter, which has no 3D
    counterpart; in 3D the count is taken per mm^2 of bone surface area.

    Args:
        n_cells: number of cells on the surface.
        bs_um2: bone surface area in um^2 (e.g. ``trabecular_morphometry()["bs_um2"]``).

    Returns:
        Cells per mm^2; NaN when ``bs_um2`` is not positive.
    """
    if not (np.isfinite(bs_um2) and bs_um2 > 0):
        return float("nan")
    return float(n_cells) / (bs_um2 * 1e-6)
