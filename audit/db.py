"""Engines for the ledger: durable SQLite by default, PostgreSQL for production.

SQLite runs in WAL mode with ``synchronous=FULL`` so that a committed append
survives power loss, and write transactions start with ``BEGIN IMMEDIATE`` so
two appenders serialise on the write lock instead of deadlocking on upgrade.
A read-only engine opens the file with ``mode=ro`` and never writes, which is
how QA verifies a copy of a trail.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from audit.errors import StorageError

__all__ = ["fetch_one", "normalise_url", "open_engine"]

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def normalise_url(url_or_path: str | Path) -> str:
    """Accept an SQLAlchemy URL or a plain path to an SQLite file."""
    text = str(url_or_path)
    if "://" in text:
        try:
            url = make_url(text)
        except ArgumentError as exc:
            raise StorageError(f"not a database URL: {text!r}") from exc
        if url.get_backend_name() not in SUPPORTED_DIALECTS:
            raise StorageError(f"unsupported database {url.get_backend_name()!r}")
        if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_read_only_creator(path: str) -> Any:
    def connect() -> sqlite3.Connection:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)

    return connect


def open_engine(url_or_path: str | Path, *, read_only: bool = False, echo: bool = False) -> Engine:
    """Create an engine configured for the ledger (pragmas, locking, read-only mode)."""
    url = make_url(normalise_url(url_or_path))
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            raise StorageError("the ledger needs an SQLite file, not an in-memory database")
        if read_only:
            if not Path(database).exists():
                raise StorageError(f"no such SQLite file: {database}")
            engine = create_engine(
                "sqlite://", creator=_sqlite_read_only_creator(database), echo=echo
            )
        else:
            engine = create_engine(url, echo=echo, connect_args={"timeout": 60})
        _configure_sqlite(engine, read_only=read_only)
        return engine
    options: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
    if read_only:
        options["execution_options"] = {"postgresql_readonly": True}
    return create_engine(url, **options)


def _configure_sqlite(engine: Engine, *, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        if not read_only:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = not read_only and not conn.get_execution_options().get("ledger_read", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def fetch_one(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """The first row of plain SQL run through the driver's own cursor, inside ``conn``'s
    transaction (already begun), or None.

    For statements run on every write transaction, where setting up
    SQLAlchemy's result cost more than the query (``sql`` in the driver's
    parameter style).
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else tuple(row)
