"""3D replay (niche.viz): off-screen pictures and movies, the scene, the XDMF sidecar, the CLI."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

import niche
from niche.io import open_run
from niche.viz import style
from niche.viz.render import SceneOptions, open_scene, render_frame, render_movie
from niche.io.xdmf import write_xdmf, xdmf_paths

from .conftest import tiny_overrides


@pytest.fixture(scope="session")
def synthetic_path(tmp_path_factory):
    from niche.viz.synthetic import write_synthetic_run

    return write_synthetic_run(tmp_path_factory.mktemp("syn") / "syn.h5", shape=(20, 24, 28),
                               n_cells=400, frames=3)


def _hsv(img: np.ndarray) -> np.ndarray:
    rgb = img[..., :3].reshape(-1, 3).astype(float) / 255.0
    return np.array([colorsys.rgb_to_hsv(*p) for p in rgb[::3]])  # every 3rd pixel: fast


def _hue_pixels(hsv: np.ndarray, color: str, tol: float = 0.045) -> int:
    h = colorsys.rgb_to_hsv(*style.hex_rgb(color))[0]
    d = np.abs(hsv[:, 0] - h)
    d = np.minimum(d, 1.0 - d)
    return int(((d < tol) & (hsv[:, 1] > 0.35) & (hsv[:, 2] > 0.2)).sum())


def _bone_pixels(hsv: np.ndarray) -> int:
    """Bright, barely saturated pixels: the ivory bone (the background is dark)."""
    return int(((hsv[:, 1] < 0.25) & (hsv[:, 2] > 0.45)).sum())


# ---------------------------------------------------------------------------- pictures
def test_render_shows_bone_every_cell_type_and_changes_over_time(run_path, tmp_path):
    with open_run(run_path) as run:
        counts = run.agents(0)["type_name"].value_counts()
        assert all(counts.get(t, 0) > 0 for t in run.type_names), counts
        opts = SceneOptions(field=None, field_mode="none", charts=False, size=(480, 360))
        scene = open_scene(run, opts, frame=0)
        try:
            first = scene.screenshot(tmp_path / "f0.png")
            hsv = _hsv(first)
            background = np.all(first == first[0, 0], axis=-1).mean()
            assert background < 0.85 and first.std() > 20, "image is blank"
            scene.bone_actor.visibility = False
            scene.plotter.render()
            assert _bone_pixels(hsv) > 3 * _bone_pixels(_hsv(scene.screenshot())) + 100
            scene.bone_actor.visibility = True
            for t in run.type_names:
                scene.set_type_visible(t, False)
                without = _hue_pixels(_hsv(scene.screenshot()), style.TYPE_COLORS[t])
                scene.set_type_visible(t, True)
                assert _hue_pixels(hsv, style.TYPE_COLORS[t]) > without + 5, t
            scene.set_frame(-1)
            last = scene.screenshot(tmp_path / "f_last.png")
        finally:
            scene.close()
    assert np.any(first != last, axis=-1).mean() > 0.01, "frames look the same"


def test_render_frame_png_with_charts_and_volume(run_path, tmp_path):
    import imageio.v3 as iio

    with open_run(run_path) as run:
        out = render_frame(run, tmp_path / "v.png", frame=1,
                           opts=SceneOptions(field="TNF", field_mode="volume", camera="top",
                                             size=(640, 360)))
    img = iio.imread(out)
    assert img.shape[:2] == (360, 640)
    right = img[:, int(640 * 0.75):]  # the chart panel: white background, dark curves
    assert (right.mean(-1) > 240).mean() > 0.5 and (right.mean(-1) < 100).mean() > 0.005


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_movie(run_path, tmp_path, suffix):
    import imageio.v3 as iio

    with open_run(run_path) as run:
        stats = render_movie(run, tmp_path / f"m{suffix}", opts=SceneOptions(size=(321, 240)))
        assert stats.frames == run.n_frames and stats.seconds_per_frame > 0
    frames = iio.imread(stats.path, index=None)
    assert frames.shape[0] == 3 and frames.shape[1:3] == (240, 322)
    assert np.any(frames[0] != frames[-1])
    assert not list(tmp_path.glob("*.partial*"))


def test_bone_formed_and_resorbed_are_drawn(synthetic_path):
    with open_run(synthetic_path) as run:
        scene = open_scene(run, SceneOptions(charts=False, size=(320, 240)), frame=-1)
        try:
            assert scene.formed_voxels > 0 and scene.resorbed_voxels > 0
            rgb = np.asarray(scene.bone_mesh.point_data["rgb"])
            new = np.round(style.hex_rgb(style.NEW_BONE_RGB) * 255)
            assert np.all(rgb == new, axis=1).any()
            assert scene.resorbed_mesh.n_points > 0
            scene.set_frame(0)
            assert scene.formed_voxels == scene.resorbed_voxels == 0
            assert scene.resorbed_mesh.n_points == 0
        finally:
            scene.close()


def test_scene_controls(run_path):
    from niche.viz.desktop import build_viewer

    with open_run(run_path) as run:
        ui = build_viewer(run, SceneOptions(size=(400, 300)), off_screen=True)
        try:
            ui.set_frame(2)
            assert ui.scene.frame == 2 and ui.slider.GetRepresentation().GetValue() == 2
            ui.toggle_play()
            ui.tick()
            assert ui.state.playing and ui.scene.frame == 0  # wraps around
            ui.set_field("IL10")
            ui.toggle_mode()
            assert (ui.scene.field, ui.scene.field_mode) == ("IL10", "volume")
            ui.set_field("none")
            assert ui.scene.field is None
            ui.toggle_type("tcell", False)
            assert not ui.scene.cell_actors["tcell"].visibility
            ui.scene.set_camera("side")
            with pytest.raises(ValueError):
                ui.scene.set_camera("nope")
            with pytest.raises(KeyError):
                ui.scene.set_field("nope")
        finally:
            ui.scene.close()


def test_style_covers_every_type():
    from niche.core.cells import TYPE_NAMES, State

    assert set(style.TYPE_COLORS) == set(style.TYPE_LABELS) == set(TYPE_NAMES)
    treg = style.cell_rgb("tcell", np.array([0, State.REGULATORY], np.uint32))
    assert treg[1].sum() < treg[0].sum()  # Tregs darker
    r = style.cell_radius_vox("osteoclast", np.array([1, 4, 50]))
    assert r[0] < r[1] <= r[2] <= 1.2


# ---------------------------------------------------------------------------- XDMF
def _read_xdmf(path):
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    r = vtk.vtkXdmfReader()
    r.SetFileName(str(path))
    r.UpdateInformation()
    times = r.GetOutputInformation(0).Get(vtk.vtkStreamingDemandDrivenPipeline.TIME_STEPS())
    out = []
    for t in times:
        r.UpdateTimeStep(t)
        mb = r.GetOutputDataObject(0)
        blocks = {mb.GetMetaData(i).Get(vtk.vtkCompositeDataSet.NAME()): mb.GetBlock(i)
                  for i in range(mb.GetNumberOfBlocks())}
        lat, ag = blocks["lattice"], blocks.get("agents")
        cells = {lat.GetCellData().GetArrayName(i): vtk_to_numpy(lat.GetCellData().GetArray(i))
                 for i in range(lat.GetCellData().GetNumberOfArrays())}
        agents = None
        if ag is not None:
            agents = {"points": vtk_to_numpy(ag.GetPoints().GetData()),
                      "type": vtk_to_numpy(ag.GetPointData().GetArray("type"))}
        out.append({"time": t, "dims": lat.GetDimensions(), "spacing": lat.GetSpacing(),
                    "cells": cells, "agents": agents})
    return np.array(times), out


@pytest.mark.parametrize("kind", ["with_run", "export"])
def test_xdmf_sidecar_loads_in_vtk(run_path, synthetic_path, tmp_path, kind):
    if kind == "with_run":  # written by niche.run itself (gzip companion)
        path, xml = run_path, xdmf_paths(run_path)[0]
        assert xml.exists() and xdmf_paths(run_path)[1].exists()
    else:  # niche export-xdmf's function, elsewhere, on a non-cubic lattice
        path = synthetic_path
        xml = write_xdmf(path, tmp_path / "sub" / "s.xdmf")
    times, frames = _read_xdmf(xml)
    with open_run(path) as run:
        np.testing.assert_allclose(times, run.times)
        Z, Y, X = run.shape
        field = run.field("TNF", -1)
        bone = run.bone(-1)
        last = frames[-1]
        assert last["dims"] == (X + 1, Y + 1, Z + 1)
        assert last["spacing"] == pytest.approx((run.voxel_um,) * 3)
        # spot-check voxels: XDMF dims are Z Y X, so VTK's flat cell id is x + X*(y + Y*z)
        z, y, x = np.unravel_index(np.argmax(field), field.shape)
        cid = x + X * (y + Y * z)
        assert last["cells"]["TNF"][cid] == pytest.approx(field[z, y, x])
        assert field[z, y, x] > 0
        np.testing.assert_array_equal(last["cells"]["bone"], bone.ravel())
        for k, fr in enumerate(frames):
            assert fr["agents"]["type"].size == run.n_agents(k)
        ag = run.agents(-1)
        np.testing.assert_allclose(last["agents"]["points"][0],
                                   (np.array([ag.x[0], ag.y[0], ag.z[0]]) + 0.5) * run.voxel_um)


def test_xdmf_setting_off_and_link(tmp_path, run_path):
    out = tmp_path / "n.h5"
    niche.run("default", out, overrides={**tiny_overrides(0.25), "output.xdmf": False})
    assert not any(p.exists() for p in xdmf_paths(out))
    xml = write_xdmf(out, link=True)
    text = xml.read_text()
    assert "n.h5:/bone" in text and not xdmf_paths(out)[1].exists()


# ---------------------------------------------------------------------------- CLI
def test_cli_render_and_export(cli, run_path, tmp_path):
    r = cli("render", run_path, "--frame", "1", "--out", "fig.png", "--size", "320x240",
            "--camera", "front", "--types", "osteoclast,tcell", "--no-charts")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fig.png").stat().st_size > 1000 and "frame 1" in r.stdout
    r = cli("render", run_path, "--movie", "m.gif", "--frames", "0:3:2", "--size", "160x120")
    assert r.returncode == 0, r.stderr
    assert "2 frames" in r.stdout
    r = cli("export-xdmf", run_path, "--out", "copy.xdmf")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "copy.xdmf").exists() and (tmp_path / "copy.xdmf.h5").exists()


@pytest.mark.parametrize("cmd, damage", [
    *((c, "truncated") for c in (["render"], ["view"], ["serve", "--port", "0"],
                                  ["export-xdmf"])),
    (["render"], "garbage"), (["render"], "missing"), (["render"], "no_frames"),
    (["render"], "corrupt"), (["export-xdmf"], "corrupt"), (["export-xdmf"], "no_frames"),
])
def test_cli_bad_run_file_is_one_line(cli, run_path, tmp_path, cmd, damage):
    bad = tmp_path / "bad.h5"
    data = run_path.read_bytes()
    if damage == "garbage":
        bad.write_bytes(b"not an HDF5 file")
    elif damage == "truncated":
        bad.write_bytes(data[: int(len(data) * 0.8)])
    elif damage == "corrupt":  # zeros over the last frame's compressed bone and TNF chunks
        import h5py

        b = bytearray(data)
        with h5py.File(run_path, "r") as f:
            for name in ("bone", "fields/TNF"):
                ds = f[name]
                info = ds.id.get_chunk_info_by_coord((ds.shape[0] - 1, 0, 0, 0))
                b[info.byte_offset: info.byte_offset + info.size] = bytes(info.size)
        bad.write_bytes(bytes(b))
    elif damage == "no_frames":
        import h5py

        bad.write_bytes(data)
        with h5py.File(bad, "a") as f:
            f["agents/frame_offsets"].resize((1,))
    r = cli(cmd[0], bad, *cmd[1:])
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("niche: error:"), r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--field", "nope"], "no field 'nope'"),
    (["--types", "tcell,dragon"], "dragon"),
    (["--frame", "99"], "out of range"),
    (["--movie", "m.avi"], ".mp4 or .gif"),
    (["--slices", "99,0,0"], "outside the lattice"),
])
def test_cli_bad_options(cli, run_path, args, needle):
    r = cli("render", run_path, "--size", "160x120", *args)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
