"""The replay subcommands of the ``niche`` command line (added by :mod:`niche.cli`).

``niche render``, ``niche view``, ``niche serve`` and ``niche export-xdmf``. A bad,
truncated or unreadable run file, a bad option, a missing graphics library or a missing
``viz`` extra ends with one line, ``niche: error: ...``, and exit status 2 (never a
traceback). This module imports nothing beyond the standard library, so the subcommands and
their ``--help`` exist in a base install; render, view and serve need the ``viz`` extra
(pyvista, VTK, imageio, trame), export-xdmf does not (:mod:`niche.io.xdmf`).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

__all__ = ["add_subcommands", "run_command"]

_CAMERAS = ("iso", "front", "side", "top")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {text!r}: 16..8192 pixels per side")
    return w, h


def _slices(text: str):
    if text in ("walls", "center"):
        return text
    try:
        z, y, x = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"slices {text!r}: 'walls', 'center' or Z,Y,X indices")
    return z, y, x


def _frames(text: str) -> slice:
    parts = text.split(":")
    try:
        if len(parts) > 3:
            raise ValueError
        return slice(*(int(p) if p else None for p in parts)) if len(parts) > 1 \
            else slice(int(text), int(text) + 1 or None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"frames {text!r}: expected START:STOP[:STEP]")


def _scene_args(p: argparse.ArgumentParser, size: str = "1280x720") -> None:
    p.add_argument("run", help="run file (.h5)")
    p.add_argument("--field", help="field shown (default TNF); 'none' for no field")
    p.add_argument("--field-mode", choices=("slices", "volume"), default="slices",
                   help="orthogonal voxel slices (default) or volume rendering")
    p.add_argument("--slices", type=_slices, default="walls", metavar="walls|center|Z,Y,X",
                   help="where the three slices are (default: floor and back walls)")
    p.add_argument("--camera", choices=_CAMERAS, default="iso", help="camera preset")
    p.add_argument("--size", type=_size, default=_size(size), metavar="WxH",
                   help=f"image size in pixels (default {size})")
    p.add_argument("--types", help="comma-separated cell types shown (default all), "
                                   "e.g. osteoclast,osteoblast")
    p.add_argument("--clim", type=float, nargs=2, metavar=("LO", "HI"),
                   help="fixed field colour range (default 0 to the largest value seen)")
    p.add_argument("--no-charts", action="store_true", help="no readout curves beside the view")
    p.add_argument("--antialias", action=argparse.BooleanOptionalAction, default=None,
                   help="8x multisampling (default: on for render, off for serve)")


def add_subcommands(sub) -> None:
    """Add render, view, serve and export-xdmf to the ``niche`` subparsers."""
    r = sub.add_parser("render", help="render a frame to a PNG and/or a movie, off screen")
    _scene_args(r)
    r.add_argument("--frame", type=int, default=-1, help="frame of the picture (default last)")
    r.add_argument("--out", "-o", help="picture file (.png); default <run>_f<K>.png "
                                       "unless --movie is given")
    r.add_argument("--movie", help="movie file (.mp4 or .gif) of the frames in --frames")
    r.add_argument("--frames", type=_frames, default=slice(None), metavar="START:STOP[:STEP]",
                   help="frames of the movie (default all)")
    r.add_argument("--fps", type=float, default=6.0, help="movie frames per second (default 6)")
    r.set_defaults(func=run_command, viz="render")
    v = sub.add_parser("view", help="replay a run in an interactive 3D window")
    _scene_args(v, size="1600x900")
    v.add_argument("--fps", type=float, default=4.0, help="frames per second when playing")
    v.set_defaults(func=run_command, viz="view")
    s = sub.add_parser("serve", help="replay a run in a web browser (trame)")
    _scene_args(s)
    s.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--fps", type=float, default=4.0, help="frames per second when playing")
    s.set_defaults(func=run_command, viz="serve")
    x = sub.add_parser("export-xdmf", help="write the XDMF sidecar (ParaView, VisIt) of a run")
    x.add_argument("run", help="run file (.h5)")
    x.add_argument("--out", "-o", help="sidecar path (default <run>.xdmf)")
    x.add_argument("--link", action="store_true",
                   help="point into the run file instead of writing a gzip companion "
                        "(only for readers with HDF5 >= 2.0 and gzip/uncompressed runs)")
    x.set_defaults(func=run_command, viz="export-xdmf")


def _options(a, run):
    from .render import SceneOptions

    field = a.field
    mode = a.field_mode
    if field is not None and field.lower() == "none":
        field, mode = None, "none"
    elif field is not None and field not in run.field_names:
        raise KeyError(f"no field {field!r} in {run.path.name} "
                       f"(has {', '.join(run.field_names)})")
    types = None if a.types is None else [t.strip() for t in a.types.split(",") if t.strip()]
    return SceneOptions(field=field, field_mode=mode, slices=a.slices, camera=a.camera,
                        size=a.size, types=types, charts=not a.no_charts,
                        clim=tuple(a.clim) if a.clim else None,
                        antialias=a.antialias if a.antialias is not None else a.viz != "serve")


def _render(a, run) -> None:
    from .render import render_frame, render_movie

    opts = _options(a, run)
    if a.movie:
        stored = set(int(k) for k in run.bone_frames)  # all at output level full
        frames = [k for k in range(run.n_frames)[a.frames] if k in stored]
        stats = render_movie(run, a.movie, frames=frames, opts=opts, fps=a.fps)
        print(f"wrote {stats.path} ({stats.frames} frames, "
              f"{stats.seconds_per_frame:.2f} s/frame)")
    if a.out or not a.movie:
        k = run.n_frames + a.frame if a.frame < 0 else a.frame
        if not 0 <= k < run.n_frames:
            raise IndexError(f"frame {a.frame} out of range (file has {run.n_frames} frames)")
        out = Path(a.out) if a.out else run.path.with_name(f"{run.path.stem}_f{k}.png")
        render_frame(run, out, frame=k, opts=opts)
        print(f"wrote {out} (frame {k}, day {float(run.times[k]):g})")


def _dispatch(a) -> None:
    from niche.io import open_run

    if a.viz == "export-xdmf":
        from niche.io.xdmf import write_xdmf, xdmf_paths

        xml = write_xdmf(a.run, a.out, link=a.link)
        extra = "" if a.link else f" and {xdmf_paths(xml)[1].name}"
        print(f"wrote {xml}{extra}")
        return
    with open_run(a.run) as run:
        if run.n_frames == 0:
            from niche.io import RunFileError

            raise RunFileError(f"{str(run.path)!r} has no complete frame to show")
        if a.viz == "render":
            _render(a, run)
        elif a.viz == "view":
            from .desktop import view

            view(run, _options(a, run), fps=a.fps)
        else:
            from .web import serve

            serve(run, host=a.host, port=a.port, opts=_options(a, run), fps=a.fps)


#: modules of the viz extra each subcommand needs (import names; export-xdmf needs none)
_EXTRA_MODULES = {"render": ("pyvista", "vtk"), "view": ("pyvista", "vtk"),
                  "serve": ("pyvista", "vtk", "trame", "trame_vtk", "trame_vuetify")}
_EXTRA_NAMES = {m.split(".")[0] for mods in _EXTRA_MODULES.values() for m in mods} | {
    "imageio", "imageio_ffmpeg", "vtkmodules"}


def _extra_error(cmd: str, module: str) -> str:
    return (f"niche {cmd} (3D replay) needs the viz extra ({module.split('.')[0]} is not "
            f'installed): pip install "niche[viz]"')


def _missing_module(a) -> str | None:
    """The first module of the viz extra that ``a``'s subcommand needs and cannot find."""
    mods = _EXTRA_MODULES.get(a.viz, ())
    if a.viz == "render" and getattr(a, "movie", None):
        mods += ("imageio",)
    for mod in mods:
        try:
            if importlib.util.find_spec(mod) is None:
                return mod
        except (ImportError, ValueError):
            return mod
    return None


def run_command(a) -> int:
    """Run one replay subcommand; user errors become one line and status 2."""
    from niche.io import RunFileError

    from .offscreen import OffscreenError

    missing = _missing_module(a)
    if missing:
        print(f"niche: error: {_extra_error(a.viz, missing)}", file=sys.stderr)
        return 2
    try:
        _dispatch(a)
    except ImportError as e:
        if (e.name or "").split(".")[0] not in _EXTRA_NAMES:
            raise  # not the extra: a bug, show it
        if isinstance(e, ModuleNotFoundError):  # e.g. imageio for a movie, found late
            print(f"niche: error: {_extra_error(a.viz, e.name)}", file=sys.stderr)
            return 2
        # installed but broken, e.g. a VTK wheel without its system libraries
        print(f"niche: error: niche {a.viz}: the viz extra is installed but cannot be loaded "
              f'({e}); reinstall it: pip install --force-reinstall "niche[viz]"',
              file=sys.stderr)
        return 2
    except (RunFileError, OffscreenError, KeyError, IndexError, ValueError, RuntimeError) as e:
        msg = e.args[0] if e.args else str(e)
        print(f"niche: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:
        if getattr(e, "filename", None):  # e.g. an output folder that cannot be written
            print(f"niche: error: {e.filename}: {e.strerror}", file=sys.stderr)
        else:  # h5py: a chunk of the run file cannot be read back
            print(f"niche: error: {a.run}: cannot read the run file, it may be damaged ({e})",
                  file=sys.stderr)
        return 2
    return 0
