"""The rejects table: refused plant input (dead letters) as part of the audited record.

Every payload a connector refuses — undecodable, invalid, naming another tag
than its topic, out-of-range timestamps — and every loss it detects (Sparkplug
sequence gaps, JSON publisher sequence gaps, unknown aliases) is acknowledged
to its source, kept in the spool, and then written here: one ``ebr_ot_reject``
row per dead letter, through the records projection (:mod:`gxpmes.records.writer`),
so the rows travel inside an audit entry and ``gxpmes verify`` proves that the
table holds exactly what the log says — a deleted or edited reject is caught
like any other record change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from audit.canonical import format_timestamp
from audit.entry import Actor, AuditEvent
from gxpmes.connectors.model import DeadLetter, TagMap
from gxpmes.database import Database
from gxpmes.ebr.schema import RejectRow
from gxpmes.identity.schema import UserRow
from gxpmes.records import writer as projection

__all__ = ["record_rejects", "rejects_by_reason"]


def _actor(conn: Any, account_id: str, fallback: Actor) -> Actor:
    printed = conn.execute(
        select(UserRow.printed_name).where(UserRow.user_id == account_id)
    ).scalar_one_or_none()
    return fallback if printed is None else Actor(account_id, printed)


def record_rejects(
    db: Database,
    letters: Sequence[DeadLetter],
    tags: TagMap,
    *,
    account_id: str,
    client_id: str,
    connector: str,
    fallback: Actor,
) -> int:
    """Write dead letters to ``ebr_ot_reject`` in one audited transaction; returns rows written.

    Idempotent by ``reject_id``: a letter recorded before a crash (but still in
    the spool) is not written twice. Rows are attributed to ``account_id`` (the
    connector's device account) when it exists, else to ``fallback``.
    """
    if not letters:
        return 0
    with db.transaction() as conn:
        ids = [letter.reject_id for letter in letters]
        known = set(
            conn.execute(select(RejectRow.reject_id).where(RejectRow.reject_id.in_(ids))).scalars()
        )
        unique = {letter.reject_id: letter for letter in letters}  # the spool may hold one twice
        fresh = [letter for key, letter in unique.items() if key not in known]
        if not fresh:
            return 0
        for letter in fresh:
            binding = tags.get(letter.tag) if letter.tag and letter.tag in tags else None
            projection.insert(
                conn,
                RejectRow,
                {
                    "reject_id": letter.reject_id,
                    "received_at": format_timestamp(letter.received_at),
                    "connector": connector[:128],
                    "client_id": client_id[:256],
                    "origin": letter.origin,
                    "reason": letter.reason,
                    "detail": letter.detail,
                    "tag": letter.tag,
                    "batch_id": binding.batch_id if binding else None,
                    "payload": letter.payload,
                    "payload_size": letter.payload_size,
                    "payload_sha256": letter.payload_sha256,
                },
            )
        db.audit(
            conn,
            AuditEvent(
                _actor(conn, account_id, fallback),
                "connector.reject",
                "ot_connector",
                connector[:128],
                new={
                    "count": len(fresh),
                    "reasons": dict(sorted(Counter(f.reason for f in fresh).items())),
                    "client_id": client_id[:256],
                },
            ),
        )
    return len(fresh)


def rejects_by_reason(db: Database, connector: str | None = None) -> dict[str, int]:
    """How many rejects the record holds, by reason (optionally of one connector)."""
    from sqlalchemy import func

    query = select(RejectRow.reason, func.count()).group_by(RejectRow.reason)
    if connector is not None:
        query = query.where(RejectRow.connector == connector)
    with db.read() as conn:
        return {str(reason): int(n) for reason, n in conn.execute(query).all()}
