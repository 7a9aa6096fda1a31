"""Numba kernels for cell motility and occupancy on the voxel lattice.

Data model (structure of arrays, N = capacity, lattice shape (Z, Y, X)):

=============  ===================  ===========================================
name           dtype / shape        meaning
=============  ===================  ===========================================
z, y, x        int32 (N,)           voxel coordinates of slot i
alive          uint8 (N,)           1 = slot holds a live cell
cell_id        int64 (N,)           unique stable id (RNG counter of the cell)
dirz/y/x       float32 (N,)         unit direction of the persistent walk
                                    (zero vector allowed: then a random one)
hop_prob       float32/64 (N,)      hop probability per call, in [0, 1]
persistence    float32/64 (N,)      p in [0, 1]
chemo_strength float32/64 (N,)      weight of the unit gradient in the update
gradz/y/x      float32/64 (N,)      gradient at the cell (caller-computed)
occ            int32 (Z, Y, X)      slot + 1 of the occupant, 0 = free
wall           uint8 (Z, Y, X)      nonzero = never enterable (bone | lumen ...)
=============  ===================  ===========================================

Invariants kept by every kernel here (given they hold on entry): no two alive
cells share a voxel; ``occ`` equals the map rebuilt from the alive cells'
positions; no alive cell sits on a wall voxel.  ``check_invariants`` verifies.

Determinism: all randomness comes from :mod:`niche.kernels.rng` keyed by
``(seed, stream, step, cell_id)``; loops that mutate shared state are serial
(the move passes are serial; see "Implementation and performance").  Compiled without ``fastmath``.

Movement model
--------------
Each call is one (sub)step.  An alive cell with ``hop_prob > 0`` first updates
its direction::

    d <- normalize(p * d + (1 - p) * r + c * g / |g|)

with r a fresh random unit vector, p = persistence, c = chemo_strength and g
the gradient (|g| = 0 means no bias).  If the sum is (numerically) zero the
direction becomes r.  Then, with probability ``hop_prob``, the cell hops to a
26-neighbour chosen by *stochastic lattice rounding* of d: the axis with the
largest |d_k| always moves by sign(d_k); each other axis moves by sign(d_k)
with probability |d_k| / max_k |d_k|.  The expected hop vector is therefore
exactly parallel to d (no preferred lattice directions; at p = 0 the walk is
isotropic by cube symmetry), unlike "nearest of the 26 offsets", which snaps
every direction within ~20 degrees of an axis onto that axis.
26 neighbours (not 6) are used so that diagonal motion is a single hop.

If the target is outside the domain, a wall or occupied, the cell tries once
the face neighbour along its dominant axis (only if that differs from the
first target, i.e. the first target was an edge/corner neighbour); if that
fails too it stays put this substep (its new direction is kept).

Hop speeds above one voxel per step: the caller calls the kernel several times
per step with ``substep = 0, 1, ...`` (and hop_prob = speed*dt/dx/n_sub).

Random numbers per cell and call: stream ``STREAM_MOVE``, counter cell_id,
step counter ``step * 2**20 + substep``; draw 0 hop decision, 1-3 rounding of
the z, y, x components, 4 random unit vector.

Implementation and performance
------------------------------
``move_cells`` has the semantics of a serial loop over ``order``, but only the
occupancy check and the move are inherently serial.  It runs in passes:
(A) per slot, branch-free and vectorised: new direction and the two candidate
target voxels, packed into one int64; (B) compact the cells that try to hop,
in ``order``; (C) serial resolution against ``occ`` / ``wall`` -- branch-free,
with software prefetch a few cells ahead, since the lattice does not fit in
cache and this pass is bound by memory latency; (D) per slot: apply the moves
to z, y, x.  All kernels here are single-threaded.  (A slab-parallel variant
was measured and removed: on a 2-vCPU machine a parallel region bought nothing
(pass A is memory-bound) and, with GNU OpenMP's default spin-waiting
(OMP_WAIT_POLICY unset), each parallel region cost ~8 ms there; set
``OMP_WAIT_POLICY=passive`` (or use the workqueue/TBB layer) before using
parallel kernels on such machines.)
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from niche.kernels.rng import (
    STREAM_DIVIDE,
    STREAM_MOVE,
    STREAM_ORDER,
    counter_key,
    step_key,
    uniform,
    unit_vector,
)

__all__ = [
    "NEIGHBOUR_OFFSETS",
    "move_cells",
    "move_tick",
    "MoveBuffers",
    "shuffled_order",
    "rebuild_occupancy",
    "check_invariants",
    "neighbour_free_voxel",
    "count_contacts",
]

#: the 26 neighbour offsets (dz, dy, dx), in a fixed order
NEIGHBOUR_OFFSETS = np.array(
    [
        (dz, dy, dx)
        for dz in (-1, 0, 1)
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dz, dy, dx) != (0, 0, 0)
    ],
    dtype=np.int64,
)

_SUBSTEP_BITS = 20  # step counter of the move key = step << 20 | substep
# draw indices per cell and call: 0 hop decision; 1, 2, 3 rounding of the
# z, y, x components; 4 random unit vector
_J_HOP = 0
_J_ROUND = 1
_J_UNIT = 4
_STAY = 13  # neighbour code of (0, 0, 0); code = (dz+1)*9 + (dy+1)*3 + (dx+1)
_LO32 = np.int64(0xFFFFFFFF)
_LOOKAHEAD = 16  # cells ahead whose voxels _resolve prefetches


@intrinsic
def _prefetch(typingctx, arr, idx, write):
    """Cache prefetch hint for ``arr[idx]`` (1-d contiguous array).

    Lowered to ``llvm.prefetch`` (e.g. PREFETCHW / PREFETCHT0 on x86): no
    effect on results, never faults.  ``write`` must be a literal 0 / 1.
    """
    if not (isinstance(arr, types.Array) and isinstance(idx, types.Integer)
            and isinstance(write, types.IntegerLiteral)):
        return None
    rw = int(write.literal_value)
    sig = types.void(arr, idx, write)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = builder.gep(ary.data, [i])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # (address, rw, locality 3 = keep in all levels, 1 = data cache)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(rw), i32(3),
                          i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def _free(occ, wall, vz, vy, vx):
    Z, Y, X = occ.shape
    if vz < 0 or vy < 0 or vx < 0 or vz >= Z or vy >= Y or vx >= X:
        return False
    return occ[vz, vy, vx] == 0 and wall[vz, vy, vx] == 0


@njit(cache=True, inline="always")
def _move_key(seed, step, substep):
    return step_key(seed, STREAM_MOVE,
                    (np.int64(step) << _SUBSTEP_BITS) + np.int64(substep))


@njit(cache=True, inline="always")
def _code_offsets(Y, X):
    """Flat index offset of each of the 27 neighbour codes."""
    offs = np.empty(27, dtype=np.int64)
    for c in range(27):
        offs[c] = ((c // 9 - 1) * Y + (c // 3 % 3 - 1)) * X + (c % 3 - 1)
    return offs


@njit(cache=True, error_model="numpy")  # IEEE division: no zero checks
def _plan_range(kstep, Z, Y, X, z, y, x, alive, cell_id, dirz, diry, dirx,
                hop_prob, persistence, chemo_strength, gradz, grady, gradx, plan,
                lo, hi):
    """Pass A for the slots ``lo <= s < hi`` only (see :func:`_plan`; plan[s] of every
    other slot is left as it is: -1 between calls, see :func:`move_tick`). Written as one
    loop body: moved into a helper function, it no longer vectorises (4x slower)."""
    for s in range(np.uintp(lo), np.uintp(hi)):  # unsigned: no wraparound checks
        hp = np.float64(hop_prob[s])
        active = (alive[s] != 0) & (hp > 0.0)
        ck = counter_key(kstep, cell_id[s])

        # ---- direction: d <- normalize(p d + (1-p) r + c g/|g|) ----------
        p = min(max(np.float64(persistence[s]), 0.0), 1.0)
        q = 1.0 - p
        d0z = dirz[s]
        d0y = diry[s]
        d0x = dirx[s]
        rz, ry, rx = unit_vector(ck, _J_UNIT)
        dz = p * np.float64(d0z) + q * rz
        dy = p * np.float64(d0y) + q * ry
        dx = p * np.float64(d0x) + q * rx
        c = np.float64(chemo_strength[s])
        gz = np.float64(gradz[s])
        gy = np.float64(grady[s])
        gx = np.float64(gradx[s])
        g2 = gz * gz + gy * gy + gx * gx
        f = c / math.sqrt(g2) if g2 > 0.0 else 0.0
        dz += f * gz
        dy += f * gy
        dx += f * gx
        n2 = dz * dz + dy * dy + dx * dx
        nonzero = n2 > 1e-20
        dz = dz if nonzero else rz
        dy = dy if nonzero else ry
        dx = dx if nonzero else rx
        # the target choice below is scale-invariant, so only the stored
        # direction is normalised (keeps sqrt and division off its path)
        f = 1.0 / math.sqrt(n2) if nonzero else 1.0
        dirz[s] = np.float32(dz * f) if active else d0z
        diry[s] = np.float32(dy * f) if active else d0y
        dirx[s] = np.float32(dx * f) if active else d0x

        # ---- hop decision and targets --------------------------------------
        hopf = active & ((hp >= 1.0) | (uniform(ck, _J_HOP) < hp))
        az = abs(dz)
        ay = abs(dy)
        ax = abs(dx)
        m = max(az, max(ay, ax))
        # stochastic rounding: the dominant axis has a/m == 1, always moves
        oz = (np.int64(dz > 0.0) - np.int64(dz < 0.0)) * np.int64(
            uniform(ck, _J_ROUND) * m < az)
        oy = (np.int64(dy > 0.0) - np.int64(dy < 0.0)) * np.int64(
            uniform(ck, _J_ROUND + 1) * m < ay)
        ox = (np.int64(dx > 0.0) - np.int64(dx < 0.0)) * np.int64(
            uniform(ck, _J_ROUND + 2) * m < ax)
        z0 = np.int64(z[s])
        y0 = np.int64(y[s])
        x0 = np.int64(x[s])
        nz = z0 + oz
        ny = y0 + oy
        nx = x0 + ox
        in1 = ((nz >= 0) & (ny >= 0) & (nx >= 0) & (nz < Z) & (ny < Y)
               & (nx < X))
        code1 = ((oz + 1) * 9 + (oy + 1) * 3 + (ox + 1)) if in1 else _STAY
        # fallback: face neighbour along the dominant axis (ties z, y, x),
        # only if the primary target is an edge or corner neighbour
        mz = np.int64(az >= ay) & np.int64(az >= ax)
        my = (1 - mz) & np.int64(ay >= ax)
        mx = 1 - mz - my
        nz = z0 + oz * mz
        ny = y0 + oy * my
        nx = x0 + ox * mx
        in2 = ((nz >= 0) & (ny >= 0) & (nx >= 0) & (nz < Z) & (ny < Y)
               & (nx < X) & (abs(oz) + abs(oy) + abs(ox) >= 2))
        code2 = ((oz * mz + 1) * 9 + (oy * my + 1) * 3 + (ox * mx + 1)
                 ) if in2 else _STAY
        cur = (z0 * Y + y0) * X + x0
        packed = cur | (code1 << 32) | (code2 << 37)
        plan[s] = packed if (hopf & (in1 | in2)) else np.int64(-1)


@njit(cache=True, error_model="numpy")  # IEEE division: no zero checks
def _plan(kstep, Z, Y, X, z, y, x, alive, cell_id, dirz, diry, dirx,
          hop_prob, persistence, chemo_strength, gradz, grady, gradx, plan,
          res):
    """Pass A: per slot, independent, branch-free (LLVM vectorises it).

    Updates the direction of every alive cell with hop_prob > 0 and encodes
    its hop attempt in ``plan[s]`` = cur | code1 << 32 | code2 << 37, where
    cur is the flat index of its voxel and code1 / code2 the neighbour codes
    of the primary / fallback target (``_STAY`` where that target does not
    exist or is outside the domain).  plan[s] = -1: nothing to do (dead,
    hop_prob <= 0, no hop this call, or no target inside the domain).
    res[s] is set to ``_STAY`` (no move) for every slot.
    """
    _plan_range(kstep, Z, Y, X, z, y, x, alive, cell_id, dirz, diry, dirx, hop_prob,
                persistence, chemo_strength, gradz, grady, gradx, plan, 0, alive.shape[0])
    res[:] = _STAY


# parallel=True, called from Python only: a cached non-parallel function calling a
# parallel one can crash when loaded from the cache (numba issues #4807, #8578)
@njit(cache=True, parallel=True, error_model="numpy")
def _plan_range_parallel(kstep, Z, Y, X, z, y, x, alive, cell_id, dirz, diry, dirx,
                         hop_prob, persistence, chemo_strength, gradz, grady, gradx,
                         plan, hi, nchunk):
    """:func:`_plan_range` over ``0 <= s < hi`` in ``nchunk`` contiguous ranges, one per
    task. Each slot's work depends on that slot alone, so the result does not depend on
    ``nchunk`` or the thread count."""
    for t in prange(nchunk):
        _plan_range(kstep, Z, Y, X, z, y, x, alive, cell_id, dirz, diry, dirx, hop_prob,
                    persistence, chemo_strength, gradz, grady, gradx, plan,
                    t * hi // nchunk, (t + 1) * hi // nchunk)


@njit(cache=True)
def _gather(order, plan, act_s, act_p):
    """Pass B: compact the planned hops of the listed slots, in ``order``.

    act_s[:n], act_p[:n] = slot and plan of each listed cell with something
    to do; returns n.  Branch-free (the slot is written unconditionally and
    the counter advanced by the flag), so the random reads of ``plan``
    overlap.  plan[s] is reset to -1: a slot listed twice is handled once.
    """
    n = 0
    m = order.shape[0]
    for k in range(m):
        _prefetch(plan, order[min(k + _LOOKAHEAD, m - 1)], 1)
        s = order[k]
        pk = plan[s]
        plan[s] = -1
        act_s[n] = s
        act_p[n] = pk
        n += np.int64(pk >= 0)
    return n


@njit(cache=True)
def _resolve(act_s, act_p, lo, hi, res, offs, occ_f, wall_f):
    """Pass C (serial): resolve the compacted hops act[lo:hi] in order.

    A cell takes its primary target if free, else its fallback if free,
    else stays; the neighbour code taken goes to res[s].  Returns the hop
    count.  Written for memory-level parallelism (the lattice is far larger
    than the caches): software prefetch ``_LOOKAHEAD`` cells ahead, no
    branches, all stores go to lines loaded in the same iteration (occ[cur]
    is read although its value, slot + 1, is known).
    """
    hops = 0
    for k in range(lo, hi):
        # prefetch the voxels (and result byte) of the cell _LOOKAHEAD ahead
        ka = min(k + _LOOKAHEAD, hi - 1)
        pa = act_p[ka]
        ca = pa & _LO32
        a1 = ca + offs[(pa >> 32) & 31]
        a2 = ca + offs[(pa >> 37) & 31]
        _prefetch(occ_f, ca, 1)
        _prefetch(occ_f, a1, 1)
        _prefetch(occ_f, a2, 1)
        _prefetch(wall_f, a1, 0)
        _prefetch(wall_f, a2, 0)
        _prefetch(res, act_s[ka], 1)

        pk = act_p[k]
        cur = pk & _LO32
        c1 = (pk >> 32) & 31
        c2 = (pk >> 37) & 31
        t1 = cur + offs[c1]
        t2 = cur + offs[c2]
        me = occ_f[cur]
        f1 = (occ_f[t1] == 0) & (wall_f[t1] == 0)
        f2 = (occ_f[t2] == 0) & (wall_f[t2] == 0)
        dest = t1 if f1 else (t2 if f2 else cur)
        occ_f[cur] = 0
        occ_f[dest] = me
        res[act_s[k]] = c1 if f1 else (c2 if f2 else _STAY)
        hops += np.int64(dest != cur)
    return hops


@njit(cache=True)
def _commit(res, z, y, x):
    """Pass D (per slot): apply the neighbour code res[s]."""
    for s in range(res.shape[0]):
        c = np.int32(res[s])
        z[s] += c // 9 - 1
        y[s] += c // 3 % 3 - 1
        x[s] += c % 3 - 1


@njit(cache=True)
def _hop_listed(order, plan, act_s, act_p, res, offs, occ_f, wall_f, z, y, x):
    """Passes B-D after :func:`_plan_range`: gather, resolve and apply the hops of the
    slots in ``order``; leaves ``plan`` all -1 again. Returns the number of cells
    that hopped."""
    n = _gather(order, plan, act_s, act_p)
    hops = _resolve(act_s, act_p, 0, n, res, offs, occ_f, wall_f)
    for k in range(n):  # pass D on the cells that tried (every other res is _STAY)
        s = act_s[k]
        c = np.int32(res[s])
        z[s] += c // 9 - 1
        y[s] += c // 3 % 3 - 1
        x[s] += c % 3 - 1
    return hops


class MoveBuffers:
    """Scratch of :func:`move_tick` for a cell store of ``capacity`` slots (``plan``
    holds -1 between calls)."""

    def __init__(self, capacity: int):
        self.plan = np.full(capacity, -1, np.int64)
        self.res = np.empty(capacity, np.uint8)
        self.act_s = np.empty(capacity, np.int64)
        self.act_p = np.empty(capacity, np.int64)


@njit(cache=True)
def _move_tick_serial(z, y, x, alive, cell_id, dirz, diry, dirx, hop_prob, persistence,
                      chemo_strength, gradz, grady, gradx, occ, wall, seed, step, order,
                      n_sub, active_end, plan, res, act_s, act_p):
    """:func:`move_tick` on one thread: every sub-step in one compiled call."""
    Z, Y, X = occ.shape
    offs = _code_offsets(Y, X)
    occ_f = occ.reshape(-1)
    wall_f = wall.reshape(-1)
    hops = 0
    for k in range(n_sub):
        kstep = _move_key(seed, step, k)
        _plan_range(kstep, Z, Y, X, z, y, x, alive, cell_id, dirz, diry, dirx, hop_prob,
                    persistence, chemo_strength, gradz, grady, gradx, plan, 0, active_end)
        hops += _hop_listed(order, plan, act_s, act_p, res, offs, occ_f, wall_f, z, y, x)
    return hops


def move_tick(z, y, x, alive, cell_id, dirz, diry, dirx, hop_prob, persistence,
              chemo_strength, gradz, grady, gradx, occ, wall, seed, step, order,
              n_sub, active_end, buffers, nchunk=1):
    """``n_sub`` sub-steps of :func:`move_cells` (``substep = 0 .. n_sub - 1``), with the
    same result bit for bit, planning only the slots below ``active_end``.

    ``active_end``: one past the last slot with ``hop_prob > 0`` (a cell store fills its
    lowest free slots, so the slots beyond it are mostly free); ``buffers``: a
    :class:`MoveBuffers` of the store's capacity; ``nchunk`` > 1 plans each sub-step in
    that many parallel tasks (the result does not depend on it). Returns the number of
    hops.
    """
    Z, Y, X = occ.shape
    if Z * Y * X >= 2**31:
        raise ValueError("lattice too large for 32-bit voxel indices")
    b = buffers
    if nchunk <= 1:
        return _move_tick_serial(z, y, x, alive, cell_id, dirz, diry, dirx, hop_prob,
                                 persistence, chemo_strength, gradz, grady, gradx, occ, wall,
                                 seed, step, order, np.int64(n_sub), np.int64(active_end),
                                 b.plan, b.res, b.act_s, b.act_p)
    offs = _code_offsets(Y, X)
    occ_f, wall_f = occ.reshape(-1), wall.reshape(-1)
    hops = 0
    for k in range(int(n_sub)):
        kstep = np.uint64(_move_key(seed, step, k))
        _plan_range_parallel(kstep, Z, Y, X, z, y, x, alive, cell_id, dirz, diry, dirx,
                             hop_prob, persistence, chemo_strength, gradz, grady, gradx,
                             b.plan, np.int64(active_end), np.int64(nchunk))
        hops += _hop_listed(order, b.plan, b.act_s, b.act_p, b.res, offs, occ_f, wall_f,
                            z, y, x)
    return hops


@njit(cache=True)
def move_cells(z, y, x, alive, cell_id, dirz, diry, dirx, hop_prob,
               persistence, chemo_strength, gradz, grady, gradx, occ, wall,
               seed, step, order, substep=0):
    """One motility substep; hops are resolved serially in ``order``.

    Parameters (N = capacity; see module docstring for the dtypes)
    ----------
    z, y, x : int32 (N,)            positions, updated in place
    alive : uint8 (N,)              nonzero = live cell
    cell_id : int64 (N,)            RNG counter of each cell
    dirz, diry, dirx : float32 (N,) unit directions, updated in place
    hop_prob, persistence, chemo_strength : float (N,)
    gradz, grady, gradx : float (N,) gradient at each cell (any scale)
    occ : int32 (Z, Y, X)           occupancy (slot + 1), C-contiguous,
                                    updated in place
    wall : uint8 (Z, Y, X)          nonzero = not enterable, C-contiguous
    seed, step : int                RNG seed and step counter
    order : int (M,)                slots that attempt a hop, in this order
                                    (normally ``shuffled_order(...)``)
    substep : int                   sub-step index, 0 <= substep < 2**20

    Returns the number of cells that hopped.

    Every alive cell with hop_prob > 0 gets its direction updated, whether
    or not it is listed in ``order``; only listed cells hop.  The outcome is
    that of a serial loop over ``order`` in which each cell sees the moves of
    the cells before it.  Implementation: direction update and target choice
    depend on nothing but the cell itself and run first for all slots
    (vectorised); only the occupancy check and the move are serial (see the
    module docstring).  Single-threaded.
    """
    Z, Y, X = occ.shape
    if Z * Y * X >= 2**31:
        raise ValueError("lattice too large for 32-bit voxel indices")
    n = alive.shape[0]
    plan = np.empty(n, dtype=np.int64)
    res = np.empty(n, dtype=np.uint8)
    kstep = _move_key(seed, step, substep)
    _plan(kstep, Z, Y, X, z, y, x, alive, cell_id, dirz, diry, dirx,
          hop_prob, persistence, chemo_strength, gradz, grady, gradx, plan,
          res)
    act_s = np.empty(order.shape[0], dtype=np.int64)
    act_p = np.empty(order.shape[0], dtype=np.int64)
    n_act = _gather(order, plan, act_s, act_p)
    hops = _resolve(act_s, act_p, 0, n_act, res, _code_offsets(Y, X),
                    occ.reshape(-1), wall.reshape(-1))
    _commit(res, z, y, x)
    return hops


# parallel=True here and no calls to other parallel functions: a cached
# non-parallel function calling a parallel one can crash when loaded from the
# cache (numba issues #4807, #8578)
@njit(cache=True)
def _order_keys(cell_id, kstep, sbits, keys):
    """keys[s] = top (64 - sbits) bits of the hash of cell_id[s] | s."""
    low = (np.uint64(1) << np.uint64(sbits)) - np.uint64(1)
    for s in range(cell_id.shape[0]):
        keys[s] = (counter_key(kstep, cell_id[s]) & ~low) | np.uint64(s)


@njit(cache=True)
def shuffled_order(alive, cell_id, seed, step):
    """Alive slots (int64 array) in random order: sorted by a hash of
    (seed, step, cell_id), stream ``STREAM_ORDER``.

    The sort key is (top 64 - b bits of the hash, slot) with b = bits needed
    for a slot number, so ties (probability ~n^2 / 2^(65-b)) are broken by
    slot and the result is a pure function of the inputs; apart from such
    ties it depends only on the set of cell ids, not on their slots.

    Implementation: one uint64 per cell (hash bits | slot), LSD radix sort
    (3 passes of 11 bits) on the top 33 bits, then an insertion pass that
    orders the (rare, short) runs of equal top bits by the full word.
    """
    N = alive.shape[0]
    sbits = 1
    while (np.int64(1) << sbits) < N:
        sbits += 1
    keys = np.empty(N, dtype=np.uint64)
    _order_keys(cell_id, step_key(seed, STREAM_ORDER, step), sbits, keys)
    n = 0
    for s in range(N):  # compact (in place: n <= s)
        if alive[s] != 0:
            keys[n] = keys[s]
            n += 1
    k1 = keys[:n]
    k2 = np.empty(n, dtype=np.uint64)
    cnt = np.empty(2048, dtype=np.int64)
    for p in range(3):
        shift = np.uint64(31 + 11 * p)
        cnt[:] = 0
        for i in range(n):
            cnt[np.int64((k1[i] >> shift) & np.uint64(2047))] += 1
        tot = 0
        for b in range(2048):
            c = cnt[b]
            cnt[b] = tot
            tot += c
        for i in range(n):
            v = k1[i]
            b = np.int64((v >> shift) & np.uint64(2047))
            j = cnt[b]
            cnt[b] = j + 1
            k2[j] = v
        k1, k2 = k2, k1
    # the LSD passes are stable but the low 31 bits were not sorted
    for i in range(1, n):
        kv = k1[i]
        if k1[i - 1] > kv:  # only possible within a run of equal top bits
            j = i - 1
            while j >= 0 and k1[j] > kv:
                k1[j + 1] = k1[j]
                j -= 1
            k1[j + 1] = kv
    low = (np.uint64(1) << np.uint64(sbits)) - np.uint64(1)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = np.int64(k1[i] & low)
    return out

@njit(cache=True)
def rebuild_occupancy(z, y, x, alive, occ):
    """Rebuild ``occ`` from the alive cells; returns the number of conflicts.

    A conflict is an alive cell outside the domain or on a voxel already
    taken by a lower slot (the lower slot keeps the voxel).
    """
    Z, Y, X = occ.shape
    occ[:] = 0
    conflicts = 0
    for s in range(alive.shape[0]):
        if alive[s] == 0:
            continue
        vz = z[s]
        vy = y[s]
        vx = x[s]
        if vz < 0 or vy < 0 or vx < 0 or vz >= Z or vy >= Y or vx >= X:
            conflicts += 1
            continue
        if occ[vz, vy, vx] != 0:
            conflicts += 1
            continue
        occ[vz, vy, vx] = s + 1
    return conflicts


@njit(cache=True)
def check_invariants(z, y, x, alive, occ, wall):
    """Count invariant violations without modifying anything.

    Counts: alive cells out of domain, on a wall, or whose voxel in ``occ``
    does not point back at them; plus nonzero ``occ`` entries that do not
    point at an alive cell sitting there.  0 means consistent.
    """
    Z, Y, X = occ.shape
    N = alive.shape[0]
    bad = 0
    for s in range(N):
        if alive[s] == 0:
            continue
        vz = z[s]
        vy = y[s]
        vx = x[s]
        if vz < 0 or vy < 0 or vx < 0 or vz >= Z or vy >= Y or vx >= X:
            bad += 1
            continue
        if wall[vz, vy, vx] != 0:
            bad += 1
        if occ[vz, vy, vx] != s + 1:
            bad += 1
    for vz in range(Z):
        for vy in range(Y):
            for vx in range(X):
                o = occ[vz, vy, vx]
                if o == 0:
                    continue
                s = o - 1
                if s < 0 or s >= N or alive[s] == 0:
                    bad += 1
                elif z[s] != vz or y[s] != vy or x[s] != vx:
                    bad += 1
    return bad


@njit(cache=True)
def neighbour_free_voxel(parents, z, y, x, cell_id, occ, wall, seed, step):
    """For each parent slot pick a random free non-wall 26-neighbour voxel.

    Returns int64 (K,) flat voxel indices (C order over (Z, Y, X)), -1 where
    the parent has no free neighbour.  Parents are handled in the given order
    and the returned voxels are distinct (a voxel chosen for one parent is
    not offered to later ones).  ``occ`` is left unchanged on return.  The
    choice is uniform over the free neighbours, keyed by (seed, step,
    cell_id) on stream ``STREAM_DIVIDE``.  Place the daughters with
    the birth placement of the model.
    """
    Z, Y, X = occ.shape
    K = parents.shape[0]
    out = np.full(K, -1, dtype=np.int64)
    kstep = step_key(seed, STREAM_DIVIDE, step)
    cand = np.empty(26, dtype=np.int64)
    for k in range(K):
        s = parents[k]
        pz = np.int64(z[s])
        py = np.int64(y[s])
        px = np.int64(x[s])
        nc = 0
        for o in range(26):
            vz = pz + NEIGHBOUR_OFFSETS[o, 0]
            vy = py + NEIGHBOUR_OFFSETS[o, 1]
            vx = px + NEIGHBOUR_OFFSETS[o, 2]
            if _free(occ, wall, vz, vy, vx):
                cand[nc] = (vz * Y + vy) * X + vx
                nc += 1
        if nc == 0:
            continue
        u = uniform(counter_key(kstep, cell_id[s]), 0)
        j = min(np.int64(u * nc), nc - 1)
        v = cand[j]
        out[k] = v
        vz = v // (Y * X)
        r = v - vz * (Y * X)
        occ[vz, r // X, r % X] = -1  # temporary claim
    for k in range(K):
        v = out[k]
        if v >= 0:
            vz = v // (Y * X)
            r = v - vz * (Y * X)
            occ[vz, r // X, r % X] = 0
    return out


@njit(cache=True)
def count_contacts(z, y, x, alive, occ, type_code, target_type, out):
    """out[i] = number of alive 26-neighbours of type ``target_type``.

    Dead slots get 0.  ``out`` is any integer array of length N; it is also
    returned.  Computed from the targets' side: each alive target adds one to
    the occupant of each of its 26 neighbour voxels (the neighbourhood is
    symmetric and a cell fills one voxel, so the counts are the same as
    counting around every cell), which visits 26 voxels per target instead
    of per cell.  Serial (see module docstring on small parallel regions).
    """
    Z, Y, X = occ.shape
    N = alive.shape[0]
    for s in range(N):
        out[s] = 0
    for t in range(N):
        if alive[t] == 0 or type_code[t] != target_type:
            continue
        pz = np.int64(z[t])
        py = np.int64(y[t])
        px = np.int64(x[t])
        for o in range(26):
            vz = pz + NEIGHBOUR_OFFSETS[o, 0]
            vy = py + NEIGHBOUR_OFFSETS[o, 1]
            vx = px + NEIGHBOUR_OFFSETS[o, 2]
            if vz < 0 or vy < 0 or vx < 0 or vz >= Z or vy >= Y or vx >= X:
                continue
            s = occ[vz, vy, vx] - 1
            if s >= 0 and alive[s] != 0:
                out[s] += 1
    return out
