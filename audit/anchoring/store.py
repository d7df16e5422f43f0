"""Published checkpoints and their sinks' receipts, kept in the audit database.

Both tables are insert-only like the rest of the ledger (triggers, see
:mod:`audit.schema`): ``audit_checkpoint`` holds each signed checkpoint as
issued, ``audit_checkpoint_receipt`` one receipt per (checkpoint, sink).
They are *information*: an attacker with SQL access can add or (by dropping
the guards) remove rows, so verification trusts only what the sinks keep and
the keys of a trust file. The copies are still checked: a copy signed by a
trusted key that disagrees with the log is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from audit.anchoring.sink import Receipt
from audit.canonical import format_timestamp
from audit.schema import CheckpointReceiptRow, CheckpointRow

__all__ = ["StoredCheckpoint", "record_checkpoint", "record_receipt", "stored_checkpoints"]


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint copy from the database with the receipts stored for it."""

    id: int
    tree_size: int
    created_at: str
    note: str
    receipts: tuple[Receipt, ...]


def record_checkpoint(engine: Engine, tree_size: int, note: str, created_at: datetime) -> int:
    """Insert a checkpoint as issued; returns its id (the receipts' reference)."""
    with engine.begin() as conn:
        result = conn.execute(
            insert(CheckpointRow)
            .values(tree_size=tree_size, created_at=format_timestamp(created_at), note=note)
            .returning(CheckpointRow.id)
        )
        return int(result.scalar_one())


def record_receipt(engine: Engine, checkpoint_id: int, receipt: Receipt) -> bool:
    """Insert ``receipt`` for the checkpoint ``checkpoint_id``.

    Returns False (and changes nothing) when that sink's receipt is already
    stored: receipts are write-once, a re-publication keeps the first.
    """
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(CheckpointReceiptRow).values(
                    checkpoint_id=checkpoint_id,
                    sink=receipt.sink,
                    kind=receipt.kind,
                    received_at=format_timestamp(receipt.received_at),
                    data=receipt.data,
                )
            )
    except IntegrityError:
        return False
    return True


def stored_checkpoints(engine: Engine) -> list[StoredCheckpoint]:
    """Every checkpoint copy in the database with its receipts, oldest first."""
    with engine.connect().execution_options(ledger_read=True) as conn:
        receipts: dict[int, list[Receipt]] = {}
        for row in conn.execute(
            select(CheckpointReceiptRow).order_by(
                CheckpointReceiptRow.checkpoint_id, CheckpointReceiptRow.sink
            )
        ):
            receipts.setdefault(row.checkpoint_id, []).append(
                Receipt(
                    row.sink,
                    row.kind,
                    bytes(row.data),
                    datetime.fromisoformat(row.received_at),
                )
            )
        return [
            StoredCheckpoint(
                row.id, row.tree_size, row.created_at, row.note, tuple(receipts.get(row.id, ()))
            )
            for row in conn.execute(select(CheckpointRow).order_by(CheckpointRow.id))
        ]
