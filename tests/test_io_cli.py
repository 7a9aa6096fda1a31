"""Run files, the reader, the CLI, bad input and determinism across processes/threads."""
import hashlib

import h5py
import numpy as np
import pytest

import niche
from niche.io import RunFileError, open_run

TINY = ["--set", "domain.shape_voxels=[16,16,16]", "--set", "vessels.count=2",
        "--set", "run.frame_interval_days=0.125", "--days", "0.25", "--quiet"]


def test_python_run_and_reader(tmp_path, tiny):
    out = tmp_path / "r.h5"
    res = niche.run("default", out, overrides=tiny(0.25))
    assert res.path == out and out.exists() and not (tmp_path / "r.h5.partial").exists()
    with open_run(out) as rf:
        assert rf.status == "complete"
        assert rf.n_frames == res.frames == 3
        np.testing.assert_allclose(rf.times, [0, 0.125, 0.25])
        assert rf.field("TNF", -1).shape == (16, 16, 16)
        assert rf.bone(0).dtype == np.uint8
        df = rf.agents(2)
        assert len(df) == rf.n_agents(2) == int(rf.readouts["n_tcell"].iloc[2]
                                                 + rf.readouts[[f"n_{t}" for t in
                                                  ("ilc2", "monocyte", "osteoclast",
                                                   "osteoblast")]].iloc[2].sum())
        assert set(df["type_name"].unique()) <= set(rf.type_names)
        sc = rf.scenario()
        assert sc.domain.shape_voxels == (16, 16, 16)
        assert rf.readouts["bv_tv"].iloc[-1] == pytest.approx(res.readouts["bv_tv"])
        with pytest.raises(IndexError):
            rf.bone(3)
        a = rf.attrs
        assert a["format"] == "niche-run" and "numpy" in a["library_versions"]
        with h5py.File(out) as f:
            assert f["fields/TNF"].attrs["units"] == "pM"


def test_cli_run_and_info(cli):
    r = cli("run", "default", "--out", "a.h5", *TINY)
    assert r.returncode == 0, r.stderr
    assert "bv_tv" in r.stdout and "wall time" in r.stdout
    r = cli("info", "a.h5")
    assert r.returncode == 0 and "frames 3" in r.stdout


@pytest.mark.parametrize("args, needle", [
    (["run", "nope.toml"], "does not exist"),
    (["run", "default", "--set", "run.dayz=1"], "run.dayz: unknown key"),
    (["run", "default", "--set", "run.days=abc"], "run.days"),
    (["run", "default", "--set", "cells.tcell.speed_um_per_min=-1"], "greater than or equal to 0"),
    (["run", "bad.toml"], "malformed TOML"),
    (["info", "garbage.h5"], "not a readable HDF5"),
])
def test_cli_bad_input(cli, tmp_path, args, needle):
    (tmp_path / "bad.toml").write_text("name = [\n")
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5 at all")
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("niche: error:") and needle in lines[0], r.stderr
    assert not list(tmp_path.glob("runs/*")) and not list(tmp_path.glob("*.partial"))


def test_cli_refuses_to_overwrite(cli, tmp_path):
    target = tmp_path / "exists.h5"
    target.write_bytes(b"precious")
    r = cli("run", "default", "--out", "exists.h5", *TINY)
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert target.read_bytes() == b"precious"
    assert not (tmp_path / "exists.h5.partial").exists()
    r = cli("run", "default", "--out", "exists.h5", "--overwrite", *TINY)
    assert r.returncode == 0, r.stderr
    with open_run(target) as rf:
        assert rf.n_frames == 3


def test_truncated_file_is_a_clear_error(tmp_path, tiny):
    out = tmp_path / "r.h5"
    niche.run("default", out, overrides=tiny(0.25))
    data = out.read_bytes()
    (tmp_path / "t.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(RunFileError):
        open_run(tmp_path / "t.h5")


def _digest(path):
    h = hashlib.sha256()
    with h5py.File(path) as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in sorted(names):
            h.update(n.encode())
            h.update(np.ascontiguousarray(f[n][()]).tobytes())
    return h.hexdigest()


def test_determinism_across_processes_and_threads(cli, tmp_path):
    args = ["run", "default", *TINY, "--seed", "11"]
    r1 = cli(*args, "--out", "t1.h5", env={"NUMBA_NUM_THREADS": "1"})
    r2 = cli(*args, "--out", "t2.h5", env={"NUMBA_NUM_THREADS": "2"})
    r3 = cli(*args[:-1], "12", "--out", "t3.h5", env={"NUMBA_NUM_THREADS": "2"})
    assert r1.returncode == r2.returncode == r3.returncode == 0, (r1.stderr, r2.stderr)
    d1, d2, d3 = (_digest(tmp_path / f"t{i}.h5") for i in (1, 2, 3))
    assert d1 == d2
    assert d1 != d3
