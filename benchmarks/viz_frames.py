"""Seconds per frame of the 3D replay: scrubbing and writing a movie (a script, not a test).

    python benchmarks/viz_frames.py                       # synthetic 128^3 run, 1e5 cells
    python benchmarks/viz_frames.py --run runs/a.h5       # any run file
    python benchmarks/viz_frames.py --shape 64 --cells 20000 --json out.json

Scrubbing visits the frames back and forth in a fixed random order; each visit is
``ReplayScene.set_frame`` (read the frame's bone, field and agents, isosurface, update
the actors) plus a render and read-back of the picture, split into "data" and "render",
without multisampling (as ``niche serve``). The movie is ``render_movie`` to H.264 with
8x multisampling (as ``niche render --movie``), the whole call divided by its frames. It renders
off screen like ``niche render`` (EGL or OSMesa; on a machine without a GPU that is Mesa's
llvmpipe on the CPU, so the render part depends on the cores free).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _stats(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "median": statistics.median(xs), "max": max(xs)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="run file to replay (default: write a synthetic one)")
    ap.add_argument("--shape", type=int, default=128, help="synthetic lattice edge (voxels)")
    ap.add_argument("--cells", type=int, default=100_000, help="synthetic cells per frame")
    ap.add_argument("--frames", type=int, default=8, help="synthetic frames")
    ap.add_argument("--size", default="1280x720", help="picture size WxH")
    ap.add_argument("--visits", type=int, default=12, help="scrub visits")
    ap.add_argument("--json", help="write the numbers to this JSON file")
    a = ap.parse_args(argv)

    import numpy as np

    from niche.io import open_run
    from niche.viz.offscreen import setup_offscreen
    from niche.viz.render import SceneOptions, open_scene, render_movie
    from niche.viz.synthetic import write_synthetic_run

    window = setup_offscreen()
    tmp = tempfile.TemporaryDirectory()
    path = Path(a.run) if a.run else None
    if path is None:
        t0 = time.perf_counter()
        path = write_synthetic_run(Path(tmp.name) / "synthetic.h5", shape=(a.shape,) * 3,
                                   n_cells=a.cells, frames=a.frames)
        print(f"synthetic run {a.shape}^3, {a.cells} cells, {a.frames} frames written in "
              f"{time.perf_counter() - t0:.1f} s")
    w, h = (int(v) for v in a.size.split("x"))
    scrub_opts = SceneOptions(size=(w, h), antialias=False)  # as niche serve
    movie_opts = SceneOptions(size=(w, h))  # as niche render: 8x multisampling
    out: dict = {"window": window, "size": [w, h], "machine": platform.machine(),
                 "cpus": os.cpu_count()}
    with open_run(path) as run:
        out.update(shape=list(run.shape), cells=int(run.n_agents(0)), frames=run.n_frames)
        t0 = time.perf_counter()
        scene = open_scene(run, scrub_opts, frame=0)
        scene.screenshot()
        out["open_s"] = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        order = [int(k) for k in rng.integers(0, run.n_frames, a.visits)]
        data, render, total = [], [], []
        for k in order:
            t0 = time.perf_counter()
            scene.set_frame(k, render=False)
            t1 = time.perf_counter()
            scene.plotter.render()
            scene.screenshot()
            t2 = time.perf_counter()
            data.append(t1 - t0)
            render.append(t2 - t1)
            total.append(t2 - t0)
        scene.close()
        out["scrub_s_per_frame"] = _stats(total)
        out["scrub_data_s"] = _stats(data)
        out["scrub_render_s"] = _stats(render)
        stats = render_movie(run, Path(tmp.name) / "movie.mp4", opts=movie_opts)
        out["movie_s_per_frame"] = stats.seconds_per_frame
        out["movie_frames"] = stats.frames
    s = out["scrub_s_per_frame"]
    print(f"{out['shape']} voxels, {out['cells']} cells, {w}x{h} px, {window}, "
          f"{out['cpus']} CPUs")
    print(f"open + first frame      {out['open_s']:.2f} s")
    print(f"scrub, per frame        mean {s['mean']:.3f} s  median {s['median']:.3f} s  "
          f"max {s['max']:.3f} s  (data {out['scrub_data_s']['mean']:.3f} s + render "
          f"{out['scrub_render_s']['mean']:.3f} s)")
    print(f"movie (mp4), per frame  {out['movie_s_per_frame']:.3f} s over {stats.frames} frames")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    tmp.cleanup()
    return out


if __name__ == "__main__":
    main()
