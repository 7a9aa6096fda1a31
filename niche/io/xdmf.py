"""XDMF sidecar: open a run file as a time series in ParaView, VisIt or VTK.

``write_xdmf("runs/a.h5")`` writes ``runs/a.xdmf`` (XDMF 2, which VTK's ``vtkXdmfReader``
and ParaView's "XDMF Reader" read). It holds two temporal collections:

``lattice``
    One uniform grid per frame: a ``3DCoRectMesh`` whose cells are the voxels (node
    dimensions ``Z+1 Y+1 X+1``, spacing ``voxel_um``, origin 0, so lengths are in um), with
    cell data ``bone`` (uint8), ``vessel`` (uint8, static) and every stored field (float,
    pM). XDMF dimensions are slowest first, i.e. ``Z Y X``, which is the run file's C order:
    VTK's cell ``(i, j, k)`` is voxel ``(z=k, y=j, x=i)``.
``agents``
    One ``Polyvertex`` grid per frame: the rows ``[off[k], off[k+1])`` of the flat agent
    table, selected with HyperSlab data items (no copy), at voxel centres in um
    (``(x + 0.5) * voxel_um``), with point data ``type``, ``state``, ``nuclei``, ``id``,
    ``age_days``. Frames without cells are left out of this collection.

At a reduced output level (``output.level``) both collections list only the frames at
which bone (lattice) or agents are stored, and a lattice frame carries the fields only
where they are stored at that frame; the companion holds the stored frames only, with
``/stored_frames/<kind>`` naming them.

Where the data live: XDMF readers (ParaView, VisIt, VTK) use their own HDF5 library, which
cannot decode the Blosc-LZ4 filter that run files use by default, nor, when it is older than
HDF5 2.0, the object format that niche's writer (``libver="latest"``) produces. So the data
are copied once, frame by frame, into a companion ``a.xdmf.h5`` (gzip level 1 + shuffle,
oldest compatible HDF5 format, same layout as the run file) and the sidecar points there.
``link=True`` skips the copy and points into the run file itself, for readers whose HDF5 can
read it (HDF5 >= 2.0 and ``output.compression = "gzip"`` or ``"none"``). Files are referenced
by name, relative to the sidecar, so a folder can be moved as a whole.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from xml.sax.saxutils import quoteattr

import h5py
import numpy as np

from .runfile import _READ_ERRORS, RunFileError, _why, open_run

__all__ = ["write_xdmf", "xdmf_paths"]

_NUMBER = {  # numpy dtype -> (XDMF NumberType, Precision)
    "u1": ("UChar", 1), "i1": ("Char", 1), "i2": ("Int", 2), "u2": ("UInt", 2),
    "i4": ("Int", 4), "u4": ("UInt", 4), "i8": ("Int", 8), "u8": ("UInt", 8),
    "f2": ("Float", 2), "f4": ("Float", 4), "f8": ("Float", 8),
}
_AGENT_ATTRS = ("type", "state", "nuclei", "id", "age_days")
_GZIP = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


def xdmf_paths(run_path: str | os.PathLike) -> tuple[Path, Path]:
    """The sidecar (``a.xdmf``) and companion (``a.xdmf.h5``) paths of run file ``a.h5``."""
    p = Path(run_path)
    return p.with_suffix(".xdmf"), p.with_suffix(".xdmf.h5")


def _copy_companion(run, dst: Path) -> None:
    """Copy what the sidecar needs from ``run`` (a RunFile) into a gzip HDF5 file ``dst``.

    Frames are read through the RunFile, so a damaged chunk is a RunFileError naming it.
    """
    src = run.h5
    with h5py.File(dst, "w", libver="earliest") as out:
        out.attrs["source"] = run.path.name
        out.attrs["meaning"] = "gzip copy of a niche run file's data for its XDMF sidecar"
        out.create_dataset("time_days", data=run.times)
        out.create_dataset("vessel", data=run.vessel, **_GZIP)
        shape = run.shape
        frame_sets = [("bone", run.bone_frames, run.bone)] + [
            (f"fields/{k}", run.stored_frames("fields"), partial(run.field, k))
            for k in run.field_names]
        for name, stored, read in frame_sets:
            o = out.create_dataset(name, shape=(stored.size, *shape), dtype=src[name].dtype,
                                   chunks=(1, *shape), **_GZIP)
            for j, k in enumerate(stored):
                o[j] = read(int(k))
        for kind in ("fields", "bone", "agents"):
            out.create_dataset(f"stored_frames/{kind}", data=run.stored_frames(kind))
        na = run.agent_frames.size
        end = int(run.frame_offsets[na])
        out.create_dataset("agents/frame_offsets", data=run.frame_offsets[: na + 1])
        for c in ("x", "y", "z", *_AGENT_ATTRS):
            data = run._read(f"agents/{c}", slice(0, end), f"the agent column {c!r}")
            out.create_dataset(f"agents/{c}", data=data,
                               chunks=(max(1, min(65536, data.size)),) if data.size else None,
                               **(_GZIP if data.size else {}))


@contextmanager
def _staged(paths: list[Path]):
    """Write ``paths`` (in one folder) atomically: yields ``{path: temporary path}``; on
    success each temporary file is renamed onto its path, in order; on any error the
    temporary files and the folders made for them are removed: nothing is left behind."""
    made, d = [], paths[0].parent.absolute()
    while not d.exists():  # deepest first
        made.append(d)
        d = d.parent
    tmp = {p: p.with_name(p.name + ".partial") for p in paths}
    try:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        for p in paths:
            os.replace(tmp[p], p)
    except BaseException:
        for t in tmp.values():
            t.unlink(missing_ok=True)
        for d in made:
            try:
                d.rmdir()
            except OSError:  # not empty (someone else's) or already gone
                pass
        raise


def _item(fname: str, path: str, dtype: np.dtype, dims: tuple[int, ...]) -> str:
    nt, prec = _NUMBER[np.dtype(dtype).str[1:]]
    d = " ".join(map(str, dims))
    return (f'<DataItem Dimensions="{d}" NumberType="{nt}" Precision="{prec}" '
            f'Format="HDF">{fname}:/{path}</DataItem>')


def _slab(start: tuple[int, ...], count: tuple[int, ...], inner: str) -> str:
    """A HyperSlab of ``inner``; its Dimensions drop leading 1s (vtkXdmfReader needs that)."""
    r = len(start)
    dims = list(count)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    sel = " ".join(map(str, start)) + "  " + " ".join(["1"] * r) + "  " + " ".join(map(str, count))
    return (f'<DataItem ItemType="HyperSlab" Dimensions="{" ".join(map(str, dims))}" '
            f'Type="HyperSlab"><DataItem Dimensions="3 {r}" Format="XML">{sel}</DataItem>'
            f"{inner}</DataItem>")


def _lattice_grid(h5: h5py.File, fname: str, k: int, jb: int, jf: int | None, nb: int,
                  nf: int, t: str, voxel_um: float, shape: tuple[int, int, int]) -> str:
    """Frame ``k`` of the lattice: bone (slot ``jb`` of ``nb``), vessel and, when stored at
    this frame (slot ``jf`` of ``nf``), every field as voxel (cell) data."""
    Z, Y, X = shape
    vessel = _item(fname, "vessel", h5["vessel"].dtype, shape)
    attrs = [f'<Attribute Name="vessel" Center="Cell" AttributeType="Scalar">{vessel}</Attribute>']
    items = [("bone", "bone", jb, nb)]
    if jf is not None:
        items += [(f, f"fields/{f}", jf, nf) for f in h5["fields"]]
    for name, path, j, n in items:
        units = h5[path].attrs.get("units", "")
        info = f'<Information Name="units" Value={quoteattr(str(units))}/>' if units else ""
        data = _slab((j, 0, 0, 0), (1, Z, Y, X), _item(fname, path, h5[path].dtype, (n, *shape)))
        attrs.append(f'<Attribute Name={quoteattr(name)} Center="Cell" AttributeType="Scalar">'
                     f"{info}{data}</Attribute>")
    vec = '<DataItem Dimensions="3" NumberType="Float" Precision="8" Format="XML">{}</DataItem>'
    return (f'<Grid Name="lattice_{k}" GridType="Uniform">{t}'
            f'<Topology TopologyType="3DCoRectMesh" Dimensions="{Z + 1} {Y + 1} {X + 1}"/>'
            '<Geometry GeometryType="ORIGIN_DXDYDZ">' + vec.format("0 0 0")
            + vec.format(f"{voxel_um!r} {voxel_um!r} {voxel_um!r}") + "</Geometry>"
            + "".join(attrs) + "</Grid>")


def _agent_grid(h5: h5py.File, fname: str, k: int, start: int, count: int, t: str,
                voxel_um: float) -> str:
    """Frame ``k``'s cells: rows ``[start, start + count)`` of the flat agent table."""
    ag = h5["agents"]
    total = (int(ag["x"].shape[0]),)

    def col(c):
        return _slab((start,), (count,), _item(fname, f"agents/{c}", ag[c].dtype, total))

    # (x + 0.5) * voxel_um, written constant first: Xdmf 2 computes "$0 + 0.5" in the
    # integer type of $0
    coords = "".join(
        f'<DataItem ItemType="Function" Function="{voxel_um!r} * $0 + {voxel_um / 2!r}" '
        f'Dimensions="{count}">{col(c)}</DataItem>' for c in ("x", "y", "z"))
    pattrs = "".join(f'<Attribute Name="{c}" Center="Node" AttributeType="Scalar">'
                     f"{col(c)}</Attribute>" for c in _AGENT_ATTRS)
    return (f'<Grid Name="agents_{k}" GridType="Uniform">{t}'
            f'<Topology TopologyType="Polyvertex" NumberOfElements="{count}" '
            f'NodesPerElement="1"/><Geometry GeometryType="X_Y_Z">{coords}</Geometry>'
            f"{pattrs}</Grid>")


def _xml(h5: h5py.File, fname: str, stored: dict[str, np.ndarray], off: np.ndarray,
         times: np.ndarray, voxel_um: float, shape: tuple[int, int, int]) -> str:
    """``stored``: the frames of each kind (``RunFile.stored_frames``); the datasets in
    ``h5`` hold those frames, in that order."""
    lat, ags = [], []
    fslot = {int(k): j for j, k in enumerate(stored["fields"])}
    nb, nf = stored["bone"].size, stored["fields"].size
    for jb, k in enumerate(stored["bone"]):
        t = f'<Time Value="{float(times[k])!r}"/>'
        lat.append(_lattice_grid(h5, fname, int(k), jb, fslot.get(int(k)), nb, nf, t,
                                 voxel_um, shape))
    for ja, k in enumerate(stored["agents"]):
        count = int(off[ja + 1] - off[ja])
        if count:
            t = f'<Time Value="{float(times[k])!r}"/>'
            ags.append(_agent_grid(h5, fname, int(k), int(off[ja]), count, t, voxel_um))

    def coll(name, grids):
        body = "\n    ".join(grids)
        return (f'  <Grid Name="{name}" GridType="Collection" CollectionType="Temporal">\n'
                f"    {body}\n  </Grid>\n")

    return ('<?xml version="1.0" ?>\n<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>\n'
            '<Xdmf Version="2.0">\n <Domain>\n' + coll("lattice", lat)
            + (coll("agents", ags) if ags else "") + " </Domain>\n</Xdmf>\n")


def write_xdmf(run_path: str | os.PathLike, out: str | os.PathLike | None = None,
               *, link: bool = False) -> Path:
    """Write the XDMF sidecar of a run file and its gzip companion.

    Args:
        run_path: the run file (``.h5``; a ``.partial`` file of a killed run works too:
            only its complete frames are exported).
        out: the sidecar path (default: the run file with suffix ``.xdmf``). The companion
            sits next to it as ``<out stem>.xdmf.h5``.
        link: point into the run file instead of writing a companion (no copy; needs a
            reader whose HDF5 decodes the run file, see the module docstring).

    Returns:
        The sidecar path.

    Raises:
        niche.io.RunFileError: the run file is missing, unreadable or not a run file.
    """
    with open_run(run_path) as run:
        if run.n_frames == 0:
            raise RunFileError(f"{str(run.path)!r} has no complete frame to export")
        xml_path = Path(out) if out is not None else xdmf_paths(run.path)[0]
        stored = {kind: run.stored_frames(kind) for kind in ("fields", "bone", "agents")}
        comp = xdmf_paths(xml_path)[1]
        with _staged([xml_path] if link else [comp, xml_path]) as tmp:
            if link:
                fname = os.path.relpath(run.path.resolve(), xml_path.parent.resolve())
                try:  # dtypes and units attributes of the run file's datasets
                    text = _xml(run.h5, fname, stored, run.frame_offsets, run.times,
                                run.voxel_um, run.shape)
                except _READ_ERRORS as e:
                    raise RunFileError(f"{str(run.path)!r}: cannot read the run file, it may "
                                       f"be damaged ({_why(e)})") from None
            else:
                _copy_companion(run, tmp[comp])
                with h5py.File(tmp[comp], "r") as h5:
                    text = _xml(h5, comp.name, stored, h5["agents/frame_offsets"][:],
                                run.times, run.voxel_um, run.shape)
            tmp[xml_path].write_text(text, encoding="utf-8")
    return xml_path
