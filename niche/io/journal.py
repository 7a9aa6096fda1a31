"""The journal of a run being written: crash-safe frames, one writer, atomic assembly.

HDF5 is not crash-safe: a process killed while the library writes (SIGKILL, power loss, a
full disk) can leave B-tree nodes, object headers or compressed chunks half-written, so
earlier frames become unreadable too, and a file opened with ``libver="latest"`` is left
flagged "open for write". So a run in progress never writes into its run file. It writes
a *journal*, the folder ``<out>.partial/``::

    lock             held (``flock``) by the one process writing this output; holds its pid
    manifest.json    target name, overwrite flag, base run file (when continuing one)
    header.h5        the run file with zero frames: attributes, vessel, empty datasets
    frames/00000000.h5 ...
                     one small HDF5 file per frame (time, readouts, and the fields, bone
                     and agents the output level stores at that frame), built in memory,
                     written to a temporary name, flushed to disk and renamed: a frame
                     file that exists is complete
    checkpoint.ckpt  the latest checkpoint (:mod:`.checkpoint`), also written by rename

When the run ends the frames are assembled into ``<out>`` (through a temporary file and a
rename: the target is never half-written) and the journal is deleted. A killed run leaves
its journal: ``niche repair`` assembles its complete frames into ``<out>`` and
``niche resume`` continues it from its checkpoint. Field and bone chunks are copied into
the run file as they are (no second compression), so assembly costs about one read and one
write of the run's data.

Only one process writes an output: the journal's lock is taken before anything else is
touched, and a second run on the same ``--out`` is refused while the first holds it (the
kernel drops the lock when its holder dies, however it dies).
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..core.events import EVENT_COLUMNS
from .checkpoint import CheckpointError, fsync_dir, load_checkpoint, read_meta, write_atomic
from .runfile import AGENT_COLUMNS, FRAME_KINDS, RunFileError, partial_path

__all__ = ["Journal", "OutputBusy", "repair", "target_of", "load_file_checkpoint",
           "AGENT_TABLE"]

#: the agent-table columns the writer stores: the reader's columns and ``parent_id``
AGENT_TABLE: dict[str, str] = {**AGENT_COLUMNS, "parent_id": "int64"}

_FRAME = re.compile(r"^(\d{8})\.h5$")
JOURNAL_FORMAT = "niche-journal"
CHECKPOINT_NAME = "checkpoint.ckpt"


class OutputBusy(FileExistsError):
    """Another process is writing this output."""


def target_of(path: str | os.PathLike) -> Path:
    """The run file a path names (``x.h5`` for ``x.h5`` and ``x.h5.partial``)."""
    p = Path(path)
    return p.with_name(p.name[: -len(".partial")]) if p.name.endswith(".partial") else p


class Journal:
    """The ``<out>.partial/`` folder of one output, locked by this process while open."""

    def __init__(self, target: Path, lock_fd: int):
        self.target = Path(target)
        self.dir = partial_path(self.target)
        self._lock_fd: int | None = lock_fd
        self.manifest: dict[str, Any] = {}
        m = self.dir / "manifest.json"
        if m.exists():
            try:
                self.manifest = json.loads(m.read_text(encoding="utf-8"))
            except (ValueError, OSError, UnicodeDecodeError) as e:
                self.release()
                raise RunFileError(f"{str(self.dir)!r}: damaged journal manifest ({e})") from None
            if not isinstance(self.manifest, dict) \
                    or self.manifest.get("format") != JOURNAL_FORMAT:
                self.release()
                raise RunFileError(f"{str(self.dir)!r} is not a niche run journal")

    # -- creating and opening
    @classmethod
    def create(cls, target: str | os.PathLike, overwrite: bool = False,
               base: Path | None = None, base_frames: int = 0) -> "Journal":
        """Start the journal of a new run (or of the continuation of ``base``).

        Refuses, touching nothing, when ``target`` exists (unless ``overwrite``), when
        another process writes it, or when a killed run's journal is there (unless
        ``overwrite``, which discards that journal).
        """
        target = Path(target)
        if target.is_dir():
            raise FileExistsError(f"output {str(target)!r} is a directory")
        if target.exists() and not overwrite:
            raise FileExistsError(
                f"output {str(target)!r} exists; pass --overwrite (overwrite=True) to replace it")
        jdir = partial_path(target)
        if jdir.exists() or jdir.is_symlink():
            if jdir.is_dir() and not jdir.is_symlink():
                j = cls.open(target)  # raises OutputBusy while another process writes it
                n = len(j.frame_numbers())
                empty = j.is_empty()
                j.release()
                if not overwrite and not empty:  # an empty one (killed while starting) goes
                    raise FileExistsError(
                        f"an unfinished run of {str(target)!r} is there ({jdir.name}, {n} "
                        f"frames; killed?): `niche resume {target}` continues it, `niche "
                        f"repair {target}` keeps its frames as a run file, --overwrite "
                        "starts afresh")
                shutil.rmtree(jdir)
            elif not overwrite:
                raise FileExistsError(f"{str(jdir)!r} exists (not a niche journal); remove it "
                                      "or pass --overwrite")
            else:
                jdir.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        # the journal is made whole and locked under a private name, then renamed into
        # place: a journal visible under <out>.partial always has its lock (or a dead owner)
        new = jdir.with_name(f".{jdir.name}.{os.getpid()}.new")
        shutil.rmtree(new, ignore_errors=True)
        os.mkdir(new)
        fd = _lock(new / "lock", create=True)
        manifest = {"format": JOURNAL_FORMAT, "version": 1, "target": target.name,
                    "overwrite": bool(overwrite),
                    "base": base.name if base is not None else None,
                    "base_frames": int(base_frames)}
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            (new / "frames").mkdir()
            write_atomic(new / "manifest.json", [json.dumps(manifest).encode()], sync=False)
            os.rename(new, jdir)
        except OSError as e:
            os.close(fd)
            shutil.rmtree(new, ignore_errors=True)
            if jdir.exists():  # another run claimed the output in the meantime
                raise OutputBusy(f"output {str(target)!r} is being written by another run "
                                 "(it started just now)") from None
            raise e
        fsync_dir(jdir.parent)
        j = cls(target, fd)
        j.manifest = manifest
        return j

    @classmethod
    def open(cls, target: str | os.PathLike) -> "Journal":
        """Open (and lock) the journal a killed or stopped run left."""
        target = target_of(target)
        jdir = partial_path(target)
        if not jdir.is_dir():
            raise RunFileError(f"no unfinished run of {str(target)!r} ({jdir.name} not found)")
        fd = _lock(jdir / "lock", create=False)
        if fd is None:
            pid = _read_pid(jdir / "lock")
            raise OutputBusy(f"output {str(target)!r} is being written by another run"
                             + (f" (pid {pid})" if pid else ""))
        return cls(target, fd)

    @staticmethod
    def exists(target: str | os.PathLike) -> bool:
        return partial_path(target_of(target)).is_dir()

    @staticmethod
    def has_checkpoint(target: str | os.PathLike) -> bool:
        """A killed or stopped run of ``target`` left a checkpoint to continue from."""
        return (partial_path(target_of(target)) / CHECKPOINT_NAME).is_file()

    def release(self) -> None:
        """Give up the lock (the journal stays on disk)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def discard(self) -> None:
        """Delete the journal (after its frames went into the run file, or on a bad start)."""
        self.release()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- contents
    def is_empty(self) -> bool:
        """Nothing to keep: the run died before its header (while starting up)."""
        return not self.header_path.exists() and not self.checkpoint_path.exists()

    @property
    def header_path(self) -> Path:
        return self.dir / "header.h5"

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / CHECKPOINT_NAME

    @property
    def base(self) -> Path | None:
        b = self.manifest.get("base")
        return self.target.with_name(b) if b else None

    @property
    def base_frames(self) -> int:
        return int(self.manifest.get("base_frames", 0))

    def frame_path(self, k: int) -> Path:
        return self.dir / "frames" / f"{k:08d}.h5"

    def frame_numbers(self) -> list[int]:
        """Frames in the journal, ascending, up to the first gap (temporary files ignored)."""
        try:
            names = os.listdir(self.dir / "frames")
        except OSError:
            return []
        ks = sorted(int(m.group(1)) for n in names if (m := _FRAME.match(n)))
        out: list[int] = []
        for k in ks:
            if k != (out[-1] + 1 if out else self.base_frames):
                break
            out.append(k)
        return out

    def write_header(self, build) -> None:
        """Write ``header.h5``: ``build(h5file)`` fills an empty run file."""
        write_atomic(self.header_path, [_h5_image(build)])

    def write_frame(self, k: int, build) -> int:
        """Commit frame ``k``: ``build(h5file)`` fills it; returns its size in bytes."""
        return write_atomic(self.frame_path(k), [_h5_image(build)])

    def drop_frames_from(self, k: int) -> None:
        """Delete frames ``k`` and later (a resume rewrites them)."""
        for n in os.listdir(self.dir / "frames"):
            m = _FRAME.match(n)
            if (m and int(m.group(1)) >= k) or n.endswith(".tmp"):
                (self.dir / "frames" / n).unlink()

    def write_checkpoint(self, chunks) -> int:
        return write_atomic(self.checkpoint_path, chunks)

    def checkpoint(self):
        if not self.checkpoint_path.exists():
            return None
        return load_checkpoint(self.checkpoint_path)

    def assemble(self, attrs: dict[str, Any], checkpoint: bytes | None = None,
                 min_free_factor: float = 1.05) -> int:
        """Build ``<out>`` from the base run file (if any) and the journal's frames, through
        a temporary file and a rename. Returns the number of frames."""
        src = self.base if self.base is not None else self.header_path
        if not src.exists():
            raise RunFileError(f"{str(self.dir)!r}: the run never wrote its header "
                               f"({src.name} missing); nothing to keep")
        ks = self.frame_numbers()
        need = src.stat().st_size + sum(self.frame_path(k).stat().st_size for k in ks)
        free = shutil.disk_usage(self.target.parent).free
        if free < need * min_free_factor:
            raise OSError(28, f"no space left to assemble {self.target.name}: needs about "
                              f"{need / 1e6:.1f} MB, {free / 1e6:.1f} MB free")
        tmp = self.target.with_name(f".{self.target.name}.{os.getpid()}.assembling")
        try:
            shutil.copyfile(src, tmp)
            with h5py.File(tmp, "a") as f:
                if self.base is not None:
                    truncate_frames(f, self.base_frames)
                for k in ks:
                    with h5py.File(self.frame_path(k), "r") as seg:
                        append_frame(f, seg, k)
                if "checkpoint" in f:
                    del f["checkpoint"]
                if checkpoint is not None:
                    f.create_dataset("checkpoint", data=np.frombuffer(checkpoint, np.uint8))
                    f["checkpoint"].attrs["meaning"] = (
                        "the run's last checkpoint (niche resume continues the run from it)")
                f.attrs.update(attrs)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.target.parent)
        return self.base_frames + len(ks)


def _lock(path: Path, create: bool) -> int | None:
    """An fd holding an exclusive flock on ``path``; None when another process holds it."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        # a journal folder whose creator died before writing its lock: nobody holds it
        fd = os.open(path, flags | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _h5_image(build) -> bytes:
    """The bytes of an HDF5 file that ``build(f)`` fills, made in memory (no HDF5 write
    ever touches the disk, so a full disk surfaces as a clean ``OSError``)."""
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        build(f)
    return bio.getvalue()


# ------------------------------------------------------------------------------ run file
def _stored(f: h5py.File, kind: str, n_frames: int) -> np.ndarray:
    sf = f.get("stored_frames")
    if sf is not None and kind in sf:
        return sf[kind][:]
    return np.arange(n_frames)


def truncate_frames(f: h5py.File, n: int) -> None:
    """Cut an open run file back to its first ``n`` frames."""
    have = f["time_days"].shape[0]
    if n > have:
        raise RunFileError(f"run file has {have} frames, the checkpoint needs {n}")
    slots = {kind: int(np.count_nonzero(_stored(f, kind, have) < n)) for kind in FRAME_KINDS}
    f["time_days"].resize((n,))
    for name in f["readouts"]:
        f["readouts"][name].resize((n,))
    for name in f["fields"]:
        ds = f["fields"][name]
        ds.resize((slots["fields"],) + ds.shape[1:])
    f["bone"].resize((slots["bone"],) + f["bone"].shape[1:])
    _truncate_table(f["agents"], AGENT_TABLE, slots["agents"])
    if "events" in f:
        _truncate_table(f["events"], EVENT_COLUMNS, n)
    if "stored_frames" in f:
        for kind in FRAME_KINDS:
            f["stored_frames"][kind].resize((slots[kind],))


def _truncate_table(g: h5py.Group, columns, j: int) -> None:
    """Cut a flat table with ``frame_offsets`` back to its first ``j`` frames."""
    off = g["frame_offsets"]
    rows = int(off[j])
    off.resize((j + 1,))
    for col in columns:
        if col in g:  # run files from before a column was added lack it
            g[col].resize((rows,))


def _append_table(g: h5py.Group, seg: h5py.Group | None, columns) -> None:
    """Append one frame's rows (``seg``; None or a missing column: none or -1) to the
    flat table ``g`` and its ``frame_offsets``."""
    off = g["frame_offsets"]
    j = off.shape[0] - 1
    start = int(off[j])
    m = 0
    if seg is not None:
        m = next((seg[c].shape[0] for c in columns if c in seg), 0)
    for col in columns:
        if col not in g:  # a run file from before the column: continued without it
            continue
        ds = g[col]
        ds.resize((start + m,))
        if m:
            ds[start:] = seg[col][()] if col in seg else -1
    off.resize((j + 2,))
    off[j + 1] = start + m


def _filters(ds: h5py.Dataset) -> tuple:
    pl = ds.id.get_create_plist()
    return tuple(pl.get_filter(i)[:3] for i in range(pl.get_nfilters()))


def _copy_chunk(dst: h5py.Dataset, src: h5py.Dataset, j: int) -> None:
    """Append ``src`` (one whole-array chunk) as slot ``j`` of ``dst``: the chunk's bytes as
    they are when both use the same filters, else decoded and encoded again."""
    dst.resize((j + 1,) + dst.shape[1:])
    if src.chunks == src.shape and dst.chunks == (1,) + src.shape \
            and _filters(src) == _filters(dst):
        mask, raw = src.id.read_direct_chunk((0,) * src.ndim)
        dst.id.write_direct_chunk((j,) + (0,) * src.ndim, raw, mask)
    else:
        dst[j] = src[()]


def append_frame(f: h5py.File, seg: h5py.File, k: int) -> None:
    """Append journal frame ``seg`` (frame ``k``) to an open run file."""
    n = f["time_days"].shape[0]
    if n != k:
        raise RunFileError(f"journal frame {k} does not follow the run file's {n} frames")
    has_sf = "stored_frames" in f
    kinds = [kind for kind in FRAME_KINDS if kind in seg]
    if "fields" in seg:
        for name in f["fields"]:
            ds = f["fields"][name]
            _copy_chunk(ds, seg["fields"][name], ds.shape[0])
    if "bone" in seg:
        _copy_chunk(f["bone"], seg["bone"], f["bone"].shape[0])
    if "agents" in seg:
        _append_table(f["agents"], seg["agents"], AGENT_TABLE)
    if "events" in f:
        _append_table(f["events"], seg.get("events"), EVENT_COLUMNS)
    if has_sf:
        for kind in kinds:
            ds = f["stored_frames"][kind]
            ds.resize((ds.shape[0] + 1,))
            ds[-1] = k
    values = seg["readouts"][()]
    names = json.loads(seg.attrs["readout_names"])
    for name, v in zip(names, values):
        ds = f["readouts"][name]
        ds.resize((k + 1,))
        ds[k] = v
    f["time_days"].resize((k + 1,))
    f["time_days"][k] = float(seg.attrs["t_days"])


def load_file_checkpoint(path: Path):
    """The checkpoint a finished (or repaired) run file carries (``/checkpoint``), or None."""
    try:
        with h5py.File(path, "r") as f:
            if "checkpoint" not in f:
                return None
            data = f["checkpoint"][()].tobytes()
    except (OSError, KeyError, TypeError) as e:
        raise RunFileError(f"{str(path)!r}: cannot read its checkpoint ({e})") from None
    return load_checkpoint(data, f"the checkpoint in {str(path)!r}")


def repair(run_path: str | os.PathLike, overwrite: bool = False) -> tuple[Path, int]:
    """Make the run file of a killed or stopped run from its journal: its complete frames
    (a frame being written when the run died is not in the journal), status
    ``incomplete``, and its last checkpoint (so ``niche resume`` can still continue it).
    Written through a temporary file and a rename; the journal is deleted afterwards.

    Returns the run file and its number of frames.
    """
    target = target_of(run_path)
    j = Journal.open(target)
    if j.is_empty() and j.base is None:
        j.discard()
        raise RunFileError(f"{str(target)!r}: the run was killed while starting, before its "
                           "first frame; nothing to keep (its empty journal is removed)")
    try:
        if target.exists() and not j.manifest.get("overwrite") and j.base is None:
            if not overwrite:
                raise FileExistsError(
                    f"output {str(target)!r} exists and the killed run was not asked to "
                    "replace it; pass --overwrite to replace it with the repaired run")
        ck = None
        if j.checkpoint_path.exists():
            data = j.checkpoint_path.read_bytes()
            try:
                meta, _ = read_meta(data, "checkpoint")
                if int(meta["frames"]) <= j.base_frames + len(j.frame_numbers()):
                    ck = data
            except CheckpointError:
                ck = None  # a damaged checkpoint is dropped; the frames are kept
        n = j.assemble({"status": "incomplete"}, checkpoint=ck)
    except BaseException:
        j.release()
        raise
    j.discard()
    return target, n
