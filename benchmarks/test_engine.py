"""Engine hot paths against in-run baselines.

Run: ``python -m pytest benchmarks/test_engine.py -q --benchmark-columns=min,median,rounds``
(set ``NUMBA_NUM_THREADS=2`` for the reference 2-thread figures).
"""
from __future__ import annotations

import mesa
import numpy as np
import pytest

from niche.fields import FieldSolver
from niche.kernels import motility as mot


def _solver(n, S=8, dtype=np.float32, bone_frac=0.15, seed=0):
    rng = np.random.default_rng(seed)
    fs = FieldSolver((n, n, n), [f"s{i}" for i in range(S)], [100.0] * S, [1e-3] * S,
                     10.0, 600.0, dtype=dtype)
    fs.set_solid((rng.random((n, n, n)) < bone_frac).astype(np.uint8))
    fs.c[...] = rng.random(fs.c.shape).astype(dtype)
    fs.set_solid(fs.solid)
    return fs


@pytest.mark.parametrize("n", [64, 128])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_field_step(benchmark, n, dtype):
    fs = _solver(n, dtype=dtype)
    fs.step(1)  # compile
    benchmark.extra_info["substrate_voxel_updates"] = fs.c.size
    benchmark(fs.step, 1)


def numpy_lod_step(c, r):
    """Straightforward numpy implicit-Euler LOD (no obstacles): the baseline."""
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


def test_field_step_numpy_baseline(benchmark):
    rng = np.random.default_rng(0)
    c = rng.random((8, 64, 64, 64)).astype(np.float32)
    benchmark.extra_info["substrate_voxel_updates"] = c.size
    benchmark(numpy_lod_step, c, 0.6)


def _cells(n_agents, n=128, seed=0):
    rng = np.random.default_rng(seed)
    wall = (rng.random((n, n, n)) < 0.15).astype(np.uint8)
    free = np.flatnonzero(wall.ravel() == 0)
    flat = np.sort(rng.choice(free, n_agents, replace=False))
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(flat, wall.shape))
    occ = np.zeros(wall.shape, np.int32)
    occ.ravel()[flat] = np.arange(1, n_agents + 1, dtype=np.int32)
    d = rng.standard_normal((3, n_agents)).astype(np.float32)
    d /= np.linalg.norm(d, axis=0)
    f32 = lambda v: np.full(n_agents, v, np.float32)  # noqa: E731
    g = rng.standard_normal((3, n_agents)).astype(np.float32)
    return dict(z=z, y=y, x=x, alive=np.ones(n_agents, np.uint8),
                cell_id=np.arange(n_agents, dtype=np.int64), dirz=d[0], diry=d[1], dirx=d[2],
                hop_prob=f32(0.8), persistence=f32(0.5), chemo_strength=f32(0.3),
                gradz=g[0], grady=g[1], gradx=g[2], occ=occ, wall=wall)


@pytest.mark.parametrize("n_agents", [10_000, 100_000, 1_000_000])
def test_move_cells(benchmark, n_agents):
    a = _cells(n_agents)
    order = mot.shuffled_order(a["alive"], a["cell_id"], np.uint64(1), np.int64(0))
    step = [0]

    def go():
        step[0] += 1
        mot.move_cells(*a.values(), np.uint64(1), np.int64(step[0]), order)

    go()
    benchmark.extra_info["agent_steps"] = n_agents
    benchmark(go)


class _Walker(mesa.Agent):
    def __init__(self, model, pos):
        super().__init__(model)
        self.pos = pos

    def step(self):
        m = self.model
        z, y, x = self.pos
        r = m.random
        nz, ny, nx = z + r.randint(-1, 1), y + r.randint(-1, 1), x + r.randint(-1, 1)
        n = m.n
        if 0 <= nz < n and 0 <= ny < n and 0 <= nx < n and not m.wall[nz, ny, nx] \
                and m.occ[nz, ny, nx] == 0:
            m.occ[z, y, x] = 0
            m.occ[nz, ny, nx] = 1
            self.pos = (nz, ny, nx)


class _MesaModel(mesa.Model):
    def __init__(self, n_agents, n=128):
        super().__init__(seed=1)
        a = _cells(n_agents, n)
        self.n, self.wall = n, a["wall"]
        self.occ = (a["occ"] > 0).astype(np.uint8)
        for i in range(n_agents):
            _Walker(self, (int(a["z"][i]), int(a["y"][i]), int(a["x"][i])))

    def step(self):
        self.agents.shuffle_do("step")


def test_move_mesa_baseline(benchmark):
    m = _MesaModel(100_000)
    benchmark.extra_info["agent_steps"] = 100_000
    benchmark.pedantic(m.step, rounds=3, iterations=1)
