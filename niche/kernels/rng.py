"""Counter-based random numbers for numba kernels.

Every random number is a pure function of a tuple of integers::

    (seed, stream, step, counter, draw_index)  ->  uint64  ->  float64 in [0, 1)

so results never depend on the order in which cells are processed, on the
number of threads, or on how many numbers another cell consumed.  There is no
hidden generator state.

Construction
------------
``mix64`` is the 64-bit finaliser of SplitMix64 (Stafford's "variant 13"
constants), a bijection on uint64 with full avalanche.  Keys are built by
absorbing one integer at a time::

    k = mix64(seed + GOLDEN)
    k = mix64(k ^ mix64(stream + GOLDEN))     # step_key(seed, stream, step)
    k = mix64(k ^ mix64(step   + GOLDEN))
    c = mix64(k ^ counter)                    # counter_key(k, counter)

and the ``j``-th draw of a counter key ``c`` is the ``j+1``-th output of a
SplitMix64 sequence started at ``c``::

    rand_u64(c, j) = mix64(c + (j + 1) * GOLDEN)

The typical use inside a kernel is one ``step_key`` per kernel call, one
``counter_key`` per cell (counter = the cell's stable ``cell_id``), then a few
draws with small fixed draw indices.  Each kernel uses its own ``stream`` tag
(constants ``STREAM_*`` below) so that different kernels never reuse numbers.

All integer arguments are reinterpreted as uint64 (two's complement wrap), so
seeds and counters may be any int64 value.

Floating point: ``uniform`` returns ``(u64 >> 11) * 2**-53`` which is exact;
``unit_vector`` uses only +, *, sqrt (polynomial sine/cosine), so it does not
depend on the platform's libm; ``normal`` calls libm ``log``/``cos``.  Nothing
here is compiled with ``fastmath`` (no reassociation or FMA contraction), so
results are bit-reproducible across processes and thread counts on a given
machine and numba build, and very likely across x86-64 machines.

From Python, pass keys (uint64 values above 2**63 - 1) as ``np.uint64``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "GOLDEN",
    "STREAM_MOVE",
    "STREAM_ORDER",
    "STREAM_DIVIDE",
    "STREAM_PLACE",
    "STREAM_USER",
    "mix64",
    "step_key",
    "counter_key",
    "rand_u64",
    "uniform",
    "normal",
    "unit_vector",
]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_S32 = np.uint64(32)
_LO32 = np.uint64(0xFFFFFFFF)
_TWO_PI = 2.0 * math.pi

# Stream tags: one per consumer so that kernels never share random numbers.
STREAM_MOVE = 1
STREAM_ORDER = 2
STREAM_DIVIDE = 3
STREAM_PLACE = 4
#: first tag free for other modules (biology, initialisation, ...)
STREAM_USER = 16


@njit(cache=True, inline="always")
def mix64(x):
    """SplitMix64 finaliser: a bijective avalanche mix of a uint64."""
    z = np.uint64(x)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def step_key(seed, stream, step):
    """Key for one (seed, stream, step) triple; compute once per kernel call."""
    k = mix64(np.uint64(seed) + GOLDEN)
    k = mix64(k ^ mix64(np.uint64(stream) + GOLDEN))
    k = mix64(k ^ mix64(np.uint64(step) + GOLDEN))
    return k


@njit(cache=True, inline="always")
def counter_key(key, counter):
    """Key for one counter (usually a cell_id) under a step key.

    One mix suffices: every draw applies another full mix to key + j*GOLDEN.
    """
    return mix64(np.uint64(key) ^ np.uint64(counter))


@njit(cache=True, inline="always")
def rand_u64(ckey, j):
    """The ``j``-th (j >= 0) raw 64-bit draw of counter key ``ckey``."""
    return mix64(np.uint64(ckey) + np.uint64(j + 1) * GOLDEN)


@njit(cache=True, inline="always")
def uniform(ckey, j):
    """Uniform float64 in [0, 1) with 53 random bits (draw index ``j``)."""
    return np.float64(rand_u64(ckey, j) >> _S11) * _INV53


@njit(cache=True, inline="always")
def normal(ckey, j):
    """Standard normal by Box-Muller; consumes draw indices ``j`` and ``j+1``."""
    u1 = 1.0 - uniform(ckey, j)  # in (0, 1]
    u2 = uniform(ckey, j + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


# Taylor coefficients for sin and cos on [-pi/4, pi/4]; truncation error
# < 2e-9 (sin, degree 9) and < 2e-10 (cos, degree 10)
_S1 = -1.0 / 6.0
_S2 = 1.0 / 120.0
_S3 = -1.0 / 5040.0
_S4 = 1.0 / 362880.0
_C1 = -1.0 / 2.0
_C2 = 1.0 / 24.0
_C3 = -1.0 / 720.0
_C4 = 1.0 / 40320.0
_C5 = -1.0 / 3628800.0
_HALF_PI = 0.5 * math.pi
_INV30 = 1.0 / 1073741824.0  # 2**-30
_INV32 = 1.0 / 4294967296.0  # 2**-32
_LO30 = np.uint64(0x3FFFFFFF)
_HALF_Q = np.uint64(1 << 29)


@njit(cache=True, inline="always")
def _sincos_octant(t):
    """(sin, cos) of t in [-pi/4, pi/4], Estrin-evaluated polynomials."""
    t2 = t * t
    t4 = t2 * t2
    sn = t * ((1.0 + _S1 * t2) + t4 * ((_S2 + _S3 * t2) + t4 * _S4))
    cs = (1.0 + _C1 * t2) + t4 * ((_C2 + _C3 * t2)
                                  + t4 * (_C4 + _C5 * t2))
    return sn, cs


@njit(cache=True, inline="always")
def unit_vector(ckey, j):
    """Uniform random unit vector (vz, vy, vx); consumes exactly draw ``j``.

    Archimedes: vz uniform in (-1, 1) from the high 32 bits, azimuth uniform
    from the low 32 bits (quadrant + angle in [-pi/4, pi/4)).  Sine and
    cosine are short polynomials (abs. error < 2e-9, far below the float32
    resolution of stored directions), so the function is branch-free and
    does not depend on the platform libm: only +, *, sqrt, all correctly
    rounded IEEE operations.
    """
    r = rand_u64(ckey, j)
    vz = (np.float64(r >> _S32) + 0.5) * (2.0 * _INV32) - 1.0
    v = ((r & _LO32) + _HALF_Q) & _LO32
    quad = np.int64(v >> _S30)
    t = (np.float64(np.int64(v & _LO30) - np.int64(_HALF_Q)) + 0.5) * (
        _INV30 * _HALF_PI)
    sn, cs = _sincos_octant(t)
    # rotate (cos t, sin t) by quad quarter turns: quad 0 (c, s), 1 (-s, c),
    # 2 (-c, -s), 3 (s, -c); written with two-way selects and sign factors
    # (a 4-way select compiles to a jump table, mispredicted 3/4 of the time)
    odd = (quad & 1) == 1
    a = sn if odd else cs
    b = cs if odd else sn
    c = a * np.float64(1 - 2 * (((quad + 1) >> 1) & 1))
    s = b * np.float64(1 - 2 * (quad >> 1))
    rho = math.sqrt(1.0 - vz * vz)
    return vz, rho * s, rho * c
