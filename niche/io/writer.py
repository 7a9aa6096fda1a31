"""The run-file writer: an observer that writes the frames of a model to HDF5.

What each frame stores follows ``output.level`` (:class:`~niche.scenario.schema.OutputConfig`):
readouts every frame; fields, bone and agents every frame (``full``), on a subset of frames
listed in ``/stored_frames/<kind>`` (``frames``, ``summary``).

Format: :mod:`.runfile` and docs/file-format.md. The writer commits every frame to the
output's journal ``<out>.partial/`` (:mod:`.journal`: crash-safe, one writer per output),
assembles the run file from it when the run ends, and then writes the XDMF sidecar
(:mod:`.xdmf`). An existing target is never touched unless ``overwrite=True``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.cells import TYPE_NAMES
from ..core.events import EVENT_COLUMNS, EVENT_KINDS
from ..core.observers import Observer
from ..provenance import __version__, library_versions
from .journal import AGENT_TABLE, Journal
from .runfile import FORMAT_NAME, FRAME_KINDS, READOUT_UNITS, _STORE_NAME
from .xdmf import write_xdmf, xdmf_paths

__all__ = ["RunWriter", "write_sidecar", "readout_units"]


def readout_units(name: str) -> str:
    """Units of readout ``name``: ``pM`` for a field mean (``mean_<field>_pM``), else
    :data:`~niche.io.runfile.READOUT_UNITS` (a KeyError naming a readout it lacks)."""
    if name.startswith("mean_") and name.endswith("_pM"):
        return "pM"
    return READOUT_UNITS[name]


def _compression(kind: str) -> dict[str, Any]:
    if kind == "lz4":
        import hdf5plugin

        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if kind == "gzip":
        return dict(compression="gzip", compression_opts=4, shuffle=True)
    return {}


class RunWriter(Observer):
    """Observer that writes the frames of a :class:`~niche.core.model.Model` to a run file.

    Frames go into the output's journal (:class:`~niche.io.journal.Journal`,
    ``<out>.partial/``), one crash-safe file each, with the cell events since the frame
    before (``/events``); when the run ends (``model.finish()``, which :meth:`run` and
    ``run_model()`` call) they are assembled into ``<out>`` and the journal is deleted. A
    model stepped on after that continues the file: the next frame reopens a journal on it. The journal (and with it the output) is
    claimed when the writer is made, so a second run on the same output is refused before
    it touches anything.

    Args:
        path: target file.
        overwrite: replace an existing target at the end of the run.
        journal: continue this (already locked) journal instead of starting one.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False,
                 journal: Journal | None = None):
        self.path = Path(path)
        self.overwrite = overwrite
        self.journal = journal if journal is not None else Journal.create(self.path, overwrite)
        self.frames = 0
        self._stored: dict[str, list[int]] = {k: [] for k in FRAME_KINDS}
        self.checkpoint_bytes: bytes | None = None

    # -- checkpoint state (niche.io.checkpoint)
    def state(self) -> dict[str, Any]:
        return {"frames": self.frames, "stored": {k: list(v) for k, v in self._stored.items()},
                "level": self.level, "field_every": self.field_every,
                "out_fields": list(self.out_fields), "readout_names": list(self.readout_names),
                "comp": self.comp_kind}

    def restore(self, state: dict[str, Any]) -> None:
        self.frames = int(state["frames"])
        self._stored = {k: list(v) for k, v in state["stored"].items()}
        self.level, self.field_every = state["level"], state["field_every"]
        self.out_fields, self.readout_names = state["out_fields"], state["readout_names"]
        self.comp_kind = state["comp"]
        self.journal.drop_frames_from(self.frames)

    # -- observer hooks
    def on_start(self, model) -> None:
        sc = model.scenario
        self.level = sc.output.level
        self.field_every = sc.output.field_every or 1
        self.comp_kind = sc.output.compression
        self.out_fields = (list(model.field_names) if sc.output.fields == "all"
                           else list(sc.output.fields))
        self.readout_names = list(model.readouts().keys())
        self.journal.write_header(lambda f: self._header(f, model))

    def _header(self, f: h5py.File, model) -> None:
        """Fill ``f`` with a run file of zero frames (attributes, vessel, empty datasets)."""
        sc = model.scenario
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
        comp = _compression(self.comp_kind)
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
        for col, dt in AGENT_TABLE.items():
            ag.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dt, chunks=(65536,), **comp)
        ag["z"].attrs["units"] = ag["y"].attrs["units"] = ag["x"].attrs["units"] = "voxel"
        ag["age_days"].attrs["units"] = "day"
        ag.create_dataset("frame_offsets", data=np.zeros(1, np.int64), maxshape=(None,),
                          chunks=(1024,))
        ag["parent_id"].attrs["meaning"] = "id of the mother (division), -1 if none"
        eg = f.create_group("events")
        eg.attrs["kinds"] = json.dumps(EVENT_KINDS)
        eg.attrs["meaning"] = ("one row per cell event; rows of frame k (the events after "
                               "frame k-1 up to frame k) are [frame_offsets[k], "
                               "frame_offsets[k+1])")
        for col, dt in EVENT_COLUMNS.items():
            eg.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dt, chunks=(16384,),
                              **comp)
        eg["t_days"].attrs["units"] = "day"
        eg["z"].attrs["units"] = eg["y"].attrs["units"] = eg["x"].attrs["units"] = "voxel"
        eg.create_dataset("frame_offsets", data=np.zeros(1, np.int64), maxshape=(None,),
                          chunks=(1024,))
        rg = f.create_group("readouts")
        for name in self.readout_names:
            ds = rg.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8", chunks=(256,))
            ds.attrs["units"] = readout_units(name)
        if self.level != "full":
            sg = f.create_group("stored_frames")
            sg.attrs["meaning"] = "frames (indices into time_days) that each kind's datasets hold"
            for kind in FRAME_KINDS:
                sg.create_dataset(kind, shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))

    def _kinds(self, k: int, last: bool) -> list[str]:
        """What frame ``k`` stores besides its readouts."""
        if self.level == "full":
            return list(FRAME_KINDS)
        if self.level == "frames":
            keep = last or k % self.field_every == 0
            return ["fields", "bone", "agents"] if keep else ["bone", "agents"]
        return list(FRAME_KINDS) if (k == 0 or last) else []

    def on_frame(self, model) -> None:
        # the model frames its last tick itself, so the last frame is known when it comes
        if self.journal is None:  # stepped on after finish(): continue the finished file
            self.journal = Journal.create(self.path, overwrite=True, base=self.path,
                                          base_frames=self.frames)
            self.checkpoint_bytes = None
        k = self.frames
        self._commit(model, k, self._kinds(k, last=model.tick >= model.n_ticks))
        self.frames += 1

    def _commit(self, model, k: int, kinds: list[str]) -> None:
        """Write frame ``k`` (its readouts and time, and ``kinds``) as one journal file."""
        ro = model.frame_readouts
        comp = _compression(self.comp_kind)

        def build(f: h5py.File) -> None:
            f.attrs.update(frame=k, t_days=model.t_days,
                           readout_names=json.dumps(self.readout_names))
            f.create_dataset("readouts", data=np.array(
                [ro.get(name, np.nan) for name in self.readout_names], np.float64))
            if "fields" in kinds:
                g = f.create_group("fields")
                for name in self.out_fields:
                    a = model.fields.c[model.field_index(name)]
                    g.create_dataset(name, data=a.astype(model.scenario.output.field_dtype,
                                                         copy=False), chunks=a.shape, **comp)
            if "bone" in kinds:
                b = model.lattice.bone
                f.create_dataset("bone", data=b, chunks=b.shape, **comp)
            if "agents" in kinds:
                cells = model.cells
                s = cells.alive_slots()
                s = s[np.argsort(cells.cell_id[s], kind="stable")]
                g = f.create_group("agents")
                for col, dt in AGENT_TABLE.items():
                    g.create_dataset(col, data=np.asarray(
                        getattr(cells, _STORE_NAME.get(col, col))[s], dt))

            events = model.frame_events
            g = f.create_group("events")
            for col, dt in EVENT_COLUMNS.items():
                g.create_dataset(col, data=np.asarray(events[col], dt))

        self.journal.write_frame(k, build)
        for kind in kinds:
            if not self._stored[kind] or self._stored[kind][-1] != k:
                self._stored[kind].append(k)

    def on_end(self, model) -> None:
        if self.journal is None:  # finished already, nothing framed since
            return
        if self.frames:
            # the last frame is always stored whole; should the model have framed past the
            # end it was told (run() called again), store the state it ended in, which is
            # the last frame's: frame k is written again, with everything
            k = self.frames - 1
            want = self._kinds(k, last=True)
            if any(not self._stored[kind] or self._stored[kind][-1] != k for kind in want):
                self._commit(model, k, sorted(set(want) | {
                    kind for kind in FRAME_KINDS if self._stored[kind][-1:] == [k]},
                    key=FRAME_KINDS.index))
        self.close(complete=True, model=model)
        write_sidecar(self.path, model.scenario.output.xdmf)

    def close(self, complete: bool = False, model=None) -> None:
        """End writing. ``complete``: assemble the run file and delete the journal; else
        leave the journal (a killed or stopped run: ``niche resume`` / ``niche repair``),
        or delete it when it holds no frame."""
        j = self.journal
        if j is None:
            return
        if complete:
            attrs = {"status": "complete"}
            if model is not None:
                attrs.update(scenario_toml=model.scenario.to_toml(), niche_version=__version__,
                             library_versions=json.dumps(library_versions()))
            j.assemble(attrs, checkpoint=self.checkpoint_bytes)
            j.discard()
        elif not self.frames and not j.checkpoint_path.exists():
            j.discard()
        else:
            j.release()
        self.journal = None


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
