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
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..scenario import CELL_TYPES


__all__ = ["RunFile", "RunFileError", "open_run", "partial_path", "FORMAT_NAME", "FORMAT_VERSION",
           "AGENT_COLUMNS", "READOUT_UNITS", "READOUTS", "FRAME_KINDS"]

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

    def agents(self, frame: int):
        """The agents of one frame as a pandas DataFrame (with a ``type_name`` column)."""
        import pandas as pd

        k = self._frame(frame)
        j = self._slot("agents", k, "the agent table")
        a, b = int(self._off[j]), int(self._off[j + 1])
        what = f"the agent table at frame {k}"
        df = pd.DataFrame({c: self._read(f"agents/{c}", slice(a, b), what) for c in AGENT_COLUMNS})
        codes = df["type"].to_numpy()
        if codes.size and (codes.min() < 0 or codes.max() >= len(self.type_names)):
            raise self._error(f"{what} has cell type codes outside 0..{len(self.type_names) - 1}")
        df["type_name"] = pd.Categorical.from_codes(codes.astype(int), self.type_names)
        return df

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


def open_run(path: str | os.PathLike) -> RunFile:
    """Open a run file for reading (lazy: frames are read on request)."""
    return RunFile(path)
