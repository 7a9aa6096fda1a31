"""`niche bench --quick` runs the whole benchmark suite at tiny sizes and writes its record."""
import contextlib
import json

import pytest

from niche.tools.bench import TARGETS, run_bench


def test_bench_quick_smoke(tmp_path):
    rec = run_bench(tmp_path, quick=True, e2e_days=0.05)
    groups = {r["group"] for r in rec["rows"]}
    for g in ("stream", "field", "field_numpy", "secretion", "move", "move_mesa", "handles",
              "remodel", "morphometry", "frame_write", "full_step"):
        assert g in groups, g
    assert all(r["median_s"] > 0 for r in rec["rows"])
    on_disk = json.loads((tmp_path / "bench.json").read_text())
    assert on_disk["commit"] and on_disk["machine"]["cpus"] >= 1
    assert set(on_disk["targets"]) == set(TARGETS)
    md = (tmp_path / "bench.md").read_text()
    assert "| benchmark |" in md and "| target |" in md and "STREAM triad" in md
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    assert rec["e2e"]["frames"] >= 2 and rec["e2e"]["peak_bytes"] > 0
    assert rec["compile"]["cold_s"] > 0


def test_throughput_cases_and_report(tmp_path, monkeypatch):
    """The throughput benchmark on tiny cases: per-core figures, phases, the report; the
    --against path compares two source trees (here the same one twice)."""
    from pathlib import Path

    import niche.tools.throughput as tp

    tiny = [("sham tiny", "sham", {"domain.shape_voxels": [12, 12, 12], "vessels.count": 1},
             1, False),
            ("reference tiny", "reference", {"domain.shape_voxels": [12, 12, 12],
                                             "vessels.count": 1}, 1, True)]
    here = Path(tp.__file__).resolve().parents[2]
    monkeypatch.setattr(tp, "_checkout", lambda rev: contextlib.nullcontext(here))
    rec = tp.run_throughput(tmp_path, days=0.1, ref_days=0.1, against="HEAD", cases=tiny,
                            progress=None)
    assert [c["case"] for c in rec["cases"]] == ["sham tiny", "reference tiny"]
    for c in rec["cases"]:
        t = c["this"]
        assert t["days"] == pytest.approx(0.1, abs=0.01) and t["core_s"] > 0
        assert t["days_per_core_min"] == pytest.approx(t["days"] / (t["core_s"] / 60))
        assert t["cell_days"] > 0 and abs(sum(t["phases"].values()) - 1) < 1e-9
        assert c["speedup"] > 0
    assert rec["cases"][1]["this"]["file_bytes"] > 0 and rec["cases"][0]["this"]["file_bytes"] == 0
    md = (tmp_path / "throughput.md").read_text()
    assert "| sham tiny | 1 |" in md and "speed-up" in md and "movement" in md
    assert "wall seconds per simulated day" in md
    assert json.loads((tmp_path / "throughput.json").read_text())["against"] == "HEAD"

