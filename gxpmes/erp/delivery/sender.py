"""The outbox sender: in order per batch, at least once, with back-off, never a silent drop.

One pass (:meth:`Sender.run_once`) walks the ``pending`` deliveries in outbox
order. A batch's messages go strictly in order: when one fails, or waits for
its back-off, the batch's later messages wait behind it (other batches go
on). A message counts as sent only once the transport returned (broker
confirm / file renamed and fsync'd); the ``sent`` state is recorded after
that, so a crash in between resends it — same BOD ID, so ERP deduplicates.
A failed attempt is audited and retried after an exponential back-off; at
``max_attempts`` an ERP exception is raised on the batch, and retries go on.
When the destination is down altogether the pass stops and the sender
backs off as a whole, so an outage costs one failed attempt per back-off,
not one per message.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from audit.canonical import format_timestamp
from gxpmes.erp.confirmations import expire_unconfirmed, mark_sent, record_failure
from gxpmes.erp.delivery import DeliveryError, Message, Transport, TransportDown
from gxpmes.erp.schema import DeliveryRow, OutboxRow

__all__ = ["Policy", "Sender"]


@dataclass(frozen=True)
class Policy:
    """Retry, batching and confirmation settings of a sender."""

    max_attempts: int = 10
    """Failed attempts of one message before an ERP exception is raised (retries continue)."""
    backoff: float = 1.0
    """Seconds before the first retry; doubled per attempt up to ``backoff_cap``."""
    backoff_cap: float = 300.0
    window: int = 100
    """Messages published before their ``sent`` state is recorded in one transaction."""
    confirm_within: timedelta | None = timedelta(hours=24)
    """Time ERP has to confirm a document; None: never raise ``unconfirmed``."""

    def retry_in(self, attempts: int) -> timedelta:
        """Back-off after the ``attempts``-th failure."""
        return timedelta(seconds=min(self.backoff_cap, self.backoff * 2 ** max(0, attempts - 1)))


class Sender:
    """Delivers one database's outbox through one transport."""

    def __init__(self, db: Any, transport: Transport, policy: Policy | None = None) -> None:
        self.db = db
        self.transport = transport
        self.policy = policy or Policy()
        self.counts: Counter[str] = Counter()
        self.down: str | None = None
        self._down_attempts = 0

    def _pending(self) -> list[Any]:
        with self.db.read() as conn:
            return list(
                conn.execute(
                    select(
                        OutboxRow.message_id,
                        OutboxRow.position,
                        OutboxRow.batch_id,
                        OutboxRow.event,
                        OutboxRow.root,
                        OutboxRow.sha256,
                        OutboxRow.correlation_id,
                        DeliveryRow.attempts,
                        DeliveryRow.next_attempt_at,
                    )
                    .join(DeliveryRow, DeliveryRow.message_id == OutboxRow.message_id)
                    .where(DeliveryRow.status == "pending")
                    .order_by(OutboxRow.position)
                ).all()
            )

    def _bodies(self, message_ids: list[str]) -> dict[str, bytes]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(OutboxRow.message_id, OutboxRow.body).where(
                    OutboxRow.message_id.in_(message_ids)
                )
            ).all()
        return {m: str(b).encode("utf-8") for m, b in rows}

    def _fail(self, row: Any, exc: DeliveryError) -> None:
        self.counts["failed_attempts"] += 1
        if record_failure(
            self.db,
            row.message_id,
            str(exc),
            retry_in=self.policy.retry_in(row.attempts + 1),
            max_attempts=self.policy.max_attempts,
        ):
            self.counts["exceptions"] += 1

    def run_once(self) -> int:
        """One pass over the due messages; returns how many were sent.

        Raises nothing for delivery problems (they are recorded); a
        destination that is down ends the pass and is told in :attr:`down`.
        """
        now = format_timestamp(self.db.clock())
        blocked: set[str] = set()
        sent: list[tuple[str, str | None]] = []
        total = 0
        self.down = None
        bodies: dict[str, bytes] = {}
        try:
            pending = self._pending()
            for at, row in enumerate(pending):
                group = row.batch_id or ""
                if group in blocked:
                    continue
                if row.next_attempt_at is not None and row.next_attempt_at > now:
                    blocked.add(group)  # the batch waits behind its backed-off message
                    continue
                if row.message_id not in bodies:  # read a window's bodies in one query
                    ahead = [r.message_id for r in pending[at : at + self.policy.window]]
                    bodies = self._bodies(ahead)
                message = Message(
                    row.message_id,
                    row.root,
                    bodies[row.message_id],
                    row.batch_id,
                    row.sha256,
                    row.event,
                    row.position,
                    row.correlation_id,
                )
                try:
                    self.transport.publish(message)
                except TransportDown as exc:
                    self.down = str(exc)
                    self._fail(row, exc)
                    break
                except DeliveryError as exc:
                    blocked.add(group)
                    self._fail(row, exc)
                    continue
                sent.append((row.message_id, row.batch_id))
                if len(sent) >= self.policy.window:
                    total += mark_sent(self.db, sent, self.transport.name)
                    sent = []
        finally:
            if sent:
                total += mark_sent(self.db, sent, self.transport.name)
            self.counts["sent"] += total
        if self.policy.confirm_within is not None:
            self.counts["unconfirmed"] += len(
                expire_unconfirmed(self.db, self.policy.confirm_within)
            )
        return total

    def follow(
        self,
        stop: threading.Event,
        *,
        idle: float = 0.5,
        status: Callable[[], None] | None = None,
        status_interval: float = 10.0,
    ) -> None:
        """Send until ``stop`` is set; back off as a whole while the destination is down."""
        last_status = time.monotonic()
        while not stop.is_set():
            sent = self.run_once()
            if self.down is not None:
                self._down_attempts += 1
                wait = self.policy.retry_in(self._down_attempts).total_seconds()
            else:
                self._down_attempts = 0
                wait = 0.0 if sent else idle
            if status is not None and time.monotonic() - last_status >= status_interval:
                status()
                last_status = time.monotonic()
            if wait:
                keepalive = getattr(self.transport, "keepalive", None)
                if keepalive is not None:
                    keepalive()
                stop.wait(wait)
