"""Run files: the format (one self-describing HDF5 file per run) and the lazy reader.

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
           "AGENT_COLUMNS", "READOUT_UNITS"]

FORMAT_NAME = "niche-run"
FORMAT_VERSION = 1

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

        from ..scenario import validate_raw

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
