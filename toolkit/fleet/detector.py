"""A fleet detector: one detector file for many machines, each recording routed to its machine.

Fitting a fleet fits one detector per machine, from that machine's normal recordings only, with
one configuration, in one run (one feature cache, one process): a machine is judged against its
own normal sound and gets its own threshold (conformal, from its own held-out scores, with the
few-clips warning when it has too few), exactly as a detector fitted for it alone would. The
fleet's categories (machine, and any operating-condition columns) are learned and kept with it
(:mod:`aetk.fleet.categories`), so scoring can refuse a machine it does not know and every result
says which machine judged it.
"""

from __future__ import annotations

import datetime
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from aetk_core.fileio import resolved
from aetk_core.fleet import Fleet
from aetk_core.machines import MACHINE, SOURCES, Row, machine_rows, routable_rows
from aetk_core.machines import conditions as row_conditions

from aetk._version import __version__
from aetk.components.state import jsonable
from aetk.detect.detector import Detector
from aetk.detect.detector_file import (
    FLEET_SCHEMA,
    SHARED_FLEET_SCHEMA,
    read_detector,
    write_detector,
)
from aetk.errors import AetkError, AetkWarning, ConfigError, DetectorFileError
from aetk.fitting.config import FitConfig
from aetk.fitting.progress import FitObserver
from aetk.fleet.categories import MIN_MACHINE_FILES, Categories


class FleetDetector(Fleet):
    """Detectors of many machines under one file, and the fleet's categories; scored as every
    fleet is (:class:`aetk_core.fleet.Fleet`).

    ``source`` is how the fleet was told which recording is which machine (``folders``,
    ``dcase`` or the table's file name); scoring uses the same unless told otherwise.
    ``skipped_files``: the recordings its fit left out because no machine could be told for
    them (``path`` and ``error`` each); each machine's own skipped files are in its summary.
    """

    def __init__(
        self,
        detectors: dict[str, Detector],
        categories: Categories,
        source: str,
        rows: dict[str, Row] | None = None,
        skipped_files: list[dict[str, str]] | None = None,
    ):
        self.detectors = detectors
        self.categories = categories
        self.source = source
        #: Each machine's categories (its operating-condition columns, when constant).
        self.rows = rows or {machine: {MACHINE: machine} for machine in detectors}
        self.skipped_files = skipped_files or []

    @property
    def machines(self) -> list[str]:
        return list(self.detectors)

    @property
    def clip_seconds(self) -> float:
        """How long the clips were that the thresholds were calibrated on (every machine's
        detector has one configuration: the first one's)."""
        return next(iter(self.detectors.values())).clip_seconds

    def detector(self, machine: str) -> Detector:
        """The detector of ``machine``; an unknown machine is a :class:`ConfigError`."""
        self.categories.column(MACHINE).index(machine)
        return self.detectors[machine]

    def conditions(self, machine: str) -> dict[str, str]:
        return row_conditions(self.rows.get(machine, {MACHINE: machine}))

    def unknown(self, machine: str) -> str | None:
        try:
            self.detector(machine)
        except ConfigError as exc:
            return str(exc)
        return None

    def default_source(self) -> str:
        if self.source in SOURCES or Path(self.source).is_file():
            return self.source
        raise ConfigError(
            f"this fleet was fitted with the table {self.source}, which is no longer there: give "
            "--machines TABLE.csv or --machine NAME"
        )

    # -- the file -------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """One file: each machine's detector under its own tensor prefix (machines judged by
        one shared detector share it), and the categories."""
        tensors: dict[str, torch.Tensor] = {}
        machines = {}
        written: dict[int, dict[str, Any]] = {}
        for name, detector in self.detectors.items():
            if id(detector) not in written:
                prefix, own = f"m{len(written)}/", dict[str, torch.Tensor]()
                written[id(detector)] = {"prefix": prefix, **detector.manifest(own)}
                tensors.update((prefix + key, tensor) for key, tensor in own.items())
            machines[name] = written[id(detector)]
        tensors, aliases = _stored_once(tensors)
        fleet: dict[str, Any] = {
            "source": self.source,
            "categories": self.categories.as_dict(),
            "rows": self.rows,
            "machines": machines,
        }
        if self.skipped_files:
            fleet["skipped_files"] = self.skipped_files
        if aliases:
            fleet["aliases"] = aliases
        manifest = {
            "aetk_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "fleet": fleet,
        }
        path = Path(path)
        schema = SHARED_FLEET_SCHEMA if aliases else FLEET_SCHEMA
        write_detector(path, jsonable(manifest), tensors, schema_version=schema)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FleetDetector:
        """Read a fleet detector file; refuses, with a clear error, anything it cannot trust."""
        return cls.from_manifest(path, *read_detector(path))

    @classmethod
    def from_manifest(
        cls, path: str | Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> FleetDetector:
        fleet = manifest.get("fleet")
        if not isinstance(fleet, dict):
            raise DetectorFileError(f"{path}: not a fleet detector (load it with Detector.load)")
        machines = fleet.get("machines")
        if not isinstance(machines, dict) or not machines:
            raise DetectorFileError(f"{path}: the fleet lists no machines")
        tensors = _with_aliases(path, tensors, fleet.get("aliases", {}))
        detectors, by_prefix = {}, {}
        networks: dict[tuple, Any] = {}
        for name, entry in machines.items():
            prefix = entry.get("prefix") if isinstance(entry, dict) else None
            if not isinstance(prefix, str):
                raise DetectorFileError(f"{path}: machine {name!r} of the fleet is malformed")
            if prefix not in by_prefix:
                own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
                detector = Detector.from_manifest(f"{path} (machine {name})", entry, own)
                _share_network(detector, own, networks)
                by_prefix[prefix] = detector
            detectors[name] = by_prefix[prefix]
        try:
            categories = Categories.from_dict(fleet.get("categories"))
        except ConfigError as exc:
            raise DetectorFileError(f"{path}: {exc}") from None
        source = fleet.get("source")
        if not isinstance(source, str):
            raise DetectorFileError(f"{path}: the fleet's machines source is not text")
        skipped = fleet.get("skipped_files", [])
        if not isinstance(skipped, list) or not all(
            isinstance(entry, dict) and {"path", "error"} <= entry.keys() for entry in skipped
        ):
            raise DetectorFileError(f"{path}: the fleet's skipped files are malformed")
        return cls(detectors, categories, source, fleet.get("rows"), skipped)

    def machine_groups(self) -> list[list[str]]:
        """The machines grouped by the detector that judges them: machines with too few
        recordings of their own share the whole fleet's; every other group is one machine."""
        groups: dict[int, list[str]] = {}
        for name, detector in self.detectors.items():
            groups.setdefault(id(detector), []).append(name)
        return list(groups.values())

    @property
    def one_network(self) -> bool:
        """Whether one conditioned network judges every machine (bound to each)."""
        return any(detector.model.conditioned for detector in self.detectors.values())

    def summary(self, output: str | Path | None = None) -> dict[str, Any]:
        """``aetk fit --json`` of a fleet: the categories, whether one network judges every
        machine, the recordings left out for want of a machine, and each machine's detector
        summary."""
        return {
            "detector": None if output is None else str(output),
            "source": self.source,
            "categories": self.categories.as_dict(),
            "one_network": self.one_network,
            "skipped_files": self.skipped_files,
            "machines": {name: d.summary() for name, d in self.detectors.items()},
        }


def fit_fleet(
    paths: Sequence[str | Path],
    source: str,
    *,
    config: FitConfig | None = None,
    observer: FitObserver | None = None,
    files: Sequence[Path] | None = None,
    **fit_options: Any,
) -> FleetDetector:
    """The fleet detector of the recordings under ``paths``, each told its machine by
    ``source``; configured by ``config``, or by ``fit_options`` as :func:`aetk.fit` takes them.
    ``files``: the recordings under ``paths``, when they were found already. A recording
    whose machine cannot be told is skipped with a warning (all of them: an error).

    With a conditioned model (``conditioned-ae``, ``machine-classifier``) one network learns
    every machine and is bound to each (:mod:`aetk.fleet.shared`). Otherwise each machine gets a
    detector fitted on its own recordings (see the module documentation); a machine with fewer
    than :data:`MIN_MACHINE_FILES` recordings is judged by a detector of all the fleet's
    recordings, with a warning; one whose recordings cannot make a detector is named in the
    error."""
    from aetk.fitting.stages import conditioned, fit_config, options_config
    from aetk.fleet.shared import fit_shared

    config = config or options_config(**fit_options)
    problems: dict[Path, str] = {}
    unrouted: dict[Path, str] = {}
    rows = routable_rows(machine_rows(paths, source, files, problems), problems, unrouted)
    if not rows:
        raise ConfigError(f"no audio files found in {', '.join(map(str, paths))}")
    for path, reason in unrouted.items():  # as an unreadable recording is: skipped, named
        warnings.warn(f"skipped {path}: {reason}", AetkWarning, stacklevel=2)
    categories = Categories.learn(rows.values())
    by_machine: dict[str, list[Path]] = {}
    for path, row in sorted(rows.items(), key=lambda item: item[1][MACHINE]):
        by_machine.setdefault(row[MACHINE], []).append(path)
    if conditioned(config):
        detectors = fit_shared(by_machine, categories, config, observer)
    else:
        detectors = _fit_each(by_machine, list(rows), lambda fs: fit_config(fs, config, observer))
    skipped = [{"path": str(path), "error": reason} for path, reason in unrouted.items()]
    return FleetDetector(
        detectors, categories, _stored_source(source), _machine_rows(rows), skipped
    )


def _fit_each(
    by_machine: dict[str, list[Path]],
    every_file: list[Path],
    fit_one: Callable[[list[Path]], Detector | None],
) -> dict[str, Detector]:
    detectors: dict[str, Detector] = {}
    pooled: list[Detector] = []
    for machine, files in by_machine.items():
        try:
            if len(files) >= MIN_MACHINE_FILES:
                detectors[machine] = _fitted(fit_one(files))
                continue
            if not pooled:
                pooled.append(_fitted(fit_one(every_file)))
        except AetkError as exc:
            raise type(exc)(f"machine {machine}: {exc}") from None
        warnings.warn(
            f"machine {machine}: {len(files)} normal recording(s), fewer than "
            f"{MIN_MACHINE_FILES}: judged by the detector of the whole fleet's recordings "
            "(and its threshold)",
            AetkWarning,
            stacklevel=3,
        )
        detectors[machine] = pooled[0]
    return detectors


def _fitted(detector: Detector | None) -> Detector:
    assert detector is not None  # one process: it is the main one
    return detector


def _stored_once(
    tensors: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Each tensor once: one that several machines share (the fleet's one network, its
    normalizer) is kept under its first name, and each other name is an alias of that one."""
    kept: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple[Any, ...], str] = {}
    for name, tensor in tensors.items():
        same = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )
        if tensor.numel() and same in first:
            aliases[name] = first[same]
        else:
            first.setdefault(same, name)
            kept[name] = tensor
    return kept, aliases


def _with_aliases(
    path: str | Path, tensors: dict[str, torch.Tensor], aliases: Any
) -> dict[str, torch.Tensor]:
    if not isinstance(aliases, dict) or not all(
        isinstance(name, str) and isinstance(target, str) for name, target in aliases.items()
    ):
        raise DetectorFileError(f"{path}: the fleet's tensor aliases are malformed")
    missing = sorted(target for target in aliases.values() if target not in tensors)
    if missing:
        raise DetectorFileError(f"{path}: detector lacks tensor {missing[0]!r}")
    return {**tensors, **{name: tensors[target] for name, target in aliases.items()}}


def _stored_source(source: str) -> str:
    return source if source in ("folders", "dcase") else str(resolved(source))


def _machine_rows(rows: dict[Path, Row]) -> dict[str, Row]:
    """Each machine's categories: the columns whose value is the same in all its recordings."""
    merged: dict[str, Row] = {}
    for row in rows.values():
        known = merged.setdefault(row[MACHINE], dict(row))
        for key in [key for key in known if known[key] != row.get(key)]:
            del known[key]
    return merged


#: Where a detector file keeps a model's network weights (the one network a detector may hold).
_NETWORK = "model.module_."


def _share_network(
    detector: Detector, tensors: dict[str, torch.Tensor], networks: dict[tuple, Any]
) -> None:
    """Machines whose network weights are the same stored tensors (one network for the fleet,
    kept once in the file) share one loaded network again, as they did when fitted: memory
    holds one copy, whatever the fleet's size. ``networks``: those loaded so far."""
    weights = tuple(
        id(tensor) for name, tensor in sorted(tensors.items()) if name.startswith(_NETWORK)
    )
    if not weights:
        return
    model = detector.model
    key = (model.name, json.dumps(jsonable(model.get_params()), sort_keys=True), weights)
    model.module_ = networks.setdefault(key, model.module_)


def load_any(path: str | Path) -> Detector | FleetDetector:
    """The detector or fleet detector in the file at ``path``."""
    return from_any_manifest(path, *read_detector(path))


def from_any_manifest(
    path: str | Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Detector | FleetDetector:
    """The detector or fleet detector that a file's manifest and tensors describe."""
    if "fleet" in manifest:
        return FleetDetector.from_manifest(path, manifest, tensors)
    return Detector.from_manifest(path, manifest, tensors)


def load_judging(
    path: str | Path, machine: str | None, machines: str | None = None
) -> tuple[Detector | FleetDetector, dict[str, str] | None]:
    """What ``aetk report``, ``watch`` and ``export`` judge with, and its conditions: with
    ``machine``, that machine's detector (:func:`load_machine`); else the file's detector as it
    is, a fleet whole. ``machines`` (how a fleet's recordings are told apart) needs a whole
    fleet."""
    loaded: Detector | FleetDetector
    if machine is None:
        loaded, found = load_any(path), None
    else:
        loaded, found = load_machine(path, machine)
    if machines is not None and not isinstance(loaded, FleetDetector):
        raise ConfigError(
            f"{path}: --machines needs a fleet detector (fitted with --machines) and no --machine"
        )
    return loaded, found


def load_machine(path: str | Path, machine: str | None) -> tuple[Detector, dict[str, str] | None]:
    """The detector at ``path``, or, for a fleet, the detector of ``machine`` (which a fleet
    needs and a single detector refuses), and the machine's conditions in the fleet (the columns
    that are the same in all its training recordings; None: a single detector)."""
    return machine_of(load_any(path), path, machine)


def machine_of(
    loaded: Detector | FleetDetector, path: str | Path, machine: str | None
) -> tuple[Detector, dict[str, str] | None]:
    """:func:`load_machine` of a file already loaded (``loaded``, read from ``path``)."""
    if isinstance(loaded, FleetDetector):
        if machine is None:
            raise ConfigError(
                f"{path}: a fleet of {len(loaded.machines)} machines "
                f"({', '.join(loaded.machines[:8])}{', ...' if len(loaded.machines) > 8 else ''})"
                ": give --machine NAME"
            )
        return loaded.detector(machine), loaded.conditions(machine)
    if machine is not None:
        raise ConfigError(f"{path}: --machine needs a fleet detector (fitted with --machines)")
    return loaded, None
