"""The witness's memory: the latest cosigned checkpoint of each log, in a database.

One row per log origin. Moving a log forward is a compare-and-set: the row is
updated only if it still holds the size and root the request was checked
against (an insert only if there is no row yet), so of two concurrent
submissions checked against the same state exactly one wins and the other is
answered 409 — the rollback race the tlog-witness spec warns about cannot
happen. Refused checkpoints whose log signature verified are kept as
evidence of log misbehaviour (a fork or a rollback signed by the log's key).

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
    Integer,
    LargeBinary,
    String,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.canonical import format_timestamp
from audit.db import open_engine

__all__ = ["LogState", "WitnessEvidenceRow", "WitnessLogRow", "WitnessStore"]


class WitnessBase(DeclarativeBase):
    """Declarative base of the witness tables (kept apart from the ledger's)."""


class WitnessLogRow(WitnessBase):
    """The latest checkpoint this witness cosigned for one log."""

    __tablename__ = "witness_log_state"

    origin: Mapped[str] = mapped_column(String(1024), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[str] = mapped_column(String(40))


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


@dataclass(frozen=True)
class LogState:
    """What the witness holds for a log: its latest cosigned size, root and note."""

    origin: str
    tree_size: int
    root: bytes
    note: str


class WitnessStore:
    """The witness state tables on an SQLAlchemy engine."""

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
        """Create the witness tables if they do not exist (other tables are untouched)."""
        WitnessBase.metadata.create_all(self.engine)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def _reader(self) -> Connection:
        # Reads take no write lock (SQLite engines of audit.db begin IMMEDIATE otherwise).
        return self.engine.execution_options(ledger_read=True).connect()

    def get(self, origin: str) -> LogState | None:
        """The latest cosigned state of ``origin``, or None if never cosigned."""
        with self._reader() as conn:
            row = conn.execute(
                select(WitnessLogRow.tree_size, WitnessLogRow.root, WitnessLogRow.note).where(
                    WitnessLogRow.origin == origin
                )
            ).first()
        if row is None:
            return None
        return LogState(origin, int(row[0]), bytes(row[1]), str(row[2]))

    def compare_and_set(self, expected: LogState | None, new: LogState) -> bool:
        """Store ``new`` only if the log's state is still ``expected``; True if it was stored."""
        now = format_timestamp(datetime.now(UTC))
        values = {
            "tree_size": new.tree_size,
            "root": new.root,
            "note": new.note,
            "updated_at": now,
        }
        try:
            with self.engine.begin() as conn:
                if expected is None:
                    conn.execute(insert(WitnessLogRow).values(origin=new.origin, **values))
                    return True
                result = conn.execute(
                    update(WitnessLogRow)
                    .where(
                        WitnessLogRow.origin == expected.origin,
                        WitnessLogRow.tree_size == expected.tree_size,
                        WitnessLogRow.root == expected.root,
                    )
                    .values(**values)
                )
                return result.rowcount == 1
        except IntegrityError:
            return False  # another submission inserted the first state meanwhile

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
