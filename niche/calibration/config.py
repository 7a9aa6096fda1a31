"""What a calibration fits, to what, on which seeds: :class:`CalibrationConfig`.

A calibration file (TOML) names the validation rows whose headline effects are the
summary statistics, the interval each effect should fall in (its published range, with its
source), the scenario parameters to fit with their prior ranges (each with its source), the
seeds and domain of every simulated row, and the ABC-SMC budget. Example::

    name = "osteoclast-apoptosis"
    rows = ["V1"]
    replicates = 3            # seeds per arm, from the calibration block (see below)
    shape = [32, 32, 32]      # in-vivo domain (in-vitro arms keep their well)
    population = 40           # particles per generation
    generations = 4
    predictive = 20           # posterior draws simulated for the posterior predictive

    [targets.V1]
    range = [-0.30, -0.15]
    source = "Bouxsein 2005 JBMR 10.1359/JBMR.050307"

    [[parameters]]
    key = "biology.osteoclast.estrogen_apoptosis_gain"
    low = 0.5
    high = 4.0
    scale = "log"             # uniform prior on log10(value); "linear" is the default
    source = "calibrated: the hand-tuned value 2 sits in the middle of this range"

Calibration seeds and validation seeds are disjoint by construction: a calibration
simulates seeds ``CALIBRATION_SEED_BASE + 1 ..`` and ``niche validate`` refuses seeds at or
above :data:`CALIBRATION_SEED_BASE`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..scenario import ConfigError
from ..validation.run import CALIBRATION_SEED_BASE

__all__ = ["CALIBRATION_SEED_BASE", "CalibrationConfig", "FittedParameter", "Target",
           "load_calibration"]

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    """The interval a row's headline effect should fall in (the row's units: a fraction
    for "%" rows, a fold for "x", days for "d"), and where that interval comes from."""

    range: tuple[float, float]
    source: str = Field(min_length=1)

    @field_validator("range")
    @classmethod
    def _ordered(cls, v):
        lo, hi = v
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"range {list(v)} must be two finite numbers, low < high")
        return v


class FittedParameter(_Strict):
    """A scenario value to fit (dotted key, as ``--set`` takes it) with a uniform prior on
    ``[low, high]`` (``scale = "log"``: uniform in log10), and the source of that range."""

    key: str = Field(min_length=1)
    low: float
    high: float
    scale: Literal["linear", "log"] = "linear"
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _range(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"parameter {self.key}: low {self.low} and high {self.high} must "
                             "be finite with low < high")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"parameter {self.key}: a log-scale prior needs low > 0")
        return self

    def to_value(self, x: float) -> float:
        """The scenario value of prior coordinate ``x``."""
        return 10.0 ** x if self.scale == "log" else x

    @property
    def bounds(self) -> tuple[float, float]:
        """The prior's support in its own coordinate."""
        if self.scale == "log":
            return math.log10(self.low), math.log10(self.high)
        return self.low, self.high


class CalibrationConfig(_Strict):
    """A calibration: see the module docstring."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    rows: tuple[str, ...] = Field(min_length=1)
    targets: dict[str, Target]
    parameters: tuple[FittedParameter, ...] = Field(min_length=1)
    replicates: int = Field(3, ge=1, le=100)
    shape: tuple[int, int, int] | None = None
    population: int = Field(40, ge=2, le=100_000)
    generations: int = Field(4, ge=1, le=1000)
    min_epsilon: float = Field(0.0, ge=0.0)
    predictive: int = Field(20, ge=0, le=100_000)
    seed: int = Field(1, ge=0, le=2 ** 32 - 1)

    @model_validator(mode="after")
    def _consistent(self):
        missing = [r for r in self.rows if r not in self.targets]
        if missing:
            raise ValueError(f"rows {missing} have no [targets.<row>] interval")
        extra = [t for t in self.targets if t not in self.rows]
        if extra:
            raise ValueError(f"targets {extra} are not in rows {list(self.rows)}")
        keys = [p.key for p in self.parameters]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"parameters {dup} are listed twice")
        if self.shape is not None and min(self.shape) < 4:
            raise ValueError(f"shape {list(self.shape)}: every edge needs >= 4 voxels")
        return self

    @property
    def seeds(self) -> list[int]:
        """The calibration block: ``CALIBRATION_SEED_BASE + 1 .. + replicates``."""
        return [CALIBRATION_SEED_BASE + 1 + i for i in range(self.replicates)]

    def first_seed(self) -> int:
        return self.seeds[0]


def load_calibration(source: str | Path | dict) -> CalibrationConfig:
    """A :class:`CalibrationConfig` from a TOML file or a mapping; bad input is a
    :class:`~niche.scenario.ConfigError` naming the key and why."""
    from pydantic import ValidationError

    from ..scenario.schema import read_toml

    if isinstance(source, dict):
        data, where = source, "calibration"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"calibration file {str(path)!r} not found")
        data, where = read_toml(path, "calibration"), str(path)
    try:
        return CalibrationConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ConfigError(f"{where}: {loc}: {err['msg']}") from None
