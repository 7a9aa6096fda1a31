"""Numba kernels for multi-substrate reaction-diffusion on a 3D voxel lattice.

Pure array functions; nothing here imports the rest of ``niche``.  The
orchestrating class is :class:`niche.core.fields.FieldSolver`.

Layout
------
Fields are ``c[S, Z, Y, X]`` (C order), float32 or float64; every kernel is
dtype generic (numba compiles one specialisation per dtype).  The source
``S`` (conc/s), linear uptake ``u`` (1/s) and Michaelis-Menten ``Vmax``
(conc/s) arrays have the same shape and dtype.  Geometry enters through the
uint8 flag arrays built by :func:`build_flags` from the ``solid`` (bone) and
``dirichlet`` (vessel) masks.

Scheme (one time step, operator splitting)
------------------------------------------
1. Reaction, pointwise and semi-implicit (unconditionally stable, positivity
   preserving), in the field dtype::

       c <- (c + dt*S) / (1 + dt*(k + u + Vmax/(Km + c)))

   The Michaelis-Menten term (and the read of ``Vmax``) only for substrates
   with ``opts[s, O_MM]`` (finite ``Km``).  Then solid voxels are set to
   exactly 0 and, for substrates with ``opts[s, O_DIR]``, Dirichlet voxels to
   their value.
2. Diffusion by LOD (locally one-dimensional) *implicit Euler*: three
   successive 1D solves ``(I - dt D d2/dq2) c_new = c`` along z, y and x,
   each a tridiagonal (Thomas) solve per grid line.  A voxel's row couples it
   to each neighbour that exists and is not solid with ``r = D dt / dx^2``:
   diagonal ``1 + r * (open links)``, off-diagonal ``-r`` on open links, 0 on
   closed ones (homogeneous Neumann at the domain walls and at bone faces).
   Solid voxels and enabled Dirichlet voxels have identity rows (their value
   is kept).  Columns sum to one, so each sweep conserves mass with no-flux
   walls and obstacles; the matrix is an M-matrix, so the solve is
   unconditionally stable and maps non-negative data to non-negative data.
   The scheme is first order in time (implicit Euler and LOD splitting) and
   second order in space.

Thomas recursion per line (all quantities non-negative, pivots >= 1)::

    m_i = 1 / (1 + up_i + lo_i (1 - e_{i-1})),   e_i = up_i m_i
    g_i = (d_i + lo_i g_{i-1}) m_i
    x_last = g_last,   x_i = g_i + e_i x_{i+1}

with ``lo_i``/``up_i`` = ``r`` on an open link to the lower/upper neighbour,
else 0.  The recursion runs in float64 for both field dtypes (``e`` is kept
in float64 scratch, data are rounded to the field dtype when stored): the
pivots depend only on geometry and ``r``, so in float32 their rounding would
repeat identically every step and add up to a systematic mass drift (~1e-3
after 1000 large steps); with float64 pivots the float32 drift is ~1e-7.

Implementation and performance notes
------------------------------------
* ``react_diffuse_z``: the reaction is fused into the forward elimination of
  the z sweep (same arithmetic as a separate pass).  A task is a block of
  consecutive (y, x) positions of one substrate; the recursion over z runs
  vectorised across the block, whose column stays in cache between the
  forward and the backward pass.
* ``diffuse_yx``: the y and x sweeps are fused per (substrate, z plane).  The
  y solve runs vectorised across x in place; its back substitution proceeds
  in blocks of eight rows, each transposed (8x8 register-tile transposes
  emitted as LLVM shuffles) into a per-thread buffer while still in L1; the
  x solve then runs on the buffer vectorised across y, and its back
  substitution is transposed back into ``c`` the same way.
* Parallel loops split the task list into ``nchunk`` contiguous ranges (one
  per thread); per-thread scratch is allocated once per call.  Every grid
  line goes through the same floating-point operations whichever thread,
  chunk or block handles it, so results are bit-identical for any
  ``NUMBA_NUM_THREADS``.  No fastmath; ``error_model="numpy"`` so divisions
  carry no Python zero-division checks and vectorise.

Flags
-----
``fz`` (2, Z, Y, X): bits ``L_LO``/``L_UP`` (z link to the lower/upper
neighbour open), ``V_SOLID``, ``V_DIR``.  ``fy`` (2, Z, Y, X) and ``fxt``
(2, Z, X, Y; y and x swapped): codes ``K_UP`` (1), ``K_LO`` (2), ``K_BOTH``
(3) for the y and x links.  Variant ``[0]`` is for substrates with the
Dirichlet condition off; variant ``[1]`` has the links closed in the own row
of every Dirichlet voxel (identity row; its neighbours still see it).

Per-substrate parameters
------------------------
``coef`` (S, NCOEF) of the field dtype: ``C_R`` = D dt / dx^2, ``C_DT``,
``C_K`` (decay), ``C_KM``, ``C_DVAL`` (Dirichlet value); ``opts`` (S, NOPT)
int64: ``O_MM``, ``O_DIR``, ``O_DENSE`` (0/1). With ``O_DENSE`` off the dense source,
uptake and Vmax arrays are not read (only decay acts in the fused pass); cell sources are
then applied sparsely, at the cells' voxels only, by :func:`react_cells`.

Cell coupling
-------------
:func:`scatter_cells` (serial, deterministic), :func:`react_cells` (parallel
over substrates, deterministic), :func:`clear` /
:func:`clear_sources`, :func:`sample_at` and :func:`gradient_at` (central
differences in concentration per *voxel*; one-sided or zero across walls and,
given the mask, bone faces).
"""

import numba
import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = [
    "L_LO", "L_UP", "V_SOLID", "V_DIR", "K_UP", "K_LO", "K_BOTH", "C_R", "C_DT",
    "C_K", "C_KM", "C_DVAL", "NCOEF", "O_MM", "O_DIR", "O_DENSE", "NOPT", "build_flags",
    "transpose2d",
    "react_diffuse_z", "diffuse_yx", "step", "scatter_cells", "clear",
    "clear_sources", "sample_at", "gradient_at", "gradient_at_slots",
    "gradient_at_slots_parallel", "sample_slots", "is_zero",
]

# Link bits of the z flag array (bit set = the link to that neighbour is
# open: the neighbour exists and neither voxel is solid) and voxel bits.
L_LO = 1
L_UP = 2
V_SOLID = 4
V_DIR = 8
# Link codes of the y and x flag arrays: 0 none open, 1 upper only, 2 lower
# only, 3 both (lower open <=> code >= 2), which decodes with byte compares.
K_UP = 1
K_LO = 2
K_BOTH = 3

C_R = 0
C_DT = 1
C_K = 2
C_KM = 3
C_DVAL = 4
NCOEF = 5

O_MM = 0
O_DIR = 1
O_DENSE = 2
NOPT = 3

_V = 8  # edge of the register-transposed tiles


# --------------------------------------------------------------------------
# flags
@numba.njit(parallel=True, cache=True, error_model="numpy")
def build_flags(solid, dirichlet, fz, fy, fxt):
    """Fill the per-axis flag arrays from the solid and Dirichlet masks.

    ``fz``, ``fy``: (2, Z, Y, X) uint8; ``fxt``: (2, Z, X, Y) uint8 (x flags
    stored with y and x swapped).  Variant 0 ignores the Dirichlet mask;
    variant 1 closes both links in the *own row* of every non-solid
    Dirichlet voxel (its row becomes the identity), for substrates whose
    Dirichlet condition is on.  ``fz`` also carries ``V_SOLID`` and
    ``V_DIR`` in both variants.
    """
    Z, Y, X = solid.shape
    for z in prange(Z):
        for y in range(Y):
            for x in range(X):
                if solid[z, y, x] != 0:
                    for v in range(2):
                        fz[v, z, y, x] = V_SOLID
                        fy[v, z, y, x] = 0
                        fxt[v, z, x, y] = 0
                    continue
                a = 0
                if z > 0 and solid[z - 1, y, x] == 0:
                    a |= L_LO
                if z < Z - 1 and solid[z + 1, y, x] == 0:
                    a |= L_UP
                b = 0
                if y > 0 and solid[z, y - 1, x] == 0:
                    b |= K_LO
                if y < Y - 1 and solid[z, y + 1, x] == 0:
                    b |= K_UP
                d = 0
                if x > 0 and solid[z, y, x - 1] == 0:
                    d |= K_LO
                if x < X - 1 and solid[z, y, x + 1] == 0:
                    d |= K_UP
                fz[0, z, y, x] = a
                fy[0, z, y, x] = b
                fxt[0, z, x, y] = d
                if dirichlet[z, y, x] != 0:
                    fz[0, z, y, x] = a | V_DIR
                    fz[1, z, y, x] = V_DIR
                    fy[1, z, y, x] = 0
                    fxt[1, z, x, y] = 0
                else:
                    fz[1, z, y, x] = a
                    fy[1, z, y, x] = b
                    fxt[1, z, x, y] = d


# --------------------------------------------------------------------------
# register transpose of 8x8 tiles
_M_LO = (0, 8, 1, 9, 4, 12, 5, 13)
_M_HI = (2, 10, 3, 11, 6, 14, 7, 15)
_M_S44 = (0, 1, 8, 9, 4, 5, 12, 13)
_M_SEE = (2, 3, 10, 11, 6, 7, 14, 15)
_M_P20 = (0, 1, 2, 3, 8, 9, 10, 11)
_M_P31 = (4, 5, 6, 7, 12, 13, 14, 15)


@intrinsic
def _tr8(typingctx, a, ai, aj, b, bi, bj):
    """``b[bi+k, bj+l] = a[ai+l, aj+k]`` for k, l in 0..7 (2D C arrays of the
    same float dtype): eight vector loads, 24 shuffles, eight vector stores.
    No bounds checks: the caller guarantees the tiles are inside."""
    ok = (isinstance(a, types.Array) and isinstance(b, types.Array)
          and a.ndim == 2 and b.ndim == 2 and a.layout == "C" and b.layout == "C"
          and a.dtype == b.dtype and isinstance(a.dtype, types.Float)
          and all(isinstance(v, types.Integer) for v in (ai, aj, bi, bj)))
    if not ok:
        return None
    sig = types.void(a, ai, aj, b, bi, bj)

    def codegen(context, builder, signature, args):
        aty, ait, ajt, bty, bit, bjt = signature.args
        av, ai_, aj_, bv, bi_, bj_ = args
        A = context.make_array(aty)(context, builder, av)
        B = context.make_array(bty)(context, builder, bv)
        intp_t = context.get_value_type(types.intp)
        ai_ = context.cast(builder, ai_, ait, types.intp)
        aj_ = context.cast(builder, aj_, ajt, types.intp)
        bi_ = context.cast(builder, bi_, bit, types.intp)
        bj_ = context.cast(builder, bj_, bjt, types.intp)
        vty = ir.VectorType(context.get_data_type(aty.dtype), _V)

        def mask(m):
            return ir.Constant(ir.VectorType(ir.IntType(32), _V), list(m))

        rows = []
        for k in range(_V):
            ii = builder.add(ai_, ir.Constant(intp_t, k))
            ptr = cgutils.get_item_pointer(context, builder, aty, A, [ii, aj_],
                                           wraparound=False)
            ptr = builder.bitcast(ptr, vty.as_pointer())
            rows.append(builder.load(ptr, align=1))
        sh = builder.shuffle_vector
        t = []
        for k in range(0, _V, 2):
            t.append(sh(rows[k], rows[k + 1], mask(_M_LO)))
            t.append(sh(rows[k], rows[k + 1], mask(_M_HI)))
        s = [sh(t[0], t[2], mask(_M_S44)), sh(t[0], t[2], mask(_M_SEE)),
             sh(t[1], t[3], mask(_M_S44)), sh(t[1], t[3], mask(_M_SEE)),
             sh(t[4], t[6], mask(_M_S44)), sh(t[4], t[6], mask(_M_SEE)),
             sh(t[5], t[7], mask(_M_S44)), sh(t[5], t[7], mask(_M_SEE))]
        out = [sh(s[k], s[k + 4], mask(_M_P20)) for k in range(4)]
        out += [sh(s[k], s[k + 4], mask(_M_P31)) for k in range(4)]
        for k in range(_V):
            ii = builder.add(bi_, ir.Constant(intp_t, k))
            ptr = cgutils.get_item_pointer(context, builder, bty, B, [ii, bj_],
                                           wraparound=False)
            ptr = builder.bitcast(ptr, vty.as_pointer())
            builder.store(out[k], ptr, align=1)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, error_model="numpy")
def _transpose_rows(a, i0, i1, b):
    """``b[j, i] = a[i, j]`` for rows ``i0 <= i < i1`` of ``a`` (all columns)."""
    n1 = a.shape[1]
    n1v = n1 - n1 % _V
    i = i0
    while i + _V <= i1:
        for j in range(0, n1v, _V):
            _tr8(a, i, j, b, j, i)
        for j in range(n1v, n1):
            for ii in range(i, i + _V):
                b[j, ii] = a[ii, j]
        i += _V
    for j in range(n1):
        for ii in range(i, i1):
            b[j, ii] = a[ii, j]


@numba.njit(cache=True, error_model="numpy")
def transpose2d(a, b):
    """``b[:] = a.T`` for 2D C-contiguous arrays (tiled register transpose)."""
    _transpose_rows(a, 0, a.shape[0], b)


# --------------------------------------------------------------------------
# Thomas rows.  The lines run along the first index of 2D arrays (or are
# given as row slices) and are processed vectorised across the rows.
@numba.njit(cache=True, error_model="numpy")
def _bwd(x, e, xnext):
    """Back substitution on one row: ``x = g + e * xnext`` (g stored in x)."""
    for p in range(x.shape[0]):
        x[p] = np.float64(x[p]) + e[p] * np.float64(xnext[p])


@numba.njit(cache=True, error_model="numpy")
def _bwd_rows(P, E, xb, i_hi, i_lo):
    """Back substitution for rows ``i_hi`` down to ``i_lo`` of ``P`` (which
    holds g); ``xb`` carries the (float64) solution of the row above."""
    n1 = P.shape[1]
    for i in range(i_hi, i_lo - 1, -1):
        for p in range(n1):
            x = np.float64(P[i, p]) + E[i, p] * xb[p]
            P[i, p] = x
            xb[p] = x


@numba.njit(cache=True, error_model="numpy")
def _solve_transpose(P, F, E, r, Q, gb, eb):
    """Implicit 1D solve along axis 0 of ``P`` (lines vectorised across axis
    1, flags ``F`` with the ``K_*`` codes), result written transposed into
    ``Q`` (``Q = solution.T``).  ``P`` is overwritten with scratch; ``E``
    (float64, shaped like ``P``) and ``gb``, ``eb`` (float64, one row) are
    scratch.  The back substitution runs in blocks of eight rows, each
    transposed into ``Q`` while it is still in L1."""
    n0, n1 = P.shape
    one = 1.0
    zero = 0.0
    r = np.float64(r)
    for p in range(n1):
        gb[p] = 0.0
        eb[p] = 0.0
    for i in range(n0):
        for p in range(n1):
            fp = F[i, p]
            lo = r if fp >= K_LO else zero
            up = r if (fp == K_UP) | (fp == K_BOTH) else zero
            m = one / (one + up + lo * (one - eb[p]))
            e = up * m
            g = (np.float64(P[i, p]) + lo * gb[p]) * m
            E[i, p] = e
            eb[p] = e
            P[i, p] = g
            gb[p] = g
    # gb now holds the solution of the last row (x_last = g_last)
    top = n0 - n0 % _V
    if top == n0:
        top = n0 - _V
    _bwd_rows(P, E, gb, n0 - 2, top)
    _transpose_rows(P, top, n0, Q)
    for i0 in range(top - _V, -1, -_V):
        _bwd_rows(P, E, gb, i0 + _V - 1, i0)
        _transpose_rows(P, i0, i0 + _V, Q)


# --------------------------------------------------------------------------
@numba.njit(cache=True, error_model="numpy")
def _react_row(v, sr, ur, vr, f, dt, k, km, dval, use_mm, dbit):
    """Reaction step on one row (used where there is no diffusion)."""
    one = v.dtype.type(1)
    zero = v.dtype.type(0)
    if use_mm:
        for p in range(v.shape[0]):
            a = v[p]
            a = (a + dt * sr[p]) / (one + dt * (k + ur[p] + vr[p] / (km + a)))
            fp = f[p]
            a = zero if (fp & V_SOLID) != 0 else a
            v[p] = dval if (fp & dbit) != 0 else a
    else:
        for p in range(v.shape[0]):
            a = v[p]
            a = (a + dt * sr[p]) / (one + dt * (k + ur[p]))
            fp = f[p]
            a = zero if (fp & V_SOLID) != 0 else a
            v[p] = dval if (fp & dbit) != 0 else a


@numba.njit(cache=True, error_model="numpy")
def _react_fwd(v, sr, ur, f, gprev, eprev, e, dt, k, dval, dbit, r):
    """Reaction step fused with a forward-elimination row of the z solve.
    The reaction is computed in the field dtype exactly as in
    :func:`_react_row`; the Thomas arithmetic in float64."""
    one32 = v.dtype.type(1)
    zero32 = v.dtype.type(0)
    one = 1.0
    zero = 0.0
    r = np.float64(r)
    for p in range(v.shape[0]):
        fp = f[p]
        a = v[p]
        a = (a + dt * sr[p]) / (one32 + dt * (k + ur[p]))
        a = zero32 if (fp & V_SOLID) != 0 else a
        a = dval if (fp & dbit) != 0 else a
        lo = r if (fp & L_LO) != 0 else zero
        up = r if (fp & L_UP) != 0 else zero
        m = one / (one + up + lo * (one - eprev[p]))
        e[p] = up * m
        v[p] = (np.float64(a) + lo * np.float64(gprev[p])) * m


@numba.njit(cache=True, error_model="numpy")
def _react_mm_fwd(v, sr, ur, vr, f, gprev, eprev, e, dt, k, km, dval, dbit, r):
    """As :func:`_react_fwd`, with Michaelis-Menten uptake."""
    one32 = v.dtype.type(1)
    zero32 = v.dtype.type(0)
    one = 1.0
    zero = 0.0
    r = np.float64(r)
    for p in range(v.shape[0]):
        fp = f[p]
        a = v[p]
        a = (a + dt * sr[p]) / (one32 + dt * (k + ur[p] + vr[p] / (km + a)))
        a = zero32 if (fp & V_SOLID) != 0 else a
        a = dval if (fp & dbit) != 0 else a
        lo = r if (fp & L_LO) != 0 else zero
        up = r if (fp & L_UP) != 0 else zero
        m = one / (one + up + lo * (one - eprev[p]))
        e[p] = up * m
        v[p] = (np.float64(a) + lo * np.float64(gprev[p])) * m


@numba.njit(cache=True, error_model="numpy")
def _decay_row(v, f, dt, k, dval, dbit):
    """Decay-only reaction on one row (no dense source arrays)."""
    one = v.dtype.type(1)
    zero = v.dtype.type(0)
    for p in range(v.shape[0]):
        a = v[p] / (one + dt * k)
        fp = f[p]
        a = zero if (fp & V_SOLID) != 0 else a
        v[p] = dval if (fp & dbit) != 0 else a


@numba.njit(cache=True, error_model="numpy")
def _decay_fwd(v, f, gprev, eprev, e, dt, k, dval, dbit, r):
    """Decay-only reaction fused with a forward-elimination row of the z solve."""
    one32 = v.dtype.type(1)
    zero32 = v.dtype.type(0)
    one = 1.0
    zero = 0.0
    r = np.float64(r)
    for p in range(v.shape[0]):
        fp = f[p]
        a = v[p] / (one32 + dt * k)
        a = zero32 if (fp & V_SOLID) != 0 else a
        a = dval if (fp & dbit) != 0 else a
        lo = r if (fp & L_LO) != 0 else zero
        up = r if (fp & L_UP) != 0 else zero
        m = one / (one + up + lo * (one - eprev[p]))
        e[p] = up * m
        v[p] = (np.float64(a) + lo * np.float64(gprev[p])) * m


@numba.njit(cache=True, error_model="numpy")
def _rc_count(slots, i0, i1, sec, upt, vmax, cnt):
    """Entries with a non-zero rate per substrate over ``slots[i0:i1]`` into ``cnt``;
    False if a slot is outside the row arrays."""
    R, S = sec.shape
    loc = np.zeros(S, np.int64)
    for i in range(i0, i1):
        n = slots[i]
        if n < 0 or n >= R:
            return False
        for s in range(S):
            if sec[n, s] != 0 or upt[n, s] != 0 or vmax[n, s] != 0:
                loc[s] += 1
    cnt[:] = loc
    return True


@numba.njit(cache=True, error_model="numpy")
def _rc_plan(cnt, off, end, owner):
    """List offsets (substrate-major, then slot range) from the counts ``cnt[t, s]``,
    and the task of each substrate: longest list first to the least loaded task (this
    only balances the work).  Returns the total number of entries."""
    nt, S = cnt.shape
    tot = 0
    for s in range(S):
        for t in range(nt):
            off[t, s] = tot
            tot += cnt[t, s]
        end[s] = tot
    length = np.empty(S, np.int64)
    for s in range(S):
        length[s] = end[s] - off[0, s]
    load = np.zeros(nt, np.int64)
    for s in np.argsort(-length, kind="mergesort"):
        t = np.argmin(load)
        owner[s] = t
        load[t] += length[s]
    return tot


@numba.njit(cache=True, error_model="numpy")
def _rc_fill(slots, i0, i1, z, y, x, sec, upt, vmax, shape, o, pos, rs, ru, rv):
    """Append the entries of ``slots[i0:i1]`` (flat voxel index and rates) to the
    per-substrate lists at the positions ``o`` (advanced); False if a voxel is outside
    the grid."""
    Z, Y, X = shape
    S = sec.shape[1]
    for i in range(i0, i1):
        n = slots[i]
        zz = z[n]
        yy = y[n]
        xx = x[n]
        if zz < 0 or zz >= Z or yy < 0 or yy >= Y or xx < 0 or xx >= X:
            return False
        p = (np.int64(zz) * Y + yy) * X + xx
        for s in range(S):
            sr = sec[n, s]
            ur = upt[n, s]
            vr = vmax[n, s]
            if sr != 0 or ur != 0 or vr != 0:
                k = o[s]
                pos[k] = p
                rs[k] = sr
                ru[k] = ur
                rv[k] = vr
                o[s] = k + 1
    return True


@numba.njit(cache=True, error_model="numpy")
def _rc_apply(v, k0, k1, pos, rs, ru, rv, dt, km, use_mm):
    """The reaction of list entries ``k0 <= k < k1`` on one flat field ``v``, in order."""
    one = v.dtype.type(1)
    if use_mm:
        for k in range(k0, k1):
            p = pos[k]
            a = v[p]
            d = one + dt * ru[k]
            d += dt * rv[k] / (km + a)
            v[p] = (a + dt * rs[k]) / d
    else:
        for k in range(k0, k1):
            p = pos[k]
            a = v[p]
            d = one + dt * ru[k]
            v[p] = (a + dt * rs[k]) / d


@numba.njit(parallel=True, cache=True, error_model="numpy")
def react_cells(c, slots, z, y, x, sec, upt, vmax, dt, km, use_mm, nchunk):
    """Sparse reaction at cell voxels: for the cells ``n = slots[i]`` (in that order) and
    each substrate s::

        c <- (c + dt*sec) / (1 + dt*(upt + vmax/(km + c)))      (MM term where use_mm[s])

    ``z``, ``y``, ``x`` (R,) are the cells' voxels and ``sec`` (conc/s), ``upt`` (1/s),
    ``vmax`` (conc/s) their rates, (R, S) of the field dtype; rows are picked by
    ``slots`` (a cell store's per-slot arrays and its live slots, or gathered arrays
    and ``slots = arange(R)``).  A substrate whose three rates are all zero for a cell
    is skipped for that cell.  The caller keeps cells out of solid and Dirichlet voxels.

    Substrate-major: each substrate is updated by one task, over its cells in slot order,
    so where several cells act on one voxel they apply one after the other in that order
    whatever the thread count, and every voxel goes through the same floating-point
    operations as in a serial cell-by-cell loop (bit-identical for any ``nchunk`` and
    ``NUMBA_NUM_THREADS``).  Returns the number of cells that acted on each substrate
    (int64 (S,)).  Three parallel passes: ``nchunk`` contiguous ranges of
    ``slots`` count their non-zero (cell, substrate) entries, then copy them, with the
    flat voxel index, into per-substrate lists (by substrate, then range, then slot);
    the substrates, spread over ``nchunk`` tasks by list length, apply their lists.  The
    rates are read row by row, and each task works on one field array at a time rather
    than on all S at one voxel.  Raises IndexError for a slot outside the row arrays or a
    voxel outside the grid, before ``c`` is modified.
    """
    S, Z, Y, X = c.shape
    N = slots.shape[0]
    nt = max(1, min(nchunk, N))
    # (no array expressions here: in a parallel function each would be a parallel region)
    ok = np.empty(nt, np.bool_)
    # 1. count the entries of each (slot range, substrate)
    cnt = np.empty((nt, S), np.int64)
    for t in prange(nt):
        ok[t] = _rc_count(slots, t * N // nt, (t + 1) * N // nt, sec, upt, vmax, cnt[t])
    for t in range(nt):
        if not ok[t]:
            raise IndexError("react_cells: slot outside the cell arrays")
    off = np.empty((nt, S), np.int64)
    end = np.empty(S, np.int64)
    owner = np.empty(S, np.int64)
    tot = _rc_plan(cnt, off, end, owner)
    # 2. fill the lists
    pos = np.empty(tot, np.int64)
    rs = np.empty(tot, c.dtype)
    ru = np.empty(tot, c.dtype)
    rv = np.empty(tot, c.dtype)
    for t in prange(nt):
        ok[t] = _rc_fill(slots, t * N // nt, (t + 1) * N // nt, z, y, x, sec, upt, vmax,
                         (Z, Y, X), off[t].copy(), pos, rs, ru, rv)
    for t in range(nt):
        if not ok[t]:
            raise IndexError("react_cells: cell voxel outside the grid")
    # 3. apply: each substrate's list by its one task
    cf = c.reshape((S, Z * Y * X))
    for t in prange(nt):
        for s in range(S):
            if owner[s] == t:
                _rc_apply(cf[s], off[0, s], end[s], pos, rs, ru, rv, dt, km[s],
                          use_mm[s])
    n_entries = np.empty(S, np.int64)
    for s in range(S):
        n_entries[s] = end[s] - off[0, s]
    return n_entries


@numba.njit(parallel=True, cache=True, error_model="numpy")
def react_diffuse_z(c, src, upt, vmax, fz, coef, opts, s0, s1, block, nchunk):
    """Reaction step fused with the z-direction implicit diffusion sweep,
    for substrates ``s0 <= s < s1``.

    The (y, x) positions are cut into blocks of ``block`` consecutive
    positions; a task is one block of one substrate and runs the Thomas
    recursion over z vectorised across its positions, with the temporaries
    kept in cache between the forward and the backward pass.  Tasks are
    ordered block-major so the flags of a block are reused across
    substrates; ``nchunk`` contiguous task ranges go to the parallel loop.
    ``vmax`` is read only for substrates with ``opts[s, O_MM]``.
    """
    S, Z, Y, X = c.shape
    YX = Y * X
    c3 = c.reshape((S, Z, YX))
    s3 = src.reshape((S, Z, YX))
    u3 = upt.reshape((S, Z, YX))
    v3 = vmax.reshape((S, Z, YX))
    f3 = fz.reshape((2, Z, YX))
    ns = s1 - s0
    block = max(1, min(block, YX))
    nblk = (YX + block - 1) // block
    ntask = ns * nblk
    nt = max(1, min(nchunk, ntask))
    for t in prange(nt):
        E = np.empty((Z, block), np.float64)
        zg = np.zeros(block, c.dtype)      # "previous row" of the first row
        ze = np.zeros(block, np.float64)
        for task in range(t * ntask // nt, (t + 1) * ntask // nt):
            s = s0 + task % ns
            p0 = (task // ns) * block
            p1 = min(YX, p0 + block)
            n = p1 - p0
            r = coef[s, C_R]
            dt = coef[s, C_DT]
            k = coef[s, C_K]
            km = coef[s, C_KM]
            dval = coef[s, C_DVAL]
            use_mm = opts[s, O_MM] != 0
            use_dir = opts[s, O_DIR] != 0
            dense = opts[s, O_DENSE] != 0
            dbit = V_DIR if use_dir else 0
            fv = 1 if use_dir else 0
            if r == 0:
                for z in range(Z):
                    if not dense:
                        _decay_row(c3[s, z, p0:p1], f3[fv, z, p0:p1], dt, k, dval, dbit)
                        continue
                    _react_row(c3[s, z, p0:p1], s3[s, z, p0:p1], u3[s, z, p0:p1],
                               v3[s, z, p0:p1], f3[fv, z, p0:p1], dt, k, km, dval,
                               use_mm, dbit)
                continue
            # z = 0 uses zero rows as its predecessor; its lower link is
            # closed, so this is exactly the first-row elimination
            for z in range(Z):
                if z == 0:
                    gprev = zg[:n]
                    eprev = ze[:n]
                else:
                    gprev = c3[s, z - 1, p0:p1]
                    eprev = E[z - 1, :n]
                if not dense:
                    _decay_fwd(c3[s, z, p0:p1], f3[fv, z, p0:p1], gprev, eprev, E[z, :n],
                               dt, k, dval, dbit, r)
                elif use_mm:
                    _react_mm_fwd(c3[s, z, p0:p1], s3[s, z, p0:p1], u3[s, z, p0:p1],
                                  v3[s, z, p0:p1], f3[fv, z, p0:p1], gprev, eprev,
                                  E[z, :n], dt, k, km, dval, dbit, r)
                else:
                    _react_fwd(c3[s, z, p0:p1], s3[s, z, p0:p1], u3[s, z, p0:p1],
                               f3[fv, z, p0:p1], gprev, eprev, E[z, :n], dt, k,
                               dval, dbit, r)
            for z in range(Z - 2, -1, -1):
                _bwd(c3[s, z, p0:p1], E[z, :n], c3[s, z + 1, p0:p1])


@numba.njit(parallel=True, cache=True, error_model="numpy")
def diffuse_yx(c, fy, fxt, coef, opts, s0, s1, nchunk):
    """Implicit diffusion sweeps along y and then x, fused per z plane.

    For one plane: the y solve runs vectorised across x and its back
    substitution writes the result transposed into a per-thread buffer; the
    x solve then runs on that buffer vectorised across y and its back
    substitution writes the result transposed back into ``c``.  Tasks
    (z plane, substrate ``s0 <= s < s1``) are ordered plane-major.
    """
    S, Z, Y, X = c.shape
    ns = s1 - s0
    ntask = ns * Z
    nt = max(1, min(nchunk, ntask))
    for t in prange(nt):
        Ey = np.empty((Y, X), np.float64)
        T = np.empty((X, Y), c.dtype)
        Ex = np.empty((X, Y), np.float64)
        gb = np.empty(max(X, Y), np.float64)
        eb = np.empty(max(X, Y), np.float64)
        for task in range(t * ntask // nt, (t + 1) * ntask // nt):
            s = s0 + task % ns
            z = task // ns
            r = coef[s, C_R]
            if r == 0:
                continue
            fv = 1 if opts[s, O_DIR] != 0 else 0
            P = c[s, z]
            _solve_transpose(P, fy[fv, z], Ey, r, T, gb[:X], eb[:X])
            _solve_transpose(T, fxt[fv, z], Ex, r, P, gb[:Y], eb[:Y])


def step(c, src, upt, vmax, fz, fy, fxt, coef, opts, block, nchunk=None,
         group=None):
    """One full step: reaction + z sweep, then fused y/x sweeps.

    Substrates are advanced ``group`` at a time (default: all at once; a
    z pass then a y/x pass per group).  ``nchunk`` (default: numba's current
    thread count) is the number of contiguous work ranges handed to the
    parallel loops.  Results depend on neither, nor on ``block``."""
    if nchunk is None:
        nchunk = numba.get_num_threads()
    S = c.shape[0]
    group = S if group is None else max(1, min(int(group), S))
    for s0 in range(0, S, group):
        s1 = min(S, s0 + group)
        react_diffuse_z(c, src, upt, vmax, fz, coef, opts, s0, s1, block,
                        nchunk)
        diffuse_yx(c, fy, fxt, coef, opts, s0, s1, nchunk)


@numba.njit(cache=True, error_model="numpy")
def scatter_cells(src, upt, vmax, z, y, x, sec_rates, upt_rates, vmax_rates):
    """Add per-cell rates (N, S) into the (S, Z, Y, X) source / linear uptake /
    Michaelis-Menten Vmax arrays at each cell's voxel.  Serial and in cell
    order, hence deterministic.  Raises IndexError for a voxel outside the
    grid."""
    S, Z, Y, X = src.shape
    N = z.shape[0]
    for n in range(N):
        zz = z[n]
        yy = y[n]
        xx = x[n]
        if zz < 0 or zz >= Z or yy < 0 or yy >= Y or xx < 0 or xx >= X:
            raise IndexError("scatter_cells: cell voxel outside the grid")
        for s in range(S):
            src[s, zz, yy, xx] += sec_rates[n, s]
            upt[s, zz, yy, xx] += upt_rates[n, s]
            vmax[s, zz, yy, xx] += vmax_rates[n, s]


@numba.njit(parallel=True, cache=True, error_model="numpy")
def clear(a):
    """Set every element of the C-contiguous array ``a`` to zero (parallel)."""
    flat = a.reshape(a.size)
    n = flat.shape[0]
    nchunk = 64
    zero = flat.dtype.type(0)
    for t in prange(nchunk):
        for i in range(t * n // nchunk, (t + 1) * n // nchunk):
            flat[i] = zero


@numba.njit(parallel=True, cache=True, error_model="numpy")
def clear_sources(src, upt, vmax):
    """Zero the three (S, Z, Y, X) reaction arrays (parallel fill)."""
    a = src.reshape(src.size)
    b = upt.reshape(upt.size)
    d = vmax.reshape(vmax.size)
    n = a.shape[0]
    nchunk = 64
    zero = a.dtype.type(0)
    for t in prange(nchunk):
        for i in range(t * n // nchunk, (t + 1) * n // nchunk):
            a[i] = zero
            b[i] = zero
            d[i] = zero


@numba.njit(cache=True, error_model="numpy")
def sample_at(c, z, y, x, out):
    """out[n, s] = c[s, z[n], y[n], x[n]].  Raises IndexError for a voxel
    outside the grid."""
    S, Z, Y, X = c.shape
    for n in range(z.shape[0]):
        zz = z[n]
        yy = y[n]
        xx = x[n]
        if zz < 0 or zz >= Z or yy < 0 or yy >= Y or xx < 0 or xx >= X:
            raise IndexError("sample_at: cell voxel outside the grid")
        for s in range(S):
            out[n, s] = c[s, zz, yy, xx]


@numba.njit(cache=True, error_model="numpy")
def _open(solid, z, y, x):
    if solid is None:
        return True
    return solid[z, y, x] == 0


@numba.njit(cache=True, error_model="numpy")
def _axis_diff(cm, c0, cp, has_m, has_p):
    if has_m and has_p:
        return 0.5 * (cp - cm)
    if has_p:
        return cp - c0
    if has_m:
        return c0 - cm
    return 0.0


@numba.njit(cache=True, error_model="numpy")
def _gradient_one(c, s, zz, yy, xx, solid):
    """(dc/dz, dc/dy, dc/dx) of substrate ``s`` at one voxel (see :func:`gradient_at`)."""
    S, Z, Y, X = c.shape
    if zz < 0 or zz >= Z or yy < 0 or yy >= Y or xx < 0 or xx >= X:
        raise IndexError("gradient_at: cell voxel outside the grid")
    if not _open(solid, zz, yy, xx):
        return 0.0, 0.0, 0.0
    c0 = c[s, zz, yy, xx]
    hm = zz > 0 and _open(solid, zz - 1, yy, xx)
    hp = zz < Z - 1 and _open(solid, zz + 1, yy, xx)
    gz = _axis_diff(c[s, zz - 1, yy, xx] if hm else c0, c0,
                    c[s, zz + 1, yy, xx] if hp else c0, hm, hp)
    hm = yy > 0 and _open(solid, zz, yy - 1, xx)
    hp = yy < Y - 1 and _open(solid, zz, yy + 1, xx)
    gy = _axis_diff(c[s, zz, yy - 1, xx] if hm else c0, c0,
                    c[s, zz, yy + 1, xx] if hp else c0, hm, hp)
    hm = xx > 0 and _open(solid, zz, yy, xx - 1)
    hp = xx < X - 1 and _open(solid, zz, yy, xx + 1)
    gx = _axis_diff(c[s, zz, yy, xx - 1] if hm else c0, c0,
                    c[s, zz, yy, xx + 1] if hp else c0, hm, hp)
    return gz, gy, gx


@numba.njit(cache=True, error_model="numpy")
def gradient_at(c, s, z, y, x, out, solid=None):
    """Gradient of substrate ``s`` at cell voxels, in concentration per
    *voxel* (divide by ``dx_um`` for concentration per um).

    ``out[n] = (dc/dz, dc/dy, dc/dx)``.  Along each axis a central
    difference is used when both neighbours are open, a one-sided difference
    when only one is, and 0 when neither is; a neighbour is open when it lies
    inside the grid and, if ``solid`` (uint8 (Z, Y, X)) is given, is not
    solid.  A cell sitting in a solid voxel gets a zero gradient.
    """
    for n in range(z.shape[0]):
        out[n, 0], out[n, 1], out[n, 2] = _gradient_one(c, s, z[n], y[n], x[n], solid)


@numba.njit(cache=True, error_model="numpy")
def gradient_at_slots(c, s, slots, z, y, x, gz, gy, gx, solid=None):
    """:func:`gradient_at` for the cells ``n = slots[i]`` of a cell store, read from
    and written to its per-slot arrays (``gz[n], gy[n], gx[n]``; per voxel), without
    gathering or scattering copies."""
    for i in range(slots.shape[0]):
        n = slots[i]
        gz[n], gy[n], gx[n] = _gradient_one(c, s, z[n], y[n], x[n], solid)


@numba.njit(cache=True, error_model="numpy")
def is_zero(c, s):
    """True if every value of field ``c[s]`` is 0 (stops at the first one that is not)."""
    v = c[s].reshape(-1)
    for i in range(v.shape[0]):
        if v[i] != 0:
            return False
    return True


@numba.njit(cache=True, error_model="numpy")
def sample_slots(c, s, slots, z, y, x, out):
    """out[i] = c[s, z[n], y[n], x[n]] (as float64) for the cells ``n = slots[i]`` of a
    cell store (its per-slot z, y, x), without gathering copies. Raises IndexError for a
    voxel outside the grid."""
    S, Z, Y, X = c.shape
    for i in range(slots.shape[0]):
        n = slots[i]
        zz = z[n]
        yy = y[n]
        xx = x[n]
        if zz < 0 or zz >= Z or yy < 0 or yy >= Y or xx < 0 or xx >= X:
            raise IndexError("sample_slots: cell voxel outside the grid")
        out[i] = c[s, zz, yy, xx]


@numba.njit(cache=True, error_model="numpy")
def _slots_inside(slots, i0, i1, z, y, x, Z, Y, X):
    """True if the voxels of the cells ``slots[i0:i1]`` all lie inside the grid."""
    for i in range(i0, i1):
        n = slots[i]
        if z[n] < 0 or z[n] >= Z or y[n] < 0 or y[n] >= Y or x[n] < 0 or x[n] >= X:
            return False
    return True


@numba.njit(parallel=True, cache=True, error_model="numpy")
def gradient_at_slots_parallel(c, s, slots, z, y, x, gz, gy, gx, solid, nchunk):
    """:func:`gradient_at_slots` over ``nchunk`` contiguous ranges of ``slots``, one per
    task (each cell's gradient depends on that cell alone: the same values for any
    ``nchunk``). Raises IndexError for a cell voxel outside the grid."""
    S, Z, Y, X = c.shape
    N = slots.shape[0]
    ok = np.empty(nchunk, np.bool_)
    for t in prange(nchunk):
        i0 = t * N // nchunk
        i1 = (t + 1) * N // nchunk
        ok[t] = _slots_inside(slots, i0, i1, z, y, x, Z, Y, X)
        if ok[t]:
            gradient_at_slots(c, s, slots[i0:i1], z, y, x, gz, gy, gx, solid)
    for t in range(nchunk):
        if not ok[t]:
            raise IndexError("gradient_at: cell voxel outside the grid")
