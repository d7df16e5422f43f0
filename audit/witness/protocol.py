"""Wire formats of C2SP ``tlog-witness``: the add-checkpoint request and its answers.

Request body (every line ends with a newline)::

    old <size of the checkpoint the witness last cosigned, 0 if none>
    <base64 hash>        zero to 63 RFC 6962 consistency proof lines
                         (an empty line)
    <signed checkpoint note>

Answers: 200 with one or more cosignature lines; 409 with the witness's
latest size (``<decimal>\\n``, content type ``text/x.tlog.size``) when the
old size is not the one it holds; 404 unknown origin; 403 no trusted log
signature; 400 malformed; 422 consistency proof does not verify.

The checkpoint itself is parsed here as C2SP ``tlog-checkpoint`` (origin, size,
root, optional extension lines), so a witness can serve any log, not only ours.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from audit.errors import CheckpointError
from audit.merkle import HASH_SIZE

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpointRequest",
    "TlogCheckpoint",
    "format_add_checkpoint",
    "parse_add_checkpoint",
    "parse_size_answer",
    "parse_tlog_checkpoint",
]

ADD_CHECKPOINT_PATH = "/add-checkpoint"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 64 * 1024
"""Largest add-checkpoint body accepted: 63 proof lines and a generous checkpoint."""
MAX_SIZE = 2**63 - 1

_SIZE_RE = re.compile(r"(0|[1-9][0-9]{0,18})")


def _size(text: str, what: str) -> int:
    if not _SIZE_RE.fullmatch(text) or int(text) > MAX_SIZE:
        raise CheckpointError(f"{what} {text[:40]!r} is not a decimal size without leading zeros")
    return int(text)


def _hash(text: str, what: str) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError(f"{what} is not base64") from exc
    if len(value) != HASH_SIZE:
        raise CheckpointError(f"{what} is not a {HASH_SIZE}-byte hash")
    return value


@dataclass(frozen=True)
class TlogCheckpoint:
    """A C2SP checkpoint body: origin, tree size, root hash and any extension lines."""

    origin: str
    tree_size: int
    root: bytes
    extensions: tuple[str, ...]
    text: str


def parse_tlog_checkpoint(text: str) -> TlogCheckpoint:
    """Parse a checkpoint note text (without signatures) per C2SP tlog-checkpoint."""
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint must have origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if not origin or any(line == "" for line in extensions):
        raise CheckpointError("checkpoint has an empty origin or extension line")
    return TlogCheckpoint(
        origin,
        _size(size_text, "checkpoint tree size"),
        _hash(root_text, "checkpoint root"),
        tuple(extensions),
        text,
    )


@dataclass(frozen=True)
class AddCheckpointRequest:
    """A parsed add-checkpoint request: old size, consistency proof, signed note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint request body."""
    if not 0 <= old_size <= MAX_SIZE:
        raise CheckpointError(f"old size {old_size} is out of range")
    if len(proof) > MAX_PROOF_LINES:
        raise CheckpointError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
    if any(len(h) != HASH_SIZE for h in proof):
        raise CheckpointError("consistency proof holds a hash of the wrong length")
    lines = [f"old {old_size}\n"] + [base64.b64encode(h).decode() + "\n" for h in proof]
    return ("".join(lines) + "\n" + note).encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an add-checkpoint request body; :class:`CheckpointError` says what is wrong."""
    if len(body) > MAX_REQUEST_BYTES:
        raise CheckpointError(f"request body exceeds {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError("request body is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise CheckpointError("request has no empty line before the checkpoint")
    first, *proof_lines = head.split("\n")
    if not first.startswith("old "):
        raise CheckpointError("request does not start with an 'old <size>' line")
    old_size = _size(first[4:], "old size")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise CheckpointError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = tuple(_hash(line, "consistency proof line") for line in proof_lines)
    if not note:
        raise CheckpointError("request carries no checkpoint")
    return AddCheckpointRequest(old_size, proof, note)


def parse_size_answer(body: bytes) -> int:
    """The tree size in a 409 answer (``<decimal>\\n``)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise CheckpointError("size answer is not ASCII") from exc
    if not text.endswith("\n"):
        raise CheckpointError("size answer does not end with a newline")
    return _size(text[:-1], "witness size")
