"""Built-in plugins use only the public aetk API, exactly as a third-party plugin would."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import aetk

PLUGINS = sorted((Path(__file__).resolve().parents[1] / "plugins").glob("*.py"))


def aetk_uses(tree: ast.AST) -> list[str]:
    """Every aetk name a module imports or reads as an attribute of ``aetk``."""
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            used += [alias.name for alias in node.names if alias.name.split(".")[0] == "aetk"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aetk":
            if node.module == "aetk":
                used += [f"aetk.{alias.name}" for alias in node.names]
            else:
                used.append(node.module)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "aetk"
        ):
            used.append(f"aetk.{node.attr}")
    return used


@pytest.mark.parametrize("path", PLUGINS, ids=[path.name for path in PLUGINS])
def test_plugin_modules_use_only_the_public_api(path):
    public = {"aetk", *(f"aetk.{name}" for name in aetk.__all__)}
    private = [name for name in aetk_uses(ast.parse(path.read_text())) if name not in public]
    assert not private, f"{path.name} uses aetk internals: {sorted(set(private))}"


def test_the_check_sees_internal_imports():
    tree = ast.parse("import aetk\nfrom aetk.fitting.trainer import fit_model\naetk.Internal\n")
    public = {"aetk", *(f"aetk.{name}" for name in aetk.__all__)}
    assert [name for name in aetk_uses(tree) if name not in public] == [
        "aetk.fitting.trainer",
        "aetk.Internal",
    ]


def test_public_names_resolve():
    for name in aetk.__all__:
        assert getattr(aetk, name) is not None, name
