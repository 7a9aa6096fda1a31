"""Movement with exclusion and chemotaxis against Mesa's own per-agent loop; handle
bookkeeping of births and deaths."""
from __future__ import annotations

import mesa
import numpy as np
import pytest

from niche.kernels import motility as mot

from .conftest import QUICK, record, sizes

N_LATTICE = sizes(128, 32)


def make_cells(n_agents, n=N_LATTICE, seed=0):
    rng = np.random.default_rng(seed)
    wall = (rng.random((n, n, n)) < 0.15).astype(np.uint8)
    free = np.flatnonzero(wall.ravel() == 0)
    flat = np.sort(rng.choice(free, n_agents, replace=False))
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(flat, wall.shape))
    occ = np.zeros(wall.shape, np.int32)
    occ.ravel()[flat] = np.arange(1, n_agents + 1, dtype=np.int32)
    d = rng.standard_normal((3, n_agents)).astype(np.float32)
    d /= np.linalg.norm(d, axis=0)
    g = rng.standard_normal((3, n_agents)).astype(np.float32)
    f32 = lambda v: np.full(n_agents, v, np.float32)  # noqa: E731
    return dict(z=z, y=y, x=x, alive=np.ones(n_agents, np.uint8),
                cell_id=np.arange(n_agents, dtype=np.int64), dirz=d[0], diry=d[1], dirx=d[2],
                hop_prob=f32(1.0), persistence=f32(0.5), chemo_strength=f32(0.3),
                gradz=g[0], grady=g[1], gradx=g[2], occ=occ, wall=wall)


@pytest.mark.parametrize("n_agents", sizes([10_000, 100_000, 1_000_000], [1_000, 10_000]))
def test_move(benchmark, n_agents):
    """One movement step: random order + persistent walk, chemotaxis, volume exclusion."""
    a = make_cells(n_agents)
    step = [0]

    def go():
        step[0] += 1
        order = mot.shuffled_order(a["alive"], a["cell_id"], np.uint64(1), np.int64(step[0]))
        mot.move_cells(*a.values(), np.uint64(1), np.int64(step[0]), order)

    go()
    record(benchmark, "move", n_agents, "agent-step", n_agents, n_agents=n_agents)
    benchmark(go)


class Walker(mesa.Agent):
    """The same rule written the Mesa way: one Python object per cell."""

    def __init__(self, model, pos, d):
        super().__init__(model)
        self.pos = pos
        self.d = d

    def step(self):
        m = self.model
        r = m.random
        # persistent direction with chemotactic bias toward +x, then a hop with exclusion
        d = [0.5 * self.d[i] + 0.5 * r.gauss(0, 1) for i in range(3)]
        d[2] += 0.3
        self.d = d
        ax = max(range(3), key=lambda i: abs(d[i]))
        step = [0, 0, 0]
        step[ax] = 1 if d[ax] > 0 else -1
        z, y, x = self.pos
        nz, ny, nx = z + step[0], y + step[1], x + step[2]
        n = m.n
        if 0 <= nz < n and 0 <= ny < n and 0 <= nx < n and not m.wall[nz, ny, nx] \
                and not m.occ[nz, ny, nx]:
            m.occ[z, y, x] = 0
            m.occ[nz, ny, nx] = 1
            self.pos = (nz, ny, nx)


class WalkerModel(mesa.Model):
    def __init__(self, n_agents):
        super().__init__(seed=1)
        a = make_cells(n_agents)
        self.n, self.wall = N_LATTICE, a["wall"]
        self.occ = (a["occ"] > 0).astype(np.uint8)
        for i in range(n_agents):
            Walker(self, (int(a["z"][i]), int(a["y"][i]), int(a["x"][i])), [0.0, 0.0, 1.0])

    def step(self):
        self.agents.shuffle_do("step")


@pytest.mark.parametrize("n_agents", sizes([100_000], [10_000]))
def test_move_mesa_baseline(benchmark, n_agents):
    m = WalkerModel(n_agents)
    record(benchmark, "move_mesa", n_agents, "agent-step", n_agents, n_agents=n_agents)
    benchmark.pedantic(m.step, rounds=3 if not QUICK else 1, iterations=1)


def test_handle_bookkeeping(benchmark):
    """Births and deaths of 1 % of the cells applied to arrays and Mesa handles at once
    (one decision step's worth at the reference size)."""
    from niche import NicheModel, load_scenario
    from niche.core.cells import TYPE_CODES

    sc = load_scenario("reference", {"domain.shape_voxels": sizes([100, 100, 100],
                                                                   [24, 24, 24])})
    m = NicheModel(sc)
    n = max(1, m.cells.n_alive // 100)
    code = TYPE_CODES["monocyte"]
    rng = np.random.default_rng(0)

    def churn():
        s = m.cells.slots_of_type(code)
        m.changes.die(rng.choice(s, n, replace=False))
        m.changes.birth_random(code, n)
        m.apply_changes()

    churn()
    record(benchmark, "handles", 2 * n, "birth-or-death", m.cells.n_alive, cells=m.cells.n_alive)
    benchmark(churn)
