"""Signed account administration (21 CFR 11.10(d), (g), 11.300(b); EU GMP Annex 11 §12).

Every change of someone's account — creation with its roles, a role grant, an
unlock, a deactivation, a password reset — is made in an administrator's
session, with their password again (an e-signature of meaning ``Authorised``),
a reason, and an audit entry. The change is a row of ``gx_account_change``
(a projection of the log like every GMP table); the administrator's
signature covers exactly that row, so ``gxpmes verify`` re-checks it.

Rules checked before anything is written:

* nobody changes their own account or roles;
* roles granted together must not conflict (the installation's
  :class:`~gxpmes.identity.duties.DutyMatrix`);
* a password an administrator issues (at creation or reset) is one-time:
  the account can only use it to set its own
  (:meth:`~gxpmes.identity.service.IdentityService.change_password`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select, update

from audit.canonical import canonicalize, format_timestamp
from audit.entry import AuditEvent
from gxpmes.errors import (
    GxpError,
    PasswordPolicyError,
    SeparationOfDutiesError,
    SignatureError,
    UserError,
)
from gxpmes.identity.names import normalise_user_id
from gxpmes.identity.schema import (
    AccountChangeRow,
    PasswordHistoryRow,
    SessionRow,
    UserKeyRow,
    UserRow,
)
from gxpmes.identity.service import User, _user
from gxpmes.identity.signatures import Credentials, Meaning, SignableRecord, SignatureService
from gxpmes.records import writer as projection

__all__ = ["ACCOUNT_CHANGE", "AccountAdministration", "account_change_record"]

ACCOUNT_CHANGE = "account_change"
"""Record type of the signed account changes."""


def account_change_record(row: Any) -> SignableRecord:
    """The record an administrator signs: the ``gx_account_change`` row, every column."""
    content = {
        "change_id": row.change_id,
        "user_id": row.user_id,
        "action": row.action,
        "old": json.loads(row.old),
        "new": json.loads(row.new),
        "reason": row.reason,
        "changed_by": row.changed_by,
        "changed_at": row.changed_at,
    }
    return SignableRecord(
        ACCOUNT_CHANGE, row.change_id, content, signable_scope=f"account:{row.user_id}"
    )


def refuse_own_account(admin: User, user_id: str) -> None:
    """Nobody changes their own account or roles (an administrator included)."""
    if user_id == admin.user_id:
        raise SeparationOfDutiesError(
            f"separation of duties: {admin.user_id} cannot change their own account or roles"
        )


class AccountAdministration:
    """Account changes, each signed by the administrator making it."""

    def __init__(self, signatures: SignatureService) -> None:
        self.signatures = signatures
        self.identity = signatures.identity
        self.db = signatures.db

    # -------------------------------------------------------------- changes

    def create_user(
        self,
        by: Credentials,
        user_id: str,
        printed_name: str,
        roles: Iterable[str],
        initial_password: str,
        *,
        reason: str = "new account",
    ) -> User:
        """Create an account with a one-time password; ids are never reused."""
        chosen = sorted(set(roles))

        def change(conn: Connection, admin: User) -> tuple[str, Any, Any]:
            stored, granted = self.identity._insert_user(
                conn, user_id, printed_name, chosen, initial_password, issued_by=admin.user_id
            )
            return stored, None, {"printed_name": printed_name, "roles": granted}

        return self._change(by, "user.create", user_id, "user.manage", reason, change)

    def set_roles(
        self, by: Credentials, user_id: str, roles: Iterable[str], *, reason: str
    ) -> User:
        """Grant or withdraw roles (conflicting roles refused)."""
        chosen = sorted(set(roles))

        def change(conn: Connection, admin: User) -> tuple[str, Any, Any]:
            row = self._other(conn, admin, user_id)
            granted = self.identity._check_roles(row.user_id, chosen)
            old = sorted(_user(row).roles)
            projection.update(
                conn, UserRow, {"user_id": row.user_id}, dict(roles="\n".join(granted))
            )
            return row.user_id, {"roles": old}, {"roles": granted}

        return self._change(by, "user.roles", user_id, "user.manage", reason, change)

    def unlock(self, by: Credentials, user_id: str, *, reason: str) -> User:
        """Unlock a locked account (its failure count starts again)."""

        def change(conn: Connection, admin: User) -> tuple[str, Any, Any]:
            row = self._other(conn, admin, user_id)
            projection.update(
                conn, UserRow, {"user_id": row.user_id}, dict(locked=False, failed_attempts=0)
            )
            old = {"locked": bool(row.locked), "consecutive_failures": row.failed_attempts}
            return row.user_id, old, {"locked": False, "consecutive_failures": 0}

        return self._change(by, "user.unlock", user_id, "user.unlock", reason, change)

    def deactivate(self, by: Credentials, user_id: str, *, reason: str) -> User:
        """Deactivate an account (kept, with its history and signatures); ends its sessions."""

        def change(conn: Connection, admin: User) -> tuple[str, Any, Any]:
            row = self._other(conn, admin, user_id)
            projection.update(conn, UserRow, {"user_id": row.user_id}, dict(active=False))
            conn.execute(
                update(SessionRow)
                .where(SessionRow.user_id == row.user_id, SessionRow.ended_at.is_(None))
                .values(ended_at=format_timestamp(self.db.clock()))
            )
            return row.user_id, {"active": bool(row.active)}, {"active": False}

        return self._change(by, "user.deactivate", user_id, "user.manage", reason, change)

    def reset_password(
        self, by: Credentials, user_id: str, temporary_password: str, *, reason: str
    ) -> User:
        """Issue a one-time password (e.g. a forgotten one); the personal signing key,
        wrapped under the lost password, is withdrawn (the owner enrols a new one)."""

        def change(conn: Connection, admin: User) -> tuple[str, Any, Any]:
            row = self._other(conn, admin, user_id)
            self.identity.policy.check(temporary_password, row.user_id)
            history = conn.scalars(
                select(PasswordHistoryRow.password_hash)
                .where(PasswordHistoryRow.user_id == row.user_id)
                .order_by(PasswordHistoryRow.id.desc())
                .limit(self.identity.policy.history)
            ).all()
            if any(self.identity.hasher.verify(temporary_password, h) for h in history):
                raise PasswordPolicyError(
                    "the issued password must differ from the account's recent passwords"
                )
            now = format_timestamp(self.db.clock())
            hashed = self.identity.hasher.hash(temporary_password)
            projection.update(
                conn,
                UserRow,
                {"user_id": row.user_id},
                dict(password_hash=hashed, password_set_at=now, password_issued_by=admin.user_id),
            )
            projection.insert(
                conn,
                PasswordHistoryRow,
                dict(user_id=row.user_id, password_hash=hashed, set_at=now),
            )
            had_key = conn.scalar(
                select(UserKeyRow.user_id).where(UserKeyRow.user_id == row.user_id)
            )
            if had_key is not None:
                projection.delete(conn, UserKeyRow, {"user_id": row.user_id})
            conn.execute(
                update(SessionRow)
                .where(SessionRow.user_id == row.user_id, SessionRow.ended_at.is_(None))
                .values(ended_at=now)
            )
            return (
                row.user_id,
                {"one_time": row.password_issued_by is not None},
                {"one_time": True, "signing_key_withdrawn": had_key is not None},
            )

        return self._change(by, "user.password_reset", user_id, "user.manage", reason, change)

    # -------------------------------------------------------------- helpers

    def _other(self, conn: Connection, admin: User, user_id: str) -> Any:
        """The account ``user_id``, which must not be the administrator's own."""
        try:
            stored = normalise_user_id(user_id)
        except UserError:
            raise UserError(f"no user {user_id!r}") from None
        row = self.identity._existing(conn, stored)
        refuse_own_account(admin, row.user_id)
        return row

    def _change(
        self,
        by: Credentials,
        action: str,
        user_id: str,
        permission: str,
        reason: str,
        change: Any,
    ) -> User:
        """Authenticate the administrator's signature, apply ``change`` and sign its row,
        all in one transaction; a refusal is audited and leaves nothing written."""
        preview = SignableRecord(
            ACCOUNT_CHANGE, f"{action}:{user_id}", {"user_id": user_id, "action": action}
        )
        # A missing or blank reason is refused by the audit entry itself
        # (requires_reason): the transaction then writes nothing.
        if by.session is None:
            exc2 = SignatureError(
                "account changes are signed in an administrator's session (credentials "
                "with the session)"
            )
            self.signatures.audit_refusal(preview, Meaning.AUTHORISED, by.user_id, exc2)
            raise exc2
        try:
            self.identity.authorise(by.session, permission)
        except GxpError as exc3:
            self.signatures.audit_refusal(preview, Meaning.AUTHORISED, by.user_id, exc3)
            raise
        signer = self.signatures.authenticate(by, Meaning.AUTHORISED, preview)
        try:
            with self.db.transaction() as conn:
                admin = self.identity._authorise(conn, by.session, permission)
                if admin.user_id != signer.user.user_id:
                    raise SignatureError("the signature is not by the session's administrator")
                stored_id, old, new = change(conn, admin)
                change_id = str(uuid.uuid4())
                # Built first: a missing or blank reason is refused here, before the row.
                event = AuditEvent(
                    admin.actor,
                    action,
                    "user",
                    stored_id,
                    old=old,
                    new={**(new or {}), "change_id": change_id},
                    reason=reason,
                    requires_reason=True,
                    client_tz=by.session.client_tz,
                )
                projection.insert(
                    conn,
                    AccountChangeRow,
                    dict(
                        change_id=change_id,
                        user_id=stored_id,
                        action=action,
                        old=canonicalize(old).decode(),
                        new=canonicalize(new).decode(),
                        reason=reason,
                        changed_by=admin.user_id,
                        changed_at=format_timestamp(self.db.clock()),
                    ),
                )
                self.db.audit(conn, event)
                row = conn.execute(
                    select(AccountChangeRow).where(AccountChangeRow.change_id == change_id)
                ).one()
                self.signatures.sign_in(conn, signer, account_change_record(row), reason=reason)
        except GxpError as exc:
            self.signatures.audit_refusal(preview, Meaning.AUTHORISED, by.user_id, exc)
            raise
        return self.identity.user(stored_id)
