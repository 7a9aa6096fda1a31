"""Parameter-driven default rules, read from ``[cells.<type>]`` of the scenario.

- placement: ``initial_per_mm3`` cells per type at random free marrow voxels (bone cells on
  voxels touching the bone surface); T cells are regulatory with ``regulatory_fraction``;
- influx: ``influx_per_mm3_per_day`` cells enter at free voxels next to vessels (Poisson);
- egress: cells on a voxel next to a vessel leave into the blood at ``egress_per_day``;
- death: exponential lifespan ``lifespan_days``;
- secretion, linear and saturable uptake per field, constant per type;
- motility: ``speed_um_per_min``, ``persistence``, chemotaxis up ``chemotaxis_field``;
- remodelling: osteoclasts resorb ``resorption_um3_per_day_per_nucleus`` x nuclei;
  osteoblasts form ``apposition_um_per_day`` over one voxel face.
"""
from __future__ import annotations

import numpy as np

from .cells import BONE_CELL_TYPES, TYPE_NAMES, State
from .remodel import BoneWork
from .rules import Rules

__all__ = ["GenericRules", "resorption_um3", "formation_um3"]


class GenericRules(Rules):
    """The engine's parameter-driven rules (no cytokine-dependent decisions)."""

    def initialise(self, model) -> None:
        cfg = model.scenario.cells
        for code, name in enumerate(TYPE_NAMES):
            c = getattr(cfg, name)
            n = model.rng_place.poisson(c.initial_per_mm3 * model.lattice.volume_mm3)
            if n == 0:
                continue
            on_surface = name in BONE_CELL_TYPES
            state = self._birth_state(model, name, n)
            model.changes.birth_random(code, n, state=state, nuclei=c.nuclei,
                                       near_bone=on_surface)

    @staticmethod
    def _birth_state(model, name, n):
        if name != "tcell":
            return 0
        frac = model.scenario.cells.tcell.regulatory_fraction
        reg = model.rng_decide.random(n) < frac
        return np.where(reg, np.uint32(State.REGULATORY), np.uint32(0))

    def set_rates(self, model) -> None:
        cells = model.cells
        s = cells.alive_slots()
        t = cells.type[s]
        cells.secretion[s] = model.tables.secretion[t]
        cells.uptake[s] = model.tables.uptake[t]
        cells.vmax[s] = model.tables.vmax[t]

    def decide(self, model, dt_days: float) -> None:
        cfg = model.scenario.cells
        cells = model.cells
        for code, name in enumerate(TYPE_NAMES):
            c = getattr(cfg, name)
            if c.lifespan_days is not None:
                s = cells.slots_of_type(code)
                if s.size:
                    p = -np.expm1(-dt_days / c.lifespan_days)
                    dead = s[model.rng_decide.random(s.size) < p]
                    model.changes.die(dead)
            if c.egress_per_day > 0:
                s = cells.slots_of_type(code)
                s = s[model.at_vessel(s)]
                if s.size:
                    p = -np.expm1(-dt_days * c.egress_per_day)
                    model.changes.die(s[model.rng_decide.random(s.size) < p])
            if c.influx_per_mm3_per_day > 0:
                n = model.rng_decide.poisson(
                    c.influx_per_mm3_per_day * model.lattice.volume_mm3 * dt_days)
                if n:
                    model.changes.birth_random(code, n, state=self._birth_state(model, name, n),
                                               nuclei=c.nuclei, at_vessels=True)

    def remodel(self, model, dt_days: float) -> BoneWork:
        oc = model.cells.slots_of_type(model.type_code("osteoclast"))
        ob = model.cells.slots_of_type(model.type_code("osteoblast"))
        return BoneWork(oc, resorption_um3(model, oc, dt_days), ob,
                        formation_um3(model, ob, dt_days))


def resorption_um3(model, slots: np.ndarray, dt_days: float) -> np.ndarray:
    """Bone (um^3, float32) the osteoclasts in ``slots`` resorb in ``dt_days``:
    ``resorption_um3_per_day_per_nucleus`` x nuclei."""
    rate = model.scenario.cells.osteoclast.resorption_um3_per_day_per_nucleus
    return np.float32(rate * dt_days) * model.cells.nuclei[slots].astype(np.float32)


def formation_um3(model, slots: np.ndarray, dt_days: float) -> np.ndarray:
    """Bone (um^3, float32) the osteoblasts in ``slots`` form in ``dt_days``:
    ``apposition_um_per_day`` over one voxel face."""
    rate = model.scenario.cells.osteoblast.apposition_um_per_day * model.lattice.voxel_um ** 2
    return np.full(slots.size, np.float32(rate * dt_days), np.float32)
