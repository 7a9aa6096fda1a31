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

The writer (:mod:`.writer`) creates ``<out>.partial`` next to the target, flushes after
every frame (a killed run leaves a readable partial file), and renames it onto the target
only when the run ends. An existing target is never touched unless ``overwrite=True``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np


__all__ = ["RunFile", "RunFileError", "open_run", "partial_path", "FORMAT_NAME", "FORMAT_VERSION",
           "AGENT_COLUMNS", "READOUT_UNITS", "FRAME_KINDS"]

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

READOUT_UNITS = {
    "t_days": "day", "bv_tv": "1", "bs_bv_per_mm": "1/mm", "tb_th_um": "um",
    "tb_n_per_mm": "1/mm", "tb_sp_um": "um", "resorbed_mm3_per_day": "mm^3/day",
    "formed_mm3_per_day": "mm^3/day",
}


class RunFileError(ValueError):
    """A run file is missing, unreadable, truncated or not a niche run."""


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


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
            bone_len = self.h5["bone"].shape[0]
        except KeyError as e:
            self.h5.close()
            raise RunFileError(f"{str(self.path)!r}: missing dataset ({e})") from None
        # a killed run can leave a frame half-written: trust only complete frames. The
        # writer stores a frame's fields, bone and agents (and their /stored_frames entries)
        # before its readouts and time, so a frame with a time and all readouts is complete
        n = self.times.size
        for name in self.h5["readouts"]:
            n = min(n, self.h5["readouts"][name].shape[0])
        lens = {"bone": bone_len, "agents": self._off.size - 1,
                "fields": min((self.h5["fields"][k].shape[0] for k in self.h5["fields"]),
                              default=None)}
        sf = self.h5.get("stored_frames")
        self._stored: dict[str, np.ndarray | None] = {}
        for kind in FRAME_KINDS:
            if sf is not None and kind in sf:
                idx = sf[kind][:].astype(np.int64)
                if lens[kind] is not None:
                    idx = idx[: lens[kind]]
                self._stored[kind] = idx
            else:  # every frame (version 1, level full)
                self._stored[kind] = None
                if lens[kind] is not None:
                    n = min(n, lens[kind])
        self.n_frames = n
        self.times = self.times[:n]
        for kind, idx in self._stored.items():
            if idx is not None:
                self._stored[kind] = idx[idx < n]

    # -- metadata
    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.h5.attrs)

    @property
    def status(self) -> str:
        return str(self.h5.attrs.get("status", "unknown"))

    @property
    def level(self) -> str:
        """The output level (``full``, ``frames``, ``summary``; files without one are full)."""
        return str(self.h5.attrs.get("output_level", "full"))

    def stored_frames(self, kind: str) -> np.ndarray:
        """The complete frames (indices into :attr:`times`) at which ``kind`` is stored.

        ``kind`` is ``"fields"``, ``"bone"``, ``"agents"`` or a field name. Readouts are
        stored at every frame, ``0 .. n_frames - 1``.
        """
        if kind in self.h5["fields"]:
            kind = "fields"
        if kind not in FRAME_KINDS:
            raise KeyError(f"no stored kind {kind!r} (kinds {', '.join(FRAME_KINDS)} "
                           f"or a field of {self.field_names})")
        idx = self._stored[kind]
        return np.arange(self.n_frames, dtype=np.int64) if idx is None else idx.copy()

    def field_frames(self, name: str) -> np.ndarray:
        """Frames at which field ``name`` is stored."""
        if name not in self.h5["fields"]:
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

        from ..scenario import validate_raw

        return validate_raw(tomllib.loads(self.scenario_toml), repr(self.path.name))

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

    # -- data
    def field(self, name: str, frame: int) -> np.ndarray:
        """Field ``name`` at ``frame`` as (Z, Y, X)."""
        if name not in self.h5["fields"]:
            raise KeyError(f"no field {name!r} in run (has {self.field_names})")
        return self.h5["fields"][name][self._slot("fields", frame, f"field {name!r}")]

    def bone(self, frame: int) -> np.ndarray:
        return self.h5["bone"][self._slot("bone", frame, "bone")]

    @property
    def vessel(self) -> np.ndarray:
        return self.h5["vessel"][:]

    def agents(self, frame: int):
        """The agents of one frame as a pandas DataFrame (with a ``type_name`` column)."""
        import pandas as pd

        j = self._slot("agents", frame, "the agent table")
        a, b = int(self._off[j]), int(self._off[j + 1])
        ag = self.h5["agents"]
        df = pd.DataFrame({c: ag[c][a:b] for c in AGENT_COLUMNS})
        df["type_name"] = pd.Categorical.from_codes(df["type"].astype(int), self.type_names)
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

        r = self.h5["readouts"]
        return pd.DataFrame({k: r[k][: self.n_frames] for k in r})

    def close(self) -> None:
        self.h5.close()

    def __enter__(self) -> "RunFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"RunFile({self.path.name!r}, frames={self.n_frames}, level={self.level!r}, "
                f"fields={self.field_names})")


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
