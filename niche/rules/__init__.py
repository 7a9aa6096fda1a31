"""Cell rules: what each cell type senses, decides and does.

:class:`Rules` defines the hook points the engine calls; :class:`GenericRules` is the
parameter-driven default (placement, influx at vessels, lifespan, secretion and uptake,
motility, resorption and formation) that the biology builds on.
"""
from .base import Rules
from .generic import GenericRules

__all__ = ["Rules", "GenericRules"]
