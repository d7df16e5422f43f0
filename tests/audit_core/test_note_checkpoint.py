"""C2SP signed notes and checkpoints, including Go sumdb/note's published vector."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from audit.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from audit.errors import CheckpointError
from audit.keys import TrustedKey, generate_private_key
from audit.merkle import EMPTY_TREE_HASH
from audit.note import NoteSigner, NoteVerifier, parse_vkey, sign_note, split_note
from audit.verify import Problem, check_checkpoint_signature

# golang.org/x/mod/sumdb/note: the example key and signed note of its documentation.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_signer() -> NoteSigner:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))


def test_signature_is_byte_identical_to_go_sumdb_note() -> None:
    assert sign_note(GO_TEXT, go_signer()) == GO_NOTE


def test_vkey_matches_go_and_round_trips() -> None:
    assert go_signer().verifier.vkey() == GO_VKEY
    verifier = parse_vkey(GO_VKEY)
    assert verifier.key_id == "c74f20a3"
    text, signatures = split_note(GO_NOTE)
    assert text == GO_TEXT
    assert verifier.verify(text.encode(), signatures[0].signature)
    assert not verifier.verify(text.replace("problem", "Problem").encode(), signatures[0].signature)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong hash
        "PeterNeumann+c74f20a3+AhpjZ2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong alg
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_vkeys_are_refused(vkey: str) -> None:
    with pytest.raises(CheckpointError):
        parse_vkey(vkey)


@pytest.mark.parametrize(
    "note",
    [
        "no blank line\n",
        GO_TEXT + "\n",
        GO_TEXT + "\nsignature without dash\n",
        GO_TEXT + "\n— PeterNeumann !!!notbase64\n",
        GO_TEXT + "\n— PeterNeumann AAAA\n",
        "line\x07\n\n— a AAAAAAAA\n",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(CheckpointError):
        split_note(note)


def make_checkpoint(size: int = 42) -> Checkpoint:
    return Checkpoint(
        "example.org/log", size, b"\x11" * 32, b"\x22" * 32, datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    )


def test_checkpoint_body_is_c2sp_format() -> None:
    body = make_checkpoint().body()
    lines = body.split("\n")
    assert lines[0] == "example.org/log"
    assert lines[1] == "42"
    assert base64.b64decode(lines[2]) == b"\x11" * 32
    assert lines[3] == "chain-head " + "22" * 32
    assert lines[4] == "time 2026-05-01T09:30:00.000000Z"
    assert parse_checkpoint(body) == make_checkpoint()


@given(
    st.integers(0, 2**62),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.datetimes(timezones=st.just(UTC)),
)
def test_checkpoint_round_trip(size: int, root: bytes, head: bytes, when: datetime) -> None:
    if size == 0:
        root = EMPTY_TREE_HASH
    cp = Checkpoint("o.example/x", size, root, head, when)
    signer = NoteSigner("k", generate_private_key())
    opened = open_checkpoint(sign_checkpoint(cp, signer))
    assert opened.checkpoint == cp
    assert check_checkpoint_signature(opened, [TrustedKey(signer.verifier)])[0] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("o\n01\nAAAA\n", "decimal"),
        ("o\n1\n@@@\nchain-head 00\ntime 2026-01-01T00:00:00Z\n", "base64"),
        (
            "o\n1\n" + base64.b64encode(bytes(32)).decode() + "\ntime 2026-01-01T00:00:00Z\n",
            "chain-head",
        ),
        (
            "o\n1\n" + base64.b64encode(bytes(32)).decode() + "\nchain-head zz\ntime x\n",
            "malformed",
        ),
        (
            "o\n1\n"
            + base64.b64encode(bytes(31)).decode()
            + "\nchain-head "
            + "00" * 32
            + "\ntime 2026-01-01T00:00:00Z\n",
            "32-byte",
        ),
        (
            "o\n1\n"
            + base64.b64encode(bytes(32)).decode()
            + "\nchain-head "
            + "00" * 32
            + "\ntime 2026-01-01T00:00:00\n",
            "timezone-aware",
        ),
    ],
)
def test_malformed_checkpoints_are_refused(body: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(body)


def test_signature_checks_report_kind_of_problem() -> None:
    signer = NoteSigner("log-key", generate_private_key())
    note = sign_checkpoint(make_checkpoint(), signer)
    trusted = TrustedKey(signer.verifier)
    assert check_checkpoint_signature(open_checkpoint(note), [trusted])[0] is None

    other = TrustedKey(NoteSigner("log-key", generate_private_key()).verifier)
    assert check_checkpoint_signature(open_checkpoint(note), [other])[0] is Problem.UNKNOWN_KEY

    forged = note.replace("\n42\n", "\n43\n")
    assert (
        check_checkpoint_signature(open_checkpoint(forged), [trusted])[0] is Problem.BAD_SIGNATURE
    )

    revoked = TrustedKey(
        signer.verifier, revoked_at=datetime(2026, 4, 1, tzinfo=UTC), revocation_reason="lost"
    )
    problem, detail, _ = check_checkpoint_signature(open_checkpoint(note), [revoked])
    assert problem is Problem.REVOKED_KEY and "lost" in detail

    expired = TrustedKey(signer.verifier, valid_until=datetime(2026, 1, 1, tzinfo=UTC))
    assert check_checkpoint_signature(open_checkpoint(note), [expired])[0] is Problem.REVOKED_KEY
    early = TrustedKey(signer.verifier, valid_from=datetime(2027, 1, 1, tzinfo=UTC))
    assert check_checkpoint_signature(open_checkpoint(note), [early])[0] is Problem.REVOKED_KEY


def test_key_names_with_spaces_are_refused() -> None:
    with pytest.raises(CheckpointError, match="key name"):
        NoteSigner("bad name", generate_private_key())
    with pytest.raises(CheckpointError, match="32 bytes"):
        NoteVerifier("k", b"short")


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40))
def test_note_text_refuses_exactly_control_characters_other_than_newline(body: str) -> None:
    """The compiled scan refuses what the rule says: any character below U+0020 but
    the newline (and nothing else)."""
    text = body + "\n"
    while "\n\n" in text:  # a blank line is refused for its own reason
        text = text.replace("\n\n", "\n")
    controlled = any(ord(c) < 0x20 and c != "\n" for c in text)
    if controlled:
        with pytest.raises(CheckpointError, match="control characters"):
            sign_note(text, go_signer())
    else:
        assert sign_note(text, go_signer()).startswith(text + "\n")
