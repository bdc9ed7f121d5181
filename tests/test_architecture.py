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


REPO = TOOLKIT.parent
SOURCES = ("toolkit", "plugins", "core/src", "runtime/src")
LONGEST_BODY = 50


def body_lengths():
    """``(lines, file, function)`` of every function's body (its docstring left out)."""
    for root in SOURCES:
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                body = node.body
                documented = isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant
                )
                first = body[1] if documented and len(body) > 1 else body[0]
                yield node.end_lineno - first.lineno + 1, path.relative_to(REPO), node.name


def test_no_function_body_is_longer_than_fifty_lines():
    long = [row for row in body_lengths() if row[0] > LONGEST_BODY]
    assert long == [], f"function bodies over {LONGEST_BODY} lines: {long}"


def test_the_top_of_the_package_holds_only_errors_and_the_contract_kit():
    loose = sorted(
        path.name
        for path in TOOLKIT.glob("*.py")
        if not path.name.startswith("_") and path.name != "py.typed"
    )
    assert loose == ["errors.py", "testing.py"]


def test_the_rules_shared_with_the_runtime_are_defined_once():
    for name in ("def conformal_threshold", "def window_events", "class ScoreResult"):
        defined = [
            path.relative_to(REPO)
            for root in SOURCES
            for path in (REPO / root).rglob("*.py")
            if name in path.read_text()
        ]
        assert [str(path) for path in defined] == [
            "core/src/aetk_core/verdict.py"
            if name != "class ScoreResult"
            else "core/src/aetk_core/results.py"
        ], (name, defined)
