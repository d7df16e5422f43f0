"""Replay: the state the log says the tables hold, and where the tables disagree.

Pure functions over plain data: entries in, expected rows out; expected and
found rows in, problems out. :mod:`gxpmes.records.verify` feeds them from a
database, the engine's own pre-checks feed them one batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gxpmes.records.images import VALUE_COLUMNS, row_changes
from gxpmes.records.tables import TableSpec

__all__ = ["ExpectedRow", "RecordProblem", "compare_rows", "compare_value_rows", "replay"]


@dataclass(frozen=True, slots=True)
class ExpectedRow:
    """A row as the log last wrote it, and the entry that wrote it."""

    seq: int
    image: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """One disagreement between a table and the log (or a signature and its record)."""

    table: str
    key: str
    column: str | None
    seq: int | None
    kind: str  # missing_row | extra_row | column_differs | signature | object_key | ...
    expected: Any = None
    found: Any = None

    def as_json(self) -> dict[str, Any]:
        """The ``problems[]`` item of ``gxpmes verify --json``."""
        return {
            "table": self.table,
            "key": self.key,
            "column": self.column,
            "seq": self.seq,
            "kind": self.kind,
            "expected": self.expected,
            "found": self.found,
        }

    def line(self) -> str:
        """One human-readable line naming table, key, column, expected, found and seq."""
        where = f"{self.table} {self.key}" + (f" column {self.column}" if self.column else "")
        seq = f" (audit seq {self.seq})" if self.seq is not None else ""
        if self.kind == "column_differs":
            return f"{where}: expected {self.expected!r}, found {self.found!r}{seq}"
        detail = f": {self.expected}" if self.expected is not None else ""
        found = f" (found {self.found!r})" if self.found is not None else ""
        return f"{where}: {self.kind.replace('_', ' ')}{detail}{found}{seq}"


def replay(
    entries: Iterable[tuple[int, str, Any]],
) -> dict[str, dict[tuple[Any, ...], ExpectedRow]]:
    """Apply ``(seq, action, new)`` in order; returns table → key → last row written."""
    state: dict[str, dict[tuple[Any, ...], ExpectedRow]] = {}
    for seq, action, new in entries:
        for table, key, image in row_changes(seq, action, new):
            rows = state.setdefault(table, {})
            if image is None:
                rows.pop(key, None)
            else:
                rows[key] = ExpectedRow(seq, image)
    return state


def key_text(key: tuple[Any, ...]) -> str:
    """A primary key as it is printed in problems."""
    return "/".join(str(k) for k in key)


def compare_rows(
    spec: TableSpec,
    expected: Mapping[tuple[Any, ...], ExpectedRow],
    found: Iterable[Mapping[str, Any]],
) -> Iterator[RecordProblem]:
    """Every difference between the rows the log wrote and the rows the table holds."""
    remaining = dict(expected)
    for row in found:
        image = spec.image(row)
        key = spec.key_of(image)
        want = remaining.pop(key, None)
        if want is None:
            yield RecordProblem(
                spec.name, key_text(key), None, None, "extra_row", "no audit entry wrote this row"
            )
            continue
        if want.image != image:
            for column in spec.columns:
                if want.image.get(column) != image.get(column):
                    yield RecordProblem(
                        spec.name,
                        key_text(key),
                        column,
                        want.seq,
                        "column_differs",
                        want.image.get(column),
                        image.get(column),
                    )
    for key, want in remaining.items():
        yield RecordProblem(
            spec.name,
            key_text(key),
            None,
            want.seq,
            "missing_row",
            "the log wrote this row; the table lacks it",
        )


def compare_value_rows(
    spec: TableSpec,
    expected: dict[tuple[int, int], tuple[Any, ...]],
    found: Iterable[tuple[Any, ...]],
) -> Iterator[RecordProblem]:
    """:func:`compare_rows` for ``ebr_value``, on plain tuples: the hot path of a big record.

    ``expected`` maps ``(seq, leaf)`` → row and ``found`` yields rows, both in
    :data:`~gxpmes.records.images.VALUE_COLUMNS` order (seq and leaf first);
    ``expected`` is consumed. A row equal as a tuple has an equal image
    (cells are only normalised, never made equal by
    :func:`~gxpmes.records.tables.cell`), so only rows that differ go through
    the image comparison, which then reports exactly what :func:`compare_rows`
    reports. A row's seq is also the seq of the entry that wrote it (its value
    block, or its own entry); values are named ``seq/leaf``.
    """
    for row in found:
        key = (row[0], row[1])
        want = expected.pop(key, None)
        if want is None:
            yield RecordProblem(
                spec.name, key_text(key), None, None, "extra_row", "no audit entry wrote this row"
            )
        elif want != row:
            wanted = dict(zip(VALUE_COLUMNS, want, strict=True))
            image = spec.image(dict(zip(VALUE_COLUMNS, row, strict=True)))
            for column in spec.columns:
                if wanted.get(column) != image.get(column):
                    yield RecordProblem(
                        spec.name,
                        key_text(key),
                        column,
                        want[0],
                        "column_differs",
                        wanted.get(column),
                        image.get(column),
                    )
    for key, want in expected.items():
        yield RecordProblem(
            spec.name,
            key_text(key),
            None,
            want[0],
            "missing_row",
            "the log wrote this row; the table lacks it",
        )
