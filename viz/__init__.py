"""3D replay of niche run files: pictures, movies, a desktop and a browser viewer.

Installed as ``niche.viz`` from the source folder ``viz/``. Drawing needs the ``viz`` extra
(``pip install "niche[viz]"``: pyvista, VTK, imageio, trame); importing this package and
its command-line module does not. Modules (pyvista/VTK are imported only by the ones that
draw)::

    niche.viz.scene      ReplayScene: bone isosurface, cells, a cytokine field, readout curves
    niche.viz.render     render_frame / render_movie off screen (SceneOptions)
    niche.viz.desktop    niche view: interactive window with slider, play, field, type toggles
    niche.viz.web        niche serve: the same in a browser (trame, server-side rendering)
    niche.viz.offscreen  EGL / OSMesa set-up for machines without a display
    niche.viz.style      colours, sizes and camera presets
    niche.viz.synthetic  synthetic run files of any size (benchmarks, demos)

The XDMF sidecar for ParaView / VisIt is :mod:`niche.io.xdmf` (h5py only, part of the base
install); ``write_xdmf`` is re-exported here.

Command line: ``niche render``, ``niche view``, ``niche serve``, ``niche export-xdmf``
(see docs/viewer.md).
"""

__all__ = ["SceneOptions", "render_frame", "render_movie", "write_xdmf"]


def __getattr__(name):  # lazy: importing niche.viz does not import VTK
    if name in ("render_frame", "render_movie", "SceneOptions"):
        from . import render

        return getattr(render, name)
    if name == "write_xdmf":
        from niche.io.xdmf import write_xdmf

        return write_xdmf
    raise AttributeError(f"module 'niche.viz' has no attribute {name!r}")
