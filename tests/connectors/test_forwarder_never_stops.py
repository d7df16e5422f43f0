"""No value stops the forwarder: whatever one value does, the others are recorded.

A value whose time cannot be converted (an OverflowError), a spooled item no
value can be made of, a value the batch refuses, an unexpected failure of a
whole pass: each becomes a dead letter or a counted error, and delivery goes on.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from ebr_support import HEAT
from waiting import wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import Reading, TagBinding
from gxpmes.connectors.rejects import rejects_by_reason
from gxpmes.connectors.runner import ERROR_COUNTS, REJECT_REASONS, Status
from gxpmes.ebr.schema import RejectRow

BATCH = "B-OT-1"
TAG = "GRAN01/TT-101"


def now() -> datetime:
    return datetime.now(UTC)


def good(n: int, start: datetime, key: str = "g") -> list[Reading]:
    return [
        Reading(
            TAG, Decimal(f"70.{i:03d}"), start + timedelta(milliseconds=i), dedup_key=f"{key}{i}"
        )
        for i in range(n)
    ]


def recorded(plant: Any) -> list[str]:
    return [v["value"] for v in plant.engine.values(BATCH)]


def exceptions(plant: Any) -> list[str]:
    return [
        i.detail
        for i in plant.engine.review_by_exception(BATCH)
        if i.kind == "exception:data_quality"
    ]


def test_a_time_without_a_utc_instant_in_the_spool_is_a_dead_letter(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    """The reported attack, as a spool written before the decoders refused it holds it:
    year 1 at +01:00 (its UTC conversion overflows) between good values."""
    t0 = now() - timedelta(seconds=20)
    poison = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    spool.put(good(3, t0, "a"))
    spool.put([*good(2, t0 + timedelta(seconds=1), "b"), Reading(TAG, Decimal("70.6"), poison)])
    spool.put(good(2, t0 + timedelta(seconds=2), "c"))
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    assert forwarder.forward_once() == 7
    forwarder.forward_once()  # records the dead letter made on the way
    assert len(spool) == 0 and spool.rejected() == []
    assert len(recorded(running)) == 7 and "70.6" not in recorded(running)
    reasons = rejects_by_reason(running.db)
    assert sum(reasons.values()) == 1 and set(reasons) <= {"unrecordable", "capture_refused"}
    with running.db.read() as conn:
        (row,) = conn.execute(RejectRow.__table__.select()).all()
    assert row.tag == TAG and row.batch_id == BATCH and b"70.6" in row.payload
    if row.reason == "unrecordable":  # a data-quality exception on the batch, as for rejects
        assert any("unrecordable" in d for d in exceptions(running))


def test_an_item_no_value_can_be_made_of_is_a_dead_letter(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    t0 = now() - timedelta(seconds=20)
    spool.put(good(2, t0, "a"))
    # Rows the forwarder cannot build a value from (not a number: decimal.InvalidOperation;
    # not a time; not an item at all), written as a damaged or older spool could hold them.
    iso = (t0 + timedelta(seconds=1)).isoformat()
    bodies = [
        [[TAG, "abc", iso, "Good", None, "x1"], [TAG, "70.5", iso, "Good", None, "x2"]],
        [[TAG, "70.7", "not a time", "Good", None, "x3"]],
        [[TAG, "70.8"]],
        [[[TAG], "70.9", iso, "Good", None, "x4"]],
    ]
    with sqlite3.connect(spool.path) as conn:
        conn.executemany(
            "INSERT INTO pending (body, n) VALUES (?, ?)",
            [(orjson.dumps(body), len(body)) for body in bodies],
        )
    spool.put(good(2, t0 + timedelta(seconds=2), "c"))
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()
    assert len(spool) == 0 and spool.rejected() == []
    assert sorted(recorded(running)) == ["70.000", "70.000", "70.001", "70.001", "70.5"]
    assert rejects_by_reason(running.db) == {"unrecordable": 4}
    assert forwarder.counts["unrecordable"] == 4


def test_values_the_batch_refuses_are_dead_letters_found_by_halving(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    """One refused value among 300 (its parameter is not in the recipe) costs some tens of
    capture calls, not 300; it is kept as a ``capture_refused`` dead letter (the engine
    audited the refusal on the batch: no data-quality exception), the others are recorded."""
    tags.bind("GRAN01/XX-999", TagBinding(BATCH, f"{HEAT}/no_such_parameter", "Cel"))
    t0 = now() - timedelta(seconds=20)
    readings = good(300, t0)
    readings[137] = Reading("GRAN01/XX-999", Decimal("1"), t0, dedup_key="refused")
    spool.put(readings)
    calls = []
    real = running.engine.capture

    def capture(values, source):  # type: ignore[no-untyped-def]
        calls.append(len(values))
        return real(values, source=source)

    running.engine.capture = capture
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot, batch_size=1000)
    assert forwarder.forward_once() == 299
    forwarder.forward_once()
    assert len(recorded(running)) == 299
    assert len(calls) < 40
    assert rejects_by_reason(running.db) == {"capture_refused": 1}
    assert forwarder.counts["capture_refused"] == 1
    assert exceptions(running) == []
    assert "capture_refused" in REJECT_REASONS


def test_the_forwarder_thread_survives_any_failure_and_says_so(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    real = spool.pending_items
    failures = iter([RuntimeError("unexpected"), KeyError("x"), sqlite3.OperationalError("busy")])

    def pending_items(limit: int = 1000, after: int = 0) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(limit, after=after)

    spool.pending_items = pending_items  # type: ignore[method-assign]
    spool.put(good(3, now() - timedelta(seconds=20)))
    thread = threading.Thread(target=forwarder.run, kwargs={"interval": 0.01}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(recorded(running)) == 3, what="values recorded after the failures")
        assert thread.is_alive()
    finally:
        forwarder.stop()
        thread.join(10)
    assert forwarder.counts["forwarder_errors"] == 2
    assert forwarder.counts["spool_errors"] == 1
    assert "forwarder_errors" in ERROR_COUNTS
    errors = {k: forwarder.counts[k] for k in ERROR_COUNTS if forwarder.counts[k]}
    status = Status(3, 0, 0.0, 3, 0, {}, errors, 0, 0, 0)
    assert "3 errors (spool_errors 1, forwarder_errors 2)" in status.line(0.0)


def test_a_forwarder_thread_that_ended_anyway_is_started_again(running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Belt and braces: should ``run`` ever end before a stop (a BaseException, a defect),
    the status check starts it again and counts it as an error."""
    from gxpmes.connectors.runner import Connector

    config = {
        "tags": [{"tag": TAG, "batch": BATCH, "parameter": f"{HEAT}/temperature", "unit": "Cel"}],
        "account": running.ot.account_id,
        "client_id": running.ot.client_id,
    }
    connector = Connector(config, running.engine, tmp_path)
    real = connector.forwarder.run
    ended = []

    def run_once(*args: Any, **kwargs: Any) -> None:
        if not ended:
            ended.append(True)
            return  # the thread ends, as no exception in run() may make it
        real(*args, **kwargs)

    connector.forwarder.run = run_once  # type: ignore[method-assign]
    connector.start()
    try:
        wait_until(lambda: not connector._forward_thread.is_alive(), what="the thread ended")
        status = connector.status()
        assert status.errors == {"forwarder_restarts": 1}
        connector.spool.put(good(2, now() - timedelta(seconds=20)))
        wait_until(lambda: len(recorded(running)) == 2, what="values recorded by the new thread")
    finally:
        connector.stop()
        connector.close()


def test_a_spool_row_that_holds_no_delivery_is_set_aside(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    t0 = now() - timedelta(seconds=20)
    spool.put(good(2, t0, "a"))
    with sqlite3.connect(spool.path) as conn:
        conn.executemany(
            "INSERT INTO pending (body, n) VALUES (?, ?)",
            [
                (b"not json", 1),
                (b"5", 1),
                (b'{"tag": "x"}', 1),
                ("\ud800".encode("utf-8", "surrogatepass"), 1),
            ],
        )
    spool.put(good(2, t0 + timedelta(seconds=2), "c"))
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()
    assert len(spool) == 0 and spool.rejected() == []
    assert len(recorded(running)) == 4
    assert rejects_by_reason(running.db) == {"unrecordable": 4}
    assert not forwarder.counts["forwarder_errors"]


def test_a_locked_spool_defers_removal_and_nothing_is_forwarded_twice(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    """While the ingest process holds the spool's write lock, forwarded rows are not
    waited on: they are skipped by the next reads and removed once the lock is free."""
    t0 = now() - timedelta(seconds=20)
    for i in range(4):
        spool.put(good(3, t0 + timedelta(seconds=i), f"d{i}"))
    calls: list[list[str]] = []
    during_lock: list[bool] = []
    held = threading.Event()
    real = running.engine.capture

    def capture(values, source):  # type: ignore[no-untyped-def]
        calls.append([v.source_key for v in values])
        during_lock.append(held.is_set())
        return real(values, source=source)

    running.engine.capture = capture
    ingest = sqlite3.connect(spool.path, isolation_level=None, check_same_thread=False)
    ingest.execute("BEGIN IMMEDIATE")  # another process's group commit, in progress
    held.set()

    def release() -> None:
        held.clear()
        ingest.execute("COMMIT")

    forwarder = Forwarder(spool, running.engine, tags, source=running.ot, batch_size=3)
    released = threading.Timer(2.0, release)
    released.start()
    try:
        recorded_now = forwarder.forward_once()
    finally:
        released.join()
        ingest.close()
    assert recorded_now == 12
    keys = [key for call in calls for key in call]
    assert len(keys) == 12 and len(set(keys)) == 12  # each delivery forwarded once
    assert during_lock == [True] * 4  # one capture per delivery, none waited for the lock
    assert len(spool) == 0  # removed once the lock was free (the drained pass waits)
    assert sorted(recorded(running)) == sorted(["70.000", "70.001", "70.002"] * 4)


def test_remove_without_waiting_gives_up_on_a_locked_spool_and_keeps_the_rows(spool) -> None:  # type: ignore[no-untyped-def]
    spool.put(good(2, now() - timedelta(seconds=5)))
    ((row_id, _items),) = spool.pending_items(10)
    assert spool.pending_items(10, after=row_id) == []
    other = sqlite3.connect(spool.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        assert spool.remove([row_id], wait=False) is False
    finally:
        other.execute("COMMIT")
        other.close()
    assert len(spool) == 2
    assert spool.remove([row_id], wait=False) is True
    assert len(spool) == 0


def test_rows_waiting_only_for_removal_are_neither_buffered_nor_lag(running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Deliveries recorded while the spool was locked wait only for their removal: the
    status counts what still waits to be recorded, and its lag is that of the oldest."""
    from gxpmes.connectors.runner import Connector

    config = {
        "tags": [{"tag": TAG, "batch": BATCH, "parameter": f"{HEAT}/temperature", "unit": "Cel"}],
        "account": running.ot.account_id,
        "client_id": running.ot.client_id,
    }
    connector = Connector(config, running.engine, tmp_path)
    spool, forwarder = connector.spool, connector.forwarder
    old, young = now() - timedelta(hours=2), now() - timedelta(seconds=30)
    spool.put(good(2, old, "old"))
    spool.put(good(3, young, "young"))
    first = spool.pending_items(2)
    assert [len(items) for _id, items in first] == [2]
    other = sqlite3.connect(spool.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the ingest process's commit, in progress
    try:
        assert forwarder._forward(first, forwarder.tags.get_or_none) == 2
        assert len(spool) == 5 and forwarder.forwarded_up_to == first[0][0]  # deferred
        status = connector.status()
    finally:
        other.execute("COMMIT")
        other.close()
        connector.close()
    assert len(recorded(running)) == 2
    assert status.buffered == 3  # the young delivery only
    assert 25 < status.lag < 600  # its age, not the recorded old one's (two hours)
