"""Signed tree heads: every write transaction's tail is signed; rows under no head are forged.

The attacker here may only INSERT (no UPDATE, DELETE or trigger changes): a
row added at the tail in perfect form — right seq, chain link, leaf hash and
Merkle hashes, computed with the library's own functions — must still be
reported, because the application's head key never signed it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.db import open_engine
from audit.entry import Actor, AuditEvent, encode_entry
from audit.errors import SigningKeyError, StorageError
from audit.keys import TrustedKey, generate_private_key, write_key_pair
from audit.ledger import Ledger
from audit.merkle import extend_frontier, frontier_indexes, record_hash
from audit.note import NoteSigner
from audit.schema import object_key
from audit.verify import (
    HEADS_NOT_CHECKED,
    KeySpec,
    Problem,
    VerificationReport,
    verify_ledger,
    verify_rows,
)

OP = Actor("op01", "Olga Operator")
SIGNER = NoteSigner("gxpmes-heads", generate_private_key())
ATTACKER = NoteSigner("gxpmes-heads", generate_private_key())


def events(n: int, tag: str = "v") -> list[AuditEvent]:
    return [AuditEvent(OP, "capture", "value", f"B1/{tag}{i}", new={"v": i}) for i in range(n)]


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    led = Ledger.open(db_url, head_signer=SIGNER)
    yield led
    led.close()


def forge_tail(ledger: Ledger, status: str = "Released") -> int:
    """Insert the next entry by bare SQL, in perfect form; returns its seq."""
    size, prev = ledger.head()
    event = AuditEvent(Actor("qa01", "Quinn Approver"), "release", "batch", "B1", new={"s": status})
    canonical = encode_entry(size, datetime.now(UTC), prev, event)
    leaf = record_hash(canonical)
    with ledger.engine.begin() as conn:
        frontier = list(ledger.hash_reader(conn)(frontier_indexes(size)))
        interior = b"".join(extend_frontier(frontier, size, leaf))
        conn.execute(
            text(
                "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
                "VALUES (:seq, :key, :canonical, :leaf, :tree)"
            ),
            {
                "seq": size,
                "key": object_key("batch", "B1"),
                "canonical": canonical,
                "leaf": leaf,
                "tree": interior,
            },
        )
    return size


def insert_head(ledger: Ledger, signer: NoteSigner, *, root: bytes | None = None) -> None:
    """Insert a head for the current size by bare SQL, signed by ``signer``."""
    size, chain_head = ledger.head()
    head = Checkpoint(ledger.origin, size, root or ledger.root(), chain_head, datetime.now(UTC))
    with ledger.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_tree_head (tree_size, note) VALUES (:s, :n)"),
            {"s": size, "n": sign_checkpoint(head, signer)},
        )


def drop_guards(ledger: Ledger, tables: tuple[str, ...]) -> None:
    """What only the database owner can do: remove every guard on ``tables``."""
    with ledger.engine.begin() as conn:
        if ledger.engine.dialect.name == "sqlite":
            names = conn.execute(
                text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for name, table in names:
                if table in tables:
                    conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            for table in tables:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))


def verify(ledger: Ledger, keys: KeySpec = SIGNER.verifier) -> VerificationReport:
    return verify_ledger(ledger, head_keys=keys)


# ------------------------------------------------------------------ signing


def test_each_write_transaction_signs_one_head_of_its_tail(ledger: Ledger) -> None:
    ledger.append_many(events(7))
    ledger.append(AuditEvent(OP, "create", "batch", "B2"))
    ledger.append_many(events(30, "w"))
    heads = ledger.tree_heads()
    assert [size for size, _ in heads] == [7, 8, 38]
    for size, note in heads:
        opened = open_checkpoint(note)
        head = opened.checkpoint
        assert (head.origin, head.tree_size) == (ledger.origin, size)
        assert head.root == ledger.root(size)
        assert head.chain_head == ledger.prove_inclusion(size - 1, size).leaf_hash
        assert [s.key_id for s in opened.signatures] == [SIGNER.verifier.key_id]
    report = verify(ledger)
    assert report.ok, report.summary()
    assert (report.heads_checked, report.signed_size, report.warnings) == (3, 38, [])
    assert "every entry under a signed tree head (3 checked)" in report.summary()
    assert report.as_json()["signed_size"] == 38
    assert ledger.keys.get(SIGNER.verifier.key_id) is not None  # registered, so revocable


def test_without_head_keys_heads_are_not_checked_and_the_report_says_so(ledger: Ledger) -> None:
    ledger.append_many(events(3))
    forge_tail(ledger)
    report = verify_ledger(ledger)
    assert report.ok and report.signed_size is None
    assert report.warnings == [HEADS_NOT_CHECKED]
    assert report.as_json()["warnings"] == [HEADS_NOT_CHECKED]


def test_head_keys_are_accepted_in_every_form(ledger: Ledger) -> None:
    ledger.append_many(events(3))
    trusted = TrustedKey(SIGNER.verifier)
    forms: list[KeySpec] = [SIGNER.verifier, trusted, [SIGNER.verifier], [trusted]]
    for keys in forms:
        assert verify(ledger, keys).ok
    assert verify_ledger(ledger, head_keys=[]).warnings == [HEADS_NOT_CHECKED]


# ----------------------------------------------------------------- forgery


def test_a_forged_tail_row_in_perfect_form_is_reported(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.append_many(events(10))
    forged = forge_tail(ledger)
    assert verify_ledger(ledger).ok  # hashes, chain and tree are all in order
    report = verify(ledger)
    assert (report.ok, report.problem, report.first_bad_seq) == (
        False,
        Problem.UNSIGNED_ENTRIES,
        10,
    )
    assert "entry 10 is under no signed tree head" in report.detail
    assert report.signed_size == forged == 10

    # The application appends on; it does not sign over the row it did not write.
    ledger.append_many(events(5, "later"))
    assert "entry 10 is under no signed tree head" in caplog.text
    report = verify(ledger)
    assert (report.problem, report.first_bad_seq) == (Problem.UNSIGNED_ENTRIES, 10)
    assert "entries 10..15 are" in report.detail
    assert [size for size, _ in ledger.tree_heads()] == [10]


def test_a_forged_row_after_a_callers_transaction_is_reported(ledger: Ledger) -> None:
    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
    forge_tail(ledger)
    with ledger.transaction() as conn:  # the next sealed transaction signs nothing over it
        ledger.append(AuditEvent(OP, "start", "batch", "B1"), conn=conn)
    report = verify(ledger)
    assert (report.problem, report.first_bad_seq) == (Problem.UNSIGNED_ENTRIES, 1)


def test_a_callers_committed_transaction_leaves_its_tail_for_the_next(
    ledger: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tail a committed transaction left is reused by the next one, and read again
    (stored hashes, last head checked) as soon as another writer has appended."""
    reads: list[int] = []
    stored = Ledger._db_hashes

    def counted(self: Ledger, *args: object, **kwargs: object) -> object:
        reads.append(1)
        return stored(self, *args, **kwargs)  # type: ignore[arg-type]

    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
    monkeypatch.setattr(Ledger, "_db_hashes", counted)
    for action in ("start", "pause"):
        with ledger.transaction() as conn:
            ledger.append(AuditEvent(OP, action, "batch", "B1"), conn=conn)
    assert reads == []  # the hint of each commit was used
    other = Ledger.open(db_url, head_signer=SIGNER)
    other.append(AuditEvent(OP, "resume", "batch", "B1"))
    other.close()
    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "complete", "batch", "B1"), conn=conn)
    assert reads  # another writer moved the tail: read from the database again
    assert [size for size, _ in ledger.tree_heads()] == [1, 2, 3, 4, 5]
    assert verify(ledger).ok


def test_a_deleted_last_head_is_not_healed_by_the_next_write(ledger: Ledger) -> None:
    """The reused tail is vouched for only while its stored head is the one signed over
    it: with that head deleted by SQL, the next write reads the tail again, signs
    nothing over the uncovered entries, and verification keeps reporting them."""
    for action in ("create", "start"):
        with ledger.transaction() as conn:
            ledger.append(AuditEvent(OP, action, "batch", "B1"), conn=conn)
    drop_guards(ledger, ("audit_tree_head",))  # what the database owner can do
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_tree_head WHERE tree_size = 2"))
    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "pause", "batch", "B1"), conn=conn)
    assert [size for size, _ in ledger.tree_heads()] == [1]
    report = verify(ledger)
    assert (report.problem, report.first_bad_seq) == (Problem.UNSIGNED_ENTRIES, 1)


_SNEAK_SQLITE = (
    "CREATE TRIGGER sneak AFTER INSERT ON audit_entry "
    "WHEN instr(CAST(NEW.canonical AS TEXT), '\"release\"') > 0 BEGIN "
    "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
    "VALUES (NEW.seq + 1, NEW.object_key, CAST('{}' AS BLOB), randomblob(32), X''); END"
)
_SNEAK_PG = (
    "CREATE FUNCTION sneak() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
    "VALUES (NEW.seq + 1, NEW.object_key, '\\x7b7d'::bytea, sha256('x'::bytea), ''::bytea); "
    "RETURN NULL; END $$",
    "CREATE TRIGGER sneak AFTER INSERT ON audit_entry FOR EACH ROW "
    "WHEN (position('\"release\"' in convert_from(NEW.canonical, 'UTF8')) > 0) "
    "EXECUTE FUNCTION sneak()",
)


def test_the_seal_refuses_a_tail_this_transaction_did_not_write(ledger: Ledger) -> None:
    """A row put at the tail inside the application's own transaction (an intruder's
    trigger) is never signed: the seal refuses, and the whole transaction rolls back."""
    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
    sqlite = ledger.engine.dialect.name == "sqlite"
    with ledger.engine.begin() as conn:
        for statement in (_SNEAK_SQLITE,) if sqlite else _SNEAK_PG:
            conn.execute(text(statement))
    refused = pytest.raises(StorageError, match="not what this transaction wrote")
    with refused, ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "release", "batch", "B1"), conn=conn)
    with ledger.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER sneak" if sqlite else "DROP TRIGGER sneak ON audit_entry"))
    assert ledger.size() == 1  # neither the release nor the sneaked row committed
    assert [size for size, _ in ledger.tree_heads()] == [1]
    assert verify(ledger).ok


def test_control_removed_verification_no_longer_sees_the_forgery(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STYLE §6: without the coverage check, the forged-row scenario passes."""
    from audit import verify as verify_module

    ledger.append_many(events(4))
    forge_tail(ledger)
    assert not verify(ledger).ok
    monkeypatch.setattr(verify_module._HeadScan, "finish", lambda self, entries: None)
    assert verify(ledger).ok


def test_control_removed_the_ledger_would_sign_over_a_forged_row(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the ledger's check of the tail it extends, its next head covers the forgery."""
    ledger.append_many(events(4))
    forge_tail(ledger)
    monkeypatch.setattr(Ledger, "_tail_signed", lambda self, *_args: True)
    ledger.append_many(events(2, "later"))
    assert verify(ledger).ok  # the forgery is now vouched for: the check matters


def test_a_head_signed_by_an_untrusted_key_is_refused(ledger: Ledger) -> None:
    ledger.append_many(events(6))
    forge_tail(ledger)
    insert_head(ledger, ATTACKER)  # same key name, another key
    report = verify(ledger)
    assert (report.ok, report.problem, report.first_bad_seq) == (
        False,
        Problem.HEAD_UNTRUSTED,
        None,
    )
    assert "tree head for size 7" in report.detail and "no trusted key" in report.detail
    assert report.signed_size == 6

    # The real heads do not verify with a key the application never used either.
    report = verify(ledger, ATTACKER.verifier)
    assert (report.problem, report.signed_size) == (Problem.HEAD_UNTRUSTED, 0)


def test_a_malformed_head_is_refused(ledger: Ledger) -> None:
    ledger.append_many(events(2))
    forge_tail(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_tree_head VALUES (3, 'not a note')"))
    report = verify(ledger)
    assert report.problem is Problem.HEAD_UNTRUSTED and "malformed" in report.detail


def test_a_head_whose_root_does_not_match_is_caught(ledger: Ledger) -> None:
    ledger.append_many(events(6))
    forge_tail(ledger)
    insert_head(ledger, SIGNER, root=b"\x07" * 32)  # validly signed, wrong root
    report = verify(ledger)
    assert (report.ok, report.problem) == (False, Problem.HEAD_INCONSISTENT)
    assert "size 7 does not match" in report.detail


def test_rewritten_history_contradicts_the_signed_heads(ledger: Ledger, tmp_path: Path) -> None:
    ledger.append_many(events(12))
    other = Ledger.open(tmp_path / "rebuilt.db")
    other.append_many(events(12, "x"))  # a complete, self-consistent forgery of the same size
    rows = list(other.iter_raw_rows())
    other.close()
    drop_guards(ledger, ("audit_entry",))
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry"))
        for seq, canonical, leaf, tree in rows:
            conn.execute(
                text("INSERT INTO audit_entry VALUES (:s, 0, :c, :l, :t)"),
                {"s": seq, "c": canonical, "l": leaf, "t": tree},
            )
    assert verify_ledger(ledger).ok
    report = verify(ledger)
    assert report.problem is Problem.HEAD_INCONSISTENT and "size 12 does not match" in report.detail


def test_heads_reveal_a_cut_tail_unless_the_heads_are_cut_too(ledger: Ledger) -> None:
    ledger.append_many(events(5))
    ledger.append_many(events(5, "w"))
    drop_guards(ledger, ("audit_entry", "audit_tree_head"))
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq >= 5"))
    report = verify(ledger)
    assert (report.problem, report.first_bad_seq) == (Problem.TRUNCATED, 5)
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_tree_head WHERE tree_size > 5"))
    # What heads cannot prove: entries and heads cut together look like a shorter log.
    # Only a checkpoint kept outside the database reveals that (docs/audit.md).
    assert verify(ledger).ok


def test_a_revoked_head_key_stops_vouching_from_its_revocation(
    db_url: str,
) -> None:
    clock_now = [datetime(2026, 3, 1, 8, 0, tzinfo=UTC)]
    led = Ledger.open(db_url, head_signer=SIGNER, clock=lambda: clock_now[0])
    try:
        led.append_many(events(3))
        clock_now[0] += timedelta(hours=1)
        led.keys.revoke(SIGNER.verifier.key_id, reason="key file leaked", at=clock_now[0])
        clock_now[0] += timedelta(hours=1)
        led.append_many(events(3, "w"))  # this process still holds the key; its head is void
        report = verify(led)
        assert (report.problem, report.signed_size) == (Problem.HEAD_UNTRUSTED, 3)
        assert "revoked" in report.detail
        with pytest.raises(SigningKeyError, match="revoked"):
            Ledger.open(db_url, head_signer=SIGNER, clock=lambda: clock_now[0])
    finally:
        led.close()


# --------------------------------------------------------- old and mixed logs


def test_a_log_without_heads_verifies_as_before_and_is_adopted_by_its_first_head(
    db_url: str,
) -> None:
    old = Ledger.open(db_url)
    old.append_many(events(4))
    old.close()
    led = Ledger.open(db_url, head_signer=SIGNER)
    try:
        assert verify_ledger(led).ok
        report = verify(led)
        assert (report.problem, report.first_bad_seq) == (Problem.UNSIGNED_ENTRIES, 0)
        led.append(AuditEvent(OP, "create", "batch", "B9"))  # the first head vouches for all 5
        assert verify(led).ok
    finally:
        led.close()


def test_a_database_from_before_tree_heads_verifies_read_only(db_url: str) -> None:
    old = Ledger.open(db_url)
    old.append_many(events(3))
    with old.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_tree_head"))  # as it was before the table existed
    old.close()
    copy = Ledger.open(db_url, read_only=True)
    try:
        assert copy.tree_heads() == []
        assert verify_ledger(copy).ok
        report = verify(copy)
        assert (report.problem, report.first_bad_seq) == (Problem.UNSIGNED_ENTRIES, 0)
    finally:
        copy.close()
    engine = open_engine(db_url)
    with pytest.raises(StorageError, match="predates signed tree heads"):
        Ledger(engine, create=False, head_signer=SIGNER)
    engine.dispose()
    upgraded = Ledger.open(db_url, head_signer=SIGNER)  # opened for writing: table added
    try:
        upgraded.append(AuditEvent(OP, "create", "batch", "B1"))
        assert verify(upgraded).ok
    finally:
        upgraded.close()


def test_a_ledger_without_the_head_key_refuses_to_append_to_a_sealed_log(
    ledger: Ledger,
) -> None:
    ledger.append_many(events(2))
    unsigned = Ledger.open(ledger.engine.url.render_as_string(hide_password=False))
    try:
        with pytest.raises(StorageError, match="head_signer"):
            unsigned.append(AuditEvent(OP, "create", "batch", "B3"))
        with pytest.raises(StorageError, match="head_signer"), unsigned.engine.begin() as conn:
            unsigned.append(AuditEvent(OP, "create", "batch", "B3"), conn=conn)
    finally:
        unsigned.close()
    assert ledger.size() == 2 and verify(ledger).ok


# -------------------------------------------------- the caller's transaction


def test_seal_signs_once_for_a_callers_transaction(ledger: Ledger) -> None:
    ledger.append_many(events(3))
    with ledger.engine.begin() as conn:
        ledger.seal(conn)  # nothing appended: no-op
        ledger.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
        ledger.append(AuditEvent(OP, "start", "batch", "B1"), conn=conn)
        ledger.append_many(events(3, "w"), conn=conn)
        ledger.seal(conn)
        ledger.seal(conn)  # nothing new since the last seal: no-op
        ledger.append(AuditEvent(OP, "pause", "batch", "B1"), conn=conn)
        ledger.seal(conn)
    assert [size for size, _ in ledger.tree_heads()] == [3, 8, 9]
    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "resume", "batch", "B1"), conn=conn)
    assert ledger.tree_heads()[-1][0] == 10
    assert verify(ledger).ok


def test_committing_unsealed_entries_is_refused_and_nothing_commits(ledger: Ledger) -> None:
    ledger.append_many(events(2))
    with ledger.engine.begin() as conn:
        conn.execute(text("CREATE TABLE business (k INTEGER)"))
    refused = r"entry 2 is not sealed.*seal\(conn\) before commit"
    with pytest.raises(StorageError, match=refused), ledger.engine.begin() as conn:
        conn.execute(text("INSERT INTO business VALUES (1)"))
        ledger.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
    assert ledger.size() == 2
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM business")).scalar() == 0
    assert verify(ledger).ok


def test_a_rolled_back_transaction_leaves_nothing_to_seal(ledger: Ledger) -> None:
    ledger.append_many(events(2))
    with pytest.raises(RuntimeError), ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
        raise RuntimeError("the business change failed")
    for _ in range(3):  # whichever pooled connection comes next holds no stale tail
        with ledger.engine.begin() as conn:
            ledger.seal(conn)
    assert ledger.size() == 2 and [s for s, _ in ledger.tree_heads()] == [2]
    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
    assert verify(ledger).ok


def test_seal_after_a_rolled_back_savepoint_signs_what_is_left(ledger: Ledger) -> None:
    ledger.append_many(events(2))
    with ledger.transaction() as conn:
        ledger.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
        savepoint = conn.begin_nested()
        ledger.append_many(events(3, "w"), conn=conn)
        savepoint.rollback()
    assert [s for s, _ in ledger.tree_heads()] == [2, 3]
    with ledger.transaction() as conn:
        savepoint = conn.begin_nested()
        ledger.append(AuditEvent(OP, "start", "batch", "B1"), conn=conn)
        savepoint.rollback()
    assert [s for s, _ in ledger.tree_heads()] == [2, 3] and ledger.size() == 3
    assert verify(ledger).ok


# ---------------------------------------------------------- pure checks


def test_heads_out_of_order_or_doubled_are_inconsistent(ledger: Ledger) -> None:
    ledger.append_many(events(3))
    ledger.append_many(events(3, "w"))
    rows = list(ledger.iter_raw_rows())
    heads = ledger.tree_heads()
    keys = [TrustedKey(SIGNER.verifier)]
    assert verify_rows(rows, heads=heads, head_keys=keys, origin=ledger.origin).ok
    for bad in (heads[::-1], [heads[0], heads[0], heads[1]], [(6, heads[0][1])]):
        report = verify_rows(rows, heads=bad, head_keys=keys, origin=ledger.origin)
        assert report.problem is Problem.HEAD_INCONSISTENT, bad
    report = verify_rows(rows, heads=heads, head_keys=keys, origin="example.org/other")
    assert report.problem is Problem.HEAD_INCONSISTENT and "is for log" in report.detail


# ------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.tuples(st.integers(1, 9), st.booleans()), min_size=1, max_size=6),
    forged=st.integers(1, 3),
    appended_after=st.integers(0, 2),
    status=st.text(min_size=1, max_size=12),
)
def test_random_batches_verify_and_a_random_forged_tail_is_always_caught(
    batches: list[tuple[int, bool]], forged: int, appended_after: int, status: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        led = Ledger.open(Path(folder) / "l.db", head_signer=SIGNER)
        try:
            for n, in_callers_transaction in batches:
                if in_callers_transaction:
                    with led.transaction() as conn:
                        for event in events(n):
                            led.append(event, conn=conn)
                else:
                    led.append_many(events(n))
            report = verify(led)
            assert report.ok and report.heads_checked == len(batches), report.summary()
            first = forge_tail(led, status)
            for _ in range(forged - 1):
                forge_tail(led, status)
            for _ in range(appended_after):
                led.append_many(events(2, "after"))
            report = verify(led)
            assert (report.problem, report.first_bad_seq) == (Problem.UNSIGNED_ENTRIES, first)
        finally:
            led.close()


# ------------------------------------------------------------- concurrency

CHILD = str(Path(__file__).with_name("appender_child.py"))
PASSPHRASE = "correct horse battery"


@pytest.mark.slow
@pytest.mark.parametrize("processes", [3])
def test_concurrent_signing_appenders_leave_gapless_entries_under_increasing_heads(
    db_url: str, tmp_path: Path, processes: int
) -> None:
    key = generate_private_key()
    private, _public = write_key_pair(key, tmp_path / "keys", PASSPHRASE.encode())
    signer = NoteSigner("gxpmes-heads", key)
    Ledger.open(db_url, head_signer=signer).close()
    batches = 15
    env = dict(os.environ, PYTHONUNBUFFERED="1", GXPMES_KEY_PASSPHRASE=PASSPHRASE)
    children = [
        subprocess.Popen(
            [sys.executable, CHILD, db_url, f"h{i}", str(batches), str(private)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(processes)
    ]
    outputs = [child.communicate(timeout=300) for child in children]
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    acks = [line.split() for out, _ in outputs for line in out.splitlines()]
    assert len(acks) == processes * batches
    ends = sorted(int(first) + int(count) for _ack, first, count, _h in acks)
    led = Ledger.open(db_url, read_only=True)
    try:
        report = verify(led, signer.verifier)
        assert report.ok, report.summary()
        assert report.entries == ends[-1] and report.heads_checked == len(acks)
        # One head per write transaction, at exactly the tail it left.
        assert [size for size, _ in led.tree_heads()] == ends
    finally:
        led.close()


def test_the_append_only_role_can_append_and_seal_but_not_rewrite_heads(pg_url: str) -> None:
    import uuid

    from sqlalchemy.exc import DBAPIError

    from audit.schema import grant_append_only

    led = Ledger.open(pg_url, head_signer=SIGNER)
    role = f"appender_{uuid.uuid4().hex[:8]}"
    try:
        led.append_many(events(2))
        with led.engine.begin() as conn:
            conn.execute(text(f"CREATE ROLE {role}"))
        grant_append_only(led.engine, role)
        with led.transaction() as conn:
            conn.execute(text(f"SET LOCAL ROLE {role}"))
            led.append(AuditEvent(OP, "create", "batch", "B1"), conn=conn)
        assert [size for size, _ in led.tree_heads()] == [2, 3]
        for statement in (
            "UPDATE audit_tree_head SET note = 'x'",
            "DELETE FROM audit_tree_head",
            "INSERT INTO audit_tree_head VALUES (1003, 'x')",
        ):
            with pytest.raises(DBAPIError), led.engine.begin() as conn:
                conn.execute(text(f"SET LOCAL ROLE {role}"))
                conn.execute(text(statement))
        assert verify(led).ok
    finally:
        with led.engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        led.close()


def test_the_example_in_the_docs_runs(tmp_path: Path) -> None:
    import re

    docs = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(encoding="utf-8"), flags=re.S)
    snippet = next(b for b in blocks if "head_signer" in b)
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "INTACT: 5 entries" in result.stdout
    assert "every entry under a signed tree head (3 checked)" in result.stdout


def _forge_far_future(ledger: Ledger) -> int:
    """A perfect-form tail entry stamped in year 9999, inserted by bare SQL."""
    size, prev = ledger.head()
    event = AuditEvent(Actor("qa01", "Quinn Approver"), "release", "batch", "B1", new={"s": "x"})
    canonical = encode_entry(size, datetime(9999, 1, 1, tzinfo=UTC), prev, event)
    leaf = record_hash(canonical)
    with ledger.engine.begin() as conn:
        frontier = list(ledger.hash_reader(conn)(frontier_indexes(size)))
        conn.execute(
            text(
                "INSERT INTO audit_entry (seq, object_key, canonical, leaf_hash, tree_hashes) "
                "VALUES (:seq, :key, :canonical, :leaf, :tree)"
            ),
            {
                "seq": size,
                "key": object_key("batch", "B1"),
                "canonical": canonical,
                "leaf": leaf,
                "tree": b"".join(extend_frontier(frontier, size, leaf)),
            },
        )
    return size


@pytest.mark.parametrize("head_row", ["attacker_signed", "garbage"])
def test_a_head_inserted_by_someone_else_never_lets_the_ledger_sign_over_a_forgery(
    ledger: Ledger, head_row: str
) -> None:
    # The attack: forge a tail entry, insert a head row for it (signed by another
    # key, or plain garbage), let the application sign its next head, then delete
    # the fake head. The ledger must not have signed over the forged entry.
    ledger.append_many(events(5))
    forged = forge_tail(ledger)
    if head_row == "attacker_signed":
        insert_head(ledger, ATTACKER)
    else:
        with ledger.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO audit_tree_head (tree_size, note) VALUES (:s, 'garbage')"),
                {"s": forged + 1},
            )
    ledger.append_many(events(3, "after"))
    drop_guards(ledger, ("audit_tree_head",))
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_tree_head WHERE tree_size = :s"), {"s": forged + 1})
    report = verify(ledger)
    assert not report.ok
    assert report.problem is Problem.UNSIGNED_ENTRIES
    assert report.first_bad_seq == forged


def test_a_forged_far_future_entry_does_not_stop_later_writes(ledger: Ledger) -> None:
    ledger.append_many(events(3))
    forged = _forge_far_future(ledger)
    ledger.append_many(events(2, "after"))  # not refused as "time going backwards"
    report = verify(ledger)
    # Caught at the forged entry (unsigned) or just after it (time reversed).
    assert not report.ok and report.first_bad_seq in (forged, forged + 1), report.summary()
