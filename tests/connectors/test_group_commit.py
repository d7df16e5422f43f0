"""Group commit: many messages per durable spool transaction, each acknowledged only after it."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from waiting import DEADLINE, wait_until

from gxpmes.connectors.groupcommit import Delivery, GroupCommit
from gxpmes.connectors.model import DeadLetter, Problem, Reading
from gxpmes.connectors.mqtt import MqttSource
from gxpmes.connectors.spool import Spool
from gxpmes.errors import ConfigurationError

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def reading(i: int, key: str | None = None) -> Reading:
    return Reading(
        "GRAN01/TT-101",
        Decimal("70.1"),
        NOW + timedelta(seconds=i),
        dedup_key=f"k{i}" if key is None else key,
    )


def on_disk(path: Path) -> set[str]:
    """Dedup keys committed to the spool file, seen through another connection."""
    conn = sqlite3.connect(path)
    try:
        # One row per delivery: a JSON array of [tag, value, source_ts, quality, server_ts, key].
        rows = conn.execute("SELECT body FROM pending")
        return {item[5] for row in rows for item in json.loads(row[0])}
    finally:
        conn.close()


def letter(reason: str = "malformed") -> DeadLetter:
    return DeadLetter.of(Problem(reason, "bad"), "test/topic", b"\xff", NOW)


def test_put_many_is_one_transaction_with_dedup_letters_and_last_state(spool: Spool) -> None:
    spool.put([reading(0)])
    news = spool.put_many(
        [
            ([reading(0), reading(1)], [], {"s": "1"}),  # k0 spooled before
            ([reading(1), reading(2)], [letter()], {"s": "2"}),  # k1 repeated in the group
            ([reading(3, key="")], [], {}),  # no key: always stored
        ]
    )
    assert news == [1, 1, 1]
    assert len(spool) == 4
    assert spool.get_state("s") == "2"
    assert [x.reason for _id, x in spool.rejected()] == ["malformed"]


def test_put_many_stores_nothing_when_anything_fails(spool: Spool) -> None:
    bad = Reading("T", Decimal("1"), NOW, dedup_key=b"not text")  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - whatever SQLite or json raise
        spool.put_many([([reading(0)], [letter()], {"s": "1"}), ([bad], [], {})])
    assert len(spool) == 0 and spool.rejected_count() == 0 and spool.get_state("s") is None
    assert spool.put([reading(0)]) == 1  # its key was not kept either


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=8), max_size=12))
def test_put_many_keeps_each_key_once_in_order(tmp_path_factory, groups) -> None:  # type: ignore[no-untyped-def]
    spool = Spool(tmp_path_factory.mktemp("s") / "spool.db")
    try:
        news = spool.put_many([([reading(i) for i in g], [], {}) for g in groups])
        expected, seen = [], set()
        for g in groups:
            fresh = [i for i in dict.fromkeys(g) if i not in seen]
            seen.update(fresh)
            expected.append(fresh)
        assert news == [len(f) for f in expected]
        assert [r.dedup_key for _id, r in spool.peek(10_000)] == [
            f"k{i}" for f in expected for i in f
        ]
    finally:
        spool.close()


class HeldSpool(Spool):
    """A spool whose first put_many waits until released, so deliveries pile up behind it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()
        self.groups: list[int] = []

    def put_many(self, deliveries):  # type: ignore[no-untyped-def,override]
        if not self.groups:
            self.groups.append(len(deliveries))
            self.release.wait(DEADLINE)
            return super().put_many(deliveries)
        self.groups.append(len(deliveries))
        return super().put_many(deliveries)


def test_deliveries_waiting_during_a_commit_share_the_next_one_and_are_acked_after_it(
    tmp_path: Path,
) -> None:
    spool = HeldSpool(tmp_path / "spool.db")
    acked: list[int] = []
    durable_at_ack: list[bool] = []

    def ack(i: int) -> None:
        durable_at_ack.append(f"k{i}" in on_disk(spool.path))
        acked.append(i)

    writer = GroupCommit(spool)
    try:
        writer.submit(Delivery([reading(0)], ack=lambda: ack(0)))
        wait_until(lambda: spool.groups == [1], what="the first commit started")
        for i in range(1, 50):
            writer.submit(Delivery([reading(i)], ack=lambda i=i: ack(i)))
        assert acked == []  # nothing acknowledged while the first commit is not durable
        spool.release.set()
        assert writer.flush(DEADLINE)
    finally:
        writer.close()
        spool.close()
    assert acked == list(range(50))  # in arrival order
    assert all(durable_at_ack)
    assert spool.groups[0] == 1 and spool.groups[1:] == [49]  # one commit for the 49 waiting
    assert writer.counts["commits"] == 2 and writer.counts["deliveries"] == 50


def test_group_size_is_bounded(spool: Spool) -> None:
    with pytest.raises(ValueError):
        GroupCommit(spool, max_values=0)
    writer = GroupCommit(spool, max_values=10, max_queued=100)
    try:
        for i in range(0, 100, 5):
            writer.submit(Delivery([reading(i + j) for j in range(5)]))
        assert writer.flush(DEADLINE)
    finally:
        writer.close()
    assert len(spool) == 100 and writer.counts["commits"] >= 10


def test_a_spool_that_cannot_be_written_acknowledges_nothing(spool: Spool) -> None:
    def broken(deliveries):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("disk I/O error")

    spool.put_many = broken  # type: ignore[method-assign]
    acked: list[int] = []
    writer = GroupCommit(spool)
    try:
        for i in range(3):
            writer.submit(Delivery([reading(i)], ack=lambda i=i: acked.append(i)))
        assert writer.flush(DEADLINE)
    finally:
        writer.close()
    assert acked == [] and writer.counts["spool_errors"] >= 1


def test_content_the_spool_refuses_becomes_a_dead_letter_and_the_others_are_kept(
    spool: Spool,
) -> None:
    bad = Reading("T", Decimal("1"), NOW, dedup_key=b"not text")  # type: ignore[arg-type]
    acked: list[str] = []
    writer = GroupCommit(spool)
    try:
        writer.submit(Delivery([reading(0)], ack=lambda: acked.append("a")))
        writer.submit(
            Delivery(
                [bad],
                [letter("tag_override")],
                ack=lambda: acked.append("bad"),
                unspoolable=lambda exc: letter("unspoolable"),
            )
        )
        writer.submit(Delivery([reading(1)], ack=lambda: acked.append("b")))
        assert writer.flush(DEADLINE)
    finally:
        writer.close()
    assert acked == ["a", "bad", "b"]
    assert {r.dedup_key for _id, r in spool.peek()} == {"k0", "k1"}
    assert sorted(x.reason for _id, x in spool.rejected()) == ["tag_override", "unspoolable"]


def test_receive_maximum_is_checked(spool: Spool) -> None:
    with pytest.raises(ConfigurationError):
        MqttSource(spool, protocol="5", receive_maximum=0)
    with pytest.raises(ConfigurationError):
        MqttSource(spool, group_commit_values=0)


def test_mqtt5_messages_wait_for_one_commit_and_are_acked_after_it(
    tmp_path: Path, broker: tuple[str, int]
) -> None:
    """With the spool held, the broker sends up to receive_maximum unacknowledged
    messages; they are committed together, and each PUBACK follows the commit."""
    spool = HeldSpool(tmp_path / "spool.db")
    topic = f"test/{uuid.uuid4().hex[:8]}/TT-101"
    source = MqttSource(
        spool,
        host=broker[0],
        port=broker[1],
        topics=[topic],
        client_id=f"gx-{uuid.uuid4().hex[:6]}",
        clean_session=True,
        protocol="5",
        receive_maximum=200,
    )
    acks: list[tuple[int, bool]] = []
    real_ack = source.client.ack

    def ack(mid: int, qos: int) -> None:
        acks.append((mid, len(spool) > 0))
        real_ack(mid, qos)

    source.client.ack = ack  # type: ignore[method-assign]
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    pub.max_inflight_messages_set(200)
    pub.connect(*broker)
    pub.loop_start()
    source.start()
    try:
        assert source.connected.wait(DEADLINE)
        base = datetime.now(UTC)
        for i in range(101):
            body = {"value": 70 + i % 10 / 10, "ts": (base + timedelta(seconds=i)).isoformat()}
            pub.publish(topic, json.dumps(body), qos=1)
        # The first commit is held; the other messages arrive unacknowledged and wait.
        writer = source.writer
        assert writer is not None
        wait_until(
            lambda: bool(spool.groups) and spool.groups[0] + writer._queued == 101,
            what="all 101 messages delivered without acknowledgement",
        )
        assert acks == []
        spool.release.set()
        wait_until(lambda: len(acks) == 101, what="every message acknowledged")
    finally:
        spool.release.set()
        source.stop()
        pub.loop_stop()
        spool.close()
    assert all(durable for _mid, durable in acks)
    # The held commit, then one for the rest (one alone if all 101 arrived before the
    # first commit began, as on a busy machine).
    assert len(spool.groups) in (1, 2) and sum(spool.groups) == 101
    assert source.counts["received"] == 101
