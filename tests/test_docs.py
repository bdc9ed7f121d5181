"""Meta-tests that keep the plugin surface honest: every hook documented, tested and runnable."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

import aetk
from aetk.plugin import hookspecs
from aetk.plugin.host import PluginHost

REPO = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("register_"))
HOOK_DOCS = (REPO / "docs" / "plugin_hooks.md").read_text()


def hook_section(hook: str) -> str:
    match = re.search(rf"^## `{hook}\(.*?(?=^## |\Z)", HOOK_DOCS, re.S | re.M)
    assert match, f"docs/plugin_hooks.md has no section for {hook}"
    return match.group(0)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_where_declared_and_in_docs(hook):
    function = getattr(hookspecs, hook)
    assert ":param" in function.__doc__ and ":return:" in function.__doc__
    section = hook_section(hook)
    assert "```python" in section


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    tests = "".join(path.read_text() for path in (REPO / "tests").glob("test_*.py"))
    assert f"def test_hook_{hook}(" in tests


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_examples_in_the_docs_run(hook, machine_sounds, cli, fresh_plugins):
    source = re.search(r"```python\n(.*?)```", hook_section(hook), re.S).group(1)
    module = types.ModuleType(f"docs_example_{hook}")
    exec(compile(source, f"docs/plugin_hooks.md:{hook}", "exec"), module.__dict__)
    host = PluginHost()
    host.register_plugin(module, "docs-example")
    fresh_plugins.set_host(host.load())
    components = host.plugins["docs-example"].components
    if hook == "register_commands":
        assert "threshold" in cli("--help").stdout
        return
    if hook == "register_watch_sources":
        opener, address = host.watch_source("tone:1.0,440")
        form, blocks = opener(address, None, 1, lambda: False)
        audio = np.concatenate(list(blocks), axis=1)
        assert (form.rate, form.channels, audio.shape) == (16000, 1, (1, 16000))
        return
    ((kind, (name,)),) = components.items()
    settings = [s for s in TINY["set"] if not s.startswith(f"{kind}.")]
    detector = aetk.fit(machine_sounds["train"], preset="autoencoder", **{kind: name}, set=settings)
    assert all(r.error is None for r in detector.score(machine_sounds["test"]))
