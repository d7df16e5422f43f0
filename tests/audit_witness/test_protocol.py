"""The add-checkpoint wire format of C2SP tlog-witness, against the spec's example."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.errors import CheckpointError
from audit.witness import format_add_checkpoint, parse_add_checkpoint, parse_tlog_checkpoint
from audit.witness.protocol import MAX_REQUEST_BYTES, parse_size_answer

SPEC_REQUEST = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/"
    "V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)

hashes = st.binary(min_size=32, max_size=32)
NOTE = "log.example/a\n7\n" + base64.b64encode(b"\x01" * 32).decode() + "\n\n— k QUJDREVGRw==\n"


def test_spec_example_request_parses_and_re_encodes_identically() -> None:
    request = parse_add_checkpoint(SPEC_REQUEST.encode())
    assert request.old_size == 20852014
    assert len(request.proof) == 4
    assert request.note.startswith("example.com/behind-the-sofa\n20852163\n")
    assert format_add_checkpoint(request.old_size, request.proof, request.note) == (
        SPEC_REQUEST.encode()
    )
    checkpoint = parse_tlog_checkpoint(request.note.split("\n\n")[0] + "\n")
    assert (checkpoint.origin, checkpoint.tree_size) == ("example.com/behind-the-sofa", 20852163)


@given(st.integers(0, 2**63 - 1), st.lists(hashes, max_size=63))
def test_requests_round_trip(old: int, proof: list[bytes]) -> None:
    request = parse_add_checkpoint(format_add_checkpoint(old, proof, NOTE))
    assert (request.old_size, list(request.proof), request.note) == (old, proof, NOTE)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"old 1\nlog.example/a\n", "empty line"),
        (b"new 1\n\n" + NOTE.encode(), "'old <size>'"),
        (b"old 01\n\n" + NOTE.encode(), "leading zeros"),
        (b"old -1\n\n" + NOTE.encode(), "decimal"),
        (b"old 99999999999999999999\n\n" + NOTE.encode(), "decimal"),
        (b"old 1\nnot-base64!\n\n" + NOTE.encode(), "base64"),
        (b"old 1\nAAAA\n\n" + NOTE.encode(), "32-byte"),
        (b"old 1\n" + b"".join([base64.b64encode(b"x" * 32) + b"\n"] * 64) + b"\n", "63"),
        (b"old 1\n\n", "no checkpoint"),
        (b"x" * (MAX_REQUEST_BYTES + 1), "exceeds"),
    ],
)
def test_malformed_requests_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_add_checkpoint(body)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_checkpoint_error(body: bytes) -> None:
    with contextlib.suppress(CheckpointError):
        parse_add_checkpoint(body)


@pytest.mark.parametrize(
    "text",
    [
        "origin\n5\n",
        "\n5\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
        "origin\n05\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
        "origin\n5\n" + base64.b64encode(b"\x00" * 31).decode() + "\n",
        "origin\n5\n" + base64.b64encode(b"\x00" * 32).decode(),
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_tlog_checkpoint(text)


def test_checkpoint_extension_lines_are_kept() -> None:
    root = base64.b64encode(b"\x02" * 32).decode()
    checkpoint = parse_tlog_checkpoint(f"o\n3\n{root}\nchain-head ab\ntime x\n")
    assert checkpoint.extensions == ("chain-head ab", "time x")


@pytest.mark.parametrize("body", [b"12", b"012\n", b"-1\n", b"\xff\n", b"12\n13\n"])
def test_malformed_size_answers_are_refused(body: bytes) -> None:
    with pytest.raises(CheckpointError):
        parse_size_answer(body)


def test_size_answer() -> None:
    assert parse_size_answer(b"20852014\n") == 20852014
