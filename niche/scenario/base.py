"""The one base class of every scenario section, and the one way to declare a parameter.

Every section of a scenario (``[run]``, ``[biology.tcell]``, ``[il2]``, ...) is a
:class:`Strict` pydantic model: unknown keys are rejected and a validated scenario is
frozen. A documented parameter is declared with :func:`param`, which keeps its unit and
source (a citation, or ``calibrated: how``) next to the default; :func:`parameter_rows`
lists them for the generated parameter table (``docs/parameters.md``).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Strict", "param", "parameter_rows"]


class Strict(BaseModel):
    """A scenario section: unknown keys are errors, validated values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def param(value: Any, unit: str, source: str, description: str, **constraints: Any) -> Any:
    """A documented parameter: default ``value`` with ``unit`` and ``source``."""
    return Field(value, description=description,
                 json_schema_extra={"unit": unit, "source": source}, **constraints)


def parameter_rows(model: type[BaseModel], prefix: str, *, nested: bool = True,
                   dotted: bool = False) -> list[dict[str, Any]]:
    """The fields of ``model`` as rows ``{section, name, value, unit, source, description,
    documented}`` (``documented``: declared with :func:`param`).

    Args:
        model: a section class.
        prefix: its dotted section name (``"biology.tcell"``).
        nested: descend into sub-sections (their rows carry their own section).
        dotted: ``name`` is the full dotted key (``"il2.dose_iu"``) rather than the last part.
    """
    rows: list[dict[str, Any]] = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if nested and isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(parameter_rows(ann, f"{prefix}.{name}", nested=True, dotted=dotted))
            continue
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        rows.append(dict(section=prefix, name=f"{prefix}.{name}" if dotted else name,
                         value=f.default, unit=extra.get("unit", ""),
                         source=extra.get("source", ""), description=f.description or "",
                         documented="unit" in extra))
    return rows
