"""The spool across processes: dedup-key retention, crash safety, the MQTT ingest process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from waiting import wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import Reading, TagBinding
from gxpmes.connectors.runner import Connector
from gxpmes.connectors.spool import Spool

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class Clock:
    """Seconds that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def reading(i: int) -> Reading:
    return Reading("GRAN01/TT-101", Decimal(i), NOW + timedelta(seconds=i), dedup_key=f"k{i}")


def forward(spool: Spool) -> None:
    """What the forwarder does once the values are recorded: remove their deliveries."""
    spool.remove([row_id for row_id, _items in spool.pending_items(1_000_000)])


# --------------------------------------------------------------------------- seen retention


def test_a_key_is_kept_while_its_value_waits_and_for_the_window_after(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "s.db", seen_retention=600, clock=clock)
    try:
        assert spool.put([reading(0), reading(1)]) == 2
        clock.now += 601
        assert spool.prune_seen() == 0  # a new generation opens; the first still guards
        assert spool.put([reading(0)]) == 0  # redelivered: dropped
        clock.now += 3600
        assert spool.prune_seen() == 0  # its values have not been recorded: still kept
        assert spool.put([reading(1)]) == 0
        forward(spool)
        assert spool.prune_seen() == 1  # recorded, and closed for longer than the window
        assert spool.seen_count() == 0
        assert spool.put([reading(0)]) == 1  # past the window: spooled (the record skips it)
    finally:
        spool.close()


def test_a_redelivery_right_after_a_restart_is_dropped(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "s.db", seen_retention=600, clock=clock)
    spool.put([reading(0)])
    forward(spool)
    clock.now += 601
    spool.prune_seen()  # closes the generation holding k0
    spool.close()
    clock.now += 7 * 24 * 3600  # the connector was down for a week
    again = Spool(tmp_path / "s.db", seen_retention=600, clock=clock)
    try:
        assert again.prune_seen() == 0  # this process has not run for the window yet
        assert again.put([reading(0)]) == 0  # what the broker redelivers at reconnect
        clock.now += 601
        # The generation holding k0, and the (empty) one that was newest at the restart.
        assert again.prune_seen() == 2
        assert again.seen_count() == 0
    finally:
        again.close()


@settings(max_examples=15, deadline=None)
@given(
    retention=st.integers(60, 900),
    step=st.integers(1, 120),
    per_step=st.integers(1, 30),
    lag=st.integers(0, 5),
)
def test_seen_stays_bounded_and_recent_redeliveries_are_dropped(  # type: ignore[no-untyped-def]
    tmp_path_factory, retention, step, per_step, lag
) -> None:
    """A long run (300 steps): keys of values still waiting, and of the last window, are
    always found; the table never holds more than about two windows of keys."""
    clock = Clock()
    spool = Spool(tmp_path_factory.mktemp("s") / "s.db", seen_retention=retention, clock=clock)
    try:
        clock.now += retention  # this process has run a window already
        waiting: list[list[int]] = []  # what the forwarder has not recorded yet (lag steps)
        history: list[tuple[float, int]] = []
        n = 0
        peak = 0
        for _ in range(300):
            keys = list(range(n, n + per_step))
            n += per_step
            assert spool.put([reading(i) for i in keys]) == per_step
            history.append((clock.now, keys[0]))
            waiting.append(keys)
            if len(waiting) > lag:
                rows = spool.pending_items(per_step)
                spool.remove([row_id for row_id, _items in rows])
                waiting.pop(0)
            clock.now += step
            spool.prune_seen()
            # Redeliveries of anything spooled within the window, or still waiting, are dropped.
            recent = [first for at, first in history if clock.now - at <= retention]
            for first in recent[:3] + recent[-3:] + [w[0] for w in waiting]:
                assert spool.put([reading(first)]) == 0
            peak = max(peak, spool.seen_count())
        window = (2 * retention + 2 * step) // step + lag + 2
        assert peak <= window * per_step
    finally:
        spool.close()


def test_an_older_spool_is_read_and_its_keys_still_count(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE pending (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)")
    conn.execute("CREATE TABLE seen (key TEXT PRIMARY KEY)")
    body = {
        "tag": "T",
        "value": "70.5",
        "source_ts": NOW.isoformat(),
        "server_ts": None,
        "quality": "Good",
        "key": "old-1",
    }
    conn.execute("INSERT INTO pending (body) VALUES (?)", (json.dumps(body),))
    conn.executemany("INSERT INTO seen (key) VALUES (?)", [("old-1",), ("old-2",)])
    conn.commit()
    conn.close()
    clock = Clock()
    spool = Spool(path, seen_retention=60, clock=clock)
    try:
        assert len(spool) == 1
        [(_row, old)] = spool.peek()
        assert (old.tag, old.value, old.source_ts, old.dedup_key) == (
            "T",
            Decimal("70.5"),
            NOW,
            "old-1",
        )
        redelivered = Reading("T", Decimal(1), NOW, dedup_key="old-2")
        assert spool.put([redelivered]) == 0  # a key of the old table
        forward(spool)
        clock.now += 61
        assert spool.prune_seen() == 1  # the old table is a generation like the others
        assert spool.put([redelivered]) == 1
    finally:
        spool.close()


def test_a_spool_of_bare_digest_keys_still_drops_their_redeliveries(tmp_path: Path) -> None:
    """Generations written before keys began with the source time keep guarding."""
    import hashlib

    path = tmp_path / "digests.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE pending (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, "
        "n INTEGER NOT NULL DEFAULT 1)"
    )
    conn.execute(
        "CREATE TABLE seen_gen (gen INTEGER PRIMARY KEY, opened REAL NOT NULL, "
        "last_pending INTEGER)"
    )
    conn.execute("INSERT INTO seen_gen (gen, opened) VALUES (1, 1000000.0)")
    conn.execute("CREATE TABLE seen_1 (key BLOB PRIMARY KEY) WITHOUT ROWID")
    conn.executemany(
        "INSERT INTO seen_1 (key) VALUES (?)",
        [(hashlib.blake2b(f"k{i}".encode(), digest_size=16).digest(),) for i in range(3)],
    )
    conn.commit()
    conn.close()
    clock = Clock()
    spool = Spool(path, seen_retention=60, clock=clock)
    try:
        assert spool.put([reading(0), reading(1)]) == 0  # keys of the old generation
        assert spool.put([reading(2), reading(3)]) == 1
        assert spool.put([reading(3)]) == 0  # a key of the new (timed) generation
        assert spool.seen_count() == 4
        clock.now += 61
        assert spool.prune_seen() == 1  # the old generation goes like any other
        assert spool.put([reading(0)]) == 1
        assert spool.put([reading(3)]) == 0
    finally:
        spool.close()


@settings(max_examples=40, deadline=None)
@given(
    groups=st.lists(
        st.lists(st.tuples(st.integers(0, 6), st.integers(-2, 2)), max_size=8), max_size=10
    ),
    returning=st.booleans(),
)
def test_a_key_is_its_source_instant_and_dedup_key(  # type: ignore[no-untyped-def]
    tmp_path_factory, groups, returning
) -> None:
    """A reading is a duplicate exactly when one with the same dedup key *and* the same
    source instant was spooled (in whatever UTC offset, or naive as UTC), with SQLite's
    RETURNING or without it."""
    import gxpmes.connectors.spool as spool_module

    def one(key: int, at: int) -> Reading:
        instant = NOW + timedelta(microseconds=at)
        offset = timezone(timedelta(hours=key % 3 - 1, minutes=30 * (at % 2)))
        moment = instant.replace(tzinfo=None) if at == 2 else instant.astimezone(offset)
        return Reading("T", Decimal(key), moment, dedup_key=f"k{key}")

    saved = spool_module._RETURNING
    spool_module._RETURNING = returning and saved
    spool = Spool(tmp_path_factory.mktemp("s") / "s.db")
    try:
        seen: set[tuple[int, int]] = set()
        for group in groups:
            assert spool.put([one(k, t) for k, t in group]) == len(
                [x for x in dict.fromkeys(group) if x not in seen]
            )
            seen.update(group)
        assert spool.seen_count() == len(seen)
    finally:
        spool_module._RETURNING = saved
        spool.close()


# --------------------------------------------------------------------------- crash safety


def test_a_crash_between_capture_and_spool_removal_records_nothing_twice(  # type: ignore[no-untyped-def]
    running, tags, tmp_path: Path
) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path)
    spool.put([reading(i) for i in range(50)])
    spool.put([reading(i) for i in range(50, 120)])
    # Whole deliveries per capture call: the first call takes the first delivery.
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot, batch_size=50)

    def crash(ids: list[int], *, wait: bool = True) -> bool:
        raise SystemExit("killed after the capture committed")

    spool.remove = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        forwarder.forward_once()
    spool.close()
    assert len(running.engine.values(BATCH)) == 50  # the first capture call committed
    again = Spool(path)  # the restarted connector
    try:
        assert len(again) == 120  # nothing left the spool
        restarted = Forwarder(again, running.engine, tags, source=running.ot, batch_size=50)
        restarted.forward_once()
        assert len(again) == 0
    finally:
        again.close()
    values = running.engine.values(BATCH)
    assert sorted(int(v["value"]) for v in values) == list(range(120))  # each once


# --------------------------------------------------------------------------- ingest process


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def ingest_processes() -> list[int]:
    """This process's children started by multiprocessing (the MQTT ingest process)."""
    return [
        pid
        for pid in children(os.getpid())
        if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    ]


def open_session(topic: str, client_id: str) -> None:
    """The connector's persistent session at the broker, so messages published while its
    ingest process restarts are queued for it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    subscribed: list[bool] = []
    client.on_subscribe = lambda *_args: subscribed.append(True)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        wait_until(lambda: subscribed, what="the broker confirms the subscription")
    finally:
        client.disconnect()
        client.loop_stop()


def config(topic: str, client_id: str) -> dict[str, Any]:
    return {
        "spool": "spool.db",
        "account": "svc-ot",
        "tags": [
            {
                "tag": "GRAN01/TT-101",
                "batch": BATCH,
                "parameter": f"{HEAT}/temperature",
                "unit": "Cel",
                "topic": topic,
            }
        ],
        "mqtt": {"client_id": client_id, "topics": [topic], "report_interval": 0.1},
    }


def test_a_killed_ingest_process_is_restarted_and_nothing_is_lost_or_doubled(  # type: ignore[no-untyped-def]
    running, broker, tmp_path: Path
) -> None:
    topic = f"test/{uuid.uuid4().hex[:8]}/pv"
    client_id = f"gx-{uuid.uuid4().hex[:8]}"
    open_session(topic, client_id)
    connector = Connector(config(topic, client_id), running.engine, tmp_path)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    base = datetime.now(UTC)

    def send(i: int) -> None:
        body = {"value": f"{70 + i / 10:.1f}", "ts": (base + timedelta(milliseconds=i)).isoformat()}
        pub.publish(topic, json.dumps(body), qos=1).wait_for_publish(30)

    connector.start()
    try:
        for i in range(100):
            send(i)
        wait_until(lambda: connector.status().recorded >= 100, what="100 recorded")
        [ingest] = ingest_processes()
        os.kill(ingest, signal.SIGKILL)
        for i in range(100, 200):  # queued by the broker while no process is connected
            send(i)
        wait_until(lambda: connector.status().recorded >= 200, what="200 recorded")
        assert connector.status().errors == {"ingest_restarts": 1}
        connector.stop()
        assert not Path(f"/proc/{ingest}").exists()
        assert not ingest_processes(), "the ingest process outlived a clean stop"
        status = connector.status()
        assert status.buffered == 0 and status.errors == {"ingest_restarts": 1}
    finally:
        connector.close()
        pub.loop_stop()
    values = running.engine.values(BATCH)
    keys = [v["source_key"] for v in values]
    assert len(values) == 200 and len(set(keys)) == 200


def test_a_clean_stop_ends_the_ingest_process_without_an_error(  # type: ignore[no-untyped-def]
    running, broker, tmp_path: Path
) -> None:
    topic = f"test/{uuid.uuid4().hex[:8]}/pv"
    client_id = f"gx-{uuid.uuid4().hex[:8]}"
    connector = Connector(config(topic, client_id), running.engine, tmp_path)
    connector.start()
    try:
        source = connector.sources[0]
        assert source.connected.wait(60)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
        pub.connect("127.0.0.1", 1883)
        pub.loop_start()
        pub.publish(topic, b"{not json", qos=1).wait_for_publish(30)
        pub.publish(
            topic, json.dumps({"value": 1, "ts": datetime.now(UTC).isoformat()}), qos=1
        ).wait_for_publish(30)
        pub.loop_stop()
        wait_until(lambda: connector.status().recorded >= 1, what="the value recorded")
        connector.stop()
        status = connector.status()
    finally:
        connector.close()
    assert status.errors == {} and status.rejects == {"malformed": 1}
    assert status.received == 1 and status.buffered == 0 and status.lag == 0.0
    assert not source._process.is_alive() and source._process.exitcode == 0


_SPOOLED_TIMES = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    st.sampled_from(["", "not a time", "2026-13-01T00:00:00+00:00"]),
)
_SPOOLED_ITEMS = st.one_of(
    st.tuples(
        st.sampled_from(["T-1", "T-2", "T-unmapped"]),
        st.one_of(
            st.decimals(allow_nan=False, allow_infinity=False).map(str),
            st.sampled_from(["1.5", "NaN", "x", "1e999999999"]),
        ),
        _SPOOLED_TIMES,
        st.sampled_from(["Good", "Bad"]),
        st.none() | _SPOOLED_TIMES,
        st.none() | st.sampled_from(["", "k1", "k2"]),
    ).map(list),
    st.lists(st.just("T-1"), max_size=7),  # not six fields
)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(_SPOOLED_ITEMS, max_size=8), shared_server=st.booleans())
def test_a_deliverys_columns_are_its_values_one_by_one(  # type: ignore[no-untyped-def]
    items, shared_server
) -> None:
    """The column-wise build of a delivery gives the item-by-item path's values, or
    None when any item would fail there (which then says which, and why)."""
    from gxpmes.connectors.forwarder import Forwarder, _delivery_columns

    if shared_server:  # a message's values usually share their receive time
        for item in items:
            if len(item) == 6:
                item[4] = "2026-12-03T10:00:00.5+00:00"
    bindings = {
        "T-1": TagBinding(BATCH, f"{HEAT}/temperature", "Cel"),
        "T-2": TagBinding("B-2", f"{HEAT}/pressure", "bar"),
    }.get
    expected: list[tuple[object, ...]] | None = []
    for item in items:
        try:
            value = Forwarder._value_of(item, bindings, {}, {})
        except Exception:
            expected = None
            break
        if value is None:
            expected = None
            break
        expected.append(value)
    columns = _delivery_columns(items, bindings, {})
    if expected is None or not items:
        assert columns is None
    else:
        assert columns is not None
        # repr: Decimal('NaN') is not equal to itself, its text is
        assert repr(list(zip(*columns, strict=True))) == repr(expected)


def test_an_unmapped_item_that_is_no_reading_does_not_block_the_spool(  # type: ignore[no-untyped-def]
    running, tags, tmp_path: Path
) -> None:
    """An unmapped tag sends its delivery down the item-by-item path; an item there that
    is not a reading either (its value or time does not parse, its tag is not text) is a
    dead letter, and the deliveries behind it are recorded, not held up pass after pass."""
    from gxpmes.connectors.rejects import rejects_by_reason

    spool = Spool(tmp_path / "spool.db")
    iso = (datetime.now(UTC) - timedelta(seconds=10)).isoformat()
    bodies = [
        [["NOT-MAPPED", "abc", iso, "Good", None, "u1"]],
        [["NOT-MAPPED", "70", "not a time", "Good", None, "u2"]],
        [[7, "70", iso, "Good", None, "u3"], ["GRAN01/TT-101", "70.5", iso, "Good", None, "g1"]],
        # Numbers, not text (as only a damaged spool holds them): dead letters, never
        # recorded through a cache that holds 0 and -0.0 as one key.
        [
            ["GRAN01/TT-101", 0, iso, "Good", None, "z0"],
            ["GRAN01/TT-101", -0.0, iso, "Good", None, "z1"],
            ["NOT-MAPPED", "1", iso, "Good", None, "u4"],
        ],
    ]
    with sqlite3.connect(spool.path) as conn:
        conn.executemany(
            "INSERT INTO pending (body, n) VALUES (?, ?)",
            [(json.dumps(body), len(body)) for body in bodies],
        )
    spool.put([reading(1)])
    try:
        forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
        assert forwarder.forward_once() == 2
        forwarder.forward_once()  # records the dead letters made on the way
        assert len(spool) == 0 and spool.rejected() == []
    finally:
        spool.close()
    assert not forwarder.counts["forwarder_errors"]
    values = {v["source_key"]: v["value"] for v in running.engine.values(BATCH)}
    assert values == {"g1": "70.5", "k1": "1"}
    assert rejects_by_reason(running.db) == {"unrecordable": 5, "unknown_tag": 1}


def test_a_delivery_of_no_items_leaves_the_spool(running, tags, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A spool row of no items (only a damaged or foreign spool holds one: put() writes
    none) is removed like any forwarded delivery; kept, a batch's worth of them would be
    read again every pass, and the values behind them never."""
    spool = Spool(tmp_path / "spool.db")
    with sqlite3.connect(spool.path) as conn:
        conn.executemany("INSERT INTO pending (body, n) VALUES (?, ?)", [("[]", 0)] * 3)
    spool.put([reading(1)])
    try:
        forwarder = Forwarder(spool, running.engine, tags, source=running.ot, batch_size=2)
        recorded = sum(forwarder.forward_once() for _ in range(3))
        with sqlite3.connect(spool.path) as conn:
            assert conn.execute("SELECT count(*) FROM pending").fetchone() == (0,)
    finally:
        spool.close()
    assert recorded == 1 and [v["source_key"] for v in running.engine.values(BATCH)] == ["k1"]


def test_the_ingest_process_reports_reach_the_status_counters() -> None:
    """Counters, the broker's dropped count and errors arrive over the pipe; the
    counters of a process that died are kept when its successor reports."""
    import multiprocessing

    from gxpmes.connectors.mqtt import MqttProcess

    handle = MqttProcess({})
    receive, send = multiprocessing.Pipe(duplex=False)
    handle._receive = receive
    send.send({"error": "ConfigurationError: ignored, logged"})
    send.send(
        {
            "counts": {"received": 10, "malformed": 2, "session_lost": 1},
            "broker_dropped": 7,
            "connected": True,
            "cpu": 1.5,
        }
    )
    assert handle.counts == {"received": 10, "malformed": 2, "session_lost": 1}
    assert handle.broker_dropped == 7 and handle.connected.is_set() and handle.cpu == 1.5
    handle._base.update(handle._last["counts"])  # what the watchdog keeps of a dead process
    handle._last = {}
    send.send({"counts": {"received": 3}, "broker_dropped": 9, "connected": False, "cpu": 0.1})
    assert handle.counts["received"] == 13 and handle.counts["malformed"] == 2
    assert handle.broker_dropped == 9 and not handle.connected.is_set()
