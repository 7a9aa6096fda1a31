"""Run files: the format and lazy reader, the HDF5 writer (an observer), the XDMF sidecar.

One run = one self-describing HDF5 file (:mod:`.runfile`: format and reader; format
description in docs/file-format.md); :mod:`.writer` writes it frame by frame;
:mod:`.xdmf` adds the sidecar that ParaView and VisIt open. Modules import in that order.
"""
from .runfile import (
    AGENT_COLUMNS,
    FORMAT_NAME,
    FORMAT_VERSION,
    READOUT_UNITS,
    RunFile,
    RunFileError,
    open_run,
    partial_path,
)
from .writer import RunWriter, write_sidecar
from .xdmf import write_xdmf, xdmf_paths

__all__ = ["AGENT_COLUMNS", "FORMAT_NAME", "FORMAT_VERSION", "READOUT_UNITS", "RunFile",
           "RunFileError", "RunWriter", "open_run", "partial_path", "write_sidecar",
           "write_xdmf", "xdmf_paths"]
