"""The architecture stays as docs/architecture.md draws it: no import cycles between aetk's
modules, no normalise/score/verdict code in the Ray engine, one scoring path."""

from __future__ import annotations

import ast
from pathlib import Path

TOOLKIT = Path(__file__).resolve().parents[1] / "toolkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(TOOLKIT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("aetk", *parts))


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The aetk modules ``path`` imports, at any depth of the file except ``TYPE_CHECKING``
    blocks (annotations only); ``from aetk import x`` counts as importing module ``aetk.x`` when
    there is one, and the package ``aetk`` itself otherwise."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module in modules:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
    paths = sorted(TOOLKIT.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) for path in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_between_aetk_modules():
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_ray_engine_only_moves_clips_to_the_scoring_path():
    source = (TOOLKIT / "engines" / "ray.py").read_text()
    for step in ("normalizer", ".scorer", "error_map", "transform(", "> threshold"):
        assert step not in source, f"the Ray engine re-implements a scoring step: {step}"
    assert "score_clips(" in source


def test_nothing_outside_the_plugin_host_branches_on_a_component_name():
    for path in TOOLKIT.rglob("*.py"):
        if path.parent.name == "plugin":
            continue
        text = path.read_text()
        for name in ('== "identity"', '== "standardizer"', '== "normalizer"', '!= "normalizer"'):
            assert name not in text, f"{path.relative_to(TOOLKIT)} names {name}"
