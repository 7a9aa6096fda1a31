"""The run-file writer: an observer that writes the frames of a model to HDF5.

What each frame stores follows ``output.level`` (:class:`~niche.scenario.schema.OutputConfig`):
readouts every frame; fields, bone and agents every frame (``full``), on a subset of frames
listed in ``/stored_frames/<kind>`` (``frames``, ``summary``).

Format: :mod:`.runfile` and docs/file-format.md. The writer creates ``<out>.partial`` next
to the target, flushes after every frame, renames it onto the target when the run ends, and
then writes the XDMF sidecar (:mod:`.xdmf`). An existing target is never touched unless
``overwrite=True``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.cells import TYPE_NAMES
from ..core.observers import Observer
from ..provenance import __version__, library_versions
from .runfile import (AGENT_COLUMNS, FORMAT_NAME, FRAME_KINDS, READOUT_UNITS, _STORE_NAME,
                      partial_path)
from .xdmf import write_xdmf, xdmf_paths

__all__ = ["RunWriter", "write_sidecar"]


def _compression(kind: str) -> dict[str, Any]:
    if kind == "lz4":
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if kind == "gzip":
        return dict(compression="gzip", compression_opts=4, shuffle=True)
    return {}


class RunWriter(Observer):
    """Observer that writes frames of a :class:`~niche.core.model.Model` to HDF5.

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
        self._stored: dict[str, list[int]] = {k: [] for k in FRAME_KINDS}

    # -- observer hooks
    def on_start(self, model) -> None:
        sc = model.scenario
        self.level = sc.output.level
        self.field_every = sc.output.field_every or 1
        f = self.f = h5py.File(self.tmp, "w", libver="latest")
        # level full is format version 1 unchanged; reduced levels add /stored_frames (2)
        f.attrs.update(
            format=FORMAT_NAME, format_version=1 if self.level == "full" else 2,
            niche_version=__version__,
            seed=model.seed, scenario_name=sc.name, scenario_toml=sc.to_toml(),
            library_versions=json.dumps(library_versions()),
            shape_zyx=np.asarray(model.lattice.shape, np.int64), voxel_um=model.lattice.voxel_um,
            field_names=json.dumps(list(model.field_names)), type_names=json.dumps(list(TYPE_NAMES)),
            status="running", output_level=self.level,
        )
        if self.level == "frames":
            f.attrs["field_every"] = self.field_every
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
        if self.level != "full":
            sg = f.create_group("stored_frames")
            sg.attrs["meaning"] = "frames (indices into time_days) that each kind's datasets hold"
            for kind in FRAME_KINDS:
                sg.create_dataset(kind, shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
        f.flush()

    def _kinds(self, k: int, last: bool) -> list[str]:
        """What frame ``k`` stores besides its readouts."""
        if self.level == "full":
            return list(FRAME_KINDS)
        if self.level == "frames":
            keep = last or k % self.field_every == 0
            return ["fields", "bone", "agents"] if keep else ["bone", "agents"]
        return list(FRAME_KINDS) if (k == 0 or last) else []

    def on_frame(self, model) -> None:
        k = self.frames
        # the model frames its last tick itself, so the last frame is known when it comes
        self._store(model, k, self._kinds(k, last=model.tick >= model.n_ticks))
        # readouts and then the time go last: a frame with a time is complete
        f = self.f
        ro = model.frame_readouts
        for name in self.readout_names:
            ds = f["readouts"][name]
            ds.resize((k + 1,))
            ds[k] = ro.get(name, np.nan)
        f["time_days"].resize((k + 1,))
        f["time_days"][k] = model.t_days
        self.frames += 1
        f.flush()

    def _store(self, model, k: int, kinds: list[str]) -> None:
        """Append the model's current fields / bone / agents as frame ``k``."""
        f = self.f
        if "fields" in kinds:
            j = len(self._stored["fields"])
            for name in self.out_fields:
                ds = f["fields"][name]
                ds.resize((j + 1,) + ds.shape[1:])
                ds[j] = model.fields.c[model.field_index(name)]
        if "bone" in kinds:
            j = len(self._stored["bone"])
            f["bone"].resize((j + 1,) + f["bone"].shape[1:])
            f["bone"][j] = model.lattice.bone
        if "agents" in kinds:
            j = len(self._stored["agents"])
            cells = model.cells
            s = cells.alive_slots()
            s = s[np.argsort(cells.cell_id[s], kind="stable")]
            ag = f["agents"]
            off = ag["frame_offsets"]
            start = int(off[j])
            for col in AGENT_COLUMNS:
                ds = ag[col]
                ds.resize((start + s.size,))
                ds[start:] = getattr(cells, _STORE_NAME.get(col, col))[s]
            off.resize((j + 2,))
            off[j + 1] = start + s.size
        for kind in kinds:
            self._stored[kind].append(k)
            if self.level != "full":
                ds = f["stored_frames"][kind]
                ds.resize((len(self._stored[kind]),))
                ds[-1] = k

    def on_end(self, model) -> None:
        if self.f is not None and self.frames:
            # the last frame is always stored; should the model have framed past the end
            # it was told (run() called again), store the state it ended in, which is the
            # last frame's
            k = self.frames - 1
            missing = [kind for kind in self._kinds(k, last=True)
                       if not self._stored[kind] or self._stored[kind][-1] != k]
            if missing:
                self._store(model, k, missing)
                self.f.flush()
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
    """Write the XDMF sidecar of a finished run file (:mod:`niche.io.xdmf`; ParaView, VisIt).

    With ``enabled=False`` a stale sidecar of a replaced run is removed instead. A failure
    is a warning: the run file itself is complete.
    """
    try:
        if enabled:
            write_xdmf(path)
        else:
            for p in xdmf_paths(path):
                p.unlink(missing_ok=True)
    except (OSError, ValueError) as e:  # pragma: no cover - disk full, permissions
        import warnings

        warnings.warn(f"XDMF sidecar of {path.name} not written: {e}", stacklevel=2)
