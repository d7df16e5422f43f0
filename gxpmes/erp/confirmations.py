"""Delivery state: sent, failed attempts, ERP's confirmations, and confirmations that never came.

Every change is compare-and-set under the write lock and audited; the
states are ``pending`` › ``sent`` › ``delivered`` (ERP accepted) |
``rejected`` (ERP refused: an ERP exception with ERP's reason) |
``unconfirmed`` (no answer in time: an ERP exception). A document that
expects no answer (our own ConfirmBODs) stays ``sent``. A confirmation may
overtake the sender's own bookkeeping (ERP answers before ``sent`` is
recorded), so ``pending`` may become ``delivered`` directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from audit.canonical import format_timestamp
from audit.entry import AuditEvent
from gxpmes.erp.bod import Confirmation
from gxpmes.erp.exceptions import raise_exception
from gxpmes.erp.outbox import ERP_INTERFACE
from gxpmes.erp.schema import DeliveryRow, OutboxRow
from gxpmes.records import writer as projection

__all__ = [
    "ConfirmResult",
    "apply_confirmation",
    "expire_unconfirmed",
    "mark_sent",
    "record_failure",
    "resend",
]

_OPEN = ("pending", "sent", "unconfirmed")


def mark_sent(db: Any, sent: Sequence[tuple[str, str | None]], destination: str) -> int:
    """Record ``(message_id, batch_id)`` pairs as taken by ``destination``; one entry per batch.

    Only rows still ``pending`` change (a confirmation may have come first);
    returns how many changed.
    """
    now = format_timestamp(db.clock())
    changed = 0
    with db.transaction() as conn:
        by_batch: dict[str | None, list[str]] = defaultdict(list)
        for message_id, batch_id in sent:
            row = conn.execute(
                select(DeliveryRow).where(DeliveryRow.message_id == message_id)
            ).one_or_none()
            if row is None or row.status != "pending":
                continue
            projection.update(
                conn,
                DeliveryRow,
                {"message_id": message_id},
                dict(
                    status="sent",
                    attempts=row.attempts + 1,
                    sent_at=now,
                    destination=destination,
                    next_attempt_at=None,
                    last_error=None,
                ),
            )
            by_batch[batch_id].append(message_id)
            changed += 1
        for batch_id, ids in by_batch.items():
            db.audit(
                conn,
                AuditEvent(
                    ERP_INTERFACE,
                    "erp.sent",
                    "batch" if batch_id else "erp_delivery",
                    batch_id or destination,
                    new={"message_ids": ids, "destination": destination},
                ),
            )
    return changed


def record_failure(
    db: Any,
    message_id: str,
    error: str,
    *,
    retry_in: timedelta,
    max_attempts: int,
) -> bool:
    """Count a failed attempt; at ``max_attempts`` raise an ERP exception (once).

    The message stays ``pending`` and is retried after ``retry_in``: nothing is
    dropped, and the batch's later messages wait behind it (order per batch).
    Returns whether an exception was raised now.
    """
    now = db.clock()
    raised = False
    with db.transaction() as conn:
        row = conn.execute(
            select(DeliveryRow).where(DeliveryRow.message_id == message_id)
        ).one_or_none()
        if row is None or row.status != "pending":
            return False
        attempts = row.attempts + 1
        changes: dict[str, Any] = dict(
            attempts=attempts,
            last_error=error[:2000],
            next_attempt_at=format_timestamp(now + retry_in),
        )
        if attempts >= max_attempts and row.exception_id is None:
            changes["exception_id"] = raise_exception(
                db,
                conn,
                ERP_INTERFACE,
                batch_id=row.batch_id,
                message_id=message_id,
                kind="delivery_failed",
                detail=f"{attempts} delivery attempts failed; last: {error[:1000]} (still retried)",
            )
            raised = True
        projection.update(conn, DeliveryRow, {"message_id": message_id}, changes)
        db.audit(
            conn,
            AuditEvent(
                ERP_INTERFACE,
                "erp.delivery.failed",
                "erp_message",
                message_id,
                new={"attempts": attempts, "error": error[:2000]},
            ),
        )
    return raised


class ConfirmResult:
    """What one confirmation did: per original BOD ID, ``delivered``, ``rejected``,
    ``duplicate`` or ``unknown``."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}


def apply_confirmation(db: Any, conn: Connection, confirmation: Confirmation) -> ConfirmResult:
    """Match a ConfirmBOD / Acknowledge to sent messages, inside ``conn``'s transaction."""
    result = ConfirmResult()
    now = format_timestamp(db.clock())
    status = "delivered" if confirmation.accepted else "rejected"
    reason = "; ".join(confirmation.reasons) or None
    for message_id in confirmation.originals:
        row = conn.execute(
            select(DeliveryRow.batch_id, DeliveryRow.status, OutboxRow.root)
            .join(OutboxRow, OutboxRow.message_id == DeliveryRow.message_id)
            .where(DeliveryRow.message_id == message_id)
        ).one_or_none()
        if row is None:
            result.outcomes[message_id] = "unknown"
            continue
        delivery = row
        if delivery.status not in _OPEN:
            result.outcomes[message_id] = "duplicate"
            continue
        changes: dict[str, Any] = dict(
            status=status,
            confirmed_at=now,
            confirm_bod_id=confirmation.bod_id,
            reason=reason,
            next_attempt_at=None,
        )
        if not confirmation.accepted:
            changes["exception_id"] = raise_exception(
                db,
                conn,
                ERP_INTERFACE,
                batch_id=delivery.batch_id,
                message_id=message_id,
                kind="rejected",
                detail=f"ERP rejected {row.root} {message_id}: {reason or '(no reason given)'}",
            )
        projection.update(conn, DeliveryRow, {"message_id": message_id}, changes)
        db.audit(
            conn,
            AuditEvent(
                ERP_INTERFACE,
                "erp.confirm",
                "batch" if delivery.batch_id else "erp_message",
                delivery.batch_id or message_id,
                old={"status": delivery.status},
                new={
                    "message_id": message_id,
                    "status": status,
                    "confirm_bod_id": confirmation.bod_id,
                    "reason": reason,
                },
            ),
        )
        result.outcomes[message_id] = status
    return result


def expire_unconfirmed(db: Any, within: timedelta, now: datetime | None = None) -> list[str]:
    """Sent longer than ``within`` ago and not confirmed: ``unconfirmed``, with an exception."""
    now = now or db.clock()
    threshold = format_timestamp(now - within)
    expired = []
    with db.read() as conn:
        candidates = (
            conn.execute(
                select(DeliveryRow.message_id)
                .join(OutboxRow, OutboxRow.message_id == DeliveryRow.message_id)
                .where(
                    DeliveryRow.status == "sent",
                    OutboxRow.confirm.is_(True),
                    DeliveryRow.sent_at < threshold,
                )
            )
            .scalars()
            .all()
        )
    for message_id in candidates:
        with db.transaction() as conn:
            row = conn.execute(
                select(DeliveryRow).where(DeliveryRow.message_id == message_id)
            ).one()
            if row.status != "sent":
                continue  # confirmed meanwhile
            exception_id = raise_exception(
                db,
                conn,
                ERP_INTERFACE,
                batch_id=row.batch_id,
                message_id=message_id,
                kind="unconfirmed",
                detail=f"no confirmation from ERP for {message_id} sent at {row.sent_at} "
                f"within {within}",
            )
            projection.update(
                conn,
                DeliveryRow,
                {"message_id": message_id},
                dict(status="unconfirmed", exception_id=exception_id),
            )
            db.audit(
                conn,
                AuditEvent(
                    ERP_INTERFACE,
                    "erp.unconfirmed",
                    "erp_message",
                    message_id,
                    old={"status": "sent"},
                    new={"status": "unconfirmed"},
                ),
            )
            expired.append(message_id)
    return expired


def resend(db: Any, actor: Any, message_id: str, *, reason: str) -> str:
    """Queue a rejected or unconfirmed document again, unchanged (same BOD ID); audited.

    For when ERP's side was put right (a posting period opened, a master
    record created): the document goes again as it was, in its batch's order.
    Returns the status it had. Its ERP exception stays for a person to resolve.
    """
    from gxpmes.errors import ConfigurationError, StateChangedError

    if not reason.strip():
        raise ConfigurationError("a resend needs a reason")
    with db.transaction() as conn:
        row = conn.execute(
            select(DeliveryRow).where(DeliveryRow.message_id == message_id)
        ).one_or_none()
        if row is None:
            raise ConfigurationError(f"no outbound message {message_id!r}")
        if row.status not in ("rejected", "unconfirmed"):
            raise StateChangedError(
                f"message {message_id} is {row.status}; only rejected or unconfirmed ones "
                "are sent again"
            )
        projection.update(
            conn,
            DeliveryRow,
            {"message_id": message_id},
            dict(status="pending", next_attempt_at=None, confirmed_at=None, confirm_bod_id=None),
        )
        db.audit(
            conn,
            AuditEvent(
                actor,
                "erp.resend",
                "batch" if row.batch_id else "erp_message",
                row.batch_id or message_id,
                old={"status": row.status},
                new={"message_id": message_id, "status": "pending"},
                reason=reason,
            ),
        )
    return str(row.status)
