"""The Mesa contract as a Mesa user meets it: ``running`` and ``run_model()`` end at
``run.days``, ``mesa.batch_run`` with dotted parameters, ``run(days)`` twice, a model
stepped by hand that ``finish()`` ends with a complete run file, readout units."""
from __future__ import annotations

import h5py
import mesa
import numpy as np
import pandas as pd
import pytest

import niche
from niche.io import RunWriter
from niche.io.runfile import partial_path

from .test_golden import file_hashes

#: a quarter day on 16^3: 72 ticks of 5 min, frames every 18 ticks
TINY = {"domain.shape_voxels": [16, 16, 16], "run.days": 0.25,
        "run.frame_interval_days": 0.0625, "vessels.count": 2, "output.xdmf": False}


def _ended(path) -> None:
    """``path`` is a complete run file and no journal is left."""
    assert path.exists() and not partial_path(path).exists()
    with niche.open_run(path) as run:
        assert run.status == "complete"


def test_run_model_returns_at_run_days_and_ends_the_run_file(tmp_path):
    out = tmp_path / "a.h5"
    m = niche.NicheModel("ovx", seed=1, observers=[RunWriter(out)], **TINY)
    assert m.running
    m.run_model()
    assert not m.running and m.tick == m.n_ticks == 72
    assert m.t_days == pytest.approx(0.25)
    _ended(out)
    with niche.open_run(out) as run:
        assert run.n_frames == 5 and run.times[-1] == pytest.approx(0.25)


def test_batch_run_with_dotted_parameters_collects_every_run():
    params = {"scenario": "ovx", "il2.dose_iu": [1e4, 5e4], "seed": [1, 2],
              **{k: [v] for k, v in TINY.items()}}
    rows = mesa.batch_run(niche.NicheModel, parameters=params, max_steps=1000,
                          number_processes=1, data_collection_period=-1,
                          display_progress=False)
    df = pd.DataFrame(rows)
    assert len(df) == 4 and df["RunId"].nunique() == 4
    assert set(zip(df["il2.dose_iu"], df["seed"])) == {(1e4, 1), (1e4, 2), (5e4, 1), (5e4, 2)}
    # every run stopped by ``running`` at run.days, long before max_steps
    assert (df["t_days"] == 0.25).all() and df["Step"].max() < 100
    assert df[["bv_tv", "n_monocyte", "n_osteoclast"]].notna().all().all()
    # the dotted parameter reached the scenario
    assert niche.NicheModel("ovx", **{"il2.dose_iu": 5e4, **TINY}).scenario.il2.dose_iu == 5e4


def test_a_scenario_object_in_batch_run_goes_in_a_list():
    sc = niche.load_scenario("ovx", TINY)
    rows = mesa.batch_run(niche.NicheModel, parameters={"scenario": [sc], "seed": [3]},
                          max_steps=1000, number_processes=1, display_progress=False)
    assert len(rows) == 1 and rows[0]["t_days"] == 0.25
    # a bare Scenario is iterated by Mesa: the model says what to do instead
    with pytest.raises(niche.ConfigError, match=r"Scenario object in a list"):
        mesa.batch_run(niche.NicheModel, parameters={"scenario": sc, "seed": [3]},
                       max_steps=10, number_processes=1, display_progress=False)


def test_run_twice_continues_the_same_run(tmp_path):
    once, twice = tmp_path / "once.h5", tmp_path / "twice.h5"
    a = niche.NicheModel("ovx", seed=4, observers=[RunWriter(once)], **TINY)
    a.run()
    b = niche.NicheModel("ovx", seed=4, observers=[RunWriter(twice)], **TINY)
    b.run(0.125)
    assert b.tick == 36 and not b.running
    _ended(twice)  # the first call ends a complete file ...
    b.run(0.125)  # ... that the second continues
    assert b.tick == 72 and not b.running
    _ended(twice)
    assert file_hashes(twice) == file_hashes(once)
    np.testing.assert_array_equal(a.cells.cell_id, b.cells.cell_id)
    with pytest.raises(ValueError, match=r"run\(days=-1\)"):
        b.run(-1)


def test_a_model_stepped_by_hand_ends_its_file_with_finish(tmp_path):
    out = tmp_path / "manual.h5"
    m = niche.NicheModel("ovx", seed=2, observers=[RunWriter(out)], **TINY)
    for _ in range(40):  # stop between two frames (ticks 36 and 54)
        m.step()
    assert partial_path(out).is_dir() and not out.exists()  # not ended yet
    m.finish()
    _ended(out)
    with niche.open_run(out) as run:  # the state it ended in is the last frame
        assert run.n_frames == 4 and run.times[-1] == pytest.approx(40 * 5 / 1440)
        assert run.readouts["n_tcell"].iloc[-1] == m.frame_readouts["n_tcell"]
        assert len(run.agents(-1)) == m.cells.n_alive
    m.finish()  # a second finish changes nothing
    _ended(out)


def test_readout_units_come_from_the_table_and_an_unknown_readout_fails(tmp_path):
    out = tmp_path / "u.h5"
    niche.run("ovx", out, overrides=TINY)
    with h5py.File(out, "r") as f:
        units = {k: f["readouts"][k].attrs["units"] for k in f["readouts"]}
    assert units["n_tcell"] == "cells" and units["bv_tv"] == "1" and units["t_days"] == "day"
    assert units["mean_RANKL_pM"] == "pM" and units["tb_th_um"] == "um"
    assert "cells" not in {units[k] for k in units if not k.startswith("n_")}

    class Extra(niche.runner.OsteoimmuneRules):
        def readouts(self, model):
            return {**super().readouts(model), "mystery_index": 1.0}

    bad = tmp_path / "bad.h5"
    m = niche.NicheModel("ovx", rules=Extra(), observers=[RunWriter(bad)], **TINY)
    with pytest.raises(KeyError, match="mystery_index"):
        m.start()
