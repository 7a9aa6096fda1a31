"""Bone remodelling, morphometry and run-file frame writes."""
from __future__ import annotations

import numpy as np
import pytest

from niche.kernels import bone as bone_k
from niche.core.lattice import generate_bone
from niche.core.morphometry import trabecular_morphometry

from .conftest import record, sizes

N = sizes(100, 24)


@pytest.fixture(scope="module")
def bone():
    return generate_bone((N, N, N), 10.0, 0.15, 50.0, np.random.default_rng(0))


def test_resorb_form(benchmark, bone):
    """1000 osteoclasts resorbing and 1000 osteoblasts forming one voxel each."""
    rng = np.random.default_rng(1)
    n = sizes(1000, 50)
    b = bone.copy()
    vessel = np.zeros_like(b)
    marrow = np.flatnonzero(b.ravel() == 0)
    flat = np.sort(rng.choice(marrow, 2 * n, replace=False))
    z, y, x = (a.astype(np.int32) for a in np.unravel_index(flat, b.shape))
    occ = np.zeros(b.shape, np.int32)
    occ.ravel()[flat] = np.arange(1, 2 * n + 1, dtype=np.int32)
    oc, ob = np.arange(n), np.arange(n, 2 * n)
    radius = np.full(2 * n, 2, np.int64)
    out = np.empty(4 * n, np.int64)
    emb = np.empty(n, np.int64)

    def go():
        credit = np.full(2 * n, 1000.0, np.float32)
        wall = b.copy()
        bb = b.copy()
        bone_k.resorb(bb, vessel, oc, z, y, x, credit, radius, np.float32(1000.0), out)
        bone_k.form(bb, wall, occ, ob, z, y, x, credit, np.float32(1000.0),
                    np.int64(bone_k.EMBED_FACES), out, emb)

    go()
    record(benchmark, "remodel", 2 * n, "cell-voxel event", N**3)
    benchmark(go)


def test_morphometry(benchmark, bone):
    record(benchmark, "morphometry", bone.size, "voxel", N**3)
    benchmark(trabecular_morphometry, bone, 10.0)


@pytest.mark.parametrize("codec", ["lz4", "gzip", "none"])
def test_frame_write(benchmark, tmp_path, codec):
    """One reference-size frame (8 float32 fields, bone, 65k agents) written and flushed."""
    import h5py

    from niche.io.writer import _compression

    rng = np.random.default_rng(0)
    # smooth-ish fields like a real run (noise compresses badly and is not representative)
    base = np.cumsum(rng.random((8, N, N, N), np.float32), axis=3)
    fields = (base / base.max()).astype(np.float32)
    comp = _compression(codec)
    path = tmp_path / f"f_{codec}.h5"
    f = h5py.File(path, "w")
    dss = [f.create_dataset(f"f{i}", shape=(0, N, N, N), maxshape=(None, N, N, N),
                            dtype="f4", chunks=(1, N, N, N), **comp) for i in range(8)]
    k = [0]

    def write():
        for i, ds in enumerate(dss):
            ds.resize((k[0] + 1, N, N, N))
            ds[k[0]] = fields[i]
        f.flush()
        k[0] += 1

    write()
    benchmark.pedantic(write, rounds=5, iterations=1)
    f.close()
    frames = k[0]
    nbytes = path.stat().st_size / frames
    record(benchmark, "frame_write", fields.nbytes, "byte", N**3, codec=codec,
           bytes_per_frame=nbytes, raw_bytes_per_frame=fields.nbytes)
