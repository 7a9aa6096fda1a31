"""`niche bench --quick` runs the whole benchmark suite at tiny sizes and writes its record."""
import json

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
