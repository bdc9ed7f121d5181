"""Categories (machine, operating condition) as numbers a network can take, by the method text's
rule: a column with fewer than :data:`ONE_HOT_LIMIT` values is one-hot encoded (numbering the
values 1, 2, 3 would invent a distance between machines); one with more is a learned embedding of
:func:`embedding_size` numbers (a one-hot vector that long would be mostly zeros and give the
network as many weights per value as it has rows of data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aetk.errors import ConfigError

ONE_HOT_LIMIT = 50
#: A machine with fewer normal recordings is judged with the help of the whole fleet's: alone,
#: it could neither compare a recording with another nor hold one out for its threshold.
MIN_MACHINE_FILES = 4
ONE_HOT, EMBEDDING = "one-hot", "embedding"


def embedding_size(values: int) -> int:
    """Numbers per value of a learned embedding: 1.6 × values^0.56, rounded, at most 50 (a
    common rule of thumb for tabular networks): 50 values → 14, 60 → 16, 1,000 → 77 → 50."""
    return max(1, min(50, round(1.6 * values**0.56)))


@dataclass(frozen=True)
class Column:
    """One categorical column: its name and its values, sorted, as learned at fit."""

    name: str
    values: tuple[str, ...]

    @property
    def encoding(self) -> str:
        return ONE_HOT if len(self.values) < ONE_HOT_LIMIT else EMBEDDING

    @property
    def width(self) -> int:
        """Numbers this column adds to a network's input."""
        return len(self.values) if self.encoding == ONE_HOT else embedding_size(len(self.values))

    def index(self, value: str) -> int:
        try:
            return self.values.index(value)
        except ValueError:
            known = ", ".join(self.values[:20]) + (", ..." if len(self.values) > 20 else "")
            raise ConfigError(
                f"unknown {self.name} {value!r}: the detector knows {known}"
            ) from None


@dataclass(frozen=True)
class Categories:
    """The categorical columns of a fleet, learned from its training recordings."""

    columns: tuple[Column, ...]

    @classmethod
    def learn(cls, rows: Iterable[Mapping[str, str]]) -> Categories:
        values: dict[str, set[str]] = {}
        for row in rows:
            for name, value in row.items():
                values.setdefault(name, set()).add(value)
        return cls(tuple(Column(name, tuple(sorted(found))) for name, found in values.items()))

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise ConfigError(f"no category column {name!r}")

    def indices(self, rows: Iterable[Mapping[str, str]]) -> np.ndarray:
        """``[rows, columns]`` value indices; an unknown value is a :class:`ConfigError`."""
        return np.array(
            [[column.index(row.get(column.name, "")) for column in self.columns] for row in rows],
            dtype=np.int64,
        ).reshape(-1, len(self.columns))

    def one_hot(self, rows: Iterable[Mapping[str, str]]) -> np.ndarray:
        """``[rows, Σ widths of one-hot columns]``: the one-hot part of each row's encoding
        (embedding columns are learned by the network that uses them, from :meth:`indices`)."""
        indices = self.indices(rows)
        blocks = [
            np.eye(len(column.values), dtype=np.float32)[indices[:, position]]
            for position, column in enumerate(self.columns)
            if column.encoding == ONE_HOT
        ]
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(indices), 0), np.float32)

    def as_dict(self) -> list[dict[str, Any]]:
        return [
            {"name": c.name, "values": list(c.values), "encoding": c.encoding, "width": c.width}
            for c in self.columns
        ]

    @classmethod
    def from_dict(cls, data: Any) -> Categories:
        if not isinstance(data, list) or not all(
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("values"), list)
            for entry in data
        ):
            raise ConfigError("the fleet's categories are malformed")
        return cls(tuple(Column(e["name"], tuple(map(str, e["values"]))) for e in data))
