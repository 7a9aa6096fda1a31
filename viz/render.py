"""Off-screen pictures and movies of a run file (no display needed; see niche.viz.offscreen)."""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

__all__ = ["MOVIE_SUFFIXES", "SceneOptions", "open_scene", "render_frame", "render_movie"]

MOVIE_SUFFIXES = (".mp4", ".gif")


@dataclass
class SceneOptions:
    """What a replay shows and how (shared by ``render``, ``view`` and ``serve``).

    Attributes:
        field: field name (default TNF or the first); field_mode: slices/volume/none.
        slices: ``"walls"``, ``"center"`` or voxel indices (z, y, x).
        camera: preset name (iso, front, side, top); size: (width, height) pixels.
        types: cell types shown (default all); charts: readout curves beside the view.
        clim: fixed field colour range (default: grows with the values seen).
        antialias: 8x multisampling. Without a GPU (Mesa llvmpipe) it triples the render
            time, so the browser viewer turns it off; pictures and movies keep it.
    """

    field: str | None = None
    field_mode: str = "slices"
    slices: str | tuple[int, int, int] = "walls"
    camera: str = "iso"
    size: tuple[int, int] = (1280, 720)
    types: Sequence[str] | None = None
    charts: bool = True
    clim: tuple[float, float] | None = None
    antialias: bool = True

    def scene_kwargs(self) -> dict:
        return {"field": self.field, "field_mode": self.field_mode, "slices": self.slices,
                "camera": self.camera, "window_size": tuple(self.size),
                "visible_types": self.types, "charts": self.charts, "clim": self.clim,
                "antialias": self.antialias}


def open_scene(run, opts: SceneOptions | None = None, *, frame: int = 0, off_screen: bool = True):
    """A :class:`~niche.viz.scene.ReplayScene` of an open run file (off-screen GL set up first)."""
    from .offscreen import setup_offscreen

    if off_screen:
        setup_offscreen()
    from .scene import ReplayScene

    return ReplayScene(run, frame=frame, off_screen=off_screen,
                       **(opts or SceneOptions()).scene_kwargs())


def _partial(out: Path) -> Path:
    """Where ``out`` is written before it is renamed (keeps the suffix: it picks the format)."""
    return out.with_name(out.stem + ".partial" + out.suffix)


def render_frame(run, out: str | os.PathLike, frame: int = -1,
                 opts: SceneOptions | None = None) -> Path:
    """Render one frame of an open run file to a PNG (or any image suffix VTK writes)."""
    out = Path(out)
    scene = open_scene(run, opts, frame=frame)  # reads the frame: a damaged run fails here
    tmp = _partial(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        scene.screenshot(str(tmp))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        scene.close()
    return out


def _field_range(run, name: str | None, frames: Sequence[int]) -> tuple[float, float] | None:
    if name is None:
        return None
    stored = set(int(k) for k in run.field_frames(name))
    frames = [k for k in frames if k in stored]  # a reduced output level
    if not frames:
        return None
    hi = max(float(np.nanmax(run.field(name, k))) for k in frames)
    return (0.0, hi if hi > 0 else 1.0)


@dataclass
class MovieStats:
    path: Path
    frames: int
    seconds: float

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(1, self.frames)


def render_movie(run, out: str | os.PathLike, frames: Sequence[int] | None = None,
                 opts: SceneOptions | None = None, fps: float = 6.0) -> MovieStats:
    """Render frames of an open run file to an ``.mp4`` (H.264) or ``.gif`` movie.

    The field's colour range is fixed over the movie (0 to its largest value in the frames
    rendered) unless ``opts.clim`` is given.
    """
    import imageio.v2 as imageio

    out = Path(out)
    if out.suffix.lower() not in MOVIE_SUFFIXES:
        raise ValueError(f"movie {out.name!r}: use a {' or '.join(MOVIE_SUFFIXES)} file name")
    # default: every frame at which bone is stored (all frames at output level full)
    frames = [int(k) for k in run.bone_frames] if frames is None else list(frames)
    if not frames:
        raise ValueError("no frames to render")
    opts = opts or SceneOptions()
    w, h = (int(v) + int(v) % 2 for v in opts.size)  # H.264 wants even sizes
    opts = replace(opts, size=(w, h))
    t0 = time.perf_counter()
    scene = open_scene(run, opts, frame=frames[0])
    tmp, writer = _partial(out), None
    try:
        if opts.clim is None and scene.field is not None:
            scene.set_clim(_field_range(run, scene.field, frames))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".gif":
            writer = imageio.get_writer(tmp, mode="I", duration=1000.0 / fps, loop=0)
        else:
            writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7,
                                        macro_block_size=2, pixelformat="yuv420p")
        for i, k in enumerate(frames):
            if i:
                scene.set_frame(k)
            writer.append_data(scene.screenshot())
        done, writer = writer, None
        done.close()
        os.replace(tmp, out)
    except BaseException:
        if writer is not None:
            with suppress(Exception):  # the error that got us here is the one to report
                writer.close()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        scene.close()
    return MovieStats(out, len(frames), time.perf_counter() - t0)
