"""Exception hierarchy of the gxpmes package: every failure is a :class:`GxpError`."""

from __future__ import annotations


class GxpError(Exception):
    """Base class of every error raised by :mod:`gxpmes`."""


class ConfigurationError(GxpError, ValueError):
    """A setting or argument is invalid."""


class DatabaseError(GxpError):
    """The database cannot be opened or used: missing, not a database, unreachable, bad URL."""


class FileAccessError(GxpError):
    """A file or folder cannot be read or written (missing, a folder, exists, no permission)."""


class UserError(GxpError, ValueError):
    """A user account operation is invalid (unknown user, reused id, inactive...)."""


class PasswordPolicyError(GxpError, ValueError):
    """A new password does not meet the password policy."""


class AuthenticationError(GxpError):
    """Identification or password was wrong (never says which)."""


class AccountLocked(AuthenticationError):
    """The account is locked after repeated failures; an administrator must unlock it."""


class SessionExpired(AuthenticationError):
    """The session ended (idle timeout or logout); both components are needed again."""


class PermissionDenied(GxpError):
    """The user's roles do not grant the permission the action needs."""


class SeparationOfDutiesError(PermissionDenied):
    """The same person may not hold both roles on this record (e.g. perform and verify)."""


class SignatureError(GxpError):
    """A signature could not be made, or does not verify."""


class RecordChangedError(SignatureError):
    """The record changed after it was shown to the signer."""


class BatchError(GxpError):
    """A batch record operation is not allowed (wrong state, closed record, missing data)."""


class RecordClosedError(BatchError):
    """The batch record is Released or Rejected: nothing in it may change."""


class EquipmentNotReady(BatchError):
    """Equipment is not clean, out of calibration, or not available."""


class CaptureRefused(BatchError):
    """Values were refused (batch or phase not executing, unknown parameter...); none written."""


class ProcedureError(BatchError):
    """The procedure forbids this step now (a predecessor not Complete, the parent not Running)."""


class MissingDataError(BatchError):
    """Required data or signatures are missing: the message names each missing item."""


class DispenseRefused(BatchError):
    """A dispensing is refused (material not in the BOM, out of tolerance, balance, lot)."""


class ReleaseBlocked(BatchError):
    """Release is blocked: open deviations, unassessed exceptions or missing signatures."""


class StateChangedError(BatchError):
    """Someone else changed the record first: the state the caller saw is gone (compare-and-set)."""


class RecordIntegrityError(GxpError):
    """A record the engine relies on does not match its audit trail or its signatures."""
