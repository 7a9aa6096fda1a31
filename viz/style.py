"""How things look: cell colours and sizes by type and state, bone colours, camera presets.

Colours are chosen so each cell type has its own hue (a test finds them in rendered
images by hue); state changes only the lightness within that hue:

=============  ==========  ===========================================================
type           colour      state shading
=============  ==========  ===========================================================
T cell         blue        regulatory (Treg) darker; TNF+ or IL-17+ effectors lighter
ILC2           green       IL-10+ or CGRP+ lighter
monocyte       orange      committed pre-osteoclast or IFN programme darker
osteoclast     magenta     resorbing darker; size grows with the number of nuclei
osteoblast     cyan        active (forming) darker, resting lighter
=============  ==========  ===========================================================

Bone is ivory, bone formed since the first frame yellow, and bone resorbed since the first
frame is drawn as a translucent red surface around the cavity it left.
"""
from __future__ import annotations

import numpy as np

from niche.core.cells import State

__all__ = [
    "BONE_RGB",
    "CAMERAS",
    "NEW_BONE_RGB",
    "RESORBED_RGB",
    "TYPE_COLORS",
    "TYPE_LABELS",
    "cell_radius_vox",
    "cell_rgb",
    "hex_rgb",
]

TYPE_LABELS = {"tcell": "T cell", "ilc2": "ILC2", "monocyte": "monocyte",
               "osteoclast": "osteoclast", "osteoblast": "osteoblast"}
TYPE_COLORS = {"tcell": "#3d6fe0", "ilc2": "#2fb344", "monocyte": "#ff8a1f",
               "osteoclast": "#d42ad4", "osteoblast": "#19c3d6"}
#: sphere radius in voxels (osteoclasts: base + per extra nucleus, capped)
_RADIUS = {"tcell": 0.35, "ilc2": 0.35, "monocyte": 0.45, "osteoclast": 0.55,
           "osteoblast": 0.45}
_OC_PER_NUCLEUS, _OC_MAX = 0.08, 1.2
BONE_RGB = "#ece3cf"
NEW_BONE_RGB = "#f5d420"
RESORBED_RGB = "#e02a2a"
BACKGROUND = "#1d2027"

#: state bits that shade a type darker (factor < 1) or lighter (> 1)
_SHADE = {
    "tcell": ((State.REGULATORY, 0.6), (State.TNF_PRODUCER | State.IL17_PRODUCER, 1.35)),
    "ilc2": ((State.IL10_PRODUCER | State.CGRP_PRODUCER, 1.35),),
    "monocyte": ((State.PRE_OSTEOCLAST | State.IFN_PROGRAM, 0.7),),
    "osteoclast": ((State.RESORBING, 0.7),),
    "osteoblast": (),
}

#: camera presets: (direction from the focal point towards the camera as (x, y, z), view-up)
CAMERAS = {
    "iso": ((1.0, -1.3, 0.9), (0.0, 0.0, 1.0)),
    "front": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "side": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "top": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
}


def hex_rgb(color: str) -> np.ndarray:
    """``"#rrggbb"`` -> float RGB in [0, 1]."""
    c = color.lstrip("#")
    return np.array([int(c[i:i + 2], 16) for i in (0, 2, 4)], float) / 255.0


def _shade(rgb: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Darken (factor < 1: towards black) or lighten (> 1: towards white), hue kept."""
    f = factor[:, None]
    dark = rgb[None, :] * np.minimum(f, 1.0)
    return np.where(f > 1.0, dark + (1.0 - dark) * np.minimum(f - 1.0, 0.6), dark)


def cell_rgb(type_name: str, state: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 colours of cells of one type given their state bits."""
    state = np.asarray(state, np.uint32)
    factor = np.ones(state.size)
    for bits, f in _SHADE.get(type_name, ()):
        factor = np.where((state & np.uint32(bits)) != 0, f, factor)
    return np.round(_shade(hex_rgb(TYPE_COLORS[type_name]), factor) * 255).astype(np.uint8)


def cell_radius_vox(type_name: str, nuclei: np.ndarray) -> np.ndarray:
    """Sphere radius (voxels) of cells of one type; osteoclasts grow with their nuclei."""
    nuclei = np.asarray(nuclei, np.float32)
    r = np.full(nuclei.size, _RADIUS[type_name], np.float32)
    if type_name == "osteoclast":
        r = np.minimum(r + _OC_PER_NUCLEUS * np.maximum(nuclei - 1, 0), _OC_MAX)
    return r

