"""Errors of the witness package, all within :class:`~audit.errors.AuditError`."""

from __future__ import annotations

from audit.errors import AuditError, CheckpointError

__all__ = ["CosignatureError", "WitnessError", "WitnessRefused", "WitnessUnavailable"]


class CosignatureError(CheckpointError):
    """A cosignature line or cosigner key is malformed, or the cosignature does not verify."""


class WitnessError(AuditError):
    """A witness could not be asked for a cosignature, or did not give one."""


class WitnessUnavailable(WitnessError):
    """The witness could not be reached, or answered with a server error (worth retrying)."""


class WitnessRefused(WitnessError):
    """The witness answered with a 4xx status: it refuses this checkpoint as sent.

    ``status`` is the HTTP status; ``size`` is the witness's latest cosigned size
    when it answered 409 with one.
    """

    def __init__(self, message: str, status: int, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.size = size
