"""Experiment descriptions: named arms x replicate seeds x parameter sweeps, in TOML or Python.

An experiment file::

    name = "il2_dose"
    description = "OVX with IL-2 at three doses against sham and untreated OVX"
    seed = 2026            # the replicate seeds are derived from it (or: seeds = [1, 2, 3])
    replicates = 5
    days = 56              # every arm (an arm may say its own)
    [set]                  # overrides for every arm, e.g. a smaller domain
    "domain.shape_voxels" = [48, 48, 48]

    [arms.sham]
    scenario = "sham"
    [arms.ovx]
    scenario = "ovx"
    [arms.ovx_il2]
    scenario = "ovx_il2"
    set = { "il2.start_day" = 21.0 }
    [arms.ovx_il2_no_ilc2]
    scenario = "ovx_il2"
    set = { perturbations = [{ kind = "deplete", target = "ilc2", day = 21.0 }] }

    [[sweeps]]             # a sweep multiplies the arms it names (default: every arm)
    arms = ["ovx_il2"]
    grid = { "il2.dose_iu" = [10000, 25000, 50000] }

    [output]
    readouts = ["bv_tv", "n_treg", "n_osteoclast"]   # default: every readout
    times = [0, 28, 56]                              # days kept (default: every frame)

Every arm runs with the same seeds, so arms compare *paired by seed* (the same seed gives
the same initial bone). :meth:`Experiment.runs` expands the description into one
:class:`RunSpec` per (arm, parameter set, seed), each with a stable ``run_id``;
:meth:`Experiment.check` loads every run's scenario before anything runs, so a bad key or
value fails at once with a message that names the arm, the sweep value and the key.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import numpy as np
from pydantic import Field, ValidationError, field_validator, model_validator

from ..scenario import MAX_SEED, ConfigError, load_scenario, parse_overrides
from ..scenario.base import Strict
from ..scenario.limits import check_resources
from ..scenario.schema import file_kind, format_errors, read_toml, shown

__all__ = ["ArmSpec", "SweepSpec", "SensitivitySpec", "OutputSpec", "Experiment", "RunSpec", "load_experiment",
           "derive_seeds"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
Days = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name) or len(name) > 64:
        raise ValueError(f"{kind} name {name!r}: use letters, digits, '_' or '-' "
                         "(starting with a letter, at most 64 characters)")
    return name


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"il2": {"dose_iu": 1}}`` -> ``{"il2.dose_iu": 1}`` (TOML's dotted keys nest);
    lists are values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


class ArmSpec(Strict):
    """One arm: a scenario (shipped name or path), its days and its overrides."""

    scenario: str
    days: Days | None = None
    set: dict[str, Any] = {}
    description: str = ""

    @field_validator("set", mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        return flatten(v) if isinstance(v, Mapping) else v


class SweepSpec(Strict):
    """A parameter sweep: a full-factorial ``grid`` and/or explicit ``samples`` (one dict
    of dotted keys each, e.g. from a sensitivity design), multiplying ``arms``."""

    arms: list[str] | None = None
    grid: dict[str, list[Any]] = {}
    samples: list[dict[str, Any]] = []

    @field_validator("grid", mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        return flatten(v) if isinstance(v, Mapping) else v

    @field_validator("samples", mode="before")
    @classmethod
    def _flat_samples(cls, v: Any) -> Any:
        return [flatten(s) if isinstance(s, Mapping) else s for s in v] if isinstance(v, list) else v

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for k, vals in v.items():
            if not vals:
                raise ValueError(f"grid {k!r}: needs at least one value")
        return v

    @model_validator(mode="after")
    def _something(self) -> "SweepSpec":
        if not self.grid and not self.samples:
            raise ValueError("a sweep needs a grid or samples")
        return self

    def parameter_sets(self) -> list[dict[str, Any]]:
        """Every parameter set of this sweep: the grid's product, then the samples."""
        out = []
        if self.grid:
            keys = list(self.grid)
            out += [dict(zip(keys, vals)) for vals in itertools.product(*self.grid.values())]
        out += [dict(s) for s in self.samples]
        return out


class SensitivitySpec(Strict):
    """A global sensitivity analysis (SALib, :mod:`.sensitivity`) over one arm: the design's
    samples become that arm's parameter sets, every sample runs with every replicate seed,
    and the analysis averages each sample's readout over the seeds."""

    arm: str
    method: Literal["morris", "sobol"] = "morris"
    #: Morris trajectories, or Sobol base samples (a power of two)
    n: Annotated[int, Field(ge=2, le=100_000)]
    parameters: dict[str, tuple[float, float]]
    scale: dict[str, Literal["linear", "log"]] = {}
    readouts: list[str]
    #: the day the readouts are taken (default: each run's last frame)
    day: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    second_order: bool = False
    num_levels: Annotated[int, Field(ge=2, le=100)] = 4

    @field_validator("parameters", "scale", mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        return flatten(v) if isinstance(v, Mapping) else v

    @model_validator(mode="after")
    def _problem(self) -> "SensitivitySpec":
        if not self.readouts:
            raise ValueError("readouts: name at least one")
        self.problem()  # bounds, scales: one-line errors naming the parameter
        return self

    def problem(self):
        from .sensitivity import Problem

        return Problem(parameters=dict(self.parameters), outputs=list(self.readouts),
                       scale=dict(self.scale))

    def samples(self, seed: int) -> list[dict[str, float]]:
        from .sensitivity import design

        return design(self.problem(), self.method, self.n, seed,
                      calc_second_order=self.second_order, num_levels=self.num_levels)


class OutputSpec(Strict):
    """What each run keeps: readouts (default all) at times in days (default every frame),
    and optionally its HDF5 run file at an output level (``run_file``: ``"summary"``, the
    readouts plus first and last bone, agents and fields; ``"frames"``; ``"full"``; default
    ``"none"``). Run files are written by the workers into ``DIR/runs/``, so on a cluster
    the workers must share the folder's file system."""

    readouts: list[str] | None = None
    times: list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] | None = None
    run_file: Literal["none", "summary", "frames", "full"] = "none"
    #: simulated days between checkpoints of each run (None: none). A run of an experiment
    #: that was killed continues from its last checkpoint when the experiment runs again
    #: (``DIR/checkpoints/<run_id>.ckpt``, or the run file's journal with ``run_file``).
    checkpoint_every_days: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None


class Experiment(Strict):
    """A whole experiment (see the module docstring for the TOML form)."""

    name: str
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    replicates: Annotated[int, Field(ge=1, le=100_000)] | None = None
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] | None = None
    days: Days | None = None
    set: dict[str, Any] = {}
    arms: dict[str, ArmSpec]
    sweeps: list[SweepSpec] = []
    sensitivity: SensitivitySpec | None = None
    output: OutputSpec = OutputSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name("experiment", v)

    @field_validator("set", mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        return flatten(v) if isinstance(v, Mapping) else v

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: dict[str, ArmSpec]) -> dict[str, ArmSpec]:
        if not v:
            raise ValueError("an experiment needs at least one arm")
        for name in v:
            _check_name("arm", name)
        return v

    @model_validator(mode="after")
    def _replicates(self) -> "Experiment":
        if (self.replicates is None) == (self.seeds is None):
            raise ValueError("give either replicates (seeds derived from seed) or seeds "
                             "(an explicit list), not both or neither")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: repeated values in {self.seeds}")
        if self.sensitivity is not None and self.sensitivity.arm not in self.arms:
            raise ValueError(f"sensitivity.arm: no arm {self.sensitivity.arm!r} (arms: "
                             f"{', '.join(self.arms)})")
        for i, sw in enumerate(self.sweeps):
            for a in sw.arms or []:
                if a not in self.arms:
                    raise ValueError(f"sweeps.{i}.arms: no arm {a!r} (arms: "
                                     f"{', '.join(self.arms)})")
        return self

    # ------------------------------------------------------------------ expansion
    def seed_list(self) -> list[int]:
        """The replicate seeds, the same for every arm."""
        if self.seeds is not None:
            return list(self.seeds)
        return derive_seeds(self.seed, int(self.replicates))

    def parameter_sets(self, arm: str) -> list[dict[str, Any]]:
        """The swept parameter sets of ``arm`` (``[{}]`` if no sweep names it)."""
        sets: list[dict[str, Any]] = []
        for sw in self.sweeps:
            if sw.arms is None or arm in sw.arms:
                sets += sw.parameter_sets()
        if self.sensitivity is not None and self.sensitivity.arm == arm:
            sets += self.sensitivity_samples()
        return sets or [{}]

    @cached_property
    def _design(self) -> tuple[dict[str, float], ...]:
        return tuple(self.sensitivity.samples(self.seed)) if self.sensitivity else ()

    def sensitivity_samples(self) -> list[dict[str, float]]:
        """The sensitivity design's samples (seeded by the experiment seed), computed once."""
        return [dict(d) for d in self._design]

    def swept_keys(self) -> list[str]:
        """Every swept key, in order of first appearance."""
        keys: dict[str, None] = {}
        for arm in self.arms:
            for ps in self.parameter_sets(arm):
                keys.update(dict.fromkeys(ps))
        return list(keys)

    def runs(self) -> list["RunSpec"]:
        """One :class:`RunSpec` per distinct (arm, parameter set, seed), in a fixed order."""
        out = []
        seeds = self.seed_list()
        for arm_name, arm in self.arms.items():
            days = arm.days if arm.days is not None else self.days
            for ps in self.parameter_sets(arm_name):
                ov = {**parse_overrides(self.set), **parse_overrides(arm.set), **ps}
                for s in seeds:
                    out.append(RunSpec(run_id=_run_id(arm_name, ps, s), arm=arm_name,
                                       seed=int(s), params=tuple(ps.items()),
                                       scenario=arm.scenario, days=days, overrides=ov))
        # the same (arm, parameter set, seed) from two sweeps, or twice in a Morris design
        # (its trajectories share grid points), is one run
        unique = {r.run_id: r for r in out}
        return list(unique.values())

    def check(self, base_dir: Path | None = None,
              allow_large: bool = False) -> list["RunSpec"]:
        """Expand and load every run's scenario (nothing runs); raises :class:`ConfigError`
        naming the arm, the parameter set and the bad key, or a run this machine cannot do
        (unless ``allow_large``)."""
        runs = self.runs()
        seen: set[tuple] = set()
        for r in runs:
            key = (r.arm, r.params)
            if key in seen:
                continue
            seen.add(key)
            try:
                sc = load_scenario(r.resolve_scenario(base_dir), r.all_overrides(seed=r.seed))
                # a run this machine cannot do fails here, not in a worker
                check_resources(sc, allow_large=allow_large)
            except ConfigError as e:
                what = f"arm {r.arm!r}" + (f" with {dict(r.params)}" if r.params else "")
                raise ConfigError(f"experiment {self.name!r}, {what}: {e}") from None
            t = self.output.times
            if t and max(t) > sc.run.days + 1e-9:
                raise ConfigError(f"experiment {self.name!r}: output.times {max(t):g} d is "
                                  f"after the end of arm {r.arm!r} ({sc.run.days:g} d)")
        return runs

    def resolved(self) -> "Experiment":
        """The same experiment with its seeds written out (``seeds``, no ``replicates``):
        what an experiment folder stores, so its runs never depend on how seeds are derived."""
        return self.model_copy(update={"seeds": self.seed_list(), "replicates": None})

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))

    def digest(self) -> str:
        """A hash of everything that decides the experiment's results (seeds resolved)."""
        data = self.resolved().model_dump(mode="json", exclude={"description"})
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: arm, seed, swept parameters, and what it runs with."""

    run_id: str
    arm: str
    seed: int
    params: tuple[tuple[str, Any], ...]
    scenario: str
    days: float | None
    overrides: Mapping[str, Any]

    def resolve_scenario(self, base_dir: Path | None) -> str:
        """A scenario path relative to the experiment file, else the name as given."""
        if base_dir is not None and not Path(self.scenario).is_absolute():
            p = base_dir / self.scenario
            if p.is_file():
                return str(p)
        return self.scenario

    def all_overrides(self, seed: int) -> dict[str, Any]:
        ov = dict(self.overrides)
        ov["run.seed"] = int(seed)
        if self.days is not None:
            ov["run.days"] = float(self.days)
        return ov


def _run_id(arm: str, params: Mapping[str, Any], seed: int) -> str:
    if params:
        h = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
        return f"{arm}__{h[:10]}__seed{seed}"
    return f"{arm}__base__seed{seed}"


def derive_seeds(experiment_seed: int, n: int) -> list[int]:
    """``n`` distinct run seeds (31-bit) drawn reproducibly from ``experiment_seed`` (numpy
    ``SeedSequence``: the same experiment seed always gives the same list, and a longer
    list starts with the shorter one)."""
    ss = np.random.SeedSequence(int(experiment_seed))
    out = [int(c.generate_state(1, np.uint32)[0] >> np.uint32(1)) for c in ss.spawn(int(n))]
    if len(set(out)) != len(out):  # pragma: no cover - about 1 in 10^9 for 5 seeds
        raise ConfigError(f"seed {experiment_seed}: derived seeds collide; choose another seed")
    return out


def load_experiment(source: str | Path | Mapping[str, Any]) -> Experiment:
    """Read and validate an experiment (a TOML path or a mapping).

    Raises:
        ConfigError: one line naming the file, the dotted key and the reason.
    """
    if isinstance(source, Mapping):
        raw, label = dict(source), "<dict>"
    elif isinstance(source, (str, Path)):
        p = Path(source)
        label = shown(p.name)
        kind = file_kind(p, "experiment")
        if kind is None:
            raise ConfigError(f"experiment file {shown(p)} does not exist")
        if kind != "file":
            raise ConfigError(f"experiment {shown(p)} is not a file")
        raw = read_toml(p, "experiment")
    else:
        raise ConfigError(f"experiment {shown(source)}: expected a file name or a mapping")
    try:
        return Experiment.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, label).replace("scenario ", "experiment ", 1)) from None
    except RecursionError:
        raise ConfigError(f"experiment {label}: nested too deeply") from None
