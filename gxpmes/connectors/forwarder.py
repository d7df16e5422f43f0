"""Drains the spool into the EBR capture API, in order, retrying through database outages."""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from audit.errors import AuditError
from gxpmes.connectors.model import (
    MAX_KEPT,
    DeadLetter,
    NotNumeric,
    Problem,
    TagBinding,
    TagMap,
    safe_text,
)
from gxpmes.connectors.rejects import record_rejects
from gxpmes.connectors.spool import Item, Spool, not_numeric_of, reading_of
from gxpmes.ebr.engine import BatchEngine, CapturedColumns, CapturedValue, CaptureSource
from gxpmes.errors import CaptureRefused, RecordIntegrityError

__all__ = ["Forwarder"]

log = logging.getLogger("gxpmes.connectors")

_time = datetime.fromisoformat
_TEXT_ONLY = {str}


def _delivery_columns(
    items: list[Item],
    bindings: Callable[[str], TagBinding | None],
    times: dict[str, datetime],
) -> tuple[list[Any], ...] | None:
    """The values of one delivery as capture's columns (CapturedValue's field order),
    built column by column in compiled code; None unless every item is plain.

    Plain: six fields, mapped tags, values that are text and parse (a not-numeric
    marker, or a damaged spool's ``true``, is not text: ``Decimal(True)`` is 1),
    times that parse. A message's values usually share their tag and receive
    time, so the binding is looked up and the receive time parsed once. The item-by-item path
    (``Forwarder._value_of``) is the reference this is tested against, and
    decides about anything else: which item fails, and why.
    """
    try:
        tags, values, sources, qualities, servers, keys = zip(*items, strict=True)
        count = len(tags)
        distinct = set(tags)
        if len(distinct) == 1:
            binding = bindings(tags[0])
            if binding is None:
                return None
            batch_ids = [binding.batch_id] * count
            parameters = [binding.parameter] * count
            units = [binding.unit] * count
        else:
            found = {tag: bindings(tag) for tag in distinct}
            if None in found.values():
                return None
            each = [found[tag] for tag in tags]
            batch_ids = [b.batch_id for b in each]  # type: ignore[union-attr]
            parameters = [b.parameter for b in each]  # type: ignore[union-attr]
            units = [b.unit for b in each]  # type: ignore[union-attr]
        if set(map(type, values)) != _TEXT_ONLY:
            return None
        numbers = list(map(Decimal, values))
        source_ts = list(map(_time, sources))
        if len(set(servers)) == 1:
            received = _received(servers[0], times)
            server_ts = [received] * count
        else:
            server_ts = [_received(text, times) for text in servers]
        marks = list(keys) if all(keys) else [key or None for key in keys]
    except Exception:  # not plain: the item-by-item path says which item and why
        return None
    return (
        batch_ids,
        parameters,
        list(tags),
        numbers,
        units,
        source_ts,
        server_ts,
        list(qualities),
        marks,
    )


def _received(text: str | None, times: dict[str, datetime]) -> datetime | None:
    """The receive time spooled as ``text`` (None for none), parsed once per batch."""
    if not text:
        return None
    received = times.get(text)
    if received is None:
        received = times[text] = _time(text)
    return received


# Faults of one value's content (not of the database): that value becomes a dead
# letter instead of blocking the spool.
_VALUE_FAULTS = (ValueError, TypeError, DataError, IntegrityError)
# Faults of the database (down, locked, a record that fails its own checks): the
# values stay in the spool and are tried again with back-off. Any other exception
# while values are built or captured is a fault of those values (an OverflowError
# converting a time, a refusal...): they become dead letters and delivery goes on.
_OUTAGES = (AuditError, OSError, SQLAlchemyError, RecordIntegrityError)
_DEFER_ROWS = 2000
"""Forwarded spool rows whose removal may wait for a moment the spool is not locked."""
_SPLIT_BELOW = 8
"""A refused capture call of fewer values is retried value by value, not halved."""


def _outage(exc: BaseException) -> bool:
    """True if ``exc`` is the database's fault (retry later), not the values'."""
    return isinstance(exc, _OUTAGES) and not isinstance(exc, _VALUE_FAULTS)


def _described(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # a str() that fails: its type still says what it was
        return type(exc).__name__


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

    No value can stop delivery. A reading whose tag is unknown, that its batch
    refuses (not executing, phase not active...: ``capture_refused``, the
    engine audits the refusal on the batch), or that cannot be built or
    recorded at all (``unrecordable``: any other exception of that value) is
    counted, logged and kept as a dead letter; the values around it are
    recorded. A database outage keeps everything in the spool and retries with
    back-off; any other failure of a pass is counted (``forwarder_errors``) and
    retried the same way — :meth:`run` never returns before :meth:`stop`.

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
        self._unremoved: list[int] = []
        """Spool rows forwarded (committed to the record) whose removal found the spool
        locked by the ingest process: skipped by the next reads, removed later."""
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
            if letter.reason in _AUDITED_ON_THE_BATCH:
                continue
            targets = []
            if letter.tag and letter.tag in self.tags:
                targets.append(self.tags.get(letter.tag))
            if letter.scope:
                targets += [binding for _tag, binding in self.tags.under(letter.scope)]
            for key in dict.fromkeys((b.batch_id, b.parameter) for b in targets):
                concerned.setdefault(key, []).append(letter)
        for (batch_id, parameter), group in concerned.items():
            try:
                self.engine.report_data_quality(batch_id, parameter, exception_detail(group))
            except Exception as exc:  # the letters are still recorded below
                if _outage(exc):
                    raise
                self.counts["forwarder_errors"] += 1
                log.exception("no data-quality exception on %s %s", batch_id, parameter)
            else:
                self.counts["data_quality_exceptions"] += 1
        try:
            written = self._record(letters)
        except Exception as exc:
            if _outage(exc):
                raise
            # One letter the database will not take must not hold up the others:
            # record them one by one, a refused one in its minimal form.
            written = 0
            for letter in letters:
                try:
                    written += self._record([letter])
                except Exception as exc:
                    if _outage(exc):
                        raise
                    log.warning("dead letter %s kept in minimal form: %s", letter.reject_id, exc)
                    try:
                        written += self._record([minimal(letter, exc)])
                    except Exception as final:
                        if _outage(final):
                            raise
                        # Never seen; would otherwise hold up every letter and value behind.
                        self.counts["forwarder_errors"] += 1
                        log.exception("dead letter %s could not be recorded", letter.reject_id)
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
            pending = self.spool.pending_items(self.batch_size, after=self.forwarded_up_to)
            if not pending:
                self._remove_forwarded(wait=True)
                return recorded
            # A part batch means the spool is drained: after it, return and let run()
            # wait its interval, so the next capture call gets what arrived meanwhile
            # (each call is one database transaction with a fixed cost: few large calls).
            drained = sum(len(items) for _id, items in pending) < self.batch_size
            with _no_cycle_collection():
                recorded += self._forward(pending, bindings)
            if drained:
                self._remove_forwarded(wait=True)  # idle next: no reason to hurry
                return recorded

    def _forward(
        self,
        pending: list[tuple[int, list[Item]]],
        bindings: Callable[[str], TagBinding | None],
    ) -> int:
        """Capture one batch of pending deliveries, then remove them from the spool."""
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [])
        ids = []
        # Receive times are shared by a message's values, numbers often repeat:
        # each distinct text is parsed once per batch.
        times: dict[str, datetime] = {}
        numbers: dict[str, Decimal] = {}
        for spool_id, items in pending:
            delivered = _delivery_columns(items, bindings, times)
            if delivered is not None:
                for column, part in zip(columns, delivered, strict=True):
                    column += part
                ids.append(spool_id)
                continue
            # Something in this delivery is not plain (an unknown tag, a value or time
            # that does not parse, a malformed item): item by item, refusing what fails.
            refused: list[DeadLetter] = []
            kept = []
            skipped = 0
            for item in items:
                try:
                    if _is_not_numeric(item):
                        letter = self._not_numeric(item, bindings)
                        if letter is None:
                            skipped += 1  # unmapped: a state, an alarm, a name
                        else:
                            refused.append(letter)
                        continue
                    value = self._value_of(item, bindings, times, numbers)
                    if value is None:
                        # Inside the try: an unmapped item that is not a reading either
                        # (a value or time that does not parse) must not stop the pass,
                        # or its delivery would block every delivery behind it.
                        refused.append(self._unknown(item))
                        continue
                except Exception as exc:  # an item no value can be made of: a dead letter
                    refused.append(self._unrecordable(exc, item))
                    continue
                kept.append(item)
                for column, field in zip(columns, value, strict=True):
                    column.append(field)
            if refused:  # counted, logged, kept as dead letters; never retried
                self.spool.refuse(spool_id, kept, refused)
            # With refusals, refuse() left only what is kept (or removed the row). A row of
            # no items goes too: kept, it would be read again every pass, and a batch's
            # worth of them would block the spool.
            if kept or (skipped and not refused) or not items:
                ids.append(spool_id)
        recorded = self._capture(CapturedColumns(*columns)) if columns[0] else 0
        self._unremoved += ids
        self._remove_forwarded(wait=len(self._unremoved) >= _DEFER_ROWS)
        return recorded

    @staticmethod
    def _value_of(
        item: Item,
        bindings: Callable[[str], TagBinding | None],
        times: dict[str, datetime],
        numbers: dict[str, Decimal],
    ) -> tuple[Any, ...] | None:
        """The fields of the value spooled as ``item`` (CapturedValue's order), or None if
        its tag is not mapped; raises if no value can be made of it."""
        tag, value, source_ts, quality, server_ts, key = item
        binding = bindings(tag)
        if binding is None:
            return None
        if type(value) is not str:  # Decimal(True) is 1: only text is a number
            raise TypeError(f"spooled value {value!r:.80} is not text")
        # Cached by text: numbers equal as keys can differ as Decimals (0 and -0.0).
        number = numbers.get(value)
        if number is None:
            number = numbers[value] = Decimal(value)
        return (
            binding.batch_id,
            binding.parameter,
            tag,
            number,
            binding.unit,
            _time(source_ts),
            _received(server_ts, times),
            quality,
            key or None,
        )

    @property
    def forwarded_up_to(self) -> int:
        """Spool rows up to this id are recorded (or dead letters) and wait only for their
        removal (see :meth:`_remove_forwarded`); 0 when none waits."""
        unremoved = self._unremoved
        return unremoved[-1] if unremoved else 0

    def _remove_forwarded(self, *, wait: bool) -> None:
        """Remove the forwarded rows from the spool; without ``wait``, only if the spool
        is not locked by the ingest process's commit at this moment.

        A deferred row is skipped by the next reads (rows above the last one kept);
        row ids only grow while it exists, so no new delivery hides below it. If
        the process dies first, the row is forwarded again and the record skips
        the values it holds (by source key), as after a crash before any removal.
        """
        if self._unremoved and self.spool.remove(self._unremoved, wait=wait):
            self._unremoved = []

    def _capture(self, values: Sequence[CapturedValue]) -> int:
        """Capture ``values`` (one call: all or nothing); if the call fails for any reason
        but an outage, capture each half the same way — down to single values, each
        refused or unrecordable one a dead letter — so one bad value costs some tens of
        calls, not one call per value. Returns how many values were recorded."""
        try:
            self.engine.capture(values, source=self.source)
        except Exception as exc:
            if _outage(exc):
                raise  # the deliveries stay in the spool: tried again after back-off
            if len(values) < _SPLIT_BELOW:
                return self._one_by_one(values)
            log.info("%d values not captured together, halving: %s", len(values), exc)
            half = len(values) // 2
            return self._capture(values[:half]) + self._capture(values[half:])
        self.counts["recorded"] += len(values)
        return len(values)

    def _unknown(self, item: Item) -> DeadLetter:
        reading = reading_of(item)
        self.counts["unknown_tag"] += 1
        problem = Problem(
            "unknown_tag", f"tag {reading.tag!r} is not mapped to a batch parameter", reading.tag
        )
        log.warning("dropped %s: %s", reading.tag, problem.detail)
        return _spool_letter(problem, reading)

    def _not_numeric(
        self, item: Item, bindings: Callable[[str], TagBinding | None]
    ) -> DeadLetter | None:
        """A value that is not a number (a Sparkplug Boolean, String, null): refused as
        ``wrong_type`` if its tag is mapped — the batch must not silently miss it —
        else only counted (``not_numeric``): unmapped ones are normal in a plant-wide
        namespace and would flood the rejects table."""
        reading = reading_of(item)
        if bindings(reading.tag) is None:
            self.counts["not_numeric"] += 1
            return None
        self.counts["wrong_type"] += 1
        value = reading.value
        what = value.describe() if isinstance(value, NotNumeric) else str(value)
        problem = Problem(
            "wrong_type", f"value of {reading.tag!r} is not a number: {what}", reading.tag
        )
        log.warning("refused %s: %s", reading.tag, problem.detail)
        return _spool_letter(problem, reading)

    def _one_by_one(self, values: Sequence[CapturedValue]) -> int:
        # One refused value refuses a whole capture call: retry singly so the
        # good values are kept and only the refused ones become dead letters.
        # The deliveries leave the spool after all of their values were tried.
        recorded = 0
        for value in values:
            try:
                self.engine.capture([value], source=self.source)
            except CaptureRefused as exc:  # the engine audited the refusal on the batch
                self.counts["capture_refused"] += 1
                log.warning("refused %s: %s", value.tag, exc)
                self._dead_letter(Problem("capture_refused", _described(exc), value.tag), value)
            except Exception as exc:  # this value cannot be written: a dead letter
                if _outage(exc):
                    raise
                self._dead_letter(self._problem(exc, value.tag), value)
            else:
                recorded += 1
                self.counts["recorded"] += 1
        return recorded

    def _problem(self, exc: BaseException, tag: object) -> Problem:
        self.counts["unrecordable"] += 1
        log.warning("cannot record %s: %s", safe_text(tag, 300), _described(exc))
        return Problem("unrecordable", _described(exc), tag if isinstance(tag, str) else None)

    def _unrecordable(self, exc: BaseException, item: Any) -> DeadLetter:
        tag = item[0] if isinstance(item, list) and item else None
        return _spool_letter(self._problem(exc, tag), item)

    def _dead_letter(self, problem: Problem, item: Any) -> None:
        self.spool.reject(_spool_letter(problem, item))

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
            except Exception as exc:  # never a dead thread: counted, logged, tried again
                backoff = min(max_backoff, backoff * 2)
                self._count_failure(exc)
            self._stop.wait(backoff)
        try:  # leave no forwarded row behind on a clean stop
            self._remove_forwarded(wait=True)
        except Exception as exc:  # the spool itself failing: forwarded again, then skipped
            self._count_failure(exc)

    def _count_failure(self, exc: Exception) -> None:
        try:
            kept = len(self.spool)
        except Exception:  # the spool itself failing
            kept = -1
        if _outage(exc):  # database unreachable, locked
            self.counts["db_errors"] += 1
            log.warning("database unavailable, %d values kept in the spool: %s", kept, exc)
        elif isinstance(exc, sqlite3.Error):
            self.counts["spool_errors"] += 1
            log.warning("spool unavailable, values kept in it: %s", exc)
        else:
            self.counts["forwarder_errors"] += 1
            log.error("forwarding failed, %d values kept in the spool", kept, exc_info=exc)

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()


_AUDITED_ON_THE_BATCH = frozenset({"capture_refused"})
"""Dead-letter reasons that raise no data-quality exception: the engine already wrote the
refusal into the batch's audit trail (values arriving while a phase is not active would
otherwise be an exception each forwarding pass)."""


def _spool_letter(problem: Problem, what: object) -> DeadLetter:
    """The dead letter of ``problem`` for ``what`` the spool held (a reading, an item, a
    value): its repr, bounded, as the payload kept."""
    raw = safe_text(repr(what), MAX_KEPT).encode("utf-8")
    return DeadLetter.of(problem, "spool", raw, datetime.now(UTC))


def _is_not_numeric(item: object) -> bool:
    """True if ``item`` is a spooled value that is not a number (see ``NotNumeric``)."""
    return type(item) is list and len(item) == 6 and not_numeric_of(item[1]) is not None


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
