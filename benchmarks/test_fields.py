"""Field solver against the machine's memory bandwidth and a numpy implementation."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from niche.core.fields import FieldSolver

from .conftest import QUICK, record, sizes


@numba.njit(parallel=True, cache=True)
def triad(a, b, c, s):
    for i in numba.prange(a.size):
        a[i] = b[i] + s * c[i]


def test_stream_triad(benchmark):
    """STREAM triad a = b + s c on float64 arrays far larger than cache (3 x 128 MB)."""
    n = sizes(1 << 24, 1 << 20)
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    triad(a, b, c, 3.0)
    record(benchmark, "stream", 24 * n, "byte", n, note="counts 24 B/element (no write-allocate)")
    benchmark(triad, a, b, c, 3.0)


def make_solver(n, S=8, dtype=np.float32, bone=True, seed=0):
    rng = np.random.default_rng(seed)
    fs = FieldSolver((n, n, n), [f"s{i}" for i in range(S)], [100.0] * S, [1e-3] * S,
                     10.0, 600.0, dtype=dtype, dense_rates=False)
    if bone:
        fs.set_solid((rng.random((n, n, n)) < 0.15).astype(np.uint8))
    fs.c[...] = rng.random(fs.c.shape).astype(dtype)
    fs.set_solid(fs.solid)
    return fs


@pytest.mark.parametrize("n", sizes([64, 128, 192], [16, 32]))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("bone", [True, False], ids=["bone", "open"])
def test_field_solver(benchmark, n, dtype, bone):
    fs = make_solver(n, dtype=dtype, bone=bone)
    fs.step(1)
    itemsize = np.dtype(dtype).itemsize
    # 3 sweeps, each reading and writing every value once
    record(benchmark, "field", fs.c.size, "substrate-voxel update", n**3,
           bytes_per_unit=6 * itemsize, dtype=np.dtype(dtype).name, bone=bone, n=n)
    benchmark(fs.step, 1)


def numpy_lod_step(c, r):
    """Straightforward numpy implicit-Euler LOD step (Thomas along each axis, vectorised
    over the other axes; no obstacles): the baseline for the field solver."""
    for ax in (1, 2, 3):
        a = np.moveaxis(c, ax, -1)
        n = a.shape[-1]
        diag = np.full(n, 1 + 2 * r)
        diag[0] = diag[-1] = 1 + r
        cp = np.empty(n)
        dp = np.empty_like(a)
        cp[0] = -r / diag[0]
        dp[..., 0] = a[..., 0] / diag[0]
        for i in range(1, n):
            m = diag[i] + r * cp[i - 1]
            cp[i] = -r / m
            dp[..., i] = (a[..., i] + r * dp[..., i - 1]) / m
        for i in range(n - 2, -1, -1):
            dp[..., i] -= cp[i] * dp[..., i + 1]
        a[...] = dp
    return c


@pytest.mark.parametrize("n", sizes([64, 128], [16]))
def test_field_numpy_baseline(benchmark, n):
    c = np.random.default_rng(0).random((8, n, n, n)).astype(np.float32)
    record(benchmark, "field_numpy", c.size, "substrate-voxel update", n**3, n=n)
    benchmark.pedantic(numpy_lod_step, args=(c, 0.6), rounds=3 if not QUICK else 1,
                       iterations=1)


@pytest.mark.parametrize("n_cells", sizes([100_000], [5_000]))
def test_secretion_uptake(benchmark, n_cells):
    n = sizes(100, 24)
    fs = make_solver(n)
    rng = np.random.default_rng(1)
    flat = rng.choice(n**3, n_cells, replace=False)
    flat.sort()
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(flat, (n, n, n)))
    sec, upt, vmax = (rng.random((n_cells, 8)).astype(np.float32) for _ in range(3))
    fs.react_cells(z, y, x, sec, upt, vmax)
    record(benchmark, "secretion", n_cells * 8, "cell-substrate update", n_cells)
    benchmark(fs.react_cells, z, y, x, sec, upt, vmax)
