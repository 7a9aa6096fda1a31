"""Scenario loading, validation, overrides and error messages."""
import pytest

from niche.scenario import ConfigError, load_scenario, parse_overrides, scenario_to_toml

from .conftest import SCENARIOS


def test_default_loads_and_round_trips():
    sc = load_scenario(SCENARIOS / "default.toml")
    assert sc.name == "default"
    assert len(sc.fields) >= 8
    again = load_scenario(__import__("tomllib").loads(scenario_to_toml(sc)))
    assert again == sc.model_copy(update={"extends": None})  # the resolved text has no parent


def test_bare_name_resolves():
    assert load_scenario("default").name == "default"


def test_overrides_from_list_and_mapping():
    sc = load_scenario("default", ["run.days=3", "cells.tcell.speed_um_per_min=8",
                                   "domain.shape_voxels=[8,9,10]"])
    assert sc.run.days == 3 and sc.cells.tcell.speed_um_per_min == 8
    assert sc.domain.shape_voxels == (8, 9, 10)
    sc2 = load_scenario("default", {"fields.TNF.half_life_min": 20})
    assert sc2.fields["TNF"].half_life_min == 20


def test_frozen():
    sc = load_scenario("default")
    with pytest.raises(Exception):
        sc.run.days = 5


@pytest.mark.parametrize("override, needle", [
    ({"run.dayz": 1}, "run.dayz: unknown key"),
    ({"run.days": "many"}, "run.days: Input should be a valid number"),
    ({"cells.tcell.lifespan_days": -1}, "cells.tcell.lifespan_days: Input should be greater than 0"),
    ({"fields.TNF.diffusivity_um2_per_s": -5}, "fields.TNF.diffusivity_um2_per_s"),
    ({"cells.monocyte.chemotaxis_field": "NOPE"}, "unknown field 'NOPE'"),
    ({"time.field_step_min": 3}, "whole multiple of move_step_min"),
    ({"domain.shape_voxels": [2, 10, 10]}, "domain.shape_voxels.0"),
])
def test_errors_name_the_key(override, needle):
    with pytest.raises(ConfigError) as e:
        load_scenario("default", override)
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg
    assert "default.toml" in msg


def test_malformed_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[run\ndays = 1\n")
    with pytest.raises(ConfigError, match="malformed TOML"):
        load_scenario(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "nope.toml")


def test_extends_merges(tmp_path):
    p = tmp_path / "child.toml"
    p.write_text(f'extends = "{(SCENARIOS / "default.toml").as_posix()}"\nname = "child"\n'
                 "[run]\ndays = 2\n")
    sc = load_scenario(p)
    assert sc.name == "child" and sc.run.days == 2 and "TNF" in sc.fields


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["run.days"])
    with pytest.raises(ConfigError, match="is a value, not a table"):
        load_scenario("default", {"run.days.x": 1})
