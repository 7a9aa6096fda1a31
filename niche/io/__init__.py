"""Run files: the HDF5 writer (an observer) and the lazy reader.

One run = one self-describing HDF5 file (:mod:`.runfile`); format description in
docs/file-format.md.
"""
from .runfile import (
    AGENT_COLUMNS,
    FORMAT_NAME,
    FORMAT_VERSION,
    READOUT_UNITS,
    RunFile,
    RunFileError,
    RunWriter,
    open_run,
    partial_path,
    write_sidecar,
)

__all__ = ["AGENT_COLUMNS", "FORMAT_NAME", "FORMAT_VERSION", "READOUT_UNITS", "RunFile",
           "RunFileError", "RunWriter", "open_run", "partial_path", "write_sidecar"]
