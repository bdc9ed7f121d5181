"""The documentation is tied to the code: every option of every built-in ``aetk`` command is
named in docs/cli.md (by its long or its short name)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from aetk.cli import build_app

DOCS = Path(__file__).resolve().parents[1] / "docs"
BUILT_IN = (
    "fit",
    "score",
    "evaluate",
    "report",
    "cv",
    "watch",
    "export",
    "info",
    "plugins",
    "demo",
    "cache",
)


def commands():
    group = typer.main.get_command(build_app())
    return {name: command for name, command in group.commands.items() if name in BUILT_IN}


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_option_of_the_command_is_documented(name):
    text = (DOCS / "cli.md").read_text()
    options = [
        parameter.opts
        for parameter in commands()[name].params
        if any(option.startswith("-") for option in parameter.opts)
        and "--help" not in parameter.opts
    ]
    missing = [
        opts[0]
        for opts in options
        if not any(f"{o} " in text or f"{o}]" in text or f"`{o}" in text for o in opts)
    ]
    assert missing == [], f"aetk {name}: {missing} not in docs/cli.md"


@pytest.mark.parametrize("command", ["score", "watch"])
def test_every_option_of_the_runtime_is_documented(command):
    """``aetk-runtime score``'s and ``watch``'s options, read from its parser (argparse and
    aetk-core only, so it imports here without installing the runtime), each in docs/deploy.md."""
    import argparse
    import sys

    sys.path.insert(0, str(DOCS.parent / "runtime" / "src"))
    try:
        from aetk_runtime.cli import parser
    finally:
        sys.path.pop(0)
    (commands,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    chosen = commands.choices[command]
    options = [action.option_strings for action in chosen._actions if action.option_strings]
    text = (DOCS / "deploy.md").read_text()
    missing = [
        opts
        for opts in options
        if "--help" not in opts and not any(f"`{o}" in text or f"{o} " in text for o in opts)
    ]
    assert missing == [], f"aetk-runtime {command}: {missing} not in docs/deploy.md"


def _help(*args: str) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(build_app(), [*args, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", BUILT_IN)
def test_help_shows_every_option_text_whole(name):
    """Help is rendered as rich markup, where a bracketed word such as the ``[ray]`` of
    ``pip install 'aetk[ray]'`` is a style tag and would vanish unless escaped."""
    shown = " ".join(_help(name).split())
    for parameter in commands()[name].params:
        text = (getattr(parameter, "help", None) or "").replace("\\[", "[")
        if "[" in text:
            assert " ".join(text.split()) in shown, f"aetk {name} {parameter.opts}: {text!r}"


def test_each_command_is_listed_on_one_line():
    """The command list shows each command's first paragraph: one sentence, not a paragraph
    broken where its docstring's lines break."""
    lines = _help().splitlines()
    for name in BUILT_IN:
        (line,) = [line for line in lines if line.strip("│ ").startswith(f"{name} ")]
        following = lines[lines.index(line) + 1].strip("│ ")
        assert following.startswith("╰") or following.split()[0] in BUILT_IN, (line, following)


@pytest.mark.parametrize("name", BUILT_IN)
def test_help_paragraphs_flow_at_the_terminal_width(name):
    """A docstring's line breaks are not the terminal's: on a wide terminal each paragraph of
    a command's help is one line, not broken every 90 characters where its source is."""
    import inspect

    shown = [line.strip() for line in _help(name).splitlines()]
    command = commands()[name]
    group = isinstance(command, typer.core.TyperGroup)  # its help is the group's, not a docstring
    doc = (command.help if group else inspect.getdoc(command.callback)) or ""
    for paragraph in doc.split("\n\n"):
        assert " ".join(paragraph.split()) in shown, f"aetk {name}: {paragraph!r}"
