"""3D replay of niche run files: pictures, movies, a desktop and a browser viewer, XDMF.

Modules (pyvista/VTK are imported only by the ones that draw)::

    viz.scene      ReplayScene: bone isosurface, cells, a cytokine field, readout curves
    viz.render     render_frame / render_movie off screen (SceneOptions)
    viz.desktop    niche view: interactive window with slider, play, field, type toggles
    viz.web        niche serve: the same in a browser (trame, server-side rendering)
    viz.xdmf       the XDMF sidecar for ParaView / VisIt
    viz.offscreen  EGL / OSMesa set-up for machines without a display
    viz.style      colours, sizes and camera presets
    viz.synthetic  synthetic run files of any size (benchmarks, demos)

Command line: ``niche render``, ``niche view``, ``niche serve``, ``niche export-xdmf``
(see docs/viewer.md).
"""

__all__ = ["SceneOptions", "render_frame", "render_movie", "write_xdmf"]


def __getattr__(name):  # lazy: importing viz does not import VTK
    if name in ("render_frame", "render_movie", "SceneOptions"):
        from . import render

        return getattr(render, name)
    if name == "write_xdmf":
        from .xdmf import write_xdmf

        return write_xdmf
    raise AttributeError(f"module 'viz' has no attribute {name!r}")
