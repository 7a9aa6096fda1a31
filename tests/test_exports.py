"""The reader's analysis exports: the all-frames agent table (decoded states, um
coordinates, local concentrations), tracks, the event log, xarray, AnnData, and
``niche export`` to csv / parquet / VTK."""
import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

import niche
from niche.cli import main
from niche.core.cells import State
from niche.io import RunFileError, open_run
from niche.io.export import ExportError, export_run

TINY = ["domain.shape_voxels=[16,16,16]", "run.days=0.5", "run.frame_interval_days=0.25"]
KINDS = {"birth": 1, "death": 2, "fusion": 3, "differentiation": 4, "division": 5}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("exports")
    return niche.run("sham", d / "sham.h5", overrides=TINY, progress=False).path


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """Level ``frames``: fields at frames 0 and 2 of 0..2 only."""
    d = tmp_path_factory.mktemp("sparse")
    return niche.run("sham", d / "f.h5", progress=False, overrides=TINY + [
        "output.level=frames", "output.field_every=2"]).path


def _add_events(path):
    """Give a run file the event log a newer writer makes (schema of issue 20)."""
    ev = {"t_days": np.array([0.1, 0.2, 0.3]), "tick": np.array([10, 20, 30], np.int64),
          "kind": np.array([1, 5, 2], np.uint8), "id": np.array([500, 501, 7], np.int64),
          "other_id": np.array([-1, 3, -1], np.int64), "type": np.array([2, 0, 4], np.int8),
          "z": np.array([1, 2, 3], np.int32), "y": np.array([4, 5, 6], np.int32),
          "x": np.array([7, 8, 9], np.int32)}
    with h5py.File(path, "a") as f:
        g = f.create_group("events")
        for k, v in ev.items():
            g.create_dataset(k, data=v)
        g.attrs["kinds"] = json.dumps(KINDS)
    return ev


def test_agent_table_over_all_frames(run):
    with open_run(run) as rf:
        df = rf.agents()
        vu = rf.voxel_um
        assert len(df) == sum(rf.n_agents(k) for k in range(rf.n_frames)) > 0
        assert sorted(df["frame"].unique()) == [0, 1, 2]
        np.testing.assert_array_equal(df["t_days"], rf.times[df["frame"]])
        for ax in "zyx":
            np.testing.assert_allclose(df[f"{ax}_um"], (df[ax] + 0.5) * vu)
        st = df["state"].to_numpy()
        for f in State:
            if f.value:
                np.testing.assert_array_equal(df[f"state_{f.name.lower()}"], (st & f) != 0)
        reg = df[df["state"] == int(State.REGULATORY | State.CXCR3)]
        assert (reg["states"] == "REGULATORY|CXCR3").all()
        assert (df.loc[df["state"] == 0, "states"] == "").all()
        # the decoded flags count what the readouts count
        tregs = df[(df["type_name"] == "tcell") & df["state_regulatory"]].groupby("frame").size()
        np.testing.assert_array_equal(tregs.reindex([0, 1, 2], fill_value=0),
                                      rf.readouts["n_treg"])
        # local concentration = the field at the cell's voxel at that frame
        for k in (0, 2):
            sub = df[df["frame"] == k]
            for name in ("TNF", "IL2", "RANKL"):
                np.testing.assert_array_equal(
                    sub[f"conc_{name}_pM"], rf.field(name, k)[sub["z"], sub["y"], sub["x"]])
        assert df["conc_IL10_pM"].max() > 0
        last = rf.agents(frames=-1)
        pd.testing.assert_frame_equal(last, df[df["frame"] == 2].reset_index(drop=True))
        # one frame's stored table is as before (plus parent_id where the writer stores it)
        assert [c for c in rf.agents(2).columns if c != "parent_id"] == [
            "id", "type", "state", "z", "y", "x", "nuclei", "age_days", "type_name"]
        assert "conc_TNF_pM" not in rf.agents(frames=[0, 1], concentrations=False)
        with pytest.raises(TypeError, match="not both"):
            rf.agents(1, frames=[1])
        with pytest.raises(IndexError, match="frame 9 out of range"):
            rf.agents(frames=[0, 9])


def test_concentrations_are_nan_where_fields_are_not_stored(sparse):
    with open_run(sparse) as rf:
        assert rf.stored_frames("fields").tolist() == [0, 2]
        df = rf.agents()
        assert df.loc[df["frame"] == 1, "conc_TNF_pM"].isna().all()
        assert df.loc[df["frame"] == 2, "conc_TNF_pM"].notna().all()


def test_tracks_follow_each_cell(run):
    with open_run(run) as rf:
        tr = rf.tracks()
        ag = rf.agents(concentrations=False)
    assert len(tr) == len(ag)
    assert (tr[["id", "frame"]].diff().dropna().apply(tuple, axis=1)
            .map(lambda d: d[0] > 0 or d[1] > 0)).all()  # sorted by id, then frame
    one = tr[tr["id"] == tr["id"].iloc[0]]
    assert np.isnan(one["step_um"].iloc[0])
    if len(one) > 1:
        p = one[["z_um", "y_um", "x_um"]].to_numpy()
        np.testing.assert_allclose(one["step_um"].iloc[1:], np.linalg.norm(np.diff(p, axis=0),
                                                                           axis=1))
    firsts = tr.groupby("id").head(1)
    assert firsts["step_um"].isna().all() and tr["step_um"].notna().sum() == len(tr) - len(firsts)


def _copy_without_events(run, path):
    shutil.copy(run, path)
    with h5py.File(path, "a") as f:
        if "events" in f:
            del f["events"]
    return path


def test_event_log_of_a_real_run(run):
    with open_run(run) as rf:
        if not rf.has_events:
            pytest.skip("this niche's writer logs no events yet")
        ev = rf.events()
        ag = rf.agents(concentrations=False)
    assert len(ev) > 0 and set(ev["kind"].cat.categories) <= set(KINDS)
    assert ev["t_days"].between(0, 0.5).all() and ev["t_days"].is_monotonic_increasing
    if "frame" in ev:  # an event belongs to the frame closing its interval
        t = np.asarray([0.0, 0.25, 0.5])
        f = ev["frame"].to_numpy()
        assert (ev["t_days"] <= t[f] + 1e-9).all() and (ev["t_days"][f > 0] > t[f[f > 0] - 1] - 1e-9).all()
    born = ev.loc[ev["kind"] == "birth", "id"]
    assert born.isin(ag["id"]).mean() > 0.5  # most cells born are seen at a frame


def test_event_log(run, tmp_path):
    path = _copy_without_events(run, tmp_path / "ev.h5")
    with open_run(path) as rf, pytest.raises(RunFileError, match="no event log"):
        rf.events()
    want = _add_events(path)
    with open_run(path) as rf:
        ev = rf.events()
        assert ev["kind"].tolist() == ["birth", "division", "death"]
        assert ev["type_name"].tolist() == ["monocyte", "tcell", "osteoblast"]
        for c in ("t_days", "tick", "id", "other_id", "z", "y", "x"):
            np.testing.assert_array_equal(ev[c], want[c])
        np.testing.assert_allclose(ev["x_um"], (want["x"] + 0.5) * rf.voxel_um)
    with h5py.File(path, "a") as f:
        f["events/kind"][1] = 9
    with open_run(path) as rf, pytest.raises(RunFileError, match=r"kind codes \[9\]"):
        rf.events()


def test_to_xarray(run, sparse):
    pytest.importorskip("xarray")
    with open_run(run) as rf:
        ds = rf.to_xarray()
        np.testing.assert_array_equal(ds["TNF"].isel(time=2).values, rf.field("TNF", 2))
        np.testing.assert_array_equal(ds["bone"].isel(time=0).values, rf.bone(0))
        np.testing.assert_array_equal(ds["oc_s_bs"].values, rf.readouts["oc_s_bs"])
        assert ds["TNF"].dims == ("time", "z", "y", "x") and ds["TNF"].attrs["units"] == "pM"
        assert ds["mar_um_per_day"].attrs["units"] == "um/day"
        np.testing.assert_allclose(ds["x"].values, (np.arange(16) + 0.5) * rf.voxel_um)
        np.testing.assert_array_equal(ds["time"].values, rf.times)
        assert ds["z"].attrs["units"] == "um" and ds.attrs["scenario_name"] == "sham"
        assert list(rf.to_xarray(fields=["IL2"], bone=False).data_vars)[0] == "IL2"
        with pytest.raises(KeyError, match="no field 'NOPE'"):
            rf.to_xarray(fields=["NOPE"])
    with open_run(sparse) as rf:
        ds = rf.to_xarray()
        assert ds["TNF"].dims[0] == "time_fields" and ds["frame_fields"].values.tolist() == [0, 2]
        assert ds["bone"].dims[0] == "time" and ds.sizes["time"] == 3


def test_to_anndata(run):
    pytest.importorskip("anndata")
    with open_run(run) as rf:
        a = rf.to_anndata()
        last = rf.agents(frames=-1)
        assert a.n_obs == len(last) and list(a.var_names) == rf.field_names
        np.testing.assert_allclose(a[:, "TNF"].X.ravel(), last["conc_TNF_pM"], rtol=1e-6)
        assert a.obs["type_name"].tolist() == last["type_name"].tolist()
        assert a.obs_names[0] == f"{last['id'].iloc[0]}@2"
        np.testing.assert_allclose(a.obsm["spatial"], last[["x_um", "y_um", "z_um"]])
        assert set(a.var["units"]) == {"pM"} and "state_regulatory" in a.obs
        assert rf.to_anndata(frames=None).n_obs == len(rf.agents(concentrations=False))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_tables(run, tmp_path, fmt):
    path = _copy_without_events(run, tmp_path / "ev.h5")
    _add_events(path)
    files = export_run(path, fmt, tmp_path / "out")
    assert sorted(f.name for f in files) == sorted(f"{n}.{fmt}" for n in
                                                   ("agents", "readouts", "events"))
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    with open_run(path) as rf:
        ag = read(tmp_path / "out" / f"agents.{fmt}")
        want = rf.agents()
        assert list(ag.columns) == list(want.columns) and len(ag) == len(want)
        np.testing.assert_allclose(ag["conc_TNF_pM"], want["conc_TNF_pM"])
        assert ag["type_name"].astype(str).tolist() == want["type_name"].astype(str).tolist()
        ro = read(tmp_path / "out" / f"readouts.{fmt}")
        np.testing.assert_allclose(ro["bv_tv"], rf.readouts["bv_tv"])
        assert read(tmp_path / "out" / f"events.{fmt}")["kind"].astype(str).tolist() == \
            ["birth", "division", "death"]


def test_export_vtk_opens_as_paraview_series(run, tmp_path):
    pv = pytest.importorskip("pyvista")
    out = tmp_path / "vtk"
    assert main(["export", str(run), "--to", "vtk", "--out", str(out)]) == 0
    with open_run(run) as rf:
        reader = pv.get_reader(str(out / "cells.pvd"))
        np.testing.assert_allclose(reader.time_values, rf.times)
        cells = pv.read(out / "cells_00002.vtp")
        ag = rf.agents(frames=2)
        assert cells.n_points == len(ag)
        np.testing.assert_allclose(cells.points, ag[["x_um", "y_um", "z_um"]])
        np.testing.assert_array_equal(cells.point_data["id"], ag["id"])
        np.testing.assert_allclose(cells.point_data["conc_TNF_pM"], ag["conc_TNF_pM"])
        grid = pv.read(out / "grid_00001.vti")
        assert grid.dimensions == (17, 17, 17) and grid.spacing == (rf.voxel_um,) * 3
        np.testing.assert_array_equal(grid.cell_data["TNF"], rf.field("TNF", 1).ravel())
        np.testing.assert_array_equal(grid.cell_data["bone"], rf.bone(1).ravel())
        # ParaView's cell (x, y, z) is the run's voxel (z, y, x)
        cid = grid.find_containing_cell([(3 + .5) * rf.voxel_um, (2 + .5) * rf.voxel_um,
                                         (1 + .5) * rf.voxel_um])
        assert grid.cell_data["TNF"][cid] == rf.field("TNF", 1)[1, 2, 3]


def test_export_bad_input_is_one_line_and_clobbers_nothing(run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for args, why in [
        ([str(run), "--to", "csv", "--out", str(out)], "exists (use --overwrite"),
        ([str(tmp_path / "nope.h5"), "--to", "csv", "--out", str(tmp_path / "o2")],
         "does not exist"),
        ([str(run), "--to", "xls", "--out", str(tmp_path / "o3")], "invalid choice: 'xls'"),
    ]:
        assert main(["export", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and why in err and err.startswith("niche: error:")
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing half-made
    with pytest.raises(ExportError, match="unknown format"):
        export_run(run, "xls", tmp_path / "o4")
    assert main(["export", str(run), "--to", "csv", "--out", str(out), "--overwrite"]) == 0
    assert {"agents.csv", "readouts.csv"} <= {p.name for p in out.iterdir()}
    assert not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
