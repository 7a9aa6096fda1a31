"""Would per-geometry pivot tables speed up the field solver's line solves?

    python benchmarks/thomas_pivots.py [--size 48] [--substrates 12] [--repeat 20]

The forward elimination of a Thomas solve computes one pivot ``m = 1 / (1 + up + lo (1 -
e_prev))`` per voxel; the pivots depend only on the geometry and ``r = D dt / dx^2``, so
they could be computed once per geometry and read from a table (issue 18 lists this
lever). This times the forward pass as the solver runs it (vectorised across lines, float64
recursion on float32 data, division per voxel) against the same pass reading the pivots
from a float64 table, on random link flags, and prints both (ms per sweep of all
substrates) and their ratio. Not part of the suite; docs/benchmarks.md has the result.
"""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def forward_divide(P, F, E, gb, eb, r):
    n0, n1 = P.shape
    for p in range(n1):
        gb[p] = 0.0
        eb[p] = 0.0
    for i in range(n0):
        for p in range(n1):
            fp = F[i, p]
            lo = r if fp >= 2 else 0.0
            up = r if (fp == 1) | (fp == 3) else 0.0
            m = 1.0 / (1.0 + up + lo * (1.0 - eb[p]))
            e = up * m
            g = (np.float64(P[i, p]) + lo * gb[p]) * m
            E[i, p] = e
            eb[p] = e
            P[i, p] = g
            gb[p] = g


@numba.njit(cache=True, error_model="numpy")
def forward_table(P, F, E, gb, M, r):
    n0, n1 = P.shape
    for p in range(n1):
        gb[p] = 0.0
    for i in range(n0):
        for p in range(n1):
            fp = F[i, p]
            lo = r if fp >= 2 else 0.0
            up = r if (fp == 1) | (fp == 3) else 0.0
            m = M[i, p]
            E[i, p] = up * m
            g = (np.float64(P[i, p]) + lo * gb[p]) * m
            P[i, p] = g
            gb[p] = g


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--substrates", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args(argv)
    n, S = a.size, a.substrates
    rng = np.random.default_rng(0)
    P = rng.random((S, n, n * n)).astype(np.float32)
    F = rng.integers(0, 4, (n, n * n)).astype(np.uint8)
    E = np.empty((n, n * n))
    gb, eb = np.empty(n * n), np.empty(n * n)
    tables = rng.random((8, n, n * n))  # one per distinct r (8 in the shipped scenarios)

    def divide():
        for s in range(S):
            forward_divide(P[s], F, E, gb, eb, 90.0)

    def table():
        for s in range(S):
            forward_table(P[s], F, E, gb, tables[s % 8], 90.0)

    out = {}
    for name, f in (("divide", divide), ("table", table)):
        f()
        t = time.perf_counter()
        for _ in range(a.repeat):
            f()
        out[name] = (time.perf_counter() - t) / a.repeat * 1e3
    print(f"{n}^3, {S} substrates, one thread: forward sweep {out['divide']:.3f} ms computing "
          f"pivots, {out['table']:.3f} ms reading them from tables "
          f"({out['divide'] / out['table']:.2f}x)")


if __name__ == "__main__":
    main()
