"""The osteoimmune rule set: host factors, the five cell types, perturbations, readouts.

:class:`OsteoimmuneRules` plugs into the engine's :class:`~niche.core.rules.Rules` hooks. Per
decision step (``time.decision_step_min``) it reads the host state (estrogen, microbiota,
IL-2 dosing; :mod:`niche.scenario.host`; comparator therapies given by the scenario,
:mod:`niche.scenario.therapy`), applies perturbations, and calls each cell type's module
(:mod:`.tcell`, :mod:`.ilc2`, :mod:`.monocyte`, :mod:`.osteoclast`, :mod:`.osteoblast`);
every field step it updates what arrives through the vessels (blood IL-2 and SCFAs).
Nothing in a scenario states an outcome: the scenario sets what the experimenter does,
and the cells respond to what they sense.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..core.cells import BONE_CELL_TYPES, TYPE_CODES, TYPE_NAMES, State
from ..core.generic_rules import GenericRules
from ..core.remodel import BoneWork
from ..scenario.host import host_state
from ..scenario.therapy import therapy_fields
from . import ilc2, monocyte, osteoblast, osteoclast, tcell
from .context import Ctx
from .readouts import biology_readouts

__all__ = ["OsteoimmuneRules"]


class OsteoimmuneRules(GenericRules):
    """Mechanistic osteoimmune rules (see the module docstrings of each cell type)."""

    def __init__(self):
        self.host = None
        self._ctx: Ctx | None = None
        self._transferred: set[int] = set()

    # ------------------------------------------------------------------ helpers
    def _ctx_now(self, model, dt_days: float) -> Ctx:
        sc = model.scenario
        if self.host is None:
            self._update_host(model, model.t_days)
        ko = frozenset(p.pathway for p in sc.perturbations
                       if p.kind == "knockout" and p.active(model.t_days))
        return Ctx(model=model, P=sc.biology, host=self.host, dt=dt_days, knockouts=ko,
                   scfa_blood_pM=self._scfa_blood_pM(model))

    @staticmethod
    def _scfa_base_pM(model) -> float:
        f = model.scenario.fields.get("SCFA")
        return 0.0 if f is None or f.vessel_pM is None else float(f.vessel_pM)

    def _scfa_blood_pM(self, model) -> float:
        return self._scfa_base_pM(model) * (self.host.scfa_blood_fold if self.host else 1.0)

    def _mcsf(self, model) -> float:
        iv = model.scenario.invitro
        return iv.mcsf_level if iv is not None else model.scenario.biology.monocyte.mcsf_level

    def _blocked(self, model) -> set[str]:
        return {p.target for p in model.scenario.perturbations
                if p.kind == "deplete" and p.active(model.t_days)}

    # ------------------------------------------------------------------ hooks
    def initialise(self, model) -> None:
        sc = model.scenario
        if sc.invitro is not None:
            self._seed_well(model)
            return
        self._update_host(model, 0.0)
        ctx = self._ctx_now(model, 0.0)
        cfg = sc.cells
        for code, name in enumerate(TYPE_NAMES):
            c = getattr(cfg, name)
            n = model.rng_place.poisson(c.initial_per_mm3 * model.lattice.volume_mm3)
            if n == 0:
                continue
            state = np.zeros(n, np.uint32)
            if name == "tcell":
                f_reg = tcell.treg_fraction(ctx, ctx.scfa_blood_pM * self.host.butyrate_fraction)
                reg = model.rng_place.random(n) < f_reg
                state[reg] = State.REGULATORY
                cd8 = ~reg & (model.rng_place.random(n)
                              < tcell.cd8_share(ctx.P.tcell.cd8_fraction, f_reg))
                state[cd8] = State.CD8
            model.changes.birth_random(code, n, state=state, nuclei=c.nuclei,
                                       near_bone=name in BONE_CELL_TYPES)

    def placed(self, model) -> None:
        """The bone cells present at day 0 are part-way through their work: spread their
        resorption/formation credit over one voxel so they do not act in lockstep."""
        if model.scenario.invitro is not None:
            return
        cells = model.cells
        for name in BONE_CELL_TYPES:
            s = cells.slots_of_type(TYPE_CODES[name])
            cells.bone_credit_um3[s] = (model.rng_place.random(s.size)
                                        * model.lattice.voxel_volume_um3).astype(np.float32)

    def _seed_well(self, model) -> None:
        iv = model.scenario.invitro
        lat = model.lattice
        area_mm2 = lat.shape[1] * lat.shape[2] * (lat.voxel_um * 1e-3) ** 2
        n_mono = model.rng_place.poisson(iv.monocytes_per_mm2 * area_mm2)
        model.changes.birth_random(TYPE_CODES["monocyte"], n_mono, near_bone=True)
        n_treg = model.rng_place.poisson(iv.treg_per_monocyte * n_mono)
        if n_treg:
            model.changes.birth_random(TYPE_CODES["tcell"], n_treg,
                                       state=np.full(n_treg, State.REGULATORY, np.uint32),
                                       near_bone=True)

    def forcing(self, model, t_days: float) -> None:
        """Host state and vessel (or culture medium) concentrations (every field step)."""
        self._update_host(model, t_days)

    def _update_host(self, model, t_days: float) -> None:
        sc = model.scenario
        dt_field = sc.time.field_step_min / 1440.0
        self.host = host_state(sc.estrogen, sc.microbiota, sc.il2, t_days, dt_field)
        if any(x is not None for x in (sc.anti_rankl, sc.bisphosphonate, sc.pth)):
            th = therapy_fields(sc.anti_rankl, sc.bisphosphonate, sc.pth, t_days, dt_field)
            self.host = dataclasses.replace(self.host, **th)
        f = model.fields
        if f is None:
            return
        iv = sc.invitro
        names = model.field_names
        if iv is not None:
            for name, val in (("RANKL", iv.rankl_pM), ("IL2", iv.il2_pM), ("SCFA", iv.scfa_pM)):
                if name in names:
                    f.set_dirichlet_value(names.index(name), val)
            return
        if "IL2" in names:
            base = sc.fields["IL2"].vessel_pM or 0.0
            f.set_dirichlet_value(names.index("IL2"), base + self.host.il2_blood_pM)
        if "SCFA" in names:
            f.set_dirichlet_value(names.index("SCFA"), self._scfa_blood_pM(model))

    def decide(self, model, dt_days: float) -> None:
        ctx = self._ctx_now(model, dt_days)
        self._perturb(ctx)
        blocked = self._blocked(model)
        # deaths and egress from the generic rules (lifespans, vessels) and entry
        self._turnover(ctx, blocked)
        tcell.decide(ctx)
        ilc2.decide(ctx)
        monocyte.decide(ctx, self._mcsf(model))
        osteoclast.fuse(ctx)
        osteoclast.decide(ctx)
        if model.scenario.invitro is None:
            osteoblast.recruit(ctx)
        self._ctx = ctx

    def _turnover(self, ctx: Ctx, blocked: set[str]) -> None:
        model = ctx.model
        cfg = model.scenario.cells
        cells = model.cells
        for code, name in enumerate(TYPE_NAMES):
            c = getattr(cfg, name)
            s = cells.slots_of_type(code)
            if name == "monocyte":  # committed precursors have their own fate
                s = s[~ctx.has(s, State.PRE_OSTEOCLAST)]
            if name == "osteoclast":  # apoptosis is estrogen dependent (osteoclast module)
                s = s[:0]
            if c.lifespan_days is not None and s.size:
                rate = (osteoblast.death_rate(ctx, s, c.lifespan_days) if name == "osteoblast"
                        else 1.0 / c.lifespan_days)
                model.changes.die(ctx.events(s, rate))
            if c.egress_per_day > 0 and s.size:
                model.changes.die(ctx.events(s[model.at_vessel(s)], c.egress_per_day))
            if c.influx_per_mm3_per_day > 0 and model.scenario.invitro is None:
                if name == "tcell":
                    tcell.influx(ctx, c.influx_per_mm3_per_day, blocked)
                elif name not in blocked:
                    n = ctx.rng.poisson(c.influx_per_mm3_per_day * model.lattice.volume_mm3
                                        * ctx.dt)
                    if n:
                        model.changes.birth_random(code, n, nuclei=c.nuclei, at_vessels=True)

    def _perturb(self, ctx: Ctx) -> None:
        model = ctx.model
        for i, p in enumerate(model.scenario.perturbations):
            if p.kind == "deplete" and p.active(model.t_days):
                s = _target_slots(ctx, p.target)
                model.changes.die(ctx.events(s, p.rate_per_day))
            elif p.kind == "transfer" and i not in self._transferred and model.t_days >= p.day:
                self._transferred.add(i)
                name = "tcell" if p.target in ("treg", "effector_tcell") else p.target
                state = np.uint32(State.REGULATORY) if p.target == "treg" else np.uint32(0)
                model.changes.birth_random(TYPE_CODES[name], p.count,
                                           state=np.full(p.count, state, np.uint32),
                                           nuclei=getattr(model.scenario.cells, name).nuclei,
                                           near_bone=name in BONE_CELL_TYPES)

    def set_rates(self, model) -> None:
        ctx = self._ctx or self._ctx_now(model, 0.0)
        ctx._treg_code = None
        cells = model.cells
        super().set_rates(model)  # constitutive rates per type ([cells.*] tables)
        idx = {n: i for i, n in enumerate(model.field_names)}
        S = len(idx)
        sec = np.zeros((cells.capacity, S), np.float32)
        vmax = np.zeros((cells.capacity, S), np.float32)
        for mod in (tcell, ilc2, monocyte, osteoclast, osteoblast):
            mod.rates(ctx, sec, vmax, idx)
        conv = np.float32(model.molecules_to_pM)
        s = cells.alive_slots()
        cells.secretion[s] += sec[s] * conv
        cells.vmax[s] += vmax[s] * conv

    def adjust_motility(self, model, motility) -> None:
        osteoclast.adjust_motility(model, motility)
        tcell.adjust_motility(model, motility)

    def remodel(self, model, dt_days: float) -> BoneWork:
        oc, oc_um3 = osteoclast.resorption(model, dt_days)
        ob, ob_um3 = osteoblast.formation(model, dt_days)
        return BoneWork(oc, oc_um3, ob, ob_um3)

    def readouts(self, model) -> dict[str, float]:
        return biology_readouts(model)


def _target_slots(ctx: Ctx, target: str) -> np.ndarray:
    if target in ("treg", "effector_tcell"):
        s = ctx.slots("tcell")
        reg = ctx.has(s, State.REGULATORY)
        return s[reg] if target == "treg" else s[~reg]
    return ctx.slots(target)
