"""The package's one-way layout, checked by walking every module's imports with ``ast``.

Layers, left to right (a module may import its own package and any layer to its left,
never one to its right, nor a sibling package of its own layer)::

    provenance, kernels -> scenario -> core -> {biology, io} -> runner -> experiments
    -> validation -> {viz, tools, calibration} -> cli

``niche/__init__.py`` is the facade over all of them; no module inside imports it.
Imports under ``if TYPE_CHECKING:`` are annotations only and do not count; imports inside
functions do (they run). Also: no import cycle between modules at all.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "niche"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("provenance", "kernels"),
    ("scenario",),
    ("core",),
    ("biology", "io"),
    ("runner",),
    ("experiments",),
    ("validation",),
    ("viz", "tools", "calibration"),
    ("cli",),
)
RANK = {top: i for i, group in enumerate(LAYERS) for top in group}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).with_suffix("")
        parts = ("niche",) + rel.parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(mod: str, path: Path) -> set[str]:
    """Absolute names of the niche modules that ``mod`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    here = mod.split(".") if is_pkg else mod.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "niche" or a.name.startswith("niche."):
                    found.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "niche" or target.startswith("niche."):
                found.add(target)
                for a in node.names:  # "from . import x" may name a submodule
                    found.add(f"{target}.{a.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


MODULES = _modules()
GRAPH = {m: {t for t in _imports(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}


def _top(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    tops = {_top(m) for m in MODULES} - {""}
    assert tops <= set(RANK), f"packages without a layer: {sorted(tops - set(RANK))}"


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if m != "niche"))
def test_no_upward_or_sideways_import(mod):
    mine = _top(mod)
    bad = []
    for t in sorted(GRAPH[mod]):
        if t == "niche":
            bad.append(f"{t} (the facade)")
            continue
        other = _top(t)
        if other != mine and RANK[other] >= RANK[mine]:
            bad.append(t)
    assert not bad, f"{mod} (layer {RANK[mine]}) imports {bad} at run time"


def test_no_import_cycles():
    # a module's own parent packages are initialised before it, whatever it imports from
    # them ("from . import x"), so those edges close no cycle
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in GRAPH.items()}
    seen: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def dfs(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if seen.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in seen:
                dfs(t)
        stack.pop()
        seen[m] = 2

    for m in sorted(MODULES):
        if m not in seen:
            dfs(m)


def test_the_checker_sees_imports(tmp_path):
    """The walker finds relative, absolute and function-level imports (so the tests above
    can fail), and skips TYPE_CHECKING blocks."""
    assert "niche.core.model" in GRAPH["niche.runner"] or "niche.core" in GRAPH["niche.runner"]
    assert "niche.scenario" in GRAPH["niche.core.model"]
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..runner import x\n"
           "def f():\n    from ..validation import y\n")
    p = tmp_path / "probe.py"
    p.write_text(src)
    got = _imports("niche.core.probe", p)
    assert got == {"niche.validation", "niche.validation.y"}
