"""Cells of the wrong type are differences, never normalised into a valid image.

SQLite keeps whatever a statement stores: text in a flag column, text in a
bytes column, a number in a password-hash column. Verification reads cells
as the driver returns them and must name each such cell — not read
``'yes'`` as ``True``, nor stop on text where bytes belong.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from audit.db import open_engine
from gxpmes.records.verify import RecordReport, verify_record
from gxpmes.testing.plant import build_plant


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    path = tmp_path_factory.mktemp("cells") / "plant.db"
    plant = build_plant(str(path))
    keys = dict(plant.signatures.trusted)
    plant.db.close()
    return path, keys


def _verify(path: Path, keys: dict[str, bytes]) -> RecordReport:
    engine = open_engine(path, read_only=True)
    try:
        return verify_record(engine, signature_keys=keys)
    finally:
        engine.dispose()


def _edited(source: Path, target: Path, sql: str, value: Any) -> Path:
    """A copy without triggers, with ``sql`` (one ``?`` for ``value``) applied to one row."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    with sqlite3.connect(target) as conn:
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for (name,) in triggers.fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        assert conn.execute(sql, (value,)).rowcount == 1
    return target


def test_the_untouched_installation_verifies(installation: tuple[Path, dict[str, bytes]]) -> None:
    path, keys = installation
    report = _verify(path, keys)
    assert report.ok, "\n".join(report.lines())


@pytest.mark.parametrize(
    ("table", "column", "sql", "value"),
    [
        # True stays truthy to the application, but it is not what the log wrote.
        (
            "ebr_equipment",
            "clean",
            "UPDATE ebr_equipment SET clean = ? WHERE equipment_id = 'GRAN-01'",
            "yes",
        ),
        ("gx_user", "active", "UPDATE gx_user SET active = ? WHERE user_id = 'op1'", 2),
        (
            "gx_signature",
            "system_signature",
            "UPDATE gx_signature SET system_signature = ? "
            "WHERE rowid = (SELECT min(rowid) FROM gx_signature)",
            "not a signature",
        ),
        (
            "gx_user",
            "password_hash",
            "UPDATE gx_user SET password_hash = ? WHERE user_id = 'op1'",
            123456789,
        ),
    ],
)
def test_a_wrong_typed_cell_is_named(
    installation: tuple[Path, dict[str, bytes]],
    tmp_path: Path,
    table: str,
    column: str,
    sql: str,
    value: Any,
) -> None:
    path, keys = installation
    report = _verify(_edited(path, tmp_path / "edited.db", sql, value), keys)
    assert not report.ok
    assert any(
        (p.table, p.column, p.kind) == (table, column, "column_differs") for p in report.problems
    ), "\n".join(report.lines())
