"""Lifelong cell ids, stale-safe handles and the cell event log (``/events``).

The event log is checked against the agent tables of the same run file (replaying the
births, deaths, fusions and differentiations up to each frame must give exactly the cells
and types the frame stores), for determinism in another process and thread count, across a
signal stop and ``resume``, and in the file ``repair`` makes of an interrupted run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import mesa
import numpy as np
import pytest

import niche
from niche.core.agents import Monocyte, Osteoclast, StaleAgentError, TCell
from niche.core.cells import TYPE_CODES
from niche.core.events import EVENT_COLUMNS, EVENT_KINDS
from niche.io.journal import repair
from niche.runner import RunStopped, resume

from .conftest import ROOT, tiny_overrides
from .test_golden import file_hashes

#: a culture well with fusion and differentiation within three days
CULTURE = ("invitro_osteoclastogenesis_treg", {
    "domain.shape_voxels": [4, 24, 24], "run.days": 3.0, "run.frame_interval_days": 1.0,
    "run.seed": 3, "invitro.monocytes_per_mm2": 5000.0, "output.xdmf": False,
    "invitro.rank_priming_days": 0.0})   # precursors answer RANKL at once: fusions by day 3
KIND = {v: k for k, v in EVENT_KINDS.items()}


def _model(**extra):
    ov = {**tiny_overrides(0.25), **extra}
    return niche.NicheModel("default", seed=5, **ov)


def _events(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f["events"][k][()] for k in f["events"]}


def _event_hashes(path) -> dict[str, str]:
    return {k: v for k, v in file_hashes(path).items()
            if k.startswith(("events/", "agents/"))}


def _handles_match_arrays(m) -> None:
    c = m.cells
    alive = set(c.cell_id[c.alive_slots()].tolist())
    ids = {a.unique_id for a in m.agents}
    assert ids == alive and len(m.agents) == c.n_alive
    for a in m.agents:
        assert a.unique_id == a.cell_id and a.type_code == c.type[a.slot]


# ------------------------------------------------------------------------ handles
def test_agent_remove_removes_the_cell_and_its_handle():
    m = _model()
    m.run(0.05)
    t = next(iter(m.agents_by_type[TCell]))
    cid, (z, y, x), n = t.unique_id, t.position, m.cells.n_alive
    t.remove()
    assert m.cells.n_alive == n - 1 and m.cells.occ[z, y, x] == 0
    assert t not in m.agents and cid not in m.cells.cell_id
    assert m.events.n_pending == 1  # the removal is logged as a death
    t.remove()  # removing a gone cell again does nothing
    assert m.cells.n_alive == n - 1
    for a in list(m.agents)[:30]:  # many removals, then the model runs on
        a.remove()
    m.run(0.05)
    _handles_match_arrays(m)
    m.cells.check(wall=m.wall)


def test_a_stale_handle_raises_naming_the_cell_even_when_its_slot_is_reused():
    m = _model()
    t = next(iter(m.agents_by_type[TCell]))
    slot, cid, pos = t.slot, t.unique_id, t.position
    m.changes.die([slot])
    m.apply_changes()
    assert not t.alive and repr(t) == f"TCell(id={cid}, gone)"
    for attr in ("slot", "position", "state", "age_days", "nuclei", "cell_id", "parent_id",
                 "is_regulatory"):
        with pytest.raises(StaleAgentError, match=f"cell {cid} is stale"):
            getattr(t, attr)
    with pytest.raises(StaleAgentError, match=f"cell {cid}"):
        t.position = pos
    # a newborn takes the freed slot (lowest free first): the old handle still refuses
    m.changes.birth_at(TYPE_CODES["monocyte"], *([v] for v in pos))
    m.apply_changes()
    new = m.handle(slot)
    assert isinstance(new, Monocyte) and new.unique_id != cid and new.position == pos
    with pytest.raises(StaleAgentError):
        t.position  # noqa: B018


def test_differentiation_keeps_the_handle_and_its_id_and_fusion_keeps_the_survivors():
    m = _model(**{"cells.osteoclast.initial_per_mm3": 5000.0})
    dc = mesa.DataCollector(agent_reporters={"kind": lambda a: a.type_name})
    m.step()
    dc.collect(m)
    mono = m.cells.slots_of_type(TYPE_CODES["monocyte"])
    h = m.handle(mono[0])
    uid = h.unique_id
    absorbed = m.handle(mono[1])
    # queued now, applied with the rule set's own changes at the next decision step
    m.changes.fuse([mono[1]], [mono[0]])
    m.changes.differentiate([mono[0]], TYPE_CODES["osteoclast"])
    steps, decided = 1, False
    while not decided:
        decided = m.tick % m.every_decide == 0  # this step decides and applies changes
        m.step()
        dc.collect(m)
        steps += 1
    assert m.handle(mono[0]) is h and type(h) is Osteoclast and h.unique_id == uid
    assert h in m.agents_by_type[Osteoclast] and h not in m.agents_by_type[Monocyte]
    assert h.cell_id == uid and h.nuclei == 2 and not absorbed.alive
    track = dc.get_agent_vars_dataframe().xs(uid, level="AgentID")["kind"].tolist()
    # one agent track through the change, present at every collection
    assert len(track) == steps and track[0] == "monocyte" and track[-1] == "osteoclast"
    ev = m.events.end_frame()
    fus = ev["kind"] == EVENT_KINDS["fusion"]
    assert ev["id"][fus].tolist() == [absorbed.unique_id] and ev["other_id"][fus].tolist() == [uid]
    dif = ev["kind"] == EVENT_KINDS["differentiation"]
    assert ev["id"][dif].tolist() == [uid]
    assert ev["type"][dif].tolist() == [TYPE_CODES["osteoclast"]]
    _handles_match_arrays(m)


def test_daughters_of_a_division_record_their_mother_even_one_that_dies():
    m = _model()
    m.start()  # frame 0 takes the initial placement's births
    assert m.events.n_pending == 0 and m.frame_events["id"].size == m.cells.n_alive
    t = next(iter(m.agents_by_type[TCell]))
    z, y, x = t.position
    free = [(z + dz, y + dy, x + dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1)
            for dx in (-1, 0, 1) if (dz, dy, dx) != (0, 0, 0)]
    free = [v for v in free if all(0 <= a < 16 for a in v)
            and not m.wall[v] and m.cells.occ[v] == 0]
    mother, mid = t.slot, t.unique_id
    m.changes.birth_at(TYPE_CODES["tcell"], [free[0][0]], [free[0][1]], [free[0][2]],
                       parents=[mother])
    m.changes.die([mother])  # applied before the births: the daughter still knows her
    m.apply_changes()
    d = m.handle(m.cells.occ[free[0]] - 1)
    assert d.parent_id == mid and not t.alive
    ev = m.events.end_frame()
    kinds = [KIND[int(k)] for k in ev["kind"]]
    assert kinds == ["death", "birth", "division"]
    assert ev["other_id"].tolist() == [-1, mid, d.unique_id]
    assert ev["id"].tolist() == [mid, d.unique_id, mid]
    assert tuple(ev["z"][2:]) + tuple(ev["y"][2:]) + tuple(ev["x"][2:]) == (z, y, x)
    with pytest.raises(ValueError, match="2 parents for 1 voxels"):
        m.changes.birth_at(TYPE_CODES["tcell"], [0], [0], [0], parents=[1, 2])


# ------------------------------------------------------------------------ the run file
@pytest.fixture(scope="module")
def culture(tmp_path_factory):
    out = tmp_path_factory.mktemp("events") / "culture.h5"
    niche.run(CULTURE[0], out, overrides=CULTURE[1])
    return out


def test_event_schema_in_the_run_file(culture):
    with h5py.File(culture, "r") as f:
        g = f["events"]
        assert json.loads(g.attrs["kinds"]) == {"birth": 1, "death": 2, "fusion": 3,
                                                "differentiation": 4, "division": 5}
        for col, dt in EVENT_COLUMNS.items():
            assert g[col].dtype == np.dtype(dt) and g[col].ndim == 1, col
        assert g["frame_offsets"].shape == (f["time_days"].shape[0] + 1,)
        assert f["agents/parent_id"].dtype == np.int64
        assert f["agents/parent_id"].shape == f["agents/id"].shape


def test_events_replay_to_every_frames_agent_table(culture):
    ev = _events(culture)
    assert {"birth", "death", "fusion", "differentiation"} <= {KIND[int(k)] for k in ev["kind"]}
    assert np.all(np.diff(ev["tick"]) >= 0) and np.all(np.diff(ev["t_days"]) >= 0)
    off = ev["frame_offsets"]
    alive: dict[int, int] = {}
    with niche.open_run(culture) as run:
        assert off.size == run.n_frames + 1
        for k in range(run.n_frames):
            for i in range(off[k], off[k + 1]):
                kind, cid = KIND[int(ev["kind"][i])], int(ev["id"][i])
                if kind == "birth":
                    assert cid not in alive
                    alive[cid] = int(ev["type"][i])
                elif kind in ("death", "fusion"):
                    assert alive.pop(cid) == ev["type"][i]
                    if kind == "fusion":
                        assert int(ev["other_id"][i]) in alive
                elif kind == "differentiation":
                    alive[cid] = int(ev["type"][i])
            ag = run.agents(k)
            assert ag["id"].tolist() == sorted(alive), f"frame {k}"
            assert ag["type"].tolist() == [alive[i] for i in sorted(alive)], f"frame {k}"
            assert ev["t_days"][off[k]:off[k + 1]].max(initial=0.0) <= run.times[k]


def test_event_log_is_the_same_in_another_process_and_thread_count(culture, tmp_path):
    out = tmp_path / "again.h5"
    code = ("import sys, niche; from tests.test_events import CULTURE; "
            "niche.run(CULTURE[0], sys.argv[1], overrides=CULTURE[1])")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "2"}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=ROOT, env=env,
                   timeout=300)
    assert _event_hashes(out) == _event_hashes(culture)


class _StopAt:
    """Raise SIGTERM's stop (a real signal) after tick ``tick``; or fail there."""

    def __init__(self, tick: int, fail: bool = False):
        self.tick, self.fail = tick, fail

    def on_tick(self, model):
        if model.tick == self.tick:
            if self.fail:
                raise RuntimeError("injected failure")
            import os
            import signal

            os.kill(os.getpid(), signal.SIGTERM)


def test_events_survive_a_stop_and_resume_bit_for_bit(culture, tmp_path):
    out = tmp_path / "stopped.h5"
    # day 1.4: between two frames, with events pending since the last one
    tick = 1.4 * 1440 / niche.load_scenario(CULTURE[0], CULTURE[1]).time.move_step_min
    with pytest.raises(RunStopped):
        niche.run(CULTURE[0], out, overrides=CULTURE[1], checkpoint_every=0.2,
                  observers=[_StopAt(int(tick))])
    assert not out.exists()
    resume(out)
    assert _event_hashes(out) == _event_hashes(culture)


def test_a_failed_run_leaves_readable_events_for_repair(culture, tmp_path):
    out = tmp_path / "failed.h5"
    with pytest.raises(RuntimeError, match="injected"):
        niche.run(CULTURE[0], out, overrides=CULTURE[1], observers=[_StopAt(400, fail=True)])
    path, n = repair(out)
    ev, ref = _events(path), _events(culture)
    assert n >= 2 and ev["frame_offsets"].size == n + 1
    rows = int(ev["frame_offsets"][-1])
    for col in EVENT_COLUMNS:
        np.testing.assert_array_equal(ev[col], ref[col][:rows])
