"""Where the exchange stands: counts by delivery state, open exceptions, the status lines."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select

from gxpmes.erp.schema import DeliveryRow, ErpExceptionRow, InboundRow, OutboxRow, RejectRow

__all__ = ["receive_line", "send_line", "summary"]


def summary(db: Any, batch_id: str | None = None) -> dict[str, int]:
    """Deliveries by state (``sent`` includes ``awaiting_confirmation``), open ERP exceptions,
    inbound documents taken and refused."""
    with db.read() as conn:
        query = (
            select(DeliveryRow.status, OutboxRow.confirm, func.count())
            .join(OutboxRow, OutboxRow.message_id == DeliveryRow.message_id)
            .group_by(DeliveryRow.status, OutboxRow.confirm)
        )
        exceptions = (
            select(func.count())
            .select_from(ErpExceptionRow)
            .where(ErpExceptionRow.resolved.is_(False))
        )
        if batch_id is not None:
            query = query.where(DeliveryRow.batch_id == batch_id)
            exceptions = exceptions.where(ErpExceptionRow.batch_id == batch_id)
        states = ("pending", "sent", "awaiting_confirmation", "delivered", "rejected")
        counts: dict[str, int] = {s: 0 for s in (*states, "unconfirmed")}
        for status, confirm, n in conn.execute(query).all():
            counts[str(status)] += int(n)
            if status == "sent" and confirm:
                counts["awaiting_confirmation"] += int(n)
        counts["open_exceptions"] = int(conn.scalar(exceptions) or 0)
        counts["inbound"] = int(conn.scalar(select(func.count()).select_from(InboundRow)) or 0)
        counts["refused"] = int(conn.scalar(select(func.count()).select_from(RejectRow)) or 0)
    return counts


def send_line(db: Any, counts: Counter[str], rate: float, down: str | None) -> str:
    """The sender's status line (like ``gxpmes connect``'s)."""
    state = summary(db)
    line = (
        f"erp send: {rate:.1f} messages/s sent, {state['pending']} pending, "
        f"{state['awaiting_confirmation']} awaiting confirmation, {state['delivered']} delivered, "
        f"{state['rejected']} rejected, {state['unconfirmed']} unconfirmed, "
        f"{counts['failed_attempts']} failed attempts, {state['open_exceptions']} open exceptions"
    )
    return line + (f" — destination down: {down}" if down else "")


def receive_line(counts: Counter[str], rate: float, down: str | None) -> str:
    """The receiver's status line."""
    line = (
        f"erp receive: {rate:.1f} documents/s, {counts['accepted']} accepted, "
        f"{counts['rejected']} rejected, {counts['invalid']} refused as invalid, "
        f"{counts['confirmation']} confirmations, {counts['duplicate']} duplicates"
    )
    return line + (f" — source down: {down}" if down else "")
