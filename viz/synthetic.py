"""A synthetic run file of any size in seconds, for benchmarks and demos of the viewer.

``write_synthetic_run("big.h5", shape=(128, 128, 128), n_cells=100_000, frames=6)`` writes a
real run file through :class:`niche.io.RunWriter` (same layout as a simulation's), with the
project's own trabecular-bone generator, smooth cytokine fields, cells of every type that
random-walk through the marrow, osteoclast pits that deepen and osteoblast seams that grow
from frame to frame. No biology is simulated: it only looks like a run to the viewer.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = ["write_synthetic_run"]

#: share of each cell type (tcell, ilc2, monocyte, osteoclast, osteoblast)
_MIX = (0.45, 0.05, 0.35, 0.05, 0.10)


class _FakeModel(SimpleNamespace):
    """Just what :class:`~niche.io.RunWriter` reads from a model."""

    def field_index(self, name: str) -> int:
        return self.field_names.index(name)

    @property
    def frame_events(self) -> dict[str, np.ndarray]:
        """No cell events: the synthetic cells only move."""
        from niche.core.events import empty_events

        return empty_events()

    def readouts(self) -> dict[str, float]:
        bone = self.lattice.bone
        counts = np.bincount(self.cells.type[self.cells.alive_slots()], minlength=5)
        out = {"t_days": self.t_days, "bv_tv": float(bone.mean())}
        from niche.core.cells import TYPE_NAMES

        out.update({f"n_{t}": float(c) for t, c in zip(TYPE_NAMES, counts)})
        return out


def _fields(shape, names, rng) -> np.ndarray:
    """Smooth positive fields (pM): a few Gaussian blobs each."""
    zz, yy, xx = np.meshgrid(*(np.linspace(0, 1, s, dtype=np.float32) for s in shape),
                             indexing="ij", sparse=True)
    out = np.zeros((len(names), *shape), np.float32)
    for i in range(len(names)):
        for _ in range(3):
            c = rng.random(3)
            w = 0.05 + 0.15 * rng.random()
            out[i] += (10.0 * rng.random() * np.exp(
                -((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) / (2 * w * w)))
    return out


def write_synthetic_run(path: str | os.PathLike, shape=(128, 128, 128), n_cells: int = 100_000,
                        frames: int = 6, seed: int = 0, days_per_frame: float = 1.0,
                        overwrite: bool = True) -> Path:
    """Write a synthetic run file (see the module docstring). Returns its path.

    Args:
        path: the run file to write (its XDMF sidecar is not written).
        shape: lattice (Z, Y, X).
        n_cells: cells per frame (capped at half the marrow voxels).
        frames: number of frames; days_per_frame: simulated time between them.
        seed: random seed.
    """
    from niche.core.cells import TYPE_NAMES, CellStore, State
    from niche.scenario import load_scenario
    from niche.io import RunWriter
    from niche.core.lattice import Lattice

    rng = np.random.default_rng(seed)
    sc = load_scenario("default", {"domain.shape_voxels": list(shape), "output.xdmf": False})
    lat = Lattice.generate(shape, sc.domain.voxel_um, sc.bone, sc.vessels, rng)
    names = list(sc.fields)
    base = _fields(shape, names, rng)
    cells = CellStore(shape, len(names), capacity=max(16, n_cells))
    free = np.flatnonzero((lat.bone == 0) & (lat.vessel == 0))
    n = min(int(n_cells), free.size // 2)
    at = np.unravel_index(rng.choice(free, n, replace=False), shape)
    types = rng.choice(len(TYPE_NAMES), n, p=_MIX).astype(np.int8)
    states = np.zeros(n, np.uint32)
    flip = rng.random(n) < 0.3
    states[flip & (types == 0)] = State.REGULATORY
    states[flip & (types == 3)] = State.RESORBING
    states[flip & (types == 2)] = State.PRE_OSTEOCLAST
    for code in range(len(TYPE_NAMES)):
        m = types == code
        cells.add(code, at[0][m], at[1][m], at[2][m], state=states[m],
                  nuclei=3 if code == 3 else 1)
    model = _FakeModel(scenario=sc, seed=seed, lattice=lat, field_names=names, t_days=0.0,
                       cells=cells, fields=SimpleNamespace(c=base), tick=0,
                       n_ticks=frames - 1)
    w = RunWriter(path, overwrite=overwrite)
    w.on_start(model)
    bone0 = lat.bone.copy()
    surface = np.flatnonzero(bone0)
    pits = rng.choice(surface, max(1, surface.size // 200), replace=False)
    seams = np.flatnonzero((bone0 == 0) & (lat.vessel == 0))
    seams = rng.choice(seams, max(1, seams.size // 400), replace=False)
    for k in range(frames):
        model.t_days = k * days_per_frame
        model.tick = k  # one tick per frame: the writer knows the last frame by its tick
        model.fields.c = base * (1.0 + 0.5 * np.sin(k / 2.0)).astype(np.float32)
        grow = slice(0, len(pits) * k // max(1, frames - 1))
        lat.bone.ravel()[pits[grow]] = 0
        lat.bone.ravel()[seams[: len(seams) * k // max(1, frames - 1)]] = 1
        s = cells.alive_slots()
        for ax, size in ((cells.z, shape[0]), (cells.y, shape[1]), (cells.x, shape[2])):
            ax[s] = np.clip(ax[s] + rng.integers(-1, 2, s.size), 0, size - 1)
        model.frame_readouts = model.readouts()
        w.on_frame(model)
    w.close(complete=True)
    return w.path
