"""Which machine (and operating condition) each recording comes from, for aetk's fleets and for
aetk-runtime scoring a folder of a fleet's exported detectors.

Three sources, as ``aetk fit --machines``, ``aetk score --machines`` and ``aetk-runtime score
--machines`` take them:

- ``folders``: each sub-folder of a given folder is one machine, named by the folder
  (``fleet/pump-07/a.wav`` is machine ``pump-07``).
- ``dcase``: the section and the attributes in DCASE and MIMII file names:
  ``section_00_source_train_normal_0001_vel_10_loc_A.wav`` is machine ``section_00`` with the
  columns ``domain`` = ``source``, ``vel`` = ``10`` and ``loc`` = ``A``;
  ``normal_id02_0003.wav`` is machine ``id_02``.
- a CSV table (``machines.csv``): the columns ``file`` and ``machine``, and any further
  categorical columns (load, speed); relative paths are relative to the table's folder.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from aetk_core.audio import find_audio_files
from aetk_core.errors import ConfigError
from aetk_core.fileio import resolved
from aetk_core.names import SECTION, named_domain, named_machine
from aetk_core.results import ScoreResult

SOURCES = ("folders", "dcase")
MACHINE = "machine"
_ATTRIBUTE = re.compile(r"_([A-Za-z][A-Za-z0-9-]*)_([^_]+)")

#: A recording's categories: ``{"machine": ..., column: value, ...}``, values as text.
Row = dict[str, str]


def check_source(source: str) -> str:
    """``folders``, ``dcase``, or a CSV file that exists."""
    if source in SOURCES:
        return source
    if Path(source).suffix.lower() != ".csv":
        raise ConfigError(f"--machines must be 'folders', 'dcase' or a table.csv, not {source!r}")
    if not Path(source).is_file():
        raise ConfigError(f"--machines {source}: no such table")
    return source


def machine_rows(
    paths: Sequence[str | Path],
    source: str,
    files: Sequence[Path] | None = None,
    unrouted: dict[Path, str] | None = None,
) -> dict[Path, Row]:
    """Every recording under ``paths`` with its categories, in the order found; a recording
    whose machine cannot be told is a :class:`ConfigError` naming it, or, with ``unrouted``,
    is put there with the reason (so that a batch goes on with the others). ``files``: the
    recordings under ``paths`` when they were found already (the folders are then not walked
    again)."""
    source = check_source(source)
    files = find_audio_files(paths) if files is None else files
    row_of = _row_teller(paths, source)
    rows = {}
    for path in files:
        try:
            rows[path] = row_of(path)
        except ConfigError as exc:
            if unrouted is None:
                raise
            unrouted[path] = str(exc).removeprefix(f"{path}: ")
    return rows


def _row_teller(paths: Sequence[str | Path], source: str) -> Callable[[Path], Row]:
    """How ``source`` tells one recording's categories (a :class:`ConfigError` naming it when
    it cannot); a source that cannot be used at all is refused here."""
    if source == "dcase":
        return dcase_row
    if source == "folders":
        roots = [Path(path) for path in paths]
        for root in roots:
            if not root.is_dir():
                raise ConfigError(f"{root}: --machines folders needs folders of machine folders")
        return lambda path: _folder_row(roots, path)
    table = read_table(Path(source))

    def listed(path: Path) -> Row:
        row = table.get(resolved(path))
        if row is None:
            raise ConfigError(f"{path}: not listed in {source} (its 'file' column)")
        return row

    return listed


def routed_rows(
    paths: Sequence[str | Path],
    files: Sequence[Path] | None = None,
    *,
    source: str | None = None,
    named: Row | None = None,
    unrouted: dict[Path, str] | None = None,
) -> dict[Path, Row]:
    """Each recording under ``paths`` (``files``, when they were found already) with its
    categories: ``named`` for all of them (a machine the user named for them all), or told by
    ``source`` (:func:`machine_rows`, with ``unrouted``); one of the two."""
    if named is not None:
        return {path: dict(named) for path in (find_audio_files(paths) if files is None else files)}
    if source is None:
        raise ValueError("routed_rows needs a source or a named machine")
    return machine_rows(paths, source, files, unrouted)


def routable_rows(
    routed: dict[Path, Row],
    problems: dict[Path, str],
    unrouted: dict[Path, str] | None,
    unknown: Callable[[str], str | None] | None = None,
) -> dict[Path, Row]:
    """The routed recordings that can be judged: all of them, or, given ``unknown(machine)``
    (why a fleet does not know a machine, or None), those of machines it knows. The others join
    ``problems`` (recordings already found unroutable, with their reasons), which go to
    ``unrouted``; without it, or when no recording is left, the first problem is a
    :class:`ConfigError` naming its recording (nothing would be fitted or scored)."""
    kept = {}
    for path, row in routed.items():
        reason = None if unknown is None else unknown(row[MACHINE])
        if reason is None:
            kept[path] = row
        else:
            problems[path] = reason
    if problems and (unrouted is None or not kept):
        path, reason = next(iter(problems.items()))
        raise ConfigError(f"{path}: {reason}")
    if unrouted is not None:
        unrouted.update(problems)
    return kept


def score_by_machine(
    routed: dict[Path, Row],
    score: Callable[[str, list[Path]], Iterable[ScoreResult]],
    unrouted: dict[Path, str] | None = None,
) -> Iterator[ScoreResult]:
    """``score(machine, recordings)``'s results for recordings routed to their machines, each as
    soon as it comes: machine by machine, in the order each machine first appears, and in the
    recordings' order within a machine; each result with its ``machine`` and ``conditions``.
    The ``unrouted`` recordings come first, each an error with its reason (no machine, no
    threshold)."""
    for path, reason in (unrouted or {}).items():
        yield ScoreResult(str(path), None, None, None, reason)
    by_machine: dict[str, list[Path]] = {}
    for path, row in routed.items():
        by_machine.setdefault(row[MACHINE], []).append(path)
    rows = {str(path): row for path, row in routed.items()}
    for name, files in by_machine.items():
        for result in score(name, files):
            result.machine = name
            result.conditions = conditions(rows.get(result.path, {}))
            yield result


def _folder_row(roots: Sequence[Path], path: Path) -> Row:
    """A file's machine: the first folder under the given folder that holds it."""
    root = next(root for root in roots if path.is_relative_to(root))
    parts = path.relative_to(root).parts
    if len(parts) < 2:
        raise ConfigError(
            f"{path}: not inside a machine's folder (--machines folders: "
            f"{root}/MACHINE/recording.wav)"
        )
    return {MACHINE: parts[0]}


def conditions(row: Row) -> dict[str, str]:
    """A recording's categories besides its machine: its operating conditions."""
    return {column: value for column, value in row.items() if column != MACHINE}


def dcase_row(path: str | Path) -> Row:
    """The categories in a DCASE or MIMII file name (see the module documentation)."""
    name = Path(path).stem
    machine = named_machine(name)
    if machine is None:
        raise ConfigError(
            f"{path}: no section_NN or idNN in its name (--machines dcase); name machines by "
            "folder (--machines folders) or in a table (--machines table.csv)"
        )
    row = {MACHINE: machine}
    domain = named_domain(name)
    if domain:
        row["domain"] = domain
    section = SECTION.search(name)
    tail = name[section.end() :] if section else ""
    for key, value in _ATTRIBUTE.findall(re.sub(r"^.*?_(normal|anomaly)_\d+", "", tail)):
        row[key] = value
    return row


def named_machines(files: Iterable[str | Path]) -> list[str]:
    """The machines that the DCASE or MIMII names of ``files`` say they come from (sorted), when
    every name says one; ``[]`` when some name does not."""
    try:
        return sorted({dcase_row(path)[MACHINE] for path in files})
    except ConfigError:
        return []


def read_table(path: Path) -> dict[Path, Row]:
    """A machines table: resolved file path → its categories."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            table = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read the machines table ({exc})") from None
    if not table or not {"file", MACHINE} <= set(table[0]):
        raise ConfigError(f"{path}: a machines table needs the columns 'file' and 'machine'")
    rows: dict[Path, Row] = {}
    for number, entry in enumerate(table, start=2):
        file, machine = (entry.get("file") or "").strip(), (entry.get(MACHINE) or "").strip()
        if not file or not machine:
            raise ConfigError(f"{path}, line {number}: 'file' and 'machine' must not be empty")
        if "\0" in file:
            raise ConfigError(f"{path}, line {number}: the file's name holds a NUL character")
        location = Path(file) if Path(file).is_absolute() else path.parent / file
        row = {MACHINE: machine}
        row.update(
            (key, (value or "").strip())
            for key, value in entry.items()
            if key not in ("file", MACHINE) and key is not None
        )
        rows[resolved(location)] = row
    return rows
