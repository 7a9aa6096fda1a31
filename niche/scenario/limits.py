"""What a validated scenario will need of the machine, checked before anything is allocated.

:func:`estimate` turns a :class:`~niche.scenario.Scenario` into the memory, compute time and
run-file size it needs (closed-form, from the domain, the fields, the cell densities and the
schedule; nothing is built). :func:`check_resources` refuses, with a one-line
:class:`~niche.scenario.ConfigError` naming the keys and the estimate, a run that cannot
work on this machine: memory beyond its RAM (the smaller of physical memory and a cgroup
limit), more than ``MAX_COMPUTE_S`` of compute, or a run file beyond the free disk space.
``allow_large=True`` (``niche run --allow-large``) skips the check.

The cost constants were measured on the 2-core development machine (AMD EPYC, 23.5 GB,
``NUMBA_NUM_THREADS=2``) and are deliberately round: the check only has to tell a run of
minutes or hours from one of months, or gigabytes from terabytes.

Memory (bytes)::

    BASE + voxels x (BYTES_PER_VOXEL + FIELD_ARRAYS x fields x itemsize)
         + stored cells x 2 x (BYTES_PER_CELL + BYTES_PER_CELL_PER_FIELD x fields)
         + initial cells x BYTES_PER_NEW_CELL

Compute (seconds)::

    ticks x voxels x (fields + 1) x SECONDS_PER_VOXEL_TICK
    + ticks x stored cells x movement sub-steps x SECONDS_PER_CELL_SUBSTEP
    + frames x voxels x SECONDS_PER_VOXEL_FRAME
    + field steps x IL-2 doses x SECONDS_PER_DOSE_STEP

Measured: the 12-field sham scenario at 48^3-96^3 voxels costs 1.5e-9 s per voxel, tick and
(field + 1) (a 1-field generic scenario up to 1.3e-8); a movement sub-step 1.4e-8 s per cell
(96^3, 65k cells, 5 vs 50 sub-steps); a frame's readouts ~5.5e-7 s per voxel; serum IL-2
~5e-6 s per dose per field step. Peak memory of sham at 128^3 was 423 MB above the
interpreter's 282 MB (estimate 602 MB: the rate arrays of the field solver are allocated
but mostly never touched); generating the bone and the morphometry take ~72-78 bytes per
voxel for a moment. The reference run (100^3, 56 days) is estimated at ~10 min of compute
(measured 325-695 s).
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .schema import CELL_TYPES, ConfigError, Scenario

__all__ = ["Estimate", "estimate", "check_resources", "machine_memory_bytes",
           "MAX_COMPUTE_S"]

#: the interpreter with numpy, numba, mesa and h5py loaded (282 MB measured), rounded up
BYTES_BASE = 400 * 2**20
#: per voxel besides the fields: bone generation and morphometry temporaries (~72-78 B
#: measured), masks, occupancy (int32), flags, a float64 field copy for readouts
BYTES_PER_VOXEL = 96
#: arrays per field in the solver: concentration, source, uptake, vmax
FIELD_ARRAYS = 4
#: per stored cell: scalar columns and motility (x 2: the store grows by doubling)
BYTES_PER_CELL = 96
#: per stored cell and field: secretion, uptake and vmax (float32)
BYTES_PER_CELL_PER_FIELD = 12
#: per cell drawn at the start (its state and random draws, before it is placed)
BYTES_PER_NEW_CELL = 16

#: compute per voxel, tick and (field + 1) (measured 1.5e-9 for sham, see the docstring)
SECONDS_PER_VOXEL_TICK = 2e-9
#: compute per cell and movement sub-step (measured 1.4e-8)
SECONDS_PER_CELL_SUBSTEP = 2e-8
#: compute per voxel and frame (readouts, morphometry, writing; measured 5.5e-7 without writing)
SECONDS_PER_VOXEL_FRAME = 1e-6
#: compute per IL-2 dose and field step (serum IL-2 and the Treg pool; measured 5e-6)
SECONDS_PER_DOSE_STEP = 1e-5
#: run-file size with lz4 or gzip relative to the raw frames (the reference run's file:
#: 0.36-0.51 of raw, docs/benchmarks.md)
COMPRESSED_FRACTION = 0.5

#: most compute a run may need without ``allow_large``: three days (the reference run
#: needs ~10 minutes, a two-year run at the reference size ~3 hours)
MAX_COMPUTE_S = 3 * 86400.0

_OVERRIDE = "pass --allow-large (allow_large=True) to run anyway"


@dataclass(frozen=True)
class Estimate:
    """What a scenario needs (see the module docstring for the formulas)."""

    voxels: int
    fields: int
    ticks: int
    frames: int
    #: cells present at the start: densities x volume, culture seeding, transfers
    cells: float
    #: movement sub-steps per tick (the fastest cell type)
    substeps: int
    memory_bytes: float
    #: of which the voxel-bound part (domain x fields); the rest is cells and the base
    voxel_bytes: float
    compute_s: float
    #: of which the movement part
    movement_s: float
    #: run file at the scenario's output level (compressed: ``COMPRESSED_FRACTION`` of raw)
    file_bytes: float


def estimate(sc: Scenario) -> Estimate:
    """The memory, compute time and run-file size ``sc`` needs (nothing is allocated)."""
    d, tm = sc.domain, sc.time
    z, y, x = (int(n) for n in d.shape_voxels)
    voxels = z * y * x
    n_fields = len(sc.fields)
    itemsize = 4 if sc.solver.dtype == "float32" else 8
    # the schedule as niche.core.model.Model computes it
    ticks = int(math.ceil(sc.run.days * 1440.0 / tm.move_step_min - 1e-9))
    every_frame = max(1, int(round(sc.run.frame_interval_days * 1440.0 / tm.move_step_min)))
    frames = ticks // every_frame + 2
    field_steps = ticks // max(1, int(round(tm.field_step_min / tm.move_step_min))) + 1

    volume_mm3 = voxels * (d.voxel_um * 1e-3) ** 3
    if sc.invitro is not None:
        area_mm2 = y * x * (d.voxel_um * 1e-3) ** 2
        cells = sc.invitro.monocytes_per_mm2 * area_mm2 * (1.0 + sc.invitro.treg_per_monocyte)
    else:
        cells = sum(getattr(sc.cells, t).initial_per_mm3 for t in CELL_TYPES) * volume_mm3
    cells += sum(p.count for p in sc.perturbations if p.kind == "transfer")
    stored = min(cells, float(voxels))  # one cell per voxel
    speed = max(getattr(sc.cells, t).speed_um_per_min for t in CELL_TYPES)
    substeps = max(1, int(math.ceil(speed / d.voxel_um * tm.move_step_min - 1e-12)))
    doses = 0.0
    if sc.il2.dose_iu > 0:
        doses = math.ceil(sc.il2.duration_days / sc.il2.interval_days - 1e-9)

    voxel_bytes = voxels * (BYTES_PER_VOXEL + FIELD_ARRAYS * n_fields * itemsize)
    memory = (BYTES_BASE + voxel_bytes
              + stored * 2 * (BYTES_PER_CELL + BYTES_PER_CELL_PER_FIELD * n_fields)
              + cells * BYTES_PER_NEW_CELL)
    movement_s = ticks * stored * substeps * SECONDS_PER_CELL_SUBSTEP
    compute = (ticks * voxels * (n_fields + 1) * SECONDS_PER_VOXEL_TICK + movement_s
               + frames * voxels * SECONDS_PER_VOXEL_FRAME
               + field_steps * doses * SECONDS_PER_DOSE_STEP)

    out = sc.output
    out_fields = n_fields if out.fields == "all" else len(out.fields)
    field_item = 2 if out.field_dtype == "float16" else 4
    stored_frames = {"full": frames, "summary": 2}.get(out.level, frames)
    field_frames = (stored_frames if out.level != "frames"
                    else frames // (out.field_every or 1) + 2)
    file_bytes = (field_frames * voxels * out_fields * field_item
                  + stored_frames * (voxels + stored * 48))  # bone (uint8), agent rows
    if out.compression != "none":
        file_bytes *= COMPRESSED_FRACTION
    return Estimate(voxels=voxels, fields=n_fields, ticks=ticks, frames=frames, cells=cells,
                    substeps=substeps, memory_bytes=memory, voxel_bytes=voxel_bytes,
                    compute_s=compute, movement_s=movement_s, file_bytes=file_bytes)


def machine_memory_bytes() -> int | None:
    """This machine's memory for one process: physical RAM, or a smaller cgroup limit
    (containers); None when neither can be read."""
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(p).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = int(text) if total is None else min(total, int(text))
    return total if total and total > 0 else None


def _size(n: float) -> str:
    for unit, k in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def _duration(s: float) -> str:
    for unit, k in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s / 60:.3g} minutes"


def _free_disk(out: Path) -> tuple[Path, int] | None:
    """``(folder, free bytes)`` of the nearest existing folder above ``out``."""
    p = out.absolute().parent
    while True:
        try:
            if p.is_dir():
                return p, shutil.disk_usage(p).free
        except (OSError, ValueError):
            return None
        if p == p.parent:
            return None
        p = p.parent


def _problems(sc: Scenario, est: Estimate, out: Path | None) -> list[str]:
    msgs = []
    shape = list(sc.domain.shape_voxels)
    ram = machine_memory_bytes()
    if ram is not None and est.memory_bytes > ram:
        if est.voxel_bytes >= est.memory_bytes - est.voxel_bytes - BYTES_BASE:
            keys = f"domain.shape_voxels {shape}"
            if est.fields:
                keys += f" with {est.fields} fields"
        else:
            keys = (f"cell numbers (~{est.cells:.3g} cells from cells.*.initial_per_mm3, "
                    "invitro seeding and transfers)")
        msgs.append(f"{keys}: needs ~{_size(est.memory_bytes)} of memory, this machine has "
                    f"{_size(ram)}")
    if est.compute_s > MAX_COMPUTE_S:
        keys = (f"run.days {sc.run.days:g}, time.move_step_min {sc.time.move_step_min:g} "
                f"({est.ticks} ticks), domain.shape_voxels {shape}")
        if est.movement_s > est.compute_s / 2:
            fastest = max(CELL_TYPES, key=lambda t: getattr(sc.cells, t).speed_um_per_min)
            keys += (f", cells.{fastest}.speed_um_per_min "
                     f"{getattr(sc.cells, fastest).speed_um_per_min:g} ({est.substeps} "
                     "movement sub-steps per tick)")
        msgs.append(f"{keys}: needs ~{_duration(est.compute_s)} of compute (limit "
                    f"{_duration(MAX_COMPUTE_S)})")
    if out is not None:
        disk = _free_disk(out)
        if disk is not None and est.file_bytes > disk[1]:
            msgs.append(f"output.level {sc.output.level!r}, run.frame_interval_days "
                        f"{sc.run.frame_interval_days:g} ({est.frames} frames) on "
                        f"domain.shape_voxels {shape}: the run file needs "
                        f"~{_size(est.file_bytes)}, the disk of {str(disk[0])!r} has "
                        f"{_size(disk[1])} free")
    return msgs


def check_resources(sc: Scenario, *, allow_large: bool = False,
                    out: str | os.PathLike | None = None) -> Estimate:
    """Refuse a run this machine cannot do, before anything is allocated.

    Args:
        sc: the validated scenario.
        allow_large: skip the refusal (the estimate is still returned).
        out: the run file, when one is written (its disk space is checked too).

    Returns:
        The :class:`Estimate`.

    Raises:
        ConfigError: one line naming the keys and the estimate, and how to run anyway.
    """
    est = estimate(sc)
    if not allow_large:
        msgs = _problems(sc, est, Path(out) if out is not None else None)
        if msgs:
            raise ConfigError("; ".join(msgs) + f" ({_OVERRIDE})")
    return est
