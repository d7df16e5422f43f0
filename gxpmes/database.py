"""One database for the application tables and the audit ledger.

The application's changes and their audit entries are written in the same
transaction (``Ledger.append(..., conn=...)``), so a change never exists
without its audit entry, nor an entry without its change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from audit.db import open_engine
from audit.entry import Actor, AuditEvent
from audit.ledger import Ledger
from gxpmes.errors import ConfigurationError, DatabaseError

__all__ = ["SYSTEM", "Database", "check_schema", "upgrade_schema", "utc_now"]

SYSTEM = Actor("system", "gxpmes system")
"""Actor of entries the system itself records (alerts, bootstrap)."""


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def upgrade_schema(engine: Engine) -> None:
    """Run the Alembic migrations to head (serialised between processes)."""
    from gxpmes.migrations import upgrade

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7347812)"))
        upgrade(conn)


def check_schema(engine: Engine, name: str) -> None:
    """Raise :class:`DatabaseError` unless the application schema of ``name`` is at head."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from gxpmes.migrations import HERE

    with engine.connect().execution_options(ledger_read=True) as conn:
        context = MigrationContext.configure(conn, opts={"version_table": "gx_alembic_version"})
        current = context.get_current_revision()
    head = ScriptDirectory(str(HERE)).get_current_head()
    if current is None:
        raise DatabaseError(f"{name} holds no gxpmes schema (create it with gxpmes db upgrade)")
    if current != head:
        raise DatabaseError(
            f"the schema of {name} is at revision {current}, this gxpmes needs {head} "
            "(run gxpmes db upgrade)"
        )


class Database:
    """Engine, ledger and schema of one gxpmes installation."""

    def __init__(
        self,
        url: str | Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        origin: str | None = None,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        """Open the database at ``url`` (an SQLAlchemy URL or an SQLite file path).

        With ``create`` (the default) the ledger and the application schema are
        created or migrated to head. Without it the database must exist at the
        current schema: :class:`~gxpmes.errors.DatabaseError` otherwise, so a
        mistyped path never becomes a new, empty database. ``read_only`` opens
        SQLite with ``mode=ro`` and PostgreSQL in read-only transactions.
        """
        from gxpmes.dbopen import database_errors, display_url, require_database, require_ledger

        if create and read_only:
            raise ConfigurationError("a database opened read-only cannot be created or migrated")
        require_database(url, create=create)
        self.clock = clock
        with database_errors(url):
            self.engine = open_engine(url, read_only=read_only)
            try:
                if not create:
                    require_ledger(self.engine, display_url(url))
                self.ledger = Ledger(self.engine, clock=clock, origin=origin, create=create)
                if create:
                    self._create_schema()
                else:
                    check_schema(self.engine, display_url(url))
            except BaseException:
                self.engine.dispose()
                raise

    def _create_schema(self) -> None:
        upgrade_schema(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE; the ledger locks on PostgreSQL)."""
        with self._write_connection() as conn, conn.begin():
            yield conn

    def _write_connection(self) -> Connection:
        conn = self.engine.connect()
        if conn.dialect.name == "postgresql":
            # Reads after the lock must see what the previous holder committed:
            # READ COMMITTED takes a snapshot per statement, whatever the server's
            # default (under REPEATABLE READ the snapshot would predate the lock wait).
            conn.execution_options(isolation_level="READ COMMITTED")
        return conn

    def read(self) -> Connection:
        """A connection for reading only (no write lock taken on SQLite)."""
        return self.engine.connect().execution_options(ledger_read=True)

    def audit(self, conn: Connection, event: AuditEvent) -> int:
        """Append ``event`` inside ``conn``'s transaction; returns its sequence number."""
        return self.ledger.append(event, conn=conn).seq

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()
