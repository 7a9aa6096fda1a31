"""Damaged run files (issue 17): every entry point gives a clean error and leaves nothing.

One small real run file is damaged in many ways (truncated, zeroed or bit-flipped bytes in
the header and in data chunks, not HDF5 at all, missing or malformed attributes and
datasets, bad frame offsets and stored frames, ...). Each variant goes through

* ``niche.open_run`` in process: it either raises :class:`RunFileError` or opens, and then
  reading every frame either works or raises :class:`RunFileError` (nothing else);
* ``niche info`` and ``niche export-xdmf`` through ``niche.cli.main``: status 0 or 2, at
  most one ``niche: error:`` line, no traceback, and the variant's folder holds exactly what
  it held before (no sidecar, no companion, no ``.partial`` file) unless the export worked;
* ``niche render`` for a handful of variants (slower: VTK).

Variants marked as structurally bad must fail at open; data damage must fail the export.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import niche
from niche.cli import main
from niche.io import RunFileError, open_run

from .conftest import tiny_overrides

# what each variant must do: "ok" everything works; "open" open_run (and so info and
# export) fails; "data" reading every frame and the export fail; "read" reading every frame
# fails; "export" only the export fails (nothing to export); "any" clean either way
VARIANTS: dict[str, tuple[str, object]] = {}


def variant(name: str, must: str):
    """Register ``make(bases, dst)``, which writes the variant to ``dst`` from the base
    files (``bases["v1"]``: the run file; ``bases["v2"]``: its format-version-2 copy)."""
    def add(fn):
        VARIANTS[name] = (must, fn)
        return fn
    return add


def _bytes(name: str, must: str, change):
    """A variant made by changing the bytes of the run file: ``change(data, base)``."""
    def make(bases: dict, dst: Path) -> None:
        data = bytearray(bases["v1"].read_bytes())
        dst.write_bytes(bytes(change(data, bases["v1"])))
    variant(name, must)(make)


def _edit(name: str, must: str, edit, base: str = "v1"):
    """A variant made by editing a copy of the run file with h5py: ``edit(f)``."""
    def make(bases: dict, dst: Path) -> None:
        shutil.copyfile(bases[base], dst)
        with h5py.File(dst, "a") as f:
            edit(f)
    variant(name, must)(make)


def _chunk(path: Path, name: str, i: int = 0) -> slice:
    """Byte range of chunk ``i`` of dataset ``name``."""
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(i)
    return slice(info.byte_offset, info.byte_offset + info.size)


def _zero(data: bytearray, where: slice, byte: int = 0) -> bytearray:
    data[where] = bytes([byte]) * len(data[where])
    return data


def _flip(data: bytearray, where: slice, n: int, seed: int) -> bytearray:
    lo, hi, _ = where.indices(len(data))
    rng = np.random.default_rng(seed)
    for pos, bit in zip(rng.integers(lo, hi, n), rng.integers(0, 8, n)):
        data[pos] ^= 1 << int(bit)
    return data


def _replace(f: h5py.File, name: str, data, **kw) -> None:
    del f[name]
    f.create_dataset(name, data=data, **kw)


# -- not a run file at all
_bytes("empty", "open", lambda d, b: b"")
_bytes("random_bytes", "open", lambda d, b: np.random.default_rng(1).bytes(4096))
_bytes("text", "open", lambda d, b: b"not an HDF5 file\n")
variant("directory", "open")(lambda bases, dst: dst.mkdir())


@variant("other_hdf5", "open")
def _other_hdf5(bases, dst):
    with h5py.File(dst, "w") as f:
        f["x"] = np.arange(10)
        f.attrs["format"] = "something-else"


# -- truncated (the superblock records the end of file: HDF5 refuses these at open)
for _cut in (8, 100, 2048):
    _bytes(f"truncated_{_cut}b", "open", lambda d, b, c=_cut: d[:c])
for _part in (0.25, 0.5, 0.9):
    _bytes(f"truncated_{_part}", "open", lambda d, b, q=_part: d[: int(len(d) * q)])
_bytes("truncated_1b_short", "open", lambda d, b: d[:-1])
# -- bytes damaged in the header and in data chunks
_bytes("zero_superblock", "open", lambda d, b: _zero(d, slice(0, 64)))
_bytes("zero_header", "any", lambda d, b: _zero(d, slice(96, 2048)))
_bytes("flip_header", "any", lambda d, b: _flip(d, slice(0, 4096), 24, seed=2))
_bytes("zero_bone_chunk", "data", lambda d, b: _zero(d, _chunk(b, "bone", 2)))
_bytes("zero_field_chunk", "data", lambda d, b: _zero(d, _chunk(b, "fields/TNF", 2)))
_bytes("flip_field_chunk", "any", lambda d, b: _flip(d, _chunk(b, "fields/IL10", 1), 8, seed=3))
_bytes("zero_agent_chunk", "data", lambda d, b: _zero(d, _chunk(b, "agents/x")))
_bytes("zero_offsets_chunk", "any", lambda d, b: _zero(d, _chunk(b, "agents/frame_offsets")))
_bytes("nan_time_chunk", "open", lambda d, b: _zero(d, _chunk(b, "time_days"), 0xFF))
_bytes("zero_middle_tenth", "any", lambda d, b: _zero(d, slice(len(d) // 2,
                                                                 len(d) // 2 + len(d) // 10)))
_bytes("zero_last_tenth", "any", lambda d, b: _zero(d, slice(len(d) - len(d) // 10, None)))
_bytes("garbage_appended", "ok", lambda d, b: d + np.random.default_rng(4).bytes(1000))

# -- root attributes
_edit("no_format", "open", lambda f: f.attrs.__delitem__("format"))
_edit("format_too_new", "open", lambda f: f.attrs.__setitem__("format_version", 99))
_edit("format_version_text", "open", lambda f: f.attrs.__setitem__("format_version", "2"))
_edit("no_shape", "open", lambda f: f.attrs.__delitem__("shape_zyx"))
_edit("shape_mismatch", "open", lambda f: f.attrs.__setitem__("shape_zyx", [8, 8, 8]))
_edit("shape_text", "open", lambda f: f.attrs.__setitem__("shape_zyx", "16x16x16"))
_edit("shape_negative", "open", lambda f: f.attrs.__setitem__("shape_zyx", [16, -16, 16]))
_edit("voxel_negative", "open", lambda f: f.attrs.__setitem__("voxel_um", -10.0))
_edit("voxel_text", "open", lambda f: f.attrs.__setitem__("voxel_um", "ten"))
_edit("type_names_garbage", "open", lambda f: f.attrs.__setitem__("type_names", "{not json"))
_edit("field_names_garbage", "open", lambda f: f.attrs.__setitem__("field_names", "[1, 2"))
_edit("library_versions_garbage", "open",
      lambda f: f.attrs.__setitem__("library_versions", "numpy 2"))
_edit("status_array", "open", lambda f: f.attrs.__setitem__("status", np.arange(3)))
# -- datasets: missing, wrong shape or dtype, bad values
_edit("no_time", "open", lambda f: f.__delitem__("time_days"))
_edit("time_2d", "open", lambda f: _replace(f, "time_days", np.zeros((3, 1))))
_edit("time_text", "open", lambda f: _replace(f, "time_days", np.array([b"0", b"1", b"2"])))
_edit("time_descending", "open", lambda f: _replace(f, "time_days", [0.5, 0.25, 0.0]))
_edit("no_fields", "open", lambda f: f.__delitem__("fields"))
_edit("fields_a_dataset", "open", lambda f: _replace(f, "fields", np.zeros(3)))
_edit("field_shape", "open", lambda f: _replace(f, "fields/TNF", np.zeros((3, 8, 8, 8), "f4")))
_edit("field_int", "open", lambda f: _replace(f, "fields/TNF", np.zeros((3, 16, 16, 16), "i4")))
_edit("no_bone", "open", lambda f: f.__delitem__("bone"))
_edit("bone_3d", "open", lambda f: _replace(f, "bone", np.zeros((3, 16, 16), "u1")))
_edit("no_vessel", "open", lambda f: f.__delitem__("vessel"))
_edit("no_agent_column", "open", lambda f: f.__delitem__("agents/x"))
_edit("agent_column_text", "open", lambda f: _replace(f, "agents/type", np.array([b"a"] * 5)))
_edit("agent_column_2d", "open", lambda f: _replace(f, "agents/z", np.zeros((5, 2), "i4")))
_edit("no_offsets", "open", lambda f: f.__delitem__("agents/frame_offsets"))
_edit("offsets_empty", "open", lambda f: _replace(f, "agents/frame_offsets", np.zeros(0, "i8")))
_edit("offsets_float", "open", lambda f: _replace(f, "agents/frame_offsets", np.zeros(4)))


def _offsets(f: h5py.File, values) -> None:
    off = f["agents/frame_offsets"][:]
    off[: len(values)] = values
    _replace(f, "agents/frame_offsets", off)


_edit("offsets_negative", "open", lambda f: _offsets(f, [0, -5]))
_edit("offsets_descending", "open",
      lambda f: _offsets(f, [0, f["agents/x"].shape[0] - 1, 1]))
_edit("offsets_past_end", "open", lambda f: _offsets(f, [0, 1, 2, 10 ** 9]))
_edit("type_codes_out_of_range", "read",
      lambda f: f["agents/type"].__setitem__(slice(None), 99))
_edit("no_readouts", "open", lambda f: f.__delitem__("readouts"))
_edit("readout_2d", "open", lambda f: _replace(f, "readouts/bv_tv", np.zeros((3, 2))))
_edit("no_frames", "export", lambda f: f["agents/frame_offsets"].resize((1,)))
# -- stored frames (a format-version-2 copy that lists every frame)
_edit("v2_valid", "ok", lambda f: None, base="v2")
_edit("stored_descending", "open", lambda f: _replace(f, "stored_frames/bone", [0, 2, 1]),
      base="v2")
_edit("stored_negative", "open", lambda f: _replace(f, "stored_frames/bone", [-1, 0, 1]),
      base="v2")
_edit("stored_past_time", "open", lambda f: _replace(f, "stored_frames/agents", [0, 1, 7]),
      base="v2")
_edit("stored_float", "open", lambda f: _replace(f, "stored_frames/fields", [0.0, 1.0, 2.0]),
      base="v2")
_edit("stored_a_dataset", "open", lambda f: _replace(f, "stored_frames", np.arange(3)),
      base="v2")


def _more_stored_than_held(f: h5py.File) -> None:
    for name in f["fields"]:
        f["fields"][name].resize((2, 16, 16, 16))


_edit("stored_more_than_held", "open", _more_stored_than_held, base="v2")
_edit("intact", "ok", lambda f: None)

NAMES = sorted(VARIANTS)


def _make_v2(v1: Path, dst: Path) -> None:
    """A valid format-version-2 copy of ``v1``: level frames, /stored_frames lists all."""
    shutil.copyfile(v1, dst)
    with h5py.File(dst, "a") as f:
        n = f["time_days"].shape[0]
        f.attrs.update(format_version=2, output_level="frames", field_every=1)
        for kind in ("fields", "bone", "agents"):
            f.create_dataset(f"stored_frames/{kind}", data=np.arange(n, dtype=np.int64),
                             maxshape=(None,))


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, Path]:
    """Each variant as ``<its own folder>/run.h5``."""
    root = tmp_path_factory.mktemp("corrupt")
    v1 = root / "base" / "v1.h5"
    niche.run("default", v1, progress=False, overrides={
        **tiny_overrides(0.5), "output.xdmf": False})
    bases = {"v1": v1, "v2": root / "base" / "v2.h5"}
    _make_v2(v1, bases["v2"])
    out = {}
    for name, (_, make) in VARIANTS.items():
        dst = root / name / "run.h5"
        dst.parent.mkdir()
        make(bases, dst)
        out[name] = dst
    return out


def _read_everything(rf) -> None:
    rf.readouts, rf.vessel, rf.attrs, rf.type_names
    for k in range(rf.n_frames):
        for name in rf.field_names:
            if k in rf.field_frames(name):
                rf.field(name, k)
        if k in rf.bone_frames:
            rf.bone(k)
        if k in rf.agent_frames:
            assert len(rf.agents(k)) == rf.n_agents(k)


def _one_line(msg: str, path: Path) -> None:
    assert "\n" not in msg and path.name in msg, msg


@pytest.mark.parametrize("name", NAMES)
def test_open_run_raises_only_run_file_errors(variants, name):
    must, path = VARIANTS[name][0], variants[name]
    try:
        rf = open_run(path)
    except RunFileError as e:
        assert must not in ("ok", "read", "export"), f"{name}: {e}"
        _one_line(str(e), path)
        return
    assert must != "open", f"{name} opened: {rf!r}"
    with rf:
        try:
            _read_everything(rf)
        except RunFileError as e:
            assert must in ("data", "read", "any"), f"{name}: {e}"
            _one_line(str(e), path)
            return
    assert must in ("ok", "export", "any"), f"{name}: every frame was read"


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1)
                  for p in folder.rglob("*"))


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if rc:
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("niche: error:"), err
        assert not out, out
    else:
        assert not lines, err
    return rc, out, err


@pytest.mark.parametrize("name", NAMES)
def test_cli_info(variants, name, capsys):
    must, path = VARIANTS[name][0], variants[name]
    before = _listing(path.parent)
    rc, out, _ = _cli(capsys, "info", path)
    assert rc == (2 if must == "open" else 0) or must in ("data", "any"), (name, rc)
    assert rc or "output level" in out
    assert _listing(path.parent) == before


@pytest.mark.parametrize("name", NAMES)
def test_cli_export_xdmf_leaves_nothing_behind(variants, name, capsys):
    must, path = VARIANTS[name][0], variants[name]
    before = _listing(path.parent)
    rc, out, _ = _cli(capsys, "export-xdmf", path)
    if must in ("open", "data", "export"):
        assert rc == 2, name
    elif must == "ok":
        assert rc == 0, name
    after = _listing(path.parent)
    if rc == 0:
        sidecars = [path.with_suffix(".xdmf"), path.with_suffix(".xdmf.h5")]
        assert {n for n, _ in after} - {n for n, _ in before} == {p.name for p in sidecars}
        for p in sidecars:
            p.unlink()
        after = _listing(path.parent)
    assert after == before


@pytest.mark.parametrize("name", ["zero_bone_chunk", "zero_agent_chunk"])
def test_cli_export_into_new_folder_removes_it(variants, name, capsys):
    path = variants[name]
    before = _listing(path.parent)
    rc, _, _ = _cli(capsys, "export-xdmf", path, "--out", path.parent / "new" / "deep" / "a.xdmf")
    assert rc == 2 and _listing(path.parent) == before


RENDER = ["truncated_0.5", "zero_bone_chunk", "zero_field_chunk", "offsets_past_end",
          "type_codes_out_of_range", "no_frames"]


@pytest.mark.parametrize("name", RENDER)
def test_cli_render_is_one_line_and_leaves_nothing(variants, name, capsys):
    pytest.importorskip("pyvista")
    path = variants[name]
    before = _listing(path.parent)
    rc, _, _ = _cli(capsys, "render", path, "--size", "160x120", "--no-charts")
    assert rc == 2, name
    assert _listing(path.parent) == before


def test_cli_render_movie_leaves_nothing(variants, capsys):
    pytest.importorskip("imageio")
    pytest.importorskip("pyvista")
    path = variants["zero_bone_chunk"]
    before = _listing(path.parent)
    rc, _, _ = _cli(capsys, "render", path, "--size", "160x120", "--no-charts",
                    "--field", "none", "--movie", path.parent / "m.gif")
    assert rc == 2 and _listing(path.parent) == before


def test_campaign_size():
    assert len(VARIANTS) >= 30
