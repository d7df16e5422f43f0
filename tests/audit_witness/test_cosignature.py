"""C2SP tlog-cosignature v1 (Ed25519): layout against the spec's examples, sign and verify."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from audit.note import NoteSigner, NoteVerifier, parse_vkey, sign_note, split_note
from audit.witness import CosignatureError, Cosigner, CosignerVerifier, parse_cosigner_vkey
from audit.witness.cosignature import cosignature_key_hash, cosigned_message

# The spec's example checkpoint and its cosignature line (c2sp.org/tlog-cosignature);
# the spec's message example puts this cosignature at "time 1679315147".
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_NOTE = (
    SPEC_BODY
    + "\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2"
    "oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
# The example answer of c2sp.org/tlog-witness add-checkpoint.
SPEC_ANSWER_LINES = [
    "— witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQL"
    "rdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==",
    "— witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+"
    "DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==",
    "— witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7n"
    "C3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==",
]

texts = st.lists(
    st.text(
        st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)), min_size=1, max_size=40
    ),
    min_size=1,
    max_size=6,
).map(lambda lines: "".join(line + "\n" for line in lines))
timestamps = st.integers(min_value=0, max_value=2**63 - 1)
seeds = st.binary(min_size=32, max_size=32)


def cosigner(seed: bytes = b"\x07" * 32, name: str = "witness.example/w1") -> Cosigner:
    return Cosigner(name, Ed25519PrivateKey.from_private_bytes(seed))


def test_spec_example_cosignature_has_the_spec_layout() -> None:
    text, signatures = split_note(SPEC_NOTE)
    assert text == SPEC_BODY
    cosig = signatures[1]
    assert cosig.name == "witness.example.com/w1"
    assert len(cosig.key_hash) + len(cosig.signature) == 4 + 8 + 64
    # u64 big-endian timestamp first: the time of the spec's signed-message example.
    assert struct.unpack(">Q", cosig.signature[:8])[0] == 1679315147
    # A log signature (type 0x01) is 4 + 64 bytes: no timestamp.
    assert len(signatures[0].signature) == 64


def test_spec_example_answer_lines_are_cosignatures() -> None:
    _, signatures = split_note(
        SPEC_BODY + "\n" + "".join(f"{line}\n" for line in SPEC_ANSWER_LINES)
    )
    assert [s.name for s in signatures] == ["witness.example/w1"] * 2 + ["witness.example/w2"]
    assert all(len(s.signature) == 8 + 64 for s in signatures)


def test_spec_signed_message_layout() -> None:
    assert cosigned_message(SPEC_BODY, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


@given(seeds, st.sampled_from(["w", "witness.example/w1", "oid/1.3.6.1.4.1.44363.47.1"]))
def test_key_id_is_sha256_of_name_newline_0x04_key(seed: bytes, name: str) -> None:
    verifier = cosigner(seed, name).verifier
    expected = hashlib.sha256(name.encode() + b"\n\x04" + verifier.public_key).digest()[:4]
    assert verifier.key_hash == expected == cosignature_key_hash(name, verifier.public_key)
    # Never the log-signature (0x01) key ID of the same key and name.
    assert verifier.key_hash != NoteVerifier(name, verifier.public_key).key_hash


@given(texts, timestamps, seeds)
def test_cosignature_verifies_by_the_spec_message(text: str, when: int, seed: bytes) -> None:
    signer = cosigner(seed)
    line = signer.cosign(text, when)
    _, (signature,) = split_note(text + "\n" + line)
    raw = signature.key_hash + signature.signature
    assert raw[:4] == signer.verifier.key_hash
    assert struct.unpack(">Q", raw[4:12])[0] == when
    # Independent check of the signed bytes, spelled out from the spec.
    message = b"cosignature/v1\ntime " + str(when).encode() + b"\n" + text.encode()
    signer.private_key.public_key().verify(raw[12:], message)
    assert signer.verifier.verify(text, signature) == when


@given(texts, timestamps, st.data())
def test_any_changed_byte_breaks_the_cosignature(text: str, when: int, data: st.DataObject) -> None:
    signer = cosigner()
    line = signer.cosign(text, when)
    _, (signature,) = split_note(text + "\n" + line)
    raw = bytearray(signature.key_hash + signature.signature)
    index = data.draw(st.integers(4, len(raw) - 1), label="byte")
    raw[index] ^= data.draw(st.integers(1, 255), label="xor")
    forged = f"— {signer.name} {base64.b64encode(bytes(raw)).decode()}\n"
    _, (bad,) = split_note(text + "\n" + forged)
    with pytest.raises(CosignatureError):
        signer.verifier.verify(text, bad)


@given(texts, texts)
def test_cosignature_is_bound_to_the_note_text(text: str, other: str) -> None:
    signer = cosigner()
    _, (signature,) = split_note(text + "\n" + signer.cosign(text, 1))
    if other != text:
        with pytest.raises(CosignatureError, match="does not verify"):
            signer.verifier.verify(other, signature)


def test_another_witness_name_or_key_does_not_match() -> None:
    signer = cosigner()
    _, (signature,) = split_note(SPEC_BODY + "\n" + signer.cosign(SPEC_BODY, 5))
    other_name = CosignerVerifier("witness.example/w2", signer.verifier.public_key)
    other_key = cosigner(b"\x08" * 32).verifier
    for verifier in (other_name, other_key):
        assert not verifier.matches(signature)
        with pytest.raises(CosignatureError, match="not from witness"):
            verifier.verify(SPEC_BODY, signature)


def test_a_log_signature_is_not_a_cosignature() -> None:
    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    note = sign_note(SPEC_BODY, NoteSigner("witness.example/w1", key))
    _, (signature,) = split_note(note)
    assert not cosigner().verifier.matches(signature)  # key ID type 0x01 ≠ 0x04


@pytest.mark.parametrize("when", [-1, 2**63])
def test_timestamps_outside_the_spec_range_are_refused(when: int) -> None:
    with pytest.raises(CosignatureError, match="outside"):
        cosigner().cosign(SPEC_BODY, when)


@given(seeds, st.sampled_from(["w", "witness.example/w1", "site-b.example/witness"]))
def test_vkeys_round_trip_including_base64_with_plus(seed: bytes, name: str) -> None:
    verifier = cosigner(seed, name).verifier
    vkey = verifier.vkey()
    assert vkey.startswith(f"{name}+{verifier.key_id}+")
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert parse_cosigner_vkey(vkey) == verifier
    # The log-key (0x01) parser had the same '+' trap: it must round-trip too.
    log_verifier = NoteSigner(name, Ed25519PrivateKey.from_private_bytes(seed)).verifier
    assert parse_vkey(log_verifier.vkey()) == log_verifier


def test_malformed_or_mistyped_vkeys_are_refused() -> None:
    good = cosigner().verifier
    log_vkey = NoteVerifier(good.name, good.public_key).vkey()
    wrong_id = f"{good.name}+00000000+{good.vkey().split('+', 2)[2]}"
    for vkey, message in [
        ("", "malformed"),
        ("name+abcd", "malformed"),
        (f"{good.name}+{good.key_id}+not base64!", "malformed"),
        (log_vkey, "0x04"),
        (wrong_id, "does not match"),
    ]:
        with pytest.raises(CosignatureError, match=message):
            parse_cosigner_vkey(vkey)


@pytest.mark.parametrize("name", ["", "has space", "plus+sign", "tab\tname"])
def test_bad_witness_names_are_refused(name: str) -> None:
    with pytest.raises(CosignatureError, match="invalid cosigner name"):
        cosigner(name=name)
