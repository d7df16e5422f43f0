"""Users, roles, authentication, sessions and lockout (21 CFR 11.10(d), (g), 11.300).

Every action here writes an audit entry in the same transaction. Passwords
and hashes never appear in entries, logs or exception messages.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from audit.canonical import format_timestamp
from audit.entry import Actor, AuditEvent
from gxpmes.database import SYSTEM, Database
from gxpmes.errors import (
    AccountLocked,
    AuthenticationError,
    PasswordPolicyError,
    PermissionDenied,
    SessionExpired,
    UserError,
)
from gxpmes.identity import keywrap
from gxpmes.identity.duties import DutyMatrix
from gxpmes.identity.names import (
    id_skeleton,
    name_key,
    normalise_printed_name,
    normalise_user_id,
)
from gxpmes.identity.passwords import PasswordHasher, PasswordPolicy
from gxpmes.identity.schema import (
    AuthPendingRow,
    PasswordHistoryRow,
    SessionRow,
    UserKeyRow,
    UserRow,
)
from gxpmes.records import writer as projection

__all__ = ["DEFAULT_ROLES", "IdentityService", "Session", "User"]

# Built once: an account is read on every signature and every capture call, and
# building the statement cost more than running it.
_ROW = select(UserRow).where(UserRow.user_id == bindparam("user_id"))
_ROW_FOR_UPDATE = _ROW.with_for_update()

DEFAULT_ROLES: Mapping[str, frozenset[str]] = {
    "Operator": frozenset(
        {
            "batch.execute",
            "batch.capture",
            "equipment.log",
            "deviation.open",
            "sign.Performed",
            "sign.Verified",
        }
    ),
    "Supervisor": frozenset(
        {
            "batch.create",
            "batch.execute",
            "batch.capture",
            "equipment.log",
            "equipment.manage",
            "material.receive",
            "recipe.author",
            "deviation.open",
            "sign.Performed",
            "sign.Verified",
        }
    ),
    "QA Reviewer": frozenset({"review.assess", "sign.Reviewed", "deviation.investigate"}),
    "QA Approver": frozenset(
        {
            "review.assess",
            "sign.Reviewed",
            "sign.Approved",
            "sign.Released",
            "sign.Rejected",
            "deviation.investigate",
            "material.release",
        }
    ),
    "Administrator": frozenset({"user.manage", "user.unlock", "sign.Authorised"}),
    # A service or device account (an OT connector): delivers captured values, nothing else.
    "OT Device": frozenset({"capture.device"}),
}
"""Role → permissions. ``sign.<Meaning>`` lets a role sign with that meaning; an
Administrator signs only account changes (``Authorised``) and, by the default
conflict matrix, can hold no role that signs GMP records."""

ABANDONED_CHECK = timedelta(minutes=5)
"""A password check still pending after this long was abandoned (its process died):
the next check of that account counts it as a failure."""


@dataclass(frozen=True)
class User:
    """A user account as stored (without its password hash)."""

    user_id: str
    printed_name: str
    roles: frozenset[str]
    active: bool
    locked: bool
    failed_attempts: int
    one_time_password: bool = False
    """The current password was issued by an administrator: it only serves to set one's own."""

    @property
    def actor(self) -> Actor:
        """The audit actor for this user."""
        return Actor(self.user_id, self.printed_name)


@dataclass(frozen=True)
class Session:
    """A continuous period of controlled system access by one user."""

    session_id: str = field(repr=False)
    """The bearer token the holder presents; never stored or logged."""
    user_id: str
    client_tz: str = "UTC"

    @property
    def key(self) -> str:
        """What the database and the audit trail know the session by: SHA-256 of the token.

        Someone who reads the session table or the trail learns no token to reuse.
        """
        return hashlib.sha256(self.session_id.encode("utf-8")).hexdigest()


def _user(row: Any) -> User:
    roles = frozenset(r for r in row.roles.split("\n") if r)
    return User(
        row.user_id,
        row.printed_name,
        roles,
        row.active,
        row.locked,
        row.failed_attempts,
        row.password_issued_by is not None,
    )


def _lookup_id(user_id: str) -> str | None:
    """The id as stored for what someone typed (NFKC), or None if it can be no id at all."""
    try:
        return normalise_user_id(user_id)
    except UserError:
        return None


class IdentityService:
    """User administration and authentication over a :class:`Database`."""

    def __init__(
        self,
        db: Database,
        *,
        policy: PasswordPolicy | None = None,
        hasher: PasswordHasher | None = None,
        roles: Mapping[str, frozenset[str]] = DEFAULT_ROLES,
        duties: DutyMatrix | None = None,
    ) -> None:
        self.db = db
        self.policy = policy or PasswordPolicy()
        self.hasher = hasher or PasswordHasher()
        self.roles = dict(roles)
        self.duties = duties or DutyMatrix()

    @functools.cached_property
    def _decoy(self) -> str:
        # A hash at the installation's cost to check against when the account is
        # unknown, locked or deactivated: every state costs one scrypt, so timing
        # does not tell which ids exist or what state they are in.
        return self.hasher.hash(secrets.token_urlsafe(16))

    # -------------------------------------------------------------- helpers

    def _now(self) -> datetime:
        return self.db.clock()

    def _row(self, conn: Connection, user_id: str, *, for_update: bool = False) -> Any:
        # Ids are unique case-insensitively, so "OP1" names op1. Exact match first;
        # otherwise compare case-folded in Python (SQL lower() is ASCII-only in SQLite).
        query = _ROW_FOR_UPDATE if for_update else _ROW
        row = conn.execute(query, {"user_id": user_id}).one_or_none()
        if row is not None:
            return row
        folded = user_id.casefold()
        stored = next(
            (u for u in conn.scalars(select(UserRow.user_id)) if u.casefold() == folded), None
        )
        if stored is None:
            return None
        return conn.execute(query, {"user_id": stored}).one_or_none()

    def user(self, user_id: str) -> User:
        """The account ``user_id``."""
        with self.db.read() as conn:
            row = self._row(conn, _lookup_id(user_id) or "")
        if row is None:
            raise UserError(f"no user {user_id!r}")
        return _user(row)

    def permissions(self, user: User) -> frozenset[str]:
        """Every permission the user's roles grant."""
        granted: set[str] = set()
        for role in user.roles:
            granted |= self.roles.get(role, frozenset())
        return frozenset(granted)

    def _check_roles(self, user_id: str, roles: Iterable[str]) -> list[str]:
        chosen = sorted(set(roles))
        unknown = [r for r in chosen if r not in self.roles]
        if unknown:
            raise UserError(f"unknown role(s): {', '.join(unknown)}")
        self.duties.check_roles(user_id, chosen, when="refused at grant")
        return chosen

    # --------------------------------------------------------- administration
    # Account changes by an administrator are signed: gxpmes.identity.admin.

    def bootstrap_admin(self, user_id: str, printed_name: str, password: str) -> User:
        """Create the first Administrator; refused once any user exists.

        The installer chooses this password themselves, so it is not one-time.
        """
        with self.db.transaction() as conn:
            if conn.execute(select(UserRow.user_id).limit(1)).first() is not None:
                raise UserError("users exist already; create further users as an administrator")
            stored_id, chosen = self._insert_user(
                conn, user_id, printed_name, ["Administrator"], password, issued_by=None
            )
            self.db.audit(
                conn,
                AuditEvent(
                    SYSTEM,
                    "user.create",
                    "user",
                    stored_id,
                    new={"printed_name": printed_name, "roles": chosen},
                    reason="installation: first administrator",
                ),
            )
        return self.user(stored_id)

    def _insert_user(
        self,
        conn: Connection,
        user_id: str,
        printed_name: str,
        roles: Iterable[str],
        password: str,
        *,
        issued_by: str | None,
    ) -> tuple[str, list[str]]:
        """Insert an account (no audit entry: the caller writes it); ``(stored id, roles)``."""
        stored_id = normalise_user_id(user_id)
        name = normalise_printed_name(printed_name)
        skeleton, key = id_skeleton(stored_id), name_key(name)
        for other_id, other_name in conn.execute(select(UserRow.user_id, UserRow.printed_name)):
            if id_skeleton(other_id) == skeleton:
                raise UserError(
                    f"user id {stored_id!r} exists or existed (as {other_id!r}, compared "
                    "case-insensitively and by look); user ids are never reused"
                )
            if name_key(other_name) == key:
                raise UserError(
                    f"printed name {name!r} is already used by {other_id!r}; printed names "
                    "identify one person (add a middle initial or department)"
                )
        chosen = self._check_roles(stored_id, roles)
        self.policy.check(password, stored_id)
        now = format_timestamp(self._now())
        hashed = self.hasher.hash(password)
        clash = False
        try:
            projection.insert(
                conn,
                UserRow,
                dict(
                    user_id=stored_id,
                    printed_name=name,
                    roles="\n".join(chosen),
                    active=True,
                    password_hash=hashed,
                    password_set_at=now,
                    failed_attempts=0,
                    locked=False,
                    created_at=now,
                    password_issued_by=issued_by,
                ),
            )
        except IntegrityError:
            # Another writer created the id between our check and insert. The
            # driver's error text carries the statement's parameters (the hash):
            # it is dropped here, not chained (the transaction rolls back).
            clash = True
        if clash:
            raise UserError(f"user id {stored_id!r} exists or existed; user ids are never reused")
        projection.insert(
            conn, PasswordHistoryRow, dict(user_id=stored_id, password_hash=hashed, set_at=now)
        )
        return stored_id, chosen

    def change_password(self, user_id: str, old_password: str, new_password: str) -> None:
        """Set one's own password: policy and history are enforced.

        Works with a one-time or an expired password (that is what it is for).
        The personal signing key, if any, is re-wrapped under the new password.
        """
        user = self.verify_password(user_id, old_password, purpose="password change")
        user_id = user.user_id
        self.policy.check(new_password, user_id)
        with self.db.read() as conn:
            history = (
                conn.execute(
                    select(PasswordHistoryRow.password_hash)
                    .where(PasswordHistoryRow.user_id == user_id)
                    .order_by(PasswordHistoryRow.id.desc())
                    .limit(self.policy.history)
                )
                .scalars()
                .all()
            )
            key_row = conn.execute(
                select(UserKeyRow).where(UserKeyRow.user_id == user_id)
            ).one_or_none()
            current = self._existing(conn, user_id).password_hash
        # The slow work (scrypt per history entry, the key's re-wrap) outside the write lock.
        if any(self.hasher.verify(new_password, old) for old in history):
            raise PasswordPolicyError(
                f"the new password must differ from the last {self.policy.history} passwords"
            )
        hashed = self.hasher.hash(new_password)
        rewrapped = None
        if key_row is not None:
            rewrapped = keywrap.rewrap(
                bytes(key_row.encrypted_private_key), old_password, new_password, self.hasher
            )
        with self.db.transaction() as conn:
            row = self._existing(conn, user_id)
            if row.password_hash != current or not row.active or row.locked:
                raise AuthenticationError("the account changed meanwhile; try again")
            now = format_timestamp(self._now())
            projection.update(
                conn,
                UserRow,
                {"user_id": user_id},
                dict(password_hash=hashed, password_set_at=now, password_issued_by=None),
            )
            projection.insert(
                conn, PasswordHistoryRow, dict(user_id=user_id, password_hash=hashed, set_at=now)
            )
            if rewrapped is not None:
                projection.update(
                    conn, UserKeyRow, {"user_id": user_id}, dict(encrypted_private_key=rewrapped)
                )
            self.db.audit(
                conn,
                AuditEvent(
                    _user(row).actor,
                    "user.password_change",
                    "user",
                    user_id,
                    old={"one_time": row.password_issued_by is not None},
                    new={"signing_key_rewrapped": rewrapped is not None},
                    reason="password changed by its owner",
                ),
            )

    # ---------------------------------------------------------- authentication

    def verify_password(self, user_id: str, password: str, *, purpose: str) -> User:
        """Check both components; counts failures, locks and alerts after too many.

        Raises :class:`AuthenticationError` (never saying whether the id or the
        password was wrong) or :class:`AccountLocked`.

        Three steps, so that the slow scrypt check holds no lock and still
        nobody gets more checks than the policy allows: (1) under a lock of the
        account row, the check is *reserved* — refused when recorded failures
        plus checks in progress reach the limit; (2) exactly one scrypt, for
        every account state (unknown, locked and deactivated accounts are
        checked against a decoy hash at the same cost); (3) the outcome: an
        atomic ``failed_attempts + 1`` on failure (lock and alert at the limit),
        the reservation released, one audit entry for every refusal. A hash of
        older cost is rehashed at the installation's cost on success.
        """
        lookup = _lookup_id(user_id) if isinstance(user_id, str) else None
        shown = lookup or "?"
        check_id = secrets.token_hex(16)
        limit = self.policy.max_failed_attempts
        state = "unknown"
        stored = self._decoy
        with self.db.transaction() as conn:
            row = self._row(conn, lookup, for_update=True) if lookup else None
            if row is not None:
                shown = row.user_id  # as stored ("OP1" typed names op1)
                self._count_abandoned(conn, row)
                row = self._row(conn, row.user_id, for_update=True)
                pending = conn.scalar(
                    select(func.count())
                    .select_from(AuthPendingRow)
                    .where(AuthPendingRow.user_id == row.user_id)
                )
                if row.locked:
                    state = "locked"
                elif not row.active:
                    state = "inactive"
                elif not self._may_check(row.failed_attempts, pending or 0):
                    state = "busy"
                else:
                    state = "active"
                    stored = row.password_hash
                    conn.execute(
                        insert(AuthPendingRow).values(
                            check_id=check_id,
                            user_id=row.user_id,
                            started_at=format_timestamp(self._now()),
                        )
                    )
        matched = self.hasher.verify(password, stored)
        ok = matched and state == "active"
        new_hash = self.hasher.hash(password) if ok and self.hasher.needs_rehash(stored) else None
        rewrapped = self._rewrap_outdated_key(shown, password) if ok else None
        failure: AuthenticationError | None = None
        with self.db.transaction() as conn:
            conn.execute(delete(AuthPendingRow).where(AuthPendingRow.check_id == check_id))
            if state == "unknown":
                cause = "unknown user id"
                failure = AuthenticationError("user id or password is wrong")
                self._audit_auth(conn, "auth.failure", shown, {"purpose": purpose, "cause": cause})
            elif state == "locked":
                self._audit_auth(conn, "auth.refused_locked", shown, {"purpose": purpose})
                failure = AccountLocked(
                    f"account {shown!r} is locked; an administrator must unlock it"
                )
            elif state == "inactive":
                self._audit_auth(conn, "auth.refused_inactive", shown, {"purpose": purpose})
                failure = AuthenticationError("user id or password is wrong")
            elif state == "busy":
                self._audit_auth(
                    conn,
                    "auth.refused_busy",
                    shown,
                    {"purpose": purpose, "checks_in_progress_or_failed": limit},
                )
                failure = AuthenticationError(
                    "user id or password is wrong, or too many attempts at once; try again later"
                )
            elif not ok:
                failure = self._record_failure(conn, shown, purpose)
            else:
                row = self._existing(conn, shown)
                if row.locked or not row.active:
                    # Locked or deactivated while the check ran.
                    self._audit_auth(conn, "auth.refused_locked", shown, {"purpose": purpose})
                    failure = AccountLocked(f"account {shown!r} is locked or deactivated")
                else:
                    self._succeeded(conn, row, purpose, stored, new_hash)
                    if rewrapped is not None:
                        self._store_rewrapped(conn, shown, *rewrapped)
                    return _user(self._existing(conn, shown))
        assert failure is not None
        raise failure

    def _rewrap_outdated_key(self, user_id: str, password: str) -> tuple[bytes, bytes] | None:
        """``(old, new)`` wrapping of a personal key wrapped at another cost or format."""
        with self.db.read() as conn:
            wrapped = conn.scalar(
                select(UserKeyRow.encrypted_private_key).where(UserKeyRow.user_id == user_id)
            )
        if wrapped is None or keywrap.is_current(bytes(wrapped), self.hasher):
            return None
        old = bytes(wrapped)
        return old, keywrap.rewrap(old, password, password, self.hasher)

    def _store_rewrapped(self, conn: Connection, user_id: str, old: bytes, new: bytes) -> None:
        current = conn.scalar(
            select(UserKeyRow.encrypted_private_key).where(UserKeyRow.user_id == user_id)
        )
        if current is None or bytes(current) != old:
            return  # changed meanwhile (a password change re-wrapped it)
        projection.update(conn, UserKeyRow, {"user_id": user_id}, dict(encrypted_private_key=new))
        self._audit_auth(
            conn,
            "user.signing_key_rewrap",
            user_id,
            {"wrapping": f"scrypt n=2^{self.hasher.log2_n} r={self.hasher.r}, AES-256-GCM"},
        )

    def _may_check(self, failures: int, in_progress: int) -> bool:
        """Whether one more check fits: recorded failures plus checks running stay
        below the limit, so N parallel guessers get at most the limit's checks."""
        return failures + in_progress < self.policy.max_failed_attempts

    @staticmethod
    def must_set_own_password(user: User) -> bool:
        """11.200(a)(3): a password an administrator issued signs and opens nothing."""
        return user.one_time_password

    def _audit_auth(self, conn: Connection, action: str, user_id: str, new: Any) -> None:
        self.db.audit(conn, AuditEvent(SYSTEM, action, "user", user_id, new=new))

    def _record_failure(
        self, conn: Connection, user_id: str, purpose: str, *, cause: str | None = None
    ) -> AuthenticationError:
        """Count one failed check atomically; lock and alert at the limit."""
        row = projection.update_returning(
            conn,
            UserRow,
            {"user_id": user_id},
            dict(failed_attempts=UserRow.failed_attempts + 1),
        )
        assert row is not None  # users are never deleted
        attempts = int(row["failed_attempts"])
        detail: dict[str, Any] = {"purpose": purpose, "consecutive_failures": attempts}
        if cause is not None:
            detail["cause"] = cause
        if attempts < self.policy.max_failed_attempts or row["locked"]:
            self._audit_auth(conn, "auth.failure", user_id, detail)
            return AuthenticationError("user id or password is wrong")
        projection.update(conn, UserRow, {"user_id": user_id}, dict(locked=True))
        self._audit_auth(conn, "auth.failure", user_id, detail)
        # 11.300(d): an alert entry for QA / security follow-up.
        self.db.audit(
            conn,
            AuditEvent(
                SYSTEM,
                "security.alert",
                "user",
                user_id,
                new={
                    "alert": "account locked after repeated authentication failures",
                    "consecutive_failures": attempts,
                },
                reason="possible unauthorised use",
            ),
        )
        return AccountLocked(f"account {user_id!r} is now locked after {attempts} failures")

    def _count_abandoned(self, conn: Connection, row: Any) -> None:
        """Checks reserved long ago and never finished count as failures (a killed guesser)."""
        cutoff = format_timestamp(self._now() - ABANDONED_CHECK)
        stale = conn.scalars(
            select(AuthPendingRow.check_id).where(
                AuthPendingRow.user_id == row.user_id, AuthPendingRow.started_at < cutoff
            )
        ).all()
        for check in stale:
            conn.execute(delete(AuthPendingRow).where(AuthPendingRow.check_id == check))
            self._record_failure(conn, row.user_id, "abandoned check", cause="check not finished")

    def _succeeded(
        self, conn: Connection, row: Any, purpose: str, stored: str, new_hash: str | None
    ) -> None:
        changes: dict[str, Any] = {}
        if row.failed_attempts:
            changes["failed_attempts"] = 0
        if new_hash is not None and row.password_hash == stored:
            # Transparent rehash at the installation's current cost; the history
            # keeps the old hash (it still refuses re-use of that password).
            changes["password_hash"] = new_hash
        if not changes:
            return
        projection.update(conn, UserRow, {"user_id": row.user_id}, changes)
        new: dict[str, Any] = {"purpose": purpose}
        old: dict[str, Any] = {}
        if "failed_attempts" in changes:
            old["consecutive_failures"] = row.failed_attempts
            new["consecutive_failures"] = 0
        if "password_hash" in changes:
            new["password_rehashed"] = f"scrypt n=2^{self.hasher.log2_n} r={self.hasher.r}"
        action = "auth.failures_reset" if "failed_attempts" in changes else "auth.rehash"
        self.db.audit(conn, AuditEvent(SYSTEM, action, "user", row.user_id, old=old, new=new))

    def password_expired(self, user_id: str) -> bool:
        """True when the password is older than the policy allows."""
        if self.policy.max_age_days is None:
            return False
        with self.db.read() as conn:
            row = self._existing(conn, _lookup_id(user_id) or "")
        set_at = datetime.fromisoformat(row.password_set_at)
        return self._now() - set_at > timedelta(days=self.policy.max_age_days)

    def check_usable_for_signing(self, user: User) -> None:
        """Refuse a signer whose password is one-time or expired, or whose roles conflict.

        11.300(b): an expired password is no signature component; 11.200(a)(3):
        a password an administrator chose is nobody's own signature.
        """
        if self.must_set_own_password(user):
            raise AuthenticationError(
                "the password was issued by an administrator: set your own before signing"
            )
        if self.password_expired(user.user_id):
            raise AuthenticationError("password expired: change it before signing")
        self.check_signer_roles(user)

    def check_signer_roles(self, user: User) -> None:
        """Refuse a signer holding conflicting roles, however they came by them
        (a grant before the matrix changed, a row edited by SQL)."""
        self.duties.check_roles(user.user_id, user.roles, when="refused at signing")

    def login(self, user_id: str, password: str, *, client_tz: str = "UTC") -> Session:
        """Start a session with both components (user id and password).

        A one-time or expired password opens no session: it only serves
        :meth:`change_password`.
        """
        user = self.verify_password(user_id, password, purpose="login")
        if self.must_set_own_password(user):
            raise AuthenticationError(
                "the password was issued by an administrator: set your own before logging in"
            )
        if self.password_expired(user.user_id):
            raise AuthenticationError("password expired: change it before logging in")
        session = Session(secrets.token_hex(16), user.user_id, client_tz)
        now = format_timestamp(self._now())
        with self.db.transaction() as conn:
            projection.insert(
                conn,
                SessionRow,
                dict(
                    session_id=session.key,
                    user_id=user.user_id,
                    started_at=now,
                    last_activity=now,
                    signed=False,
                ),
            )
            self.db.audit(
                conn,
                AuditEvent(user.actor, "auth.login", "session", session.key, client_tz=client_tz),
            )
        return session

    def logout(self, session: Session) -> None:
        """End a session."""
        with self.db.transaction() as conn:
            projection.update(
                conn,
                SessionRow,
                {"session_id": session.key},
                dict(ended_at=format_timestamp(self._now())),
            )
            row = self._existing(conn, session.user_id)
            self.db.audit(conn, AuditEvent(_user(row).actor, "auth.logout", "session", session.key))

    def active_session(self, conn: Connection, session: Session) -> tuple[User, Any]:
        """The session's user, if the session is open and not idle too long (touches it)."""
        row = conn.execute(
            select(SessionRow).where(SessionRow.session_id == session.key)
        ).one_or_none()
        if row is None or row.user_id != session.user_id or row.ended_at is not None:
            raise SessionExpired("the session has ended; log in again with user id and password")
        now = self._now()
        idle = now - datetime.fromisoformat(row.last_activity)
        # A last activity in the future is no activity at all (a row written by hand).
        if idle > timedelta(minutes=self.policy.idle_timeout_minutes) or idle < -timedelta(
            minutes=1
        ):
            projection.update(
                conn,
                SessionRow,
                {"session_id": session.key},
                dict(ended_at=format_timestamp(now)),
            )
            raise SessionExpired(
                f"the session was idle for more than {self.policy.idle_timeout_minutes} minutes; "
                "log in again with user id and password"
            )
        user_row = self._existing(conn, row.user_id)
        if not user_row.active or user_row.locked:
            raise SessionExpired("the account is no longer usable; the session has ended")
        projection.update(
            conn,
            SessionRow,
            {"session_id": session.key},
            dict(last_activity=format_timestamp(now)),
        )
        return _user(user_row), row

    def _authorise(self, conn: Connection, session: Session, permission: str) -> User:
        user, _ = self.active_session(conn, session)
        if permission not in self.permissions(user):
            raise PermissionDenied(f"{user.user_id} lacks permission {permission!r}")
        return user

    def authorise(self, session: Session, permission: str) -> User:
        """The session's user, if their roles grant ``permission``."""
        with self.db.transaction() as conn:
            return self._authorise(conn, session, permission)

    def _existing(self, conn: Connection, user_id: str) -> Any:
        row = self._row(conn, user_id)
        if row is None:
            raise UserError(f"no user {user_id!r}")
        return row
