"""Packaging: niche.viz behind the viz extra, scenarios and benchmarks shipped inside niche.

The absence of the viz extra is simulated in a subprocess by a meta-path finder that refuses
to import pyvista, vtk, trame and imageio (as a missing package does). The non-editable
install itself is checked by hand (it needs a fresh venv and an index), not here.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from .conftest import ROOT

VIZ_EXTRA = ("pyvista", "vtk", "vtkmodules", "trame", "trame_vtk", "trame_vuetify", "imageio",
             "imageio_ffmpeg")

_BLOCK = """
import sys
class _Block:  # as if these packages were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def _python(code: str, cwd, blocked=(), timeout=600):
    """Run ``code`` in a fresh interpreter in ``cwd`` (outside the repo), optionally with
    ``blocked`` packages made unimportable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    prelude = _BLOCK.format(blocked=set(blocked)) if blocked else ""
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _cli(args, cwd, blocked=()):
    code = f"import sys\nfrom niche.cli import main\nsys.exit(main({list(map(str, args))!r}))\n"
    return _python(code, cwd, blocked)


def _one_line_error(p, *needles):
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("niche: error: "), p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_viz_imports_without_vtk(tmp_path):
    p = _python("import sys, importlib.util, niche.viz, niche.viz.cli, niche.io.xdmf, niche.cli\n"
                "niche.cli.build_parser()\n"
                f"print(sorted(m for m in sys.modules if m.split('.')[0] in {VIZ_EXTRA!r}))\n"
                "print(importlib.util.find_spec('viz'), importlib.util.find_spec('benchmarks'))\n"
                "print(niche.viz.__name__)\n", tmp_path)
    assert p.returncode == 0, p.stderr
    imported, top_level, name = p.stdout.strip().splitlines()
    assert imported == "[]"  # nothing of VTK/pyvista/trame/imageio at import time
    assert top_level == "None None"  # no top-level viz or benchmarks package is installed
    assert name == "niche.viz"


def test_replay_commands_without_viz_extra_say_which_extra(tmp_path):
    for cmd in ("render", "view", "serve"):
        p = _cli([cmd, "nope.h5"], tmp_path, blocked=VIZ_EXTRA)
        line = _one_line_error(p, f"niche {cmd}", "viz extra", 'pip install "niche[viz]"')
        assert "Traceback" not in p.stderr and "pyvista" in line
    p = _cli(["render", "--help"], tmp_path, blocked=VIZ_EXTRA)  # parsing needs no extra
    assert p.returncode == 0 and "--movie" in p.stdout, p.stderr


def test_base_install_runs_and_writes_xdmf_without_viz_extra(tmp_path):
    code = ("import sys\nfrom niche.cli import main\n"
            "rc = main(['run', 'default', '--out', 'a.h5', '--quiet', '--set', 'run.days=0.25',"
            " '--set', 'run.frame_interval_days=0.125', '--set', 'domain.shape_voxels=[16,16,16]',"
            " '--set', 'vessels.count=1'])\n"
            "rc = rc or main(['export-xdmf', 'a.h5', '--out', 'b.xdmf'])\n"
            f"print('LOADED', sorted(m for m in sys.modules\n"
            f"                       if m.split('.')[0] in {VIZ_EXTRA!r}))\n"
            "sys.exit(rc)\n")
    p = _python(code, tmp_path, blocked=VIZ_EXTRA)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "LOADED []" in p.stdout
    for name in ("a.h5", "a.xdmf", "a.xdmf.h5", "b.xdmf", "b.xdmf.h5"):
        assert (tmp_path / name).is_file(), name  # the run's own sidecar and export-xdmf's


def test_bench_without_bench_extra_is_one_line(tmp_path):
    p = _cli(["bench", "--quick", "--out", tmp_path / "b"], tmp_path,
             blocked=("pytest_benchmark",))
    _one_line_error(p, "bench extra", 'pip install "niche[bench]"')


def test_scenarios_command_lists_shipped(cli):
    p = cli("scenarios")
    assert p.returncode == 0, p.stderr
    names = {line.split()[0]: line for line in p.stdout.splitlines()}
    for n in ("sham", "ovx", "default"):
        assert n in names
    assert "Sham-operated" in names["sham"]


def test_scenarios_resolve_by_name_from_any_folder(tmp_path, monkeypatch):
    from niche.scenario import ConfigError, find_scenario, list_scenarios, load_scenario

    monkeypatch.chdir(tmp_path)
    shipped = list_scenarios()
    assert {"sham", "ovx", "default", "reference"} <= set(shipped)
    assert find_scenario("sham").name == "sham.toml" and find_scenario("sham").is_file()
    assert load_scenario("ovx").name == "ovx"  # its 'extends = "sham.toml"' resolves too
    (tmp_path / "sham.toml").write_text('name = "local"\n')
    assert find_scenario("sham.toml").resolve() == tmp_path / "sham.toml"  # a path wins
    with pytest.raises(ConfigError, match="shipped: default, .*sham"):
        find_scenario("shamm")
    # a user's own file extends a shipped scenario by name; a local parent wins
    sub = tmp_path / "mine"
    sub.mkdir()
    (sub / "my_ovx.toml").write_text('extends = "ovx.toml"\nname = "my_ovx"\n')
    sc = load_scenario(sub / "my_ovx.toml")
    assert sc.name == "my_ovx" and sc.estrogen == load_scenario("ovx").estrogen
    (sub / "ovx.toml").write_text('name = "local_parent"\n')
    assert load_scenario(sub / "my_ovx.toml").estrogen == load_scenario("sham").estrogen
    (sub / "bad.toml").write_text('extends = "nope.toml"\n')
    with pytest.raises(ConfigError, match="parent 'nope.toml' does not exist"):
        load_scenario(sub / "bad.toml")


def test_unknown_scenario_names_the_shipped_ones(cli):
    p = cli("run", "shamm")
    _one_line_error(p, "'shamm'", "sham", "ovx_il2")


def test_pyproject_lists_every_package():
    """package-dir cannot be combined with packages.find: every package is listed by hand."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    cfg = project["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapped = {"niche": ROOT / "niche", **{k: ROOT / v for k, v in cfg["package-dir"].items()}}
    found = set()
    for pkg, folder in mapped.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            found.add(".".join((pkg, *rel)))
    assert found == listed
    deps = " ".join(project["project"]["dependencies"])
    for heavy in ("vtk", "pyvista", "trame", "imageio"):
        assert heavy not in deps
