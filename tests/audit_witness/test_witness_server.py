"""A real witness on 127.0.0.1: two sites' logs, forks, rollbacks, races and hostile requests."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waiting import wait_until
from witness_support import Site, append, running_witness

from audit.keys import generate_private_key
from audit.note import NoteSigner, split_note
from audit.witness import (
    Cosigner,
    KnownLog,
    LogKey,
    Witness,
    WitnessRefused,
    WitnessServer,
    WitnessStore,
    add_checkpoint,
    append_cosignatures,
    probe_witness,
    request_cosignature,
    serve_in_thread,
    verify_cosignatures,
)
from audit.witness.protocol import MAX_REQUEST_BYTES, SIZE_CONTENT_TYPE


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", "/add-checkpoint", body, headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def request(old: int, proof: list[bytes], note: str) -> bytes:
    lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return f"old {old}\n{lines}\n{note}".encode()


@pytest.fixture
def site_a(tmp_path: Path) -> Site:
    return Site.create(tmp_path / "a.db", "site-a.example/audit", entries=5)


def test_site_b_witnesses_site_a_and_a_relying_party_checks_it(
    tmp_path: Path, db_url: str, site_a: Site
) -> None:
    site_b = Site.create(tmp_path / "b.db", "site-b.example/audit", entries=3)
    with running_witness(db_url, "site-b.example/witness", [site_a.known_log()]) as (server, w):
        witness_key = w.cosigner.verifier
        first = site_a.checkpoint()
        cosigned = request_cosignature(server.url, first, witness_key, site_a.prove)
        assert cosigned.old_size == 0
        append(site_a.ledger, 9)
        second = site_a.checkpoint()
        # The log does not know the witness's size: the 409 answer tells it, then it proves.
        again = request_cosignature(server.url, second, witness_key, site_a.prove)
        assert again.old_size == 5
        report = verify_cosignatures(append_cosignatures(second, [again.line]), [witness_key], 1)
        assert report.ok and report.tree_size == 14
        # The cosignature is of the second checkpoint only.
        assert not verify_cosignatures(
            append_cosignatures(first, [again.line]), [witness_key], 1
        ).ok
        # Site B's own log is unknown to this witness: 404, as the spec says.
        with pytest.raises(WitnessRefused) as refused:
            add_checkpoint(server.url, 0, [], site_b.checkpoint())
        assert refused.value.status == 404
        assert w.store.get(site_a.ledger.origin).tree_size == 14  # type: ignore[union-attr]


def test_status_codes_follow_the_spec(tmp_path: Path, site_a: Site) -> None:
    with running_witness(tmp_path / "w.db", "w.example/w", [site_a.known_log()]) as (server, w):
        note = site_a.checkpoint()
        text, _ = split_note(note)
        stranger = NoteSigner(site_a.signer.name, generate_private_key())
        forged = text + "\n" + stranger.signature_line(text)
        assert post(server.url, request(0, [], forged))[0] == 403
        assert post(server.url, request(6, [], note))[0] == 400  # old size > checkpoint size
        assert post(server.url, request(0, [b"\x00" * 32], note))[0] == 422  # proof from 0
        status, content_type, body = post(server.url, request(0, [], note))
        assert status == 200 and body.decode().startswith("— w.example/w ")
        # The witness now holds 5: any other old size gets 409 and the size, typed.
        append(site_a.ledger, 2)
        newer = site_a.checkpoint()
        status, content_type, body = post(server.url, request(3, site_a.prove(3), newer))
        assert (status, content_type, body) == (409, SIZE_CONTENT_TYPE, b"5\n")
        # A proof that does not link 5 to 7: 422, and the signed request is kept as evidence
        # (as was the log-signed request with a proof from size 0).
        assert post(server.url, request(5, [b"\x11" * 32] * 3, newer))[0] == 422
        reasons = [reason for _, reason, _ in w.store.evidence(site_a.ledger.origin)]
        assert len(reasons) == 2 and "does not verify" in reasons[1]
        assert post(server.url, request(5, site_a.prove(5), newer))[0] == 200
        # Re-submitting what the witness holds is cosigned again (idempotent).
        assert post(server.url, request(7, [], newer))[0] == 200


def test_rollback_is_refused(tmp_path: Path, site_a: Site) -> None:
    with running_witness(tmp_path / "w.db", "w.example/w", [site_a.known_log()]) as (server, w):
        old = site_a.checkpoint()
        append(site_a.ledger, 10)
        new = site_a.checkpoint()
        key = w.cosigner.verifier
        request_cosignature(server.url, new, key, site_a.prove)
        # The log (or an attacker with its key) later offers the older, smaller tree.
        with pytest.raises(WitnessRefused, match="rolled back") as refused:
            request_cosignature(server.url, old, key, site_a.prove)
        assert refused.value.size == 15
        assert post(server.url, request(15, [], old))[0] == 400
        assert post(server.url, request(0, [], old))[:3] == (409, SIZE_CONTENT_TYPE, b"15\n")
        assert w.store.get(site_a.ledger.origin).tree_size == 15  # type: ignore[union-attr]


def test_fork_is_refused_at_the_same_and_at_larger_sizes(tmp_path: Path, site_a: Site) -> None:
    with running_witness(tmp_path / "w.db", "w.example/w", [site_a.known_log()]) as (server, w):
        key = w.cosigner.verifier
        request_cosignature(server.url, site_a.checkpoint(), key, site_a.prove)  # size 5
        fork = site_a.fork(tmp_path / "fork.db")
        append(site_a.ledger, 4, tag="real")
        append(fork.ledger, 4, tag="rewritten")
        real = site_a.checkpoint()
        split = fork.checkpoint()
        assert split_note(real)[0].split("\n")[:2] == split_note(split)[0].split("\n")[:2]
        request_cosignature(server.url, real, key, site_a.prove, old_size=5)
        # Same size 9, other root: 409 (not a size conflict: no size body).
        status, content_type, _ = post(server.url, request(9, [], split))
        assert status == 409 and content_type != SIZE_CONTENT_TYPE
        # The fork grows past the witness's size; its proof cannot link to the real root.
        append(fork.ledger, 6, tag="rewritten")
        bigger = fork.checkpoint()
        with pytest.raises(WitnessRefused) as refused:
            request_cosignature(server.url, bigger, key, fork.prove, old_size=9)
        assert refused.value.status == 422
        reasons = [reason for _, reason, _ in w.store.evidence()]
        assert any("fork" in r for r in reasons) and any("proof" in r for r in reasons)
        assert w.store.get(site_a.ledger.origin).root == site_a.ledger.root(9)  # type: ignore[union-attr]


def test_state_survives_a_restart(tmp_path: Path, site_a: Site) -> None:
    db = tmp_path / "w.db"
    cosigner = Cosigner("w.example/w", generate_private_key())
    with running_witness(db, "w", [site_a.known_log()], cosigner) as (server, _):
        request_cosignature(server.url, site_a.checkpoint(), cosigner.verifier, site_a.prove)
    with running_witness(db, "w", [site_a.known_log()], cosigner) as (server, _):
        status, _, body = post(server.url, request(0, [], site_a.checkpoint()))
        assert (status, body) == (409, b"5\n")


def test_concurrent_submissions_never_roll_back(db_url: str, tmp_path: Path) -> None:
    site = Site.create(tmp_path / "a.db", "site-a.example/audit", entries=3)
    with running_witness(db_url, "w.example/w", [site.known_log()]) as (server, w):
        key = w.cosigner.verifier
        request_cosignature(server.url, site.checkpoint(), key, site.prove)  # witness holds 3
        notes = []
        for _ in range(8):
            append(site.ledger, 1)
            notes.append(site.checkpoint())
        # Every submission is checked against size 3 at once: exactly one may move it.
        results: list[int] = []
        barrier = threading.Barrier(len(notes))

        def submit(index: int) -> None:
            size = 4 + index
            body = request(3, list(site.ledger.prove_consistency(3, size).path), notes[index])
            barrier.wait()
            results.append(post(server.url, body)[0])

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(notes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [200] + [409] * (len(notes) - 1)
        winner = w.store.get(site.ledger.origin)
        assert winner is not None and winner.tree_size > 3
        # Then all of them with retries: sizes only grow, nothing below the held size is signed.
        sizes: list[int] = []
        refused: list[int] = []

        def with_retries(index: int) -> None:
            prove = site.prover_to(4 + index)
            try:
                request_cosignature(server.url, notes[index], key, prove, attempts=20)
                sizes.append(4 + index)
            except WitnessRefused:
                refused.append(4 + index)

        threads = [threading.Thread(target=with_retries, args=(i,)) for i in range(len(notes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = w.store.get(site.ledger.origin)
        assert final is not None and final.tree_size == 11
        assert 11 in sizes
        assert all(size >= winner.tree_size for size in sizes)
        assert len(sizes) + len(refused) == len(notes)


def raw(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_hostile_requests_get_4xx_and_the_witness_keeps_serving(
    tmp_path: Path, site_a: Site
) -> None:
    with running_witness(tmp_path / "w.db", "w.example/w", [site_a.known_log()]) as (server, w):
        url = server.url
        idle = socket.create_connection(("127.0.0.1", server.server_address[1]))  # slowloris
        try:
            assert raw(url, b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
                b"HTTP/1.1 411"
            )
            huge = (
                f"POST /add-checkpoint HTTP/1.1\r\nContent-Length: {MAX_REQUEST_BYTES + 1}\r\n\r\n"
            )
            assert raw(url, huge.encode()).startswith(b"HTTP/1.1 413")
            chunked = (
                b"POST /add-checkpoint HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            )
            assert raw(url, chunked).startswith(b"HTTP/1.1 411")
            assert raw(url, b"GET /add-checkpoint HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
            assert raw(url, b"POST /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n").startswith(
                b"HTTP/1.1 404"
            )
            assert b"400" in raw(url, b"\x00\xff garbage\r\n\r\n")  # stdlib: bare 400 page
            # A body shorter than announced, then the client hangs up.
            assert (
                raw(url, b"POST /add-checkpoint HTTP/1.1\r\nContent-Length: 100\r\n\r\nold") == b""
            )
            for body in [b"", b"\xff\xfe", b"old 0\n\n", b"old 0\n\nnot a note\n", b"old\n\n"]:
                status = post(url, body)[0]
                assert status == 400, body
            # Still serving, and nothing was stored by the junk.
            assert w.store.get(site_a.ledger.origin) is None
            assert post(url, request(0, [], site_a.checkpoint()))[0] == 200
        finally:
            idle.close()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_witness_never_raises_on_arbitrary_bodies(tmp_path: Path, body: bytes) -> None:
    store = WitnessStore.open(tmp_path / "fuzz.db")
    try:
        witness = Witness(Cosigner("w", generate_private_key()), store, [])
        assert 400 <= witness.add_checkpoint(body).status < 500
        answer = witness.add_checkpoint(b"old 0\n\n" + body)
        assert 400 <= answer.status < 500
    finally:
        store.close()


def test_a_log_key_given_without_name_accepts_any_signature_name(
    tmp_path: Path, site_a: Site
) -> None:
    anonymous = KnownLog(site_a.ledger.origin, (LogKey(site_a.signer.verifier.public_key),))
    with running_witness(tmp_path / "w.db", "w", [anonymous]) as (server, _):
        assert post(server.url, request(0, [], site_a.checkpoint()))[0] == 200


def test_probing_a_witness_tells_its_size_and_changes_nothing(tmp_path: Path, site_a: Site) -> None:
    with running_witness(tmp_path / "w.db", "w.example/w", [site_a.known_log()]) as (server, w):
        first = site_a.checkpoint()
        view = probe_witness(server.url, first)  # never seen: it holds 0
        assert (view.size, view.behind, view.fork) == (0, False, False)
        assert w.store.get(site_a.ledger.origin) is None
        fork = site_a.fork(tmp_path / "fork.db")
        append(site_a.ledger, 4, tag="real")
        real = site_a.checkpoint()
        request_cosignature(server.url, real, w.cosigner.verifier, site_a.prove)
        held = w.store.get(site_a.ledger.origin)
        assert probe_witness(server.url, first).size == 9
        assert probe_witness(server.url, first).behind  # the witness saw more than size 5
        assert probe_witness(server.url, real).describe().startswith("the witness holds size 9")
        append(fork.ledger, 4, tag="rewritten")
        view = probe_witness(server.url, fork.checkpoint())
        assert view.fork and "fork" in view.describe()
        assert w.store.get(site_a.ledger.origin).root == held.root  # type: ignore[union-attr]


def test_connections_beyond_the_limit_are_closed(tmp_path: Path, site_a: Site) -> None:
    store = WitnessStore.open(tmp_path / "w.db")
    witness = Witness(Cosigner("w", generate_private_key()), store, [site_a.known_log()])
    server = WitnessServer(("127.0.0.1", 0), witness, max_connections=2)
    thread = serve_in_thread(server)
    address = ("127.0.0.1", server.server_address[1])
    idle = [socket.create_connection(address) for _ in range(2)]
    try:
        wait_until(lambda: server._slots._value == 0, what="both slots taken")  # type: ignore[attr-defined]
        with socket.create_connection(address, timeout=30) as third:
            assert third.recv(100) == b""  # closed without a word
        for sock in idle:
            sock.close()
        wait_until(lambda: server._slots._value == 2, what="slots released")  # type: ignore[attr-defined]
        assert post(server.url, request(0, [], site_a.checkpoint()))[0] == 200
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()
        thread.join()
        store.close()


def test_the_witness_state_resists_its_database_login(db_url: str, tmp_path: Path) -> None:
    from sqlalchemy import insert, text

    from audit.witness.state import WitnessCheckpointRow

    site = Site.create(tmp_path / "a.db", "site-a.example/audit", entries=4)
    with running_witness(db_url, "w.example/w", [site.known_log()]) as (server, w):
        key = w.cosigner.verifier
        request_cosignature(server.url, site.checkpoint(), key, site.prove)
        append(site.ledger, 3)
        request_cosignature(server.url, site.checkpoint(), key, site.prove)
        assert [s.tree_size for s in w.store.history(site.ledger.origin)] == [4, 7]
        assert post(server.url, request(7, [b"\x01" * 32], site.checkpoint()))[0] == 422
        assert len(w.store.evidence()) == 1
        # Rolling the witness back by SQL: every UPDATE and DELETE is refused.
        for statement in (
            "UPDATE witness_checkpoint SET tree_size = 0",
            "DELETE FROM witness_checkpoint WHERE tree_size = 7",
            "DELETE FROM witness_evidence",
        ):
            with pytest.raises(Exception, match="append-only"), w.store.engine.begin() as conn:
                conn.execute(text(statement))
        assert w.store.get(site.ledger.origin).tree_size == 7  # type: ignore[union-attr]
        # A row inserted by SQL without the witness key (here: a bigger, bogus state)
        # is recognised: the witness stops cosigning that log and says why.
        latest = w.store.get(site.ledger.origin)
        assert latest is not None and w.state_problem(latest) is None
        with w.store.engine.begin() as conn:
            conn.execute(
                insert(WitnessCheckpointRow).values(
                    origin=site.ledger.origin,
                    prev_size=7,
                    tree_size=1000,
                    root=b"\x00" * 32,
                    note=latest.note,
                    cosignature=latest.cosignature,
                    created_at="2026-12-03T00:00:00Z",
                )
            )
        append(site.ledger, 1)
        status, _, body = post(server.url, request(0, [], site.checkpoint()))
        assert status == 500 and b"fails its check" in body
        assert "differs" in (w.state_problem(w.store.get(site.ledger.origin)) or "")  # type: ignore[arg-type]
