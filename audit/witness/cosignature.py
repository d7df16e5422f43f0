"""C2SP ``tlog-cosignature`` v1 with Ed25519: a witness's timestamped note signature.

A cosignature is a signed-note signature line on a checkpoint::

    — <witness name> base64(key ID ‖ u64 big-endian timestamp ‖ Ed25519 signature)

The key ID is ``SHA-256(name ‖ "\\n" ‖ 0x04 ‖ public key)[:4]`` — signature type
0x04, not the log signature's 0x01, so a cosigner key can never be mistaken for a
log key. The Ed25519 signature covers::

    cosignature/v1\\n
    time <timestamp, decimal seconds since the epoch>\\n
    <the whole checkpoint note text, extension lines included>

A witness's verifier key ("vkey") is ``name+<hex key ID>+base64(0x04 ‖ public key)``.
The signed message does not name the witness, so one key must serve one witness name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import CheckpointError
from audit.note import NoteSignature, public_key_bytes
from audit.witness.errors import CosignatureError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "COSIGNATURE_SIZE",
    "Cosigner",
    "CosignerVerifier",
    "cosignature_key_hash",
    "cosigned_message",
    "parse_cosigner_vkey",
]

ALG_COSIGNATURE_V1 = 0x04
COSIGNATURE_SIZE = 4 + 8 + 64
"""Bytes in a decoded cosignature: key ID, timestamp, Ed25519 signature."""
MAX_TIMESTAMP = 2**63 - 1
_SIG_PREFIX = "— "


def _check_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise CosignatureError(f"invalid cosigner name {name!r}: no spaces or '+' allowed")
    return name


def cosignature_key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 cosigner (signature type 0x04)."""
    return hashlib.sha256(
        name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    ).digest()[:4]


def cosigned_message(text: str, timestamp: int) -> bytes:
    """The bytes a cosignature signs: header, time line, then the note text."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature timestamp {timestamp} is outside 0..2^63-1")
    if not text.endswith("\n"):
        raise CosignatureError("a cosigned note text ends with a newline")
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class CosignerVerifier:
    """A trusted witness: its name and Ed25519 public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise CosignatureError("an Ed25519 public key has 32 bytes")

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key ID in the witness's signature lines."""
        return cosignature_key_hash(self.name, self.public_key)

    @property
    def key_id(self) -> str:
        """The key ID in hex."""
        return self.key_hash.hex()

    def vkey(self) -> str:
        """The verifier key ``name+hex key ID+base64(0x04 ‖ key)``."""
        encoded = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id}+{encoded}"

    def matches(self, signature: NoteSignature) -> bool:
        """True when a signature line carries this witness's name and key ID."""
        return signature.name == self.name and signature.key_hash == self.key_hash

    def verify(self, text: str, signature: NoteSignature) -> int:
        """Check this witness's cosignature of note ``text``; returns its timestamp.

        Raises :class:`CosignatureError` naming what is wrong.
        """
        if not self.matches(signature):
            raise CosignatureError(f"signature line is not from witness {self.name}")
        raw = signature.signature
        if len(raw) != COSIGNATURE_SIZE - 4:
            raise CosignatureError(
                f"cosignature from {self.name} has {len(raw) + 4} bytes, not {COSIGNATURE_SIZE}"
            )
        (timestamp,) = struct.unpack(">Q", raw[:8])
        if timestamp > MAX_TIMESTAMP:
            raise CosignatureError(f"cosignature from {self.name} has a timestamp over 2^63-1")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                raw[8:], cosigned_message(text, timestamp)
            )
        except InvalidSignature as exc:
            raise CosignatureError(f"cosignature from {self.name} does not verify") from exc
        return int(timestamp)


@dataclass(frozen=True)
class Cosigner:
    """A witness's named Ed25519 private key that makes cosignatures."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> CosignerVerifier:
        """The matching verifier."""
        return CosignerVerifier(self.name, public_key_bytes(self.private_key.public_key()))

    def cosign(self, text: str, timestamp: int) -> str:
        """The ``— name base64(...)`` cosignature line on note ``text`` at ``timestamp``."""
        signature = self.private_key.sign(cosigned_message(text, timestamp))
        raw = self.verifier.key_hash + struct.pack(">Q", timestamp) + signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(raw).decode()}\n"


def parse_cosigner_vkey(vkey: str) -> CosignerVerifier:
    """Parse a witness vkey (signature type 0x04), checking its key ID."""
    try:
        name, hash_hex, encoded = vkey.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CosignatureError(f"malformed witness verifier key {vkey.strip()[:80]!r}") from exc
    if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
        raise CosignatureError("witness verifier key is not an Ed25519 cosignature/v1 (0x04) key")
    try:
        verifier = CosignerVerifier(name, raw[1:])
    except CheckpointError as exc:
        raise CosignatureError(str(exc)) from exc
    if verifier.key_id != hash_hex.lower():
        raise CosignatureError("witness verifier key ID does not match its name and key")
    return verifier
