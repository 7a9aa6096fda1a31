"""Mesa users' entry points: batch_run with dotted parameters, DataCollector, run_model."""
from __future__ import annotations

import mesa
import pandas as pd
import pytest

import niche

PARAMS = {"scenario": "default", "domain.shape_voxels": [[16, 16, 16]], "run.days": 0.25,
          "run.frame_interval_days": 0.125, "seed": [1, 2],
          "cells.tcell.speed_um_per_min": [5.0, 10.0]}


def _batch() -> pd.DataFrame:
    return pd.DataFrame(mesa.batch_run(niche.NicheModel, parameters=PARAMS, iterations=1,
                                       max_steps=10_000, number_processes=1,
                                       data_collection_period=36, display_progress=False))


def test_batch_run_with_dotted_parameters_is_reproducible():
    a, b = _batch(), _batch()
    pd.testing.assert_frame_equal(a, b)
    assert a["RunId"].nunique() == 4 and set(a["seed"]) == {1, 2}
    assert set(a["cells.tcell.speed_um_per_min"]) == {5.0, 10.0}
    last = a[a["Step"] == a["Step"].max()]
    assert (last["t_days"] == 0.25).all()  # every run stopped at run.days (running = False)
    # a parameter changes the run; the seed decides the initial state
    s1 = last[last["seed"] == 1].set_index("cells.tcell.speed_um_per_min")
    assert s1.loc[5.0, "n_tcell"] != s1.loc[10.0, "n_tcell"] or \
        s1.loc[5.0, "bv_tv"] != s1.loc[10.0, "bv_tv"]
    first = a[a["Step"] == 0]
    assert first.groupby("seed")["bv_tv"].nunique().eq(1).all()


def test_datacollector_and_run_model():
    m = niche.NicheModel("default", seed=3, collect=("bv_tv", "n_osteoclast"),
                         **{"domain.shape_voxels": [16, 16, 16], "run.days": 0.125,
                            "run.frame_interval_days": 0.0625})
    m.run_model()  # Mesa's loop: steps while model.running
    assert not m.running and m.tick == m.n_ticks == 36
    df = m.datacollector.get_model_vars_dataframe()
    assert list(df.columns) == ["t_days", "bv_tv", "n_osteoclast"] and len(df) == 36
    assert df["t_days"].iloc[-1] == pytest.approx(0.125)
    assert df["bv_tv"].iloc[-1] == pytest.approx(m.frame_readouts["bv_tv"])


def test_bad_dotted_keyword_names_the_key():
    with pytest.raises(niche.ConfigError, match="il2.dose_iux: unknown key"):
        niche.NicheModel("default", **{"il2.dose_iux": 1.0})
