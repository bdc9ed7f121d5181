"""The ``aetk`` command line: typer commands, plus those plugins add through ``register_commands``.

Exit status: 0 success; 1 some input could not be processed; 2 usage or configuration error;
3 ``--fail-on-anomaly`` found an anomaly; 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from aetk.cli import console
from aetk.cli.status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from aetk.errors import AetkError, ConfigError, DetectorFileError, PluginError


def build_app() -> typer.Typer:
    """The root application with the built-in commands and every plugin's commands."""
    from aetk.cli import (
        cache,
        cv,
        demo,
        evaluate,
        export,
        fit,
        info,
        plugins,
        report,
        score,
        watch,
    )
    from aetk.plugin.host import get_host

    app = typer.Typer(
        name="aetk",
        help="Detect anomalous machine sounds, trained on recordings of a healthy machine.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root_options)
    for module in (fit, score, evaluate, report, cv, export, watch, info, demo, plugins, cache):
        module.register(app)
    get_host().add_commands(app)
    _reflow_help(app)
    return app


def _reflow_help(app: typer.Typer) -> None:
    """Each command's help, its paragraphs as flowing lines: typer keeps a docstring's line
    breaks, which at a terminal's width leave a ragged line every few words. A paragraph that
    starts with ``\\b`` keeps its lines (click's convention)."""
    import inspect

    for info in app.registered_commands:
        text = info.help or inspect.getdoc(info.callback) or ""
        info.help = "\n\n".join(
            paragraph if paragraph.startswith("\b") else " ".join(paragraph.split("\n"))
            for paragraph in text.split("\n\n")
        )
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _reflow_help(group.typer_instance)


def _print_version(asked: bool) -> None:
    if asked:
        from aetk._version import __version__

        print(f"aetk {__version__}")
        raise typer.Exit()


def _root_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print aetk's version and exit.",
        ),
    ] = False,
) -> None:
    """Detect anomalous machine sounds, trained on recordings of a healthy machine."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``aetk`` console script; exits with the status above."""
    console.show_warnings_as_lines()
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` and return its exit status (``main`` exits with it)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        # The commands see their own argument list (``aetk fit --nproc`` starts it again).
        build_app()(args=arguments, prog_name="aetk", obj={"argv": arguments})
    except SystemExit as exc:
        return (
            exc.code if isinstance(exc.code, int) else EXIT_OK if exc.code is None else EXIT_FAILED
        )
    except KeyboardInterrupt:
        console.error("interrupted")
        return EXIT_INTERRUPTED
    except (ConfigError, PluginError, DetectorFileError) as exc:
        console.error(str(exc))
        return EXIT_USAGE
    except AetkError as exc:
        console.error(str(exc))
        return EXIT_FAILED
    except Exception as exc:
        return _plugin_failed(exc)
    return EXIT_OK


def _plugin_failed(error: Exception) -> int:
    """A third-party plugin's code raised ``error``: one line naming the plugin (exit 2), its
    traceback with ``AETK_TRACE_PLUGINS=1``; anything else is aetk's own fault, and its
    traceback is the report to file."""
    from aetk.plugin.host import blame, get_host

    culprit = blame(error)
    if culprit is None or get_host().trace:
        raise error
    console.error(f"{culprit} (AETK_TRACE_PLUGINS=1 shows the traceback)")
    return EXIT_USAGE
