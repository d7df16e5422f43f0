"""The checkpoint-sink contract: what the ledger hands to every place outside the database.

A *sink* receives each automatic checkpoint the ledger signs and keeps or
vouches for it somewhere an attacker on the database (or on the application
host) cannot reach: a write-once folder, an RFC 3161 time-stamping authority,
a C2SP witness of another site. What it hands back is a :class:`Receipt` —
the sink's own evidence (a file name, a time-stamp token, a cosignature) —
which the publisher stores beside the checkpoint in the audit database.

Contract for implementations of :class:`CheckpointSink`:

* ``publish`` is called from the publisher's background thread, never from
  an appender; it may block (network, fsync) and is never called twice at
  once for the same sink.
* Success: return a :class:`Receipt` with ``sink == self.name``.
* ``SinkUnavailable``: the sink is down or timed out; the publisher retries
  with exponential back-off, then with the *newest* checkpoint (a newer
  checkpoint of an append-only log covers the older one, so a sink that was
  down catches up in one step, as transparency-log witnesses do).
* ``SinkRefused``: the sink answered and said no (e.g. a witness saw an
  inconsistent, forked or rolled-back log). That is an alarm, not a
  transient fault: the publisher logs it at ERROR, shows it in the sink's
  status, and does not retry *this* checkpoint.
* Any other exception is treated as ``SinkUnavailable`` and logged.
* A sink must be idempotent: publishing the same checkpoint again (after a
  crash between publish and storing the receipt) is not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from audit.checkpoint import Checkpoint, open_checkpoint
from audit.errors import AnchorError, CheckpointError

__all__ = [
    "CheckpointSink",
    "ConsistencyProver",
    "PublishedCheckpoint",
    "Receipt",
]

ConsistencyProver = Callable[[int], Sequence[bytes]]
"""``prove(old_size)``: the RFC 9162 consistency proof from ``old_size`` to this checkpoint."""


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One signed checkpoint as handed to sinks.

    ``note`` is the exact signed C2SP note (UTF-8 bytes: checkpoint body,
    blank line, signature lines) — the bytes a sink stores, time-stamps or
    cosigns. ``checkpoint`` is its parsed body (origin, size, root, chain
    head, time). ``prove_consistency(old_size)`` returns the consistency
    proof from an older tree size to this one (a witness sends it in its
    add-checkpoint request); it reads the ledger, so call it from the sink's
    thread only. ``id`` numbers the checkpoints of one publisher (increasing);
    the copy in ``audit_checkpoint`` is written after the sinks got it, so a
    busy database never delays publication.
    """

    id: int
    note: bytes
    checkpoint: Checkpoint
    prove_consistency: ConsistencyProver

    @property
    def origin(self) -> str:
        """The log's origin line."""
        return self.checkpoint.origin

    @property
    def tree_size(self) -> int:
        """Number of entries the checkpoint covers."""
        return self.checkpoint.tree_size

    @property
    def root(self) -> bytes:
        """RFC 9162 root hash of the first ``tree_size`` entries."""
        return self.checkpoint.root

    @property
    def timestamp(self) -> datetime:
        """The time the checkpoint's signer wrote (not to be trusted on its own)."""
        return self.checkpoint.timestamp

    @classmethod
    def from_note(
        cls, id: int, note: bytes | str, prove_consistency: ConsistencyProver
    ) -> PublishedCheckpoint:
        """Parse ``note`` (a signed checkpoint); :class:`CheckpointError` if malformed."""
        raw = note.encode("utf-8") if isinstance(note, str) else note
        opened = open_checkpoint(raw)
        if not raw.endswith(b"\n"):
            raise CheckpointError("signed checkpoint must end with a newline")
        return cls(id, raw, opened.checkpoint, prove_consistency)


@dataclass(frozen=True)
class Receipt:
    """A sink's evidence that it holds or vouches for one checkpoint.

    ``kind`` names the evidence's format so a verifier knows how to read
    ``data``: ``"directory"`` (the file name written), ``"rfc3161"`` (a DER
    TimeStampResp), ``"cosignature"`` (C2SP tlog-cosignature note signature
    lines). ``received_at`` is when the publisher got it (aware UTC).
    """

    sink: str
    kind: str
    data: bytes
    received_at: datetime

    def __post_init__(self) -> None:
        if not self.sink or not self.kind:
            raise AnchorError("a receipt names its sink and kind")
        if self.received_at.utcoffset() is None:
            raise AnchorError("a receipt's time must be timezone-aware")


@runtime_checkable
class CheckpointSink(Protocol):
    """Somewhere outside the database that keeps or vouches for checkpoints."""

    @property
    def name(self) -> str:
        """Unique name of this sink in one installation (its receipts are stored under it)."""
        ...

    @property
    def kind(self) -> str:
        """The receipt kind this sink returns (``directory``, ``rfc3161``, ``cosignature``)."""
        ...

    def publish(self, checkpoint: PublishedCheckpoint) -> Receipt:
        """Publish ``checkpoint``; raise ``SinkUnavailable`` or ``SinkRefused`` on failure."""
        ...
