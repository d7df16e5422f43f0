"""Exception hierarchy of the audit package: every failure is an :class:`AuditError`."""

from __future__ import annotations


class AuditError(Exception):
    """Base class of every error raised by :mod:`audit`."""


class CanonicalizationError(AuditError, ValueError):
    """A value has no exact canonical JSON form (naive datetime, NaN, huge int, ...).

    ``path`` is the JSON Pointer (RFC 6901) of the offending value in what was
    encoded, e.g. ``/new/value`` ("" for the value itself); the message starts with it.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class EntryError(AuditError, ValueError):
    """An audit entry is incomplete or inconsistent (missing reason, bad actor, ...)."""


class ProofError(AuditError):
    """An inclusion or consistency proof could not be produced or did not verify."""


class CheckpointError(AuditError, ValueError):
    """A checkpoint or signed note is malformed, or its signature does not verify."""


class SigningKeyError(AuditError):
    """A signing key is unknown, revoked, outside its validity, or cannot be unlocked."""


class StorageError(AuditError):
    """The ledger storage refused an operation or is in an unexpected state."""


class AppendOnlyViolation(StorageError):
    """An UPDATE, DELETE or TRUNCATE was attempted on an append-only ledger table."""


class AnchorError(AuditError):
    """Anchoring checkpoints outside the database failed or is misconfigured."""


class SinkUnavailable(AnchorError):
    """A checkpoint sink is down or timed out: the publisher retries with back-off."""


class SinkRefused(AnchorError):
    """A checkpoint sink answered and refused the checkpoint (e.g. a witness saw a fork)."""


class TrustPolicyError(AnchorError, ValueError):
    """A trust file is malformed or names keys or certificates that cannot be read."""
