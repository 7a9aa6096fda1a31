"""The engine's mesa.Model: the lattice, the fields, the cell arrays and the schedule.

:class:`Model` knows no biology: a rule set (:class:`~niche.core.rules.Rules`) is
injected, and the runner (:mod:`niche.runner`) chooses it from the scenario. One call to
:meth:`Model.step` advances one movement tick (``time.move_step_min``).
Slower processes run on whole multiples of that tick, in this order within a tick:

    forcing -> decisions (sense, decide, apply births/deaths/fusion/differentiation)
    -> per-cell rates -> secretion/uptake + diffusion/decay solve -> movement
    -> bone remodelling -> observers (readouts, run file, progress)

Arrays are the truth; ``mesa.Agent`` handles (see :mod:`niche.core.agents`) are kept in sync in
one batch per decision step. All randomness comes from the seed: numpy Generators spawned
from it for Python-level draws, and counter-based streams inside kernels.
"""
from __future__ import annotations

import math
import numbers
import time
from collections import defaultdict

import mesa
import numpy as np

from ..scenario import ConfigError, Scenario, load_scenario
from ..scenario.limits import check_resources
from .agents import AGENT_CLASSES, Cell
from .cells import TYPE_CODES, TYPE_NAMES, CellStore, State
from .changes import ChangeSet
from .events import EventLog
from ..kernels.diffusion import sample_slots
from .fields import FieldSolver
from .lattice import Lattice, face_neighbour_any
from .morphometry import trabecular_morphometry
from .motility import Motility
from .observers import Observer
from .remodel import bone_step
from .rules import Rules
from .generic_rules import GenericRules

__all__ = ["Model", "TypeTables", "molecules_to_pM"]

AVOGADRO = 6.02214076e23


def molecules_to_pM(voxel_volume_um3: float) -> float:
    """Concentration (pM) of one molecule in one voxel."""
    litres = voxel_volume_um3 * 1e-15
    return 1e12 / (AVOGADRO * litres)


class TypeTables:
    """Per-type lookup tables built from the scenario (index = type code)."""

    def __init__(self, sc: Scenario, voxel_um: float):
        names = sc.field_names
        S, T = len(names), len(TYPE_NAMES)
        conv = molecules_to_pM(voxel_um**3)
        self.secretion = np.zeros((T, S), np.float32)   # pM/s into the cell's voxel
        self.uptake = np.zeros((T, S), np.float32)      # 1/s
        self.vmax = np.zeros((T, S), np.float32)        # pM/s
        self.speed_vox_per_min = np.zeros(T, np.float64)
        self.persistence = np.zeros(T, np.float32)
        self.chemo_strength = np.zeros(T, np.float32)
        self.chemo_field = np.full(T, -1, np.int64)
        self.fp_radius = np.ones(T, np.int64)
        for code, tname in enumerate(TYPE_NAMES):
            c = getattr(sc.cells, tname)
            for f, v in c.secretion_molecules_per_s.items():
                self.secretion[code, names.index(f)] = v * conv
            for f, v in c.uptake_per_s.items():
                self.uptake[code, names.index(f)] = v
            for f, v in c.vmax_molecules_per_s.items():
                self.vmax[code, names.index(f)] = v * conv
            self.speed_vox_per_min[code] = c.speed_um_per_min / voxel_um
            self.persistence[code] = c.persistence
            self.chemo_strength[code] = c.chemotaxis_strength
            if c.chemotaxis_field is not None:
                self.chemo_field[code] = names.index(c.chemotaxis_field)


class Model(mesa.Model):
    """The bone-marrow niche on a 3D lattice, stepped on a multi-rate schedule.

    Args:
        scenario: a validated :class:`~niche.scenario.Scenario`, a path or a scenario name.
        seed: overrides ``run.seed``.
        rules: the rule set. Default: :class:`~niche.core.generic_rules.GenericRules`,
            allowed only for scenarios with ``rules = "generic"``; the osteoimmune
            biology is chosen by :class:`niche.NicheModel` (:mod:`niche.runner`).
        observers: objects with ``on_start/on_frame/on_tick/on_end`` hooks.
        allow_large: build a model beyond this machine's memory or compute limits
            (:func:`~niche.scenario.limits.check_resources`; refused by default).

    Attributes:
        lattice: geometry (``bone``, ``vessel`` masks).
        fields: the :class:`~niche.core.fields.FieldSolver`; ``fields.c`` is (S, Z, Y, X).
        cells: the :class:`~niche.core.cells.CellStore`.
        changes: the :class:`~niche.core.changes.ChangeSet` being filled during a step.
        motility: the :class:`~niche.core.motility.Motility` of this decision interval.
        morphometry: the bone morphometry of the last frame (BoneJ definitions).
        t_min: simulated time in minutes.
        events: the :class:`~niche.core.events.EventLog` (births, deaths, fusions,
            differentiations, divisions); ``frame_events`` holds the last frame's.
        running: Mesa's flag; turns False when the run reaches ``n_ticks`` (``run.days``).

    Stepping: :meth:`run` (or Mesa's :meth:`run_model`) steps to the end and calls
    :meth:`finish`. A model stepped by hand (``model.step()``) calls :meth:`finish` itself
    when done: observers then end (the run-file writer assembles its complete file and
    removes the ``.partial`` journal). Stepping on after :meth:`finish` continues the same
    run (a writer reopens its file and extends it).
    """

    def __init__(self, scenario: Scenario | str, seed: int | None = None,
                 rules: Rules | None = None, observers=(), allow_large: bool = False):
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        check_resources(scenario, allow_large=allow_large)  # before anything is allocated
        if seed is not None:
            scenario = scenario.model_copy(update={"run": scenario.run.model_copy(
                update={"seed": int(seed)})})
        if rules is None:
            if scenario.rules != "generic":
                raise ConfigError(
                    f"scenario {scenario.name!r} uses rules {scenario.rules!r}: build it with "
                    "niche.NicheModel (which chooses the rule set) or pass rules=")
            rules = GenericRules()
        self.scenario = scenario
        self.seed = int(scenario.run.seed)
        super().__init__(seed=self.seed)
        from mesa.agent import AgentSet
        for cls in AGENT_CLASSES:  # every type is present, even before its first birth
            self._agents_by_type.setdefault(cls, AgentSet([], random=self.random))
        ss = np.random.SeedSequence(self.seed)
        geo, place, decide, kern = ss.spawn(4)
        self.rng_geometry = np.random.default_rng(geo)
        self.rng_place = np.random.default_rng(place)
        self.rng_decide = np.random.default_rng(decide)
        self.kernel_seed = np.uint64(kern.generate_state(1, np.uint64)[0])

        tm = scenario.time
        self.dt_move_min = tm.move_step_min
        self.every_field = round(tm.field_step_min / tm.move_step_min)
        self.every_decide = round(tm.decision_step_min / tm.move_step_min)
        self.every_bone = round(tm.bone_step_min / tm.move_step_min)
        self.n_ticks = int(math.ceil(scenario.run.days * 1440.0 / tm.move_step_min - 1e-9))
        fi = scenario.run.frame_interval_days * 1440.0 / tm.move_step_min
        self.every_frame = max(1, int(round(fi)))
        self.tick = 0

        d = scenario.domain
        if scenario.invitro is not None:
            self.lattice = Lattice.well(d.shape_voxels, d.voxel_um,
                                        scenario.invitro.bone_slice_um)
        else:
            self.lattice = Lattice.generate(d.shape_voxels, d.voxel_um, scenario.bone,
                                            scenario.vessels, self.rng_geometry)
        self.initial_bone = self.lattice.bone.copy()
        self.wall = self.lattice.wall
        self._entry = self.lattice.entry_voxels()
        self._entry_mask = np.zeros(int(np.prod(self.lattice.shape)), bool)
        self._entry_mask[self._entry] = True
        self.tables = TypeTables(scenario, d.voxel_um)
        #: pM in one voxel per molecule per second -> (pM/s per molecules/s)
        self.molecules_to_pM = molecules_to_pM(d.voxel_um**3)

        fcfg = scenario.fields
        names = scenario.field_names
        self.field_names = names
        dtype = np.float32 if scenario.solver.dtype == "float32" else np.float64
        self.fields = FieldSolver(
            d.shape_voxels, names,
            diffusivity_um2_per_s=[fcfg[n].diffusivity_um2_per_s for n in names],
            decay_per_s=[fcfg[n].decay_per_s for n in names],
            dx_um=d.voxel_um, dt_s=tm.field_step_min * 60.0,
            km=[fcfg[n].km_pM if fcfg[n].km_pM is not None else np.inf for n in names],
            # a culture well's top layer is the bulk medium: every substrate is held there
            dirichlet_value=[fcfg[n].vessel_pM or 0.0 for n in names],
            dirichlet_on=[fcfg[n].vessel_pM is not None or scenario.invitro is not None
                          for n in names],
            dtype=dtype, dense_rates=False,
        ) if names else None
        if self.fields is not None:
            self.fields.set_solid(self.lattice.bone)
            self.fields.set_dirichlet(self.lattice.vessel)
            for i, n in enumerate(names):
                self.fields.c[i][self.lattice.bone == 0] = fcfg[n].initial_pM
            self.fields.set_solid(self.lattice.bone)

        self.cells = CellStore(d.shape_voxels, len(names), capacity=1024)
        self._handles: dict[int, Cell] = {}
        self.events = EventLog()
        self.changes = ChangeSet()
        self.rules: Rules = rules
        self.observers: list[Observer] = list(observers)
        self.bone_resorbed_voxels = 0
        self.bone_formed_voxels = 0
        #: osteoblasts walled into the matrix (osteocytes; see kernels.bone.form)
        self.osteoblasts_embedded = 0
        #: voxels resorbed / formed since the last frame
        self.resorbed_since_frame = 0
        self.formed_since_frame = 0
        self._last_frame_tick = 0
        self.frame_readouts: dict[str, float] = {}
        self.morphometry: dict[str, float] = {}
        #: wall seconds spent per phase (rules, handles, fields, movement, bone, observers)
        self.timings: defaultdict[str, float] = defaultdict(float)

        self.rules.initialise(self)
        self.apply_changes()
        self.rules.placed(self)
        self.rules.set_rates(self)
        self._update_motility()
        self._started = False

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def type_code(name: str) -> int:
        return TYPE_CODES[name]

    @property
    def t_min(self) -> float:
        return self.tick * self.dt_move_min

    @property
    def t_days(self) -> float:
        return self.t_min / 1440.0

    @property
    def days_since_frame(self) -> float:
        """Simulated days since the last frame (at least one tick)."""
        return max(self.tick - self._last_frame_tick, 1) * self.dt_move_min / 1440.0

    def handle(self, slot: int) -> Cell:
        """The Mesa agent of a slot."""
        return self._handles[int(slot)]

    @property
    def frame_events(self) -> dict[str, np.ndarray]:
        """The events since the frame before the last one, up to the last frame (columns
        :data:`~niche.core.events.EVENT_COLUMNS`)."""
        return self.events.frame

    def field_index(self, name: str) -> int:
        try:
            return self.field_names.index(name)
        except ValueError:
            raise KeyError(f"unknown field {name!r} (defined: {list(self.field_names)})") from None

    def at_vessel(self, slots: np.ndarray) -> np.ndarray:
        """Boolean per slot: the cell sits on a voxel next to a vessel (entry/exit point)."""
        c = self.cells
        flat = np.ravel_multi_index((c.z[slots], c.y[slots], c.x[slots]), self.lattice.shape)
        return self._entry_mask[flat]

    def sample(self, name: str, slots: np.ndarray, dtype=None) -> np.ndarray:
        """Concentration of field ``name`` at the voxels of ``slots`` (pM), in the fields'
        dtype or ``dtype``."""
        slots = np.asarray(slots)
        if slots.ndim != 1 or not np.issubdtype(slots.dtype, np.integer):
            c = self.fields.c[self.field_index(name)]
            out = c[self.cells.z[slots], self.cells.y[slots], self.cells.x[slots]]
            return out if dtype is None else out.astype(dtype)
        out = np.empty(slots.size, dtype or self.fields.c.dtype)
        sample_slots(self.fields.c, self.field_index(name), slots, self.cells.z,
                     self.cells.y, self.cells.x, out)
        return out

    def record_remodelling(self, resorbed: int = 0, formed: int = 0) -> None:
        """Count voxels resorbed and formed (totals and since the last frame)."""
        self.bone_resorbed_voxels += resorbed
        self.resorbed_since_frame += resorbed
        self.bone_formed_voxels += formed
        self.formed_since_frame += formed

    # ----------------------------------------------------------------- changes
    def _free_candidates(self, kind: dict) -> np.ndarray:
        free = (self.wall.ravel() == 0) & (self.cells.occ.ravel() == 0)
        if kind.get("at_vessels"):
            cand = self._entry[free[self._entry]]
        elif kind.get("near_bone"):
            near = face_neighbour_any(self.lattice.bone)
            cand = np.flatnonzero(near.ravel() & free)
        else:
            cand = np.flatnonzero(free)
        return cand

    def _drop_handles(self, slots) -> None:
        for s in slots:
            self._handles.pop(int(s))._detach()

    def _record(self, kind: str, slots, other_ids=None, snapshot=None) -> None:
        """Log ``kind`` for the cells in ``slots`` as they are now (or as ``snapshot``, a
        dict of id/type/z/y/x arrays taken earlier)."""
        c = self.cells
        if snapshot is None:
            slots = np.asarray(slots, np.int64)
            snapshot = {k: getattr(c, a)[slots] for k, a in _SNAPSHOT.items()}
        self.events.record(kind, self.tick, self.t_days, snapshot["id"], other_ids,
                           snapshot["type"], snapshot["z"], snapshot["y"], snapshot["x"])

    def remove_cells(self, slots: np.ndarray) -> None:
        """Remove living cells now (a death each): arrays, lattice and Mesa handles."""
        slots = np.unique(np.asarray(slots, np.int64))
        if slots.size and np.any(self.cells.alive[slots] == 0):
            raise ValueError(f"remove_cells: slots {slots[self.cells.alive[slots] == 0].tolist()} "
                             "hold no living cell")
        self._record("death", slots)
        self._drop_handles(slots)
        self.cells.remove(slots)

    def apply_changes(self) -> None:
        """Apply the queued :class:`ChangeSet` to the arrays and the Mesa handles."""
        ch, cells = self.changes, self.cells
        # mothers as they are before anything changes (a mother may die in this batch)
        mothers = [None if b.get("parents") is None else
                   {k: getattr(cells, a)[b["parents"]] for k, a in _SNAPSHOT.items()}
                   for b in ch.births]
        for absorbed, into in ch.fusions:
            self._record("fusion", absorbed, other_ids=cells.cell_id[into])
            self._drop_handles(absorbed)
            cells.fuse(absorbed, into)
        if ch.deaths:
            dead = np.unique(np.concatenate(ch.deaths))
            self.remove_cells(dead[cells.alive[dead] == 1])
        for slots, new_type, new_state in ch.differentiations:
            slots = slots[cells.alive[slots] == 1]
            cells.set_type(slots, new_type, new_state)
            self._record("differentiation", slots)
            cls = AGENT_CLASSES[new_type]
            for s in slots:  # same handle, same unique_id: Mesa follows the cell on
                self._handles[int(s)]._become(cls)
        for b, mother in zip(ch.births, mothers):
            if b["kind"] == "random":
                cand = self._free_candidates(b)
                n = min(b["n"], cand.size)
                if n == 0:
                    continue
                flat = self.rng_place.choice(cand, size=n, replace=False)
                flat.sort()
                z, y, x = np.unravel_index(flat, self.lattice.shape)
                state = b["state"]
                if np.ndim(state):
                    state = np.asarray(state)[:n]
            else:
                z, y, x = (np.asarray(b[k], np.int64).ravel() for k in "zyx")
                flat = np.ravel_multi_index((z, y, x), self.lattice.shape)
                ok = (self.wall.ravel()[flat] == 0) & (cells.occ.ravel()[flat] == 0)
                _, first = np.unique(flat, return_index=True)
                uniq = np.zeros(flat.size, bool)
                uniq[first] = True
                ok &= uniq
                z, y, x = z[ok], y[ok], x[ok]
                if mother is not None:
                    mother = {k: v[ok] for k, v in mother.items()}
                state = b["state"]
                if np.ndim(state):
                    state = np.asarray(state)[ok]
                n = z.size
                if n == 0:
                    continue
            u = self.rng_place.standard_normal((n, 3))
            u /= np.linalg.norm(u, axis=1, keepdims=True) + 1e-12
            parent = -1 if mother is None else mother["id"]
            slots = cells.add(b["type"], z, y, x, state=state, nuclei=b["nuclei"], direction=u,
                              parent_id=parent)
            self._record("birth", slots, other_ids=None if mother is None else parent)
            if mother is not None:
                self._record("division", None, other_ids=cells.cell_id[slots], snapshot=mother)
            cls = AGENT_CLASSES[b["type"]]
            for s in slots:
                self._handles[int(s)] = cls(self, int(s))
        self.changes = ChangeSet()

    # ----------------------------------------------------------------- phases
    def _field_step(self) -> None:
        f, cells = self.fields, self.cells
        f.react_cells(cells.z, cells.y, cells.x, cells.secretion, cells.uptake, cells.vmax,
                      slots=cells.alive_slots())
        f.step(1)

    def _update_motility(self) -> None:
        """Per-cell motility from the type tables, then the rule set's adjustments."""
        t = self.tables
        self.motility = Motility(self.cells, t.speed_vox_per_min, t.persistence,
                                 t.chemo_strength, t.chemo_field, self.dt_move_min)
        self.rules.adjust_motility(self, self.motility)

    def _move_step(self) -> None:
        if self.motility.capacity != self.cells.capacity:
            self._update_motility()
        self.motility.move(self.cells, self.fields, self.wall, self.kernel_seed, self.tick)

    def _bone_step(self, dt_days: float) -> None:
        work = self.rules.remodel(self, dt_days)
        if bone_step(self, work) and self.fields is not None:
            self.fields.set_solid(self.lattice.bone)

    # ----------------------------------------------------------------- stepping
    def _notify(self, hook: str) -> None:
        for ob in self.observers:
            getattr(ob, hook, lambda m: None)(self)

    def start(self) -> None:
        """Notify observers and record frame 0 (called by :meth:`run` or the first step)."""
        if not self._started:
            self._started = True
            self.rules.forcing(self, self.t_days)
            self._notify("on_start")
            self._frame()

    def step(self) -> None:
        """Advance one movement tick."""
        self.start()
        clock = time.perf_counter
        tm = self.timings
        tick = self.tick
        dt_min = self.dt_move_min
        t0 = clock()
        if tick % self.every_field == 0:
            self.rules.forcing(self, self.t_days)
        if tick % self.every_decide == 0 and tick > 0:
            self.rules.decide(self, self.every_decide * dt_min / 1440.0)
            t1 = clock()
            tm["rules"] += t1 - t0
            self.apply_changes()
            t0 = clock()
            tm["handles"] += t0 - t1
            self.rules.set_rates(self)
            self._update_motility()
        t1 = clock()
        tm["rules"] += t1 - t0
        if self.fields is not None and tick % self.every_field == 0:
            self._field_step()
        t0 = clock()
        tm["fields"] += t0 - t1
        self._move_step()
        alive = self.cells.alive.view(bool)
        np.add(self.cells.age_days, np.float32(dt_min / 1440.0), out=self.cells.age_days,
               where=alive)
        self.tick += 1
        t1 = clock()
        tm["movement"] += t1 - t0
        if self.tick % self.every_bone == 0:
            self._bone_step(self.every_bone * dt_min / 1440.0)
        t0 = clock()
        tm["bone"] += t0 - t1
        self._notify("on_tick")
        if self.tick % self.every_frame == 0 or self.tick == self.n_ticks:
            self._frame()
        tm["observers"] += clock() - t0
        self.running = self.tick < self.n_ticks

    def _frame(self) -> None:
        """Compute the frame's readouts, notify observers, start the next interval."""
        self.frame_readouts = self.readouts()
        self.events.end_frame()
        self._notify("on_frame")
        self.resorbed_since_frame = 0
        self.formed_since_frame = 0
        self._last_frame_tick = self.tick

    def run(self, days: float | None = None) -> None:
        """Run for ``days`` more (default: to the scenario's ``run.days``), then
        :meth:`finish`. Called again, it continues the same run."""
        if days is not None:
            if not (isinstance(days, numbers.Real) and math.isfinite(days) and days > 0):
                raise ValueError(f"run(days={days!r}): expected a positive number of days")
            self.n_ticks = self.tick + int(math.ceil(days * 1440.0 / self.dt_move_min - 1e-9))
        self.running = self.tick < self.n_ticks
        self.start()
        while self.tick < self.n_ticks:
            self.step()
        self.finish()

    def run_model(self) -> None:
        """Mesa's loop: step while ``running`` (until ``run.days``), then :meth:`finish`."""
        self.start()
        while self.running:
            self.step()
        self.finish()

    def finish(self) -> None:
        """End the run: notify observers (``on_end``). The run-file writer assembles the
        complete run file and removes its ``.partial`` journal. Call it after stepping a
        model by hand (``model.step()``); :meth:`run` and :meth:`run_model` call it. A model
        stopped between two frames first takes a frame of the state it ends in."""
        self.start()
        if self.tick != self._last_frame_tick:
            self._frame()
        self._notify("on_end")

    def extend_to(self, days: float) -> None:
        """Make the run ``days`` long in all (``run.days``, validated by the scenario schema;
        not shorter than it has run)."""
        sc = load_scenario(self.scenario.model_dump(mode="python", exclude_none=True),
                           {"run.days": days})
        if days * 1440.0 < self.t_min - 1e-9:
            raise ConfigError(f"--days {days:g}: the run is already at day {self.t_days:g}")
        self.scenario = sc
        self.n_ticks = int(math.ceil(days * 1440.0 / self.dt_move_min - 1e-9))
        self.running = self.tick < self.n_ticks

    # ----------------------------------------------------------------- checkpoints
    #: attributes a checkpoint leaves out: the observers (they keep their own state) and
    #: Mesa's bound-method wrappers of ``step`` (rebuilt on restore)
    _NOT_CHECKPOINTED = ("observers", "step", "_user_step", "datacollector")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in self._NOT_CHECKPOINTED}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._upgrade()
        self.observers = []
        self._user_step = self.step
        self.step = self._wrapped_step

    def _upgrade(self) -> None:
        """Fill what a checkpoint of an older niche lacks: the ``parent_id`` column, the
        event log, and handles that kept their slot as ``slot``."""
        c = self.cells
        if not hasattr(c, "parent_id"):
            c.parent_id = np.full(c.capacity, -1, np.int64)
        if "events" not in self.__dict__:
            self.events = EventLog()
        for h in self._handles.values():
            if "slot" in h.__dict__:
                h._slot = h.__dict__.pop("slot")
                h.unique_id = int(c.cell_id[h._slot])

    # ----------------------------------------------------------------- readouts
    def readouts(self) -> dict[str, float]:
        """Readouts of the current state (names and units: docs/file-format.md).

        The engine's own: ``t_days``; bone morphometry with BoneJ definitions
        (:func:`~niche.core.morphometry.trabecular_morphometry`: ``bv_tv``, ``tb_th_um``,
        ``tb_sp_um``, ``tb_n_per_mm``, ``bs_bv_per_mm``; a culture well's bone slice has
        ``bv_tv`` only); cell counts per type and ``n_treg``; resorbed and formed volume per
        day since the last frame; the marrow mean of each field. The rule set adds its own
        (``Rules.readouts``), under names the engine does not use.
        """
        lat, cells = self.lattice, self.cells
        out: dict[str, float] = {"t_days": self.t_days}
        if lat.kind == "trabecular":
            self.morphometry = trabecular_morphometry(lat.bone, lat.voxel_um)
            out.update({k: self.morphometry[k] for k in MORPHOMETRY_READOUTS})
        else:
            self.morphometry = {"bv_tv": float(lat.bone.sum()) / lat.bone.size}
            out["bv_tv"] = self.morphometry["bv_tv"]
        alive = cells.alive == 1
        for code, name in enumerate(TYPE_NAMES):
            out[f"n_{name}"] = float(np.count_nonzero(alive & (cells.type == code)))
        reg = alive & (cells.type == TYPE_CODES["tcell"]) & ((cells.state & State.REGULATORY) != 0)
        out["n_treg"] = float(np.count_nonzero(reg))
        days = self.days_since_frame
        vv_mm3 = lat.voxel_volume_um3 * 1e-9
        out["resorbed_mm3_per_day"] = self.resorbed_since_frame * vv_mm3 / days if self.tick else 0.0
        out["formed_mm3_per_day"] = self.formed_since_frame * vv_mm3 / days if self.tick else 0.0
        if self.fields is not None:
            marrow = lat.bone == 0
            for i, n in enumerate(self.field_names):
                out[f"mean_{n}_pM"] = float(self.fields.c[i][marrow].astype(np.float64).mean())
        extra = self.rules.readouts(self)
        clash = sorted(set(extra) & set(out))
        if clash:
            raise ValueError(f"rule set readouts {clash} repeat names the engine computes")
        out.update(extra)
        return out


#: event-log column -> CellStore array, for a cell as it is now
_SNAPSHOT = {"id": "cell_id", "type": "type", "z": "z", "y": "y", "x": "x"}

#: the morphometry keys the engine reports for trabecular bone (BoneJ definitions)
MORPHOMETRY_READOUTS = ("bv_tv", "tb_th_um", "tb_sp_um", "tb_n_per_mm", "bs_bv_per_mm")
