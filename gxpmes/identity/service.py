"""Users, roles, authentication, sessions and lockout (21 CFR 11.10(d), (g), 11.300).

Every action here writes an audit entry in the same transaction. Passwords
and hashes never appear in entries, logs or exception messages.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

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
from gxpmes.identity.passwords import PasswordHasher, PasswordPolicy
from gxpmes.identity.schema import PasswordHistoryRow, SessionRow, UserRow
from gxpmes.records import writer as projection

__all__ = ["DEFAULT_ROLES", "IdentityService", "Session", "User"]

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
    "Administrator": frozenset({"user.manage", "user.unlock"}),
    # A service or device account (an OT connector): delivers captured values, nothing else.
    "OT Device": frozenset({"capture.device"}),
}
"""Role → permissions. ``sign.<Meaning>`` lets a role sign with that meaning; an
Administrator manages accounts but signs nothing unless given another role."""


@dataclass(frozen=True)
class User:
    """A user account as stored (without its password hash)."""

    user_id: str
    printed_name: str
    roles: frozenset[str]
    active: bool
    locked: bool
    failed_attempts: int

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
    return User(row.user_id, row.printed_name, roles, row.active, row.locked, row.failed_attempts)


class IdentityService:
    """User administration and authentication over a :class:`Database`."""

    def __init__(
        self,
        db: Database,
        *,
        policy: PasswordPolicy | None = None,
        hasher: PasswordHasher | None = None,
        roles: Mapping[str, frozenset[str]] = DEFAULT_ROLES,
    ) -> None:
        self.db = db
        self.policy = policy or PasswordPolicy()
        self.hasher = hasher or PasswordHasher()
        self.roles = dict(roles)
        # A hash to verify against when the user id is unknown, so timing does
        # not reveal which user ids exist.
        self._decoy = self.hasher.hash(secrets.token_urlsafe(16))

    # -------------------------------------------------------------- helpers

    def _now(self) -> datetime:
        return self.db.clock()

    def _row(self, conn: Connection, user_id: str) -> Any:
        return conn.execute(select(UserRow).where(UserRow.user_id == user_id)).one_or_none()

    def user(self, user_id: str) -> User:
        """The account ``user_id``."""
        with self.db.read() as conn:
            row = self._row(conn, user_id)
        if row is None:
            raise UserError(f"no user {user_id!r}")
        return _user(row)

    def permissions(self, user: User) -> frozenset[str]:
        """Every permission the user's roles grant."""
        granted: set[str] = set()
        for role in user.roles:
            granted |= self.roles.get(role, frozenset())
        return frozenset(granted)

    def _check_roles(self, roles: Iterable[str]) -> list[str]:
        chosen = sorted(set(roles))
        unknown = [r for r in chosen if r not in self.roles]
        if unknown:
            raise UserError(f"unknown role(s): {', '.join(unknown)}")
        return chosen

    # --------------------------------------------------------- administration

    def bootstrap_admin(self, user_id: str, printed_name: str, password: str) -> User:
        """Create the first Administrator; refused once any user exists."""
        with self.db.transaction() as conn:
            if conn.execute(select(UserRow.user_id).limit(1)).first() is not None:
                raise UserError("users exist already; create further users as an administrator")
            self._insert_user(
                conn,
                SYSTEM,
                user_id,
                printed_name,
                ["Administrator"],
                password,
                "installation: first administrator",
            )
        return self.user(user_id)

    def create_user(
        self,
        by: Session,
        user_id: str,
        printed_name: str,
        roles: Iterable[str],
        initial_password: str,
        *,
        reason: str = "new account",
    ) -> User:
        """Create an account. User ids are never reused, even after deactivation."""
        with self.db.transaction() as conn:
            admin = self._authorise(conn, by, "user.manage")
            self._insert_user(
                conn, admin.actor, user_id, printed_name, roles, initial_password, reason
            )
        return self.user(user_id)

    def _insert_user(
        self,
        conn: Connection,
        actor: Actor,
        user_id: str,
        printed_name: str,
        roles: Iterable[str],
        password: str,
        reason: str,
    ) -> None:
        if not user_id or not user_id.strip() or len(user_id) > 64 or user_id != user_id.strip():
            raise UserError(f"invalid user id {user_id!r}")
        if not printed_name or not printed_name.strip():
            raise UserError("a user needs a printed name (shown on every signature)")
        if self._row(conn, user_id) is not None:
            raise UserError(f"user id {user_id!r} exists or existed; user ids are never reused")
        chosen = self._check_roles(roles)
        self.policy.check(password, user_id)
        now = format_timestamp(self._now())
        hashed = self.hasher.hash(password)
        projection.insert(
            conn,
            UserRow,
            dict(
                user_id=user_id,
                printed_name=printed_name,
                roles="\n".join(chosen),
                active=True,
                password_hash=hashed,
                password_set_at=now,
                failed_attempts=0,
                locked=False,
                created_at=now,
            ),
        )
        projection.insert(
            conn, PasswordHistoryRow, dict(user_id=user_id, password_hash=hashed, set_at=now)
        )
        self.db.audit(
            conn,
            AuditEvent(
                actor,
                "user.create",
                "user",
                user_id,
                new={"printed_name": printed_name, "roles": chosen},
                reason=reason,
            ),
        )

    def set_roles(self, by: Session, user_id: str, roles: Iterable[str], *, reason: str) -> User:
        """Change a user's roles (audited with old and new roles and the reason)."""
        with self.db.transaction() as conn:
            admin = self._authorise(conn, by, "user.manage")
            row = self._existing(conn, user_id)
            chosen = self._check_roles(roles)
            old = sorted(_user(row).roles)
            projection.update(conn, UserRow, {"user_id": user_id}, dict(roles="\n".join(chosen)))
            self.db.audit(
                conn,
                AuditEvent(
                    admin.actor,
                    "user.roles",
                    "user",
                    user_id,
                    old={"roles": old},
                    new={"roles": chosen},
                    reason=reason,
                    requires_reason=True,
                ),
            )
        return self.user(user_id)

    def deactivate(self, by: Session, user_id: str, *, reason: str) -> User:
        """Deactivate an account (it is kept, with its history and signatures)."""
        with self.db.transaction() as conn:
            admin = self._authorise(conn, by, "user.manage")
            self._existing(conn, user_id)
            if user_id == admin.user_id:
                raise UserError("administrators cannot deactivate their own account")
            projection.update(conn, UserRow, {"user_id": user_id}, dict(active=False))
            conn.execute(
                update(SessionRow)
                .where(SessionRow.user_id == user_id, SessionRow.ended_at.is_(None))
                .values(ended_at=format_timestamp(self._now()))
            )
            self.db.audit(
                conn,
                AuditEvent(
                    admin.actor,
                    "user.deactivate",
                    "user",
                    user_id,
                    old={"active": True},
                    new={"active": False},
                    reason=reason,
                    requires_reason=True,
                ),
            )
        return self.user(user_id)

    def unlock(self, by: Session, user_id: str, *, reason: str) -> User:
        """Unlock a locked account; only an administrator, always with a reason."""
        with self.db.transaction() as conn:
            admin = self._authorise(conn, by, "user.unlock")
            self._existing(conn, user_id)
            projection.update(
                conn, UserRow, {"user_id": user_id}, dict(locked=False, failed_attempts=0)
            )
            self.db.audit(
                conn,
                AuditEvent(
                    admin.actor,
                    "user.unlock",
                    "user",
                    user_id,
                    old={"locked": True},
                    new={"locked": False},
                    reason=reason,
                    requires_reason=True,
                ),
            )
        return self.user(user_id)

    def change_password(self, user_id: str, old_password: str, new_password: str) -> None:
        """Change one's own password: policy and history are enforced."""
        self.verify_password(user_id, old_password, purpose="password change")
        self.policy.check(new_password, user_id)
        with self.db.transaction() as conn:
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
            if any(self.hasher.verify(new_password, old) for old in history):
                raise PasswordPolicyError(
                    f"the new password must differ from the last {self.policy.history} passwords"
                )
            now = format_timestamp(self._now())
            hashed = self.hasher.hash(new_password)
            projection.update(
                conn, UserRow, {"user_id": user_id}, dict(password_hash=hashed, password_set_at=now)
            )
            projection.insert(
                conn, PasswordHistoryRow, dict(user_id=user_id, password_hash=hashed, set_at=now)
            )
            row = self._existing(conn, user_id)
            self.db.audit(
                conn,
                AuditEvent(
                    _user(row).actor,
                    "user.password_change",
                    "user",
                    user_id,
                    reason="password changed by its owner",
                ),
            )

    # ---------------------------------------------------------- authentication

    def verify_password(self, user_id: str, password: str, *, purpose: str) -> User:
        """Check both components; counts failures, locks and alerts after too many.

        Raises :class:`AuthenticationError` (never saying whether the id or the
        password was wrong) or :class:`AccountLocked`.
        """
        failure: AuthenticationError | None = None
        with self.db.transaction() as conn:
            row = self._row(conn, user_id)
            if row is None:
                self.hasher.verify(password, self._decoy)
                self.db.audit(
                    conn,
                    AuditEvent(
                        SYSTEM,
                        "auth.failure",
                        "user",
                        user_id or "?",
                        new={"purpose": purpose, "cause": "unknown user id"},
                    ),
                )
                failure = AuthenticationError("user id or password is wrong")
            elif row.locked:
                self.db.audit(
                    conn,
                    AuditEvent(
                        SYSTEM, "auth.refused_locked", "user", user_id, new={"purpose": purpose}
                    ),
                )
                failure = AccountLocked(
                    f"account {user_id!r} is locked; an administrator must unlock it"
                )
            elif not row.active:
                self.db.audit(
                    conn,
                    AuditEvent(
                        SYSTEM, "auth.refused_inactive", "user", user_id, new={"purpose": purpose}
                    ),
                )
                failure = AuthenticationError("user id or password is wrong")
            elif not self.hasher.verify(password, row.password_hash):
                attempts = row.failed_attempts + 1
                locked = attempts >= self.policy.max_failed_attempts
                projection.update(
                    conn,
                    UserRow,
                    {"user_id": user_id},
                    dict(failed_attempts=attempts, locked=locked),
                )
                self.db.audit(
                    conn,
                    AuditEvent(
                        SYSTEM,
                        "auth.failure",
                        "user",
                        user_id,
                        new={"purpose": purpose, "consecutive_failures": attempts},
                    ),
                )
                if locked:
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
                    failure = AccountLocked(
                        f"account {user_id!r} is now locked after {attempts} failures"
                    )
                else:
                    failure = AuthenticationError("user id or password is wrong")
            else:
                if row.failed_attempts:
                    projection.update(conn, UserRow, {"user_id": user_id}, dict(failed_attempts=0))
                    self.db.audit(
                        conn,
                        AuditEvent(
                            SYSTEM,
                            "auth.failures_reset",
                            "user",
                            user_id,
                            old={"consecutive_failures": row.failed_attempts},
                            new={"purpose": purpose, "consecutive_failures": 0},
                        ),
                    )
                return _user(row)
        assert failure is not None
        raise failure

    def password_expired(self, user_id: str) -> bool:
        """True when the password is older than the policy allows."""
        if self.policy.max_age_days is None:
            return False
        with self.db.read() as conn:
            row = self._existing(conn, user_id)
        set_at = datetime.fromisoformat(row.password_set_at)
        return self._now() - set_at > timedelta(days=self.policy.max_age_days)

    def login(self, user_id: str, password: str, *, client_tz: str = "UTC") -> Session:
        """Start a session with both components (user id and password)."""
        user = self.verify_password(user_id, password, purpose="login")
        if self.password_expired(user_id):
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
