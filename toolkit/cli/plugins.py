"""``aetk plugins``: what is installed, and which components each plugin registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aetk.cli import console

plugins_app = typer.Typer(
    help="List installed plugins and the components they register.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")


@plugins_app.callback()
def list_plugins(
    context: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List every plugin: distribution, version, hooks and registered components."""
    if context.invoked_subcommand is not None:
        return
    from aetk.plugin.host import get_host

    records = get_host().records()
    if json_output:
        print(json.dumps([record.as_dict() for record in records], indent=2))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("plugin", "distribution", "hooks", "components"):
        table.add_column(column)
    for record in records:
        distribution = f"{record.distribution or '?'} {record.version or ''}".strip()
        provided = {
            **record.components,
            **({"command": record.commands} if record.commands else {}),
        }
        components = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in provided.items())
        if record.error:
            components = f"[red]{record.error}[/red]"
        table.add_row(record.name, distribution, ", ".join(record.hooks), components)
    console.stdout.print(table, highlight=False)


@plugins_app.command("new")
def new_plugin_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Plugin name, like 'my-scorer'.")],
    folder: Annotated[Path, typer.Option("--dir", help="Where to create it.")] = Path("."),
) -> None:
    """Write a working plugin package (featurizer, model, scorer, tests) to start from."""
    from aetk.plugin.scaffold import new_plugin

    root = new_plugin(name, folder)
    console.stderr.print(
        f"Wrote {root}. Next: pip install -e '{root}[test]' && pytest {root}",
        markup=False,
        highlight=False,
    )
