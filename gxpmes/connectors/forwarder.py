"""Drains the spool into the EBR capture API, in order, retrying through database outages."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from audit.errors import AuditError
from gxpmes.connectors.model import DecodeError, TagMap
from gxpmes.connectors.spool import Spool
from gxpmes.ebr.engine import BatchEngine, CapturedValue
from gxpmes.errors import CaptureRefused

__all__ = ["Forwarder"]

log = logging.getLogger("gxpmes.connectors")


class Forwarder:
    """Moves spooled readings into batches; counts what happens to them.

    A reading whose tag is unknown, or that its batch refuses (not executing,
    phase not active...), is counted, logged with the reason and dropped from
    the spool — the refusal itself is in the audit trail. A database outage
    keeps everything in the spool and retries with back-off.
    """

    def __init__(
        self,
        spool: Spool,
        engine: BatchEngine,
        tags: TagMap,
        *,
        batch_size: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self.engine = engine
        self.tags = tags
        self.batch_size = batch_size
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._clock = clock

    def report_rejected(self) -> None:
        """Refused input of a mapped tag becomes a data-quality exception on its batch."""
        rows = self.spool.rejected()
        for _row_id, tag, reason, detail in rows:
            if tag not in self.tags:
                continue  # unknown tags concern no batch: counted and logged at the source
            binding = self.tags.get(tag)
            self.engine.report_data_quality(
                binding.batch_id, binding.parameter, f"{reason}: {detail}"
            )
            self.counts["data_quality_exceptions"] += 1
        self.spool.forget_rejected([row[0] for row in rows])

    def forward_once(self) -> int:
        """Forward what is pending now; returns how many values were recorded."""
        self.report_rejected()
        recorded = 0
        while True:
            pending = self.spool.peek(self.batch_size)
            if not pending:
                return recorded
            values, ids, dropped = [], [], []
            for spool_id, reading in pending:
                try:
                    binding = self.tags.get(reading.tag)
                except DecodeError as exc:
                    self.counts[exc.reason] += 1
                    log.warning("dropped %s: %s", reading.tag, exc)
                    dropped.append(spool_id)
                    continue
                values.append(
                    CapturedValue(
                        binding.batch_id,
                        binding.parameter,
                        reading.tag,
                        reading.value,
                        binding.unit,
                        reading.source_ts,
                        reading.server_ts,
                        reading.quality,
                        reading.dedup_key or None,
                    )
                )
                ids.append(spool_id)
            self.spool.remove(dropped)  # counted and logged; never retried
            if values:
                try:
                    self.engine.capture(values)
                except CaptureRefused as exc:
                    recorded += self._one_by_one(values, ids)
                    log.info("some values refused: %s", exc)
                    ids = []
                else:
                    recorded += len(values)
                    self.counts["recorded"] += len(values)
            self.spool.remove(ids)

    def _one_by_one(self, values: list[CapturedValue], ids: list[int]) -> int:
        # One refused value refuses a whole capture call: retry singly so the
        # good values are kept and only the refused ones are dropped (audited).
        recorded = 0
        for value, spool_id in zip(values, ids, strict=True):
            try:
                self.engine.capture([value])
                recorded += 1
                self.counts["recorded"] += 1
            except CaptureRefused as exc:
                self.counts["refused"] += 1
                log.warning("refused %s: %s", value.tag, exc)
            self.spool.remove([spool_id])
        return recorded

    def run(self, interval: float = 0.2, max_backoff: float = 30.0) -> None:
        """Forward until :meth:`stop`; back off exponentially while the database is down."""
        backoff = interval
        while not self._stop.is_set():
            try:
                self.forward_once()
                backoff = interval
            except (AuditError, OSError, SQLAlchemyError) as exc:  # database unreachable, locked
                self.counts["db_errors"] += 1
                log.warning(
                    "database unavailable, %d values kept in the spool: %s", len(self.spool), exc
                )
                backoff = min(max_backoff, backoff * 2)
            self._stop.wait(backoff)

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()
