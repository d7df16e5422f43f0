"""Which tables are projections of the log, and how their cells are written in entries.

A :class:`TableSpec` is read off the SQLAlchemy table, so a column added by a
migration is projected without a second list to keep in step. Cells become
JSON-safe values in a row image: text and numbers as they are, booleans as
booleans, bytes as lowercase hex. *Secret* columns (password hashes, wrapped
private keys) are not copied into the log — an exported trail must not become
a password oracle — but their SHA-256, so a changed secret is still caught.
A *seq column* holds the sequence number of the entry that wrote the row; it
is filled from that entry, never carried inside it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, LargeBinary, Table

__all__ = [
    "NOT_PROJECTED",
    "TableSpec",
    "cell",
    "projected",
    "secret_digest",
]

# Columns kept out of entries as their digest only (see module docstring).
_SECRETS: dict[str, frozenset[str]] = {
    "gx_user": frozenset({"password_hash"}),
    "gx_password_history": frozenset({"password_hash"}),
    "gx_user_key": frozenset({"encrypted_private_key"}),
}
_SEQ_COLUMNS: dict[str, str] = {"ebr_value": "seq", "gx_signature": "audit_seq"}

NOT_PROJECTED: dict[str, str] = {
    "gx_session": "login bookkeeping (idle time, signing flag); logins and logouts are "
    "audit entries of their own, but a session row is not part of any GMP record",
    "gx_auth_pending": "password checks in progress, counted against the lockout limit; "
    "each check's outcome (failure, lock, alert) is an audit entry of its own",
}
"""Application tables that are deliberately not projections, and why."""


def secret_digest(value: str | bytes | None) -> str | None:
    """What a row image holds for a secret cell: ``sha256:<hex>`` of its bytes."""
    if value is None:
        return None
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:  # a number stored in a secret column: never what was written, digest its text
        data = repr(value).encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class TableSpec:
    """How one projected table is keyed and how its cells appear in a row image."""

    name: str
    table: Table
    key: tuple[str, ...]
    columns: tuple[str, ...]
    binary: frozenset[str]
    boolean: frozenset[str]
    secret: frozenset[str]
    seq_column: str | None
    batch_column: str | None
    """The column naming the batch a row belongs to (for ``verify --batch``)."""

    def image(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-safe image of a database row (every column, secrets as digests)."""
        return {name: cell(self, name, row[name]) for name in self.columns}

    def key_of(self, image: Mapping[str, Any]) -> tuple[Any, ...]:
        """The primary-key tuple of a row image."""
        return tuple(image[k] for k in self.key)


def cell(spec: TableSpec, name: str, value: Any) -> Any:
    """One cell in row-image form.

    A cell of the wrong type (text in a flag or bytes column, which SQLite
    keeps as given) is never normalised into a valid image: it stays as
    found, so it differs from the image the log holds.
    """
    if value is None:
        return None
    if name in spec.secret:
        return secret_digest(value)
    if name in spec.binary:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).hex()
        return f"(not bytes) {value!r}"
    if name in spec.boolean and (value is True or value is False or value in (0, 1)):
        return bool(value)
    return value


def _spec(table: Table) -> TableSpec:
    columns = tuple(c.name for c in table.columns)
    batch_column = next((c for c in ("batch_id", "scope") if c in columns), None)
    return TableSpec(
        name=table.name,
        table=table,
        key=tuple(c.name for c in table.primary_key.columns),
        columns=columns,
        binary=frozenset(c.name for c in table.columns if isinstance(c.type, LargeBinary)),
        boolean=frozenset(c.name for c in table.columns if isinstance(c.type, Boolean)),
        secret=_SECRETS.get(table.name, frozenset()),
        seq_column=_SEQ_COLUMNS.get(table.name),
        batch_column=batch_column,
    )


@functools.cache
def projected() -> dict[str, TableSpec]:
    """Every application table that is rebuilt from the log, by name."""
    # Imported here: the schemas import the identity package, which needs the database module.
    import gxpmes.ebr.schema
    import gxpmes.erp.schema  # noqa: F401  (the ERP exchange, planned batches, materials)
    from gxpmes.identity.schema import AppBase

    return {
        name: _spec(table)
        for name, table in sorted(AppBase.metadata.tables.items())
        if name not in NOT_PROJECTED
    }
