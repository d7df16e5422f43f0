"""Automatic checkpoints: sign one every N entries or T seconds, publish it to every sink.

A :class:`CheckpointPublisher` runs beside a :class:`~audit.ledger.Ledger`:

* a *signer* thread wakes every ``every_seconds``, or as soon as an appender
  reports (through :meth:`Ledger.add_append_listener`) that the log grew by
  ``every_entries`` since the last checkpoint; if the log grew, it signs a
  C2SP checkpoint of the newest tail the ledger's own key vouches for and
  stores it in ``audit_checkpoint``;
* one *worker* thread per sink publishes the newest checkpoint to its sink
  and stores the receipt; a failing sink is retried with exponential
  back-off (``retry_initial`` doubling up to ``retry_max`` seconds) and then
  given the newest checkpoint, which covers the ones it missed.

Appenders never wait for either thread: the listener only compares two
integers and sets an event. The detection window this gives (what an
attacker who controls the database can remove without a trace) is at most
``every_entries - 1`` entries or ``every_seconds`` of entries plus the
sinks' lag, which :meth:`CheckpointPublisher.status` reports per sink.

The publisher signs only a tail covered by a tree head that verifies under
the ledger's head key (:mod:`audit.ledger`): rows an attacker inserted behind
the ledger's back are never vouched for by an outside checkpoint. It also
never publishes a smaller log than it published before (a log that shrank
is reported, not signed).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select, text

from audit.anchoring.sink import CheckpointSink, PublishedCheckpoint, Receipt
from audit.anchoring.store import record_checkpoint, record_receipt
from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.entry import GENESIS_PREV
from audit.errors import AnchorError, AuditError, CheckpointError, SinkRefused
from audit.ledger import Ledger
from audit.merkle import tree_hash
from audit.note import NoteSigner, NoteVerifier
from audit.schema import CheckpointReceiptRow, CheckpointRow, EntryRow, TreeHeadRow

__all__ = [
    "DEFAULT_EVERY_ENTRIES",
    "DEFAULT_EVERY_SECONDS",
    "CheckpointPublisher",
    "SinkStatus",
]

DEFAULT_EVERY_ENTRIES = 10_000
"""Default: a checkpoint at the latest after this many new entries."""
DEFAULT_EVERY_SECONDS = 1.0
"""Default: a checkpoint at the latest this many seconds after the log grew."""

_log = logging.getLogger("audit.anchoring")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SinkStatus:
    """How far one sink is behind the newest checkpoint (see :meth:`CheckpointPublisher.status`).

    ``lag_entries`` counts entries checkpointed but not yet held by the sink
    (all of them when it holds none); ``lag_seconds`` is how long the oldest
    checkpoint it has not taken has waited. ``refused`` is the sink's last
    refusal (an alarm: e.g. a witness saw an inconsistent log).
    """

    sink: str
    kind: str
    published_size: int | None
    published_at: datetime | None
    newest_size: int | None
    lag_entries: int
    lag_seconds: float
    failures: int
    last_error: str | None
    refused: str | None
    retry_in: float | None

    @property
    def healthy(self) -> bool:
        """Up to date or catching up without errors."""
        return self.failures == 0 and self.refused is None

    def describe(self) -> str:
        """One short phrase for a status line."""
        state = "ok" if self.healthy else ("REFUSED" if self.refused else "DOWN")
        text_ = f"{self.sink} {state} (lag {self.lag_entries} entries, {self.lag_seconds:.0f} s"
        if self.retry_in is not None and not self.healthy:
            text_ += f", retry in {self.retry_in:.0f} s"
        problem = self.refused or self.last_error
        return text_ + (f": {problem})" if problem and not self.healthy else ")")


@dataclass
class _SinkState:
    sink: CheckpointSink
    published: PublishedCheckpoint | None = None
    published_size: int | None = None
    published_at: datetime | None = None
    behind_since: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    refused: str | None = None
    refused_id: int | None = None
    retry_at: float = 0.0
    thread: threading.Thread | None = field(default=None, repr=False)


class CheckpointPublisher:
    """Signs checkpoints of ``ledger`` automatically and publishes them to ``sinks``.

    ``signer`` defaults to the ledger's head signer. Use as a context manager
    or call :meth:`start` and :meth:`stop`. :meth:`checkpoint_now` signs
    synchronously (e.g. at shutdown); :meth:`flush` waits until every sink
    holds the newest checkpoint.
    """

    def __init__(
        self,
        ledger: Ledger,
        sinks: Sequence[CheckpointSink] = (),
        *,
        signer: NoteSigner | None = None,
        every_entries: int = DEFAULT_EVERY_ENTRIES,
        every_seconds: float = DEFAULT_EVERY_SECONDS,
        clock: Callable[[], datetime] = _utc_now,
        retry_initial: float = 0.5,
        retry_max: float = 60.0,
    ) -> None:
        signer = signer if signer is not None else ledger.head_signer
        if signer is None:
            raise AnchorError("automatic checkpoints need a signing key (the ledger's head key)")
        if every_entries < 1 or every_seconds <= 0:
            raise AnchorError("checkpoint interval must be at least 1 entry and above 0 seconds")
        if retry_initial <= 0 or retry_max < retry_initial:
            raise AnchorError("retry back-off must be positive and retry_max >= retry_initial")
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise AnchorError(f"checkpoint sinks need unique names: {names}")
        self.ledger = ledger
        self.signer = signer
        head_signer = ledger.head_signer
        self._head_verifier: NoteVerifier = (head_signer or signer).verifier
        self.every_entries = every_entries
        self.every_seconds = every_seconds
        self._clock = clock
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._states = {s.name: _SinkState(s) for s in sinks}
        self._cond = threading.Condition()
        self._sign_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._signer_thread: threading.Thread | None = None
        self._newest: PublishedCheckpoint | None = None
        self._last_size = -1
        self._notified = 0  # the largest size an appender reported as due
        self._sequence = 0  # PublishedCheckpoint.id: this publisher's checkpoint number
        # Database copies of checkpoints (receipt None) and receipts, for the recorder thread.
        self._copies: queue.Queue[tuple[PublishedCheckpoint, Receipt | None] | None] = queue.Queue()
        self._recorder: threading.Thread | None = None
        self._problem: str | None = None
        self._load_history()

    # ----------------------------------------------------------- lifecycle

    def __enter__(self) -> CheckpointPublisher:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the signer and sink threads and listen to the ledger's appends."""
        if self._signer_thread is not None:
            return
        self._stop.clear()
        self.ledger.add_append_listener(self._on_append)
        self._signer_thread = threading.Thread(
            target=self._sign_loop, name="gxpmes-checkpoints", daemon=True
        )
        self._signer_thread.start()
        self._recorder = threading.Thread(
            target=self._record_loop, name="gxpmes-checkpoint-copies", daemon=True
        )
        self._recorder.start()
        for state in self._states.values():
            state.thread = threading.Thread(
                target=self._sink_loop,
                args=(state,),
                name=f"gxpmes-sink-{state.sink.name}",
                daemon=True,
            )
            state.thread.start()

    def stop(self, *, final_checkpoint: bool = True, timeout: float = 10.0) -> None:
        """Sign a last checkpoint (by default), give sinks up to ``timeout`` s, stop the threads."""
        if self._signer_thread is None:
            return
        self.ledger.remove_append_listener(self._on_append)
        if final_checkpoint:
            try:
                self.checkpoint_now()
            except AuditError as exc:
                _log.error("final checkpoint of %s failed: %s", self.ledger.origin, exc)
            self.flush(timeout)
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        self._signer_thread.join(timeout)
        for state in self._states.values():
            if state.thread is not None:
                state.thread.join(timeout)
                state.thread = None
        self._copies.put(None)  # after what the sinks queued: every copy is written first
        if self._recorder is not None:
            self._recorder.join(max(timeout, 60.0))
            self._recorder = None
        self._signer_thread = None

    # -------------------------------------------------------------- signing

    def _on_append(self, size: int) -> None:
        # In the appender's transaction: two integers and an event, nothing else.
        if size - max(self._last_size, 0) >= self.every_entries:
            self._notified = size
            self._wake.set()

    def _due(self) -> bool:
        # An appender reported a size that called for a checkpoint, and none covers it yet.
        return self._notified > self._last_size

    def _sign_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.every_seconds)
            self._wake.clear()
            # An appender reports its size just *before* its commit: until that size is
            # visible, look again every 10 ms (a rolled-back append is given up on after
            # 100 looks; the timer covers it).
            for _look in range(100):
                if self._stop.is_set():
                    return
                try:
                    self.checkpoint_now()
                except Exception as exc:  # the thread must live on; reported in status
                    self._problem = str(exc)
                    _log.error("automatic checkpoint of %s failed: %s", self.ledger.origin, exc)
                    break
                if not self._due():
                    break
                self._stop.wait(0.01)
            else:  # that size never became visible (rolled back): stop looking for it
                self._notified = self._last_size

    def checkpoint_now(self) -> PublishedCheckpoint | None:
        """Sign and store a checkpoint if the log grew; hand it to the sinks.

        Returns the new checkpoint, or None when there was nothing new.
        Raises :class:`AnchorError` when the newest tree head is not this
        ledger's or the log shrank (nothing is signed then).
        """
        with self._sign_lock:
            with self.ledger.engine.connect().execution_options(ledger_read=True) as conn:
                size, root, chain_head = self._vouched_tail(conn)
            if size < self._last_size:
                raise AnchorError(
                    f"the log {self.ledger.origin} holds {size} signed entries but a checkpoint "
                    f"of {self._last_size} was published: entries were removed; not signing"
                )
            if size == self._last_size or size == 0:
                return None
            now = self._clock()
            checkpoint = Checkpoint(self.ledger.origin, size, root, chain_head, now)
            note = sign_checkpoint(checkpoint, self.signer)
            self._sequence += 1
            published = PublishedCheckpoint(
                self._sequence, note.encode("utf-8"), checkpoint, self._prover(size)
            )
            self._last_size = size
            self._problem = None
            # To the sinks first: under heavy ingest the database's write lock can take
            # a second or more to get, and the sinks need not wait for the copy.
            with self._cond:
                self._newest = published
                for state in self._states.values():
                    if state.behind_since is None:
                        state.behind_since = now
                self._cond.notify_all()
            self._copies.put((published, None))
            return published

    def _record_loop(self) -> None:
        """Write checkpoint copies and receipts to the database, in order, off the hot paths.

        Under heavy ingest the write lock can take a second or more to get;
        neither signing nor publishing waits for it.
        """
        rows: dict[int, int] = {}  # PublishedCheckpoint.id -> audit_checkpoint.id
        while True:
            item = self._copies.get()
            if item is None:
                return
            published, receipt = item
            try:
                if receipt is None:
                    rows[published.id] = record_checkpoint(
                        self.ledger.engine,
                        published.tree_size,
                        published.note.decode("utf-8"),
                        published.timestamp,
                    )
                    for old in [k for k in rows if k < published.id - 10_000]:
                        del rows[old]
                elif published.id in rows:
                    record_receipt(self.ledger.engine, rows[published.id], receipt)
            except Exception as exc:  # the sinks hold the evidence; the copy is information
                _log.warning(
                    "copy of checkpoint %s (%s) not stored in the database: %s",
                    published.tree_size,
                    receipt.sink if receipt is not None else "checkpoint",
                    exc,
                )

    def _prover(self, size: int) -> Callable[[int], Sequence[bytes]]:
        def prove(old_size: int) -> Sequence[bytes]:
            return self.ledger.prove_consistency(old_size, size).path

        return prove

    def _vouched_tail(self, conn: Connection) -> tuple[int, bytes, bytes]:
        """Size, root and chain head of the newest tail a head signed by our key covers."""
        if (
            not self.ledger._has_heads
            or conn.scalar(select(func.max(TreeHeadRow.tree_size))) is None
        ):
            if self.ledger.head_signer is not None:
                return 0, tree_hash(0, self.ledger.hash_reader(conn)), GENESIS_PREV
            # A ledger without tree heads: its tail is all there is to vouch for.
            row = conn.execute(
                select(EntryRow.seq, EntryRow.leaf_hash).order_by(EntryRow.seq.desc()).limit(1)
            ).first()
            size, prev = (0, GENESIS_PREV) if row is None else (row.seq + 1, bytes(row.leaf_hash))
            return size, tree_hash(size, self.ledger.hash_reader(conn)), prev
        size, note = conn.execute(
            select(TreeHeadRow.tree_size, TreeHeadRow.note)
            .order_by(TreeHeadRow.tree_size.desc())
            .limit(1)
        ).one()
        try:
            opened = open_checkpoint(note)
        except CheckpointError as exc:
            raise AnchorError(f"the newest tree head (size {size}) is malformed: {exc}") from exc
        head = opened.checkpoint
        verifier = self._head_verifier
        message = opened.text.encode("utf-8")
        if not (
            head.origin == self.ledger.origin
            and head.tree_size == size
            and any(
                s.key_hash == verifier.key_hash and verifier.verify(message, s.signature)
                for s in opened.signatures
            )
        ):
            raise AnchorError(
                f"the newest tree head (size {size}) of {self.ledger.origin} is not signed by "
                f"this ledger's key {verifier.key_id}: not vouching for it"
            )
        return size, head.root, head.chain_head

    def _load_history(self) -> None:
        """What earlier runs published: the last size, and each sink's last receipt."""
        with self.ledger.engine.connect().execution_options(ledger_read=True) as conn:
            last = conn.scalar(select(func.max(CheckpointRow.tree_size)))
            self._last_size = -1 if last is None else int(last)
            for name, state in self._states.items():
                row = conn.execute(
                    select(CheckpointRow.tree_size, CheckpointReceiptRow.received_at)
                    .join(
                        CheckpointReceiptRow, CheckpointReceiptRow.checkpoint_id == CheckpointRow.id
                    )
                    .where(CheckpointReceiptRow.sink == name)
                    .order_by(CheckpointRow.tree_size.desc())
                    .limit(1)
                ).first()
                if row is not None:
                    state.published_size = int(row.tree_size)
                    state.published_at = datetime.fromisoformat(row.received_at)
            conn.execute(text("SELECT 1"))

    # ------------------------------------------------------------ publishing

    def _sink_loop(self, state: _SinkState) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop.is_set():
                        return
                    target = self._newest
                    pending = target is not None and target.id not in (
                        getattr(state.published, "id", None),
                        state.refused_id,
                    )
                    wait = state.retry_at - time.monotonic()
                    if pending and wait <= 0:
                        break
                    self._cond.wait(wait if pending else None)
            assert target is not None
            self._publish_one(state, target)

    def _publish_one(self, state: _SinkState, target: PublishedCheckpoint) -> None:
        sink = state.sink
        try:
            receipt = sink.publish(target)
            if receipt.sink != sink.name:
                raise AnchorError(f"sink {sink.name} returned a receipt of {receipt.sink}")
        except SinkRefused as exc:
            with self._cond:
                state.refused, state.refused_id = str(exc), target.id
                self._cond.notify_all()  # flush() waits for "held or refused"
            _log.error(
                "checkpoint sink %s REFUSED checkpoint %s of %s: %s",
                sink.name,
                target.tree_size,
                target.origin,
                exc,
            )
            return
        except Exception as exc:  # any failure is retried; never kills the thread
            with self._cond:
                state.failures += 1
                state.last_error = str(exc) or type(exc).__name__
                delay = min(self._retry_max, self._retry_initial * 2 ** (state.failures - 1))
                state.retry_at = time.monotonic() + delay
            _log.warning(
                "checkpoint sink %s unavailable (attempt %s, retry in %.1f s): %s",
                sink.name,
                state.failures,
                delay,
                state.last_error,
            )
            return
        with self._cond:
            state.published = target
            state.published_size = target.tree_size
            state.published_at = receipt.received_at
            state.failures, state.last_error, state.retry_at = 0, None, 0.0
            state.refused, state.refused_id = None, None
            newest = self._newest
            state.behind_since = (
                None if newest is None or newest.id == target.id else newest.timestamp
            )
            self._cond.notify_all()
        self._copies.put((target, receipt))

    # --------------------------------------------------------------- status

    @property
    def newest(self) -> PublishedCheckpoint | None:
        """The newest checkpoint signed by this publisher."""
        return self._newest

    @property
    def problem(self) -> str | None:
        """Why the last automatic checkpoint could not be signed, if it could not."""
        return self._problem

    def status(self) -> list[SinkStatus]:
        """Per-sink lag: entries and seconds behind the newest checkpoint."""
        now = self._clock()
        mono = time.monotonic()
        with self._cond:
            newest = self._newest
            newest_size = newest.tree_size if newest is not None else None
            if newest_size is None and self._last_size >= 0:
                newest_size = self._last_size
            result = []
            for state in self._states.values():
                held = state.published_size or 0
                lag = max(0, (newest_size or 0) - held)
                since = state.behind_since if lag else None
                result.append(
                    SinkStatus(
                        sink=state.sink.name,
                        kind=state.sink.kind,
                        published_size=state.published_size,
                        published_at=state.published_at,
                        newest_size=newest_size,
                        lag_entries=lag,
                        lag_seconds=max(0.0, (now - since).total_seconds()) if since else 0.0,
                        failures=state.failures,
                        last_error=state.last_error,
                        refused=state.refused,
                        retry_in=max(0.0, state.retry_at - mono) if state.failures else None,
                    )
                )
            return result

    def status_line(self) -> str:
        """``checkpoints: size N; <sink> ok (lag ...); ...`` for a status line."""
        newest = self._newest
        head = f"checkpoint {newest.tree_size}" if newest is not None else "no checkpoint yet"
        if self._problem:
            head += f" (SIGNING FAILED: {self._problem})"
        sinks = "; ".join(s.describe() for s in self.status()) or "no sinks configured"
        return f"anchors: {head}; {sinks}"

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every sink holds (or refused) the newest checkpoint; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                newest = self._newest
                if newest is None or all(
                    newest.id in (getattr(s.published, "id", None), s.refused_id)
                    for s in self._states.values()
                ):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._signer_thread is None:
                    return False
                self._cond.wait(remaining)
