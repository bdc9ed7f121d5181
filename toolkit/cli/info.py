"""``aetk info``: what a detector file holds, without scoring anything."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aetk.cli import console, options
from aetk.cli.status import EXIT_USAGE
from aetk.errors import MissingPluginError


def register(app: typer.Typer) -> None:
    app.command(name="info")(info_command)


def info_command(
    detector_argument: options.DetectorArgument = None,
    detector_option: options.DetectorArgumentAlso = None,
    machine: Annotated[
        str | None,
        typer.Option("--machine", help="With a fleet detector: describe this machine's detector."),
    ] = None,
    json_output: options.JsonOutput = False,
) -> None:
    """Describe a detector file: who wrote it and when, its components, training and threshold.

    The same summary as 'aetk fit' prints (with --json, the same keys as 'aetk fit --json', and
    aetk_version, created, schema_version and the plugins that fitted it). The file is read and
    verified as 'aetk score' reads it, so a file this aetk cannot use is refused here too.
    """
    from aetk_core.describe import detector_lines
    from aetk_core.fileio import given_detector

    from aetk.cli.describe import fleet_lines, print_described
    from aetk.detect.detector_file import read_detector
    from aetk.fleet.detector import FleetDetector, from_any_manifest, machine_of

    detector_path = given_detector(detector_argument, detector_option, "detector.aetk")
    manifest, tensors = read_detector(detector_path)
    written = {
        "aetk_version": manifest.get("aetk_version"),
        "created": manifest.get("created"),
        # The file's own schema: an older one is migrated as it is read.
        "schema_version": manifest.get("migrated_from_schema", manifest["schema_version"]),
    }
    try:
        loaded = from_any_manifest(detector_path, manifest, tensors)
    except MissingPluginError as exc:
        _describe_without_plugin(detector_path, manifest, written, exc, json_output)
        raise typer.Exit(EXIT_USAGE) from None
    if machine is None and isinstance(loaded, FleetDetector):
        summary = loaded.summary(detector_path)
        lines = fleet_lines(summary, loaded.machine_groups())
    else:
        detector, conditions = machine_of(loaded, detector_path, machine)
        summary = detector.summary(detector_path)
        if machine is not None:
            summary.update(machine=machine, conditions=conditions)
        entry = manifest if machine is None else manifest["fleet"]["machines"][machine]
        summary["plugins"] = _plugins(entry["components"])
        lines = [*detector_lines(summary), _plugins_line(summary["plugins"])]
        if summary["method"]:
            lines.append(f"method: {summary['method']}")
    summary.update(written)
    if json_output:
        print(json.dumps(summary))
        return
    headline = str(detector_path) + ("" if machine is None else f" (machine {machine})")
    provenance = _provenance(written, read_as=manifest["schema_version"])
    print_described(console.stdout, headline, [provenance, *lines])


def _describe_without_plugin(
    detector_path: Path,
    manifest: dict[str, Any],
    written: dict[str, Any],
    missing: MissingPluginError,
    json_output: bool,
) -> None:
    """What the file itself says when a plugin it needs is missing here: who wrote it, when, and
    which plugins fitted it; then the one-line error naming the plugin to install."""
    from aetk.cli.describe import print_described

    fleet = manifest.get("fleet")
    entry = next(iter(fleet["machines"].values())) if fleet else manifest
    plugins = _plugins(entry["components"])
    if json_output:
        described = {"detector": str(detector_path), **written, "plugins": plugins}
        print(json.dumps({**described, "error": str(missing)}))
    else:
        provenance = _provenance(written, read_as=manifest["schema_version"])
        print_described(console.stdout, str(detector_path), [provenance, _plugins_line(plugins)])
    console.error(str(missing))


def _plugins(components: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Which plugin, of which distribution and version, fitted each component, as the file
    records it (what a machine that scores with it needs installed)."""
    keys = ("name", "plugin", "distribution", "version")
    return {
        role: {key: components[role].get(key) for key in keys}
        for role in ("featurizer", "model", "scorer")
    }


def _plugins_line(plugins: dict[str, dict[str, Any]]) -> str:
    def source(plugin: dict[str, Any]) -> str:
        return f"{plugin['distribution'] or 'an unknown distribution'} {plugin['version'] or ''}"

    sources = {source(plugin) for plugin in plugins.values()}
    if len(sources) == 1:
        return f"components from {sources.pop().strip()}"
    return "components from " + ", ".join(
        f"{role} {plugin['name']}: {source(plugin).strip()}" for role, plugin in plugins.items()
    )


def _provenance(written: dict[str, Any], read_as: int) -> str:
    version = written["aetk_version"] or "an unknown version"
    when = f" on {_readable_time(written['created'])}" if written["created"] else ""
    schema = written["schema_version"]
    migrated = f", read as {read_as}" if schema != read_as else ""
    return f"written by aetk {version}{when} (detector file schema {schema}{migrated})"


def _readable_time(created: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return str(created)
    if moment.utcoffset() == datetime.timedelta(0):
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.isoformat(sep=" ", timespec="minutes")
