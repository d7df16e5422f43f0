"""Automatic checkpoints: interval triggers, write-once directory sink, back-off, lag, receipts."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from anchoring_support import forge_tail
from sqlalchemy import text
from waiting import wait_until

from audit.anchoring.directory import DirectorySink, checkpoint_file_name, read_checkpoint_dir
from audit.anchoring.publisher import CheckpointPublisher
from audit.anchoring.sink import CheckpointSink, PublishedCheckpoint, Receipt
from audit.anchoring.store import stored_checkpoints
from audit.checkpoint import open_checkpoint
from audit.entry import Actor, AuditEvent
from audit.errors import AnchorError, SinkRefused, SinkUnavailable
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.merkle import check_consistency
from audit.note import NoteSigner

OP = Actor("op01", "Olga Operator")
SIGNER = NoteSigner("gxpmes-heads", generate_private_key())


def event(i: int) -> AuditEvent:
    return AuditEvent(OP, "capture", "value", f"B1/v{i}", new={"v": i})


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    led = Ledger.open(db_url, head_signer=SIGNER)
    yield led
    led.close()


class FlakySink:
    """A sink that is down until ``up`` is set; blocks in publish while ``hold`` is set."""

    kind = "test"

    def __init__(self, name: str = "flaky") -> None:
        self.name = name
        self.up = threading.Event()
        self.hold = threading.Event()
        self.released = threading.Event()
        self.attempts = 0
        self.published: list[int] = []

    def publish(self, checkpoint: PublishedCheckpoint) -> Receipt:
        self.attempts += 1
        if self.hold.is_set():
            self.released.wait(60)
        if not self.up.is_set():
            raise SinkUnavailable("sink is down")
        self.published.append(checkpoint.tree_size)
        return Receipt(self.name, self.kind, b"ok", datetime.now(UTC))


def test_sink_protocol_is_met_by_the_directory_sink(tmp_path: Path) -> None:
    assert isinstance(DirectorySink(tmp_path), CheckpointSink)
    assert isinstance(FlakySink(), CheckpointSink)


def test_checkpoint_every_n_entries(ledger: Ledger, tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    # A timer that never fires inside the test: only the entry count triggers.
    with CheckpointPublisher(ledger, [sink], every_entries=5, every_seconds=3600) as publisher:
        for i in range(23):
            ledger.append(event(i))
            # The window: never more than 4 entries past the newest checkpoint, once caught up.
            wait_until(
                lambda n=i + 1: n - (publisher.newest.tree_size if publisher.newest else 0) <= 4,
                what="checkpoint within 5 entries",
            )
        assert publisher.flush(60)
    files = read_checkpoint_dir(tmp_path)
    sizes = [open_checkpoint(note).checkpoint.tree_size for _name, note in files]
    assert sizes == sorted(set(sizes)) and sizes[-1] == 23  # stop() signs the last one
    gaps = [b - a for a, b in zip([0, *sizes], sizes, strict=False)]
    assert max(gaps[:-1]) <= 5 + 4  # each checkpoint came once 5 more entries were there


def test_checkpoint_after_t_seconds_without_further_appends(ledger: Ledger, tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    with CheckpointPublisher(ledger, [sink], every_entries=10_000, every_seconds=0.05) as pub:
        ledger.append_many([event(i) for i in range(3)])
        wait_until(lambda: pub.newest is not None and pub.newest.tree_size == 3, what="timer")
        wait_until(lambda: pub.status()[0].lag_entries == 0, what="published")
        first = pub.newest
        ledger.append(event(3))
        wait_until(lambda: pub.newest is not None and pub.newest.tree_size == 4, what="timer 2")
    assert first is not None and first.checkpoint.origin == ledger.origin


def test_checkpoints_are_signed_consistent_and_stored_with_receipts(
    ledger: Ledger, tmp_path: Path
) -> None:
    sink = DirectorySink(tmp_path, name="worm")
    with CheckpointPublisher(ledger, [sink], every_entries=1, every_seconds=3600) as pub:
        for i in range(6):
            ledger.append(event(i))
            wait_until(lambda n=i + 1: pub.status()[0].published_size == n, what="published")
    stored = stored_checkpoints(ledger.engine)
    assert [s.tree_size for s in stored] == list(range(1, 7))
    for copy in stored:
        assert [r.sink for r in copy.receipts] == ["worm"]
        name = copy.receipts[0].data.decode()
        assert (tmp_path / name).read_text(encoding="utf-8") == copy.note
        opened = open_checkpoint(copy.note)
        assert SIGNER.verifier.verify(opened.text.encode(), opened.signatures[0].signature)
        assert opened.checkpoint.root == ledger.root(copy.tree_size)
    # Each checkpoint's consistency proof from any older size checks out.
    newest = open_checkpoint(stored[-1].note).checkpoint
    for old in stored[:-1]:
        proof = ledger.prove_consistency(old.tree_size, newest.tree_size)
        check_consistency(
            proof.path, newest.tree_size, newest.root, old.tree_size, ledger.root(old.tree_size)
        )
    with ledger.engine.begin() as conn, pytest.raises(Exception, match=r"append-only|refused"):
        conn.execute(text("UPDATE audit_checkpoint_receipt SET kind = 'forged'"))


def test_down_sink_is_retried_with_back_off_and_never_blocks_ingest(
    ledger: Ledger, tmp_path: Path
) -> None:
    flaky = FlakySink()
    flaky.hold.set()  # the sink hangs inside publish, as a TSA behind a dead route does
    good = DirectorySink(tmp_path)
    with CheckpointPublisher(
        ledger,
        [flaky, good],
        every_entries=1,
        every_seconds=0.05,
        retry_initial=0.05,
        retry_max=0.2,
    ) as pub:
        for i in range(50):  # appends complete while a sink is stuck
            ledger.append(event(i))
        wait_until(lambda: flaky.attempts >= 1, what="first attempt")
        wait_until(
            lambda: {s.sink: s for s in pub.status()}[good.name].published_size == 50,
            what="the healthy sink keeps up",
        )
        flaky.released.set()  # the stuck call fails; later ones fail fast (still down)
        flaky.hold.clear()
        wait_until(lambda: flaky.attempts >= 4, what="retries")
        status = {s.sink: s for s in pub.status()}["flaky"]
        assert status.failures >= 3 and not status.healthy
        assert status.lag_entries == 50 and status.lag_seconds >= 0
        assert "flaky DOWN (lag 50 entries" in pub.status_line()
        assert status.retry_in is not None and status.retry_in <= 0.2  # capped back-off
        flaky.up.set()
        wait_until(lambda: flaky.published and flaky.published[-1] == 50, what="catches up")
        wait_until(lambda: pub.status()[0].lag_entries == 0, what="lag back to 0")
        # It caught up in one step with the newest checkpoint, not one by one.
        assert len(flaky.published) <= 2
        assert pub.status()[0].healthy


def test_refusing_sink_is_an_alarm_not_retried_for_that_checkpoint(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    class Refusing(FlakySink):
        def publish(self, checkpoint: PublishedCheckpoint) -> Receipt:
            self.attempts += 1
            raise SinkRefused("witness saw a fork")

    sink = Refusing("witness-b")
    with CheckpointPublisher(ledger, [sink], every_entries=1, every_seconds=3600) as pub:
        ledger.append(event(0))
        wait_until(lambda: pub.status()[0].refused is not None, what="refusal")
        assert pub.flush(5)
        attempts = sink.attempts
        assert "REFUSED" in pub.status_line() and "witness saw a fork" in pub.status_line()
        assert sink.attempts == attempts == 1
    assert any("REFUSED" in r.getMessage() for r in caplog.records)


def test_a_refusal_wakes_a_waiting_flush(ledger: Ledger) -> None:
    """flush() waits for each sink to hold *or refuse* the newest checkpoint: a
    refusal must wake it, not leave it asleep until its timeout."""

    class HeldRefusing(FlakySink):
        def publish(self, checkpoint: PublishedCheckpoint) -> Receipt:
            self.attempts += 1
            self.released.wait(60)
            raise SinkRefused("witness saw a fork")

    sink = HeldRefusing("witness-b")
    with CheckpointPublisher(ledger, [sink], every_entries=1, every_seconds=3600) as pub:
        ledger.append(event(0))
        wait_until(lambda: sink.attempts == 1, what="the sink to be asked")
        flushed: list[bool] = []
        waiter = threading.Thread(target=lambda: flushed.append(pub.flush(3600)))
        waiter.start()
        sink.released.set()
        waiter.join(60)  # far below flush's own timeout: only a wake-up ends it in time
        assert not waiter.is_alive() and flushed == [True]


def test_directory_sink_writes_once_and_never_overwrites(ledger: Ledger, tmp_path: Path) -> None:
    tmp_path = tmp_path / "worm"
    tmp_path.mkdir()
    ledger.append(event(0))
    with CheckpointPublisher(ledger, [], every_seconds=3600) as pub:
        published = pub.checkpoint_now()
    assert published is not None
    sink = DirectorySink(tmp_path)
    first = sink.publish(published)
    again = sink.publish(published)  # idempotent after a crash between publish and receipt
    assert first.data == again.data
    path = tmp_path / checkpoint_file_name(published)
    assert path.read_bytes() == published.note
    assert not os.access(path, os.W_OK) or os.geteuid() == 0  # created read-only (0444)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    os.chmod(path, 0o644)
    path.write_bytes(b"something else\n")
    with pytest.raises(SinkRefused, match="refusing to overwrite"):
        sink.publish(published)
    assert path.read_bytes() == b"something else\n"
    with pytest.raises(SinkUnavailable, match="does not exist"):
        DirectorySink(tmp_path / "missing").publish(published)


def test_publisher_never_vouches_for_rows_inserted_behind_the_ledger(
    ledger: Ledger, tmp_path: Path
) -> None:
    ledger.append_many([event(i) for i in range(3)])
    with CheckpointPublisher(ledger, [DirectorySink(tmp_path)], every_seconds=3600) as pub:
        assert pub.checkpoint_now() is not None
        forge_tail(ledger)  # a perfect row, but no head of ours covers it
        assert pub.checkpoint_now() is None  # still 3: nothing new that we signed
        assert pub.newest is not None and pub.newest.tree_size == 3


def test_publisher_refuses_to_sign_a_log_that_shrank(ledger: Ledger) -> None:
    ledger.append_many([event(i) for i in range(5)])
    pub = CheckpointPublisher(ledger, [], every_seconds=3600)
    assert pub.checkpoint_now() is not None
    pub._last_size = 9  # as if 9 had been published and 4 entries were cut since
    with pytest.raises(AnchorError, match="entries were removed"):
        pub.checkpoint_now()


def test_bad_configuration_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    unsigned = Ledger(ledger.engine, create=False)
    with pytest.raises(AnchorError, match="signing key"):
        CheckpointPublisher(unsigned, [])
    with pytest.raises(AnchorError, match="interval"):
        CheckpointPublisher(ledger, [], every_entries=0)
    with pytest.raises(AnchorError, match="unique names"):
        CheckpointPublisher(ledger, [DirectorySink(tmp_path), DirectorySink(tmp_path)])
