"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in a C2SP signed note.

Text format (every line ends with a newline)::

    <origin>                      the log's unique name
    <tree size>                   decimal, no leading zeros
    <base64 root hash>            RFC 9162 root of the first <tree size> entries
    chain-head <hex>              hash of entry <tree size>-1 (the chain link)
    time <RFC 3339 UTC>           when the checkpoint was made
                                  (blank line)
    — <key name> <base64(key hash ‖ Ed25519 signature)>

The first three lines are exactly the C2SP checkpoint, so generic
transparency-log verifiers can check size and root; the two extension lines
are ours. A checkpoint kept *outside* the database is what detects the tail
of the log being cut off or the whole log being rewritten.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from audit.canonical import format_timestamp
from audit.errors import CheckpointError
from audit.merkle import EMPTY_TREE_HASH, HASH_SIZE
from audit.note import NoteSignature, NoteSigner, sign_note, split_note

__all__ = [
    "Checkpoint",
    "OpenedCheckpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,18})$")


@dataclass(frozen=True)
class Checkpoint:
    """The signed claim: this log had ``tree_size`` entries with this ``root`` at ``timestamp``."""

    origin: str
    tree_size: int
    root: bytes
    chain_head: bytes
    timestamp: datetime

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError(f"invalid origin {self.origin!r}")
        if self.tree_size < 0:
            raise CheckpointError("tree size cannot be negative")
        if len(self.root) != HASH_SIZE or len(self.chain_head) != HASH_SIZE:
            raise CheckpointError("root and chain head must be 32-byte hashes")
        if self.timestamp.utcoffset() is None:
            raise CheckpointError("checkpoint time must be timezone-aware")
        if self.tree_size == 0 and self.root != EMPTY_TREE_HASH:
            raise CheckpointError("an empty tree has the SHA-256 of nothing as its root")

    def body(self) -> str:
        """The note text that gets signed."""
        return (
            f"{self.origin}\n{self.tree_size}\n{base64.b64encode(self.root).decode()}\n"
            f"chain-head {self.chain_head.hex()}\ntime {format_timestamp(self.timestamp)}\n"
        )


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (the note text, without signatures)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError("checkpoint body must have origin, size and root lines")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not _SIZE_RE.match(size_text):
        raise CheckpointError(f"checkpoint tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("checkpoint root is not base64") from exc
    fields: dict[str, str] = {}
    for line in extensions:
        key, _, value = line.partition(" ")
        if key in fields:
            raise CheckpointError(f"checkpoint line {key!r} appears twice")
        fields[key] = value
    try:
        chain_head = bytes.fromhex(fields["chain-head"])
        timestamp = datetime.fromisoformat(fields["time"])
    except KeyError as exc:
        raise CheckpointError(f"checkpoint lacks its {exc.args[0]!r} line") from exc
    except ValueError as exc:
        raise CheckpointError(f"checkpoint extension line is malformed: {exc}") from exc
    return Checkpoint(origin, int(size_text), root, chain_head, timestamp)


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The signed note text of ``checkpoint``."""
    return sign_note(checkpoint.body(), signer)


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A parsed checkpoint with its signature lines, not yet trusted."""

    checkpoint: Checkpoint
    signatures: tuple[NoteSignature, ...]
    text: str


def open_checkpoint(note: str | bytes) -> OpenedCheckpoint:
    """Parse a signed checkpoint note; signatures are checked by the verifier."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError("signed checkpoint is not UTF-8") from exc
    text, signatures = split_note(note)
    return OpenedCheckpoint(parse_checkpoint(text), tuple(signatures), text)
