"""Drains the spool into the EBR capture API, in order, retrying through database outages."""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from audit.errors import AuditError
from gxpmes.connectors.model import MAX_KEPT, DeadLetter, Problem, TagBinding, TagMap, safe_text
from gxpmes.connectors.rejects import record_rejects
from gxpmes.connectors.spool import Item, Spool, reading_of
from gxpmes.ebr.engine import BatchEngine, CapturedValue, CaptureSource
from gxpmes.errors import CaptureRefused

__all__ = ["Forwarder"]

log = logging.getLogger("gxpmes.connectors")

_time = datetime.fromisoformat

_FIELDS = (
    "batch_id",
    "parameter",
    "tag",
    "value",
    "unit",
    "source_ts",
    "server_ts",
    "quality",
    "source_key",
)
# CapturedValue is a frozen dataclass whose __init__ sets each field through
# object.__setattr__ (~2 µs a value, a tenth of a capture). Values built here always
# carry a Decimal (the only conversion __post_init__ makes), so their attribute
# dict is filled at once — as long as the class is the plain dataclass this
# expects; otherwise its constructor is used.
_FAST = tuple(
    f.name for f in dataclasses.fields(CapturedValue)
) == _FIELDS and "__slots__" not in vars(CapturedValue)
_new = object.__new__
_set = object.__setattr__


def _captured(
    batch_id: str,
    parameter: str,
    tag: str,
    value: Decimal,
    unit: str,
    source_ts: datetime,
    server_ts: datetime | None,
    quality: str,
    source_key: str | None,
) -> CapturedValue:
    """``CapturedValue(...)`` for a Decimal value (see _FAST)."""
    if not _FAST:
        return CapturedValue(
            batch_id, parameter, tag, value, unit, source_ts, server_ts, quality, source_key
        )
    captured = _new(CapturedValue)
    _set(
        captured,
        "__dict__",
        {
            "batch_id": batch_id,
            "parameter": parameter,
            "tag": tag,
            "value": value,
            "unit": unit,
            "source_ts": source_ts,
            "server_ts": server_ts,
            "quality": quality,
            "source_key": source_key,
        },
    )
    return captured


# Faults of one value's content (not of the database): that value becomes a dead
# letter instead of blocking the spool. Anything else is treated as an outage.
_VALUE_FAULTS = (ValueError, TypeError, DataError, IntegrityError)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """No cyclic garbage collection while a batch is built and captured.

    A batch allocates tens of thousands of objects that live until the capture
    returns (values, Decimals, datetimes, leaves); each allocation burst makes
    the collector walk the older generations — the whole heap — again, which
    py-spy showed as up to a sixth of the forwarder's time. None of these
    objects form cycles; the collector runs as usual between batches.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Forwarder:
    """Moves spooled readings into batches; counts what happens to them.

    A reading whose tag is unknown, or that its batch refuses (not executing,
    phase not active...), is counted, logged with the reason and dropped from
    the spool — the refusal itself is in the audit trail. A database outage
    keeps everything in the spool and retries with back-off.

    ``source`` is the connector's identity: the service or device account the
    values are recorded under and the client id written into each value's
    audit entry (see ``BatchEngine.capture``).
    """

    def __init__(
        self,
        spool: Spool,
        engine: BatchEngine,
        tags: TagMap,
        *,
        source: CaptureSource,
        connector: str = "gxpmes-connector",
        batch_size: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connector = connector
        self.spool = spool
        self.engine = engine
        self.tags = tags
        self.source = source
        self.batch_size = batch_size
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._clock = clock
        self.prune_interval = min(60.0, max(0.05, spool.seen_retention / 4))
        """Seconds between :meth:`Spool.prune_seen` calls in :meth:`run`."""

    def report_rejected(self) -> int:
        """Record up to 200 dead letters (returns how many were taken from the spool)
        in the rejects table; those naming a mapped tag (or a node whose
        tags are mapped) become data-quality exceptions on the batches concerned."""
        rows = self.spool.rejected(200)
        if not rows:
            return 0
        letters = [letter for _row_id, letter in rows]
        # Exceptions first: after a crash between the two steps a letter's exception
        # may be raised twice, but never missed (rows are idempotent by reject_id).
        # One exception per batch parameter and pass: a flood of refused input is
        # one item to review (naming how many, why, and the reject ids), not thousands.
        concerned: dict[tuple[str, str], list[DeadLetter]] = {}
        for letter in letters:
            targets = []
            if letter.tag and letter.tag in self.tags:
                targets.append(self.tags.get(letter.tag))
            if letter.scope:
                targets += [binding for _tag, binding in self.tags.under(letter.scope)]
            for key in dict.fromkeys((b.batch_id, b.parameter) for b in targets):
                concerned.setdefault(key, []).append(letter)
        for (batch_id, parameter), group in concerned.items():
            self.engine.report_data_quality(batch_id, parameter, exception_detail(group))
            self.counts["data_quality_exceptions"] += 1
        try:
            written = self._record(letters)
        except _VALUE_FAULTS:
            # One letter the database will not take must not hold up the others:
            # record them one by one, a refused one in its minimal form.
            written = 0
            for letter in letters:
                try:
                    written += self._record([letter])
                except _VALUE_FAULTS as exc:
                    log.warning("dead letter %s kept in minimal form: %s", letter.reject_id, exc)
                    written += self._record([minimal(letter, exc)])
        self.counts["rejects_recorded"] += written
        self.spool.forget_rejected([row_id for row_id, _letter in rows])
        return len(rows)

    def _record(self, letters: list[DeadLetter]) -> int:
        return record_rejects(
            self.engine.db,
            letters,
            self.tags,
            account_id=self.source.account_id,
            client_id=self.source.client_id,
            connector=self.connector,
            fallback=self.engine.collector,
        )

    def forward_once(self) -> int:
        """Forward what is pending now; returns how many values were recorded.

        The spool holds one row per delivery; a delivery is removed only once
        all its values are recorded (or refused and kept as dead letters). A
        crash in between forwards it again, and the record skips the values it
        already holds (``ebr_value.source_key`` is unique): nothing is lost,
        nothing recorded twice.
        """
        # Bounded: a flood of hostile messages must not starve the good values.
        for _ in range(5):
            if not self.report_rejected():
                break
        recorded = 0
        bindings = self.tags.get_or_none
        while True:
            pending = self.spool.pending_items(self.batch_size)
            if not pending:
                return recorded
            # A part batch means the spool is drained: after it, return and let run()
            # wait its interval, so the next capture call gets what arrived meanwhile
            # (each call is one database transaction with a fixed cost: few large calls).
            drained = sum(len(items) for _id, items in pending) < self.batch_size
            with _no_cycle_collection():
                recorded += self._forward(pending, bindings)
            if drained:
                return recorded

    def _forward(
        self,
        pending: list[tuple[int, list[Item]]],
        bindings: Callable[[str], TagBinding | None],
    ) -> int:
        """Capture one batch of pending deliveries, then remove them from the spool."""
        recorded = 0
        values: list[CapturedValue] = []
        ids = []
        # Receive times are shared by a message's values, numbers often repeat:
        # each distinct text is parsed once per batch.
        times: dict[str, datetime] = {}
        numbers: dict[str, Decimal] = {}
        for spool_id, items in pending:
            refused: list[DeadLetter] = []
            kept = []
            for item in items:
                tag, value, source_ts, quality, server_ts, key = item
                binding = bindings(tag)
                if binding is None:
                    refused.append(self._unknown(item))
                    continue
                kept.append(item)
                number = numbers.get(value)
                if number is None:
                    number = numbers[value] = Decimal(value)
                received = times.get(server_ts) if server_ts else None
                if received is None and server_ts:
                    received = times[server_ts] = _time(server_ts)
                values.append(
                    _captured(
                        binding.batch_id,
                        binding.parameter,
                        tag,
                        number,
                        binding.unit,
                        _time(source_ts),
                        received,
                        quality,
                        key or None,
                    )
                )
            if refused:  # counted, logged, kept as dead letters; never retried
                self.spool.refuse(spool_id, kept, refused)
            if kept:
                ids.append(spool_id)
        if values:
            try:
                self.engine.capture(values, source=self.source)
            except (CaptureRefused, *_VALUE_FAULTS) as exc:
                log.info("some values refused: %s", exc)
                recorded += self._one_by_one(values)
            else:
                recorded += len(values)
                self.counts["recorded"] += len(values)
        self.spool.remove(ids)
        return recorded

    def _unknown(self, item: Item) -> DeadLetter:
        reading = reading_of(item)
        self.counts["unknown_tag"] += 1
        problem = Problem(
            "unknown_tag", f"tag {reading.tag!r} is not mapped to a batch parameter", reading.tag
        )
        log.warning("dropped %s: %s", reading.tag, problem.detail)
        raw = safe_text(repr(reading), MAX_KEPT).encode("utf-8")
        return DeadLetter.of(problem, "spool", raw, datetime.now(UTC))

    def _one_by_one(self, values: list[CapturedValue]) -> int:
        # One refused value refuses a whole capture call: retry singly so the
        # good values are kept and only the refused ones are dropped (audited).
        # The deliveries leave the spool after all of their values were tried.
        recorded = 0
        for value in values:
            try:
                self.engine.capture([value], source=self.source)
                recorded += 1
                self.counts["recorded"] += 1
            except CaptureRefused as exc:  # the engine audited the refusal on the batch
                self.counts["refused"] += 1
                log.warning("refused %s: %s", value.tag, exc)
            except _VALUE_FAULTS as exc:  # this value cannot be written: a dead letter
                self.counts["unrecordable"] += 1
                log.warning("cannot record %s: %s", value.tag, exc)
                self._dead_letter(
                    Problem("unrecordable", f"{type(exc).__name__}: {exc}", value.tag),
                    value,
                )
        return recorded

    def _dead_letter(self, problem: Problem, item: Any) -> None:
        raw = safe_text(repr(item), MAX_KEPT).encode("utf-8")
        self.spool.reject(DeadLetter.of(problem, "spool", raw, datetime.now(UTC)))

    def run(self, interval: float = 0.2, max_backoff: float = 30.0) -> None:
        """Forward until :meth:`stop`; back off exponentially while the database is down."""
        backoff = interval
        pruned = self._clock()
        while not self._stop.is_set():
            try:
                self.forward_once()
                backoff = interval
                if self._clock() - pruned >= self.prune_interval:
                    # Dedup keys no redelivery can need any more (see Spool).
                    pruned = self._clock()
                    self.counts["seen_generations_dropped"] += self.spool.prune_seen()
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


def minimal(letter: DeadLetter, exc: Exception) -> DeadLetter:
    """``letter`` reduced to what any database takes: ASCII text, no payload (its size and
    SHA-256 still identify it)."""
    return replace(
        letter,
        origin=letter.origin.encode("ascii", "backslashreplace").decode("ascii")[:512],
        reason=letter.reason.encode("ascii", "replace").decode("ascii")[:32],
        detail=f"kept in minimal form, the database refused it: {type(exc).__name__}",
        tag=None,
        payload=b"",
    )


def exception_detail(letters: list[DeadLetter]) -> str:
    """The data-quality exception text for refused input of one batch parameter."""
    first = letters[0]
    text = f"{first.reason}: {first.detail} ({first.origin}; reject {first.reject_id})"
    if len(letters) == 1:
        return text
    reasons = Counter(letter.reason for letter in letters)
    summary = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    return f"{len(letters)} refused inputs ({summary}); first: {text}"[:4000]
