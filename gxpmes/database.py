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

__all__ = ["SYSTEM", "Database", "upgrade_schema", "utc_now"]

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


class Database:
    """Engine, ledger and schema of one gxpmes installation."""

    def __init__(
        self,
        url: str | Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        origin: str | None = None,
    ) -> None:
        self.engine = open_engine(url)
        self.clock = clock
        self.ledger = Ledger(self.engine, clock=clock, origin=origin)
        self._create_schema()

    def _create_schema(self) -> None:
        upgrade_schema(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE; the ledger locks on PostgreSQL)."""
        with self.engine.begin() as conn:
            yield conn

    def read(self) -> Connection:
        """A connection for reading only (no write lock taken on SQLite)."""
        return self.engine.connect().execution_options(ledger_read=True)

    def audit(self, conn: Connection, event: AuditEvent) -> int:
        """Append ``event`` inside ``conn``'s transaction; returns its sequence number."""
        return self.ledger.append(event, conn=conn).seq

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()
