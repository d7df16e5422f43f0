"""The ledger on SQLite and PostgreSQL: appends, proofs, append-only enforcement."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
import rfc9162_reference as ref
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from audit.entry import GENESIS_PREV, Actor, AuditEvent
from audit.errors import EntryError, ProofError, StorageError
from audit.ledger import Ledger
from audit.merkle import check_consistency, check_inclusion, record_hash

OP = Actor("op01", "Olga Operator")


def value_event(i: int) -> AuditEvent:
    return AuditEvent(
        OP,
        "capture",
        "process_value",
        f"B1/TT{i % 3}",
        new={"value": Decimal(i) / 4, "unit": "Cel", "quality": "Good"},
    )


@pytest.fixture
def ledger(db_url: str):  # type: ignore[no-untyped-def]
    led = Ledger.open(db_url, reason_required_actions={"update", "delete"})
    yield led
    led.close()


def test_appends_are_gapless_chained_and_match_rfc9162(ledger: Ledger) -> None:
    first = ledger.append(AuditEvent(OP, "create", "batch", "B1", new={"product": "P1"}))
    assert first.seq == 0 and first.prev == GENESIS_PREV
    receipt = ledger.append_many([value_event(i) for i in range(36)])
    assert list(receipt.seqs) == list(range(1, 37))
    last = ledger.append(AuditEvent(OP, "create", "batch", "B2"))
    assert last.seq == 37 and last.prev == receipt.leaf_hashes[-1]
    rows = list(ledger.iter_raw_rows(chunk=7))
    assert [r[0] for r in rows] == list(range(38))
    data = [r[1] for r in rows]
    assert ledger.size() == 38
    assert ledger.root() == ref.mth(data)
    assert ledger.root(20) == ref.mth(data[:20])
    assert ledger.head() == (38, record_hash(data[-1]))
    for seq in (0, 1, 17, 37):
        proof = ledger.prove_inclusion(seq)
        assert list(proof.path) == ref.path(seq, data)
        check_inclusion(proof.path, proof.tree_size, proof.root, seq, record_hash(data[seq]))
    proof_at_20 = ledger.prove_inclusion(5, tree_size=20)
    assert proof_at_20.root == ref.mth(data[:20])
    consistency = ledger.prove_consistency(13)
    check_consistency(consistency.path, 38, consistency.new_root, 13, consistency.old_root)
    assert ledger.entry(17).event.new["value"] == "4"
    assert [e.seq for e in ledger.entries_for("batch", "B1")] == [0]
    assert len(ledger.entries_for("process_value", "B1/TT0")) == 12


def test_a_second_ledger_object_continues_the_same_chain(db_url: str) -> None:
    a = Ledger.open(db_url)
    b = Ledger.open(db_url)
    try:
        a.append_many([value_event(i) for i in range(5)])
        b.append_many([value_event(i) for i in range(6)])  # b's view is stale: re-read under lock
        a.append(value_event(99))
        assert a.origin == b.origin
        assert a.size() == 12
        rows = list(a.iter_raw_rows())
        assert a.root() == ref.mth([r[1] for r in rows])
    finally:
        a.close()
        b.close()


def test_missing_reason_is_refused_and_nothing_is_written(ledger: Ledger) -> None:
    ledger.append(value_event(0))
    batch = [value_event(1), AuditEvent(OP, "update", "batch", "B1", new={"qty": 2})]
    with pytest.raises(EntryError, match="needs a reason"):
        ledger.append_many(batch)
    assert ledger.size() == 1


def test_unencodable_batch_leaves_nothing_half_written(ledger: Ledger) -> None:
    batch = [value_event(1), AuditEvent(OP, "capture", "v", "x", new={"at": datetime(2026, 1, 1)})]
    with pytest.raises(EntryError.__mro__[1]):  # AuditError
        ledger.append_many(batch)
    assert ledger.size() == 0
    assert ledger.append(value_event(2)).seq == 0


def test_naive_clock_is_refused(db_url: str) -> None:
    led = Ledger.open(db_url, clock=lambda: datetime(2026, 1, 1))
    try:
        with pytest.raises(EntryError, match="naive"):
            led.append(value_event(0))
    finally:
        led.close()


def test_origin_is_fixed_once(db_url: str) -> None:
    led = Ledger.open(db_url, origin="example.org/a")
    led.close()
    with pytest.raises(StorageError, match="origin is"):
        Ledger.open(db_url, origin="example.org/b")


def test_database_refuses_update_and_delete(ledger: Ledger) -> None:
    ledger.append_many([value_event(i) for i in range(3)])
    ledger.record_checkpoint(3, "copy of a note")
    statements = [
        "UPDATE audit_entry SET object_key = 1 WHERE seq = 1",
        "DELETE FROM audit_entry WHERE seq = 2",
        "DELETE FROM audit_log_meta",
        "UPDATE audit_checkpoint SET note = 'x'",
    ]
    if ledger.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_entry")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), ledger.engine.begin() as conn:
            conn.execute(text(statement))
    assert ledger.size() == 3
    assert ledger.entry(1).event.action == "capture"


def test_proof_requests_beyond_the_log_are_refused(ledger: Ledger) -> None:
    ledger.append_many([value_event(i) for i in range(4)])
    with pytest.raises(ProofError):
        ledger.prove_inclusion(4)
    with pytest.raises(ProofError, match="holds 4"):
        ledger.prove_inclusion(0, tree_size=5)
    with pytest.raises(StorageError, match="no audit entry"):
        ledger.entry(9)


def test_read_only_open_of_missing_file_fails(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StorageError, match="no such SQLite file"):
        Ledger.open(tmp_path / "nope.db", read_only=True)


def test_unsupported_urls_are_refused() -> None:
    with pytest.raises(StorageError, match="unsupported database"):
        Ledger.open("mysql://root@localhost/test")
    with pytest.raises(StorageError, match="in-memory"):
        Ledger.open("sqlite://")


def test_read_only_copy_cannot_be_written(sqlite_url: str) -> None:
    led = Ledger.open(sqlite_url)
    led.append(value_event(0))
    led.close()
    ro = Ledger.open(sqlite_url, read_only=True)
    try:
        assert ro.size() == 1
        with pytest.raises(StorageError):
            ro.append(value_event(1))
    finally:
        ro.close()


def test_postgres_role_with_append_only_grant(pg_url: str) -> None:
    import uuid

    from audit.schema import grant_append_only

    led = Ledger.open(pg_url)
    role = f"appender_{uuid.uuid4().hex[:8]}"
    try:
        with led.engine.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role}"))
        grant_append_only(led.engine, role)
        with led.engine.begin() as conn:
            conn.execute(text(f"SET LOCAL ROLE {role}"))
            conn.execute(text("SELECT count(*) FROM audit_entry"))
        with pytest.raises(DBAPIError, match="must be owner"), led.engine.begin() as conn:
            conn.execute(text(f"SET LOCAL ROLE {role}"))
            conn.execute(text("DROP TRIGGER audit_entry_append_only ON audit_entry"))
    finally:
        with led.engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        led.close()


def test_append_joins_the_callers_transaction(ledger: Ledger) -> None:
    ledger.append(value_event(0))
    with pytest.raises(RuntimeError), ledger.engine.begin() as conn:
        ledger.append(value_event(1), conn=conn)
        raise RuntimeError("the business change failed")
    assert ledger.size() == 1  # rolled back with the caller
    with ledger.engine.begin() as conn:
        entry = ledger.append(value_event(2), conn=conn)
    assert entry.seq == 1 and ledger.size() == 2
    assert ledger.append(value_event(3)).prev == entry.leaf_hash  # frontier re-read, chain intact
    from audit.verify import verify_ledger

    assert verify_ledger(ledger).ok
