"""Overrides that reach into lists (arrays of tables): ``microbiota.interventions.0.dose_mM``,
``perturbations.1.day``; bad indices are one-line ConfigErrors naming the key and why."""
import pytest

from niche.cli import main
from niche.runner import with_overrides
from niche.scenario import ConfigError, load_scenario

TWO = """extends = "sham.toml"
name = "two"
[[perturbations]]
kind = "deplete"
target = "treg"
day = 14.0
[[perturbations]]
kind = "knockout"
pathway = "monocyte_il2_stat1"
day = 20.0
"""


@pytest.fixture
def two(tmp_path):
    p = tmp_path / "two.toml"
    p.write_text(TWO)
    return p


def test_list_elements_can_be_overridden(two):
    sc = load_scenario("ovx_scfa", ["microbiota.interventions.0.dose_mM=50"])
    assert sc.microbiota.interventions[0].dose_mM == 50.0
    assert load_scenario("ovx_scfa").microbiota.interventions[0].dose_mM != 50.0
    sc = load_scenario(two, {"perturbations.1.day": 3, "perturbations.0.target": "ilc2"})
    assert [(p.day, p.target) for p in sc.perturbations] == [(14.0, "ilc2"), (3.0, None)]
    # a whole entry, and a scenario object (whose lists pydantic holds as tuples)
    sc = load_scenario(two, ['perturbations.0={kind="deplete", target="monocyte", day=1.0}'])
    assert (sc.perturbations[0].target, sc.perturbations[0].day) == ("monocyte", 1.0)
    again = with_overrides(sc, {"perturbations.1.day": 5.0})
    assert [p.day for p in again.perturbations] == [1.0, 5.0]


def test_an_index_past_the_shipped_list_is_refused():
    with pytest.raises(ConfigError, match=r"override 'microbiota\.interventions\.1\.dose_mM': "
                                          r"index 1 is out of range \('microbiota\."
                                          r"interventions' has 1 entry\)"):
        load_scenario("ovx_scfa", ["microbiota.interventions.1.dose_mM=50"])


@pytest.mark.parametrize("key, why", [
    ("perturbations.2.day=3", r"index 2 is out of range \('perturbations' has 2 entries\)"),
    ("perturbations.first.day=3", r"'perturbations' is a list .* number 0\.\.1, not 'first'"),
    ("run.days.0=3", r"'run\.days' is a value, not a table or list"),
    ("perturbations.0.day.1=3", r"'perturbations\.0\.day' is a value"),
])
def test_bad_list_overrides_name_the_key_and_why(two, key, why):
    with pytest.raises(ConfigError, match=why) as e:
        load_scenario(two, [key])
    assert str(e.value).startswith(f"override '{key.partition('=')[0]}'")
    assert "\n" not in str(e.value)


def test_index_into_an_absent_list_says_so():
    with pytest.raises(ConfigError, match=r"'perturbations\.0\.day': index 0 is out of range "
                                          r"\('perturbations' is not set"):
        load_scenario("sham", ["perturbations.0.day=3"])


def test_cli_set_reaches_list_elements_and_refuses_bad_indices(tmp_path, capsys):
    out = tmp_path / "x.h5"
    rc = main(["run", "ovx_scfa", "--out", str(out), "--quiet",
               "--set", "microbiota.interventions.4.dose_mM=50"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists() and len(err.splitlines()) == 1
    assert "microbiota.interventions.4.dose_mM" in err and "out of range" in err
