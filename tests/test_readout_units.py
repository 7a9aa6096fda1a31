"""Every readout a run writes has its own unit (no fallback), and docs/readouts.md is the
generator's output."""
from pathlib import Path

import h5py
import pytest

import niche
from niche.io.runfile import READOUT_UNITS, READOUTS

ROOT = Path(__file__).resolve().parent.parent
TINY = ["domain.shape_voxels=[16,16,16]", "run.days=0.5", "run.frame_interval_days=0.25"]
CULTURE = ["domain.shape_voxels=[4,24,24]", "run.days=0.25", "run.frame_interval_days=0.125"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("units")
    return {"sham": niche.run("sham", d / "sham.h5", overrides=TINY, progress=False).path,
            "culture": niche.run("invitro_osteoclastogenesis", d / "well.h5",
                                 overrides=CULTURE, progress=False).path}


def _units(path):
    with h5py.File(path) as f:
        return {k: f["readouts"][k].attrs.get("units") for k in f["readouts"]}


@pytest.mark.parametrize("kind", ["sham", "culture"])
def test_every_readout_of_a_run_has_an_explicit_unit(runs, kind):
    units = _units(runs[kind])
    assert len(units) > 30
    missing = sorted(k for k in units if not dict.__contains__(READOUT_UNITS, k))
    assert not missing, f"readouts without an explicit unit: {missing}"
    wrong = {k: (u, READOUT_UNITS[k]) for k, u in units.items() if u != READOUT_UNITS[k]}
    assert not wrong, f"run file units differ from READOUT_UNITS: {wrong}"


def test_spot_units_and_no_dead_entries(runs):
    spot = {"oc_s_bs": "1", "ob_s_bs": "1", "mar_um_per_day": "um/day",
            "bfr_bs_um_per_day": "um/day", "treg_frac_cd4": "1", "n_oc_per_bs_per_mm2": "1/mm^2",
            "tnf_per_producer_molecules_per_s": "molecules/s", "mean_oc_nuclei": "nuclei",
            "n_treg": "cells", "n_osteoclast": "cells", "mean_IL2_pM": "pM",
            "tb_th_um": "um", "tb_n_per_mm": "1/mm", "resorbed_mm3_per_day": "mm^3/day",
            "resorbed_area_um2": "um^2", "resorbed_area_frac": "1", "t_days": "day"}
    assert {k: READOUT_UNITS[k] for k in spot} == spot
    vivo, well = _units(runs["sham"]), _units(runs["culture"])
    assert "oc_s_bs" in vivo and "resorbed_area_um2" in well and "tb_th_um" not in well
    # every listed readout is one some run writes, and the sources say where
    assert set(READOUTS) == set(vivo) | set(well)
    for name, (_, source, meaning) in READOUTS.items():
        assert meaning.strip()
        assert name in (well if source == "culture" else vivo), (name, source)


def test_field_means_of_a_scenarios_own_field_are_pM_and_unknown_names_fail():
    assert READOUT_UNITS["mean_MYFIELD_pM"] == "pM" and "mean_MYFIELD_pM" in READOUT_UNITS
    assert READOUT_UNITS.get("n_unicorn") is None
    with pytest.raises(KeyError, match="n_unicorn.*no unit"):
        READOUT_UNITS["n_unicorn"]


def test_readout_docs_are_in_sync_and_list_every_flag():
    from niche.core.cells import State
    from niche.tools.readoutdocs import readouts_markdown, state_flags

    text = readouts_markdown()
    assert (ROOT / "docs" / "readouts.md").read_text() == text, \
        "regenerate: python -m niche.tools.readoutdocs > docs/readouts.md"
    for name in READOUTS:
        assert f"| `{name}` | {READOUT_UNITS[name]} |" in text
    flags = state_flags()
    assert [n for n, _, _ in flags] == [n for n, f in State.__members__.items() if f.value]
    assert dict((n, b) for n, b, _ in flags)["RESORBING"] == 7
    assert dict((n, m) for n, _, m in flags)["CD8"].startswith("T cell: CD8+")
