"""The rule-set protocol: every hook the engine calls, declared with its contract.

A rule set changes the model only through declared channels:

- ``model.changes`` (births, deaths, differentiation, fusion; applied by the engine in one
  batch after ``initialise`` and after each ``decide``);
- the per-cell arrays it owns by contract: ``cells.state`` bits, the per-cell rates
  ``cells.secretion/uptake/vmax`` (``set_rates``) and ``cells.committed_days``;
- the :class:`~niche.core.motility.Motility` handed to ``adjust_motility``
  (:meth:`~niche.core.motility.Motility.hold`, :meth:`~niche.core.motility.Motility.follow`);
- values it returns: the bone work of ``remodel`` and the readouts of ``readouts``;
- the vessel (Dirichlet) values of the fields in ``forcing``
  (:meth:`~niche.core.fields.FieldSolver.set_dirichlet_value`).

The engine decides the cadence: ``forcing`` on every field step (and once at the start),
``decide``/``set_rates``/``adjust_motility`` on every decision step, ``remodel`` on every
bone step, ``readouts`` on every frame.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .model import Model
    from .motility import Motility
    from .remodel import BoneWork

__all__ = ["Rules"]


class Rules:
    """Base class of a rule set. Every hook has a no-op default."""

    def initialise(self, model: "Model") -> None:
        """Seed the initial cells (queue births in ``model.changes``)."""

    def placed(self, model: "Model") -> None:
        """After the initial cells are on the lattice (e.g. stagger their counters)."""

    def forcing(self, model: "Model", t_days: float) -> None:
        """Update systemic inputs (vessel concentrations, drives) at time ``t_days``;
        called on every field step."""

    def decide(self, model: "Model", dt_days: float) -> None:
        """Sense local fields and contacts; queue state changes, divisions, deaths."""

    def set_rates(self, model: "Model") -> None:
        """Fill per-cell secretion/uptake/vmax rates (after the decisions are applied)."""

    def adjust_motility(self, model: "Model", motility: "Motility") -> None:
        """Change this interval's movement (hold cells, point them up another gradient)."""

    def remodel(self, model: "Model", dt_days: float) -> "BoneWork | None":
        """The bone each osteoclast resorbs and each osteoblast forms in ``dt_days``."""
        return None

    def readouts(self, model: "Model") -> dict[str, float]:
        """Readouts of this rule set for the current frame (names the engine does not use)."""
        return {}
