"""Osteoimmune biology: the five cell types' rules, host factors, perturbations, readouts.

One module per cell type (:mod:`.tcell`, :mod:`.ilc2`, :mod:`.monocyte`,
:mod:`.osteoclast`, :mod:`.osteoblast`); every parameter in :mod:`.params` (generated
into ``docs/parameters.md``); :class:`OsteoimmuneRules` ties them to the engine.
"""
from .rules import OsteoimmuneRules

__all__ = ["OsteoimmuneRules"]
