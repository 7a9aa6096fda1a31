"""Run files: one self-describing HDF5 file per run, and a lazy reader.

Layout (format ``niche-run`` version 1; full description in docs/file-format.md)::

    /                       attrs: format, format_version, niche_version, seed, scenario_name,
                            scenario_toml, library_versions (JSON), shape_zyx, voxel_um,
                            field_names (JSON), type_names (JSON), status
    /time_days              (F,) float64
    /fields/<name>          (F, Z, Y, X) float32, one chunk per frame; attrs units
    /bone                   (F, Z, Y, X) uint8, 1 = bone
    /vessel                 (Z, Y, X) uint8
    /agents/<column>        (N_total,) flat table over all frames
    /agents/frame_offsets   (F + 1,) int64: rows of frame k are [off[k], off[k+1])
    /readouts/<name>        (F,) float64; attrs units

The writer creates ``<out>.partial`` next to the target, flushes after every frame (a
killed run leaves a readable partial file), and renames it onto the target only when the
run ends. An existing target is never touched unless ``overwrite=True``.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from .cells import TYPE_NAMES

__all__ = ["RunWriter", "RunFile", "RunFileError", "open_run", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "niche-run"
FORMAT_VERSION = 1

#: Agent table columns written per frame: name -> (CellStore array, dtype).
AGENT_COLUMNS: dict[str, str] = {
    "id": "int64", "type": "int8", "state": "uint32", "z": "int32", "y": "int32",
    "x": "int32", "nuclei": "int16", "age_days": "float32",
}
_STORE_NAME = {"id": "cell_id"}

READOUT_UNITS = {
    "t_days": "day", "bv_tv": "1", "bs_bv_per_um": "1/um", "tb_th_um": "um",
    "tb_n_per_mm": "1/mm", "tb_sp_um": "um", "resorbed_mm3_per_day": "mm^3/day",
    "formed_mm3_per_day": "mm^3/day",
}


class RunFileError(ValueError):
    """A run file is missing, unreadable, truncated or not a niche run."""


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "numba", "h5py", "mesa", "pydantic", "hdf5plugin"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "absent"
    out["hdf5"] = h5py.version.hdf5_version
    return out


def _compression(kind: str) -> dict[str, Any]:
    if kind == "lz4":
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if kind == "gzip":
        return dict(compression="gzip", compression_opts=4, shuffle=True)
    return {}


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class RunWriter:
    """Observer that writes frames of a :class:`~niche.model.NicheModel` to HDF5.

    Args:
        path: target file.
        overwrite: replace an existing target at the end of the run.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(
                f"output {str(self.path)!r} exists; pass --overwrite (overwrite=True) to replace it")
        if self.path.exists() and self.path.is_dir():
            raise FileExistsError(f"output {str(self.path)!r} is a directory")
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        self.tmp = partial_path(self.path)
        self.f: h5py.File | None = None
        self.frames = 0

    # -- observer hooks
    def on_start(self, model) -> None:
        sc = model.scenario
        f = self.f = h5py.File(self.tmp, "w", libver="latest")
        f.attrs.update(
            format=FORMAT_NAME, format_version=FORMAT_VERSION, niche_version=__version__,
            seed=model.seed, scenario_name=sc.name, scenario_toml=sc.to_toml(),
            library_versions=json.dumps(library_versions()),
            shape_zyx=np.asarray(model.lattice.shape, np.int64), voxel_um=model.lattice.voxel_um,
            field_names=json.dumps(list(model.field_names)), type_names=json.dumps(list(TYPE_NAMES)),
            status="running",
        )
        Z, Y, X = model.lattice.shape
        comp = _compression(sc.output.compression)
        self.out_fields = (list(model.field_names) if sc.output.fields == "all"
                           else list(sc.output.fields))
        f.create_dataset("time_days", shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
        f["time_days"].attrs["units"] = "day"
        g = f.create_group("fields")
        g.attrs["layout"] = "frame, z, y, x"
        fdt = sc.output.field_dtype
        for name in self.out_fields:
            ds = g.create_dataset(name, shape=(0, Z, Y, X), maxshape=(None, Z, Y, X), dtype=fdt,
                                  chunks=(1, Z, Y, X), **comp)
            fc = sc.fields[name]
            ds.attrs.update(units=fc.units, diffusivity_um2_per_s=fc.diffusivity_um2_per_s,
                            decay_per_s=fc.decay_per_s, source=fc.source)
        f.create_dataset("bone", shape=(0, Z, Y, X), maxshape=(None, Z, Y, X), dtype="u1",
                         chunks=(1, Z, Y, X), **comp)
        f["bone"].attrs["meaning"] = "1 = bone, 0 = marrow"
        f.create_dataset("vessel", data=model.lattice.vessel, **comp)
        ag = f.create_group("agents")
        ag.attrs["type_names"] = json.dumps(list(TYPE_NAMES))
        for col, dt in AGENT_COLUMNS.items():
            ag.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dt, chunks=(65536,), **comp)
        ag["z"].attrs["units"] = ag["y"].attrs["units"] = ag["x"].attrs["units"] = "voxel"
        ag["age_days"].attrs["units"] = "day"
        ag.create_dataset("frame_offsets", data=np.zeros(1, np.int64), maxshape=(None,),
                          chunks=(1024,))
        self.readout_names = list(model.readouts().keys())
        rg = f.create_group("readouts")
        for name in self.readout_names:
            ds = rg.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
            ds.attrs["units"] = READOUT_UNITS.get(name, "pM" if name.endswith("_pM") else "cells")
        f.flush()

    def on_frame(self, model) -> None:
        f = self.f
        k = self.frames
        f["time_days"].resize((k + 1,))
        f["time_days"][k] = model.t_days
        for name in self.out_fields:
            ds = f["fields"][name]
            ds.resize((k + 1,) + ds.shape[1:])
            ds[k] = model.fields.c[model.field_index(name)]
        f["bone"].resize((k + 1,) + f["bone"].shape[1:])
        f["bone"][k] = model.lattice.bone
        cells = model.cells
        s = cells.alive_slots()
        s = s[np.argsort(cells.cell_id[s], kind="stable")]
        ag = f["agents"]
        off = ag["frame_offsets"]
        start = int(off[k])
        for col in AGENT_COLUMNS:
            ds = ag[col]
            ds.resize((start + s.size,))
            ds[start:] = getattr(cells, _STORE_NAME.get(col, col))[s]
        off.resize((k + 2,))
        off[k + 1] = start + s.size
        ro = model.frame_readouts
        for name in self.readout_names:
            ds = f["readouts"][name]
            ds.resize((k + 1,))
            ds[k] = ro.get(name, np.nan)
        self.frames += 1
        f.flush()

    def on_end(self, model) -> None:
        self.close(complete=True)
        write_sidecar(self.path, model.scenario.output.xdmf)

    def close(self, complete: bool = False) -> None:
        if self.f is None:
            return
        self.f.attrs["status"] = "complete" if complete else "incomplete"
        self.f.close()
        self.f = None
        if complete:
            os.replace(self.tmp, self.path)


def write_sidecar(path: Path, enabled: bool = True) -> None:
    """Write the XDMF sidecar of a finished run file (:mod:`niche.xdmf`; ParaView, VisIt).

    With ``enabled=False`` a stale sidecar of a replaced run is removed instead. A failure
    is a warning: the run file itself is complete.
    """
    from .xdmf import write_xdmf, xdmf_paths

    try:
        if enabled:
            write_xdmf(path)
        else:
            for p in xdmf_paths(path):
                p.unlink(missing_ok=True)
    except (OSError, ValueError) as e:  # pragma: no cover - disk full, permissions
        import warnings

        warnings.warn(f"XDMF sidecar of {path.name} not written: {e}", stacklevel=2)


class RunFile:
    """Lazy reader of a run file; use :func:`open_run`. Reads only what is asked for."""

    def __init__(self, path: str | os.PathLike):
        import hdf5plugin  # noqa: F401  (registers the Blosc filter)
        import pandas  # noqa: F401

        self.path = Path(path)
        if not self.path.exists():
            raise RunFileError(f"run file {str(self.path)!r} does not exist")
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as e:
            raise RunFileError(f"{str(self.path)!r} is not a readable HDF5 run file ({e})") from None
        a = self.h5.attrs
        if a.get("format") != FORMAT_NAME:
            self.h5.close()
            raise RunFileError(f"{str(self.path)!r} is not a niche run file (no format={FORMAT_NAME!r})")
        if int(a.get("format_version", -1)) > FORMAT_VERSION:
            self.h5.close()
            raise RunFileError(f"{str(self.path)!r}: format version {a['format_version']} is newer "
                               f"than this niche reads ({FORMAT_VERSION})")
        try:
            self.times = self.h5["time_days"][:]
            self._off = self.h5["agents/frame_offsets"][:]
        except KeyError as e:
            raise RunFileError(f"{str(self.path)!r}: missing dataset ({e})") from None
        # a killed run can leave a frame half-written: trust only complete frames
        n = min(self.times.size, self._off.size - 1, self.h5["bone"].shape[0])
        for name in self.h5["fields"]:
            n = min(n, self.h5["fields"][name].shape[0])
        self.n_frames = n
        self.times = self.times[:n]

    # -- metadata
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.h5.attrs)

    @property
    def status(self) -> str:
        return str(self.h5.attrs.get("status", "unknown"))

    @property
    def field_names(self) -> list[str]:
        return list(self.h5["fields"].keys())

    @property
    def type_names(self) -> list[str]:
        return json.loads(self.h5.attrs["type_names"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.h5.attrs["shape_zyx"])

    @property
    def voxel_um(self) -> float:
        return float(self.h5.attrs["voxel_um"])

    @property
    def scenario_toml(self) -> str:
        return str(self.h5.attrs["scenario_toml"])

    def scenario(self):
        """The resolved scenario, validated again."""
        import tomllib

        from .config import validate_raw

        return validate_raw(tomllib.loads(self.scenario_toml), repr(self.path.name))

    def _frame(self, frame: int) -> int:
        k = int(frame)
        if k < 0:
            k += self.n_frames
        if not 0 <= k < self.n_frames:
            raise IndexError(f"frame {frame} out of range (file has {self.n_frames} frames)")
        return k

    # -- data
    def field(self, name: str, frame: int) -> np.ndarray:
        """Field ``name`` at ``frame`` as (Z, Y, X)."""
        if name not in self.h5["fields"]:
            raise KeyError(f"no field {name!r} in run (has {self.field_names})")
        return self.h5["fields"][name][self._frame(frame)]

    def bone(self, frame: int) -> np.ndarray:
        return self.h5["bone"][self._frame(frame)]

    @property
    def vessel(self) -> np.ndarray:
        return self.h5["vessel"][:]

    def agents(self, frame: int):
        """The agents of one frame as a pandas DataFrame (with a ``type_name`` column)."""
        import pandas as pd

        k = self._frame(frame)
        a, b = int(self._off[k]), int(self._off[k + 1])
        ag = self.h5["agents"]
        df = pd.DataFrame({c: ag[c][a:b] for c in AGENT_COLUMNS})
        df["type_name"] = pd.Categorical.from_codes(df["type"].astype(int), self.type_names)
        return df

    @property
    def frame_offsets(self) -> np.ndarray:
        """(n_frames + 1,) int64: rows of frame k in ``/agents`` are ``[off[k], off[k+1])``."""
        return self._off[: self.n_frames + 1]

    def n_agents(self, frame: int) -> int:
        k = self._frame(frame)
        return int(self._off[k + 1] - self._off[k])

    @property
    def readouts(self):
        """All readouts as a DataFrame indexed by frame (complete frames only)."""
        import pandas as pd

        r = self.h5["readouts"]
        return pd.DataFrame({k: r[k][: self.n_frames] for k in r})

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> "RunFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunFile({self.path.name!r}, frames={self.n_frames}, fields={self.field_names})"


def open_run(path: str | os.PathLike) -> RunFile:
    """Open a run file for reading (lazy: frames are read on request)."""
    return RunFile(path)
