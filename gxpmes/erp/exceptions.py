"""Problems of the ERP exchange that a person must see: raised, listed in review, resolved.

An ERP exception never changes the batch record itself (a released batch's
record is closed and signed); it lives in ``erp_exception``, keyed by the
batch, and :meth:`~gxpmes.ebr.review.BatchReview.review_by_exception` lists it
as ``erp:<kind>`` so review shows it next to the batch's own exceptions. It
does not block review or release: product quality is not in question, the
posting to ERP is — it stays open until a person resolves it with a reason.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, select

from audit.canonical import format_timestamp
from audit.entry import Actor, AuditEvent
from gxpmes.ebr.base import ReviewItem
from gxpmes.erp.schema import ErpExceptionRow
from gxpmes.errors import BatchError, StateChangedError
from gxpmes.records import writer as projection

__all__ = ["KINDS", "open_exceptions", "raise_exception", "resolve", "review_items"]

KINDS = ("delivery_failed", "rejected", "unconfirmed")


def raise_exception(
    db: Any,
    conn: Connection,
    actor: Actor,
    *,
    batch_id: str | None,
    message_id: str | None,
    kind: str,
    detail: str,
) -> str:
    """Record an ERP exception inside ``conn``'s transaction; returns its id."""
    exception_id = str(uuid.uuid4())
    projection.insert(
        conn,
        ErpExceptionRow,
        dict(
            exception_id=exception_id,
            batch_id=batch_id,
            message_id=message_id,
            kind=kind,
            detail=detail,
            raised_at=format_timestamp(db.clock()),
            resolved=False,
        ),
    )
    db.audit(
        conn,
        AuditEvent(
            actor,
            "erp.exception",
            # Keyed by the batch, so the batch's trail lists it.
            "batch" if batch_id else "erp_message",
            batch_id or message_id or exception_id,
            new={
                "exception_id": exception_id,
                "kind": kind,
                "detail": detail,
                "message_id": message_id,
            },
        ),
    )
    return exception_id


def resolve(engine: Any, session: Any, exception_id: str, *, resolution: str) -> None:
    """A person closes an ERP exception with what was done about it (audited, reason required)."""
    if not resolution.strip():
        raise BatchError("resolving an ERP exception needs a resolution text")
    with engine.db.transaction() as conn:
        user = engine._user(conn, session, "review.assess")
        row = conn.execute(
            select(ErpExceptionRow).where(ErpExceptionRow.exception_id == exception_id)
        ).one_or_none()
        if row is None:
            raise BatchError(f"no ERP exception {exception_id!r}")
        if row.resolved:
            raise StateChangedError(f"ERP exception {exception_id} is already resolved")
        projection.update(
            conn,
            ErpExceptionRow,
            {"exception_id": exception_id},
            dict(resolved=True, resolution=resolution, resolved_by=user.user_id),
        )
        engine.db.audit(
            conn,
            AuditEvent(
                user.actor,
                "erp.exception.resolve",
                "erp_exception",
                exception_id,
                old={"resolved": False},
                new={"resolved": True},
                reason=resolution,
            ),
        )


def open_exceptions(db: Any, batch_id: str | None = None) -> list[dict[str, Any]]:
    """Unresolved ERP exceptions (of one batch, or all), oldest first."""
    query = select(ErpExceptionRow).where(ErpExceptionRow.resolved.is_(False))
    if batch_id is not None:
        query = query.where(ErpExceptionRow.batch_id == batch_id)
    with db.read() as conn:
        rows = conn.execute(query.order_by(ErpExceptionRow.raised_at)).all()
    return [dict(r._mapping) for r in rows]


def review_items(db: Any, batch_id: str) -> list[ReviewItem]:
    """The batch's ERP exceptions as review lines (``erp:<kind>``, open until resolved)."""
    with db.read() as conn:
        rows = conn.execute(
            select(ErpExceptionRow)
            .where(ErpExceptionRow.batch_id == batch_id)
            .order_by(ErpExceptionRow.raised_at)
        ).all()
    return [
        ReviewItem(
            f"erp:{r.kind}",
            r.message_id or "",
            r.detail,
            not r.resolved,
            r.exception_id,
            {"resolution": r.resolution},
        )
        for r in rows
    ]
