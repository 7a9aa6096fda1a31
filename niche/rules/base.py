"""Hook points the engine calls; subclass :class:`Rules` to plug in biology."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..model import NicheModel

__all__ = ["Rules"]


class Rules:
    """Base class of a rule set. Every hook is optional.

    Hooks receive the model and change it only through its arrays (rates, state bits,
    credits) and through ``model.changes`` (births, deaths, differentiation, fusion), which
    the engine applies in one batch after each decision step.
    """

    def initialise(self, model: "NicheModel") -> None:
        """Seed the initial cells (queue births in ``model.changes``)."""

    def forcing(self, model: "NicheModel", t_days: float) -> None:
        """Update systemic inputs (vessel concentrations, drives) at time ``t_days``."""

    def set_rates(self, model: "NicheModel") -> None:
        """Fill per-cell secretion/uptake/vmax rates and motility parameters."""

    def decide(self, model: "NicheModel", dt_days: float) -> None:
        """Sense local fields and contacts; queue state changes, divisions, deaths."""

    def remodel(self, model: "NicheModel", dt_days: float) -> None:
        """Add to the resorption/formation ``credit`` of bone cells (um^3)."""
