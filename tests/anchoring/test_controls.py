"""Remove an anchoring control, and its attack goes unnoticed (STYLE.md §6).

Each test runs an attack of test_attacks.py twice: with the control (caught)
and with it monkeypatched away (not caught), so the attack tests are known
to test the control and not something else.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from anchoring_support import LocalTsa, cut_tail, forge_tail, local_tsa

import audit.anchoring.verify as anchored
from audit.anchoring.directory import DirectorySink
from audit.anchoring.publisher import CheckpointPublisher
from audit.anchoring.trust import TrustPolicy, load_trust_file
from audit.anchoring.tsa import request_timestamp
from audit.anchoring.verify import GivenCheckpoint, collect_checkpoints, verify_anchored
from audit.canonical import format_timestamp
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import Actor, AuditEvent
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.schema import EntryRow

OP = Actor("op01", "Olga Operator")
KEY = NoteSigner("gxpmes-heads", generate_private_key())


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    led = Ledger.open(sqlite_url, head_signer=KEY)
    yield led
    led.close()


def trust(path: Path, extra: str = "") -> TrustPolicy:
    path.write_text(f'[[checkpoint_key]]\nvkey = "{KEY.verifier.vkey()}"\n{extra}')
    return load_trust_file(path)


def test_without_checking_every_outside_checkpoint_a_cut_tail_passes(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worm = tmp_path / "worm"
    worm.mkdir()
    with CheckpointPublisher(ledger, [DirectorySink(worm)], every_seconds=3600) as pub:
        for i in range(10):  # one head per entry, so a cut leaves a signed tail
            ledger.append(AuditEvent(OP, "capture", "v", str(i)))
        pub.checkpoint_now()
    cut_tail(ledger, 6)
    policy, given = trust(tmp_path / "t.toml"), collect_checkpoints(directories=[worm])
    caught = verify_anchored(ledger, policy, given=given)
    assert not caught.ok, caught.detail
    original = anchored.verify_rows

    def without_anchors(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**kwargs, "anchors": ()})

    monkeypatch.setattr(anchored, "verify_rows", without_anchors)
    missed = verify_anchored(ledger, policy, given=given)
    assert missed.ok, missed.detail


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTsa]:
    with local_tsa(tmp_path_factory.mktemp("tsa")) as running:
        yield running


def test_without_the_key_check_at_tsa_time_a_backdated_checkpoint_passes(
    ledger: Ledger, tmp_path: Path, tsa: LocalTsa, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.append_many([AuditEvent(OP, "capture", "v", str(i)) for i in range(5)])
    revoked = datetime.now(UTC)  # after the genuine heads, before the thief's token
    policy = trust(
        tmp_path / "t.toml",
        f'revoked_at = {format_timestamp(revoked)}\n\n[[tsa]]\nroots = ["{tsa.ca_cert}"]\n',
    )
    size, head = ledger.head()
    backdated = sign_checkpoint(
        Checkpoint(ledger.origin, size, ledger.root(), head, revoked - timedelta(days=3)), KEY
    )
    token, _ = request_timestamp(tsa.url, backdated.encode())
    given = [GivenCheckpoint("thief", backdated, tokens=[token])]
    assert not verify_anchored(ledger, policy, given=given).ok
    original = anchored.check_timestamp

    def checked_at_claimed_time(token: bytes, note: bytes, at: datetime, *a: Any, **k: Any) -> Any:
        original(token, note, at, *a, **k)
        return at, "removed"  # the key judged at the checkpoint's own time line

    monkeypatch.setattr(anchored, "check_timestamp", checked_at_claimed_time)
    assert verify_anchored(ledger, policy, given=given).ok


def test_without_the_own_head_check_the_publisher_vouches_for_a_forged_row(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.append_many([AuditEvent(OP, "capture", "v", str(i)) for i in range(3)])
    forge_tail(ledger)
    pub = CheckpointPublisher(ledger, [], every_seconds=3600)
    published = pub.checkpoint_now()
    assert published is not None and published.tree_size == 3

    def raw_tail(self: CheckpointPublisher, conn: Any) -> tuple[int, bytes, bytes]:
        from sqlalchemy import select

        from audit.merkle import tree_hash

        seq, leaf = conn.execute(
            select(EntryRow.seq, EntryRow.leaf_hash).order_by(EntryRow.seq.desc()).limit(1)
        ).one()
        return seq + 1, tree_hash(seq + 1, self.ledger.hash_reader(conn)), bytes(leaf)

    monkeypatch.setattr(CheckpointPublisher, "_vouched_tail", raw_tail)
    laundered = CheckpointPublisher(ledger, [], every_seconds=3600).checkpoint_now()
    assert laundered is not None and laundered.tree_size == 4
