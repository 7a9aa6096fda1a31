"""``niche export RUN --to vtk|csv|parquet --out DIR``: a run file as tables or VTK files.

- ``csv`` / ``parquet``: ``agents.<ext>`` (:meth:`RunFile.agents`: every frame with agents,
  decoded states, micrometre coordinates, local concentrations), ``readouts.<ext>`` (one
  row per frame) and, for runs with an event log, ``events.<ext>``.
- ``vtk`` (needs pyvista, the ``viz`` extra): ``cells_<frame>.vtp`` per frame with agents
  (one point per cell at its voxel centre in um, point data: id, type, state, nuclei,
  age, the decoded state flags, the local concentrations) and ``grid_<frame>.vti`` per
  frame with fields or bone (image data, voxel edge ``voxel_um``, origin 0: cell data
  ``bone``, ``vessel`` and each stored field), with ``cells.pvd`` and ``grid.pvd`` that
  ParaView opens as time series (time in days).

The output folder is made under a temporary name beside ``DIR`` and renamed into place
when complete; an existing ``DIR`` is refused unless ``overwrite``, and even then replaced
only after the new export is complete.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from .runfile import RunFile, open_run

__all__ = ["EXPORT_FORMATS", "ExportError", "export_run"]

EXPORT_FORMATS = ("csv", "parquet", "vtk")


class ExportError(ValueError):
    """An export that cannot be made (bad format, output in the way, missing package)."""


def export_run(run: str | os.PathLike, to: str, out: str | os.PathLike,
               overwrite: bool = False) -> list[Path]:
    """Export run file ``run`` as ``to`` (``csv``, ``parquet``, ``vtk``) into folder ``out``.

    Returns the files written (paths inside ``out``). Raises :class:`ExportError` for a bad
    format, an existing ``out`` without ``overwrite`` or a missing package, and
    :class:`~niche.io.RunFileError` for a missing or damaged run file; nothing is left behind then.
    """
    if to not in EXPORT_FORMATS:
        raise ExportError(f"--to {to!r}: unknown format (choose {', '.join(EXPORT_FORMATS)})")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"output {str(out)!r} exists (use --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise ExportError(f"output {str(out)!r} is a file, not a folder")
    if to == "vtk":
        try:
            import pyvista  # noqa: F401
        except ImportError:
            raise ExportError('--to vtk needs pyvista: pip install "niche[viz]"') from None
    with open_run(run) as rf:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.export-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            names = (_vtk if to == "vtk" else _tables)(rf, tmp, to)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return [out / n for n in names]


def _tables(rf: RunFile, d: Path, ext: str) -> list[str]:
    tables = {"agents": rf.agents(), "readouts": rf.readouts.rename_axis("frame").reset_index()}
    if rf.has_events:
        tables["events"] = rf.events()
    names = []
    for name, df in tables.items():
        path = d / f"{name}.{ext}"
        if ext == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)
        names.append(path.name)
    return names


def _pvd(path: Path, entries: list[tuple[float, str]]) -> None:
    """A ParaView collection file: one dataset per time step."""
    rows = "\n".join(f'    <DataSet timestep="{t!r}" part="0" file={quoteattr(f)}/>'
                     for t, f in entries)
    path.write_text('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1">\n'
                    f"  <Collection>\n{rows}\n  </Collection>\n</VTKFile>\n")


def _vtk(rf: RunFile, d: Path, _ext: str) -> list[str]:
    import pyvista as pv

    names: list[str] = []
    cells: list[tuple[float, str]] = []
    for k in rf.agent_frames:
        df = rf.agents(frames=int(k))
        poly = pv.PolyData(df[["x_um", "y_um", "z_um"]].to_numpy(np.float64).reshape(-1, 3))
        for c in df.columns:
            if c in ("frame", "t_days", "type_name", "states", "z_um", "y_um", "x_um"):
                continue  # per frame, or text (``type`` and the state_* flags carry them)
            v = df[c].to_numpy()
            poly.point_data[c] = v.astype(np.uint8) if v.dtype == bool else v
        name = f"cells_{int(k):05d}.vtp"
        poly.save(d / name)
        cells.append((float(rf.times[k]), name))
    grids: list[tuple[float, str]] = []
    field_frames = set(rf.stored_frames("fields").tolist())
    bone_frames = set(rf.bone_frames.tolist())
    vessel = rf.vessel
    Z, Y, X = rf.shape
    for k in sorted(field_frames | bone_frames):
        img = pv.ImageData(dimensions=(X + 1, Y + 1, Z + 1), spacing=(rf.voxel_um,) * 3,
                           origin=(0.0, 0.0, 0.0))
        if k in bone_frames:
            img.cell_data["bone"] = rf.bone(k).ravel()
        img.cell_data["vessel"] = vessel.ravel()
        if k in field_frames:
            for n in rf.field_names:
                img.cell_data[n] = rf.field(n, k).ravel()
        name = f"grid_{k:05d}.vti"
        img.save(d / name)
        grids.append((float(rf.times[k]), name))
    for series, entries in (("cells.pvd", cells), ("grid.pvd", grids)):
        _pvd(d / series, entries)
        names += [series] + [f for _, f in entries]
    return names


