"""The database accepts audit rows only at the log's tail (SQLite and PostgreSQL).

A role that may only INSERT must not be able to leave a gap (which would make
every later append fail) nor put a tree head anywhere but the current size.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from audit.entry import Actor, AuditEvent
from audit.errors import StorageError
from audit.ledger import Ledger
from audit.schema import create_schema
from audit.verify import verify_ledger

OP = Actor("op01", "Olga Operator")
ROW = "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
ROW += "VALUES (:seq, 0, :c, :h, :t)"


def events(n: int, start: int = 0) -> list[AuditEvent]:
    return [AuditEvent(OP, "capture", "value", f"B1/{start + i}", new={"v": i}) for i in range(n)]


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    led = Ledger.open(db_url)
    led.append_many(events(5))
    yield led
    led.close()


def insert_row(ledger: Ledger, seq: int) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(text(ROW), {"seq": seq, "c": b"{}", "h": b"\0" * 32, "t": b""})


def insert_head(ledger: Ledger, size: int) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_tree_head VALUES (:s, 'x')"), {"s": size})


def drop_tail_guard(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        if ledger.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_entry_at_tail"))
        else:
            conn.execute(text("DROP TRIGGER audit_entry_at_tail ON audit_entry"))


@pytest.mark.parametrize("seq", [1005, 6, 0, 3, -1])
def test_a_row_off_the_tail_is_refused(ledger: Ledger, seq: int) -> None:
    with pytest.raises(DBAPIError, match=r"seq .*is not the tail \+ 1"):
        insert_row(ledger, seq)
    assert ledger.size() == 5
    assert ledger.append_many(events(3, 5)).first_seq == 5  # the log is not bricked
    assert verify_ledger(ledger).ok


def test_seq_zero_only_into_an_empty_table(db_url: str) -> None:
    led = Ledger.open(db_url)
    try:
        with pytest.raises(DBAPIError, match="tail"):
            insert_row(led, 1)
        insert_row(led, 0)  # accepted: the tail of an empty log is 0
        with pytest.raises(DBAPIError, match="tail"):
            insert_row(led, 0)
    finally:
        led.close()


def test_a_tree_head_is_accepted_only_for_the_current_size(ledger: Ledger) -> None:
    for size in (4, 6, 1005):
        with pytest.raises(DBAPIError, match="not the current log size"):
            insert_head(ledger, size)


def test_without_the_guard_a_far_row_bricks_the_log(ledger: Ledger) -> None:
    """Control removed: the scenario the guard prevents really breaks appends."""
    drop_tail_guard(ledger)
    insert_row(ledger, 1005)
    with pytest.raises(StorageError, match="missing"):
        ledger.append(events(1, 5)[0])


def test_existing_databases_get_the_guard_when_opened_for_writing(db_url: str) -> None:
    led = Ledger.open(db_url)
    drop_tail_guard(led)  # a database made before the guard existed
    insert_row(led, 0)
    led.close()
    reopened = Ledger.open(db_url)
    try:
        create_schema(reopened.engine)  # idempotent: a second install changes nothing
        with pytest.raises(DBAPIError, match="tail"):
            insert_row(reopened, 1000)
    finally:
        reopened.close()


def test_the_append_path_reports_a_refusal_as_storage_error(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = ledger.head()
    ledger.append_many(events(2, 5))  # another writer moved the tail on
    ledger._frontier_size = -1  # and this ledger's cached view is gone

    def stale_tail(self: Ledger, conn: Connection) -> tuple[int, bytes]:
        self._lock(conn)
        return stale

    monkeypatch.setattr(Ledger, "_lock_and_tail", stale_tail)
    with pytest.raises(StorageError, match=r"database refused the append.*tail \+ 1"):
        ledger.append(events(1, 9)[0])
    monkeypatch.undo()
    assert ledger.size() == 7
    assert verify_ledger(ledger).ok
