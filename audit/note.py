"""C2SP signed notes with Ed25519, as in Go's ``golang.org/x/mod/sumdb/note``.

A signed note is UTF-8 text ending in a newline, a blank line, and one line
per signature::

    <text lines>\\n
    \\n
    — <key name> <base64(4-byte key hash ‖ 64-byte Ed25519 signature)>\\n

The key hash is the first four bytes of SHA-256(key name ‖ "\\n" ‖ 0x01 ‖
public key), 0x01 being the Ed25519 algorithm byte. A verifier key is written
``<name>+<hex key hash>+<base64(0x01 ‖ public key)>`` ("vkey"). Existing
transparency-log tooling reads both forms unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import CheckpointError

__all__ = [
    "ALG_ED25519",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "key_hash",
    "parse_vkey",
    "sign_note",
    "split_note",
]

ALG_ED25519 = 0x01
_SIG_PREFIX = "— "


def _check_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise CheckpointError(f"invalid key name {name!r}: no spaces or '+' allowed")
    return name


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_hash(name: str, public_key: bytes) -> bytes:
    """Four-byte key hash identifying (name, Ed25519 key) in signature lines."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted (name, public key) pair that can check note signatures."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != 32:
            raise CheckpointError("an Ed25519 public key has 32 bytes")

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key hash."""
        return key_hash(self.name, self.public_key)

    @property
    def key_id(self) -> str:
        """The key hash in hex: the key's id throughout gxpmes."""
        return self.key_hash.hex()

    def vkey(self) -> str:
        """The verifier key string ``name+hash+base64(alg ‖ key)``."""
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 private key that signs notes."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return NoteVerifier(self.name, public_key_bytes(self.private_key.public_key()))

    def signature_line(self, text: str) -> str:
        """The ``— name base64(...)`` line signing ``text``."""
        signature = self.private_key.sign(text.encode("utf-8"))
        encoded = base64.b64encode(self.verifier.key_hash + signature).decode()
        return f"{_SIG_PREFIX}{self.name} {encoded}\n"


def parse_vkey(vkey: str) -> NoteVerifier:
    """Parse a ``name+hash+base64`` verifier key, checking that its hash matches."""
    try:
        name, hash_hex, encoded = vkey.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CheckpointError(f"malformed verifier key {vkey!r}") from exc
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise CheckpointError("verifier key is not an Ed25519 key")
    verifier = NoteVerifier(name, raw[1:])
    if verifier.key_id != hash_hex.lower():
        raise CheckpointError("verifier key hash does not match its name and key")
    return verifier


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
"""A control character other than newline (one compiled scan: every head signed and
checked passes through here)."""


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    if "\n\n" in text:
        raise CheckpointError("note text must not contain a blank line")
    if _CONTROL.search(text):
        raise CheckpointError("note text must not contain control characters")


def sign_note(text: str, *signers: NoteSigner) -> str:
    """Return the signed note: ``text``, a blank line, one signature line per signer."""
    _check_text(text)
    if not signers:
        raise CheckpointError("a signed note needs at least one signer")
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key name, 4-byte key hash and raw signature."""

    name: str
    key_hash: bytes
    signature: bytes

    @property
    def key_id(self) -> str:
        """The key hash in hex."""
        return self.key_hash.hex()


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and (unverified) signatures."""
    if len(note) > 1_000_000:
        raise CheckpointError("signed note is too large")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("not a signed note: no blank line before the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    _check_text(text)
    if not block.endswith("\n"):
        raise CheckpointError("signed note must end with a newline")
    signatures = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise CheckpointError(f"malformed signature line {line[:60]!r}")
        try:
            name, encoded = line[len(_SIG_PREFIX) :].split(" ")
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise CheckpointError(f"malformed signature line {line[:60]!r}") from exc
        if len(raw) < 5:
            raise CheckpointError("signature line is too short")
        signatures.append(NoteSignature(_check_name(name), raw[:4], raw[4:]))
    if not signatures:
        raise CheckpointError("signed note carries no signature")
    return text, signatures
