"""The voxel lattice: trabecular bone and sinusoidal vessels, or a culture well.

Arrays are (Z, Y, X), C order. ``bone`` is a uint8 mask (1 = mineralised bone),
``vessel`` a uint8 mask of vessel lumen (never bone, never occupied by tissue cells).

Bone generation: a smooth Gaussian random field ``f`` (white noise filtered in Fourier
space with a Gaussian kernel of correlation length ``ell``) has a sponge-like zero set.
The voxels within half a trabecular thickness of that zero set (estimated distance
``|f| / |grad f|``) form interconnected plates and rods of thickness ``tb_th_um``. The
correlation length is tuned so that the plate band fills the requested BV/TV, and a final
quantile threshold makes BV/TV exact to one voxel. All randomness comes from the
``numpy.random.Generator`` passed in (seeded from the run seed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Lattice", "generate_bone", "generate_vessels", "bone_surface", "face_neighbour_any",
           "marrow_face_count"]


def _smooth_field(shape, ell_vox: float, noise: np.ndarray) -> np.ndarray:
    kz = np.fft.fftfreq(shape[0])[:, None, None]
    ky = np.fft.fftfreq(shape[1])[None, :, None]
    kx = np.fft.rfftfreq(shape[2])[None, None, :]
    k2 = (2 * np.pi) ** 2 * (kz**2 + ky**2 + kx**2)
    f = np.fft.irfftn(np.fft.rfftn(noise) * np.exp(-0.5 * k2 * ell_vox**2), s=shape, axes=(0, 1, 2))
    return f / f.std()


def _band_distance(f: np.ndarray) -> np.ndarray:
    g = np.gradient(f)
    gm = np.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2)
    return np.abs(f) / np.maximum(gm, 1e-12)


def generate_bone(
    shape: tuple[int, int, int],
    voxel_um: float,
    bv_tv: float,
    tb_th_um: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Generate a trabecular bone mask with the given BV/TV and trabecular thickness.

    Args:
        shape: (Z, Y, X) voxels.
        voxel_um: voxel edge length.
        bv_tv: target bone volume fraction (exact to one voxel).
        tb_th_um: plate thickness.
        rng: the run's random generator.

    Returns:
        uint8 mask, 1 = bone.
    """
    n = int(np.prod(shape))
    target = int(round(bv_tv * n))
    if target == 0:
        return np.zeros(shape, np.uint8)
    half = 0.5 * tb_th_um / voxel_um
    # The band |f|/|grad f| < h around the zero set of a Gaussian field fills a volume
    # fraction that falls monotonically with the correlation length ell (about
    # 0.39 * 2h / ell): bisect log(ell) with the same noise until it matches BV/TV.
    noise = rng.standard_normal(shape)
    lo, hi = np.log(0.5), np.log(max(shape) / 2.0)
    for _ in range(16):
        ell = float(np.exp(0.5 * (lo + hi)))
        d = _band_distance(_smooth_field(shape, ell, noise))
        frac = float(np.mean(d < half))
        if abs(frac / bv_tv - 1.0) < 0.01:
            break
        if frac > bv_tv:
            lo = np.log(ell)
        else:
            hi = np.log(ell)
    thr = np.partition(d.ravel(), target - 1)[target - 1]
    bone = (d <= thr).astype(np.uint8)
    # ties could add a few voxels: trim deterministically to the exact count
    extra = int(bone.sum()) - target
    if extra > 0:
        idx = np.flatnonzero((d.ravel() == thr))[:extra]
        bone.ravel()[idx] = 0
    return bone


def generate_vessels(
    shape: tuple[int, int, int],
    voxel_um: float,
    count: int,
    radius_um: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Straight sinusoid-like tubes along the three axes at random positions.

    Returns a uint8 mask of vessel lumen (at least one voxel thick).
    """
    vessel = np.zeros(shape, np.uint8)
    r = max(radius_um / voxel_um, 0.5)
    zz, yy, xx = np.indices(shape, sparse=True)
    for i in range(count):
        axis = i % 3
        other = [a for a in range(3) if a != axis]
        c0 = rng.uniform(0, shape[other[0]])
        c1 = rng.uniform(0, shape[other[1]])
        coords = (zz, yy, xx)
        d2 = (coords[other[0]] + 0.5 - c0) ** 2 + (coords[other[1]] + 0.5 - c1) ** 2
        vessel |= np.broadcast_to(d2 <= r * r, shape).astype(np.uint8)
    return vessel


def face_neighbour_any(mask: np.ndarray, outside: bool = False) -> np.ndarray:
    """True where at least one of the 6 face neighbours is set (``outside`` beyond walls)."""
    m = mask.astype(bool)
    out = np.zeros_like(m)
    for ax in range(3):
        for sh in (1, -1):
            nb = np.roll(m, sh, axis=ax)
            sl = [slice(None)] * 3
            sl[ax] = 0 if sh == 1 else -1
            nb[tuple(sl)] = outside
            out |= nb
    return out


def bone_surface(bone: np.ndarray) -> np.ndarray:
    """Bone voxels with at least one face-neighbour that is marrow (uint8 mask).

    Beyond the domain walls counts as bone, so the walls themselves are no surface.
    """
    b = bone.astype(bool)
    return (b & face_neighbour_any(~b, outside=False)).astype(np.uint8)


def marrow_face_count(bone: np.ndarray) -> int:
    """Number of bone-marrow voxel faces (interior faces only)."""
    b = bone.astype(np.int8)
    return int(sum(np.abs(np.diff(b, axis=ax)).sum() for ax in range(3)))


@dataclass
class Lattice:
    """The static and remodelling geometry of one run."""

    shape: tuple[int, int, int]
    voxel_um: float
    bone: np.ndarray
    vessel: np.ndarray
    #: ``"trabecular"`` (marrow around trabeculae) or ``"well"`` (a culture well)
    kind: str = "trabecular"

    @property
    def voxel_volume_um3(self) -> float:
        return self.voxel_um**3

    @property
    def volume_mm3(self) -> float:
        return float(np.prod(self.shape)) * self.voxel_um**3 * 1e-9

    @property
    def wall(self) -> np.ndarray:
        """Voxels no cell may enter: bone or vessel lumen."""
        return (self.bone | self.vessel).astype(np.uint8)

    def entry_voxels(self) -> np.ndarray:
        """Flat indices of marrow voxels face-adjacent to a vessel (cell entry/exit)."""
        v = self.vessel.astype(bool)
        near = face_neighbour_any(v)
        near &= ~v & ~self.bone.astype(bool)
        return np.flatnonzero(near)

    @classmethod
    def generate(cls, shape, voxel_um, bone_cfg, vessel_cfg, rng) -> "Lattice":
        shape = tuple(int(s) for s in shape)
        bone = generate_bone(shape, voxel_um, bone_cfg.bv_tv, bone_cfg.tb_th_um, rng)
        vessel = generate_vessels(shape, voxel_um, vessel_cfg.count, vessel_cfg.radius_um, rng)
        bone[vessel.astype(bool)] = 0
        return cls(shape=shape, voxel_um=float(voxel_um), bone=bone, vessel=vessel)

    @classmethod
    def well(cls, shape, voxel_um: float, bone_slice_um: float) -> "Lattice":
        """A culture well: a bone (dentine) slice of ``bone_slice_um`` at the bottom
        (resorption pits are read from it), medium above, and the top voxel layer held at
        the medium concentrations (the well-mixed bulk medium) through the same Dirichlet
        mechanism as vessels in vivo."""
        shape = tuple(int(s) for s in shape)
        nb = max(1, int(math.ceil(bone_slice_um / voxel_um - 1e-9)))
        if nb + 2 > shape[0]:
            raise ValueError(f"domain.shape_voxels: a well needs height > {nb + 1} voxels "
                             f"(bone slice {nb} + medium + reservoir), got {shape[0]}")
        bone = np.zeros(shape, np.uint8)
        bone[:nb] = 1
        vessel = np.zeros(shape, np.uint8)
        vessel[-1] = 1
        return cls(shape=shape, voxel_um=float(voxel_um), bone=bone, vessel=vessel, kind="well")
