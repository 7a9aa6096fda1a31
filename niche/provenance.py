"""Where a result came from: niche's version, its libraries' versions, the commit, the host.

One collector for the run files (:func:`library_versions`, stored in every run file), the
validation and experiment reports and the benchmark records (:func:`provenance`).
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["__version__", "library_versions", "provenance", "git_commit"]

__version__ = "0.1.0"

#: the libraries a run file records (the ones that decide its numbers)
RUN_LIBRARIES = ("numpy", "numba", "h5py", "mesa", "pydantic", "hdf5plugin")


def _versions(packages) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def library_versions() -> dict[str, str]:
    """Python, the libraries that decide a run's numbers, and the HDF5 library."""
    import h5py

    out = {"python": platform.python_version(), **_versions(RUN_LIBRARIES)}
    out["hdf5"] = h5py.version.hdf5_version
    return out


def git_commit() -> str:
    """The short commit of the checkout niche runs from ('unknown' outside a checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                              cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(extra_packages=("pandas", "scipy", "dask", "distributed", "matplotlib")
               ) -> dict[str, str]:
    """Everything a report records: niche, library versions, commit, platform, CPUs."""
    v = {"niche": __version__, **library_versions(), **_versions(extra_packages)}
    v["git commit"] = git_commit()
    v["platform"] = platform.platform()
    v["cpus"] = str(os.cpu_count())
    return v
