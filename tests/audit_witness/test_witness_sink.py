"""Witnesses as checkpoint sinks of the automatic publisher, and k-of-n verification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from waiting import wait_until
from witness_support import Site, append, running_witness

from audit.anchoring import Receipt, stored_checkpoints
from audit.anchoring.publisher import CheckpointPublisher
from audit.keys import generate_private_key
from audit.witness import (
    CosignatureError,
    Cosigner,
    CosignerVerifier,
    append_cosignatures,
    verify_cosignatures,
)
from audit.witness.sink import WitnessSink, cosigned_with_receipts, witness_report
from audit.witness.verify import WitnessKey, merge_cosigned


def publisher(site: Site, sinks: list[WitnessSink]) -> CheckpointPublisher:
    return CheckpointPublisher(
        site.ledger, sinks, signer=site.signer, every_seconds=3600, retry_initial=0.05
    )


def test_each_checkpoint_is_cosigned_by_every_witness_and_stored(tmp_path: Path) -> None:
    site = Site.create(tmp_path / "a.db", "site-a.example/audit", entries=4)
    logs = [site.known_log()]
    with (
        running_witness(tmp_path / "b.db", "site-b.example/witness", logs) as (b, wb),
        running_witness(tmp_path / "c.db", "site-c.example/witness", logs) as (c, wc),
    ):
        keys = [wb.cosigner.verifier, wc.cosigner.verifier]
        sinks = [WitnessSink(b.url, keys[0]), WitnessSink(c.url, keys[1])]
        with publisher(site, sinks) as pub:
            for grow in (0, 3, 9):
                append(site.ledger, grow)
                pub.checkpoint_now()
                assert pub.flush(60)
            assert all(s.healthy and s.lag_entries == 0 for s in pub.status())
        stored = stored_checkpoints(site.ledger.engine)
        newest = stored[-1]
        assert newest.tree_size == 16 and len(newest.receipts) == 2
        report = witness_report(newest.note, newest.receipts, keys, 2)
        assert report.ok and {w.name for w in report.valid} == {k.name for k in keys}
        # A receipt deleted by SQL lowers the count below the quorum: the check fails.
        assert not witness_report(newest.note, newest.receipts[:1], keys, 2).ok
        # A receipt copied from an older checkpoint does not count for the newest.
        older = stored[0]
        assert not witness_report(newest.note, older.receipts, keys, 1).ok


def test_a_witness_that_is_down_is_retried_then_catches_up(tmp_path: Path) -> None:
    site = Site.create(tmp_path / "a.db", "site-a.example/audit", entries=2)
    cosigner = Cosigner("site-b.example/witness", generate_private_key())
    with running_witness(tmp_path / "b.db", "w", [site.known_log()], cosigner) as (server, _):
        url = server.url
    # The witness is gone: the sink is unavailable, the ledger keeps appending.
    sink = WitnessSink(url, cosigner.verifier, timeout=2)
    with publisher(site, [sink]) as pub:
        pub.checkpoint_now()
        assert not pub.flush(0.5)
        (status,) = pub.status()
        assert status.failures >= 1 and status.lag_entries == 2 and not status.refused
        append(site.ledger, 5)
        pub.checkpoint_now()
        host, port = url.removeprefix("http://").split(":")
        from audit.witness import Witness, WitnessServer, WitnessStore, serve_in_thread

        store = WitnessStore.open(tmp_path / "b.db")
        again = WitnessServer((host, int(port)), Witness(cosigner, store, [site.known_log()]))
        thread = serve_in_thread(again)
        try:
            assert pub.flush(60)
            (status,) = pub.status()
            assert status.published_size == 7 and status.lag_entries == 0
        finally:
            again.shutdown()
            again.server_close()
            thread.join()
            store.close()


def test_a_rolled_back_log_is_refused_by_the_witness_sink(tmp_path: Path) -> None:
    site = Site.create(tmp_path / "a.db", "site-a.example/audit", entries=3)
    fork = site.fork(tmp_path / "fork.db")
    append(site.ledger, 6)
    with running_witness(tmp_path / "b.db", "w.example/w", [site.known_log()]) as (server, w):
        sink = WitnessSink(server.url, w.cosigner.verifier)
        with publisher(site, [sink]) as pub:
            pub.checkpoint_now()
            assert pub.flush(60)
        # The database is restored from an older copy (entries 3..8 gone) and grows again.
        append(fork.ledger, 2, tag="after-restore")
        with publisher(fork, [WitnessSink(server.url, w.cosigner.verifier)]) as pub:
            pub.checkpoint_now()
            # Polled: the publisher does not wake flush() on a refusal.
            wait_until(lambda: pub.status()[0].refused, what="the witness's refusal")
            (status,) = pub.status()
            assert status.refused is not None and "rolled back" in status.refused
        assert w.store.get(site.ledger.origin).tree_size == 9  # type: ignore[union-attr]


def witness(seed: int, name: str) -> Cosigner:
    return Cosigner(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


NOTE = (
    "site-a.example/audit\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "— site-a.example/audit AAAAAAAA\n"
)
TEXT = NOTE.split("\n\n")[0] + "\n"
NOW = datetime(2026, 12, 3, tzinfo=UTC)
T = int(NOW.timestamp())


def test_k_of_n_counts_distinct_trusted_witnesses() -> None:
    b, c, d = witness(1, "b"), witness(2, "c"), witness(3, "d")
    keys = [b.verifier, c.verifier, d.verifier]
    stranger = witness(9, "e")
    one = append_cosignatures(NOTE, [b.cosign(TEXT, T), stranger.cosign(TEXT, T)])
    report = verify_cosignatures(one, keys, 2, now=NOW)
    assert not report.ok and [v.name for v in report.valid] == ["b"] and not report.problems
    two = append_cosignatures(one, [c.cosign(TEXT, T + 1), b.cosign(TEXT, T + 2)])
    report = verify_cosignatures(two, keys, 2, now=NOW)
    assert report.ok and len(report.valid) == 2 and "quorum met: 2 of 3" in report.summary()
    assert report.first_witnessed == NOW
    assert report.as_json()["ok"] is True
    with pytest.raises(CosignatureError, match="cannot be met"):
        verify_cosignatures(two, keys, 4, now=NOW)


def test_one_key_under_two_names_counts_once() -> None:
    b = witness(1, "b")
    alias = CosignerVerifier("b-alias", b.verifier.public_key)
    # The signed message does not name the witness: relabel b's line as the alias's.
    line = b.cosign(TEXT, T)
    relabelled = Cosigner("b-alias", b.private_key).cosign(TEXT, T)
    note = append_cosignatures(NOTE, [line, relabelled])
    with pytest.raises(CosignatureError, match="cannot be met by 1"):
        verify_cosignatures(note, [b.verifier, alias], 2, now=NOW)
    assert len(verify_cosignatures(note, [b.verifier, alias], 1, now=NOW).valid) == 1


def test_forged_future_and_revoked_cosignatures_do_not_count() -> None:
    b, c, d = witness(1, "b"), witness(2, "c"), witness(3, "d")
    forged = d.cosign(TEXT.replace("\n5\n", "\n6\n"), T)  # d's signature of another checkpoint
    note = append_cosignatures(NOTE, [b.cosign(TEXT, T + 3600), c.cosign(TEXT, T), forged])
    revoked = WitnessKey(c.verifier, revoked_at=NOW - timedelta(seconds=1))
    report = verify_cosignatures(note, [b.verifier, revoked, d.verifier], 1, now=NOW)
    assert not report.ok
    assert any("future" in p for p in report.problems)
    assert any("revoked" in p for p in report.problems)
    assert any("does not verify" in p for p in report.problems)
    early = WitnessKey(c.verifier, valid_from=NOW + timedelta(days=1))
    assert "predates" in verify_cosignatures(note, [early], 1, now=NOW).problems[0]
    expired = WitnessKey(c.verifier, valid_until=NOW)
    assert "expired" in verify_cosignatures(note, [expired], 1, now=NOW).problems[0]
    assert verify_cosignatures(note, [WitnessKey(c.verifier)], 1, now=NOW).ok


def test_receipts_and_copies_merge_into_one_cosigned_note() -> None:
    b, c = witness(1, "b"), witness(2, "c")
    copies = [
        append_cosignatures(NOTE, [b.cosign(TEXT, T)]),
        append_cosignatures(NOTE, [c.cosign(TEXT, T)]),
    ]
    merged = merge_cosigned(copies)
    assert verify_cosignatures(merged, [b.verifier, c.verifier], 2, now=NOW).ok
    with pytest.raises(CosignatureError, match="different checkpoints"):
        merge_cosigned([NOTE, NOTE.replace("\n5\n", "\n6\n")])
    receipts = [
        Receipt("witness:b", "cosignature", b.cosign(TEXT, T).encode(), NOW),
        Receipt("dir", "directory", b"cp-5.txt", NOW),
        Receipt("witness:x", "cosignature", b"\xff\xfe", NOW),
        Receipt("witness:y", "cosignature", b"two\nlines\n", NOW),
    ]
    assert cosigned_with_receipts(NOTE, receipts).count("\n— ") == 2
    assert witness_report(NOTE, receipts, [b.verifier], 1, now=NOW).ok


def test_witness_sinks_come_from_the_anchoring_configuration(tmp_path: Path) -> None:
    from audit.anchoring.config import sinks_from_config
    from audit.errors import AnchorError

    key = witness(1, "site-b.example/witness").verifier
    (tmp_path / "b.vkey").write_text(key.vkey() + "\n")
    table = {
        "sink": [
            {"kind": "witness", "url": "http://127.0.0.1:1", "vkey": key.vkey()},
            {"kind": "witness", "url": "http://b:2/w", "vkey_file": "b.vkey", "name": "b2"},
        ]
    }
    first, second = sinks_from_config(table, tmp_path)
    assert isinstance(first, WitnessSink) and first.witness == key
    assert first.name == "witness:site-b.example/witness" and first.kind == "cosignature"
    assert isinstance(second, WitnessSink) and second.name == "b2" and second.url == "http://b:2/w"
    for bad, message in [
        ({"url": "ftp://x", "vkey": key.vkey()}, "url"),
        ({"url": "http://x"}, "exactly one"),
        ({"url": "http://x", "vkey": "nonsense"}, "malformed"),
        ({"url": "http://x", "vkey_file": "missing.vkey"}, "cannot read"),
        ({"url": "http://x", "vkey": key.vkey(), "colour": "red"}, "unknown"),
    ]:
        with pytest.raises(AnchorError, match=message):
            sinks_from_config({"sink": [{"kind": "witness", **bad}]}, tmp_path)
