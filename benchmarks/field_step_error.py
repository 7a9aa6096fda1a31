"""Time-step error of the field solver with the model's own cells, against a small step.

    python benchmarks/field_step_error.py [--scenario ovx_il2] [--size 48] [--warmup-days 3]
                                          [--window-min 120] [--ref-step-min 0.5]
                                          [--steps 15 30 60]

Runs the scenario for ``--warmup-days`` (its shipped steps), then freezes the cells (their
voxels and secretion / uptake rates) and integrates the fields over ``--window-min`` from
that state, once with the reference step and once per step in ``--steps``, each step as
the model takes it (cell reactions at the cells' voxels, then decay and diffusion). For
every field it prints, over the marrow voxels, the RMS error relative to the reference
(RMS of the difference / RMS of the reference), the relative error of the marrow mean, and
the RMS difference between the first two steps of ``--steps``. Issue 18 asked for this
before enlarging the field step; docs/benchmarks.md has the result. Not part of the suite.
"""
from __future__ import annotations

import argparse
import copy

import numpy as np


def integrate(solver, cells, dt_min: float, window_min: float) -> np.ndarray:
    """Fields after ``window_min`` of steps of ``dt_min`` from ``solver``'s state (float64)."""
    f = copy.deepcopy(solver)
    f.dt_s = dt_min * 60.0
    slots = cells.alive_slots()
    for _ in range(int(round(window_min / dt_min))):
        f.react_cells(cells.z, cells.y, cells.x, cells.secretion, cells.uptake, cells.vmax,
                      slots=slots)
        f.step(1)
    return f.c.astype(np.float64)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="ovx_il2")
    ap.add_argument("--size", type=int, default=48, help="voxels per edge")
    ap.add_argument("--warmup-days", type=float, default=3.0)
    ap.add_argument("--window-min", type=float, default=120.0)
    ap.add_argument("--ref-step-min", type=float, default=0.5)
    ap.add_argument("--steps", type=float, nargs="+", default=[15.0, 30.0, 60.0])
    a = ap.parse_args(argv)
    import niche

    res = niche.run(a.scenario, None, days=a.warmup_days, write=False,
                    overrides={"domain.shape_voxels": [a.size] * 3})
    m = res.model
    marrow = m.lattice.bone == 0
    ref = integrate(m.fields, m.cells, a.ref_step_min, a.window_min)
    got = {dt: integrate(m.fields, m.cells, dt, a.window_min) for dt in a.steps}
    first, second = a.steps[0], a.steps[1] if len(a.steps) > 1 else a.steps[0]
    print(f"{a.scenario} {a.size}^3 after {a.warmup_days:g} d; {a.window_min:g} min with "
          f"frozen cells; reference step {a.ref_step_min:g} min")
    print("| field | " + " | ".join(f"RMS err {dt:g} min" for dt in a.steps) + " | "
          + " | ".join(f"mean err {dt:g} min" for dt in a.steps)
          + f" | RMS {second:g} vs {first:g} |")
    print("|---" * (2 * len(a.steps) + 2) + "|")
    for i, name in enumerate(m.field_names):
        r = ref[i][marrow]
        rms_r = max(float(np.sqrt(np.mean(r ** 2))), 1e-300)
        rms = [float(np.sqrt(np.mean((got[dt][i][marrow] - r) ** 2))) / rms_r
               for dt in a.steps]
        mean = [float(got[dt][i][marrow].mean() / max(r.mean(), 1e-300) - 1.0)
                for dt in a.steps]
        x0, x1 = got[first][i][marrow], got[second][i][marrow]
        d = float(np.sqrt(np.mean((x1 - x0) ** 2))) / max(float(np.sqrt(np.mean(x0 ** 2))),
                                                          1e-300)
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in rms) + " | "
              + " | ".join(f"{v:+.3f}" for v in mean) + f" | {d:.3f} |")


if __name__ == "__main__":
    main()
