"""Choose how VTK gets an OpenGL context, before the first render window is made.

VTK wheels (>= 9.4) pick the OpenGL window class at run time from the environment variable
``VTK_DEFAULT_OPENGL_WINDOW``. Without it and without a display, VTK first tries X11 and
warns. :func:`setup_offscreen` sets it for drawing without a screen:

1. ``vtkEGLRenderWindow``: EGL from Mesa (Debian: ``libegl1 libegl-mesa0 libgl1-mesa-dri``)
   renders with llvmpipe on the CPU when there is no GPU, or on a GPU when there is one;
2. ``vtkOSMesaRenderWindow``: Mesa's off-screen library (Debian: ``libosmesa6``).

Each candidate is probed once in this process (a 1x1 window must report OpenGL support)
and the first that works is kept. A value already set by the user is respected.
"""
from __future__ import annotations

import ctypes
import os

__all__ = ["OffscreenError", "has_display", "setup_offscreen"]

_CANDIDATES = (("vtkEGLRenderWindow", ("libEGL.so.1", "libEGL.so")),
               ("vtkOSMesaRenderWindow", ("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so")))
_chosen: str | None = None


class OffscreenError(RuntimeError):
    """No way to render without a display was found."""


def has_display() -> bool:
    """True when an X11 or Wayland display is available."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _loadable(libs: tuple[str, ...]) -> bool:
    for lib in libs:
        try:
            ctypes.CDLL(lib)
            return True
        except OSError:
            continue
    return False


def _works(cls: str) -> bool:
    import vtk

    os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = cls
    win = vtk.vtkRenderWindow()
    win.SetOffScreenRendering(True)
    win.SetSize(1, 1)
    ok = win.GetClassName() == cls and bool(win.SupportsOpenGL())
    win.Finalize()
    return ok


def setup_offscreen() -> str:
    """Make VTK render without a display; returns the window class used.

    Raises:
        OffscreenError: neither EGL nor OSMesa is usable (with the packages to install).
    """
    global _chosen
    if _chosen is not None:
        return _chosen
    preset = os.environ.get("VTK_DEFAULT_OPENGL_WINDOW")
    if preset:
        _chosen = preset
        return preset
    for cls, libs in _CANDIDATES:
        if _loadable(libs) and _works(cls):
            _chosen = cls
            return cls
    os.environ.pop("VTK_DEFAULT_OPENGL_WINDOW", None)
    raise OffscreenError(
        "cannot render without a display: install EGL (Debian: libegl1 libegl-mesa0 "
        "libgl1-mesa-dri) or OSMesa (libosmesa6), or set VTK_DEFAULT_OPENGL_WINDOW")
