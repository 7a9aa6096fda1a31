"""Local thickness, bone surface and 3D histomorphometry on geometries with known answers.

Thickness convention (niche.core.morphometry docstring, = BoneJ): diameter = 2 x the distance
from a voxel centre to the nearest background voxel centre, no +1 correction; beyond the
array edge is not background.
"""
import warnings

import numpy as np
import pytest
from scipy import ndimage

from niche.core.lattice import generate_bone, marrow_face_count
from niche.core.morphometry import (
    _DIR_CLASS,
    _DIRS,
    _containment_tables,
    _crofton_transitions,
    _distance_ridge,
    _paint_spheres,
    _ridge_flat,
    _ridge_in_order,
    _squared_edt,
    bone_surface_area_um2,
    bone_surface_faces,
    count_per_surface,
    local_thickness,
    surface_fraction_near,
    trabecular_morphometry,
)

VOX = 10.0  # um


def _offsets(n: int) -> np.ndarray:
    """Voxel-centre coordinates relative to the centre of voxel n // 2."""
    return np.arange(n) - n // 2


def ball(d: int, pad: int = 3) -> np.ndarray:
    """Ball of diameter d voxels centred on a voxel centre (voxels with centre within d/2)."""
    i = _offsets(d + 2 * pad + 1)
    r2 = i[:, None, None] ** 2 + i[None, :, None] ** 2 + i[None, None, :] ** 2
    return (r2 <= (d / 2) ** 2).astype(np.uint8)


def rod(d: int, length: int = 12, pad: int = 3) -> np.ndarray:
    """Cylinder of diameter d along x, spanning the domain (so it has no ends)."""
    i = _offsets(d + 2 * pad + 1)
    disk = i[:, None] ** 2 + i[None, :] ** 2 <= (d / 2) ** 2
    return np.repeat(disk[:, :, None], length, axis=2).astype(np.uint8)


def plate(t: int, margin: int = 5, side: int = 10) -> np.ndarray:
    """Slab t voxels thick across z, spanning the domain in y and x."""
    b = np.zeros((t + 2 * margin, side, side), np.uint8)
    b[margin:margin + t] = 1
    return b


def brute_force_thickness(m: np.ndarray) -> np.ndarray:
    """The definition itself: max over every structure voxel's sphere that holds x."""
    edt = ndimage.distance_transform_edt(m)
    a = np.rint(edt * edt).astype(np.int64)
    grid = np.indices(m.shape).reshape(3, -1).T
    best = np.zeros(m.size, np.int64)
    for p in np.argwhere(m):
        inside = ((grid - p) ** 2).sum(1) <= a[tuple(p)]
        best[inside] = np.maximum(best[inside], a[tuple(p)])
    return np.where(m, 2.0 * np.sqrt(best.reshape(m.shape)), 0.0)


# ---------------------------------------------------------------- local thickness

def test_matches_definition_on_random_shapes():
    # ridge reduction + largest-first painting give exactly the all-spheres definition
    rng = np.random.default_rng(0)
    for _ in range(8):
        m = ndimage.gaussian_filter(rng.standard_normal((12, 11, 10)), 1.5) > rng.uniform(-0.4, 0.4)
        if m.all() or not m.any():
            continue
        for mask in (m, ~m):
            np.testing.assert_allclose(local_thickness(mask, 1.0), brute_force_thickness(mask),
                                       atol=1e-5)  # float32 rounding only



def _ridge(mask):
    """The painting input local_thickness builds: mask, order and the ridge spheres."""
    m = np.ascontiguousarray(mask, dtype=bool)
    edt = ndimage.distance_transform_edt(m)
    a = np.rint(edt * edt).astype(np.int64)
    a[~m] = 0
    rz, ry, rx, ra = _distance_ridge(a, _containment_tables(int(a.max())))
    return m, np.argsort(-ra, kind="stable"), rz, ry, rx, ra


def _paint_in_order(m, order, rz, ry, rx, ra):
    """What the serial painter computes, without its bookkeeping: spheres one after the
    other in ``order``, each filling the mask voxels that no earlier sphere reached."""
    out = np.zeros(m.shape, np.int64)
    for k in order:
        c, v = np.array([rz[k], ry[k], rx[k]]), int(ra[k])
        r = int(np.sqrt(v))
        lo, hi = np.maximum(c - r, 0), np.minimum(c + r + 1, m.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        d = np.ogrid[box]
        inside = ((d[0] - c[0]) ** 2 + (d[1] - c[1]) ** 2 + (d[2] - c[2]) ** 2 <= v)
        free = inside & m[box] & (out[box] == 0)
        out[box][free] = v
    return out


def test_parallel_painting_is_identical_to_serial():
    """_paint_spheres (parallel over planes of bricks) paints every voxel with the first
    sphere in order that reaches it, as the serial pass does, for any number of chunks and
    threads; local_thickness is bit-identical across thread counts."""
    import numba
    rng = np.random.default_rng(3)
    masks = []
    for shape, sigma in (((37, 41, 29), 2.5), ((37, 41, 29), 1.5), ((13, 50, 22), 3.5)):
        g = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
        m = g / g.std() > rng.uniform(-0.6, 0.6)
        masks += [m, ~m]
    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    saved = numba.get_num_threads()
    try:
        for m in masks:
            args = _ridge(m)
            assert args[5].max() >= 9  # spheres that span several planes of bricks
            ref = _paint_in_order(*args)
            maps = []
            for nt in threads:
                numba.set_num_threads(nt)
                for nchunk in (1, 2, 3, 5, 64):
                    np.testing.assert_array_equal(_paint_spheres(*args, nchunk), ref)
                maps.append(local_thickness(m, VOX))
            assert all(lt.tobytes() == maps[0].tobytes() for lt in maps)
            np.testing.assert_array_equal(maps[0][m], (2 * VOX * np.sqrt(ref[m])).astype(np.float32))
    finally:
        numba.set_num_threads(saved)


def _random_masks(rng, n, max_side=20):
    """Small masks of every kind: smooth blobs, salt noise, a few background voxels."""
    for it in range(n):
        shape = tuple(int(s) for s in rng.integers(1, max_side, 3))
        kind = it % 3
        if kind == 0:
            m = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) > rng.uniform(-0.6, 0.6)
        elif kind == 1:
            m = rng.random(shape) < rng.uniform(0.3, 1.0)
        else:
            m = np.ones(shape, bool)
            for _ in range(rng.integers(1, 4)):
                m[tuple(rng.integers(0, s) for s in shape)] = False
        yield np.ascontiguousarray(m)


def test_squared_edt_is_scipys_exactly():
    # the integer EDT equals rint(scipy EDT ** 2): the same spheres, the same map
    rng = np.random.default_rng(11)
    for m in _random_masks(rng, 150):
        if m.all():
            continue
        edt = ndimage.distance_transform_edt(m)
        ref = np.rint(edt * edt).astype(np.int64)
        a = _squared_edt(m)
        assert a.dtype == np.int32
        np.testing.assert_array_equal(a, ref)
    # squared distances past int32: the int64 path
    m = np.ones((1, 2, 46342), bool)
    m[0, 0, 0] = False
    edt = ndimage.distance_transform_edt(m)
    a = _squared_edt(m)
    assert a.dtype == np.int64 and a.max() == 46341 ** 2 + 1
    np.testing.assert_array_equal(a, np.rint(edt * edt).astype(np.int64))


def _ridge_by_definition(a, need):
    """The 26-neighbour containment rule, voxel by voxel (C order)."""
    Z, Y, X = a.shape
    al = a.tolist()
    keep = []
    for z, y, x in np.argwhere(a > 0).tolist():
        v = al[z][y][x]
        inside = False
        for dz, dy, dx in np.ndindex(3, 3, 3):
            zz, yy, xx = z + dz - 1, y + dy - 1, x + dx - 1
            c = abs(dz - 1) + abs(dy - 1) + abs(dx - 1) - 1
            if c < 0 or not (0 <= zz < Z and 0 <= yy < Y and 0 <= xx < X):
                continue
            inside |= al[zz][yy][xx] >= need[c, v]
        if not inside:
            keep.append((z, y, x, v))
    return np.array(keep, np.int64).reshape(-1, 4).T


def test_distance_ridge_is_the_containment_rule():
    rng = np.random.default_rng(12)
    for m in _random_masks(rng, 60, max_side=12):
        if m.all() or not m.any():
            continue
        a = _squared_edt(m)
        need = _containment_tables(int(a.max()))
        got = _distance_ridge(a, need)
        ref = _ridge_by_definition(a, need)
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g, r)
        # painting order: squared radius descending, C order among equals
        order = np.argsort(-got[3], kind="stable")
        for g, r in zip(_ridge_in_order(a, _ridge_flat(a, need), np.int32), got):
            np.testing.assert_array_equal(g, r[order])


def _crofton_by_definition(b):
    """The clamped pair loop: pairs (p, p + u) over the array and one step past each wall
    (wall voxels replicated), half weight per wall straddled."""
    Z, Y, X = b.shape
    dims = (Z, Y, X)
    counts = np.zeros(3)
    for u, cls in zip(_DIRS, _DIR_CLASS):
        rng_ = [range(0, d) if s == 0 else (range(-1, d) if s == 1 else range(0, d + 1))
                for d, s in zip(dims, u)]
        for p in np.ndindex(*[len(r) for r in rng_]):
            q = [r[i] for r, i in zip(rng_, p)]
            w = 1.0
            for i in range(3):
                if u[i] != 0 and q[i] in (rng_[i][0], rng_[i][-1]):
                    w *= 0.5
            p0 = tuple(min(max(q[i], 0), dims[i] - 1) for i in range(3))
            p1 = tuple(min(max(q[i] + u[i], 0), dims[i] - 1) for i in range(3))
            if b[p0] != b[p1]:
                counts[cls] += w
    return counts


def test_crofton_counts_by_definition():
    rng = np.random.default_rng(13)
    for _ in range(40):
        shape = tuple(int(s) for s in rng.integers(1, 7, 3))
        b = (rng.random(shape) < rng.uniform(0, 1)).astype(np.uint8)
        np.testing.assert_array_equal(_crofton_transitions(b, _DIRS, _DIR_CLASS),
                                      _crofton_by_definition(b))


def test_morphometry_means_are_those_of_the_map():
    # Tb.Th and Tb.Sp are the float64 means of the float32 map over bone and marrow,
    # exactly
    b = generate_bone((24, 26, 22), VOX, 0.2, 50.0, np.random.default_rng(7)).astype(bool)
    m = trabecular_morphometry(b, VOX)
    assert m["tb_th_um"] == float(local_thickness(b, VOX)[b].mean(dtype=np.float64))
    assert m["tb_sp_um"] == float(local_thickness(~b, VOX)[~b].mean(dtype=np.float64))
    # the same for the mask in Fortran order
    assert trabecular_morphometry(np.asfortranarray(b), VOX) == m


@pytest.mark.parametrize("t", range(2, 9))
def test_plate_thickness(t):
    b = plate(t)
    lt = local_thickness(b, VOX)
    # BoneJ convention, exact: t for even t, t + 1 for odd t (so within 1 voxel of t)
    expect = (t + t % 2) * VOX
    assert np.all(lt[b > 0] == pytest.approx(expect, abs=1e-3))
    assert np.all(lt[b == 0] == 0)
    m = trabecular_morphometry(b, VOX)
    assert m["tb_th_um"] == pytest.approx(expect, abs=1e-3)
    assert abs(m["tb_th_um"] - t * VOX) <= VOX  # within 1 voxel
    # Tb.N = BV/TV / Tb.Th, in 1/mm
    assert m["tb_n_per_mm"] == pytest.approx(m["bv_tv"] / m["tb_th_um"] * 1000.0)


@pytest.mark.parametrize("gap", range(3, 13))
def test_gap_between_plates(gap):
    # two 3-voxel plates touching the z walls; the marrow is only the gap between them
    b = np.zeros((6 + gap, 8, 8), np.uint8)
    b[:3] = 1
    b[3 + gap:] = 1
    m = trabecular_morphometry(b, VOX)
    # Tb.Sp = gap for even gap, gap + 1 for odd: within 1 voxel
    assert m["tb_sp_um"] == pytest.approx((gap + gap % 2) * VOX, abs=1e-3)
    assert abs(m["tb_sp_um"] - gap * VOX) <= VOX


def test_plate_on_wall_reads_mirrored():
    # beyond the array is not background (BoneJ): a 3-voxel plate on a wall reads as 6
    b = np.zeros((12, 8, 8), np.uint8)
    b[:3] = 1
    assert local_thickness(b, 1.0)[b > 0] == pytest.approx(6.0)


@pytest.mark.parametrize("d", range(6, 13))
def test_rod_thickness(d):
    b = rod(d)
    tb_th = trabecular_morphometry(b, VOX)["tb_th_um"]
    # within 10 % of d, or 1 voxel where that is larger: odd widths read up to +1 voxel,
    # as odd plates do (d = 9 reads 10 voxels, +11 %); all other d are within 6 %
    assert abs(tb_th - d * VOX) <= max(0.1 * d * VOX, VOX)
    if d != 9:
        assert abs(tb_th / (d * VOX) - 1) < 0.1


@pytest.mark.parametrize("d", range(8, 17))
def test_ball_thickness_and_surface(d):
    b = ball(d)
    lt = local_thickness(b, VOX)[b > 0]
    # every voxel within 1 voxel of d (measured: d + 0.1 .. d + 0.33 voxels)
    assert np.all(np.abs(lt - d * VOX) <= VOX)
    m = trabecular_morphometry(b, VOX)
    # BS/BV = 6/d within 10 % (measured within 5 %); BV is the voxel count
    assert m["bs_bv_per_mm"] / 1000.0 == pytest.approx(6.0 / (d * VOX), rel=0.10)


@pytest.mark.parametrize("d", [8, 12, 16])
def test_ball_between_voxel_centres_reads_thinner(d):
    # centred on a voxel corner, the largest voxel-centred sphere is smaller: the known
    # BoneJ discretisation bias, 1.2..1.6 voxels here; stays within 2 voxels
    n = d + 6
    i = np.arange(n) + 0.5 - n / 2
    b = (i[:, None, None] ** 2 + i[None, :, None] ** 2 + i[None, None, :] ** 2 <= (d / 2) ** 2)
    lt = local_thickness(b, 1.0)[b]
    assert np.all((lt < d - 1.0) & (lt > d - 2.0))


@pytest.mark.parametrize("t", [2, 3, 5, 8])
def test_plate_surface(t):
    b = plate(t)
    m = trabecular_morphometry(b, VOX)
    # the plate spans y and x: only its two faces are surface, BS/BV = 2/t within 10 %
    # (axis-aligned faces read -6.1 %, the Crofton weights' lower bound)
    assert m["bs_bv_per_mm"] / 1000.0 == pytest.approx(2.0 / (t * VOX), rel=0.10)
    assert m["bs_um2"] == pytest.approx(2 * 10 * 10 * VOX**2 * 0.938879, rel=1e-6)


def test_surface_of_tilted_plane():
    # half-space below the plane z + y = n - 1/2 (voxel-centre coordinates), normal
    # (0, 1, 1)/sqrt(2): true area (n - 1/2) sqrt(2) n. The Crofton weights read this
    # orientation -6.1 %; where the plane meets the walls the replicated wall voxels add
    # about -30/n % (-0.6 % at n = 48): expect -6.7 %, assert -7 % .. -6 %
    n = 48
    z, y, _ = np.indices((n, n, n))
    area = bone_surface_area_um2(z + y < n, 1.0)
    assert -0.07 < area / ((n - 0.5) * np.sqrt(2) * n) - 1 < -0.06


def test_invariance_shift_transpose_flip():
    rng = np.random.default_rng(4)
    core = ndimage.gaussian_filter(rng.standard_normal((14, 12, 10)), 2.0) > 0.1
    core[[0, -1]] = False
    core[:, [0, -1]] = False
    core[:, :, [0, -1]] = False
    ref = trabecular_morphometry(np.pad(core, 4), VOX)
    lt_ref = local_thickness(core, VOX)
    # integer shifts inside a larger domain: the same numbers (rounding only)
    for off in [(0, 0, 0), (3, 1, 5), (7, 6, 2)]:
        big = np.zeros((30, 30, 30), bool)
        big[off[0]:off[0] + 14, off[1]:off[1] + 12, off[2]:off[2] + 10] = core
        lt = local_thickness(big, VOX)
        np.testing.assert_array_equal(lt[off[0]:off[0] + 14, off[1]:off[1] + 12,
                                         off[2]:off[2] + 10], lt_ref)
        assert trabecular_morphometry(big, VOX)["tb_th_um"] == pytest.approx(ref["tb_th_um"],
                                                                              rel=1e-9)
    # axis permutations and flips: the same map, moved (exact)
    for perm in [(1, 0, 2), (2, 1, 0), (1, 2, 0)]:
        np.testing.assert_array_equal(local_thickness(core.transpose(perm), VOX),
                                      lt_ref.transpose(perm))
    np.testing.assert_array_equal(local_thickness(core[::-1, :, ::-1], VOX), lt_ref[::-1, :, ::-1])
    # the whole readout, including BS (the Crofton weights are symmetric)
    moved = trabecular_morphometry(np.pad(core, 4).transpose(2, 0, 1)[:, ::-1], VOX)
    for k, v in ref.items():
        assert moved[k] == pytest.approx(v, rel=1e-9), k


def test_empty_and_full_masks_give_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no numpy warnings either
        e = trabecular_morphometry(np.zeros((6, 6, 6), np.uint8), VOX)
        f = trabecular_morphometry(np.ones((6, 6, 6), np.uint8), VOX)
        assert not local_thickness(np.zeros((4, 4, 4)), VOX).any()
        assert np.isnan(local_thickness(np.ones((4, 4, 4)), VOX)).all()
    assert e["bv_tv"] == 0.0 and e["bs_um2"] == 0.0
    for k in ("tb_th_um", "tb_sp_um", "tb_n_per_mm", "bs_bv_per_mm"):
        assert np.isnan(e[k]), k
    assert f["bv_tv"] == 1.0 and f["bs_um2"] == 0.0 and f["bs_bv_per_mm"] == 0.0
    for k in ("tb_th_um", "tb_sp_um", "tb_n_per_mm"):
        assert np.isnan(f[k]), k


def test_generated_bone_readouts_consistent():
    b = generate_bone((32, 32, 32), VOX, 0.15, 50.0, np.random.default_rng(2))
    m = trabecular_morphometry(b, VOX)
    assert set(m) == {"bv_tv", "tb_th_um", "tb_sp_um", "tb_n_per_mm", "bs_um2", "bs_bv_per_mm"}
    assert m["bv_tv"] == pytest.approx(0.15, abs=1e-3)
    # thickness of 5-voxel plates: 5 or 6 voxels (odd width, +1), allow 40..70 um
    assert 40.0 < m["tb_th_um"] < 70.0
    assert m["tb_sp_um"] > m["tb_th_um"]
    assert m["bs_bv_per_mm"] == pytest.approx(m["bs_um2"] / (b.sum() * VOX**3) * 1000.0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        local_thickness(np.ones((4, 4)), VOX)
    with pytest.raises(ValueError):
        local_thickness(np.ones((4, 4, 4)), 0.0)
    with pytest.raises(ValueError):
        surface_fraction_near(np.ones((4, 4, 4)), np.zeros((1, 3), int), -1)


# ---------------------------------------------------------------- histomorphometry

def test_bone_surface_faces():
    b = np.zeros((5, 5, 5), np.uint8)
    b[2, 2, 2] = 1
    f = bone_surface_faces(b)
    assert f.dtype == np.uint8 and f.sum() == 6 and f[2, 2, 2] == 0
    assert f[1, 2, 2] == 1 and f[2, 2, 3] == 1
    # a marrow voxel in a concave corner touches 3 bone faces
    c = np.ones((4, 4, 4), np.uint8)
    c[1:, 1:, 1:] = 0
    assert bone_surface_faces(c)[1, 1, 1] == 3
    # total = interior bone/marrow faces; the walls are no surface
    g = generate_bone((16, 16, 16), VOX, 0.2, 40.0, np.random.default_rng(1))
    assert int(bone_surface_faces(g).sum()) == marrow_face_count(g)


def test_surface_fraction_near_by_hand():
    # bone: z = 0, 1 of a (6, 5, 7) domain; the surface is the 5 x 7 = 35 faces under the
    # marrow layer z = 2 (walls are no surface). Chebyshev radius: exact counts.
    b = np.zeros((6, 5, 7), np.uint8)
    b[:2] = 1
    assert surface_fraction_near(b, np.zeros((0, 3), int), 1) == 0.0
    # cell at (3, 2, 3), r = 1: box z 2..4, y 1..3, x 2..4 -> 3 x 3 faces
    assert surface_fraction_near(b, np.array([[3, 2, 3]]), 1) == pytest.approx(9 / 35)
    # cell in the corner (2, 0, 0): box clipped to y 0..1, x 0..1 -> 4 faces
    assert surface_fraction_near(b, np.array([[2, 0, 0]]), 1) == pytest.approx(4 / 35)
    # both (disjoint boxes), plus a duplicate cell: 13 faces
    cells = np.array([[3, 2, 3], [2, 0, 0], [3, 2, 3]])
    assert surface_fraction_near(b, cells, 1) == pytest.approx(13 / 35)
    # r = 0 covers the cell's own voxel only; a cell too far up covers nothing
    assert surface_fraction_near(b, np.array([[2, 4, 6]]), 0) == pytest.approx(1 / 35)
    assert surface_fraction_near(b, np.array([[5, 2, 3]]), 1) == 0.0
    # r = 2 from (2, 2, 3): y 0..4, x 1..5 -> 25 faces
    assert surface_fraction_near(b, np.array([[2, 2, 3]]), 2) == pytest.approx(25 / 35)
    # no bone surface: undefined
    assert np.isnan(surface_fraction_near(np.zeros((4, 4, 4)), np.array([[1, 1, 1]]), 1))


def test_surface_fraction_many_cells():
    g = generate_bone((24, 24, 24), VOX, 0.15, 50.0, np.random.default_rng(5))
    marrow = np.argwhere(g == 0)
    rng = np.random.default_rng(0)
    cells = marrow[rng.choice(len(marrow), 300, replace=False)]
    f1 = surface_fraction_near(g, cells, 1)
    f2 = surface_fraction_near(g, cells, 2)
    assert 0.0 < f1 <= f2 <= 1.0
    assert surface_fraction_near(g, marrow, 0) == pytest.approx(1.0)  # every face covered


def test_count_per_surface():
    assert count_per_surface(10, 1.0e6) == pytest.approx(10.0)  # 1 mm^2 = 1e6 um^2
    assert count_per_surface(3, 2.5e5) == pytest.approx(12.0)
    assert np.isnan(count_per_surface(3, 0.0))
    assert np.isnan(count_per_surface(3, float("nan")))
