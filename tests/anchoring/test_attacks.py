"""The attacks of issue 15, each detected given the sinks, with its detection window asserted.

Attackers: (a) SQL access to the database (guards dropped: the owner, or
anyone holding the SQLite file); (c) a stolen checkpoint/tree-head key. The
sinks (a write-once directory, a TSA) are where the attacker cannot write.
Trust comes from a trust file, never from the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from anchoring_support import LocalTsa, cut_tail, drop_guards, forge_tail, local_tsa
from sqlalchemy import text
from waiting import wait_until

from audit.anchoring.directory import DirectorySink, read_checkpoint_dir
from audit.anchoring.publisher import CheckpointPublisher
from audit.anchoring.trust import TrustPolicy, load_trust_file
from audit.anchoring.tsa import TimestampSink, request_timestamp
from audit.anchoring.verify import GivenCheckpoint, collect_checkpoints, verify_anchored
from audit.canonical import format_timestamp
from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.entry import Actor, AuditEvent
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import Problem, VerificationReport

OP = Actor("op01", "Olga Operator")
KEY = NoteSigner("gxpmes-heads", generate_private_key())  # the key that will be stolen
INTRUDER = NoteSigner("gxpmes-heads", generate_private_key())


def event(i: int, tag: str = "v") -> AuditEvent:
    return AuditEvent(OP, "capture", "value", f"DEV-7/{tag}{i}", new={"v": i})


def write_trust(
    path: Path,
    *,
    revoked_at: datetime | None = None,
    tsa: LocalTsa | None = None,
    require_timestamp: bool = False,
) -> TrustPolicy:
    lines = []
    if require_timestamp:
        lines += ["[checkpoints]", "require_timestamp = true", ""]
    lines += ["[[checkpoint_key]]", f'vkey = "{KEY.verifier.vkey()}"']
    if revoked_at is not None:
        lines += [f"revoked_at = {format_timestamp(revoked_at)}", 'revocation_reason = "stolen"']
    if tsa is not None:
        lines += ["", "[[tsa]]", 'name = "local"', f'roots = ["{tsa.ca_cert}"]']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_trust_file(path)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    led = Ledger.open(db_url, head_signer=KEY)
    yield led
    led.close()


@pytest.fixture
def worm(tmp_path: Path) -> Path:
    folder = tmp_path / "worm"
    folder.mkdir()
    return folder


def ingest(ledger: Ledger, worm: Path, n: int, every: int, tag: str = "v") -> int:
    """Append ``n`` entries one per transaction with automatic checkpoints every ``every``.

    Returns the size of the newest checkpoint in the folder once the
    publisher has caught up (condition wait, no fixed sleep).
    """
    start = ledger.size()
    with CheckpointPublisher(
        ledger, [DirectorySink(worm)], every_entries=every, every_seconds=3600
    ) as pub:
        for i in range(n):
            ledger.append(event(start + i, tag))
        total = start + n
        wait_until(
            lambda: pub.newest is not None and total - pub.newest.tree_size <= every - 1,
            what="checkpoint window",
        )
        wait_until(lambda: pub.flush(0.1), what="published")
        newest = pub.newest.tree_size
        pub.stop(final_checkpoint=False)
    return newest


def check(ledger: Ledger, policy: TrustPolicy, **kw: object) -> VerificationReport:
    return verify_anchored(ledger, policy, **kw)  # type: ignore[arg-type]


# ------------------------------------------------- (a) SQL access: cut the tail


def test_tail_cut_within_the_window_only(ledger: Ledger, worm: Path, tmp_path: Path) -> None:
    every = 5
    newest = ingest(ledger, worm, 23, every)
    policy = write_trust(tmp_path / "trust.toml")
    outside = collect_checkpoints(directories=[worm])
    assert check(ledger, policy, given=outside).ok
    # Detection window: at most every-1 entries lie past the newest outside checkpoint.
    assert 23 - newest <= every - 1
    cut_tail(ledger, newest)  # the entries after it vanish: not detectable, by design
    assert check(ledger, policy, given=outside).ok
    cut_tail(ledger, newest - 1)  # one entry more (an open deviation's entry, say)
    report = check(ledger, policy, given=outside)
    assert not report.ok and report.problem is Problem.TRUNCATED
    assert str(newest) in report.detail
    # The database's own copies went with the cut: without the sink, nothing shows.
    assert check(ledger, policy).ok


def test_consistent_rewrite_with_the_stolen_key_caught_before_the_newest_checkpoint(
    ledger: Ledger, worm: Path, tmp_path: Path
) -> None:
    newest = ingest(ledger, worm, 20, 5)
    policy = write_trust(tmp_path / "trust.toml")
    # Rewrite from entry 7 on with the stolen key: heads re-signed, log perfect in form.
    cut_tail(ledger, 7)
    forger = Ledger(ledger.engine, create=False, head_signer=KEY)
    forger.append_many([event(i, "forged") for i in range(7, 20)])
    assert ledger.size() == 20
    # The forger's own checkpoint of the rewritten log verifies on its own...
    size, head = forger.head()
    own = sign_checkpoint(
        Checkpoint(ledger.origin, size, forger.root(), head, datetime.now(UTC)), KEY
    )
    alone = check(ledger, policy, given=[GivenCheckpoint("forger.checkpoint", own)])
    assert alone.ok
    # ...but the log is checked against every outside checkpoint, not one.
    report = check(
        ledger,
        policy,
        given=[*collect_checkpoints(directories=[worm]), GivenCheckpoint("forger", own)],
    )
    assert not report.ok and report.problem is Problem.CHECKPOINT_INCONSISTENT
    sizes = sorted(open_checkpoint(n).checkpoint.tree_size for _f, n in read_checkpoint_dir(worm))
    assert newest == sizes[-1] and any(s > 7 for s in sizes)
    # A rewrite that keeps every checkpointed entry is the window: 20 - newest entries.
    assert 20 - newest <= 4


def test_database_copies_are_checked_too(ledger: Ledger, worm: Path, tmp_path: Path) -> None:
    ingest(ledger, worm, 12, 4)
    policy = write_trust(tmp_path / "trust.toml")
    cut_tail(ledger, 3)
    forger = Ledger(ledger.engine, create=False, head_signer=KEY)
    forger.append_many([event(i, "forged") for i in range(3, 12)])
    # Every database copy of a checkpoint above 3 survived the cut? No: cut_tail removed
    # those above 3; re-insert one as it was (information the attacker forgot to remove).
    notes = [n for _f, n in read_checkpoint_dir(worm)]
    with ledger.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_checkpoint (tree_size, created_at, note) "
                "VALUES (:s, '2026-01-01T00:00:00.000000Z', :n)"
            ),
            {"s": open_checkpoint(notes[-1]).checkpoint.tree_size, "n": notes[-1]},
        )
    report = check(ledger, policy)  # no outside checkpoint given at all
    assert not report.ok and report.problem is Problem.CHECKPOINT_INCONSISTENT
    assert "database checkpoint" in report.detail


# --------------------------------------------- trust from the file, not the DB


def test_fake_revocation_in_the_database_does_not_fail_a_valid_trail(
    ledger: Ledger, worm: Path, tmp_path: Path
) -> None:
    ingest(ledger, worm, 6, 3)
    with ledger.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_key_revocation (key_id, revoked_at, reason) "
                "VALUES (:k, '2000-01-01T00:00:00.000000Z', 'fake')"
            ),
            {"k": KEY.verifier.key_id},
        )
    policy = write_trust(tmp_path / "trust.toml")
    report = check(ledger, policy, given=collect_checkpoints(directories=[worm]))
    assert report.ok, report.detail
    assert any("only the trust file's revocations count" in w for w in report.warnings)


def test_junk_evidence_in_the_database_does_not_fail_a_valid_trail(
    ledger: Ledger, worm: Path, tmp_path: Path
) -> None:
    ingest(ledger, worm, 6, 3)
    with ledger.engine.begin() as conn:
        first = conn.scalar(text("SELECT min(id) FROM audit_checkpoint"))
        conn.execute(
            text(
                "INSERT INTO audit_checkpoint_receipt (checkpoint_id, sink, kind, received_at, "
                "data) VALUES (:i, 'tsa:junk', 'rfc3161', '2026-01-01T00:00:00.000000Z', :d)"
            ),
            {"i": first, "d": b"\x30\x03\x02\x01\x00"},
        )
    policy = write_trust(tmp_path / "trust.toml")
    report = check(ledger, policy, given=collect_checkpoints(directories=[worm]))
    assert report.ok, report.detail


def test_keys_registered_in_the_database_are_not_trusted(
    ledger: Ledger, worm: Path, tmp_path: Path
) -> None:
    ingest(ledger, worm, 4, 2)
    ledger.keys.register(INTRUDER)  # anyone with SQL access can add a key row
    forge_tail(ledger)
    size, head = ledger.head()
    note = sign_checkpoint(
        Checkpoint(ledger.origin, size, ledger.root(), head, datetime.now(UTC)), INTRUDER
    )
    with ledger.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_tree_head (tree_size, note) VALUES (:s, :n)"),
            {"s": size, "n": note},
        )
    policy = write_trust(tmp_path / "trust.toml")
    report = check(ledger, policy, given=collect_checkpoints(directories=[worm]))
    assert not report.ok and report.problem is Problem.HEAD_UNTRUSTED


# ------------------------------------- (c) stolen key, back-dated checkpoint


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTsa]:
    with local_tsa(tmp_path_factory.mktemp("tsa")) as running:
        yield running


def test_backdated_checkpoint_by_a_revoked_stolen_key_is_caught(
    ledger: Ledger, worm: Path, tmp_path: Path, tsa: LocalTsa
) -> None:
    # A 50-entry log, every checkpoint time-stamped and kept in the write-once folder.
    with CheckpointPublisher(
        ledger,
        [DirectorySink(worm), TimestampSink(tsa.url, name="tsa", directory=worm)],
        every_entries=10,
        every_seconds=0.1,  # the timer takes the last entries
    ) as pub:
        for i in range(50):
            ledger.append(event(i))
        wait_until(
            lambda: pub.newest is not None and pub.newest.tree_size == 50 and pub.flush(0.1),
            what="all published",
        )
    outside = collect_checkpoints(directories=[worm])
    # The TSA sink takes the newest checkpoint when it is behind: the last one has a token.
    assert max(outside, key=lambda g: open_checkpoint(g.note).checkpoint.tree_size).tokens
    # The key is revoked (in the trust file) once the genuine checkpoints were stamped.
    revoked = datetime.now(UTC) + timedelta(seconds=3)
    policy = write_trust(
        tmp_path / "trust.toml", revoked_at=revoked, tsa=tsa, require_timestamp=True
    )
    assert check(ledger, policy, given=outside).ok
    wait_until(lambda: datetime.now(UTC) > revoked, what="revocation time passes")
    # The thief cuts the log to 10 entries, removes the database's revocation row,
    # and signs a checkpoint of the cut "3 days earlier" — before the revocation.
    cut_tail(ledger, 10)
    drop_guards(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_key_revocation"))
    size, head = ledger.head()
    backdated = sign_checkpoint(
        Checkpoint(ledger.origin, size, ledger.root(), head, revoked - timedelta(days=3)), KEY
    )
    # Without a time-stamp the file's require_timestamp refuses it...
    report = check(ledger, policy, given=[GivenCheckpoint("thief.checkpoint", backdated)])
    assert not report.ok and "no valid RFC 3161" in report.detail
    # ...and a real token for it is dated now, when the key was already revoked.
    token, _ = request_timestamp(tsa.url, backdated.encode())
    stamped = GivenCheckpoint("thief.checkpoint", backdated, tokens=[token])
    report = check(ledger, policy, given=[stamped])
    assert not report.ok and report.problem is Problem.REVOKED_KEY
    assert "stolen" in report.detail
    # And the folder's checkpoints show the cut whatever the thief presents.
    report = check(ledger, policy, given=outside)
    assert not report.ok and report.problem is Problem.TRUNCATED


def test_tokens_kept_only_in_the_database_count_until_deleted(
    ledger: Ledger, worm: Path, tmp_path: Path, tsa: LocalTsa
) -> None:
    # The TSA sink without a folder: its tokens live only in the receipts table.
    with CheckpointPublisher(
        ledger, [DirectorySink(worm), TimestampSink(tsa.url, name="tsa")], every_seconds=3600
    ) as pub:
        ledger.append_many([event(i) for i in range(4)])
        pub.checkpoint_now()
        wait_until(lambda: pub.flush(0.1), what="published")
    policy = write_trust(tmp_path / "trust.toml", tsa=tsa, require_timestamp=True)
    outside = collect_checkpoints(directories=[worm])
    assert not any(g.tokens for g in outside)
    assert check(ledger, policy, given=outside).ok  # a signed token is evidence wherever kept
    drop_guards(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_checkpoint_receipt"))
    report = check(ledger, policy, given=outside)
    assert not report.ok and "no valid RFC 3161" in report.detail  # hence: directory = ...
