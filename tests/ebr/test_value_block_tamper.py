"""Value blocks tampered with by the database owner (guards dropped), on SQLite and PostgreSQL.

A source key's row removed lets a redelivered value be recorded a second time:
both values carry the key, and verification names them. A block's stored
leaves altered to something that is not bytes (text, NULL) is the block's
problem for the log's verification and a library error for every reader.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from ebr_support import HEAT
from sqlalchemy import text

from audit.errors import StorageError
from audit.verify import verify_ledger
from gxpmes.ebr.engine import CapturedValue
from gxpmes.records.verify import verify_record
from gxpmes.testing.plant import OT_SOURCE

TEMPERATURE = f"{HEAT}/temperature"


def _value(plant, reading: str, key: str) -> CapturedValue:  # type: ignore[no-untyped-def]
    return CapturedValue(
        "B-1", TEMPERATURE, "TT-101", Decimal(reading), "Cel", plant.clock(), source_key=key
    )


def _drop_guards(plant, *tables: str) -> None:  # type: ignore[no-untyped-def]
    with plant.db.engine.begin() as conn:
        for table in tables:
            if plant.db.engine.dialect.name == "sqlite":
                for name in ("no_update", "no_delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_{name}"))
            else:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))


def test_a_redelivery_recorded_again_after_its_key_row_was_removed_is_named(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    (first,) = set(
        plant.engine.capture(
            [_value(plant, "70.0", "k-0"), _value(plant, "70.5", "k-1")], source=OT_SOURCE
        )
    )
    assert plant.engine.capture([_value(plant, "70.0", "k-0")], source=OT_SOURCE) == []
    _drop_guards(plant, "ebr_value_key")
    with plant.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM ebr_value_key WHERE source_key = 'k-0'"))
    (again,) = plant.engine.capture([_value(plant, "70.0", "k-0")], source=OT_SOURCE)
    assert again > first
    assert len(plant.engine.values("B-1")) == 3  # recorded twice: the log holds both
    for batch in (None, "B-1"):
        report = verify_record(plant.db.engine, batch=batch, trusted_keys=plant.trusted_keys())
        assert report.ledger.ok and not report.ok
        found = [(p.table, p.key, p.kind) for p in report.problems]
        assert found == [("ebr_value_key", "k-0", "duplicate_source_key")], report.lines()
        (line,) = report.lines()
        assert f"{first}/0" in line and f"{again}/0" in line, line
    (problem,) = plant.engine.verify_values("B-1")
    assert "'k-0'" in problem and f"{first}/0" in problem and f"{again}/0" in problem, problem


def test_a_manual_entry_carrying_a_recorded_values_key_is_named(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    (first,) = plant.engine.capture([_value(plant, "70.0", "k-0")], source=OT_SOURCE)
    _drop_guards(plant, "ebr_value_key")
    with plant.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM ebr_value_key WHERE source_key = 'k-0'"))
    manual = plant.engine.manual_entry(
        plant.sessions["op1"], _value(plant, "70.0", "k-0"), reason="handheld reading"
    )
    for batch in (None, "B-1"):
        report = verify_record(plant.db.engine, batch=batch, trusted_keys=plant.trusted_keys())
        found = [(p.table, p.key, p.kind) for p in report.problems]
        assert found == [("ebr_value_key", "k-0", "duplicate_source_key")], report.lines()
        (line,) = report.lines()
        assert f"{first}/0" in line and f"{manual}/0" in line, line
    (problem,) = plant.engine.verify_values("B-1")
    assert f"{first}/0" in problem and f"{manual}/0" in problem, problem


def _spoil_leaves(plant, seq: int, how: str) -> None:  # type: ignore[no-untyped-def]
    _drop_guards(plant, "audit_block")
    sqlite = plant.db.engine.dialect.name == "sqlite"
    with plant.db.engine.begin() as conn:
        if how == "text" and sqlite:
            conn.execute(
                text(f"UPDATE audit_block SET leaves = CAST(leaves AS TEXT) WHERE seq = {seq}")
            )
        elif how == "text":  # the column retyped: every row reads as text
            conn.execute(
                text(
                    "ALTER TABLE audit_block ALTER COLUMN leaves TYPE text "
                    "USING convert_from(leaves, 'UTF8')"
                )
            )
        elif sqlite:  # NOT NULL dropped by rebuilding the table, as an owner can
            conn.execute(text("CREATE TABLE spare AS SELECT seq, leaves FROM audit_block"))
            conn.execute(text("DROP TABLE audit_block"))
            conn.execute(text("CREATE TABLE audit_block (seq INTEGER PRIMARY KEY, leaves BLOB)"))
            conn.execute(text("INSERT INTO audit_block SELECT seq, leaves FROM spare"))
            conn.execute(text(f"UPDATE audit_block SET leaves = NULL WHERE seq = {seq}"))
        else:
            conn.execute(text("ALTER TABLE audit_block ALTER COLUMN leaves DROP NOT NULL"))
            conn.execute(text(f"UPDATE audit_block SET leaves = NULL WHERE seq = {seq}"))


@pytest.mark.parametrize("how", ["text", "null"])
def test_leaves_that_are_not_bytes_are_the_blocks_problem(plant, how: str) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    seqs = [
        plant.engine.capture([_value(plant, f"70.{i}", f"k-{i}")], source=OT_SOURCE)[0]
        for i in range(6)
    ]
    seq = seqs[2]
    _spoil_leaves(plant, seq, how)
    if how == "text" and plant.db.engine.dialect.name == "postgresql":
        seq = seqs[0]  # the column retyped: the first block is the first problem
    for jobs in (1, 2):
        report = verify_ledger(plant.db.ledger, jobs=jobs, range_size=4)
        assert not report.ok
        assert (report.problem, report.first_bad_seq) == ("block_mismatch", seq), report.summary()
    record = verify_record(plant.db.engine, trusted_keys=plant.trusted_keys())
    assert not record.ok and record.ledger.problem == "block_mismatch"
    assert any(p.seq == seq and p.kind == "bad_image" for p in record.problems), record.lines()
    with pytest.raises(StorageError, match=f"entry {seq}"):
        plant.engine.values("B-1")
    with pytest.raises(StorageError, match=f"entry {seq}"):
        plant.db.ledger.block_leaves(seq)
