"""NicheModel: invariants through steps, Mesa handles in sync, remodelling consistency."""
import numpy as np
import pytest

from niche import NicheModel, load_scenario
from niche.core.agents import AGENT_CLASSES, ILC2, Monocyte, Osteoblast, Osteoclast, TCell
from niche.core.cells import TYPE_CODES, State

from .conftest import tiny_overrides


def small_model(days=0.25, **extra):
    ov = tiny_overrides(days)
    ov.update({"domain.shape_voxels": [20, 20, 20]})
    ov.update(extra)
    return NicheModel(load_scenario("default", ov))


def handles_match(model):
    cells = model.cells
    for cls in AGENT_CLASSES:
        slots = sorted(a.slot for a in model.agents_by_type[cls])
        expect = sorted(cells.slots_of_type(cls.type_code).tolist())
        assert slots == expect, cls.__name__
    assert len(model.agents) == cells.n_alive


def test_invariants_over_many_steps():
    m = small_model(days=1.0)
    assert m.cells.n_alive > 100
    bone0 = m.lattice.bone.copy()
    m.start()
    for _ in range(m.n_ticks):
        m.step()
        if m.tick % 30 == 0:
            m.cells.check(wall=m.wall)
            assert np.array_equal(m.wall, m.lattice.bone | m.lattice.vessel)
            assert np.all(m.fields.c[:, m.lattice.bone == 1] == 0)
    m.cells.check(wall=m.wall)
    handles_match(m)
    assert not np.array_equal(bone0, m.lattice.bone), "no remodelling happened in 1 day"
    assert np.all(m.lattice.bone[m.lattice.vessel == 1] == 0)


def test_handles_track_births_deaths_fusion_and_differentiation():
    m = small_model()
    handles_match(m)
    mono = m.cells.slots_of_type(TYPE_CODES["monocyte"])
    oc = m.cells.slots_of_type(TYPE_CODES["osteoclast"])
    assert mono.size > 10 and oc.size >= 1
    n_oc0 = len(m.agents_by_type[Osteoclast])
    nuc0 = int(m.cells.nuclei[oc[0]])
    # differentiate two monocytes into osteoclasts, fuse two more into the first osteoclast,
    # kill three, and add five T cells
    m.changes.differentiate(mono[:2], TYPE_CODES["osteoclast"], int(State.RESORBING))
    m.changes.fuse(mono[2:4], [oc[0], oc[0]])
    m.changes.die(mono[4:7])
    m.changes.birth_random(TYPE_CODES["tcell"], 5)
    n_t0 = len(m.agents_by_type[TCell])
    n_m0 = len(m.agents_by_type[Monocyte])
    m.apply_changes()
    handles_match(m)
    assert len(m.agents_by_type[Osteoclast]) == n_oc0 + 2
    assert len(m.agents_by_type[Monocyte]) == n_m0 - 7
    assert len(m.agents_by_type[TCell]) == n_t0 + 5
    assert m.cells.nuclei[oc[0]] == nuc0 + 2
    h = m.handle(mono[0])
    assert isinstance(h, Osteoclast) and h.is_resorbing
    m.cells.check(wall=m.wall)


def test_handle_attributes_are_views():
    m = small_model()
    t = next(iter(m.agents_by_type[TCell]))
    z, y, x = t.position
    assert m.cells.occ[z, y, x] == t.slot + 1
    t.state = State.REGULATORY
    assert m.cells.state[t.slot] == State.REGULATORY and t.is_regulatory
    with pytest.raises(ValueError):
        bz, by, bx = np.argwhere(m.lattice.bone == 1)[0]
        t.position = (bz, by, bx)
    assert isinstance(ILC2, type) and isinstance(Osteoblast, type)


def test_remodelling_keeps_solver_and_cells_consistent():
    m = small_model(days=1.0, **{"cells.osteoclast.initial_per_mm3": 20000.0,
                                 "cells.osteoclast.resorption_um3_per_day_per_nucleus": 20000.0})
    bv0 = m.lattice.bone.sum()
    m.run()
    assert m.lattice.bone.sum() < bv0
    assert np.array_equal(m.fields.solid, m.lattice.bone)
    assert np.all(m.fields.c[:, m.lattice.bone == 1] == 0)
    m.cells.check(wall=m.wall)
    r = m.readouts()
    assert r["bv_tv"] == pytest.approx(m.lattice.bone.mean())


def test_readouts_count_cells():
    m = small_model()
    r = m.readouts()
    for name, code in TYPE_CODES.items():
        assert r[f"n_{name}"] == m.cells.slots_of_type(code).size


def test_vessel_entry_and_exit():
    # no initial cells; T cells only enter at vessels and leave there fast
    ov = {f"cells.{t}.initial_per_mm3": 0.0 for t in
          ("tcell", "ilc2", "monocyte", "osteoclast", "osteoblast")}
    ov.update({"cells.tcell.influx_per_mm3_per_day": 2e5, "cells.tcell.speed_um_per_min": 0.0,
               "cells.tcell.lifespan_days": 1e6,
               # no IL-2-driven Treg division: daughters are placed beside their mother
               "biology.tcell.treg_division_per_day": 0.0})
    m = small_model(days=0.5, **ov)
    m.run()
    s = m.cells.slots_of_type(TYPE_CODES["tcell"])
    assert s.size > 0 and np.all(m.at_vessel(s)), "immotile entrants sit where they entered"
    n_in = s.size
    m2 = small_model(days=0.5, **ov, **{"cells.tcell.egress_per_day": 200.0})
    m2.run()
    assert m2.cells.slots_of_type(TYPE_CODES["tcell"]).size < 0.5 * n_in


def test_failed_run_leaves_journal_that_repairs(tmp_path):
    """A run that dies mid-way (here a Python exception; tests/test_reliability.py kills
    real processes) keeps its complete frames in the journal; repair makes the file."""
    from niche.io import open_run
    from niche.io.journal import repair

    class Boom:
        def on_frame(self, model):
            if model.tick >= 2 * model.every_frame:
                raise RuntimeError("killed")

    from niche.runner import History, RunWriter, _drive

    w = RunWriter(tmp_path / "k2.h5")
    m = NicheModel(load_scenario("default", tiny_overrides(0.5)), observers=[w, Boom()])
    with pytest.raises(RuntimeError):
        _drive(m, w, History(), None, None, 0.0)
    assert not (tmp_path / "k2.h5").exists() and (tmp_path / "k2.h5.partial").is_dir()
    path, n = repair(tmp_path / "k2.h5")
    assert n == 3 and not (tmp_path / "k2.h5.partial").exists()
    with open_run(path) as rf:
        assert rf.status == "incomplete" and rf.n_frames == 3
        assert rf.bone(2).shape == (16, 16, 16)




def test_parallel_cell_kernels_give_the_serial_run(monkeypatch):
    """With the per-cell kernels (movement planning, chemotactic gradients) forced onto
    their parallel paths, a run on 2 threads ends in the state of a 1-thread run."""
    import numba

    from niche.core import fields, motility

    def final_state(threads):
        numba.set_num_threads(threads)
        try:
            m = small_model(days=0.15)
            m.run()
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        c = m.cells
        return [c.z.copy(), c.y.copy(), c.x.copy(), c.dirz.copy(), m.fields.c.copy()]

    serial = final_state(1)
    monkeypatch.setattr(fields, "_PARALLEL_MIN_CELLS", 0)
    monkeypatch.setattr(motility, "_PARALLEL_MIN_CELLS", 0)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here: no parallel path to compare")
    parallel = final_state(2)
    for a, b in zip(serial, parallel):
        assert np.array_equal(a, b)
