"""Tables of users, password history, sessions, user signing keys and e-signatures."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Connection, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AccountChangeRow",
    "AppBase",
    "AuthPendingRow",
    "PasswordHistoryRow",
    "SessionRow",
    "SignatureRow",
    "UserKeyRow",
    "UserRow",
    "install_identity_guards",
]


class AppBase(DeclarativeBase):
    """Declarative base of gxpmes' application tables."""


class UserRow(AppBase):
    """A user account. Ids are unique forever: rows are deactivated, never deleted."""

    __tablename__ = "gx_user"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    printed_name: Mapped[str] = mapped_column(String(256))
    roles: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(Text)
    password_set_at: Mapped[str] = mapped_column(String(40))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[str] = mapped_column(String(40))
    password_issued_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The administrator who issued the current password (a one-time password the
    account must replace before anything else); NULL once the owner set their own."""


class AuthPendingRow(AppBase):
    """A password check in progress: counted against the lockout limit until it ends.

    Not a GMP record (see :data:`gxpmes.records.tables.NOT_PROJECTED`): the
    outcome of every check is an audit entry of its own.
    """

    __tablename__ = "gx_auth_pending"

    check_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[str] = mapped_column(String(40))


class AccountChangeRow(AppBase):
    """A signed change of someone's account by an administrator (roles, unlock, reset...).

    The row is the record the administrator's e-signature covers.
    """

    __tablename__ = "gx_account_change"

    change_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    old: Mapped[str] = mapped_column(Text)
    new: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[str] = mapped_column(String(40))


class PasswordHistoryRow(AppBase):
    """Earlier password hashes, to refuse re-use (append-only)."""

    __tablename__ = "gx_password_history"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    password_hash: Mapped[str] = mapped_column(Text)
    set_at: Mapped[str] = mapped_column(String(40))


class SessionRow(AppBase):
    """An authenticated session; ``signed`` once a two-component signing happened in it."""

    __tablename__ = "gx_session"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[str] = mapped_column(String(40))
    last_activity: Mapped[str] = mapped_column(String(40))
    ended_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    signed: Mapped[bool] = mapped_column(Boolean, default=False)


class UserKeyRow(AppBase):
    """A user's own Ed25519 signing key (digital-signature mode), encrypted with their password."""

    __tablename__ = "gx_user_key"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    encrypted_private_key: Mapped[bytes] = mapped_column(LargeBinary)


class SignatureRow(AppBase):
    """An electronic signature: the manifestation, bound to the hash of what was signed."""

    __tablename__ = "gx_signature"

    signature_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(128))
    record_id: Mapped[str] = mapped_column(String(512))
    scope: Mapped[str] = mapped_column(String(512), index=True)
    signer_id: Mapped[str] = mapped_column(String(64))
    meaning: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[str] = mapped_column(Text)
    system_key_id: Mapped[str] = mapped_column(String(16))
    system_signature: Mapped[bytes] = mapped_column(LargeBinary)
    user_public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    user_signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    created_order: Mapped[int] = mapped_column(BigInteger, index=True)


APPEND_ONLY_TABLES = ("gx_password_history", "gx_signature", "gx_account_change")


def install_identity_guards(conn: Connection) -> None:
    """Make signatures and password history insert-only, and users undeletable."""
    from sqlalchemy import inspect

    from audit.schema import install_append_only_guards

    # Tables a later revision creates get their guards there.
    present = set(inspect(conn).get_table_names())
    install_append_only_guards(conn, tuple(t for t in APPEND_ONLY_TABLES if t in present))
    if conn.dialect.name == "sqlite":
        conn.execute(
            text(
                "CREATE TRIGGER IF NOT EXISTS gx_user_no_delete BEFORE DELETE ON gx_user BEGIN "
                "SELECT RAISE(ABORT, 'user accounts are deactivated, never deleted'); END"
            )
        )
    else:
        present = set(conn.execute(text("SELECT tgname FROM pg_trigger")).scalars())
        if "gx_user_no_delete" not in present:
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION gx_refuse_user_delete() RETURNS trigger "
                    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                    "'user accounts are deactivated, never deleted'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER gx_user_no_delete BEFORE DELETE ON gx_user "
                    "FOR EACH ROW EXECUTE FUNCTION gx_refuse_user_delete()"
                )
            )
