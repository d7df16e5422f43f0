"""A realistic batch-record database, and the ways an attacker with table access edits it.

:func:`build_record` runs two batches through the engine's public API so that
every projected table (:func:`gxpmes.records.tables.projected`) holds rows:
one batch released (weighings, values in and out of limits, a manual entry,
samples, labels and an IPC result, a digital signature, exceptions assessed,
a deviation closed, genealogy) and one still in execution.

The tamper helpers change a database the way someone holding the owner's
rights would: on SQLite on a copy whose triggers were dropped
(:func:`sqlite_copy`), on PostgreSQL with the table's triggers disabled for
the one statement (:func:`tampering`). Each returns what undoes it, so a
PostgreSQL database can be tampered with and restored test after test.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    String,
    and_,
    create_engine,
    delete,
    insert,
    select,
    text,
    update,
)

from audit.blocks import unpack_leaves
from audit.db import open_engine
from audit.keys import TrustedKey
from gxpmes.connectors.model import DeadLetter, Problem, TagBinding, TagMap
from gxpmes.connectors.rejects import record_rejects
from gxpmes.ebr.engine import CapturedValue
from gxpmes.identity import Meaning
from gxpmes.records.images import BLOCK_ACTION, block_row_changes, row_changes
from gxpmes.records.replay import key_text
from gxpmes.records.tables import TableSpec
from gxpmes.records.verify import RecordReport, verify_record
from gxpmes.testing.plant import BLEND, HEAT, MIX, OT_SOURCE, USERS, TestPlant, build_plant
from isa95.common import Quantity
from isa95.recipe import FormulaParameter

__all__ = [
    "IN_EXECUTION_BATCH",
    "RELEASED_BATCH",
    "RecordDb",
    "Tamper",
    "Undo",
    "build_record",
    "changed_value",
    "delete_row",
    "entry_wrote",
    "insert_copy",
    "pg_database",
    "rows_of",
    "sqlite_copy",
    "tamper",
    "tampering",
    "update_cell",
    "verify",
    "write_public_pem",
]

RELEASED_BATCH = "B-REL-1"
IN_EXECUTION_BATCH = "B-RUN-2"
IPC_LIMITS = FormulaParameter(
    id="loss-on-drying", target=Decimal("2"), low=Decimal("1"), high=Decimal("3"), unit="%"
)

Undo = Callable[[Connection], None]
"""Restores what a tamper helper changed (run it inside :func:`tampering` too)."""


@dataclass(frozen=True)
class RecordDb:
    """A built database: where it is and the keys a verifier of it trusts."""

    url: str
    signature_keys: dict[str, bytes]  # key id → system key countersigning e-signatures
    head_keys: tuple[TrustedKey, ...]  # the key signing every tree head of the log


def build_record(url: str) -> tuple[TestPlant, RecordDb]:
    """Create the installation at ``url`` and run both batches (see module docstring)."""
    plant = build_plant(url)
    engine, op1 = plant.engine, plant.sessions["op1"]
    plant.signatures.enroll_user_key("op2", USERS["op2"][2])
    plant.accounts.set_roles(
        plant.admin_creds(), "op2", ["Operator", "Supervisor"], reason="shift lead"
    )

    batch = RELEASED_BATCH
    plant.start_batch(batch, phases=(HEAT,))
    plant.dispense(batch)  # PH-HEAT's bill of materials: weighed, verified, charged
    now = plant.clock()
    engine.capture(
        [
            CapturedValue(
                batch,
                f"{HEAT}/temperature",
                "TT-101",
                Decimal(reading),
                "Cel",
                now + timedelta(seconds=i),
                quality=quality,
                source_key=f"opc:TT-101:{i}",
            )
            for i, (reading, quality) in enumerate(
                [("70.1", "Good"), ("76.4", "Good"), ("69.8", "Uncertain"), ("70.0", "Good")]
            )
        ],
        source=OT_SOURCE,
    )
    engine.manual_entry(
        op1,
        CapturedValue(batch, f"{HEAT}/temperature", "HANDHELD", Decimal("70.2"), "Cel", now),
        reason="handheld probe cross-check",
    )
    engine.record_item(op1, batch, "sample", "S-0001", {"container": "C-1", "amount": "50 g"})
    engine.record_item(op1, batch, "label", "L-0001", {"text": "TAB-500 granulate"})
    engine.record_item(op1, batch, "ipc", "IPC-0001", {"result": "3.6"}, limits=IPC_LIMITS)
    engine.complete_phase(batch, HEAT, plant.creds("op1"))
    # Digital-signature mode: op2's own key signs too (user_public_key, user_signature).
    plant.signatures.sign(
        engine.step_record(batch, HEAT), Meaning.VERIFIED, plant.creds("op2"), digital=True
    )
    for path, parameter, unit, reading in (
        (MIX, "speed", "rpm", "121"),
        (BLEND, "speed", "rpm", "119"),
    ):
        engine.command(op1, batch, path, "Start")
        engine.capture(
            [CapturedValue(batch, f"{path}/{parameter}", "SC", Decimal(reading), unit, now)],
            source=OT_SOURCE,
        )
        engine.complete_phase(batch, path, plant.creds("op1"))
        engine.verify_phase(batch, path, plant.creds("op2"))
    engine.complete_batch(op1, batch, Quantity(value=Decimal("97.5"), unit="kg"))
    deviation = engine.open_deviation(op1, batch, "temperature above 75 °C for 1 s")
    for item in engine.review_by_exception(batch):
        if item.kind.startswith("exception"):
            engine.assess_exception(item.item_id, plant.creds("qa1"), comment="no impact")
    engine.investigate_deviation(
        plant.sessions["qa1"], deviation, investigation="PID overshoot", impact="none"
    )
    engine.complete_review(batch, plant.creds("qa1"))
    engine.close_deviation(deviation, plant.creds("qa2"), conclusion="CAPA-7: retune PID")
    plant.review_trail(batch)
    engine.release(batch, plant.creds("qa2"))

    # Equipment back in service after the first batch: the second one runs now.
    engine.record_maintenance(
        plant.sessions["sup1"],
        "GRAN-01",
        "temperature probe recalibrated",
        calibration_due=now + timedelta(days=200),
    )
    for equipment_id in ("GRAN-01", "BLEND-01"):
        engine.record_cleaning(op1, equipment_id, "cleaned per SOP-CL-01")
    plant.start_batch(IN_EXECUTION_BATCH, phases=(HEAT,))
    engine.capture(
        [
            CapturedValue(
                IN_EXECUTION_BATCH, f"{HEAT}/temperature", "TT-101", Decimal("70.3"), "Cel", now
            )
        ],
        source=OT_SOURCE,
    )
    # A payload the OT connector refused: a dead letter in the rejects table.
    record_rejects(
        plant.db,
        [
            DeadLetter.of(
                Problem("malformed", "not JSON", "TT-101"), "plant/TT-101", b"\x00{poison", now
            )
        ],
        TagMap({"TT-101": TagBinding(IN_EXECUTION_BATCH, f"{HEAT}/temperature", "Cel")}),
        account_id=OT_SOURCE.account_id,
        client_id=OT_SOURCE.client_id,
        connector="test-connector",
        fallback=plant.engine.collector,
    )
    from erp_record import record_erp_exchange  # the ERP exchange tables, filled too

    record_erp_exchange(plant, batch)
    return plant, RecordDb(url, plant.signature_keys(), tuple(plant.trusted_keys()))


def verify(url: str, keys: RecordDb, batch: str | None = None) -> RecordReport:
    """``verify_record`` of ``url`` with ``keys``' trust, over a fresh read-only engine.

    Every check runs: tree heads against the head keys, e-signatures against
    the signature keys — a report with warnings of checks not done fails here.
    """
    engine = open_engine(url, read_only=True)
    try:
        report = verify_record(
            engine, batch=batch, head_keys=keys.head_keys, signature_keys=keys.signature_keys
        )
    finally:
        engine.dispose()
    assert report.warnings == [], report.warnings
    return report


def sqlite_copy(source: Path, target: Path, *, drop_triggers: bool = True) -> Path:
    """A consistent copy of an SQLite database, without its triggers by default."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    if drop_triggers:
        with sqlite3.connect(target) as conn:
            names = [
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
            ]
            for name in names:
                conn.execute(f'DROP TRIGGER "{name}"')
            left = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='trigger'")
            assert left.fetchone() == (0,)
        conn.close()
    return target


@contextmanager
def tampering(engine: Engine, table: str) -> Iterator[Connection]:
    """A committed transaction in which ``table``'s guards do not fire.

    On PostgreSQL the owner disables the table's own triggers for the
    transaction (``ALTER TABLE ... DISABLE TRIGGER USER``) and enables them
    again before commit; on SQLite the copy has no triggers left.
    """
    with engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text(f'ALTER TABLE "{table}" DISABLE TRIGGER USER'))
        yield conn
        if postgres:
            conn.execute(text(f'ALTER TABLE "{table}" ENABLE TRIGGER USER'))


def rows_of(conn: Connection, spec: TableSpec) -> list[dict[str, Any]]:
    """Every row of a projected table as stored, in key order."""
    query = select(spec.table).order_by(*(spec.table.c[k] for k in spec.key))
    return [dict(r) for r in conn.execute(query).mappings()]


def _where(spec: TableSpec, row: dict[str, Any]) -> Any:
    return and_(*(spec.table.c[k] == row[k] for k in spec.key))


_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


def _changed_text(value: str, length: int | None) -> str:
    """A different value of the same kind: a number, a time, JSON, or words."""
    try:
        number = Decimal(value)
    except InvalidOperation:
        pass
    else:
        if number.is_finite():
            return str(number + 1)
    if _TIMESTAMP.match(value):
        moved = datetime.fromisoformat(value.replace("Z", "+00:00")) + timedelta(seconds=1)
        return moved.isoformat()
    if value[:1] in "{[":
        try:
            data = json.loads(value)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return json.dumps({**data, "forged": True}, sort_keys=True, separators=(",", ":"))
        if isinstance(data, list):
            return json.dumps([*data, "forged"], separators=(",", ":"))
    if not value:
        return "forged"
    if length is None or len(value) < length:
        return value + "*"
    return value[:-1] + ("*" if value[-1] != "*" else "+")


def changed_value(column: Column[Any], value: Any, *, fresh_key: bool = False) -> Any:
    """A type-appropriate value that differs from ``value``.

    ``fresh_key`` asks for a value no other row holds (a changed primary key).
    """
    kind = column.type
    if isinstance(kind, Boolean):
        return True if value is None else not value
    if isinstance(kind, Integer):  # BigInteger is an Integer
        return (value or 0) + (1_000_000 if fresh_key else 1)
    if isinstance(kind, LargeBinary):
        if not value:
            return b"\x01" * 32
        data = bytearray(value)
        data[-1] ^= 0x01
        return bytes(data)
    length = kind.length if isinstance(kind, String) else None
    if value is None:
        return "forged"
    if fresh_key:
        forged = f"{value}-FORGED"
        return forged if length is None or len(forged) <= length else "F" + value[1:]
    return _changed_text(str(value), length)


def update_cell(conn: Connection, spec: TableSpec, row: dict[str, Any], column: str) -> Undo:
    """Change one cell of ``row``; returns its undo."""
    new = changed_value(spec.table.c[column], row[column], fresh_key=column in spec.key)
    conn.execute(update(spec.table).where(_where(spec, row)).values({column: new}))
    moved = {**row, column: new}

    def undo(c: Connection) -> None:
        c.execute(update(spec.table).where(_where(spec, moved)).values({column: row[column]}))

    return undo


def delete_row(conn: Connection, spec: TableSpec, row: dict[str, Any]) -> Undo:
    """Remove ``row``; returns its undo (the row inserted again as it was)."""
    conn.execute(delete(spec.table).where(_where(spec, row)))

    def undo(c: Connection) -> None:
        c.execute(insert(spec.table).values(row))

    return undo


def insert_copy(
    conn: Connection, spec: TableSpec, row: dict[str, Any]
) -> tuple[dict[str, Any], Undo]:
    """Insert a forged copy of ``row`` under a new key; returns the copy and its undo.

    Columns under a unique index (other than the key) get fresh values too, as
    a forger would have to give them.
    """
    unique = {c.name for i in spec.table.indexes if i.unique for c in i.columns}
    forged = dict(row)
    for name in (spec.key[-1], *sorted(unique)):
        if forged[name] is not None:
            forged[name] = changed_value(spec.table.c[name], forged[name], fresh_key=True)
    conn.execute(insert(spec.table).values(forged))

    def undo(c: Connection) -> None:
        c.execute(delete(spec.table).where(_where(spec, forged)))

    return forged, undo


@dataclass(frozen=True)
class Tamper:
    """What one tamper changed and the problems verification must report for it.

    ``expected`` holds ``(key, column, kind)`` of every problem on ``table``.
    """

    table: str
    action: str
    column: str | None
    expected: frozenset[tuple[str, str | None, str]]
    undo: Undo


def _key(spec: TableSpec, row: dict[str, Any]) -> str:
    return key_text(spec.key_of(spec.image(row)))


def tamper(conn: Connection, spec: TableSpec, action: str, column: str | None = None) -> Tamper:
    """Apply ``action`` (update of ``column`` / delete / insert) to one row of ``spec``.

    The row is the first in key order — for an update, the first whose
    ``column`` is not NULL, so a real value is changed where one exists.
    """
    rows = rows_of(conn, spec)
    assert rows, f"{spec.name} holds no rows to tamper with"
    row = next((r for r in rows if column is None or r[column] is not None), rows[0])
    key = _key(spec, row)
    expected: set[tuple[str, str | None, str]]
    if action == "update":
        assert column is not None
        undo = update_cell(conn, spec, row, column)
        if column in spec.key:
            others = [spec.table.c[k] == row[k] for k in spec.key if k != column]
            moved = conn.execute(select(spec.table).where(*others)).mappings()
            new_keys = {_key(spec, dict(r)) for r in moved} - {_key(spec, r) for r in rows}
            assert len(new_keys) == 1, new_keys
            expected = {(key, None, "missing_row"), (new_keys.pop(), None, "extra_row")}
        else:
            expected = {(key, column, "column_differs")}
    elif action == "delete":
        undo = delete_row(conn, spec, row)
        expected = {(key, None, "missing_row")}
    elif action == "insert":
        forged, undo = insert_copy(conn, spec, row)
        expected = {(_key(spec, forged), None, "extra_row")}
    else:
        raise ValueError(f"unknown tamper action {action!r}")
    return Tamper(spec.name, action, column, frozenset(expected), undo)


def entry_wrote(engine: Engine, seq: int, table: str, key: str) -> bool:
    """Whether audit entry ``seq`` wrote (or removed) row ``key`` of ``table``."""
    with engine.connect() as conn:
        canonical = conn.execute(
            text("SELECT canonical FROM audit_entry WHERE seq = :seq"), {"seq": seq}
        ).scalar_one()
        leaves = conn.execute(
            text("SELECT leaves FROM audit_block WHERE seq = :seq"), {"seq": seq}
        ).scalar_one_or_none()
    data = json.loads(bytes(canonical))
    changes = row_changes(seq, data["action"], data["new"])
    if data["action"] == BLOCK_ACTION:  # a value block: its rows are its leaves
        assert leaves is not None, f"block entry {seq} has no leaves stored"
        changes = block_row_changes(seq, unpack_leaves(bytes(leaves)))
    return any(t == table and key_text(k) == key for t, k, _ in changes)


def write_public_pem(raw: bytes, path: Path) -> Path:
    """A raw Ed25519 public key as the PEM file the CLI reads."""
    pem = Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem)
    return path


PG_ADMIN_URL = os.environ.get(
    "GXPMES_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for a whole module, dropped afterwards.

    As ``tests/conftest.py``'s ``pg_url``: skipped when the server is
    unreachable, but with ``CI=true`` a failure.
    """
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"gxpmes_r_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        admin.dispose()
        reason = str(exc).splitlines()[0]
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unavailable: {reason}")
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
