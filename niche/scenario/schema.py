"""Scenario configuration: TOML files validated into a frozen pydantic model.

A scenario is a TOML file (see ``scenarios/``). It is read, optionally merged onto a
parent scenario named by ``extends``, overridden by ``--set dotted.key=value`` pairs, and
validated into :class:`Scenario`, a frozen tree of pydantic models that rejects unknown
keys and reports every problem with its dotted path. Units are part of the key names.

Errors are raised as :class:`ConfigError`, whose message is one line naming the file,
the dotted key and the reason. Files are untrusted: a name the operating system cannot
take (NUL, too long), a directory, an unreadable, empty, oversized, binary (not UTF-8) or
malformed file is a :class:`ConfigError` too, as is a value beyond the documented bounds
below (``MAX_RUN_DAYS``, ``MIN_MOVE_STEP_MIN``, ``MAX_STEP_MIN``, ``MAX_SPEED_UM_PER_MIN``,
``MAX_CELLS_PER_MM3``). What a valid scenario needs of the machine is checked separately,
before anything is allocated (:mod:`niche.scenario.limits`).
"""
from __future__ import annotations

import copy
import errno
import math
import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence

import tomli_w
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .base import Strict
from .biology import BiologyParams, InVitroConfig, Perturbation
from .host import EstrogenConfig, IL2Config, MicrobiotaConfig
from .therapy import AntiRANKLConfig, BisphosphonateConfig, PTHConfig

__all__ = [
    "ConfigError",
    "Scenario",
    "CELL_TYPES",
    "MAX_SEED",
    "load_scenario",
    "parse_overrides",
    "scenario_to_toml",
    "find_scenario",
    "list_scenarios",
    "read_toml",
    "file_kind",
    "shown",
    "check_well",
    "MAX_RUN_DAYS",
    "MIN_MOVE_STEP_MIN",
    "MAX_STEP_MIN",
    "MAX_SPEED_UM_PER_MIN",
    "MAX_CELLS_PER_MM3",
]


NonNeg = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Pos = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


#: largest run seed (seeds are non-negative int64)
MAX_SEED = 2**63 - 1

# Bounds on what a scenario may ask for. Generous for the biology, tight enough that no
# value can make a run hang or overflow (hostile input, issue 17).
#: longest run and frame interval (days): two years, more than the life left to a mouse
#: ovariectomised as a young adult (C57BL/6 median lifespan ~ 2.4 years); the model has no
#: ageing, and the longest shipped scenario runs 84 days
MAX_RUN_DAYS = 730.0
#: shortest movement tick (min): at the fastest allowed speed (``MAX_SPEED_UM_PER_MIN``) a
#: cell crosses one 10-um voxel in 0.1 min, and movement is sub-stepped anyway, so a finer
#: tick resolves nothing more (shipped ticks: 2 and 5 min)
MIN_MOVE_STEP_MIN = 0.1
#: longest field/decision/bone step (min): one week, far beyond every process the steps
#: resolve (cytokine half-lives are minutes to two days; shipped bone step 6 h)
MAX_STEP_MIN = 7 * 1440.0
#: fastest cell (um/min): leukocytes crawl at 2-25 um/min (T cells 10-12, Miller 2002;
#: neutrophils up to ~30); 100 is generous for any cell on a lattice
MAX_SPEED_UM_PER_MIN = 100.0
#: densest initial population or influx (cells per mm^3, per mm^3 per day): packed marrow
#: holds ~1e6 nucleated cells per mm^3 (a 10-um lattice holds one cell per voxel, 1e6 per
#: mm^3), so 1e7 is ten times more than the tissue can hold
MAX_CELLS_PER_MM3 = 1e7
#: fastest bone formation (um/day): mouse trabecular mineral apposition is 1-3 um/day;
#: 1000 (a 10-um voxel in hours) keeps the formed volume finite
MAX_APPOSITION_UM_PER_DAY = 1000.0
#: fastest resorption (um^3 per day per nucleus): a mouse osteoclast digs a pit of ~1e4
#: um^3 in a day or two; 1e7 keeps the resorbed volume finite
MAX_RESORPTION_UM3_PER_DAY = 1e7
#: longest scenario name (it names the default run file, ``runs/<name>_seed<seed>.h5``)
MAX_NAME_CHARS = 100
#: largest scenario or experiment file read (bytes); shipped scenarios are ~10 kB
MAX_FILE_BYTES = 4 * 2**20

Days = Annotated[float, Field(gt=0.0, le=MAX_RUN_DAYS, allow_inf_nan=False)]
Step = Annotated[float, Field(gt=0.0, le=MAX_STEP_MIN, allow_inf_nan=False)]
Density = Annotated[float, Field(ge=0.0, le=MAX_CELLS_PER_MM3, allow_inf_nan=False)]


class ConfigError(ValueError):
    """A scenario could not be read or is invalid; the message is one line."""


class RunConfig(Strict):
    """Length of the run, seed and output cadence."""

    days: Days = 7.0
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    frame_interval_days: Days = 1.0


class DomainConfig(Strict):
    """The voxel lattice: shape (z, y, x) in voxels and the voxel edge length."""

    shape_voxels: tuple[
        Annotated[int, Field(ge=4, le=1024)],
        Annotated[int, Field(ge=4, le=1024)],
        Annotated[int, Field(ge=4, le=1024)],
    ] = (48, 48, 48)
    voxel_um: Annotated[float, Field(ge=1.0, le=100.0)] = 10.0


class BoneConfig(Strict):
    """Synthetic trabecular bone: plates around the zero set of a smooth random field.

    ``bv_tv`` is met exactly (to one voxel); ``tb_th_um`` sets the plate thickness; the
    trabecular spacing follows (plate model: Tb.Sp ~ Tb.Th (1/BV.TV - 1)).
    """

    bv_tv: Annotated[float, Field(ge=0.0, le=0.6)] = 0.15
    tb_th_um: Annotated[float, Field(ge=10.0, le=500.0)] = 50.0


class VesselConfig(Strict):
    """Sinusoidal vessels: straight tubes through the marrow (entry/exit and supply)."""

    count: Annotated[int, Field(ge=0, le=1000)] = 4
    radius_um: Annotated[float, Field(gt=0.0, le=100.0)] = 10.0


class TimeConfig(Strict):
    """Multi-rate stepping. Every step is a whole multiple of ``move_step_min``."""

    move_step_min: Annotated[float, Field(ge=MIN_MOVE_STEP_MIN, le=MAX_STEP_MIN,
                                          allow_inf_nan=False)] = 2.0
    field_step_min: Step = 10.0
    decision_step_min: Step = 60.0
    bone_step_min: Step = 360.0

    @model_validator(mode="after")
    def _multiples(self) -> "TimeConfig":
        base = self.move_step_min
        for key in ("field_step_min", "decision_step_min", "bone_step_min"):
            v = getattr(self, key)
            ratio = v / base
            if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
                raise ValueError(
                    f"{key}={v} must be a whole multiple of move_step_min={base}"
                )
        return self


class FieldConfig(Strict):
    """One diffusing substrate. Concentrations are in ``units`` (pM by default)."""

    units: Literal["pM"] = "pM"
    diffusivity_um2_per_s: NonNeg
    half_life_min: Pos | None = None
    km_pM: Pos | None = None
    vessel_pM: NonNeg | None = None
    initial_pM: NonNeg = 0.0
    source: str = ""

    @property
    def decay_per_s(self) -> float:
        return 0.0 if self.half_life_min is None else math.log(2.0) / (60.0 * self.half_life_min)


class CellTypeConfig(Strict):
    """Parameters of one cell type shared by the engine's generic rules."""

    initial_per_mm3: Density = 0.0
    influx_per_mm3_per_day: Density = 0.0
    egress_per_day: NonNeg = 0.0
    speed_um_per_min: Annotated[float, Field(ge=0.0, le=MAX_SPEED_UM_PER_MIN,
                                             allow_inf_nan=False)] = 0.0
    persistence: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    lifespan_days: Pos | None = None
    chemotaxis_field: str | None = None
    chemotaxis_strength: NonNeg = 0.0
    secretion_molecules_per_s: dict[str, NonNeg] = {}
    uptake_per_s: dict[str, NonNeg] = {}
    vmax_molecules_per_s: dict[str, NonNeg] = {}
    regulatory_fraction: Fraction = 0.0
    nuclei: Annotated[int, Field(ge=1, le=100)] = 1
    resorption_um3_per_day_per_nucleus: Annotated[
        float, Field(ge=0.0, le=MAX_RESORPTION_UM3_PER_DAY, allow_inf_nan=False)] = 0.0
    apposition_um_per_day: Annotated[float, Field(ge=0.0, le=MAX_APPOSITION_UM_PER_DAY,
                                                  allow_inf_nan=False)] = 0.0
    source: str = ""


class CellsConfig(Strict):
    tcell: CellTypeConfig = CellTypeConfig()
    ilc2: CellTypeConfig = CellTypeConfig()
    monocyte: CellTypeConfig = CellTypeConfig()
    osteoclast: CellTypeConfig = CellTypeConfig()
    osteoblast: CellTypeConfig = CellTypeConfig()


#: Cell-type keys in ``[cells.*]``, in the order of their integer type codes (the one
#: list of cell types: the engine's type codes, handles and file attributes follow it).
CELL_TYPES: tuple[str, ...] = tuple(CellsConfig.model_fields)


#: output levels (``output.level``), see :class:`OutputConfig`
OUTPUT_LEVELS = ("full", "frames", "summary")
#: ``output.field_every`` of level ``"frames"`` when not given
DEFAULT_FIELD_EVERY = 10


class OutputConfig(Strict):
    """What goes into the run file.

    ``level`` sets how much of each frame is stored (readouts are stored every frame at
    every level, so the time series are the same; the level never changes the simulation):

    ``"full"`` (default)
        fields, bone and agents every frame (format version 1, the file of niche before
        output levels).
    ``"frames"``
        bone and agents every frame; fields every ``field_every`` frames (default 10),
        counted from frame 0, and always at the last frame.
    ``"summary"``
        fields, bone and agents at the first and the last frame only (the first frame is
        the initial state that before/after comparisons and resorption maps need).

    ``field_every`` (int >= 1) applies to ``"frames"`` only; ``"full"`` accepts only 1
    and ``"summary"`` none. Reduced levels write format version 2 (docs/file-format.md).
    """

    level: Literal["full", "frames", "summary"] = "full"
    field_every: Annotated[int, Field(ge=1)] | None = None
    fields: list[str] | Literal["all"] = "all"
    compression: Literal["lz4", "gzip", "none"] = "lz4"
    field_dtype: Literal["float32", "float16"] = "float32"
    #: write the XDMF sidecar (``<out>.xdmf`` + gzip ``<out>.xdmf.h5``) when the run ends
    xdmf: bool = True

    @model_validator(mode="before")
    @classmethod
    def _default_field_every(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("level") == "frames" \
                and data.get("field_every") is None:
            data = {**data, "field_every": DEFAULT_FIELD_EVERY}
        return data

    @model_validator(mode="after")
    def _field_every_level(self) -> "OutputConfig":
        n = self.field_every
        if self.level == "full" and n not in (None, 1):
            raise ValueError(f"output.field_every = {n} needs output.level = \"frames\" "
                             f"(level \"full\" stores fields every frame)")
        if self.level == "summary" and n is not None:
            raise ValueError(f"output.field_every = {n} needs output.level = \"frames\" "
                             f"(level \"summary\" stores the first and last frame only)")
        return self


class SolverConfig(Strict):
    dtype: Literal["float32", "float64"] = "float32"


class Scenario(Strict):
    """A validated, frozen scenario.

    ``rules`` picks the rule set: ``osteoimmune`` (the biology, :mod:`niche.biology`) or
    ``generic`` (the engine's parameter-driven rules). The host-factor sections
    (``estrogen``, ``microbiota``, ``il2``) and the comparator therapies (``anti_rankl``,
    ``bisphosphonate``, ``pth``; :mod:`.therapy`) are what the experimenter does to the mouse;
    ``perturbations`` what is done to cells and pathways; ``invitro`` turns the domain
    into a culture well.
    """

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)] = "unnamed"
    description: str = ""
    extends: str | None = None
    run: RunConfig = RunConfig()
    domain: DomainConfig = DomainConfig()
    bone: BoneConfig = BoneConfig()
    vessels: VesselConfig = VesselConfig()
    time: TimeConfig = TimeConfig()
    solver: SolverConfig = SolverConfig()
    fields: dict[str, FieldConfig] = {}
    cells: CellsConfig = CellsConfig()
    output: OutputConfig = OutputConfig()
    rules: Literal["osteoimmune", "generic"] = "osteoimmune"
    estrogen: EstrogenConfig = EstrogenConfig()
    microbiota: MicrobiotaConfig = MicrobiotaConfig()
    il2: IL2Config = IL2Config()
    # comparator therapies: absent (None) unless given, so an untreated scenario's
    # resolved TOML, and every number of its run, stay as they were
    anti_rankl: AntiRANKLConfig | None = None
    bisphosphonate: BisphosphonateConfig | None = None
    pth: PTHConfig | None = None
    biology: BiologyParams = BiologyParams()
    perturbations: tuple[Perturbation, ...] = ()
    invitro: InVitroConfig | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.isprintable() or "/" in v or "\\" in v:
            raise ValueError("a scenario name names the run file: printable characters, "
                             "no control characters, no '/' or '\\'")
        return v

    @field_validator("fields")
    @classmethod
    def _field_names(cls, v: dict[str, FieldConfig]) -> dict[str, FieldConfig]:
        for name in v:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"field name {name!r} must be alphanumeric (with _ or -)")
        return v

    @model_validator(mode="after")
    def _cross_refs(self) -> "Scenario":
        names = set(self.fields)
        for ct in CELL_TYPES:
            c: CellTypeConfig = getattr(self.cells, ct)
            for key in ("secretion_molecules_per_s", "uptake_per_s", "vmax_molecules_per_s"):
                for f in getattr(c, key):
                    if f not in names:
                        raise ValueError(
                            f"cells.{ct}.{key}: unknown field {f!r} (defined: {sorted(names)})"
                        )
            if c.chemotaxis_field is not None and c.chemotaxis_field not in names:
                raise ValueError(
                    f"cells.{ct}.chemotaxis_field: unknown field {c.chemotaxis_field!r}"
                )
            if c.vmax_molecules_per_s:
                for f in c.vmax_molecules_per_s:
                    if self.fields[f].km_pM is None:
                        raise ValueError(
                            f"cells.{ct}.vmax_molecules_per_s.{f}: saturable uptake needs "
                            f"fields.{f}.km_pM"
                        )
        if isinstance(self.output.fields, list):
            for f in self.output.fields:
                if f not in names:
                    raise ValueError(f"output.fields: unknown field {f!r}")
        return self

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def to_toml(self) -> str:
        return scenario_to_toml(self)


def check_well(sc: Scenario) -> None:
    """A culture well (``[invitro]``) must be taller than its layers: bone slice, medium and
    reservoir (:meth:`niche.core.lattice.Lattice.well` builds them, and raises ValueError
    for a shallower one). Checked by :func:`niche.run` before it writes anything."""
    if sc.invitro is not None:
        nb = max(1, math.ceil(sc.invitro.bone_slice_um / sc.domain.voxel_um - 1e-9))
        if nb + 2 > sc.domain.shape_voxels[0]:
            raise ConfigError(
                f"scenario {shown(sc.name)}: domain.shape_voxels: a well needs height > "
                f"{nb + 1} voxels (bone slice {nb} + medium + reservoir), got "
                f"{sc.domain.shape_voxels[0]}")


# ----------------------------------------------------------------------------- loading

def _scenarios_dir() -> Path:
    """The shipped scenarios: package data ``niche.scenarios`` (source folder ``scenarios/``)."""
    from importlib.resources import files

    try:
        return Path(str(files("niche.scenarios")))
    except ModuleNotFoundError:  # a source checkout on PYTHONPATH, not installed
        return Path(__file__).resolve().parents[2] / "scenarios"


def list_scenarios() -> dict[str, str]:
    """The shipped scenarios, ``{name: description}``, sorted by name (``niche scenarios``)."""
    out = {}
    for path in sorted(_scenarios_dir().glob("*.toml")):
        try:
            desc = tomllib.loads(path.read_text(encoding="utf-8")).get("description", "")
        except (OSError, tomllib.TOMLDecodeError):
            desc = "(unreadable)"
        out[path.stem] = str(desc)
    return out


def shown(text: Any, limit: int = 80) -> str:
    """``repr`` of a user-given name or value for a one-line message, shortened to about
    ``limit`` characters (control characters escaped)."""
    if isinstance(text, os.PathLike):
        text = str(text)
    r = repr(text)
    if len(r) <= limit:
        return r
    n = f" ({len(text)} characters)" if isinstance(text, str) else ""
    return f"{r[: limit - 25]}...{r[-20:]}{n}"


def file_kind(path: Path, what: str) -> str | None:
    """``"file"``, ``"dir"``, ``"other"``, or None when nothing is at ``path``.

    A name the operating system cannot take (a NUL character, too long) or cannot look at
    (permissions) is a :class:`ConfigError` naming ``what`` (``"scenario"``, ...).
    """
    if "\x00" in str(path):
        raise ConfigError(f"{what} file {shown(path)}: the name contains a NUL character")
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise ConfigError(f"{what} file {shown(path)}: the name is too long for the file "
                              f"system ({len(str(path))} characters)") from None
        raise ConfigError(f"{what} file {shown(path)}: {e.strerror or e}") from None
    except ValueError as e:  # a name the platform cannot encode
        raise ConfigError(f"{what} file {shown(path)}: {e}") from None
    return "file" if stat.S_ISREG(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "other"


def find_scenario(name_or_path: str | Path) -> Path:
    """Resolve a scenario path, or a bare name of a shipped scenario (``niche scenarios``)."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ConfigError(f"scenario {shown(name_or_path)}: expected a file name, a shipped "
                          "scenario's name or a mapping")
    p = Path(name_or_path)
    kind = file_kind(p, "scenario")
    if kind == "file":
        return p
    bare = not p.parent.parts
    if kind is None and bare and p.suffix == "":
        cand = _scenarios_dir() / f"{p.name}.toml"
        if file_kind(cand, "scenario") == "file":
            return cand
    if kind is not None:
        raise ConfigError(f"scenario {shown(p)} is not a file")
    if bare:
        known = ", ".join(list_scenarios())
        raise ConfigError(f"scenario file {shown(p)} does not exist and is not a shipped "
                          f"scenario (shipped: {known})")
    raise ConfigError(f"scenario file {shown(p)} does not exist")


def read_toml(path: Path, what: str = "scenario") -> dict[str, Any]:
    """The table of the TOML file ``path``; every way the file can be unusable (unreadable,
    empty, larger than ``MAX_FILE_BYTES``, not UTF-8 text, malformed) is a one-line
    :class:`ConfigError` naming ``what`` and the file."""
    label = f"{what} {shown(path.name)}"
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{label}: larger than {MAX_FILE_BYTES // 2**20} MiB, not a "
                              f"{what} file")
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{label}: not a text (UTF-8) file (byte 0x{data[e.start]:02x} at "
                          f"offset {e.start})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{label}: malformed TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{label}: malformed TOML: nested too deeply") from None
    if not raw:
        raise ConfigError(f"{label}: the file is empty (no keys)")
    return raw


def _deep_merge(base: dict, top: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _load_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"scenario {shown(path.name)}: 'extends' forms a cycle")
    raw = read_toml(path)
    parent = raw.get("extends")
    if parent is not None:
        label = f"scenario {shown(path.name)}: extends"
        if not isinstance(parent, str):
            raise ConfigError(f"{label}: must be a file name string")
        ppath = (path.parent / parent)
        shipped = _scenarios_dir() / parent
        if (file_kind(ppath, label) != "file" and Path(parent).name == parent
                and file_kind(shipped, label) == "file"):
            ppath = shipped  # a user's file extending a shipped scenario by name
        if file_kind(ppath, label) != "file":
            raise ConfigError(f"{label}: parent {shown(parent)} does not exist")
        raw = _deep_merge(_load_raw(ppath, seen + (path,)), raw)
    return raw


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, KeyError):
        return text  # a bare string
    except RecursionError:
        raise ConfigError(f"--set value {shown(text)}: nested too deeply") from None


def parse_overrides(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn ``["a.b=1", ...]`` (or a mapping) into ``{"a.b": value}``.

    Values are parsed as TOML values (``1``, ``2.5``, ``true``, ``[1,2,3]``, ``"s"``); a
    value that is not valid TOML is taken as a plain string.
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        for key in items:
            if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
                raise ConfigError(f"override key {shown(key)}: expected a dotted key such "
                                  "as run.days")
        return dict(items)
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ConfigError(f"overrides {shown(items)}: expected a list of KEY=VALUE strings "
                          "or a mapping")
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"--set {shown(item)}: expected KEY=VALUE (e.g. run.days=3)")
        key, _, value = item.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {shown(item)}: bad key {shown(key)}")
        out[key] = _parse_value(value.strip())
    return out


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set each dotted key in a copy of ``raw``. A part that is a whole number indexes a
    list (an array of tables such as ``[[perturbations]]``): ``perturbations.1.day``; an
    index out of range, a non-number on a list, or a step into a value is a ConfigError
    naming the key and why."""
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        parts = key.split(".")
        node: Any = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = shown(".".join(parts[:i]))
            if isinstance(node, list):
                if not (part.isascii() and part.isdigit()):
                    raise ConfigError(f"override {shown(key)}: {where} is a list (an array "
                                      f"of tables), index it with a number 0..{len(node) - 1}"
                                      f", not {shown(part)}" if node else
                                      f"override {shown(key)}: {where} is an empty list")
                j = int(part)
                if j >= len(node):
                    raise ConfigError(f"override {shown(key)}: index {j} is out of range ("
                                      f"{where} has {len(node)} "
                                      f"entr{'y' if len(node) == 1 else 'ies'})")
                part = j
            elif not isinstance(node, dict):
                raise ConfigError(f"override {shown(key)}: {where} is a value, not a table "
                                  "or list")
            if last:
                node[part] = value
                break
            nxt = node.get(part) if isinstance(node, dict) else node[part]
            if nxt is None:
                after = parts[i + 1]
                if after.isascii() and after.isdigit():
                    raise ConfigError(
                        f"override {shown(key)}: index {int(after)} is out of range "
                        f"({shown('.'.join(parts[:i + 1]))} is not set, it has no entries; "
                        "give the whole list instead)")
                nxt = node[part] = {}
            elif isinstance(nxt, tuple):  # a scenario dumped by pydantic holds tuples
                nxt = node[part] = list(nxt)
            node = nxt
    return raw


def format_errors(err: ValidationError, label: str) -> str:
    msgs = []
    for e in err.errors():
        loc = ".".join(str(p) if str(p).isprintable() and len(str(p)) <= 80 else shown(p)
                       for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        inp = e.get("input")
        got = ("" if e["type"] in ("extra_forbidden", "missing") or isinstance(inp, dict)
               else f" (got {shown(inp)})")
        msgs.append(f"{loc or '<root>'}: {msg}{got}")
    return f"scenario {label}: " + "; ".join(msgs)


def validate_raw(raw: Mapping[str, Any], label: str = "<dict>") -> Scenario:
    """Validate a raw mapping into a :class:`Scenario` (raises :class:`ConfigError`)."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, label)) from None


def load_scenario(
    source: str | Path | Mapping[str, Any],
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> Scenario:
    """Load and validate a scenario.

    Args:
        source: a TOML file path, a bare name of a shipped scenario (e.g.
            ``"default"``; ``niche scenarios`` lists them), or an already-parsed mapping.
        overrides: ``["run.days=3", ...]`` or ``{"run.days": 3}``; applied before validation.

    Returns:
        The frozen, validated :class:`Scenario`.

    Raises:
        ConfigError: with a one-line message naming the file, dotted key and reason.
    """
    ov = parse_overrides(overrides)
    if isinstance(source, Mapping):
        raw, label = dict(source), "<dict>"
    else:
        path = find_scenario(source)
        raw, label = None, shown(path.name)
    try:
        if raw is None:
            raw = _load_raw(path)
        raw = _apply_overrides(raw, ov)
        return validate_raw(raw, label)
    except RecursionError:  # tables or arrays nested thousands deep
        raise ConfigError(f"scenario {label}: nested too deeply") from None


def scenario_to_toml(sc: Scenario) -> str:
    """The resolved scenario as TOML text (``None`` values omitted)."""
    data = sc.model_dump(mode="json", exclude_none=True)
    data.pop("extends", None)
    # the default level is left out so that a "full" run file is the one niche wrote
    # before output levels existed (same scenario_toml, golden hashes unchanged)
    if data.get("output", {}).get("level") == "full":
        del data["output"]["level"]
    return tomli_w.dumps(data)
