"""Parallel verification reports exactly what the single scan reports.

The log is cut into ranges of whole Merkle subtrees, scanned by workers and
stitched by the parent (audit.verify, docs/audit.md "Parallel verification").
Every report — ok or not, problem, first bad seq, detail, heads checked,
root — must equal the one-process scan's, whatever was tampered with and
wherever the range boundaries fall.

In-memory property tests run the same range scan and stitching in this
process over a row list (many examples, every range size); the database
tests run real worker processes on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.entry import GENESIS_PREV, Actor, AuditEvent, encode_entry
from audit.keys import TrustedKey, generate_private_key
from audit.ledger import Ledger
from audit.merkle import extend_frontier, frontier_root
from audit.note import NoteSigner
from audit.verify import (
    HeadTuple,
    RowTuple,
    _verify_rows_in_ranges,
    verify_ledger,
    verify_rows,
)

OP = Actor("op01", "Olga Operator")
ORIGIN = "test.local/parallel"
T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
SIGNER = NoteSigner("heads", generate_private_key())
OTHER = NoteSigner("heads", generate_private_key())
KEYS = [TrustedKey(SIGNER.verifier)]


def build(
    count: int, head_sizes: set[int], stamps: list[int] | None = None, start_text: str = "v"
) -> tuple[list[RowTuple], list[HeadTuple]]:
    """A log written as the ledger writes it: canonical bytes, leaf and interior hashes, heads."""
    rows: list[RowTuple] = []
    heads: list[HeadTuple] = []
    frontier: list[bytes] = []
    prev = GENESIS_PREV
    for n in range(count):
        when = T0 + timedelta(seconds=stamps[n] if stamps else n)
        event = AuditEvent(OP, "capture", "value", f"B1/{n % 5}", new={"v": f"{start_text}{n}"})
        canonical = encode_entry(n, when, prev, event)
        leaf = hashlib.sha256(b"\x00" + canonical).digest()
        interior = b"".join(extend_frontier(frontier, n, leaf)) if n & 1 else b""
        if not n & 1:
            frontier.append(leaf)
        rows.append((n, canonical, leaf, interior))
        prev = leaf
        if n + 1 in head_sizes:
            head = Checkpoint(ORIGIN, n + 1, frontier_root(frontier), prev, when)
            heads.append((n + 1, sign_checkpoint(head, SIGNER)))
    return rows, heads


def report_of(report: Any) -> dict[str, Any]:
    data: dict[str, Any] = report.as_json()
    return data


def both(
    rows: list[RowTuple],
    heads: list[HeadTuple] | None,
    size: int,
    **options: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    keys = KEYS if heads is not None else []
    single = verify_rows(iter(rows), heads=heads, head_keys=keys, origin=ORIGIN, **options)
    ranged = _verify_rows_in_ranges(
        rows, size, heads=heads, head_keys=keys, origin=ORIGIN, **options
    )
    return report_of(single), report_of(ranged)


def rehash(rows: list[RowTuple], seq: int, canonical: bytes) -> None:
    """Replace entry ``seq``'s bytes and its leaf hash (as a forger would)."""
    old = rows[seq]
    rows[seq] = (old[0], canonical, hashlib.sha256(b"\x00" + canonical).digest(), old[3])


TAMPERS = [
    "none",
    "edit_bytes",
    "edit_and_rehash",
    "leaf_hash",
    "tree_hash",
    "tree_hash_extra",
    "delete",
    "delete_run",
    "delete_tail",
    "swap",
    "malformed",
    "as_text",
    "rewrite_from",
    "append_unsigned",
    "append_far",
    "bad_head",
    "foreign_head",
    "negative_seq",
]


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[RowTuple], list[HeadTuple] | None, int, str, int]:
    count = draw(st.integers(1, 70))
    every = draw(st.sampled_from([1, 3, 7, 16, 100]))
    head_sizes = set(range(every, count + 1, every)) | {count}
    if draw(st.booleans()):  # times may go backwards somewhere
        stamps = sorted(draw(st.lists(st.integers(0, 50), min_size=count, max_size=count)))
        if count > 1:
            i = draw(st.integers(1, count - 1))
            stamps[i] = stamps[i - 1] - draw(st.integers(0, 2))
    else:
        stamps = None
    rows, heads = build(count, head_sizes, stamps)
    tamper = draw(st.sampled_from(TAMPERS))
    seq = draw(st.integers(0, count - 1))
    size = draw(st.sampled_from([4, 8, 16, 32]))
    apply(rows, heads, tamper, seq, draw)
    if draw(st.integers(0, 3)) == 0:  # a second problem, anywhere (the first must win)
        second = draw(st.sampled_from(TAMPERS))
        if rows and all(isinstance(row[1], bytes) for row in rows):
            apply(rows, heads, second, draw(st.integers(0, len(rows) - 1)), draw)
    # As the database returns them: in seq order, one row per seq.
    rows[:] = sorted({row[0]: row for row in reversed(rows)}.values(), key=lambda r: r[0])
    return rows, heads if draw(st.integers(0, 4)) else None, size, tamper, seq


def apply(
    rows: list[RowTuple], heads: list[HeadTuple], tamper: str, seq: int, draw: st.DrawFn
) -> None:
    count = len(rows)
    s, canonical, leaf, tree = rows[seq]
    if tamper == "edit_bytes":
        rows[seq] = (s, canonical.replace(b'"v":"v', b'"v":"w'), leaf, tree)
    elif tamper == "edit_and_rehash":
        rehash(rows, seq, canonical.replace(b'"v":"v', b'"v":"w'))
    elif tamper == "leaf_hash":
        rows[seq] = (s, canonical, bytes(32), tree)
    elif tamper == "tree_hash":
        odd = seq | 1 if (seq | 1) < count else seq
        s, canonical, leaf, tree = rows[odd]
        where = draw(st.integers(0, max(len(tree) - 1, 0)))
        flipped = tree[:where] + bytes([tree[where] ^ 1]) + tree[where + 1 :] if tree else b"\x01"
        rows[odd] = (s, canonical, leaf, flipped)
    elif tamper == "tree_hash_extra":
        rows[seq] = (s, canonical, leaf, tree + bytes(32))
    elif tamper == "delete":
        del rows[seq]
    elif tamper == "delete_run":
        del rows[seq : seq + draw(st.integers(1, 20))]
    elif tamper == "delete_tail":
        del rows[seq:]
    elif tamper == "swap" and seq + 1 < count:
        a, b = rows[seq], rows[seq + 1]
        rows[seq], rows[seq + 1] = (a[0], *b[1:]), (b[0], *a[1:])  # type: ignore[assignment]
    elif tamper == "malformed":
        rehash(rows, seq, b"not json" + canonical[:20])
    elif tamper == "as_text":
        rows[seq] = (s, canonical.decode(), leaf, tree)  # type: ignore[assignment]
    elif tamper == "rewrite_from":
        # Everything from seq rewritten with valid hashes: only heads (or nothing) tell.
        forged, _ = build(count, set(), None, start_text="x")
        rows[seq:] = forged[seq:]
    elif tamper == "append_unsigned":
        more, _ = build(count + draw(st.integers(1, 9)), set())
        rows.extend(more[count:])
    elif tamper == "append_far":
        rows.append((count + draw(st.integers(1, 40)), canonical, leaf, tree))
    elif tamper == "bad_head" and heads:
        i = draw(st.integers(0, len(heads) - 1))
        heads[i] = (heads[i][0], heads[i][1].replace("\n\n", "\nx\n\n", 1))
    elif tamper == "foreign_head" and heads:
        i = draw(st.integers(0, len(heads) - 1))
        opened = open_checkpoint(heads[i][1]).checkpoint
        heads[i] = (heads[i][0], sign_checkpoint(opened, OTHER))
    elif tamper == "negative_seq":
        rows.insert(0, (-1, canonical, leaf, tree))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_ranges_report_what_the_single_scan_reports(
    case: tuple[list[RowTuple], list[HeadTuple] | None, int, str, int],
) -> None:
    rows, heads, size, _tamper, _seq = case
    single, ranged = both(rows, heads, size)
    assert ranged == single


@settings(max_examples=60, deadline=None)
@given(cases(), st.booleans())
def test_deep_mode_and_a_checkpoint_agree_too(
    case: tuple[list[RowTuple], list[HeadTuple] | None, int, str, int], early: bool
) -> None:
    rows, heads, size, _tamper, _seq = case
    signer = NoteSigner("cp", generate_private_key())
    clean, _ = build(80, set())
    cp_size = 1 + (len(rows) // 3 if early else len(rows) + 5)
    frontier: list[bytes] = []
    for n, row in enumerate(clean[:cp_size]):
        if n & 1:
            extend_frontier(frontier, n, row[2])
        else:
            frontier.append(row[2])
    note = sign_checkpoint(
        Checkpoint(ORIGIN, cp_size, frontier_root(frontier), clean[cp_size - 1][2], T0), signer
    )
    opened = open_checkpoint(note)
    single, ranged = both(
        rows, heads, size, deep=True, checkpoint=opened, trusted_keys=[TrustedKey(signer.verifier)]
    )
    assert ranged == single


def test_the_cases_cover_every_problem_kind() -> None:
    """The property tests reach every row-level problem at and off range boundaries."""
    seen: set[str] = set()
    for tamper in TAMPERS:
        for seq in (0, 3, 4, 7, 8, 15, 16, 31, 33):
            rows, heads = build(48, set(range(5, 49, 5)) | {48}, None)
            apply(rows, heads, tamper, seq, lambda _s: 1)  # type: ignore[arg-type, return-value]
            single, ranged = both(rows, heads, 8)
            assert ranged == single, (tamper, seq)
            seen.add(str(single["problem"]))
    rows, heads = build(20, {20}, [0, 1, 2, 3, 2, *range(5, 20)])
    single, ranged = both(rows, heads, 4)
    assert ranged == single and single["problem"] == "time_reversed"
    seen.add(single["problem"])
    for kind in (
        "None",
        "hash_mismatch",
        "chain_break",
        "gap",
        "seq_mismatch",
        "tree_hash_mismatch",
        "malformed_entry",
        "head_untrusted",
        "head_inconsistent",
        "unsigned_entries",
        "time_reversed",
    ):
        assert kind in seen, kind


# ---------------------------------------------------------------- databases


def drop_guards(ledger: Ledger) -> None:
    """Remove the append-only triggers, as an administrator with full rights could."""
    with ledger.engine.begin() as conn:
        for table in ("audit_entry", "audit_tree_head"):
            if ledger.engine.dialect.name == "sqlite":
                for suffix in ("no_update", "no_delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_{suffix}"))
            else:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
        if ledger.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS audit_entry_at_tail"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_entry_at_tail ON audit_entry"))


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    ledger = Ledger.open(db_url, head_signer=SIGNER)
    for start in range(0, 45, 9):
        ledger.append_many(
            [
                AuditEvent(OP, "capture", "value", f"B1/{i}", new={"v": i})
                for i in range(start, start + 9)
            ]
        )
    drop_guards(ledger)
    yield ledger
    ledger.close()


DB_TAMPERS = {
    "none": [],
    "edit": ["UPDATE audit_entry SET canonical = :junk WHERE seq = 17"],
    "leaf_at_boundary": ["UPDATE audit_entry SET leaf_hash = :zero WHERE seq = 16"],
    "tree_of_last_in_range": ["UPDATE audit_entry SET tree_hashes = :zero WHERE seq = 31"],
    "delete_boundary": ["DELETE FROM audit_entry WHERE seq = 8"],
    "delete_range": ["DELETE FROM audit_entry WHERE seq >= 8 AND seq < 16"],
    "delete_tail": ["DELETE FROM audit_entry WHERE seq >= 40"],
    "head_deleted_entries_kept": ["DELETE FROM audit_tree_head WHERE tree_size = 45"],
}


@pytest.mark.parametrize("tamper", list(DB_TAMPERS))
def test_worker_processes_report_what_one_process_reports(ledger: Ledger, tamper: str) -> None:
    for statement in DB_TAMPERS[tamper]:
        with ledger.engine.begin() as conn:
            conn.execute(text(statement), {"junk": b"{}", "zero": bytes(32)})
    single = verify_ledger(ledger, head_keys=SIGNER.verifier)
    for jobs, size in ((2, 8), (3, 4)):
        parallel = verify_ledger(ledger, head_keys=SIGNER.verifier, jobs=jobs, range_size=size)
        assert report_of(parallel) == report_of(single), (jobs, size)
    assert single.ok == (tamper == "none")
    without_heads = verify_ledger(ledger, jobs=2, range_size=16)
    assert report_of(without_heads) == report_of(verify_ledger(ledger))


def test_a_short_log_is_verified_in_one_process(sqlite_url: str) -> None:
    ledger = Ledger.open(sqlite_url, head_signer=SIGNER)
    ledger.append_many([AuditEvent(OP, "capture", "value", "B1/1", new={"v": i}) for i in range(5)])
    report = verify_ledger(ledger, head_keys=SIGNER.verifier, jobs=4)
    assert report.ok and report.entries == 5 and report.heads_checked == 1
    ledger.close()


def test_bad_job_and_range_arguments_are_refused(sqlite_url: str) -> None:
    ledger = Ledger.open(sqlite_url)
    with pytest.raises(ValueError, match="jobs"):
        verify_ledger(ledger, jobs=0)
    with pytest.raises(ValueError, match="power of two"):
        verify_ledger(ledger, jobs=2, range_size=12)
    ledger.close()


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.integers(20, 60),
    tamper=st.sampled_from(["none", "edit", "delete", "tree", "time"]),
    where=st.integers(0, 59),
    jobs=st.sampled_from([2, 3]),
)
def test_random_logs_in_worker_processes(
    tmp_path: Path, count: int, tamper: str, where: int, jobs: int
) -> None:
    path = tmp_path / f"log-{count}-{tamper}-{where}-{jobs}.db"
    path.unlink(missing_ok=True)
    clock = iter(T0 + timedelta(seconds=i) for i in range(1000))
    ledger = Ledger.open(path, head_signer=SIGNER, clock=lambda: next(clock))
    for start in range(0, count, 6):
        ledger.append_many(
            [
                AuditEvent(OP, "capture", "value", "B1/1", new={"v": i})
                for i in range(start, min(start + 6, count))
            ]
        )
    drop_guards(ledger)
    seq = where % count
    with ledger.engine.begin() as conn:
        if tamper == "edit":
            conn.execute(
                text("UPDATE audit_entry SET canonical = x'7b7d' WHERE seq = :s"), {"s": seq}
            )
        elif tamper == "delete":
            conn.execute(text("DELETE FROM audit_entry WHERE seq = :s"), {"s": seq})
        elif tamper == "tree":
            conn.execute(
                text("UPDATE audit_entry SET tree_hashes = zeroblob(32) WHERE seq = :s"),
                {"s": seq | 1},
            )
        elif tamper == "time":
            conn.execute(
                text(
                    "UPDATE audit_entry SET canonical = replace(canonical, '2026-01-15', "
                    "'2025-01-15') WHERE seq = :s"
                ),
                {"s": seq},
            )
    single = verify_ledger(ledger, head_keys=SIGNER.verifier)
    parallel = verify_ledger(ledger, head_keys=SIGNER.verifier, jobs=jobs, range_size=8)
    assert report_of(parallel) == report_of(single)
    ledger.close()


@pytest.mark.parametrize("tamper", [False, True])
def test_a_log_with_value_blocks_reports_the_same(sqlite_url: str, tamper: bool) -> None:
    from audit.blocks import encode_leaves

    ledger = Ledger.open(sqlite_url, head_signer=SIGNER)
    for i in range(12):
        ledger.append_many([AuditEvent(OP, "capture", "value", "B1/1", new={"v": i})] * 2)
        ledger.append_block(
            AuditEvent(OP, "capture", "values", "B1/2"),
            encode_leaves([{"tag": "TT-1", "value": str(i * 10 + k)} for k in range(5)]),
        )
    if tamper:
        drop_guards(ledger)
        with ledger.engine.begin() as conn:
            for trigger in ("audit_block_no_update", "audit_block_append_only"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
            conn.execute(text("UPDATE audit_block SET leaves = substr(leaves, 1, 40)"))
    single = verify_ledger(ledger, head_keys=SIGNER.verifier)
    parallel = verify_ledger(ledger, head_keys=SIGNER.verifier, jobs=2, range_size=4)
    assert report_of(parallel) == report_of(single)
    ledger.close()


def test_two_problems_in_a_range_s_last_entry_report_the_first() -> None:
    """Entry 15 closes the second range of 8 and stores a level-4 hash spanning both.

    Its time goes backwards *and* that hash is wrong: the single scan checks the
    hashes first, so the parent must check the handed-on hash even though the
    worker stopped at the time.
    """
    rows, heads = build(20, {20}, [*range(15), 3, *range(16, 20)])
    seq, canonical, leaf, tree = rows[15]
    assert len(tree) == 4 * 32
    rows[15] = (seq, canonical, leaf, tree[:96] + bytes(32))
    single, ranged = both(rows, heads, 8)
    assert single["problem"] == "tree_hash_mismatch" and single["first_bad_seq"] == 15
    assert ranged == single
    rows[15] = (seq, canonical, leaf, tree)  # only the time: that is what both report
    single, ranged = both(rows, heads, 8)
    assert single["problem"] == "time_reversed" and ranged == single
