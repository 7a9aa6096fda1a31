"""Reaction-diffusion of S named substrates on the 3D voxel lattice.

:class:`FieldSolver` owns the concentration fields ``c[S, Z, Y, X]`` and the
per-voxel reaction arrays, and advances them with the kernels of
:mod:`niche.kernels.diffusion`: per step a semi-implicit pointwise reaction
(decay, source, linear and Michaelis-Menten uptake) followed by LOD implicit
Euler diffusion (z, y, x line solves).  Bone (``solid``) voxels are
impermeable and held at exactly 0, vessel (``dirichlet``) voxels are held at a
per-substrate value where enabled, and the domain walls are no-flux.  See the
kernel module docstring for the scheme and its properties.

Units: lengths in um, time in s, concentrations in any unit (the model uses
pM); diffusivity um^2/s, decay and linear uptake 1/s, source and Vmax
conc/s, Km conc.  :meth:`FieldSolver.total_mass` is in conc * um^3.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..kernels import diffusion as _k

__all__ = ["FieldSolver"]

# z-sweep tasks: rows of up to _Z_BLOCK_POS (y, x) positions (long rows
# amortise the per-row cost of the vectorised loops), capped so that a
# task's column block of the field, its float64 Thomas temporaries and its
# flags (_Z_BLOCK_BYTES) stay in the last-level cache between the forward
# and the backward pass.
_Z_BLOCK_POS = 4096
_Z_BLOCK_BYTES = 8 * 1024 * 1024
# below this many cells a per-cell kernel stays on one thread (a parallel region costs
# more than it saves)
_PARALLEL_MIN_CELLS = 4096


def _per_substrate(name: str, values, n: int, *, allow_inf: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of {n} numbers, got {values!r}") from None
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have one entry per substrate name "
                         f"({n}), got shape {arr.shape}")
    if np.isnan(arr).any() or (not allow_inf and np.isinf(arr).any()):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


class FieldSolver:
    """Multi-substrate reaction-diffusion solver.

    Parameters
    ----------
    shape_zyx : (Z, Y, X) grid shape in voxels.
    names : substrate names (unique strings); ``S = len(names)``.
    diffusivity_um2_per_s : D per substrate, >= 0.
    decay_per_s : first-order decay k per substrate, >= 0.
    dx_um : voxel edge length, > 0.
    dt_s : time step of :meth:`step`, > 0.
    km : Michaelis-Menten constant per substrate (> 0; ``inf`` disables the
        saturable uptake, and the ``vmax`` array is then ignored for that
        substrate).  ``None``: all ``inf``.
    dirichlet_value : value held at vessel voxels, per substrate (>= 0).
        ``None``: zeros.
    dirichlet_on : per-substrate booleans; where False, vessel voxels are
        ordinary marrow for that substrate.  ``None``: on for every substrate
        if ``dirichlet_value`` was given, else off for all.
    dtype : ``np.float32`` (default) or ``np.float64``.
    dense_rates : read the dense ``source``/``uptake``/``vmax`` arrays in every step
        (default). ``False``: they are ignored; cells act through :meth:`react_cells`,
        which costs per cell instead of per voxel.

    Attributes
    ----------
    c, source, uptake, vmax : (S, Z, Y, X) C-contiguous arrays of ``dtype``;
        the fields, the source (conc/s), linear uptake rate (1/s) and Vmax
        (conc/s).  Modify them in place (do not rebind them).  The reaction
        arrays start at zero and are read by every :meth:`step`; callers
        typically :meth:`clear_rates` and :meth:`scatter` before each step.
    solid, dirichlet : (Z, Y, X) uint8 masks (set with :meth:`set_solid` /
        :meth:`set_dirichlet`, never in place).
    names : tuple of substrate names.
    diffusivity, decay, km, dirichlet_value, dirichlet_on : per-substrate
        float64 / bool arrays; they are read at every :meth:`step`.
    dx_um, dt_s : voxel size and time step.
    time_s : simulated time advanced by :meth:`step`.
    """

    def __init__(self, shape_zyx, names, diffusivity_um2_per_s, decay_per_s, dx_um, dt_s,
                 km=None, dirichlet_value=None, dirichlet_on=None, dtype=np.float32,
                 dense_rates: bool = True):
        try:
            shape = tuple(int(v) for v in shape_zyx)
        except (TypeError, ValueError):
            raise ValueError(
                f"shape_zyx must be three positive integers, got {shape_zyx!r}") from None
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape_zyx must be three positive integers, got {shape_zyx!r}")
        if isinstance(names, str):
            raise ValueError("names must be a sequence of substrate names, not a single string")
        names = tuple(names)
        if not names:
            raise ValueError("names must contain at least one substrate name")
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"names must be non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {names!r}")
        n = len(names)

        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dt}")

        diff = _per_substrate("diffusivity_um2_per_s", diffusivity_um2_per_s, n)
        if (diff < 0).any():
            raise ValueError(f"diffusivity_um2_per_s must be >= 0, got {diff.tolist()}")
        decay = _per_substrate("decay_per_s", decay_per_s, n)
        if (decay < 0).any():
            raise ValueError(f"decay_per_s must be >= 0, got {decay.tolist()}")
        dx_um = float(dx_um)
        if not (math.isfinite(dx_um) and dx_um > 0):
            raise ValueError(f"dx_um must be positive and finite, got {dx_um}")
        dt_s = float(dt_s)
        if not (math.isfinite(dt_s) and dt_s > 0):
            raise ValueError(f"dt_s must be positive and finite, got {dt_s}")
        if km is None:
            km_arr = np.full(n, np.inf)
        else:
            km_arr = _per_substrate("km", km, n, allow_inf=True)
            if (km_arr <= 0).any():
                raise ValueError(f"km must be > 0 (inf disables Michaelis-Menten uptake), "
                                 f"got {km_arr.tolist()}")
        if dirichlet_value is None:
            dval = np.zeros(n)
        else:
            dval = _per_substrate("dirichlet_value", dirichlet_value, n)
            if (dval < 0).any():
                raise ValueError(f"dirichlet_value must be >= 0, got {dval.tolist()}")
        if dirichlet_on is None:
            don = np.full(n, dirichlet_value is not None)
        else:
            don_in = np.asarray(dirichlet_on)
            if don_in.ndim != 1 or don_in.shape[0] != n:
                raise ValueError(f"dirichlet_on must have one entry per substrate name ({n}), "
                                 f"got shape {don_in.shape}")
            if don_in.dtype != np.bool_ and not np.isin(don_in, (0, 1)).all():
                raise ValueError(f"dirichlet_on must be booleans, got {don_in.tolist()}")
            don = don_in.astype(bool)

        self.shape = shape
        self.names = names
        self._index = {nm: i for i, nm in enumerate(names)}
        self.dtype = dt
        self.diffusivity = diff
        self.decay = decay
        self.km = km_arr
        self.dirichlet_value = dval
        self.dirichlet_on = don
        self.dense_rates = bool(dense_rates)
        #: cells that acted on each substrate since the last step (:meth:`react_cells`)
        self._cell_entries: np.ndarray | None = None
        self.dx_um = dx_um
        self.dt_s = dt_s
        self.time_s = 0.0

        full = (n,) + shape
        self.c = np.zeros(full, dt)
        self.source = np.zeros(full, dt)
        self.uptake = np.zeros(full, dt)
        self.vmax = np.zeros(full, dt)
        self.solid = np.zeros(shape, np.uint8)
        self.dirichlet = np.zeros(shape, np.uint8)
        Z, Y, X = shape
        self._fz = np.empty((2,) + shape, np.uint8)
        self._fy = np.empty((2,) + shape, np.uint8)
        self._fxt = np.empty((2, Z, X, Y), np.uint8)
        self._rebuild_flags()
        per_pos = Z * (dt.itemsize + 8 + 1)
        self._block = max(64, min(_Z_BLOCK_POS, _Z_BLOCK_BYTES // per_pos) // 64 * 64)

    # ----------------------------------------------------------------- basics
    @property
    def n_substrates(self) -> int:
        return len(self.names)

    @property
    def voxel_volume_um3(self) -> float:
        return self.dx_um ** 3

    def index(self, name: str) -> int:
        """Substrate index of ``name`` (KeyError if unknown)."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"unknown substrate {name!r} (defined: {list(self.names)})") from None

    def _mask(self, mask, what: str) -> np.ndarray:
        m = np.asarray(mask)
        if m.shape != self.shape:
            raise ValueError(f"{what} mask must have shape {self.shape}, got {m.shape}")
        return np.ascontiguousarray(m != 0, dtype=np.uint8)

    def _rebuild_flags(self) -> None:
        _k.build_flags(self.solid, self.dirichlet, self._fz, self._fy, self._fxt)

    def _impose_dirichlet(self) -> None:
        held = (self.dirichlet != 0) & (self.solid == 0)
        if held.any():
            for s in np.flatnonzero(self.dirichlet_on):
                self.c[s][held] = self.dirichlet_value[s]

    # ------------------------------------------------------------ geometry
    def set_solid(self, solid_mask) -> np.ndarray:
        """Replace the bone mask (nonzero = solid).

        Concentrations in every solid voxel are set to 0; the mass removed
        that way (per substrate, conc * um^3, i.e. in :meth:`total_mass`
        units) is returned, so ``mass_before == mass_after + removed``.
        Newly opened voxels hold 0 (solid voxels always do) and take part in
        transport from the next step (a newly opened vessel voxel gets its
        Dirichlet value at the next step).
        """
        m = self._mask(solid_mask, "solid")
        self.solid = m
        sel = m != 0
        removed = self.c[:, sel].sum(axis=1, dtype=np.float64) * self.voxel_volume_um3
        self.c[:, sel] = 0
        self._rebuild_flags()
        return removed

    def set_dirichlet(self, mask) -> None:
        """Replace the vessel mask (nonzero = vessel).  For substrates with
        ``dirichlet_on`` the value is imposed at once at non-solid vessel
        voxels and held there by every step."""
        self.dirichlet = self._mask(mask, "dirichlet")
        self._rebuild_flags()
        self._impose_dirichlet()

    def set_dirichlet_value(self, substrate: int, value: float) -> None:
        """Change the held (vessel) value of one substrate, imposed at once.

        Used for time-varying supply (blood IL-2 after a dose, blood SCFAs)."""
        s = int(substrate)
        if not self.dirichlet_on[s]:
            raise ValueError(f"substrate {self.names[s]!r} has no Dirichlet (vessel) value")
        value = float(value)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"Dirichlet value must be finite and >= 0, got {value}")
        if self.dirichlet_value[s] == value:
            return
        self.dirichlet_value[s] = value
        held = np.flatnonzero(((self.dirichlet != 0) & (self.solid == 0)).ravel())
        self.c[s].reshape(-1)[held] = value

    # -------------------------------------------------------------- stepping
    def _coefficients(self):
        n = self.n_substrates
        coef = np.zeros((n, _k.NCOEF), self.dtype)
        r = self.diffusivity * self.dt_s / (self.dx_um * self.dx_um)
        coef[:, _k.C_R] = r
        coef[:, _k.C_DT] = self.dt_s
        coef[:, _k.C_K] = self.decay
        km = np.asarray(self.km, np.float64)
        coef[:, _k.C_KM] = np.where(np.isfinite(km), km, 1.0)
        coef[:, _k.C_DVAL] = self.dirichlet_value
        opts = np.zeros((n, _k.NOPT), np.int64)
        opts[:, _k.O_MM] = np.isfinite(km)
        opts[:, _k.O_DIR] = np.asarray(self.dirichlet_on, bool)
        opts[:, _k.O_DENSE] = bool(self.dense_rates)
        return coef, opts

    # -------------------------------------------------------- checkpoints
    #: reaction arrays a checkpoint stores only when they hold anything (a solver built with
    #: ``dense_rates=False`` never reads them, and they stay zero)
    _RATE_ARRAYS = ("source", "uptake", "vmax")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in self._RATE_ARRAYS:
            if not state[name].any():
                state[name] = ("zeros", state[name].shape, state[name].dtype.str)
        return state

    def __setstate__(self, state: dict) -> None:
        for name in self._RATE_ARRAYS:
            v = state[name]
            if isinstance(v, tuple):
                state[name] = np.zeros(v[1], np.dtype(v[2]))
        self.__dict__.update(state)

    def step(self, n_steps: int = 1) -> None:
        """Advance ``n_steps`` steps of ``dt_s``: per step the reaction (using
        the current ``source``, ``uptake`` and ``vmax`` arrays, which are not
        modified), then LOD diffusion along z, y and x. Substrates that a step would
        leave exactly as they are (zero everywhere, with nothing to change that) are
        skipped (:meth:`_active_runs`)."""
        n_steps = int(n_steps)
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        coef, opts = self._coefficients()
        nchunk = numba.get_num_threads()
        Z, Y, X = self.shape
        # enough z-sweep tasks to keep every thread busy (results do not
        # depend on the block size)
        block = self._block
        want = 4 * nchunk
        runs = self._active_runs()
        self._cell_entries = None
        for _ in range(n_steps):
            for s0, s1 in runs:
                b = block
                if (s1 - s0) * -(-Y * X // b) < want:
                    b = max(64, -(-Y * X * (s1 - s0) // want))
                _k.react_diffuse_z(self.c, self.source, self.uptake, self.vmax, self._fz,
                                   coef, opts, s0, s1, b, nchunk)
                _k.diffuse_yx(self.c, self._fy, self._fxt, coef, opts, s0, s1, nchunk)
            self.time_s += self.dt_s

    def _active_runs(self) -> list[tuple[int, int]]:
        """Contiguous substrate ranges the next step must solve.

        A substrate is idle, and left out, when a step would leave it exactly as it is:
        its field is zero everywhere, no cell acted on it since the last step
        (:meth:`react_cells`), the dense rate arrays are not in use, and it has no
        non-zero value held at vessel voxels. (A culture well has ten such fields.)"""
        S = self.n_substrates
        entries = self.__dict__.get("_cell_entries")  # (absent in older checkpoints)
        active = np.ones(S, bool)
        if not self.dense_rates:
            held = self.dirichlet_on & (self.dirichlet_value != 0) & bool(self.dirichlet.any())
            for s in range(S):
                if not held[s] and (entries is None or entries[s] == 0) and _k.is_zero(
                        self.c, s):
                    active[s] = False
        runs, s = [], 0
        while s < S:
            if active[s]:
                e = s
                while e < S and active[e]:
                    e += 1
                runs.append((s, e))
                s = e
            else:
                s += 1
        return runs

    def total_mass(self) -> np.ndarray:
        """Per-substrate amount, sum(c) * voxel volume (float64, conc * um^3)."""
        return self.c.sum(axis=(1, 2, 3), dtype=np.float64) * self.voxel_volume_um3

    # -------------------------------------------------------- cell coupling
    def clear_rates(self) -> None:
        """Zero ``source``, ``uptake`` and ``vmax``."""
        _k.clear_sources(self.source, self.uptake, self.vmax)

    def scatter(self, z, y, x, secretion, uptake, vmax) -> None:
        """Add per-cell rates ((N, S) arrays) at the cells' voxels."""
        n = len(z)
        S = self.n_substrates
        args = [np.asarray(a, self.dtype) for a in (secretion, uptake, vmax)]
        for nm, a in zip(("secretion", "uptake", "vmax"), args):
            if a.shape != (n, S):
                raise ValueError(f"{nm} must have shape ({n}, {S}), got {a.shape}")
        _k.scatter_cells(self.source, self.uptake, self.vmax, np.asarray(z), np.asarray(y),
                         np.asarray(x), *args)

    def react_cells(self, z, y, x, secretion, uptake, vmax, slots=None) -> None:
        """Apply per-cell secretion/uptake ((N, S) arrays) at the cells' voxels only.

        The sparse alternative to :meth:`scatter` for a solver built with
        ``dense_rates=False``: one semi-implicit reaction step of ``dt_s`` at each cell's
        voxel, c <- (c + dt S) / (1 + dt (u + Vmax / (Km + c))), before :meth:`step`
        (which then applies decay and diffusion). Cost scales with cells, not voxels.
        Cells act in row order (where several share a voxel, one after the other).

        ``slots``: optional integer index array. The six arrays are then per-slot arrays
        of a cell store (N = its capacity) and only the rows ``slots`` act, in that
        order: the same as passing ``z[slots]``, ..., ``vmax[slots]``, without the
        copies. A slot outside the arrays or a voxel outside the grid raises IndexError.
        """
        S = self.n_substrates
        z, y, x = np.asarray(z), np.asarray(y), np.asarray(x)
        if not len(z) == len(y) == len(x):
            raise ValueError(f"z, y and x must have the same length, got "
                             f"{len(z)}, {len(y)}, {len(x)}")
        args = [np.ascontiguousarray(a, self.dtype) for a in (secretion, uptake, vmax)]
        for nm, a in zip(("secretion", "uptake", "vmax"), args):
            if a.shape != (len(z), S):
                raise ValueError(f"{nm} must have shape ({len(z)}, {S}), got {a.shape}")
        slots = np.arange(len(z)) if slots is None else np.asarray(slots)
        if slots.ndim != 1 or not (slots.size == 0 or np.issubdtype(slots.dtype, np.integer)):
            raise ValueError(f"slots must be a 1-D integer array, got {slots.dtype} "
                             f"shape {slots.shape}")
        slots = slots.astype(np.intp, copy=False)
        km = np.where(np.isfinite(self.km), self.km, 1.0).astype(self.dtype)
        n = _k.react_cells(self.c, slots, z, y, x, *args, self.dtype.type(self.dt_s), km,
                           np.isfinite(self.km), numba.get_num_threads())
        prev = self.__dict__.get("_cell_entries")
        self._cell_entries = n if prev is None else prev + n

    def sample(self, z, y, x) -> np.ndarray:
        """Concentrations at the given voxels, (N, S) float64."""
        out = np.empty((len(z), self.n_substrates), np.float64)
        _k.sample_at(self.c, np.asarray(z), np.asarray(y), np.asarray(x), out)
        return out

    def gradient(self, substrate, z, y, x, per_um: bool = True) -> np.ndarray:
        """Gradient (d/dz, d/dy, d/dx) of a substrate (name or index) at the
        given voxels, (N, 3) float64, in conc/um (``per_um``) or conc/voxel.
        Differences do not reach across bone faces or domain walls."""
        s = self.index(substrate) if isinstance(substrate, str) else int(substrate)
        if not 0 <= s < self.n_substrates:
            raise ValueError(f"substrate index {s} out of range")
        out = np.empty((len(z), 3), np.float64)
        _k.gradient_at(self.c, s, np.asarray(z), np.asarray(y), np.asarray(x), out, self.solid)
        if per_um:
            out /= self.dx_um
        return out

    def gradient_into(self, substrate: int, slots, z, y, x, out) -> None:
        """Gradient per voxel of substrate index ``substrate`` at the cells ``slots`` of a
        cell store (per-slot ``z``, ``y``, ``x``), written to ``out[:, slots]`` ((3, N)
        array): the values of ``gradient(..., per_um=False)`` without the copies; in parallel
        for many cells when numba has more than one thread (same values)."""
        if not 0 <= substrate < self.n_substrates:
            raise ValueError(f"substrate index {substrate} out of range")
        slots = np.asarray(slots)
        nchunk = numba.get_num_threads()
        if nchunk > 1 and slots.size >= _PARALLEL_MIN_CELLS:
            _k.gradient_at_slots_parallel(self.c, substrate, slots, z, y, x, out[0], out[1],
                                          out[2], self.solid, nchunk)
        else:
            _k.gradient_at_slots(self.c, substrate, slots, z, y, x, out[0], out[1], out[2],
                                 self.solid)
