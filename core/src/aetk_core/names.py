"""The machine, domain and label that DCASE and MIMII file names say: the one reading of such
names, for aetk's fleets, evaluation groups and labels, for its check of the training files, and
for the ``machine`` recording check of aetk and aetk-runtime."""

from __future__ import annotations

import re
from pathlib import Path

#: A DCASE section (``section_00``); its number is the group.
SECTION = re.compile(r"section_(\d+)", re.IGNORECASE)
_ID = re.compile(r"(?:^|_)id_?(\d+)(?:_|$)", re.IGNORECASE)
_ONLY_ID = re.compile(r"^(?:id|section)_?\d+$", re.IGNORECASE)
_DOMAIN = re.compile(r"_(source|target)_", re.IGNORECASE)
NORMAL, ANOMALY = 0, 1
#: The words that label a recording, in its name or a folder's (``anomaly_id_00_0001.wav``).
LABEL_TOKENS = {"normal": NORMAL, "anomaly": ANOMALY, "abnormal": ANOMALY, "anomalous": ANOMALY}
_TOKEN = re.compile(r"[^A-Za-z0-9]+")


def named_machine(name: str) -> str | None:
    """The machine a DCASE or MIMII name says, ``section_NN`` or ``id_NN``
    (``section_00_source_test_…``, ``normal_id_02_…``, ``normal_id02_…``, a folder ``id_00``);
    None when it says none."""
    section = SECTION.search(name)
    if section is not None:
        return f"section_{section[1]}"
    machine_id = _ID.search(name)
    return None if machine_id is None else f"id_{machine_id[1]}"


def named_domain(name: str) -> str | None:
    """``source`` or ``target`` when a DCASE name says its domain, else None."""
    domain = _DOMAIN.search(name)
    return None if domain is None else domain[1].lower()


def names_only_a_machine(name: str) -> bool:
    """A name that is nothing but a machine's ID or section (a MIMII ``id_00`` folder)."""
    return _ONLY_ID.match(name) is not None


def labels_said(name: str) -> set[int]:
    """The labels a name's words say (:data:`LABEL_TOKENS`): none, one, or both."""
    tokens = (token.lower() for token in _TOKEN.split(name) if token)
    return {LABEL_TOKENS[token] for token in tokens if token in LABEL_TOKENS}


def named_anomaly(path: str | Path) -> bool:
    """Whether the file's own name says it is a faulty recording (``anomaly_id_00_0001.wav``),
    whatever its folders say (a project folder may be called ``anomaly_detection``)."""
    return labels_said(Path(path).stem) == {ANOMALY}
