"""Ledger tables (SQLAlchemy 2.0 typed declarative) and the append-only guards.

Every ledger table is insert-only. The database enforces it, not only this
code: triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL), and on
PostgreSQL those privileges are revoked from PUBLIC as well. An application
bug or a hand-typed SQL statement therefore cannot rewrite history; only
someone able to drop the triggers can, and verification catches that.

Inserts are constrained too: an ``audit_entry`` row must carry the next
sequence number (tail + 1), so a bare INSERT can neither leave a gap that
bricks later appends nor slot a row in anywhere but the tail; and an
``audit_tree_head`` row must be for the log's current size. Both checks are
one primary-key probe (``max(seq)``) per row.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "LEDGER_TABLES",
    "Base",
    "BlockRow",
    "CheckpointReceiptRow",
    "CheckpointRow",
    "EntryRow",
    "KeyRevocationRow",
    "KeyRow",
    "LogMetaRow",
    "TreeHeadRow",
    "create_schema",
    "install_append_only_guards",
    "object_key",
]


class Base(DeclarativeBase):
    """Declarative base of the audit package's own tables."""


class LogMetaRow(Base):
    """Log-wide facts written once at creation (the log's origin line)."""

    __tablename__ = "audit_log_meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class EntryRow(Base):
    """One audit entry: its canonical bytes and the Merkle hashes it stores.

    ``canonical`` is the source of truth; ``object_key`` (a 64-bit hash of
    object type and id, see :func:`object_key`) makes one record's trail an
    index lookup — an integer index costs ingest far less than a text one.
    ``leaf_hash`` is the RFC 9162 leaf hash; ``tree_hashes`` holds the
    interior hashes of the subtrees this record completes (32 bytes each,
    level 1 first) — the dense stored-hash layout of :mod:`audit.merkle`.
    """

    __tablename__ = "audit_entry"

    # INTEGER on SQLite makes seq the rowid: one B-tree instead of two.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    object_key: Mapped[int] = mapped_column(BigInteger)
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    tree_hashes: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_audit_entry_object_key", "object_key"),)


class BlockRow(Base):
    """The leaves of one block entry (:mod:`audit.blocks`), joined by newlines.

    ``seq`` is the block entry's sequence number: the entry's canonical bytes
    commit to the leaves' root and count, so the row is checked against it.
    Inserted only for the entry at the log's tail (in the entry's own
    transaction), once; never updated or deleted.
    """

    __tablename__ = "audit_block"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    leaves: Mapped[bytes] = mapped_column(LargeBinary)


def object_key(object_type: str, object_id: str) -> int:
    """Signed 64-bit key of an audited object (BLAKE2b of type and id)."""
    digest = hashlib.blake2b(
        object_type.encode("utf-8", "surrogatepass")
        + b"\0"
        + object_id.encode("utf-8", "surrogatepass"),
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


class CheckpointRow(Base):
    """A signed checkpoint, as issued (a copy kept *outside* the DB is what counts)."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tree_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[str] = mapped_column(String(27))
    note: Mapped[str] = mapped_column(Text)


class CheckpointReceiptRow(Base):
    """A sink's receipt for a checkpoint published outside the database (:mod:`audit.anchoring`).

    One per (checkpoint, sink): ``kind`` says how to read ``data`` (a file
    name, an RFC 3161 TimeStampResp, a witness cosignature). Like the
    checkpoint copy it belongs to, it is information; what counts is what the
    sink itself keeps.
    """

    __tablename__ = "audit_checkpoint_receipt"

    checkpoint_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("audit_checkpoint.id"),
        primary_key=True,
    )
    sink: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[str] = mapped_column(String(27))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class KeyRow(Base):
    """A public checkpoint-signing key with its validity interval (never the private key)."""

    __tablename__ = "audit_key"

    key_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    valid_from: Mapped[str] = mapped_column(String(27))
    valid_until: Mapped[str | None] = mapped_column(String(27), nullable=True)
    registered_at: Mapped[str] = mapped_column(String(27))


class KeyRevocationRow(Base):
    """Revocation of a key: from ``revoked_at`` on, its signatures are not trusted."""

    __tablename__ = "audit_key_revocation"

    key_id: Mapped[str] = mapped_column(String(8), ForeignKey("audit_key.key_id"), primary_key=True)
    revoked_at: Mapped[str] = mapped_column(String(27))
    reason: Mapped[str] = mapped_column(Text)


class TreeHeadRow(Base):
    """The ledger's signed tree head for the tail one write transaction left.

    ``note`` is a signed checkpoint (:mod:`audit.checkpoint`) of the log at
    ``tree_size`` entries, signed by the application's head key when it
    committed. Entries no head covers were not appended by the ledger.
    """

    __tablename__ = "audit_tree_head"

    tree_size: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    note: Mapped[str] = mapped_column(Text)


LEDGER_TABLES: tuple[str, ...] = (
    "audit_log_meta",
    "audit_entry",
    "audit_checkpoint",
    "audit_checkpoint_receipt",
    "audit_key",
    "audit_key_revocation",
    "audit_tree_head",
    "audit_block",
)

SEQ_REFUSED = "not the tail + 1"
"""Marker in the database's message when it refuses an out-of-place audit_entry row."""

HEAD_REFUSED = "not the current log size"
"""Marker in the database's message when it refuses an audit_tree_head row."""

BLOCK_REFUSED = "not the last entry"
"""Marker in the database's message when it refuses an audit_block row."""

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION gxpmes_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'append-only audit table %: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


# A row is accepted only for the tail: an entry's seq, and a tree head's size,
# must equal max(seq) + 1 (0 when empty): "seq 0 only into an empty table,
# else seq - 1 exists and nothing >= seq does", as one primary-key probe.
# On PostgreSQL the table is schema-qualified, so a TEMP table of the same
# name (searched first) cannot stand in for it.
_TAIL_GUARDS = {
    # table: (trigger, column, message marker, what it must equal: max(seq) + offset)
    "audit_entry": ("audit_entry_at_tail", "seq", SEQ_REFUSED, 1),
    "audit_tree_head": ("audit_tree_head_at_tail", "tree_size", HEAD_REFUSED, 1),
    # A block's leaves go in right after their entry: only for the last entry.
    "audit_block": ("audit_block_at_tail", "seq", BLOCK_REFUSED, 0),
}

_PG_TAIL_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.{trigger}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.{column} IS DISTINCT FROM
            coalesce((SELECT max(seq) FROM {schema}.audit_entry), -1) + {offset} THEN
        RAISE EXCEPTION '{table}: row refused, {column} % is {marker}', NEW.{column}
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$
"""


def _install_tail_guards(conn: Connection, tables: tuple[str, ...], present: set[str]) -> None:
    """Refuse ledger rows that are not for the log's tail (entries and tree heads)."""
    schema = ""
    if conn.dialect.name == "postgresql":
        current = conn.scalar(text("SELECT current_schema()"))
        schema = conn.dialect.identifier_preparer.quote(str(current))
    for table, (trigger, column, marker, offset) in _TAIL_GUARDS.items():
        if table not in tables or trigger in present:
            continue
        if schema:
            conn.execute(
                text(
                    _PG_TAIL_FUNCTION.format(
                        schema=schema,
                        trigger=trigger,
                        table=table,
                        column=column,
                        marker=marker,
                        offset=offset,
                    )
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER {trigger} BEFORE INSERT ON {schema}.{table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {schema}.{trigger}()"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE TRIGGER {trigger} BEFORE INSERT ON {table} "
                    f"WHEN NEW.{column} IS NOT "
                    f"coalesce((SELECT max(seq) FROM audit_entry), -1) + {offset}"
                    f" BEGIN SELECT RAISE(ABORT, '{table}: row refused, {column} is {marker}'); END"
                )
            )


def install_append_only_guards(conn: Connection, tables: tuple[str, ...] = LEDGER_TABLES) -> None:
    """Install the triggers (and on PostgreSQL the REVOKEs) that make ``tables`` insert-only.

    For the ledger's own ``audit_entry`` and ``audit_tree_head`` it also
    installs the triggers that accept a row only at the log's tail. Idempotent:
    guards already present are left alone, missing ones are added (so an
    existing database gets new guards when it is next opened for writing).
    Usable for tables of other packages that must be append-only too.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        present = set(
            conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars()
        )
        _install_tail_guards(conn, tables, present)
        if not all(f"{t}_append_only" in present and f"{t}_no_truncate" in present for t in tables):
            conn.execute(text(_PG_FUNCTION))
        for table in tables:
            if f"{table}_append_only" not in present:
                conn.execute(
                    text(
                        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                        "FOR EACH ROW EXECUTE FUNCTION gxpmes_audit_refuse_change()"
                    )
                )
            if f"{table}_no_truncate" not in present:
                conn.execute(
                    text(
                        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION gxpmes_audit_refuse_change()"
                    )
                )
                conn.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC"))
    elif dialect == "sqlite":
        present = set(
            conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
        )
        _install_tail_guards(conn, tables, present)
        for table in tables:
            for op in ("UPDATE", "DELETE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} "
                        f"BEFORE {op} ON {table} BEGIN "
                        f"SELECT RAISE(ABORT, 'append-only audit table {table}: {op} refused'); "
                        "END"
                    )
                )
    else:  # pragma: no cover - guarded by the engine factory
        raise NotImplementedError(f"no append-only guards for dialect {dialect}")


def grant_append_only(engine: Engine, role: str, tables: tuple[str, ...] = LEDGER_TABLES) -> None:
    """PostgreSQL: let ``role`` read and insert into the ledger tables, and nothing more."""
    if engine.dialect.name != "postgresql":
        raise NotImplementedError("roles and privileges exist on PostgreSQL only")
    quoted = engine.dialect.identifier_preparer.quote(role)
    with engine.begin() as conn:
        for table in tables:
            conn.execute(text(f"GRANT SELECT, INSERT ON {table} TO {quoted}"))
            conn.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {quoted}"))
        conn.execute(text(f"GRANT USAGE ON SEQUENCE audit_checkpoint_id_seq TO {quoted}"))


# Serialises schema set-up between processes opening the same PostgreSQL database.
_PG_SCHEMA_LOCK = 0x67786D6573 + 1


def create_schema(engine: Engine) -> None:
    """Create the ledger tables if missing and install their append-only guards.

    Safe when several processes open the same database at once.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
        Base.metadata.create_all(conn)
        install_append_only_guards(conn)
