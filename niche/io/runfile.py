"""Run files: the format (one self-describing HDF5 file per run) and the lazy reader.

Layout (format ``niche-run``; full description in docs/file-format.md)::

    /                       attrs: format, format_version, niche_version, seed, scenario_name,
                            scenario_toml, library_versions (JSON), shape_zyx, voxel_um,
                            field_names (JSON), type_names (JSON), status, output_level
    /time_days              (F,) float64
    /fields/<name>          (Ff, Z, Y, X) float32, one chunk per stored frame; attrs units
    /bone                   (Fb, Z, Y, X) uint8, 1 = bone
    /vessel                 (Z, Y, X) uint8
    /agents/<column>        (N_total,) flat table over all stored frames
    /agents/frame_offsets   (Fa + 1,) int64: rows of stored frame j are [off[j], off[j+1])
    /readouts/<name>        (F,) float64; attrs units
    /events/<column>        newer runs: the cell event log (t_days, tick, kind, id, other_id,
                            type, z, y, x; attr kinds = JSON kind -> code; frame_offsets)
    /stored_frames/<kind>   (Fk,) int64, kind in fields, bone, agents: the frames (indices
                            into time_days) that the kind's datasets hold, ascending;
                            absent = every frame (Fk = F)

Output level ``full`` writes every frame of everything and no ``/stored_frames``: that is
format version 1, unchanged. Levels ``frames`` and ``summary`` store fields (and, for
``summary``, bone and agents) on a subset of frames, listed in ``/stored_frames``: format
version 2, which readers of version 1 refuse instead of misreading.

The writer (:mod:`.writer`) commits every frame to the journal ``<out>.partial/``
(:mod:`.journal`) and assembles the run file from it, atomically, when the run ends; a
killed run leaves its journal, which ``niche repair`` turns into a run file of its complete
frames and ``niche resume`` continues. An existing target is never touched unless
``overwrite=True``.

Analysis views (docs/analysis.md): :meth:`RunFile.agents` over all frames (decoded states,
um coordinates, local concentrations), :meth:`RunFile.tracks`, :meth:`RunFile.events`,
:meth:`RunFile.to_xarray`, :meth:`RunFile.to_anndata`; :mod:`.export` writes them out.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.cells import State
from ..core.events import EVENT_COLUMNS
from ..scenario import CELL_TYPES


__all__ = ["RunFile", "RunFileError", "open_run", "partial_path", "FORMAT_NAME", "FORMAT_VERSION",
           "AGENT_COLUMNS", "READOUT_UNITS", "READOUTS", "FRAME_KINDS", "STATE_FLAGS",
           "decode_states"]

FORMAT_NAME = "niche-run"
#: newest version this niche reads and writes (1: every frame stored; 2: /stored_frames)
FORMAT_VERSION = 2
#: what a run file stores per frame, each with its own frame index in version 2
FRAME_KINDS = ("fields", "bone", "agents")

#: Agent table columns written per frame: name -> (CellStore array, dtype).
AGENT_COLUMNS: dict[str, str] = {
    "id": "int64", "type": "int8", "state": "uint32", "z": "int32", "y": "int32",
    "x": "int32", "nuclei": "int16", "age_days": "float32",
}
_STORE_NAME = {"id": "cell_id"}

#: the fields of the shipped scenarios (``[fields.*]``): each gives a ``mean_<name>_pM``
SHIPPED_FIELDS = ("RANKL", "OPG", "TNF", "IL17", "IL10", "IL2", "SCFA", "TGFb", "CGRP", "IL4",
                  "CXCL10", "WNT10B")

#: Every readout the model can write: name -> (unit, source, meaning). Sources: ``engine``
#: (:meth:`niche.core.model.Model.readouts`, every run), ``osteoimmune``
#: (:mod:`niche.biology.readouts`, the osteoimmune rule set), ``culture`` (osteoimmune, in
#: culture wells only). ``docs/readouts.md`` is generated from this table
#: (``python -m niche.tools.readoutdocs``). Unit "1" is a dimensionless fraction.
READOUTS: dict[str, tuple[str, str, str]] = {
    "t_days": ("day", "engine", "simulated time of the frame"),
    "bv_tv": ("1", "engine", "BV/TV, bone volume fraction (bone voxels / all voxels; a culture "
                             "well: of the whole well)"),
    "tb_th_um": ("um", "engine", "Tb.Th, mean local thickness of the bone (BoneJ definition); "
                                 "trabecular domains only"),
    "tb_sp_um": ("um", "engine", "Tb.Sp, mean local thickness of the marrow (BoneJ); "
                                 "trabecular domains only"),
    "tb_n_per_mm": ("1/mm", "engine", "Tb.N = BV/TV / Tb.Th; trabecular domains only"),
    "bs_bv_per_mm": ("1/mm", "engine", "BS/BV, bone surface (Crofton estimate) per bone "
                                       "volume; trabecular domains only"),
    **{f"n_{t}": ("cells", "engine", f"number of living {t} cells") for t in CELL_TYPES},
    "n_treg": ("cells", "engine", "number of regulatory T cells (T cells with REGULATORY)"),
    "resorbed_mm3_per_day": ("mm^3/day", "engine", "bone volume resorbed since the previous "
                                                   "frame, per day (0 at frame 0)"),
    "formed_mm3_per_day": ("mm^3/day", "engine", "bone volume formed since the previous "
                                                 "frame, per day (0 at frame 0)"),
    **{f"mean_{f}_pM": ("pM", "engine", f"mean {f} concentration over the marrow voxels "
                                        "(one per field: mean_<FIELD>_pM)")
       for f in SHIPPED_FIELDS},
    "oc_s_bs": ("1", "osteoimmune", "Oc.S/BS, share of bone-surface faces under an "
                                    "osteoclast footprint"),
    "ob_s_bs": ("1", "osteoimmune", "Ob.S/BS, share of bone-surface faces under an "
                                    "osteoblast"),
    "n_oc_per_bs_per_mm2": ("1/mm^2", "osteoimmune", "N.Oc/BS, osteoclasts per mm^2 of bone "
                                                     "surface"),
    "mar_um_per_day": ("um/day", "osteoimmune", "MAR, mineral apposition rate: formed volume "
                                                "per day per osteoblast-covered surface"),
    "bfr_bs_um_per_day": ("um/day", "osteoimmune", "BFR/BS, bone formation rate per bone "
                                                   "surface (um^3/um^2/day)"),
    "n_treg_cxcr3": ("cells", "osteoimmune", "CXCR3+ regulatory T cells"),
    "n_tnf_tcell": ("cells", "osteoimmune", "TNF+ effector T cells"),
    "n_th17": ("cells", "osteoimmune", "IL-17+ effector T cells (Th17)"),
    "n_wnt10b_tcell": ("cells", "osteoimmune", "Wnt10b+ effector T cells"),
    "n_cd8_tcell": ("cells", "osteoimmune", "CD8+ T cells"),
    "treg_frac_cd4": ("1", "osteoimmune", "Treg share of CD4+ T cells (Treg / (T cells - "
                                          "CD8))"),
    "tnf_per_producer_molecules_per_s": ("molecules/s", "osteoimmune", "mean TNF secretion "
                                         "of a TNF+ T cell (NaN without producers)"),
    "n_ilc2_il10": ("cells", "osteoimmune", "IL-10+ ILC2s"),
    "n_ilc2_cgrp": ("cells", "osteoimmune", "CGRP+ ILC2s"),
    "n_preoc": ("cells", "osteoimmune", "monocytes committed to the osteoclast lineage"),
    "n_monocyte_ifn": ("cells", "osteoimmune", "monocytes running the IL-2 STAT1-IRF1 "
                                               "programme"),
    "n_oc_multinuc": ("cells", "osteoimmune", "multinucleated osteoclasts (nuclei >= "
                                              "biology.osteoclast.min_nuclei_multinucleated)"),
    "mean_oc_nuclei": ("nuclei", "osteoimmune", "mean nuclei per osteoclast (0 without "
                                                "osteoclasts)"),
    "n_oc_resorbing": ("cells", "osteoimmune", "osteoclasts that are resorbing (RESORBING)"),
    "resorbed_area_um2": ("um^2", "culture", "pit area: area of the bone slice's columns "
                                             "that lost bone"),
    "resorbed_area_frac": ("1", "culture", "pit area as a share of the slice area"),
}


class _ReadoutUnits(dict):
    """name -> unit of every readout in :data:`READOUTS`; a field of a scenario's own
    (``mean_<FIELD>_pM`` for a field not shipped) is in pM too. Any other name is a
    KeyError that says the readout has no unit (every readout must be listed here)."""

    @staticmethod
    def _field_mean(name: object) -> bool:
        return isinstance(name, str) and name.startswith("mean_") and name.endswith("_pM") \
            and len(name) > len("mean__pM")

    def __missing__(self, name):
        if self._field_mean(name):
            return "pM"
        raise KeyError(f"readout {name!r} has no unit: add it to READOUTS in "
                       "niche/io/runfile.py")

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or self._field_mean(name)

    def get(self, name, default=None):
        return self[name] if name in self else default


#: readout name -> unit (from :data:`READOUTS`)
READOUT_UNITS: dict[str, str] = _ReadoutUnits({k: v[0] for k, v in READOUTS.items()})


#: the event log ``/events`` (newer runs, :mod:`niche.core.events`): column -> dtype kinds
#: accepted; the group's ``kinds`` attribute is JSON ``{"birth": 1, "death": 2, ...}``
_EVENT_COLUMNS = {c: "f" if np.dtype(dt).kind == "f" else "iu" for c, dt in EVENT_COLUMNS.items()}
#: the :class:`State` flags (the nonzero members), in bit order
STATE_FLAGS: tuple[State, ...] = tuple(sorted((f for f in State if f.value), key=int))


def decode_states(state: np.ndarray):
    """The ``state`` bit fields as a DataFrame: ``states``, the flags' names joined by
    ``|`` (``""``: none), and one boolean ``state_<flag>`` (lower case) per flag."""
    import pandas as pd

    st = np.asarray(state).astype(np.uint32)
    out = {}
    uniq, inv = np.unique(st, return_inverse=True)
    names = np.array(["|".join(f.name for f in STATE_FLAGS if int(u) & int(f)) for u in uniq],
                     dtype=object)
    out["states"] = names[inv.reshape(-1)] if st.size else np.zeros(0, object)
    for f in STATE_FLAGS:
        out[f"state_{f.name.lower()}"] = (st & np.uint32(f)) != 0
    return pd.DataFrame(out)


class RunFileError(ValueError):
    """A run file is missing, unreadable, truncated or not a niche run."""


def partial_path(path: Path) -> Path:
    """The journal folder of a run being written to ``path`` (:mod:`.journal`)."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def _journal_of(path: Path) -> Path | None:
    """The journal folder ``path`` names or stands for, if the run file is not there."""
    if path.name.endswith(".partial") and path.is_dir():
        return path
    if not path.exists() and partial_path(path).is_dir():
        return partial_path(path)
    return None


#: what h5py, numpy and json raise on a damaged file (HDF5 errors surface as these)
_READ_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError,
                OverflowError)
#: dtype kinds each agent column may have (its exact width is not checked)
_AGENT_KINDS = {c: "f" if np.dtype(dt).kind == "f" else "iu" for c, dt in AGENT_COLUMNS.items()}
#: JSON attributes: the type they hold, and whether a run file must have them
_JSON_ATTRS = {"type_names": (list, True), "field_names": (list, False),
               "library_versions": (dict, False)}


def _why(e: BaseException) -> str:
    """An exception as one short line (HDF5 messages can be long)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class RunFile:
    """Lazy reader of a run file; use :func:`open_run`. Reads only what is asked for.

    Opening checks the structure the reader relies on (root attributes, dataset shapes and
    dtypes, frame offsets, stored frames) without reading frame data; any damage found then,
    or later when a frame is read, is a :class:`RunFileError` naming the file and the part.
    """

    def __init__(self, path: str | os.PathLike):
        import hdf5plugin  # noqa: F401  (registers the Blosc filter)
        import pandas  # noqa: F401

        self.path = Path(path)
        journal = _journal_of(self.path)
        if journal is not None:
            raise RunFileError(
                f"{str(self.path)!r} is an unfinished run (its journal {journal.name}/ is "
                f"there: killed, stopped or still running): `niche repair {str(journal)[:-8]}` "
                "makes a run file of its complete frames, `niche resume` continues it")
        if not self.path.exists():
            raise RunFileError(f"run file {str(self.path)!r} does not exist")
        if self.path.is_dir():
            raise RunFileError(f"{str(self.path)!r} is a directory, not a run file")
        try:
            self.h5 = h5py.File(self.path, "r")
        except _READ_ERRORS as e:
            raise RunFileError(f"{str(self.path)!r} is not a readable HDF5 run file "
                               f"({_why(e)})") from None
        try:
            self._check()
        except RunFileError:
            self.h5.close()
            raise
        except _READ_ERRORS as e:  # e.g. a damaged object header met while walking
            self.h5.close()
            raise self._error(f"cannot read the run file, it may be damaged ({_why(e)})") \
                from None

    # -- validation (metadata and the small 1-D datasets only: no frame data is read)
    def _error(self, what: str) -> RunFileError:
        return RunFileError(f"{str(self.path)!r}: {what}")

    def _check(self) -> None:
        try:
            a = self._attrs = dict(self.h5.attrs)
        except _READ_ERRORS as e:
            raise self._error(f"cannot read the root attributes, the file may be damaged "
                              f"({_why(e)})") from None
        fmt = a.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode("utf-8", "replace")
        if not isinstance(fmt, str) or fmt != FORMAT_NAME:
            raise RunFileError(f"{str(self.path)!r} is not a niche run file "
                               f"(no format={FORMAT_NAME!r})")
        version = a.get("format_version")
        if not _is_int(version) or int(version) < 1:
            raise self._error(f"attribute format_version is {_short(version)}, "
                              "expected a version number")
        if int(version) > FORMAT_VERSION:
            raise RunFileError(f"{str(self.path)!r}: format version {int(version)} is newer "
                               f"than this niche reads ({FORMAT_VERSION})")
        shape = np.asarray(a.get("shape_zyx", ()))
        if shape.shape != (3,) or shape.dtype.kind not in "iu" or not np.all(shape > 0):
            raise self._error(f"attribute shape_zyx is {_short(a.get('shape_zyx'))}, "
                              "expected 3 positive integers")
        self._shape = tuple(int(v) for v in shape)
        voxel = a.get("voxel_um")
        if not (_is_number(voxel) and np.isfinite(voxel) and voxel > 0):
            raise self._error(f"attribute voxel_um is {_short(voxel)}, "
                              "expected a positive length")
        self._json: dict[str, Any] = {}
        for name, (kind, required) in _JSON_ATTRS.items():
            if name not in a and not required:
                continue
            try:
                value = json.loads(a[name])
            except (KeyError, TypeError, ValueError):
                value = None
            if not isinstance(value, kind) or (kind is list and not all(
                    isinstance(v, str) for v in value)):
                raise self._error(f"attribute {name} is {_short(a.get(name))}, expected a "
                                  f"JSON {'list of names' if kind is list else 'object'}")
            self._json[name] = value
        for name in ("status", "output_level", "scenario_toml"):
            if name in a and not isinstance(a[name], str):
                raise self._error(f"attribute {name} is {_short(a[name])}, expected text")
        self._check_datasets()

    def _node(self, name: str, group: bool = False):
        """The group or dataset ``/name``, or a RunFileError saying why not."""
        kind = "group" if group else "dataset"
        try:
            obj = self.h5.get(name)
        except _READ_ERRORS as e:
            raise self._error(f"cannot read /{name}, the file may be damaged ({_why(e)})") \
                from None
        if obj is None:
            raise self._error(f"missing {kind} /{name}")
        if not isinstance(obj, h5py.Group if group else h5py.Dataset):
            raise self._error(f"/{name} is not a {kind}")
        return obj

    def _dataset(self, name: str, ndim: int, kinds: str, lattice: bool = False) -> h5py.Dataset:
        """Dataset ``/name`` with ``ndim`` axes of a dtype kind in ``kinds``, its last three
        axes the lattice's shape when ``lattice``."""
        ds = self._node(name)
        if ds.ndim != ndim or (lattice and ds.shape[-3:] != self._shape):
            want = (f"({'frames, ' if ndim == 4 else ''}{', '.join(map(str, self._shape))}) "
                    "from shape_zyx" if lattice else f"{ndim}-D")
            raise self._error(f"/{name} has shape {ds.shape}, expected {want}")
        if ds.dtype.kind not in kinds:
            raise self._error(f"/{name} has dtype {ds.dtype}, expected "
                              f"{'a float' if kinds == 'f' else 'an integer'} type")
        return ds

    def _read(self, name: str, sel: Any = (), what: str | None = None) -> np.ndarray:
        """``/name[sel]``; a chunk that cannot be read back is a RunFileError naming ``what``."""
        try:
            return self.h5[name][sel]
        except _READ_ERRORS as e:
            raise self._error(f"cannot read {what or '/' + name}, the file may be damaged "
                              f"({_why(e)})") from None

    def _check_datasets(self) -> None:
        self._dataset("time_days", 1, "f")
        times = self._read("time_days")
        self._field_names = list(self._node("fields", group=True))
        lens: dict[str, int | None] = {"fields": None}
        for name in self._field_names:
            n = self._dataset(f"fields/{name}", 4, "f", lattice=True).shape[0]
            lens["fields"] = n if lens["fields"] is None else min(lens["fields"], n)
        lens["bone"] = self._dataset("bone", 4, "iub", lattice=True).shape[0]
        self._dataset("vessel", 3, "iub", lattice=True)
        self._node("agents", group=True)
        rows = min(self._dataset(f"agents/{c}", 1, k).shape[0] for c, k in _AGENT_KINDS.items())
        # columns newer writers add (e.g. parent_id): read where present, never required
        self._extra_agent_columns = [
            c for c, ds in self.h5["agents"].items()
            if c not in AGENT_COLUMNS and c != "frame_offsets" and isinstance(ds, h5py.Dataset)
            and ds.ndim == 1 and ds.shape[0] >= rows and ds.dtype.kind in "iuf"]
        self._dataset("agents/frame_offsets", 1, "iu")
        self._off = self._read("agents/frame_offsets").astype(np.int64)
        if self._off.size == 0:
            raise self._error("/agents/frame_offsets is empty (it starts with 0)")
        lens["agents"] = self._off.size - 1
        # a killed run can leave a frame half-written: trust only complete frames. The
        # writer stores a frame's fields, bone and agents (and their /stored_frames entries)
        # before its readouts and time, so a frame with a time and all readouts is complete
        n = times.size
        self._readout_names = list(self._node("readouts", group=True))
        for name in self._readout_names:
            n = min(n, self._dataset(f"readouts/{name}", 1, "iuf").shape[0])
        sf = self._node("stored_frames", group=True) if "stored_frames" in self.h5 else None
        self._stored: dict[str, np.ndarray | None] = {}
        for kind in FRAME_KINDS:
            if sf is not None and kind in sf:
                self._dataset(f"stored_frames/{kind}", 1, "iu")
                idx = self._read(f"stored_frames/{kind}").astype(np.int64)
                if idx.size and (idx[0] < 0 or np.any(np.diff(idx) <= 0) or idx[-1] > times.size):
                    raise self._error(f"/stored_frames/{kind} is {_frame_list(idx)}, expected "
                                      f"ascending frames of 0..{times.size - 1}")
                self._stored[kind] = idx
            else:  # every frame (version 1, level full)
                self._stored[kind] = None
                if lens[kind] is not None:
                    n = min(n, lens[kind])
        self.n_frames = n
        self.times = times[:n]
        if not (np.all(np.isfinite(self.times)) and np.all(np.diff(self.times) >= 0)):
            raise self._error("/time_days is not an ascending series of finite times")
        for kind, idx in self._stored.items():
            if idx is None:
                continue
            idx = self._stored[kind] = idx[idx < n]  # entries past the last complete frame
            if lens[kind] is not None and idx.size > lens[kind]:
                where = "fields" if kind == "fields" else f"/{kind}"
                raise self._error(f"/stored_frames/{kind} lists {idx.size} complete frames "
                                  f"but {where} holds {lens[kind]}")
        used = self._off[: self.agent_frames.size + 1]
        if used[0] < 0 or np.any(np.diff(used) < 0) or used[-1] > rows:
            raise self._error(f"/agents/frame_offsets is {_frame_list(used)}, expected "
                              f"ascending row numbers within the agent table ({rows} rows)")

    # -- metadata
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._attrs)

    @property
    def status(self) -> str:
        return str(self._attrs.get("status", "unknown"))

    @property
    def level(self) -> str:
        """The output level (``full``, ``frames``, ``summary``; files without one are full)."""
        return str(self._attrs.get("output_level", "full"))

    def stored_frames(self, kind: str) -> np.ndarray:
        """The complete frames (indices into :attr:`times`) at which ``kind`` is stored.

        ``kind`` is ``"fields"``, ``"bone"``, ``"agents"`` or a field name. Readouts are
        stored at every frame, ``0 .. n_frames - 1``.
        """
        if kind in self._field_names:
            kind = "fields"
        if kind not in FRAME_KINDS:
            raise KeyError(f"no stored kind {kind!r} (kinds {', '.join(FRAME_KINDS)} "
                           f"or a field of {self.field_names})")
        idx = self._stored[kind]
        return np.arange(self.n_frames, dtype=np.int64) if idx is None else idx.copy()

    def field_frames(self, name: str) -> np.ndarray:
        """Frames at which field ``name`` is stored."""
        if name not in self._field_names:
            raise KeyError(f"no field {name!r} in run (has {self.field_names})")
        return self.stored_frames("fields")

    @property
    def bone_frames(self) -> np.ndarray:
        """Frames at which the bone mask is stored."""
        return self.stored_frames("bone")

    @property
    def agent_frames(self) -> np.ndarray:
        """Frames at which the agent table is stored."""
        return self.stored_frames("agents")

    @property
    def field_names(self) -> list[str]:
        return list(self._field_names)

    @property
    def type_names(self) -> list[str]:
        return list(self._json["type_names"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def voxel_um(self) -> float:
        return float(self._attrs["voxel_um"])

    @property
    def scenario_toml(self) -> str:
        if not isinstance(self._attrs.get("scenario_toml"), str):
            raise self._error("no scenario_toml attribute")
        return self._attrs["scenario_toml"]

    def scenario(self):
        """The resolved scenario, validated again."""
        import tomllib

        from ..scenario import validate_raw

        try:
            raw = tomllib.loads(self.scenario_toml)
        except tomllib.TOMLDecodeError as e:
            raise self._error(f"attribute scenario_toml is not valid TOML ({_why(e)})") from None
        return validate_raw(raw, repr(self.path.name))

    def _frame(self, frame: int) -> int:
        k = int(frame)
        if k < 0:
            k += self.n_frames
        if not 0 <= k < self.n_frames:
            raise IndexError(f"frame {frame} out of range (file has {self.n_frames} frames)")
        return k

    def _slot(self, kind: str, frame: int, what: str) -> int:
        """Position of ``frame`` in the datasets of ``kind`` (raises if not stored)."""
        k = self._frame(frame)
        idx = self._stored[kind]
        if idx is None:
            return k
        j = int(np.searchsorted(idx, k))
        if j < idx.size and idx[j] == k:
            return j
        raise RunFileError(f"{what} is not stored at frame {k} (output level "
                           f"{self.level!r}; {what} is stored at frames {_frame_list(idx)})")

    # -- data (a chunk that cannot be read back is a RunFileError naming it)
    def field(self, name: str, frame: int) -> np.ndarray:
        """Field ``name`` at ``frame`` as (Z, Y, X)."""
        if name not in self._field_names:
            raise KeyError(f"no field {name!r} in run (has {self.field_names})")
        j = self._slot("fields", frame, f"field {name!r}")
        return self._read(f"fields/{name}", j, f"field {name!r} at frame {self._frame(frame)}")

    def bone(self, frame: int) -> np.ndarray:
        j = self._slot("bone", frame, "bone")
        return self._read("bone", j, f"the bone mask at frame {self._frame(frame)}")

    @property
    def vessel(self) -> np.ndarray:
        return self._read("vessel", (), "the vessel mask")

    def agents(self, frame: int | None = None, *, frames: Any = None,
               concentrations: bool = True):
        """The agent table as a pandas DataFrame.

        ``agents(k)``: the stored columns of frame ``k`` (``AGENT_COLUMNS``, any newer
        column such as ``parent_id``) and ``type_name``; cheap, what the viewer reads.

        ``agents()``, ``agents(frames=[0, -1])`` or ``agents(frames=3)``: the analysis table
        over all (or the chosen) frames with agents, one row per cell and frame: ``frame``,
        ``t_days``, the stored columns, ``type_name``, the decoded states (``states``, e.g.
        ``"REGULATORY|CXCR3"``, and one boolean ``state_<flag>`` per :class:`State` flag),
        ``z_um``, ``y_um``, ``x_um`` (voxel centres, ``(i + 0.5) * voxel_um``) and, unless
        ``concentrations=False``, ``conc_<FIELD>_<unit>``: each field at the cell's voxel
        at that frame (NaN at a frame whose fields are not stored, see
        :meth:`stored_frames`).
        """
        import pandas as pd

        if frame is not None:
            if frames is not None:
                raise TypeError("agents(): give frame (one frame's stored table) or frames "
                                "(the analysis table), not both")
            return self._agent_rows(frame)
        ks = self._frames_arg(frames, self.agent_frames)
        parts = [self._agent_detail(k, concentrations) for k in ks]
        if not parts:
            return self._agent_detail(None, concentrations)
        return pd.concat(parts, ignore_index=True)

    def _frames_arg(self, frames: Any, default: np.ndarray) -> list[int]:
        """``frames`` (None: ``default``; an int; or a sequence) as frame numbers."""
        if frames is None:
            return [int(k) for k in default]
        if _is_int(frames):
            frames = [frames]
        if isinstance(frames, (str, bytes)) or not hasattr(frames, "__iter__"):
            raise TypeError(f"frames {_short(frames)}: expected a frame number or a list of "
                            "them")
        out = []
        for k in frames:
            if not _is_int(k):
                raise TypeError(f"frames: {_short(k)} is not a frame number")
            out.append(self._frame(k))
        return out

    def _agent_rows(self, frame: int | None):
        """The stored agent columns of one frame (None: an empty table), with type_name."""
        import pandas as pd

        cols = list(AGENT_COLUMNS) + self._extra_agent_columns
        what = "the agent table"
        if frame is None:
            df = pd.DataFrame({c: np.zeros(0, self.h5[f"agents/{c}"].dtype) for c in cols})
        else:
            k = self._frame(frame)
            j = self._slot("agents", k, "the agent table")
            a, b = int(self._off[j]), int(self._off[j + 1])
            what = f"the agent table at frame {k}"
            df = pd.DataFrame({c: self._read(f"agents/{c}", slice(a, b), what) for c in cols})
        codes = df["type"].to_numpy()
        if codes.size and (codes.min() < 0 or codes.max() >= len(self.type_names)):
            raise self._error(f"{what} has cell type codes outside "
                              f"0..{len(self.type_names) - 1}")
        df["type_name"] = pd.Categorical.from_codes(codes.astype(int), self.type_names)
        return df

    def _um(self, df) -> None:
        """Add ``z_um``, ``y_um``, ``x_um``: voxel centres in micrometres."""
        for ax in "zyx":
            df[f"{ax}_um"] = (df[ax].to_numpy(np.float64) + 0.5) * self.voxel_um

    def _agent_detail(self, frame: int | None, concentrations: bool):
        """One frame of the analysis table (see :meth:`agents`)."""
        df = self._agent_rows(frame)
        n = len(df)
        df.insert(0, "t_days", np.full(n, np.nan if frame is None else self.times[frame]))
        df.insert(0, "frame", np.full(n, -1 if frame is None else frame, np.int64))
        df = df.join(decode_states(df["state"].to_numpy()))
        self._um(df)
        if concentrations:
            fields = frame is not None and frame in set(self.stored_frames("fields").tolist())
            z, y, x = (df[ax].to_numpy(np.intp) for ax in "zyx")
            for name in self._field_names:
                col = f"conc_{name}_{self.field_units(name)}"
                df[col] = self.field(name, frame)[z, y, x].astype(np.float64) if fields \
                    else np.full(n, np.nan)
        return df

    def field_units(self, name: str) -> str:
        """The ``units`` attribute of field ``name`` (pM for files without one)."""
        if name not in self._field_names:
            raise KeyError(f"no field {name!r} in run (has {self.field_names})")
        u = self.h5[f"fields/{name}"].attrs.get("units", "pM")
        return u.decode() if isinstance(u, bytes) else str(u)

    def readout_units(self, name: str) -> str:
        """The ``units`` attribute of readout ``name`` (else :data:`READOUT_UNITS`)."""
        if name not in self._readout_names:
            raise KeyError(f"no readout {name!r} in run")
        u = self.h5[f"readouts/{name}"].attrs.get("units")
        if u is None:
            return READOUT_UNITS.get(name, "")
        return u.decode() if isinstance(u, bytes) else str(u)

    def tracks(self, frames: Any = None):
        """Per-cell trajectories over the frames with agents (or the chosen ones): one row
        per cell and frame, sorted by ``id`` then ``frame``: ``id``, ``frame``, ``t_days``,
        ``type_name``, ``z``, ``y``, ``x``, ``z_um``, ``y_um``, ``x_um``, and ``step_um``,
        the straight distance from the cell's previous row (NaN on its first)."""
        cols = ["id", "frame", "t_days", "type_name", "z", "y", "x", "z_um", "y_um", "x_um"]
        df = self.agents(frames=frames, concentrations=False)[cols]
        df = df.sort_values(["id", "frame"], kind="stable").reset_index(drop=True)
        d = df[["z_um", "y_um", "x_um"]].to_numpy()
        step = np.full(len(df), np.nan)
        same = df["id"].to_numpy()[1:] == df["id"].to_numpy()[:-1]
        step[1:][same] = np.sqrt(((d[1:] - d[:-1]) ** 2).sum(axis=1))[same]
        df["step_um"] = step
        return df

    @property
    def has_events(self) -> bool:
        """Whether the file holds an event log (``/events``; newer runs)."""
        return isinstance(self.h5.get("events"), h5py.Group)

    def events(self):
        """The event log (``/events``) as a DataFrame, one row per event in time order:
        ``frame`` (where the file has ``/events/frame_offsets``: the frame that closes the
        interval the event happened in), ``t_days``, ``tick``, ``kind`` (``birth``, ``death``, ``fusion``,
        ``differentiation``, ``division``; from the group's ``kinds`` attribute), ``id``,
        ``other_id`` (the other cell of a fusion or division; -1: none), ``type``,
        ``type_name``, ``z``, ``y``, ``x`` and ``z_um``, ``y_um``, ``x_um``. Older files
        have no event log: a RunFileError says so."""
        import pandas as pd

        if not self.has_events:
            raise self._error("has no event log (/events): it was written by a niche from "
                              "before event logs; run the scenario again for one")
        g = self._node("events", group=True)
        try:
            kinds = json.loads(g.attrs["kinds"])
            if not isinstance(kinds, dict) or not all(
                    isinstance(k, str) and _is_int(v) for k, v in kinds.items()):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise self._error(f"/events attribute kinds is {_short(g.attrs.get('kinds'))}, "
                              "expected a JSON object of kind name -> code") from None
        cols = {}
        for c, k in _EVENT_COLUMNS.items():
            self._dataset(f"events/{c}", 1, k)
            cols[c] = self._read(f"events/{c}", (), f"the event log's {c!r}")
        lens = {c: v.size for c, v in cols.items()}
        if len(set(lens.values())) > 1:
            raise self._error(f"/events columns differ in length ({lens})")
        df = pd.DataFrame(cols)
        if "frame_offsets" in g:  # rows of frame k: [off[k], off[k+1]); complete frames only
            off = self._read("events/frame_offsets", (), "the event log's frame offsets")
            off = off[: self.n_frames + 1].astype(np.int64)
            if off.size < 1 or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] > len(df):
                raise self._error(f"/events/frame_offsets is {_frame_list(off)}, expected "
                                  f"ascending row numbers within the event log ({len(df)} rows)")
            df = df.iloc[: off[-1]].copy()
            df.insert(0, "frame", np.repeat(np.arange(off.size - 1), np.diff(off)))
        codes = df["kind"].to_numpy().astype(np.int64)
        names = {int(v): k for k, v in kinds.items()}
        unknown = sorted(set(codes.tolist()) - set(names))
        if unknown:
            raise self._error(f"/events has kind codes {unknown} that attribute kinds "
                              f"({g.attrs['kinds']}) does not name")
        order = sorted(names)
        df["kind"] = pd.Categorical.from_codes(
            np.searchsorted(order, codes), [names[c] for c in order])
        t = df["type"].to_numpy().astype(np.int64)
        if t.size and (t.min() < -1 or t.max() >= len(self.type_names)):
            raise self._error(f"/events has cell type codes outside -1..{len(self.type_names) - 1}")
        df.insert(df.columns.get_loc("type") + 1, "type_name",
                  pd.Categorical.from_codes(t, self.type_names))
        self._um(df)
        return df

    def to_xarray(self, fields: Any = None, bone: bool = True):
        """The run as an :class:`xarray.Dataset` (needs the ``analysis`` extra), read into
        memory: each field (``fields``: names, default all) as ``(time, z, y, x)``, ``bone``
        as ``(time, z, y, x)`` uint8 (``bone=False`` leaves it out), ``vessel``
        ``(z, y, x)``, and every readout over ``time``; ``units`` attributes throughout.

        Coordinates: ``z``, ``y``, ``x`` in um (voxel centres), ``time`` in days, with the
        frame numbers in ``frame``. Fields and bone use ``time`` when they are stored at
        every frame (output level ``full``); otherwise their own ``time_fields`` /
        ``time_bone`` axes over the frames that hold them (``frame_fields``,
        ``frame_bone``).
        """
        xr = _optional("xarray", "to_xarray")
        names = self.field_names if fields is None else list(fields)
        for n in names:
            if n not in self._field_names:
                raise KeyError(f"no field {n!r} in run (has {self.field_names})")
        every = np.arange(self.n_frames, dtype=np.int64)
        coords: dict[str, Any] = {
            ax: (ax, (np.arange(n) + 0.5) * self.voxel_um, {"units": "um"})
            for ax, n in zip("zyx", self._shape)}
        coords["time"] = ("time", self.times, {"units": "day"})
        coords["frame"] = ("time", every)

        def axis(kind: str) -> str:
            ks = self.stored_frames(kind)
            if np.array_equal(ks, every):
                return "time"
            coords[f"time_{kind}"] = (f"time_{kind}", self.times[ks], {"units": "day"})
            coords[f"frame_{kind}"] = (f"time_{kind}", ks)
            return f"time_{kind}"

        data: dict[str, Any] = {}
        if names:
            t = axis("fields")
            ks = self.stored_frames("fields")
            for n in names:
                arr = np.stack([self.field(n, k) for k in ks]) if ks.size \
                    else np.zeros((0, *self._shape), np.float32)
                data[n] = ((t, "z", "y", "x"), arr, {"units": self.field_units(n)})
        if bone:
            ks = self.bone_frames
            arr = np.stack([self.bone(k) for k in ks]) if ks.size \
                else np.zeros((0, *self._shape), np.uint8)
            data["bone"] = ((axis("bone"), "z", "y", "x"), arr, {"units": "1 = bone"})
        data["vessel"] = (("z", "y", "x"), self.vessel, {"units": "1 = vessel lumen"})
        ro = self.readouts
        for n in ro.columns:
            if n in data or n in coords:
                raise self._error(f"readout {n!r} has the name of a field or coordinate")
            data[n] = ("time", ro[n].to_numpy(), {"units": self.readout_units(n)})
        attrs = {k: self._attrs[k] for k in ("scenario_name", "seed", "niche_version",
                                            "status", "format_version") if k in self._attrs}
        attrs.update(voxel_um=self.voxel_um, output_level=self.level,
                     source=self.path.name)
        return xr.Dataset(data, coords=coords, attrs=_plain(attrs))

    def to_anndata(self, frames: Any = -1):
        """The cells as an :class:`anndata.AnnData` (needs the ``analysis`` extra): one
        observation per cell and frame (``frames``: a frame, a list, or None for every frame
        with agents; default the last), the local concentrations as variables (``X``, one
        per field, ``var['units']``), everything else of :meth:`agents` in ``obs`` (type,
        decoded states, nuclei, age, coordinates), ``obsm['spatial']`` the (x, y, z)
        positions in um and ``uns['niche']`` the run's scenario, seed and voxel size.
        Observation names are ``<id>@<frame>``."""
        ad = _optional("anndata", "to_anndata")
        import pandas as pd

        df = self.agents(frames=frames)
        conc = [c for c in df.columns if c.startswith("conc_")]
        obs = df.drop(columns=conc)
        obs.index = pd.Index([f"{i}@{k}" for i, k in zip(df["id"], df["frame"])], dtype=str)
        obs["states"] = obs["states"].astype(str)
        var = pd.DataFrame({"units": [self.field_units(n) for n in self._field_names]},
                           index=pd.Index(self._field_names, dtype=str))
        x = df[conc].to_numpy(np.float32) if conc else np.zeros((len(df), 0), np.float32)
        uns = {"niche": _plain({"scenario_name": self._attrs.get("scenario_name", ""),
                                "seed": self._attrs.get("seed", -1),
                                "voxel_um": self.voxel_um, "source": self.path.name,
                                "times_days": self.times})}
        return ad.AnnData(X=x, obs=obs, var=var, uns=uns,
                          obsm={"spatial": df[["x_um", "y_um", "z_um"]].to_numpy()})

    @property
    def frame_offsets(self) -> np.ndarray:
        """(len(agent_frames) + 1,) int64: rows of the j-th stored agent frame in ``/agents``
        are ``[off[j], off[j+1])`` (at level full, j is the frame)."""
        return self._off[: self.agent_frames.size + 1]

    def n_agents(self, frame: int) -> int:
        j = self._slot("agents", frame, "the agent table")
        return int(self._off[j + 1] - self._off[j])

    @property
    def readouts(self):
        """All readouts as a DataFrame indexed by frame (complete frames only)."""
        import pandas as pd

        return pd.DataFrame({k: self._read(f"readouts/{k}", slice(0, self.n_frames),
                                           f"readout {k!r}") for k in self._readout_names})

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> "RunFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"RunFile({self.path.name!r}, frames={self.n_frames}, level={self.level!r}, "
                f"fields={self.field_names})")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v: Any) -> bool:
    return _is_int(v) or isinstance(v, (float, np.floating))


def _short(v: Any) -> str:
    """An attribute's value for an error message, cut to a few words."""
    if isinstance(v, (np.ndarray, np.generic)):
        v = v.tolist()
    text = "missing" if v is None else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _frame_list(idx: np.ndarray, most: int = 12) -> str:
    """``[0, 10, 20, 27]``; long lists shortened to their ends."""
    v = [int(i) for i in idx]
    if len(v) <= most:
        return str(v)
    h = most // 2
    return "[" + ", ".join(map(str, v[:h])) + f", ... ({len(v) - 2 * h} more), " \
        + ", ".join(map(str, v[-h:])) + "]"


def _optional(module: str, what: str):
    """Import an optional dependency, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module}: pip install \"niche[analysis]\"") from None


def _plain(d: dict) -> dict:
    """Attribute values as plain Python / numpy values (no numpy scalars)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in d.items()}


def open_run(path: str | os.PathLike) -> RunFile:
    """Open a run file for reading (lazy: frames are read on request)."""
    return RunFile(path)
