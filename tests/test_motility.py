"""Tests of the counter-based RNG and the motility / occupancy kernels.

Statistical tests use fixed seeds, so they are deterministic; the tolerances
(stated next to each assertion, mostly in standard errors) are chosen so that
a correct kernel passes for almost every seed, while a biased or broken one
fails by a wide margin.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import niche
from niche.kernels import motility as mk
from niche.kernels import rng

# ----------------------------------------------------------------- helpers


@njit(cache=True)
def uniform_at(seed, stream, step, counter, j):
    """One uniform for the full index tuple, from the kernels' own primitives."""
    return rng.uniform(rng.counter_key(rng.step_key(seed, stream, step), counter), j)


@njit(cache=True)
def _draws(seed, stream, step, counters, j, gaussian):
    k = rng.step_key(seed, stream, step)
    out = np.empty(counters.shape[0], dtype=np.float64)
    for i in range(counters.shape[0]):
        ck = rng.counter_key(k, counters[i])
        out[i] = rng.normal(ck, j) if gaussian else rng.uniform(ck, j)
    return out


def uniform_array(seed, stream, step, counters, j):
    """Uniforms for many counters at one draw index (float64 array)."""
    return _draws(seed, stream, step, counters, j, False)


def normal_array(seed, stream, step, counters, j):
    """Standard normals for many counters (draw indices ``j``, ``j+1``)."""
    return _draws(seed, stream, step, counters, j, True)


def make_state(shape, n, wall_frac=0.0, seed=0, hop=(0.2, 1.0), pers=(0.0, 1.0),
               chemo=(0.0, 0.0)):
    """Random wall voxels and n cells at distinct free voxels."""
    r = np.random.default_rng(seed)
    wall = (r.random(shape) < wall_frac).astype(np.uint8)
    free = np.flatnonzero(wall.ravel() == 0)
    pos = r.choice(free, n, replace=False)
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(pos, shape))
    alive = np.ones(n, np.uint8)
    cell_id = (r.permutation(n) * 7 + 3).astype(np.int64)
    d = r.normal(size=(3, n))
    d /= np.linalg.norm(d, axis=0)
    st = dict(
        z=z, y=y, x=x, alive=alive, cell_id=cell_id,
        dirz=d[0].astype(np.float32), diry=d[1].astype(np.float32),
        dirx=d[2].astype(np.float32),
        hop_prob=r.uniform(*hop, n).astype(np.float32),
        persistence=r.uniform(*pers, n).astype(np.float32),
        chemo_strength=r.uniform(*chemo, n).astype(np.float32),
        gradz=np.zeros(n, np.float32), grady=np.zeros(n, np.float32),
        gradx=np.zeros(n, np.float32),
        occ=np.zeros(shape, np.int32), wall=wall,
    )
    assert mk.rebuild_occupancy(z, y, x, alive, st["occ"]) == 0
    return st


ARGS = ("z", "y", "x", "alive", "cell_id", "dirz", "diry", "dirx", "hop_prob",
        "persistence", "chemo_strength", "gradz", "grady", "gradx", "occ", "wall")


def step(st, seed, t, kernel=mk.move_cells, substep=0):
    order = mk.shuffled_order(st["alive"], st["cell_id"], seed, t)
    return kernel(*(st[k] for k in ARGS), seed, t, order, substep)


def state_digest(st):
    h = hashlib.sha256()
    for k in ("z", "y", "x", "dirz", "diry", "dirx", "occ"):
        h.update(np.ascontiguousarray(st[k]).tobytes())
    return h.hexdigest()


def open_run(shape, n, centre_box, persistence, chemo, grad, steps, seed, hop=1.0):
    """Cells in an open lattice, started inside ``centre_box`` (half-widths);
    returns displacement (n, 3) and the final state."""
    r = np.random.default_rng(seed)
    c = np.array(shape) // 2
    hw = np.array(centre_box)
    box = [np.arange(c[i] - hw[i], c[i] + hw[i]) for i in range(3)]
    zz, yy, xx = np.meshgrid(*box, indexing="ij")
    flat = np.ravel_multi_index((zz.ravel(), yy.ravel(), xx.ravel()), shape)
    pos = r.choice(flat, n, replace=False)
    st = make_state(shape, 0)
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(pos, shape))
    d = r.normal(size=(3, n))
    d /= np.linalg.norm(d, axis=0)
    st.update(
        z=z, y=y, x=x, alive=np.ones(n, np.uint8), cell_id=np.arange(n, dtype=np.int64),
        dirz=d[0].astype(np.float32), diry=d[1].astype(np.float32),
        dirx=d[2].astype(np.float32), hop_prob=np.full(n, hop, np.float32),
        persistence=np.full(n, persistence, np.float32),
        chemo_strength=np.full(n, chemo, np.float32),
        gradz=np.full(n, grad[0], np.float32), grady=np.full(n, grad[1], np.float32),
        gradx=np.full(n, grad[2], np.float32), occ=np.zeros(shape, np.int32),
        wall=np.zeros(shape, np.uint8))
    assert mk.rebuild_occupancy(z, y, x, st["alive"], st["occ"]) == 0
    p0 = np.stack([z, y, x], 1).astype(np.int64)
    for t in range(steps):
        step(st, seed, t)
    p1 = np.stack([st["z"], st["y"], st["x"]], 1).astype(np.int64)
    # the runs are sized so that no cell reaches the boundary
    assert p1.min() > 0 and np.all(p1.max(0) < np.array(shape) - 1)
    return p1 - p0, st


# ----------------------------------------------------------------- RNG


@njit
def _draw_matrix(seed, stream, step_, counters, ndraw):
    k = rng.step_key(seed, stream, step_)
    out = np.empty((counters.shape[0], ndraw))
    for i in range(counters.shape[0]):
        ck = rng.counter_key(k, counters[i])
        for j in range(ndraw):
            out[i, j] = rng.uniform(ck, j)
    return out


@njit
def _unit_vectors(seed, counters):
    k = rng.step_key(seed, 5, 0)
    out = np.empty((counters.shape[0], 3))
    for i in range(counters.shape[0]):
        out[i, 0], out[i, 1], out[i, 2] = rng.unit_vector(rng.counter_key(k, counters[i]), 0)
    return out


@njit
def _raw(ckey, j):
    return rng.rand_u64(ckey, j)


@njit
def _raw_grid(seeds, steps, counters, ndraw):
    out = np.empty(seeds.size * steps.size * counters.size * ndraw, np.uint64)
    i = 0
    for a in seeds:
        for t in steps:
            k = rng.step_key(a, 1, t)
            for c in counters:
                ck = rng.counter_key(k, c)
                for j in range(ndraw):
                    out[i] = rng.rand_u64(ck, j)
                    i += 1
    return out


def chi2_uniform(u, bins):
    h, _ = np.histogram(u, bins=bins, range=(0.0, 1.0))
    e = u.size / bins
    return float(((h - e) ** 2 / e).sum())


def test_rng_known_answer_and_purity():
    # draw j of key c is output j+1 of SplitMix64 started at state c; the
    # published first outputs for state 0 are:
    assert _raw(np.uint64(0), 0) == 0xE220A8397B1DCDAF
    assert _raw(np.uint64(0), 1) == 0x6E789E6AA1B965F4
    # a pure function of its integer arguments
    a = uniform_at(11, 2, 3, 4, 5)
    assert a == uniform_at(11, 2, 3, 4, 5)
    assert a != uniform_at(11, 2, 3, 4, 6) != uniform_at(11, 2, 3, 5, 5)
    assert uniform_at(11, 2, 3, 4, 5) != uniform_at(12, 2, 3, 4, 5)
    assert uniform_at(11, 2, 3, 4, 5) != uniform_at(11, 1, 3, 4, 5)
    assert uniform_at(11, 2, 3, 4, 5) != uniform_at(11, 2, 4, 4, 5)
    # negative / large integers are accepted (two's complement)
    assert 0.0 <= uniform_at(-1, 2, -3, -(2**62), 0) < 1.0


def test_rng_uniform_statistics():
    n = 1_000_000
    u = uniform_array(2024, rng.STREAM_USER, 0, np.arange(n, dtype=np.int64), 0)
    assert u.min() >= 0.0 and u.max() < 1.0
    se_mean = np.sqrt(1 / 12 / n)
    assert abs(u.mean() - 0.5) < 5 * se_mean                     # 5 SE
    se_var = np.sqrt((1 / 80 - 1 / 144) / n)                       # var of (u-1/2)^2
    assert abs(u.var() - 1 / 12) < 5 * se_var                     # 5 SE
    # chi-square, 100 bins (99 dof: mean 99, sd 14): reject above 99 + 5 sd
    assert chi2_uniform(u, 100) < 170
    # low bits are as good: fractional part of u * 2**20
    assert chi2_uniform((u * 2**20) % 1.0, 100) < 170
    # along the draw index of one counter (a SplitMix64 sequence)
    v = _draw_matrix(1, 2, 3, np.array([17], np.int64), 200_000)[0]
    assert chi2_uniform(v, 100) < 170
    assert abs(v.mean() - 0.5) < 5 * np.sqrt(1 / 12 / v.size)


def test_rng_streams_do_not_overlap():
    # no raw 64-bit value repeats across neighbouring seeds, steps, counters
    # and draw indices (a shifted or shared sequence would repeat values)
    v = _raw_grid(np.arange(2), np.arange(3), np.arange(2000), 8)
    assert np.unique(v).size == v.size


def test_rng_independence_of_neighbouring_counters():
    n = 400_000
    c = np.arange(n, dtype=np.int64)
    m = _draw_matrix(7, 1, 0, c, 2)            # draws 0 and 1 of counters 0..n-1
    m_next = _draw_matrix(7, 1, 1, c, 1)[:, 0]  # next step
    m_seed = _draw_matrix(8, 1, 0, c, 1)[:, 0]  # next seed
    lim = 5 / np.sqrt(n)                       # 5 SE of a correlation coefficient
    pairs = {
        "counter c vs c+1": (m[:-1, 0], m[1:, 0]),
        "draw 0 vs draw 1": (m[:, 0], m[:, 1]),
        "step t vs t+1": (m[:, 0], m_next),
        "seed s vs s+1": (m[:, 0], m_seed),
    }
    for name, (a, b) in pairs.items():
        r = np.corrcoef(a, b)[0, 1]
        assert abs(r) < lim, (name, r)
        # joint distribution: 10 x 10 chi-square (99 dof), reject above 170
        h, _, _ = np.histogram2d(a, b, bins=10, range=[[0, 1], [0, 1]])
        e = a.size / 100
        assert ((h - e) ** 2 / e).sum() < 170, name


def test_rng_normal_and_unit_vectors():
    n = 500_000
    g = normal_array(3, rng.STREAM_USER, 0, np.arange(n, dtype=np.int64), 0)
    assert abs(g.mean()) < 5 / np.sqrt(n)
    assert abs(g.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs((np.abs(g) > 2).mean() - 0.0455) < 5 * np.sqrt(0.0455 * 0.9545 / n)
    v = _unit_vectors(9, np.arange(n, dtype=np.int64))
    assert np.abs(np.linalg.norm(v, axis=1) - 1).max() < 1e-8
    assert np.all(np.abs(v.mean(0)) < 5 * np.sqrt(1 / 3 / n))     # E v = 0
    m2 = (v ** 2).mean(0)                                         # E v_k^2 = 1/3
    assert np.all(np.abs(m2 - 1 / 3) < 5 * np.sqrt(4 / 45 / n))
    # each component is uniform on [-1, 1] (Archimedes), azimuth uniform
    for k in range(3):
        assert chi2_uniform((v[:, k] + 1) / 2, 100) < 170
    phi = (np.arctan2(v[:, 1], v[:, 2]) / (2 * np.pi)) % 1.0
    assert chi2_uniform(phi, 100) < 170


# ----------------------------------------------------------------- invariants


@pytest.mark.parametrize("kernel,steps", [(mk.move_cells, 500)])
def test_invariants_random_walls(kernel, steps):
    shape = (24, 24, 24)
    st = make_state(shape, 2000, wall_frac=0.2, seed=1, chemo=(0.0, 1.0))
    # some dead slots with garbage positions, which must never be touched
    dead = np.arange(0, 2000, 97)
    st["occ"].ravel()[np.ravel_multi_index((st["z"][dead], st["y"][dead], st["x"][dead]),
                                           shape)] = 0
    st["alive"][dead] = 0
    st["z"][dead] = -5
    r = np.random.default_rng(2)
    p_start = np.stack([st["z"], st["y"], st["x"]], 1).copy()
    total = 0
    for t in range(steps):
        # fresh per-cell gradients, some zero
        for k in ("gradz", "grady", "gradx"):
            st[k][:] = r.normal(size=2000) * (r.random(2000) < 0.8)
        total += step(st, 42, t, kernel)
        assert mk.check_invariants(st["z"], st["y"], st["x"], st["alive"], st["occ"],
                                   st["wall"]) == 0
        if t % 10 == 0:
            a = st["alive"] != 0
            flat = np.ravel_multi_index((st["z"][a], st["y"][a], st["x"][a]), shape)
            assert np.unique(flat).size == flat.size          # no shared voxel
            assert not st["wall"].ravel()[flat].any()         # no cell in a wall
            occ2 = np.empty_like(st["occ"])
            assert mk.rebuild_occupancy(st["z"], st["y"], st["x"], st["alive"], occ2) == 0
            assert np.array_equal(occ2, st["occ"])
    assert np.all(st["z"][dead] == -5)
    # cells really moved (a kernel that does nothing would pass the above)
    assert total > steps * 1000 * 0.1
    moved = np.abs(np.stack([st["z"], st["y"], st["x"]], 1) - p_start).sum(1)
    assert (moved[st["alive"] != 0] > 0).mean() > 0.9


def test_order_holding_dead_and_repeated_slots():
    st = make_state((16, 16, 16), 300, wall_frac=0.1, seed=3, hop=(1.0, 1.0))
    st["alive"][::5] = 0
    mk.rebuild_occupancy(st["z"], st["y"], st["x"], st["alive"], st["occ"])
    for t in range(50):
        order = np.concatenate([np.arange(300), np.arange(0, 300, 3)])  # dead + repeats
        mk.move_cells(*(st[k] for k in ARGS), 5, t, order)
        assert mk.check_invariants(st["z"], st["y"], st["x"], st["alive"], st["occ"],
                                   st["wall"]) == 0


# ----------------------------------------------------------------- hand-made moves


def one_cell(shape, pos, d, wall=(), others=()):
    n = 1 + len(others)
    st = make_state(shape, 0)
    z = np.array([pos[0]] + [o[0] for o in others], np.int32)
    y = np.array([pos[1]] + [o[1] for o in others], np.int32)
    x = np.array([pos[2]] + [o[2] for o in others], np.int32)
    w = np.zeros(shape, np.uint8)
    for v in wall:
        w[v] = 1
    st.update(z=z, y=y, x=x, alive=np.ones(n, np.uint8), cell_id=np.arange(n, dtype=np.int64),
              dirz=np.full(n, d[0], np.float32), diry=np.full(n, d[1], np.float32),
              dirx=np.full(n, d[2], np.float32),
              hop_prob=np.array([1.0] + [0.0] * (n - 1), np.float32),
              persistence=np.ones(n, np.float32), chemo_strength=np.zeros(n, np.float32),
              gradz=np.zeros(n, np.float32), grady=np.zeros(n, np.float32),
              gradx=np.zeros(n, np.float32), occ=np.zeros(shape, np.int32), wall=w)
    assert mk.rebuild_occupancy(z, y, x, st["alive"], st["occ"]) == 0
    return st


def pos(st, i=0):
    return int(st["z"][i]), int(st["y"][i]), int(st["x"][i])


def run1(st, t=0):
    return mk.move_cells(*(st[k] for k in ARGS), 0, t, np.arange(st["z"].size))


def test_hand_made_moves_and_fallback():
    # fully persistent cell along +x: one face hop per call
    st = one_cell((5, 5, 5), (2, 2, 0), (0, 0, 1))
    for t in range(4):
        assert run1(st, t) == 1
        assert pos(st) == (2, 2, t + 1)
    assert run1(st, 9) == 0 and pos(st) == (2, 2, 4)   # domain edge: stays
    # face hop blocked by a wall: no fallback for a face target
    st = one_cell((5, 5, 5), (2, 2, 2), (0, 0, 1), wall=[(2, 2, 3)])
    assert run1(st) == 0 and pos(st) == (2, 2, 2)
    # diagonal (0, 1, 1): both axes move (|d_y| = |d_x| = max) -> (2, 3, 3)
    s2 = 0.5 ** 0.5
    st = one_cell((5, 5, 5), (2, 2, 2), (0, s2, s2))
    assert run1(st) == 1 and pos(st) == (2, 3, 3)
    # diagonal blocked by a wall -> fallback face along the dominant axis
    # (tie y = x broken in z, y, x order -> +y)
    st = one_cell((5, 5, 5), (2, 2, 2), (0, s2, s2), wall=[(2, 3, 3)])
    assert run1(st) == 1 and pos(st) == (2, 3, 2)
    # diagonal blocked by a cell, fallback blocked by a wall -> stays
    st = one_cell((5, 5, 5), (2, 2, 2), (0, s2, s2), wall=[(2, 3, 2)], others=[(2, 3, 3)])
    assert run1(st) == 0 and pos(st) == (2, 2, 2) and pos(st, 1) == (2, 3, 3)
    assert mk.check_invariants(st["z"], st["y"], st["x"], st["alive"], st["occ"],
                               st["wall"]) == 0
    # zero direction with persistence 1: a random direction is drawn
    st = one_cell((5, 5, 5), (2, 2, 2), (0, 0, 0))
    assert run1(st) == 1
    assert abs(np.linalg.norm([st["dirz"][0], st["diry"][0], st["dirx"][0]]) - 1) < 1e-6


def test_serial_priority_follows_order():
    # two cells moving into the same voxel (2, 2, 2): the one listed first wins
    for first in (0, 1):
        st = one_cell((5, 5, 5), (2, 2, 1), (0, 0, 1), others=[(2, 2, 3)])
        st["hop_prob"][:] = 1.0
        st["dirx"][1] = -1.0
        order = np.array([first, 1 - first])
        assert mk.move_cells(*(st[k] for k in ARGS), 0, 0, order) == 1
        assert st["occ"][2, 2, 2] == first + 1
        # the winner moved onto the shared target, the other stayed
        assert st["x"][first] == 2 and st["x"][1 - first] in (1, 3)


def test_hop_probability_and_unlisted_cells():
    st = make_state((40, 40, 40), 1000, seed=4, hop=(0.3, 0.3))
    order = np.arange(0, 1000, 2)                 # only even slots may hop
    old = np.stack([st["z"], st["y"], st["x"]], 1).copy()
    old_dir = st["dirx"].copy()
    hops = mk.move_cells(*(st[k] for k in ARGS), 1, 0, order)
    new = np.stack([st["z"], st["y"], st["x"]], 1)
    moved = np.any(new != old, 1)
    assert not moved[1::2].any()                  # unlisted cells stay ...
    assert np.all(st["dirx"][1::2] != old_dir[1::2])  # ... but turn
    # hop fraction = hop_prob (sparse: collisions are rare); 5 SE
    assert abs(hops / 500 - 0.3) < 5 * np.sqrt(0.3 * 0.7 / 500) + 0.01
    assert hops == moved.sum()


# ----------------------------------------------------------------- statistics


def test_chemotaxis_drift():
    shape = (96, 96, 160)
    n, steps = 2000, 40
    dx, _ = open_run(shape, n, (16, 16, 16), 0.5, 0.6, (0.0, 0.0, 2.5), steps, seed=11)
    mean, se = dx.mean(0), dx.std(0, ddof=1) / np.sqrt(n)
    # drift up the gradient: at least 10 standard errors above 0 (observed
    # about 0.5 voxel / step, i.e. > 100 SE) ...
    assert mean[2] > 10 * se[2] and mean[2] > 0.2 * steps
    # ... and none across it: within 3 SE of 0
    assert abs(mean[0]) < 3 * se[0] and abs(mean[1]) < 3 * se[1]
    # no chemotaxis (same gradient, strength 0): x drift within 3 SE of 0
    dx0, _ = open_run(shape, n, (16, 16, 16), 0.5, 0.0, (0.0, 0.0, 2.5), steps, seed=11)
    m0, se0 = dx0.mean(0), dx0.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(m0) < 3 * se0)
    # a zero gradient gives no bias even with chemotaxis switched on
    dxz, _ = open_run(shape, n, (16, 16, 16), 0.5, 0.6, (0.0, 0.0, 0.0), steps, seed=12)
    assert np.all(np.abs(dxz.mean(0)) < 3 * dxz.std(0, ddof=1) / np.sqrt(n))


def test_persistence_increases_msd_and_isotropy():
    shape = (128, 128, 128)
    n, steps = 2000, 30
    d0, _ = open_run(shape, n, (12, 12, 12), 0.0, 0.0, (0, 0, 0), steps, seed=21)
    d9, _ = open_run(shape, n, (12, 12, 12), 0.9, 0.0, (0, 0, 0), steps, seed=21)
    msd0 = (d0 ** 2).sum(1).mean()
    msd9 = (d9 ** 2).sum(1).mean()
    # persistent walk: MSD ~ (1 + p) / (1 - p) times larger at long times,
    # > 4x after 30 steps
    assert msd9 > 4 * msd0
    # isotropy at p = 0: MSD components within 10 % of their mean
    # (relative SE of each ~ sqrt(2 / n) = 2 %)
    n_iso = 4000
    di, _ = open_run(shape, n_iso, (20, 20, 20), 0.0, 0.0, (0, 0, 0), 40, seed=22)
    comp = (di ** 2).mean(0)
    assert np.all(np.abs(comp / comp.mean() - 1) < 0.10), comp
    # and no drift
    assert np.all(np.abs(di.mean(0)) < 3 * di.std(0, ddof=1) / np.sqrt(n_iso))


# ----------------------------------------------------------------- determinism


def run_scenario(seed, kernel=mk.move_cells, steps=60):
    st = make_state((24, 24, 24), 2000, wall_frac=0.2, seed=1, chemo=(0.0, 1.0))
    st["gradx"][:] = 1.0
    for t in range(steps):
        step(st, seed, t, kernel)
    return st


def test_determinism_same_and_different_seed():
    a, b, c = run_scenario(5), run_scenario(5), run_scenario(6)
    for k in ("z", "y", "x", "dirz", "diry", "dirx", "occ"):
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(a["x"], c["x"])
    assert state_digest(a) == state_digest(b) != state_digest(c)
    # substeps draw different numbers
    st1 = make_state((16, 16, 16), 200, seed=2)
    st2 = make_state((16, 16, 16), 200, seed=2)
    step(st1, 1, 0, substep=0)
    step(st2, 1, 0, substep=1)
    assert state_digest(st1) != state_digest(st2)
    # shuffled_order: a permutation of the alive slots, depending on
    # (seed, step) and on the cell ids but not on the slots they sit in
    alive = np.ones(1000, np.uint8)
    alive[::7] = 0
    cid = np.arange(1000, dtype=np.int64) * 3
    o = mk.shuffled_order(alive, cid, 1, 2)
    assert np.array_equal(np.sort(o), np.flatnonzero(alive))
    assert not np.array_equal(o, mk.shuffled_order(alive, cid, 1, 3))
    assert not np.array_equal(o, mk.shuffled_order(alive, cid, 2, 2))
    perm = np.random.default_rng(0).permutation(1000)   # move cells to other slots
    o2 = mk.shuffled_order(alive[perm], cid[perm], 1, 2)
    assert np.array_equal(cid[o], cid[perm][o2])


_SUBPROCESS = textwrap.dedent("""
    import hashlib, numpy as np
    from tests.test_motility import run_scenario, state_digest
    from niche.kernels import motility as mk
    import numba
    print(numba.get_num_threads(), state_digest(run_scenario(5)))
""")


def test_determinism_across_processes_and_threads():
    root = Path(niche.__file__).resolve().parent.parent
    expected = state_digest(run_scenario(5))
    for threads in ("1", "2"):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
        env["NUMBA_NUM_THREADS"] = threads
        env.setdefault("OMP_WAIT_POLICY", "passive")  # speed only, see motility docs
        out = subprocess.run([sys.executable, "-c", _SUBPROCESS], cwd=root, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        n, digest = out.stdout.split()
        assert n == threads
        assert digest == expected


# ----------------------------------------------------------------- occupancy helpers


def test_rebuild_and_check_detect_conflicts():
    shape = (4, 4, 4)
    z = np.array([1, 1, 2, 9], np.int32)
    y = np.array([1, 1, 2, 0], np.int32)
    x = np.array([1, 1, 2, 0], np.int32)
    alive = np.array([1, 1, 1, 1], np.uint8)
    occ = np.zeros(shape, np.int32)
    wall = np.zeros(shape, np.uint8)
    # slots 0 and 1 share a voxel, slot 3 is outside
    assert mk.rebuild_occupancy(z, y, x, alive, occ) == 2
    assert occ[1, 1, 1] == 1 and occ[2, 2, 2] == 3 and np.count_nonzero(occ) == 2
    assert mk.check_invariants(z, y, x, alive, occ, wall) == 2
    alive[1] = alive[3] = 0
    assert mk.check_invariants(z, y, x, alive, occ, wall) == 0
    wall[2, 2, 2] = 1                                  # cell on a wall
    assert mk.check_invariants(z, y, x, alive, occ, wall) == 1
    wall[:] = 0
    occ[0, 0, 0] = 2                                   # stale entry (dead slot)
    assert mk.check_invariants(z, y, x, alive, occ, wall) == 1


def test_neighbour_free_voxel():
    shape = (3, 3, 3)
    occ = np.zeros(shape, np.int32)
    wall = np.ones(shape, np.uint8)
    z = np.array([1, 0, 2], np.int32)
    y = np.array([1, 0, 2], np.int32)
    x = np.array([1, 0, 2], np.int32)
    cid = np.array([10, 11, 12], np.int64)
    for s in range(3):
        wall[z[s], y[s], x[s]] = 0
        occ[z[s], y[s], x[s]] = s + 1
    wall[0, 1, 1] = 0                                  # the only free voxel
    occ0 = occ.copy()
    out = mk.neighbour_free_voxel(np.array([0, 1, 2]), z, y, x, cid, occ, wall, 1, 0)
    # the centre cell and the corner cell (0,0,0) both touch (0,1,1); the
    # first listed gets it, the others get -1; occ is left unchanged
    assert list(out) == [np.ravel_multi_index((0, 1, 1), shape), -1, -1]
    assert np.array_equal(occ, occ0)
    out = mk.neighbour_free_voxel(np.array([1, 0]), z, y, x, cid, occ, wall, 1, 0)
    assert list(out) == [np.ravel_multi_index((0, 1, 1), shape), -1]
    # open space: uniform over the 26 neighbours, deterministic in (seed, step)
    big = (5, 5, 5)
    occ = np.zeros(big, np.int32)
    occ[2, 2, 2] = 1
    wall = np.zeros(big, np.uint8)
    z1 = np.array([2], np.int32)
    picks = np.array([mk.neighbour_free_voxel(np.array([0]), z1, z1, z1, cid[:1], occ, wall,
                                              3, t)[0] for t in range(2600)])
    cnt = np.bincount(picks, minlength=125)
    nb = np.ravel_multi_index(tuple((2 + mk.NEIGHBOUR_OFFSETS).T), big)
    assert cnt.sum() == cnt[nb].sum() and np.all(cnt[nb] > 0)
    chi2 = ((cnt[nb] - 100) ** 2 / 100).sum()         # 25 dof: mean 25, sd 7
    assert chi2 < 25 + 5 * 7
    again = [mk.neighbour_free_voxel(np.array([0]), z1, z1, z1, cid[:1], occ, wall, 3, t)[0]
             for t in range(50)]
    assert np.array_equal(again, picks[:50])


def test_count_contacts():
    shape = (4, 4, 4)
    # cell 0 at the corner (0,0,0); neighbours: 1 (type 1), 2 (type 1, dead),
    # 3 (type 2); cell 4 (type 1) is two voxels away
    z = np.array([0, 1, 0, 0, 2], np.int32)
    y = np.array([0, 1, 1, 0, 0], np.int32)
    x = np.array([0, 1, 0, 1, 0], np.int32)
    alive = np.array([1, 1, 1, 1, 1], np.uint8)
    occ = np.zeros(shape, np.int32)
    assert mk.rebuild_occupancy(z, y, x, alive, occ) == 0
    alive[2] = 0
    occ[0, 1, 0] = 0
    t = np.array([0, 1, 1, 2, 1], np.int8)
    out = np.full(5, -9, np.int32)
    mk.count_contacts(z, y, x, alive, occ, t, 1, out)
    # type-1 neighbours -- 0: {1}; 1: {4}; 2: dead; 3: {1}; 4: {1}
    assert list(out) == [1, 1, 0, 1, 1]
    mk.count_contacts(z, y, x, alive, occ, t, 2, out)
    assert list(out) == [1, 1, 0, 0, 0]


def test_count_contacts_matches_brute_force_on_a_crowded_lattice():
    """Counting from the targets' side equals counting each cell's 26 neighbours."""
    rng = np.random.default_rng(5)
    shape = (9, 11, 7)
    n_vox = int(np.prod(shape))
    n = 400
    flat = rng.choice(n_vox, n, replace=False)
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(flat, shape))
    alive = (rng.random(n) < 0.9).astype(np.uint8)
    occ = np.zeros(shape, np.int32)
    assert mk.rebuild_occupancy(z, y, x, alive, occ) == 0
    code = rng.integers(0, 3, n).astype(np.int8)
    out = np.full(n, -9, np.int32)
    mk.count_contacts(z, y, x, alive, occ, code, np.int8(1), out)
    want = np.zeros(n, np.int64)
    for s in np.flatnonzero(alive):
        for t in np.flatnonzero(alive & (code == 1)):
            d = np.abs([z[s] - z[t], y[s] - y[t], x[s] - x[t]])
            if s != t and d.max() == 1:
                want[s] += 1
    assert want.max() >= 3
    np.testing.assert_array_equal(out, want)


# ----------------------------------------------------------------- the engine's tick


@pytest.mark.parametrize("nchunk", [1, 2, 3])
def test_move_tick_equals_substeps_of_move_cells(nchunk):
    """move_tick (planning only up to the last moving slot, serial or in parallel tasks)
    gives bit for bit the state of n_sub calls of move_cells."""
    shape = (20, 20, 20)
    n = 1500
    st = make_state(shape, n, wall_frac=0.15, seed=11, hop=(0.1, 1.0), chemo=(0.0, 1.0))
    r = np.random.default_rng(4)
    for k in ("gradz", "grady", "gradx"):
        st[k][:] = r.normal(size=n)
    st["hop_prob"][r.random(n) < 0.3] = 0.0            # resting cells between movers
    st["hop_prob"][-200:] = 0.0                         # a resting tail is not planned
    dead = np.arange(0, n, 13)
    st["alive"][dead] = 0
    mk.rebuild_occupancy(st["z"], st["y"], st["x"], st["alive"], st["occ"])
    ref = {k: v.copy() for k, v in st.items()}
    moving = np.flatnonzero(st["hop_prob"] > 0)
    end = int(moving[-1]) + 1
    assert end < n
    buf = mk.MoveBuffers(n)
    n_sub = 3
    for t in range(6):
        order = mk.shuffled_order(ref["alive"], ref["cell_id"], 9, t)
        want = sum(mk.move_cells(*(ref[k] for k in ARGS), 9, t, order, k)
                   for k in range(n_sub))
        got = mk.move_tick(*(st[k] for k in ARGS), np.uint64(9), np.int64(t), order, n_sub,
                           end, buf, nchunk)
        assert got == want > 0
        assert state_digest(st) == state_digest(ref)
        assert np.all(buf.plan == -1)                  # scratch left clean for the next tick


def test_move_tick_checks_lattice_size():
    st = make_state((4, 4, 4), 3)
    st["occ"] = np.zeros((2048, 1024, 1024), np.int32)[:1]  # a view: shape check only
    big = np.lib.stride_tricks.as_strided(st["occ"], (2048, 1024, 1024), (0, 0, 0))
    args = {**st, "occ": big}
    with pytest.raises(ValueError, match="32-bit"):
        mk.move_tick(*(args[k] for k in ARGS), np.uint64(1), np.int64(0),
                     np.arange(3), 1, 3, mk.MoveBuffers(3))
