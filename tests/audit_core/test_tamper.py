"""Tampering with the trail, with the database's guards removed, is detected and pinpointed.

Each test drops the append-only triggers (as an administrator with full
rights could), alters the stored trail, and checks that verification names
the kind of problem and the first bad sequence number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import Actor, AuditEvent, encode_entry
from audit.keys import TrustedKey, generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import Problem, verify_ledger

OP = Actor("op01", "Olga Operator")
SIZE = 40


@pytest.fixture
def setup(db_url: str) -> Iterator[tuple[Ledger, str, list[TrustedKey], NoteSigner]]:
    ledger = Ledger.open(db_url)
    ledger.append_many(
        [AuditEvent(OP, "capture", "value", f"B1/{i}", new={"v": i}) for i in range(SIZE)]
    )
    signer = NoteSigner("audit-key", generate_private_key())
    note = ledger.checkpoint(signer)
    drop_guards(ledger)
    yield ledger, note, [TrustedKey(signer.verifier)], signer
    ledger.close()


def drop_guards(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        if ledger.engine.dialect.name == "sqlite":
            for name in ("audit_entry_no_update", "audit_entry_no_delete", "audit_entry_at_tail"):
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            for name in ("audit_entry_append_only", "audit_entry_at_tail"):
                conn.execute(text(f"DROP TRIGGER {name} ON audit_entry"))


def sql(ledger: Ledger, statement: str, **params: object) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(text(statement), params)


def canonical(ledger: Ledger, seq: int) -> bytes:
    with ledger.engine.connect() as conn:
        return bytes(
            conn.execute(
                text("SELECT canonical FROM audit_entry WHERE seq = :s"), {"s": seq}
            ).scalar_one()
        )


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def check(
    ledger: Ledger, note: str | None, keys: list[TrustedKey], problem: Problem, seq: int | None
) -> None:
    report = verify_ledger(ledger, checkpoint=note, trusted_keys=keys)
    assert not report.ok
    assert (report.problem, report.first_bad_seq) == (problem, seq), report.detail
    assert report.detail


def test_intact_trail_verifies(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    report = verify_ledger(ledger, checkpoint=note, trusted_keys=keys)
    assert report.ok and report.entries == SIZE and report.first_bad_seq is None
    assert report.root == ledger.root().hex()
    deep = verify_ledger(ledger, checkpoint=note, trusted_keys=keys, deep=True)
    assert deep.ok


def test_edited_entry_is_a_hash_mismatch(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    forged = canonical(ledger, 17).replace(b'"v":17', b'"v":71')
    sql(ledger, "UPDATE audit_entry SET canonical = :c WHERE seq = 17", c=forged)
    check(ledger, note, keys, Problem.HASH_MISMATCH, 17)
    check(ledger, None, [], Problem.HASH_MISMATCH, 17)


@pytest.mark.parametrize("seq", [16, 17])
def test_edited_and_rehashed_entry_is_pinpointed(setup, seq: int) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    forged = canonical(ledger, seq).replace(f'"v":{seq}'.encode(), b'"v":999')
    sql(
        ledger,
        "UPDATE audit_entry SET canonical = :c, leaf_hash = :h WHERE seq = :s",
        c=forged,
        h=leaf(forged),
        s=seq,
    )
    report = verify_ledger(ledger, checkpoint=note, trusted_keys=keys)
    assert not report.ok and report.first_bad_seq == seq
    assert report.problem in (Problem.CHAIN_BREAK, Problem.TREE_HASH_MISMATCH)


def test_forged_link_in_later_entry_blames_that_entry(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    original = canonical(ledger, 21)
    forged = original.replace(original[original.rfind(b'"prev":"') + 8 :][:64], b"ab" * 32)
    sql(
        ledger,
        "UPDATE audit_entry SET canonical = :c, leaf_hash = :h WHERE seq = 21",
        c=forged,
        h=leaf(forged),
    )
    check(ledger, note, keys, Problem.CHAIN_BREAK, 21)


def test_deleted_entry_is_a_gap(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    sql(ledger, "DELETE FROM audit_entry WHERE seq = 9")
    check(ledger, note, keys, Problem.GAP, 9)
    check(ledger, None, [], Problem.GAP, 9)


def test_reordered_entries_are_a_seq_mismatch(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    sql(ledger, "UPDATE audit_entry SET seq = -1 WHERE seq = 5")
    sql(ledger, "UPDATE audit_entry SET seq = 5 WHERE seq = 6")
    sql(ledger, "UPDATE audit_entry SET seq = 6 WHERE seq = -1")
    check(ledger, note, keys, Problem.SEQ_MISMATCH, 5)


def test_inserted_forged_entry_is_detected(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    # Replace entry 12 by a forged one that chains correctly to entry 11.
    prev = leaf(canonical(ledger, 11))
    event = AuditEvent(Actor("qa01", "Quinn"), "approve", "batch", "B1", new={"ok": True})
    forged = encode_entry(12, datetime.now(UTC), prev, event)
    sql(ledger, "DELETE FROM audit_entry WHERE seq = 12")
    sql(
        ledger,
        "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
        "VALUES (12, 0, "
        ":c, :h, :t)",
        c=forged,
        h=leaf(forged),
        t=b"",
    )
    report = verify_ledger(ledger, checkpoint=note, trusted_keys=keys)
    assert not report.ok and report.first_bad_seq == 12
    assert report.problem in (Problem.CHAIN_BREAK, Problem.TREE_HASH_MISMATCH)


def test_truncated_tail_is_caught_only_with_a_checkpoint(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    sql(ledger, "DELETE FROM audit_entry WHERE seq >= 35")
    assert verify_ledger(ledger).ok  # a hash chain alone cannot see a cut tail
    check(ledger, note, keys, Problem.TRUNCATED, 35)


def test_rewritten_history_contradicts_the_checkpoint(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    sql(ledger, "DELETE FROM audit_entry")
    rebuilt_events = [
        AuditEvent(OP, "capture", "value", f"B1/{i}", new={"v": -i}) for i in range(SIZE)
    ]
    ledger.append_many(rebuilt_events)  # a complete, self-consistent forgery
    assert verify_ledger(ledger).ok
    report = verify_ledger(ledger, checkpoint=note, trusted_keys=keys)
    assert report.problem is Problem.CHECKPOINT_INCONSISTENT and not report.ok


def test_tampered_stored_tree_hash_is_detected(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    sql(ledger, "UPDATE audit_entry SET tree_hashes = :t WHERE seq = 31", t=b"\x00" * 32 * 5)
    check(ledger, note, keys, Problem.TREE_HASH_MISMATCH, 31)


def test_forged_checkpoint_signature(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, _ = setup
    forged = note.replace(f"\n{SIZE}\n", f"\n{SIZE - 1}\n")
    check(ledger, forged, keys, Problem.BAD_SIGNATURE, None)
    attacker = NoteSigner("audit-key", generate_private_key())
    cp = Checkpoint(ledger.origin, SIZE, ledger.root(), ledger.head()[1], datetime.now(UTC))
    check(ledger, sign_checkpoint(cp, attacker), keys, Problem.UNKNOWN_KEY, None)
    check(ledger, "garbage", keys, Problem.CHECKPOINT_MALFORMED, None)


def test_revoked_key_recorded_in_database_is_honoured(setup) -> None:  # type: ignore[no-untyped-def]
    ledger, note, keys, signer = setup
    ledger.keys.revoke(
        signer.verifier.key_id, reason="key compromised", at=datetime.now(UTC) - timedelta(days=1)
    )
    check(ledger, note, keys, Problem.REVOKED_KEY, None)


def test_checkpoint_of_another_log_is_refused(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger, _, keys, signer = setup
    other = Ledger.open(tmp_path / "other.db")
    other.append(AuditEvent(OP, "create", "x", "1"))
    foreign = other.checkpoint(signer)
    other.close()
    check(ledger, foreign, keys, Problem.CHECKPOINT_INCONSISTENT, None)


def test_entry_overwritten_with_text_is_reported_not_crashed(sqlite_url: str) -> None:
    ledger = Ledger.open(sqlite_url)
    ledger.append_many([AuditEvent(OP, "capture", "value", str(i), new={"v": i}) for i in range(4)])
    drop_guards(ledger)
    sql(ledger, "UPDATE audit_entry SET canonical = canonical || ' ' WHERE seq = 2")  # BLOB → TEXT
    check(ledger, None, [], Problem.HASH_MISMATCH, 2)
    ledger.close()
