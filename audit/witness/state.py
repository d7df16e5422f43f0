"""The witness's memory: every checkpoint it cosigned, per log, in a database.

The state of a log is the cosigned checkpoint with the largest size. Rows are
only ever inserted (the ledger's append-only triggers guard both tables, and
on PostgreSQL UPDATE/DELETE/TRUNCATE are revoked), so the witness cannot be
rolled back by rewriting its state. Each row names the size it moved on from
(``prev_size``, -1 for a log's first row) and (origin, prev_size) is unique:
moving a log forward is a compare-and-set — of two submissions checked against
the same state exactly one row goes in and the other is answered 409, so the
rollback race the tlog-witness spec warns about cannot happen.

Each row keeps the log-signed note and the witness's own cosignature of it,
so a row inserted by SQL (without the witness key) is recognised as forged
(:meth:`Witness.state_problem <audit.witness.witness.Witness.state_problem>`).
Refused checkpoints whose log signature verified are kept as evidence of log
misbehaviour (a fork or a rollback signed by the log's key).

The tables have their own metadata, so a witness can share a site's database
or have one of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.canonical import format_timestamp
from audit.db import open_engine
from audit.schema import install_append_only_guards

__all__ = [
    "WITNESS_TABLES",
    "LogState",
    "WitnessCheckpointRow",
    "WitnessEvidenceRow",
    "WitnessStore",
]


class WitnessBase(DeclarativeBase):
    """Declarative base of the witness tables (kept apart from the ledger's)."""


class WitnessCheckpointRow(WitnessBase):
    """A checkpoint this witness cosigned; the largest per origin is the log's state."""

    __tablename__ = "witness_checkpoint"
    __table_args__ = (
        UniqueConstraint("origin", "prev_size", name="witness_checkpoint_one_successor"),
        Index("witness_checkpoint_latest", "origin", "tree_size"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    origin: Mapped[str] = mapped_column(String(1024))
    prev_size: Mapped[int] = mapped_column(BigInteger)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    cosignature: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String(40))


class WitnessEvidenceRow(WitnessBase):
    """A log-signed checkpoint the witness refused: possible proof of a fork or rollback."""

    __tablename__ = "witness_evidence"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    origin: Mapped[str] = mapped_column(String(1024), index=True)
    received_at: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    request: Mapped[str] = mapped_column(Text)


WITNESS_TABLES = (WitnessCheckpointRow.__tablename__, WitnessEvidenceRow.__tablename__)


@dataclass(frozen=True)
class LogState:
    """A cosigned checkpoint of a log: size, root, the log-signed note, our cosignature."""

    origin: str
    tree_size: int
    root: bytes
    note: str
    cosignature: str = ""


class WitnessStore:
    """The witness tables on an SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url_or_path: str | Path, *, create: bool = True) -> WitnessStore:
        """Open the store on a database URL or SQLite path, creating its tables if asked."""
        store = cls(open_engine(url_or_path))
        if create:
            store.create_tables()
        return store

    def create_tables(self) -> None:
        """Create the witness tables and their append-only guards if missing."""
        WitnessBase.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            install_append_only_guards(conn, WITNESS_TABLES)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def _reader(self) -> Connection:
        # Reads take no write lock (SQLite engines of audit.db begin IMMEDIATE otherwise).
        return self.engine.execution_options(ledger_read=True).connect()

    def get(self, origin: str) -> LogState | None:
        """The latest (largest) cosigned checkpoint of ``origin``, or None if never cosigned."""
        with self._reader() as conn:
            row = conn.execute(
                select(
                    WitnessCheckpointRow.tree_size,
                    WitnessCheckpointRow.root,
                    WitnessCheckpointRow.note,
                    WitnessCheckpointRow.cosignature,
                )
                .where(WitnessCheckpointRow.origin == origin)
                .order_by(WitnessCheckpointRow.tree_size.desc(), WitnessCheckpointRow.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return LogState(origin, int(row[0]), bytes(row[1]), str(row[2]), str(row[3]))

    def compare_and_set(self, expected: LogState | None, new: LogState) -> bool:
        """Record ``new`` as the successor of ``expected`` (None: the log's first state).

        False, and nothing stored, when another checkpoint already succeeded
        ``expected``: the caller's view is stale.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(WitnessCheckpointRow).values(
                        origin=new.origin,
                        prev_size=-1 if expected is None else expected.tree_size,
                        tree_size=new.tree_size,
                        root=new.root,
                        note=new.note,
                        cosignature=new.cosignature,
                        created_at=format_timestamp(datetime.now(UTC)),
                    )
                )
        except IntegrityError:
            return False
        return True

    def history(self, origin: str) -> list[LogState]:
        """Every checkpoint of ``origin`` this witness cosigned, smallest first."""
        with self._reader() as conn:
            rows = conn.execute(
                select(
                    WitnessCheckpointRow.tree_size,
                    WitnessCheckpointRow.root,
                    WitnessCheckpointRow.note,
                    WitnessCheckpointRow.cosignature,
                )
                .where(WitnessCheckpointRow.origin == origin)
                .order_by(WitnessCheckpointRow.tree_size, WitnessCheckpointRow.id)
            ).all()
        return [LogState(origin, int(r[0]), bytes(r[1]), str(r[2]), str(r[3])) for r in rows]

    def record_evidence(self, origin: str, reason: str, request: str) -> None:
        """Keep a refused, log-signed request."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(WitnessEvidenceRow).values(
                    origin=origin,
                    received_at=format_timestamp(datetime.now(UTC)),
                    reason=reason,
                    request=request,
                )
            )

    def evidence(self, origin: str | None = None) -> list[tuple[str, str, str]]:
        """Refused log-signed requests ``(origin, reason, request)``, oldest first."""
        query = select(
            WitnessEvidenceRow.origin, WitnessEvidenceRow.reason, WitnessEvidenceRow.request
        ).order_by(WitnessEvidenceRow.id)
        if origin is not None:
            query = query.where(WitnessEvidenceRow.origin == origin)
        with self._reader() as conn:
            return [(str(o), str(r), str(q)) for o, r, q in conn.execute(query)]
