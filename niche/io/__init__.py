"""Run files: the format and lazy reader, the HDF5 writer (an observer), the XDMF sidecar.

One run = one self-describing HDF5 file (:mod:`.runfile`: format and reader, with the
analysis tables and xarray / AnnData views; format description in docs/file-format.md);
:mod:`.writer` writes it frame by frame; :mod:`.xdmf` adds the sidecar that ParaView and
VisIt open; :mod:`.export` writes csv / parquet / VTK (``niche export``). Modules import in
that order.
"""
from .runfile import (
    AGENT_COLUMNS,
    FORMAT_NAME,
    FORMAT_VERSION,
    READOUT_UNITS,
    READOUTS,
    RunFile,
    RunFileError,
    open_run,
    partial_path,
)
from .writer import RunWriter, write_sidecar
from .xdmf import write_xdmf, xdmf_paths
from .export import ExportError, export_run

__all__ = ["AGENT_COLUMNS", "ExportError", "FORMAT_NAME", "FORMAT_VERSION", "READOUTS",
           "READOUT_UNITS", "RunFile", "RunFileError", "RunWriter", "export_run", "open_run",
           "partial_path", "write_sidecar", "write_xdmf", "xdmf_paths"]
