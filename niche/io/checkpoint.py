"""Checkpoints: everything that decides a run's future, written atomically, read back safely.

A checkpoint is the whole model (cell arrays, fields, bone, time and tick counters, every
RNG state: the model's numpy Generators, Mesa's ``random``/``rng`` and the kernels' seed;
pending changes, the cell events since the last frame, the host's schedules and pharmacokinetic state, perturbation progress,
the rule set's own state) plus the state of the observers that keep any (the run-file
writer's frame counters, the readout history, the Mesa DataCollector). It is taken between
two movement ticks, so a model restored from it continues with the next tick exactly as the
uninterrupted run did: the same file bit for bit, at any ``NUMBA_NUM_THREADS``.

File layout (``.ckpt``)::

    b"NICHE-CHECKPOINT 1\\n"
    one line of JSON: tick, t_days, frames, niche_version, scenario_name, seed,
                      payload_bytes, payload_sha256
    the payload: a pickle (protocol 5)

Writing goes to a temporary file in the same folder, is flushed to disk (``fsync``) and
renamed onto the target, so a checkpoint is never half-visible: a kill while one is being
written leaves the previous one. Checkpoints, like run files, are untrusted input: the
payload's SHA-256 must match, and it is unpickled by :class:`_SafeUnpickler`, which builds
only the project's own classes (from :mod:`niche.core`, :mod:`niche.biology`,
:mod:`niche.scenario`, :mod:`niche.runner`), Mesa's agent sets and the numpy and standard
library types a model holds; any other global (``os.system``, ``builtins.eval``, ...) is
refused with :class:`CheckpointError`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

from ..provenance import __version__
from .runfile import RunFileError

__all__ = ["CheckpointError", "Checkpoint", "dump_checkpoint", "load_checkpoint",
           "write_atomic"]

MAGIC = b"NICHE-CHECKPOINT 1\n"


class CheckpointError(RunFileError):
    """A checkpoint is missing, damaged or not a niche checkpoint."""


class Checkpoint:
    """A loaded checkpoint: ``model`` (without observers), ``observers`` (name -> state)
    and ``meta`` (the JSON header)."""

    def __init__(self, model, observers: dict[str, Any], meta: dict[str, Any]):
        self.model = model
        self.observers = observers
        self.meta = meta

    @property
    def frames(self) -> int:
        """Frames the run file held when the checkpoint was taken."""
        return int(self.meta["frames"])

    @property
    def tick(self) -> int:
        return int(self.meta["tick"])


def write_atomic(path: Path, chunks, sync: bool = True) -> int:
    """Write ``chunks`` (bytes-likes) to ``path`` through a temporary file and a rename.

    The temporary file is flushed to disk before the rename and the folder after it, so
    the target holds either its old content or the whole new one, also after a power cut.
    A failure (disk full, ...) removes the temporary file and leaves the target alone.
    Returns the bytes written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for chunk in chunks:
                mv = memoryview(chunk).cast("B")
                while mv:
                    w = os.write(fd, mv)
                    n += w
                    mv = mv[w:]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if sync:
        fsync_dir(path.parent)
    return n


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def dump_checkpoint(model, observers: dict[str, Any], frames: int) -> list[bytes]:
    """The bytes of a checkpoint of ``model`` (header line and payload)."""
    payload = pickle.dumps({"model": model, "observers": observers}, protocol=5)
    meta = {"tick": int(model.tick), "t_days": float(model.t_days), "frames": int(frames),
            "niche_version": __version__, "scenario_name": model.scenario.name,
            "seed": int(model.seed), "payload_bytes": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest()}
    return [MAGIC, json.dumps(meta).encode() + b"\n", payload]


def read_meta(data: bytes, label: str) -> tuple[dict[str, Any], int]:
    """The JSON header of checkpoint bytes and the payload's offset."""
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{label} is not a niche checkpoint")
    end = data.find(b"\n", len(MAGIC))
    try:
        meta = json.loads(data[len(MAGIC):end])
        for k in ("tick", "frames", "payload_bytes", "payload_sha256"):
            meta[k]  # noqa: B018 - presence check
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{label}: damaged checkpoint header ({e})") from None
    return meta, end + 1


def load_checkpoint(source: Path | bytes, label: str | None = None) -> Checkpoint:
    """Read and verify a checkpoint from a file or from its bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = label or "checkpoint"
    else:
        label = label or repr(str(source))
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise CheckpointError(f"cannot read checkpoint {label} ({e.strerror or e})") from None
    meta, start = read_meta(data, label)
    payload = data[start:]
    if len(payload) != int(meta["payload_bytes"]) \
            or hashlib.sha256(payload).hexdigest() != meta["payload_sha256"]:
        raise CheckpointError(f"{label}: checkpoint is truncated or damaged (checksum mismatch)")
    try:
        obj = _SafeUnpickler(io.BytesIO(payload)).load()
        return Checkpoint(obj["model"], obj["observers"], meta)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure is a damaged checkpoint
        raise CheckpointError(f"{label}: cannot restore checkpoint "
                              f"({type(e).__name__}: {e})") from None


#: module prefixes whose classes a checkpoint may build
_OWN = ("niche.core.", "niche.biology.", "niche.scenario.", "niche.runner", "mesa.agent",
        "mesa.model")
#: other globals a pickled model refers to (numpy arrays, generators, scalars)
_ALLOWED = {
    ("builtins", n) for n in ("float", "int", "complex", "bool", "set", "frozenset", "list",
                              "dict", "tuple", "bytearray", "slice", "range", "object")
} | {
    ("collections", "defaultdict"), ("collections", "OrderedDict"), ("collections", "deque"),
    ("random", "Random"), ("copyreg", "_reconstructor"), ("enum", "Enum"),
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy", "uint64"), ("numpy", "int64"),
    ("numpy", "float64"), ("numpy", "float32"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.random._pickle", "__generator_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random._pcg64", "PCG64"),
    ("numpy.random._philox", "Philox"), ("numpy.random._mt19937", "MT19937"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Builds only the project's classes and the numpy/stdlib types a model holds."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.startswith(_OWN) and not name.startswith("_"):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise CheckpointError(f"checkpoint refers to {module}.{name}, which a niche "
                              "checkpoint never holds (refused)")
