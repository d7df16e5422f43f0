"""Group commit: many deliveries per durable spool transaction, each acknowledged after it.

A source hands each decoded message to :meth:`GroupCommit.submit` as a
:class:`Delivery` (its readings, dead letters, source state, and how to
acknowledge it). One writer thread takes everything that is waiting — what
arrived while the previous transaction was being made durable — and stores it
with :meth:`Spool.put_many` in one transaction (one ``fsync``), then
acknowledges the deliveries in arrival order. The group grows with the load:
one delivery per commit when the stream is slow, thousands when it is fast,
and nothing is acknowledged before it is on disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gxpmes.connectors.model import DeadLetter, Reading
from gxpmes.connectors.spool import Spool

__all__ = ["SPOOL_FAILURES", "Delivery", "GroupCommit"]

log = logging.getLogger("gxpmes.connectors")

SPOOL_FAILURES = (sqlite3.OperationalError, OSError, MemoryError)
"""A spool that cannot be written (disk full, I/O error, locked): the connector's problem,
not the message's — such a delivery is not acknowledged (MQTT redelivers it)."""


@dataclass
class Delivery:
    """One message's worth of spool writes and what to do once they are durable.

    ``ack`` is called after the commit (MQTT: PUBACK); ``done`` with how many
    readings were new (the rest were duplicates). ``unspoolable`` turns an error
    the spool raised on this delivery's *content* into the dead letter kept
    instead, so one odd message cannot block the others.
    """

    readings: list[Reading]
    letters: list[DeadLetter] = field(default_factory=list)
    state: dict[str, str] = field(default_factory=dict)
    ack: Callable[[], None] | None = None
    done: Callable[[int], None] | None = None
    unspoolable: Callable[[Exception], DeadLetter] | None = None


class GroupCommit:
    """A writer thread storing deliveries in groups of up to ``max_values`` readings.

    ``max_queued`` bounds the readings waiting for the writer: :meth:`submit`
    blocks beyond it, which holds up the source's network thread (TCP back-pressure
    to the broker or server) instead of buffering without limit.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        max_values: int = 20_000,
        max_queued: int = 200_000,
        name: str = "spool-writer",
        counts: Counter[str] | None = None,
    ) -> None:
        if max_values < 1 or max_queued < max_values:
            raise ValueError("need 1 <= max_values <= max_queued")
        self.spool = spool
        self.max_values = max_values
        self.max_queued = max_queued
        self.counts: Counter[str] = Counter() if counts is None else counts
        """``commits``, ``deliveries``, ``spool_errors`` and ``unspoolable`` (added to the
        source's counters when it passes them as ``counts``)."""
        self._queue: deque[Delivery] = deque()
        self._queued = 0  # readings waiting
        self._busy = False
        self._idle = False  # the writer waits for work
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, delivery: Delivery) -> None:
        """Queue ``delivery`` for the next group (blocks while the queue is full)."""
        size = _size(delivery)
        with self._cond:
            while self._queued + size > self.max_queued and self._queue and not self._closing:
                self._cond.wait(0.5)
            self._queue.append(delivery)
            self._queued += size
            if self._idle:  # wake the writer only when it waits: no thread switch per message
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is committed (or failed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop the writer thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _take(self) -> list[Delivery] | None:
        with self._cond:
            self._idle = True
            self._cond.wait_for(lambda: self._queue or self._closing)
            self._idle = False
            if not self._queue:
                return None  # closing, nothing left
            group: list[Delivery] = []
            values = 0
            while self._queue and (not group or values + _size(self._queue[0]) <= self.max_values):
                delivery = self._queue.popleft()
                group.append(delivery)
                values += _size(delivery)
            self._queued -= values
            self._busy = True
            self._cond.notify_all()
            return group

    def _run(self) -> None:
        while True:
            group = self._take()
            if group is None:
                return
            try:
                self._commit(group)
            except Exception:  # never let the writer die: the deliveries stay unacknowledged
                log.exception("spool group commit failed")
                self.counts["spool_errors"] += 1
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _commit(self, group: list[Delivery]) -> None:
        try:
            news = self.spool.put_many([(d.readings, d.letters, d.state) for d in group])
        except SPOOL_FAILURES:
            # Not on disk: acknowledge nothing; the broker delivers these messages again.
            self.counts["spool_errors"] += 1
            log.exception("could not spool %d message(s); not acknowledged", len(group))
            return
        except Exception:
            # Something in one delivery's content the spool refuses: store them one by one.
            self._one_by_one(group)
            return
        self.counts["commits"] += 1
        self._finish(group, news)

    def _one_by_one(self, group: list[Delivery]) -> None:
        for delivery in group:
            try:
                news = self.spool.put_many([(delivery.readings, delivery.letters, delivery.state)])
            except SPOOL_FAILURES:
                self.counts["spool_errors"] += 1
                log.exception("could not spool a message; not acknowledged")
                continue
            except Exception as exc:
                self.counts["unspoolable"] += 1
                if delivery.unspoolable is None:
                    log.exception("could not spool a delivery; dropped")
                    continue
                letter = delivery.unspoolable(exc)
                try:
                    self.spool.put_many([([], [*delivery.letters, letter], {})])
                except SPOOL_FAILURES:
                    self.counts["spool_errors"] += 1
                    log.exception("could not keep an unspoolable message; not acknowledged")
                    continue
                news = [0]
            self.counts["commits"] += 1
            self._finish([delivery], news)

    def _finish(self, group: list[Delivery], news: list[int]) -> None:
        self.counts["deliveries"] += len(group)
        for delivery, new in zip(group, news, strict=True):
            if delivery.done is not None:
                delivery.done(new)
            if delivery.ack is not None:
                delivery.ack()


def _size(delivery: Delivery) -> int:
    return max(1, len(delivery.readings))
