"""A full model step at the reference size, broken down by phase."""
from __future__ import annotations

from .conftest import record, sizes


def test_full_step(benchmark):
    from niche import NicheModel, load_scenario

    shape = sizes([100, 100, 100], [24, 24, 24])
    m = NicheModel(load_scenario("reference", {"domain.shape_voxels": shape}))
    m.start()
    for _ in range(m.every_decide):  # warm up, compile
        m.step()
    m.timings.clear()
    ticks = [0]

    def one_decision_period():
        for _ in range(m.every_decide):
            m.step()
        ticks[0] += m.every_decide

    benchmark.pedantic(one_decision_period, rounds=sizes(5, 1), iterations=1)
    total = sum(m.timings.values())
    record(benchmark, "full_step", m.every_decide, "tick", shape[0] ** 3, cells=m.cells.n_alive,
           phases={k: v / total for k, v in m.timings.items()},
           ms_per_tick={k: 1e3 * v / ticks[0] for k, v in m.timings.items()})
