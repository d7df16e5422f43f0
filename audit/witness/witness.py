"""The witness: checks an add-checkpoint request and answers with a cosignature.

For a known log (origin → trusted log keys) the witness cosigns a checkpoint
only if the log signed it, the request's old size is the size the witness last
cosigned, and the consistency proof links that tree to the new one. It never
cosigns two inconsistent views of one log, nor a smaller tree after a larger
one, across restarts (the state is in the database) and across concurrent
requests (the state moves by compare-and-set). Answers follow C2SP
tlog-witness; this module knows nothing of HTTP beyond status codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.errors import CheckpointError, ProofError
from audit.merkle import EMPTY_TREE_HASH, check_consistency
from audit.note import NoteSignature, NoteVerifier, key_hash, split_note
from audit.witness.cosignature import Cosigner
from audit.witness.protocol import (
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    TlogCheckpoint,
    parse_add_checkpoint,
    parse_tlog_checkpoint,
)
from audit.witness.state import LogState, WitnessStore

__all__ = ["KnownLog", "LogKey", "Witness", "WitnessAnswer"]

_log = logging.getLogger(__name__)
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class LogKey:
    """A log's Ed25519 note key; ``name`` None accepts the key under any signature name."""

    public_key: bytes
    name: str | None = None

    @classmethod
    def from_verifier(cls, verifier: NoteVerifier) -> LogKey:
        """The key of a parsed log vkey, bound to its name."""
        return cls(verifier.public_key, verifier.name)

    def verifies(self, text: str, signature: NoteSignature) -> bool:
        """True when ``signature`` is this key's signature of note ``text``."""
        if self.name is not None and signature.name != self.name:
            return False
        if key_hash(signature.name, self.public_key) != signature.key_hash:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature.signature, text.encode()
            )
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class KnownLog:
    """A log this witness serves: its origin line and the keys that may sign it."""

    origin: str
    keys: tuple[LogKey, ...]


@dataclass(frozen=True)
class WitnessAnswer:
    """An HTTP answer: status, body and content type."""

    status: int
    body: bytes
    content_type: str = TEXT

    @classmethod
    def text(cls, status: int, message: str) -> WitnessAnswer:
        """A plain-text answer (errors say what was wrong, one line)."""
        return cls(status, (message.rstrip("\n") + "\n").encode())


class Witness:
    """A C2SP tlog-witness over a :class:`WitnessStore`."""

    def __init__(
        self,
        cosigner: Cosigner,
        store: WitnessStore,
        logs: Iterable[KnownLog],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cosigner = cosigner
        self.store = store
        self.logs: Mapping[str, KnownLog] = {log.origin: log for log in logs}
        self._clock = clock

    def add_checkpoint(self, body: bytes) -> WitnessAnswer:
        """Handle one add-checkpoint request body; never raises for bad input."""
        try:
            request = parse_add_checkpoint(body)
            text, signatures = split_note(request.note)
            checkpoint = parse_tlog_checkpoint(text)
        except CheckpointError as exc:
            return WitnessAnswer.text(400, f"malformed request: {exc}")
        log = self.logs.get(checkpoint.origin)
        if log is None:
            return WitnessAnswer.text(404, "unknown log origin")
        if not any(key.verifies(text, sig) for key in log.keys for sig in signatures):
            return WitnessAnswer.text(403, "no signature by a trusted key of this log")
        if request.old_size > checkpoint.tree_size:
            return WitnessAnswer.text(400, "old size is larger than the checkpoint size")
        return self._advance(request, checkpoint)

    def _advance(self, request: AddCheckpointRequest, checkpoint: TlogCheckpoint) -> WitnessAnswer:
        stored = self.store.get(checkpoint.origin)
        if stored is not None:
            tampered = self.state_problem(stored)
            if tampered is not None:
                _log.error("witness state of %s is not its own: %s", checkpoint.origin, tampered)
                return WitnessAnswer.text(500, "the witness's state for this log fails its check")
        held = stored.tree_size if stored is not None else 0
        if request.old_size != held:
            return _size_conflict(held)
        problem = _inconsistency(request, checkpoint, stored)
        if problem is not None:
            status, reason = problem
            self.store.record_evidence(checkpoint.origin, reason, _evidence(request))
            _log.warning("refused checkpoint of %s: %s", checkpoint.origin, reason)
            return WitnessAnswer.text(status, reason)
        line = self.cosigner.cosign(checkpoint.text, int(self._clock()))
        if stored is not None and stored.tree_size == checkpoint.tree_size:
            return WitnessAnswer(200, line.encode())  # the same tree again: nothing to store
        new = LogState(checkpoint.origin, checkpoint.tree_size, checkpoint.root, request.note, line)
        if not self.store.compare_and_set(stored, new):
            # Another submission moved the log between our read and our write.
            latest = self.store.get(checkpoint.origin)
            return _size_conflict(latest.tree_size if latest is not None else 0)
        return WitnessAnswer(200, line.encode())

    def state_problem(self, state: LogState) -> str | None:
        """Why a stored state was not written by this witness, or None if it was.

        A state row carries the log-signed note and this witness's cosignature
        of it; a row inserted or altered by SQL without the witness key fails.
        """
        try:
            text, _ = split_note(state.note)
            checkpoint = parse_tlog_checkpoint(text)
            _, (signature,) = split_note(text + "\n" + state.cosignature)
            self.cosigner.verifier.verify(text, signature)
        except (CheckpointError, ValueError) as exc:
            return f"stored checkpoint or cosignature does not verify: {exc}"
        if (checkpoint.origin, checkpoint.tree_size, checkpoint.root) != (
            state.origin,
            state.tree_size,
            state.root,
        ):
            return "stored size or root differs from the cosigned checkpoint"
        return None


def _size_conflict(size: int) -> WitnessAnswer:
    return WitnessAnswer(409, f"{size}\n".encode(), SIZE_CONTENT_TYPE)


def _inconsistency(
    request: AddCheckpointRequest, checkpoint: TlogCheckpoint, stored: LogState | None
) -> tuple[int, str] | None:
    """(status, reason) when the checkpoint does not extend the stored one, else None."""
    old = request.old_size
    if old == 0:
        if request.proof:
            return 422, "a consistency proof from size 0 must be empty"
        if checkpoint.tree_size == 0 and checkpoint.root != EMPTY_TREE_HASH:
            return 422, "an empty tree has the SHA-256 of nothing as its root"
        if stored is not None and checkpoint.tree_size == 0 and stored.root != checkpoint.root:
            return 409, "same size as the cosigned checkpoint but a different root (fork)"
        return None
    assert stored is not None  # old == held > 0
    if old == checkpoint.tree_size:
        if stored.root != checkpoint.root:
            return 409, "same size as the cosigned checkpoint but a different root (fork)"
        if request.proof:
            return 422, "a consistency proof between equal sizes must be empty"
        return None
    try:
        check_consistency(request.proof, checkpoint.tree_size, checkpoint.root, old, stored.root)
    except ProofError as exc:
        return 422, f"consistency proof does not verify: {exc}"
    return None


def _evidence(request: AddCheckpointRequest) -> str:
    import base64

    proof = "".join(base64.b64encode(h).decode() + "\n" for h in request.proof)
    return f"old {request.old_size}\n{proof}\n{request.note}"
