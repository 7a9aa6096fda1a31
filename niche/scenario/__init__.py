"""Scenarios: what the experimenter does, validated (pydantic) before anything runs.

Modules:
    base     the one base class of every section (:class:`Strict`) and :func:`param`
    biology  the osteoimmune parameter table (``[biology.*]``), perturbations, culture wells
    host     systemic schedules: estrogen, microbiota/SCFAs, IL-2 dosing and kinetics
    schema   the :class:`Scenario` tree, TOML loading, ``extends``, ``--set`` overrides

This layer imports only the kernels below it (nothing of the engine or the biology).
"""
from .schema import (
    CELL_TYPES,
    MAX_SEED,
    ConfigError,
    Scenario,
    find_scenario,
    list_scenarios,
    load_scenario,
    parse_overrides,
    scenario_to_toml,
    validate_raw,
)

__all__ = ["CELL_TYPES", "MAX_SEED", "ConfigError", "Scenario", "find_scenario",
           "list_scenarios", "load_scenario", "parse_overrides", "scenario_to_toml", "validate_raw"]
