"""RFC 3161 time-stamps of checkpoints against a real local TSA (``openssl ts -reply``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from anchoring_support import LocalTsa, local_tsa, make_ca
from waiting import wait_until

from audit.anchoring.directory import DirectorySink, checkpoint_file_name
from audit.anchoring.publisher import CheckpointPublisher
from audit.anchoring.sink import PublishedCheckpoint
from audit.anchoring.store import stored_checkpoints
from audit.anchoring.tsa import (
    TimestampAuthority,
    TimestampSink,
    check_timestamp,
    load_certificates,
    request_timestamp,
)
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import Actor, AuditEvent
from audit.errors import AnchorError, SinkRefused, SinkUnavailable
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner

OP = Actor("op01", "Olga Operator")
SIGNER = NoteSigner("gxpmes-heads", generate_private_key())


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTsa]:
    with local_tsa(tmp_path_factory.mktemp("tsa")) as running:
        yield running


@pytest.fixture
def authority(tsa: LocalTsa) -> TimestampAuthority:
    return TimestampAuthority("local", tuple(load_certificates(tsa.ca_cert)))


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    led = Ledger.open(sqlite_url, head_signer=SIGNER)
    led.append_many([AuditEvent(OP, "capture", "value", f"v{i}") for i in range(5)])
    yield led
    led.close()


def published(ledger: Ledger, when: datetime | None = None) -> PublishedCheckpoint:
    size, head = ledger.head()
    checkpoint = Checkpoint(ledger.origin, size, ledger.root(), head, when or datetime.now(UTC))
    note = sign_checkpoint(checkpoint, SIGNER)
    return PublishedCheckpoint.from_note(0, note, lambda old: ())


def test_token_covers_exactly_this_checkpoint(ledger: Ledger, tsa: LocalTsa, authority) -> None:
    cp = published(ledger)
    receipt = TimestampSink(tsa.url, authorities=[authority]).publish(cp)
    assert receipt.kind == "rfc3161"
    gen_time, name = check_timestamp(receipt.data, cp.note, cp.timestamp, [authority])
    assert name == "local" and gen_time >= cp.timestamp
    other = published(ledger, cp.timestamp + timedelta(microseconds=1))
    with pytest.raises(AnchorError, match="Mismatch between messages"):
        check_timestamp(receipt.data, other.note, other.timestamp, [authority])
    flipped = bytearray(receipt.data)
    flipped[-40] ^= 0x01  # inside the signature
    with pytest.raises(AnchorError):
        check_timestamp(bytes(flipped), cp.note, cp.timestamp, [authority])


def test_token_of_an_untrusted_tsa_is_refused(
    ledger: Ledger, tsa: LocalTsa, tmp_path: Path
) -> None:
    cp = published(ledger)
    token, _nonce = request_timestamp(tsa.url, cp.note)
    other_root, _key = make_ca(tmp_path, "Some Other Root")
    stranger = TimestampAuthority("other", tuple(load_certificates(other_root)))
    with pytest.raises(AnchorError, match="does not verify under TSA other"):
        check_timestamp(token, cp.note, cp.timestamp, [stranger])
    with pytest.raises(AnchorError, match="no trusted TSA"):
        check_timestamp(token, cp.note, cp.timestamp, [])
    # The sink checks tokens before storing them: an impostor TSA shows as refusing.
    with pytest.raises(SinkRefused):
        TimestampSink(tsa.url, authorities=[stranger]).publish(cp)


def test_checkpoint_dated_after_the_tsa_time_is_caught(
    ledger: Ledger, tsa: LocalTsa, authority
) -> None:
    future = published(ledger, datetime.now(UTC) + timedelta(hours=1))
    token, _ = request_timestamp(tsa.url, future.note)
    with pytest.raises(AnchorError, match="later than its RFC 3161 time-stamp"):
        check_timestamp(token, future.note, future.timestamp, [authority])


def test_tsa_trusted_only_within_its_validity(ledger: Ledger, tsa: LocalTsa, authority) -> None:
    cp = published(ledger)
    token, _ = request_timestamp(tsa.url, cp.note)
    revoked = TimestampAuthority(
        "local",
        authority.roots,
        revoked_at=cp.timestamp - timedelta(days=1),
        revocation_reason="TSA key compromised",
    )
    with pytest.raises(AnchorError, match="TSA key compromised"):
        check_timestamp(token, cp.note, cp.timestamp, [revoked])


def test_tsa_down_is_unavailable_then_retried_until_it_answers(
    ledger: Ledger, tsa: LocalTsa, authority, tmp_path: Path
) -> None:
    folder = tmp_path / "cps"
    folder.mkdir()
    tsa.down = True
    try:
        with pytest.raises(SinkUnavailable, match="HTTP 503"):
            TimestampSink(tsa.url).publish(published(ledger))
        sink = TimestampSink(tsa.url, name="tsa", authorities=[authority], directory=folder)
        with CheckpointPublisher(
            ledger,
            [sink, DirectorySink(folder)],
            every_seconds=0.05,
            retry_initial=0.05,
            retry_max=0.2,
        ) as pub:
            wait_until(lambda: {s.sink: s for s in pub.status()}["tsa"].failures >= 2)
            assert "tsa DOWN" in pub.status_line()
            tsa.down = False
            wait_until(lambda: pub.flush(0.1), what="TSA catches up")
            newest = pub.newest
            assert newest is not None
    finally:
        tsa.down = False
    stored = stored_checkpoints(ledger.engine)
    tokens = [r for c in stored for r in c.receipts if r.sink == "tsa"]
    assert tokens
    # The token sits beside the checkpoint file too, where verification finds it.
    name = checkpoint_file_name(newest)
    assert (folder / name).read_bytes() == newest.note
    beside = (folder / (name + ".tsr")).read_bytes()
    check_timestamp(beside, newest.note, newest.timestamp, [authority])


def test_unreachable_tsa_and_bad_urls(ledger: Ledger) -> None:
    with pytest.raises(SinkUnavailable, match="unreachable"):
        TimestampSink("http://127.0.0.1:9/tsr", timeout=2).publish(published(ledger))
    with pytest.raises(AnchorError, match="http"):
        TimestampSink("file:///etc/passwd")
