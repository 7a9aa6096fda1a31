"""Output levels (``output.level``): what each level stores, the reader, XDMF, CLI, viewer."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import niche
from niche.io import RunFileError, open_run
from niche.io.xdmf import write_xdmf
from niche.scenario import ConfigError, load_scenario

#: 16^3, 8 frames (0 .. 7 at 1/16 day): field_every = 3 stores fields at 0, 3, 6, 7
BASE = {"domain.shape_voxels": [16, 16, 16], "vessels.count": 2, "run.days": 0.4375,
        "run.frame_interval_days": 0.0625, "run.seed": 5, "output.xdmf": False}
N = 8


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("levels")
    extra = {"full": {}, "frames": {"output.field_every": 3}, "summary": {}}
    out = {}
    for level in ("full", "frames", "summary"):
        p = d / f"{level}.h5"
        niche.run("default", p, overrides={**BASE, "output.level": level, **extra[level]})
        out[level] = p
    return out


def test_each_level_stores_what_it_promises(runs):
    want = {"full": (list(range(N)),) * 3,
            "frames": ([0, 3, 6, 7], list(range(N)), list(range(N))),
            "summary": ([0, N - 1],) * 3}
    for level, (ff, bf, af) in want.items():
        with open_run(runs[level]) as r:
            assert r.level == level and r.n_frames == N and r.status == "complete"
            assert r.field_frames("TNF").tolist() == ff
            assert r.bone_frames.tolist() == bf and r.agent_frames.tolist() == af
            assert r.h5["fields/TNF"].shape == (len(ff), 16, 16, 16)
            assert r.h5["bone"].shape == (len(bf), 16, 16, 16)
            assert r.frame_offsets.shape == (len(af) + 1,)
            assert r.h5["time_days"].shape == (N,) and len(r.readouts) == N
            assert r.attrs["format_version"] == (1 if level == "full" else 2)
            assert ("stored_frames" in r.h5) == (level != "full")
            # negative indices: the last frame is stored at every level
            assert r.field("TNF", -1).shape == (16, 16, 16)
            assert r.bone(-1).dtype == np.uint8 and len(r.agents(-1)) == r.n_agents(N - 1)


def test_levels_do_not_change_the_simulation(runs):
    with open_run(runs["full"]) as full:
        ro, times = full.readouts, full.times
        last = (full.field("TNF", -1), full.bone(-1), full.agents(-1))
        mid = (full.field("TNF", 3), full.bone(2), full.agents(2))
    for level in ("frames", "summary"):
        with open_run(runs[level]) as r:
            np.testing.assert_array_equal(r.times, times)
            assert r.readouts.equals(ro)
            np.testing.assert_array_equal(r.field("TNF", -1), last[0])
            np.testing.assert_array_equal(r.bone(-1), last[1])
            assert r.agents(-1).equals(last[2])
            if level == "frames":
                np.testing.assert_array_equal(r.field("TNF", 3), mid[0])
                np.testing.assert_array_equal(r.bone(2), mid[1])
                assert r.agents(2).equals(mid[2])


def test_sizes_shrink(runs):
    size = {k: p.stat().st_size for k, p in runs.items()}
    assert size["summary"] < size["frames"] < size["full"], size


@pytest.mark.parametrize("level, call, needle", [
    ("frames", lambda r: r.field("TNF", 1), "field 'TNF' is stored at frames [0, 3, 6, 7]"),
    ("summary", lambda r: r.bone(3), "bone is stored at frames [0, 7]"),
    ("summary", lambda r: r.agents(-2), "the agent table is stored at frames [0, 7]"),
    ("summary", lambda r: r.n_agents(1), "stored at frames [0, 7]"),
])
def test_reader_errors_name_the_stored_frames(runs, level, call, needle):
    with open_run(runs[level]) as r:
        with pytest.raises(RunFileError) as e:
            call(r)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and f"level {level!r}" in msg


def test_version_1_full_file_reads_as_before(runs, tmp_path):
    """A full file is version 1 with no frame index; strip the new root attr too."""
    p = tmp_path / "v1.h5"
    shutil.copy(runs["full"], p)
    with h5py.File(p, "a") as f:
        del f.attrs["output_level"]
        assert f.attrs["format_version"] == 1
    with open_run(p) as r:
        assert r.level == "full" and r.n_frames == N
        assert r.field_frames("TNF").tolist() == list(range(N))
        assert r.field("TNF", 4).shape == (16, 16, 16) and r.bone(5).shape == (16, 16, 16)
        assert r.frame_offsets.shape == (N + 1,)
        with pytest.raises(IndexError):
            r.bone(N)


def test_partial_file_reports_only_complete_frames(runs, tmp_path):
    """Cut a frames-level file as a kill would: frame 7's fields and bone written, no time."""
    p = tmp_path / "cut.h5.partial"
    shutil.copy(runs["frames"], p)
    with h5py.File(p, "a") as f:
        for name in f["readouts"]:
            f["readouts"][name].resize((N - 1,))
        f["time_days"].resize((N - 1,))
        f.attrs["status"] = "running"
    with open_run(p) as r:
        assert r.n_frames == N - 1
        assert r.field_frames("TNF").tolist() == [0, 3, 6]
        assert r.bone_frames.tolist() == list(range(N - 1))
        assert r.field("TNF", -1).shape == (16, 16, 16)  # frame 6
        with pytest.raises(IndexError):
            r.bone(N - 1)


@pytest.mark.parametrize("level", ["full", "frames", "summary"])
def test_xdmf_at_every_level(runs, tmp_path, level):
    xml = write_xdmf(runs[level], tmp_path / f"{level}.xdmf")
    text = xml.read_text()
    with open_run(runs[level]) as r:
        nb, nf = r.bone_frames.size, r.stored_frames("fields").size
        n_fields = len(r.field_names)
    assert text.count('<Grid Name="lattice_') == nb
    assert text.count('<Attribute Name="TNF"') == nf
    assert text.count('<Attribute Name="bone"') == nb
    with h5py.File(tmp_path / f"{level}.xdmf.h5") as c:
        assert c["bone"].shape[0] == nb and c["fields/TNF"].shape[0] == nf
    assert text.count('<Attribute Name="vessel"') == nb and n_fields > 1


def test_cli_info_prints_the_level(cli, runs):
    r = cli("info", str(runs["frames"]))
    assert r.returncode == 0, r.stderr
    assert "output level frames (fields every 3 frames)" in r.stdout
    assert "fields stored at 4 of 8 frames: [0, 3, 6, 7]" in r.stdout
    r = cli("info", str(runs["full"]))
    assert r.returncode == 0 and "output level full" in r.stdout


@pytest.mark.parametrize("ov, needle", [
    ({"output.level": "some"}, "output.level"),
    ({"output.field_every": 0}, "output.field_every"),
    ({"output.field_every": 5}, 'output.field_every = 5 needs output.level = "frames"'),
    ({"output.level": "summary", "output.field_every": 2}, "output.field_every"),
])
def test_bad_output_settings_name_the_key(ov, needle):
    with pytest.raises(ConfigError) as e:
        load_scenario("default", ov)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_level_defaults_and_toml():
    sc = load_scenario("default", {"output.level": "frames"})
    assert sc.output.field_every == 10 and 'level = "frames"' in sc.to_toml()
    assert load_scenario("default", {"output.level": "full", "output.field_every": 1})
    full = load_scenario("default")
    assert full.output.level == "full" and "\nlevel = " not in full.to_toml()
    assert load_scenario(__import__("tomllib").loads(sc.to_toml())).output == sc.output


def test_cli_render_last_frame_of_summary(cli, runs, tmp_path):
    pytest.importorskip("pyvista")
    r = cli("render", str(runs["summary"]), "--frame", "-1", "--out", "s.png",
            "--size", "200x150")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.png").stat().st_size > 0
    r = cli("render", str(runs["summary"]), "--frame", "2", "--out", "t.png",
            "--size", "200x150")
    assert r.returncode != 0 and "stored at frames [0, 7]" in r.stderr
