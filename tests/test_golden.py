"""Golden runs: a tiny in-vivo run and a tiny culture run, every dataset hashed.

The hashes in ``tests/golden.json`` were recorded from the engine as it stood; any change
to a simulated number (a random draw reordered, a kernel changed, a readout redefined)
fails this test and names the datasets that moved. A change that is *meant* to alter
results updates the file (``python tests/test_golden.py --write``) and says so in its
commit message.

What is hashed: for every dataset its dtype, shape and bytes (SHA-256); and the root
attributes that the scenario and seed decide (not the versions of niche or its
libraries). Hashes are of float bits: they hold on one machine kind at any thread count
and in any process, as design.md asks; a CPU with other SIMD paths in numpy may differ.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

GOLDEN = Path(__file__).with_name("golden.json")

#: root attributes decided by the scenario and seed alone
_ATTRS = ("format", "format_version", "seed", "scenario_name", "scenario_toml", "shape_zyx",
          "voxel_um", "field_names", "type_names", "status")

#: the two golden runs: scenario name and overrides (tiny domains, a few frames)
CASES: dict[str, tuple[str, dict]] = {
    "invivo_ovx_il2": ("ovx_il2", {
        "domain.shape_voxels": [20, 20, 20], "run.days": 1.5, "run.frame_interval_days": 0.5,
        "run.seed": 7, "vessels.count": 2, "il2.start_day": 0.5,
        "cells.osteoclast.initial_per_mm3": 5000.0, "cells.ilc2.initial_per_mm3": 20000.0,
        "output.xdmf": False}),
    "culture_treg": ("invitro_osteoclastogenesis_treg", {
        "domain.shape_voxels": [4, 24, 24], "run.days": 5.0, "run.frame_interval_days": 1.0,
        "run.seed": 3, "invitro.monocytes_per_mm2": 5000.0, "output.xdmf": False}),
}


def file_hashes(path: Path) -> dict[str, str]:
    """SHA-256 of every dataset (dtype, shape, bytes) and of the deterministic root attrs."""
    out: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        for k in _ATTRS:
            v = f.attrs[k]
            out[f"@{k}"] = hashlib.sha256(repr(np.asarray(v).tolist()).encode()).hexdigest()

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = obj[()]
                h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
                h.update(np.ascontiguousarray(a).tobytes())
                out[name] = h.hexdigest()

        f.visititems(visit)
    return out


def run_case(name: str, folder: Path) -> dict[str, str]:
    import niche

    scenario, ov = CASES[name]
    out = folder / f"{name}.h5"
    niche.run(scenario, out, overrides=ov)
    return file_hashes(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_run(name, tmp_path):
    want = json.loads(GOLDEN.read_text())[name]
    got = run_case(name, tmp_path)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    assert not (missing or extra or changed), (
        f"golden run {name!r} changed: datasets changed {changed}, missing {missing}, "
        f"new {extra}")


if __name__ == "__main__":  # pragma: no cover - records the golden file
    import tempfile

    if "--write" not in sys.argv:
        sys.exit("usage: python tests/test_golden.py --write")
    with tempfile.TemporaryDirectory() as d:
        rec = {n: run_case(n, Path(d)) for n in sorted(CASES)}
    GOLDEN.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({sum(map(len, rec.values()))} hashes)")
