"""Recorded time never goes backwards (21 CFR 11.10(e), Annex 11 §9).

The ledger refuses to append at a time earlier than its tail's, whether it
knows the tail from its own last append or reads it from the database; and
verification names an entry recorded earlier than the one before it, even
when a forger recomputed every hash.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from audit.entry import Actor, AuditEvent, encode_entry
from audit.errors import EntryError
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.merkle import extend_frontier, frontier_indexes
from audit.note import NoteSigner
from audit.schema import object_key
from audit.verify import Problem, verify_ledger

OP = Actor("op01", "Olga Operator")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def event(i: int) -> AuditEvent:
    return AuditEvent(OP, "capture", "value", f"B1/{i}", new={"v": i})


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_clock_going_back_is_refused_and_nothing_written(db_url: str) -> None:
    clock = Clock(T0)
    ledger = Ledger.open(db_url, clock=clock)
    try:
        ledger.append(event(0))
        clock.now = T0 - timedelta(microseconds=1)
        with pytest.raises(EntryError) as caught:
            ledger.append_many([event(1), event(2)])
        assert "2026-03-01T07:59:59.999999Z" in str(caught.value)
        assert "2026-03-01T08:00:00.000000Z" in str(caught.value)
        assert ledger.size() == 1
        with pytest.raises(EntryError, match="backwards"), ledger.transaction() as conn:
            ledger.append(event(1), conn=conn)
        assert ledger.size() == 1
    finally:
        ledger.close()


def test_equal_and_later_times_are_accepted(db_url: str) -> None:
    clock = Clock(T0)
    ledger = Ledger.open(db_url, clock=clock)
    try:
        ledger.append(event(0))
        ledger.append(event(1))  # the same instant
        clock.now = T0 + timedelta(seconds=1)
        ledger.append(event(2))
        assert ledger.size() == 3
        assert verify_ledger(ledger).ok
    finally:
        ledger.close()


def test_tail_written_by_another_ledger_is_read_from_the_database(db_url: str) -> None:
    """A second writer whose clock lags is refused: the tail time comes from the stored entry."""
    signer = NoteSigner("heads", generate_private_key())
    behind = Ledger.open(db_url, clock=Clock(T0), head_signer=signer)
    ahead = Ledger.open(db_url, clock=Clock(T0 + timedelta(hours=1)), head_signer=signer)
    try:
        behind.append(event(0))  # caches its own tail
        ahead.append(event(1))
        with pytest.raises(EntryError, match=r"entry 1 was recorded at 2026-03-01T09:00:00"):
            behind.append(event(2))
        assert behind.size() == 2
        # An offset clock is compared in UTC, not by its wall time.
        behind._clock = Clock(datetime(2026, 3, 1, 10, 30, tzinfo=UTC).astimezone())
        behind.append(event(2))
        assert behind.size() == 3
    finally:
        ahead.close()
        behind.close()


def drop_guards(ledger: Ledger) -> None:
    """Remove the append-only triggers, as an administrator with full rights could."""
    with ledger.engine.begin() as conn:
        if ledger.engine.dialect.name == "sqlite":
            for name in ("audit_entry_no_update", "audit_entry_no_delete", "audit_entry_at_tail"):
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            for name in ("audit_entry_append_only", "audit_entry_at_tail"):
                conn.execute(text(f"DROP TRIGGER {name} ON audit_entry"))


def insert_at_tail(ledger: Ledger, when: str) -> int:
    """Append an entry by hand, with correct leaf, chain and Merkle hashes, at ``when``."""
    with ledger.engine.begin() as conn:
        size, prev = Ledger._tail(conn)
        indexes = frontier_indexes(size)
        frontier = ledger.hash_reader(conn)(indexes) if indexes else []
        forged = AuditEvent(OP, "capture", "value", "B1/forged", new={"v": -1})
        canonical = encode_entry(size, when, prev, forged)
        leaf = hashlib.sha256(b"\x00" + canonical).digest()
        interior = b"".join(extend_frontier(frontier, size, leaf))
        conn.execute(
            text(
                "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
                "VALUES (:s, :k, :c, :l, :t)"
            ),
            {
                "s": size,
                "k": object_key("value", "B1/forged"),
                "c": canonical,
                "l": leaf,
                "t": interior,
            },
        )
    return size


def test_verification_names_an_entry_recorded_earlier(db_url: str) -> None:
    clock = Clock(T0)
    ledger = Ledger.open(db_url, clock=clock)
    try:
        for i in range(5):
            clock.now = T0 + timedelta(minutes=i)
            ledger.append(event(i))
        drop_guards(ledger)
        assert verify_ledger(ledger).ok
        seq = insert_at_tail(ledger, "2026-03-01T08:03:59.999999Z")
        report = verify_ledger(ledger)
        assert not report.ok
        assert (report.problem, report.first_bad_seq) == (Problem.TIME_REVERSED, seq)
        assert "08:03:59.999999Z" in report.detail
        assert "08:04:00.000000Z" in report.detail
    finally:
        ledger.close()


def test_verification_accepts_equal_times_and_reads_odd_layouts(db_url: str) -> None:
    """An entry at the same instant passes; a non-canonical stamp text is still compared as time."""
    clock = Clock(T0)
    ledger = Ledger.open(db_url, clock=clock)
    try:
        ledger.append(event(0))
        drop_guards(ledger)
        insert_at_tail(ledger, "2026-03-01T08:00:00.000000Z")
        assert verify_ledger(ledger).ok
        # Same instant written with an offset: parsed, normalised, not reversed.
        insert_at_tail(ledger, "2026-03-01T09:00:00+01:00")
        assert verify_ledger(ledger).ok
        seq = insert_at_tail(ledger, "2026-03-01T08:59:00+01:00")
        report = verify_ledger(ledger)
        assert (report.problem, report.first_bad_seq) == (Problem.TIME_REVERSED, seq)
    finally:
        ledger.close()
