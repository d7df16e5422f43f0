"""One database for the application tables and the audit ledger.

The application's changes and their audit entries are written in the same
transaction (``Ledger.append(..., conn=...)``), so a change never exists
without its audit entry, nor an entry without its change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, select, text

from audit.anchoring.publisher import DEFAULT_EVERY_ENTRIES, DEFAULT_EVERY_SECONDS
from audit.db import open_engine
from audit.entry import Actor, AuditEvent
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.schema import LogMetaRow
from gxpmes.errors import ConfigurationError, DatabaseError
from gxpmes.records import writer as records_writer

if TYPE_CHECKING:
    from audit.anchoring.publisher import CheckpointPublisher
    from audit.anchoring.sink import CheckpointSink

__all__ = [
    "REASON_REQUIRED_ACTIONS",
    "SYSTEM",
    "Database",
    "SchemaUpgrade",
    "check_schema",
    "may_migrate",
    "schema_problem",
    "schema_revision",
    "upgrade_schema",
    "utc_now",
]

SYSTEM = Actor("system", "gxpmes system")
"""Actor of entries the system itself records (alerts, bootstrap)."""


REASON_REQUIRED_ACTIONS: frozenset[str] = frozenset(
    {
        # Accounts and roles (21 CFR 11.10(d), (g)).
        "user.roles",
        "user.deactivate",
        "user.reactivate",
        "user.unlock",
        "user.password_reset",
        # Approved master data: material lots, equipment, master recipes (211.68, 211.186).
        "lot.status",
        "equipment.status",
        "equipment.calibration",
        "recipe.status",
        "recipe.retire",
        # Trust: a revoked key invalidates what it would sign from then on.
        "key.revoke",
    }
)
"""Actions whose audit entry the ledger refuses without a reason (21 CFR 11.10(e),
Annex 11 §9): changes to accounts, roles and approved master data. The default of
:class:`Database`; pass ``reason_required_actions`` to add site-specific actions."""


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SchemaUpgrade:
    """What :func:`upgrade_schema` did: revision before (None: no schema) and after."""

    before: str | None
    after: str
    audited: bool
    """Whether the migration's audit entry was recorded (False also when none ran)."""

    @property
    def migrated(self) -> bool:
        """Whether a migration actually ran."""
        return self.before != self.after


def upgrade_schema(
    engine: Engine, *, ledger: Ledger | None = None, actor: Actor = SYSTEM
) -> SchemaUpgrade:
    """Run the Alembic migrations to head (serialised between processes).

    When a migration ran and ``ledger`` may append, its audit entry
    (``schema.upgrade``, revision before and after) commits in the same
    transaction as the migration. A ledger whose log has signed tree heads
    but that holds no head signer may not append (its entry would be
    reported as forged): the migration then runs unaudited and the result
    says so, for the caller to report.
    """
    from alembic.runtime.migration import MigrationContext

    from gxpmes.migrations import upgrade

    def revision(conn: Connection) -> str | None:
        opts = {"version_table": "gx_alembic_version"}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7347812)"))
        before = revision(conn)
        upgrade(conn)
        after = revision(conn) or ""
        audited = False
        if before != after and ledger is not None and not ledger.needs_head_signer():
            event = AuditEvent(
                actor,
                "schema.upgrade",
                "schema",
                "gxpmes",
                old={"revision": before},
                new={"revision": after},
                reason="gxpmes schema migration",
            )
            ledger.append(event, conn=conn)
            ledger.seal(conn)
            audited = True
    return SchemaUpgrade(before, after, audited)


def schema_revision(engine: Engine) -> tuple[str | None, str]:
    """``(the database's schema revision, the one this gxpmes needs)``; None: no schema yet."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from gxpmes.migrations import HERE

    # Reads gx_alembic_version only: an application role may SELECT it, never write it.
    with engine.connect().execution_options(ledger_read=True) as conn:
        context = MigrationContext.configure(conn, opts={"version_table": "gx_alembic_version"})
        current = context.get_current_revision()
    return current, ScriptDirectory(str(HERE)).get_current_head() or ""


def schema_problem(engine: Engine, name: str) -> str | None:
    """Why the schema of ``name`` is not the one this gxpmes needs, or None if it is.

    Checks the application schema's revision and that every ledger table
    exists (the audit package adds tables through ``gxpmes db upgrade`` too).
    """
    from audit.schema import Base as LedgerBase

    upgrade = "run `gxpmes db upgrade` as the owner role"
    current, head = schema_revision(engine)
    if current is None:
        return f"{name} holds no gxpmes schema (create it: {upgrade})"
    if current != head:
        return (
            f"database schema of {name} is at revision {current}, "
            f"this gxpmes needs {head}: {upgrade}"
        )
    missing = sorted(set(LedgerBase.metadata.tables) - set(inspect(engine).get_table_names()))
    if missing:
        return f"database schema of {name} lacks the ledger tables {', '.join(missing)}: {upgrade}"
    return None


def check_schema(engine: Engine, name: str) -> None:
    """Raise :class:`DatabaseError` unless the schema of ``name`` is the one this gxpmes needs."""
    problem = schema_problem(engine, name)
    if problem is not None:
        raise DatabaseError(problem)


def may_migrate(engine: Engine) -> bool:
    """Whether the connected role may create and alter the schema.

    PostgreSQL: it needs CREATE on the schema and, once there are tables, to
    act as their owner; an application role made by ``gxpmes db grant`` has
    neither. SQLite has no roles.
    """
    if engine.dialect.name != "postgresql":
        return True
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT has_schema_privilege(current_schema(), 'CREATE') AND coalesce("
                    "(SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
                    "WHERE c.oid = to_regclass('gx_alembic_version')), true)"
                )
            )
        )


def _origin_recorded(engine: Engine) -> bool:
    with engine.connect().execution_options(ledger_read=True) as conn:
        return conn.scalar(select(LogMetaRow.value).where(LogMetaRow.name == "origin")) is not None


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
        head_signer: NoteSigner | None = None,
        reason_required_actions: frozenset[str] | None = None,
    ) -> None:
        """Open the database at ``url`` (an SQLAlchemy URL or an SQLite file path).

        ``reason_required_actions`` (default :data:`REASON_REQUIRED_ACTIONS`)
        are actions the ledger refuses to record without a reason.

        ``head_signer`` is the application's tree-head key (see
        :class:`audit.ledger.Ledger`): every write transaction then signs the
        log's new tree head, so rows inserted behind the application's back are
        reported as forged. Once a log has signed heads, every writer needs it.

        The schema revision is checked first. With ``create`` (the default) a
        schema that is missing or behind is created or migrated to head, if the
        connected role may (on PostgreSQL the owner role, not the application
        role of ``gxpmes db grant``); at head nothing is created or altered.
        Without ``create``, or when the role may not migrate, a schema that is
        not at head raises :class:`~gxpmes.errors.DatabaseError` saying which
        revision it is at and that ``gxpmes db upgrade`` must run as the owner,
        so a mistyped path never becomes a new, empty database. ``read_only`` opens
        SQLite with ``mode=ro`` and PostgreSQL in read-only transactions.
        """
        from gxpmes.dbopen import database_errors, display_url, require_database, require_ledger

        if create and read_only:
            raise ConfigurationError("a database opened read-only cannot be created or migrated")
        require_database(url, create=create)
        self.clock = clock
        self.checkpoints: CheckpointPublisher | None = None
        # Looked up at call time: the module default is the one place to change it.
        reasons = (
            REASON_REQUIRED_ACTIONS
            if reason_required_actions is None
            else (REASON_REQUIRED_ACTIONS | frozenset(reason_required_actions))
        )
        with database_errors(url):
            self.engine = open_engine(url, read_only=read_only)
            try:
                if not create:
                    require_ledger(self.engine, display_url(url))
                problem = schema_problem(self.engine, display_url(url))
                if problem is not None and not (create and may_migrate(self.engine)):
                    raise DatabaseError(problem)  # never a migration attempt by the app role
                if problem is not None:
                    self.ledger = Ledger(
                        self.engine,
                        clock=clock,
                        origin=origin,
                        head_signer=head_signer,
                        reason_required_actions=reasons,
                    )
                    self._create_schema()
                else:
                    # At the current schema nothing is created, so a role without
                    # CREATE opens it; only a missing log origin is still written.
                    first = create and not _origin_recorded(self.engine)
                    self.ledger = Ledger(
                        self.engine,
                        clock=clock,
                        origin=origin,
                        create=first,
                        head_signer=head_signer,
                        reason_required_actions=reasons,
                    )
            except BaseException:
                self.engine.dispose()
                raise

    @classmethod
    def over(cls, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> Database:
        """Wrap an engine that is already open (verification): nothing is created or migrated."""
        self = cls.__new__(cls)
        self.engine = engine
        self.clock = clock
        self.checkpoints = None
        self.ledger = Ledger(engine, clock=clock, create=False)
        return self

    def _create_schema(self) -> None:
        upgrade_schema(self.engine, ledger=self.ledger)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, serialised with every other writer of this database.

        SQLite's ``BEGIN IMMEDIATE`` and, on PostgreSQL, the ledger's append
        lock taken *first* make every read inside the transaction current
        until commit, so a state checked here is still the state when the
        change commits (compare-and-set without row versions). Table changes
        staged without an audit entry refuse to commit.
        """
        with self._write_connection() as conn, conn.begin():
            try:
                self.ledger._lock(conn)  # the ledger's own append lock, taken first
                yield conn
                records_writer.check_flushed(conn)
                self.ledger.seal(conn)
            except BaseException:
                records_writer.discard(conn)
                raise

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
        """Append ``event`` inside ``conn``'s transaction; returns its sequence number.

        The entry carries the images of the rows staged on ``conn`` since the
        previous entry (:mod:`gxpmes.records.writer`), so the log can rebuild them.
        """
        seq = self.ledger.append(records_writer.attach(conn, event), conn=conn).seq
        records_writer.write_deferred(conn, seq)
        return seq

    def start_checkpoints(
        self,
        sinks: Sequence[CheckpointSink] = (),
        *,
        every_entries: int = DEFAULT_EVERY_ENTRIES,
        every_seconds: float = DEFAULT_EVERY_SECONDS,
        config: Mapping[str, Any] | None = None,
        base: Path = Path("."),
    ) -> CheckpointPublisher:
        """Sign a checkpoint every ``every_entries`` entries or ``every_seconds`` and publish it.

        Checkpoints are signed with the tree-head key and handed to ``sinks``
        (or the sinks and intervals of an ``[anchoring]`` ``config`` table,
        see :mod:`audit.anchoring.config`) on background threads; a sink that
        is down never blocks a transaction. :meth:`close` signs a last one and
        stops. Lag per sink: ``db.checkpoints.status()``.
        """
        from audit.anchoring.config import publisher_from_config
        from audit.anchoring.publisher import CheckpointPublisher

        if self.checkpoints is not None:
            raise ConfigurationError("automatic checkpoints are already running")
        if config is not None:
            publisher = publisher_from_config(self.ledger, config, base)
        else:
            publisher = CheckpointPublisher(
                self.ledger, sinks, every_entries=every_entries, every_seconds=every_seconds
            )
        publisher.start()
        self.checkpoints = publisher
        return publisher

    def close(self) -> None:
        """Stop automatic checkpoints (after a last one) and release connections."""
        publisher, self.checkpoints = self.checkpoints, None
        if publisher is not None:
            publisher.stop()
        self.engine.dispose()
