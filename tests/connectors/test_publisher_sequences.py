"""JSON publisher sequence numbers: gaps, redeliveries and publisher restarts.

A ``seq`` at or below the publisher's last is a redelivery (the spool already
holds the message's readings) or a restart (new readings): the rule against a
model of a publisher and a lossy, redelivering broker, and end to end through
the real Mosquitto.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from waiting import DEADLINE, wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.mqtt import (
    FIRST_SEQ,
    MqttSource,
    PublisherSequences,
    SequenceStep,
    source_from_config,
)
from gxpmes.connectors.rejects import rejects_by_reason
from gxpmes.connectors.runner import Connector, Status
from gxpmes.connectors.spool import Spool
from gxpmes.errors import ConfigurationError

BATCH = "B-OT-1"


@dataclass(frozen=True)
class Sent:
    """One message as the connector gets it, and what the publisher model knows of it."""

    seq: int
    redelivered: bool  # a copy of a message delivered before (the spool holds its readings)
    dup: bool  # the broker sent it before (MQTT DUP flag)
    lost_before: int  # readings of the same count, sent since the last delivered, never delivered
    restart: bool  # the first message delivered after the publisher restarted its count


def stream(epochs: list[list[bool]], start: int, copies: list[tuple[int, int, bool]]) -> list[Sent]:
    """Deliveries of a publisher that counts from ``start``, then restarts at FIRST_SEQ once
    per further epoch; ``epochs[e][i]``: whether the i-th message of epoch e arrived.
    ``copies``: (after which delivery, of which earlier one, publisher-side?) redeliveries."""
    out: list[Sent] = []
    for number, epoch in enumerate(epochs):
        base = start if number == 0 else FIRST_SEQ
        missed, first = 0, True
        for i, arrived in enumerate(epoch):
            if not arrived:
                missed += 1
                continue
            # Readings missed before the very first delivery cannot be seen: nothing before it.
            lost = 0 if number == 0 and first else missed
            out.append(Sent(base + i, False, False, lost, number > 0 and first))
            missed, first = 0, False
    originals = list(out)
    for after, which, publisher_side in sorted(copies, reverse=True):
        if not originals:
            break
        at = min(after, len(originals) - 1)  # inserted from the end: positions up to at hold
        original = originals[min(which, at)]
        # A publisher's own resend follows its message at once (the broker takes it as new:
        # no DUP); the broker's resends after a reconnect carry DUP.
        same = publisher_side and which >= at
        out.insert(at + 1, Sent(original.seq, True, not same, 0, False))
    return out


def detectable(epochs: list[list[bool]], start: int) -> bool:
    """Every restart shows: its first seq is at or below the last seq delivered before it."""
    last = None
    for number, epoch in enumerate(epochs):
        base = start if number == 0 else FIRST_SEQ
        seqs = [base + i for i, arrived in enumerate(epoch) if arrived]
        if not seqs:
            return False
        if last is not None and seqs[0] > last:
            return False
        last = seqs[-1]
    return True


def judge(sequences: PublisherSequences, sent: list[Sent]) -> list[SequenceStep]:
    """What the MQTT source does per message: decide at once when the seq moves forward and
    the broker never sent the message before; else wait for the spool's verdict."""
    steps = []
    for message in sent:
        events = [("PLC-1", message.seq, "T")]
        applied = None if message.dup else sequences.advance(events)
        if applied is not None:
            assert not message.redelivered, "a copy decided as new"
            state, gaps = applied
            assert state == {PublisherSequences.key("PLC-1"): str(message.seq)}
            steps.append(SequenceStep(sum(lost for _at, lost, _seq in gaps)))
        else:
            sequences.defer(events)
            steps.extend(sequences.settle(events, message.redelivered))
    return steps


@settings(max_examples=300, deadline=None)
@given(
    epochs=st.lists(st.lists(st.booleans(), min_size=1, max_size=12), min_size=1, max_size=5),
    start=st.integers(0, 30),
    copies=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.booleans()), max_size=8),
)
def test_gaps_once_redeliveries_never_restarts_always(
    tmp_path_factory, epochs: list[list[bool]], start: int, copies: list[tuple[int, int, bool]]
) -> None:  # type: ignore[no-untyped-def]
    assume(detectable(epochs, start))
    sent = stream(epochs, start, copies)
    spool = Spool(tmp_path_factory.mktemp("seq") / "spool.db")
    try:
        steps = judge(PublisherSequences(spool), sent)
    finally:
        spool.close()
    for message, step in zip(sent, steps, strict=True):
        if message.redelivered:
            assert (step.lost, step.restarted) == (0, False)  # never counted
        else:
            # The restart's own loss is its seq minus the first: the readings of the new
            # count before it, which the model says never arrived.
            assert (step.lost, step.restarted) == (message.lost_before, message.restart)
    # Each reading lost is counted exactly once, each restart seen once.
    assert sum(s.lost for s in steps) == sum(m.lost_before for m in sent)
    assert sum(s.restarted for s in steps) == len(epochs) - 1


def test_a_verdict_waits_for_the_spool_and_holds_later_messages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spool = Spool(tmp_path / "spool.db")
    sequences = PublisherSequences(spool)
    assert sequences.step("P", 50).lost == 0
    events = [("P", 1, "T")]
    assert sequences.advance(events) is None  # 1 after 50: redelivery or restart
    sequences.defer(events)
    assert sequences.waiting([("P", 2, "T")]) and sequences.advance([("P", 2, "T")]) is None
    assert not sequences.waiting([("Q", 2, "T")])
    (step,) = sequences.settle(events, redelivered=False)
    assert (step.lost, step.restarted, step.last) == (1, True, 50)
    assert not sequences.waiting(events)
    # Several seqs of a message, two publishers: applied together, gaps by position.
    message = [("P", 2, "T"), ("Q", 7, "U"), ("P", 4, "T"), ("Q", 8, "U")]
    assert sequences.advance(message) == ({"json|P": "4", "json|Q": "8"}, [(2, 1, 4)])
    assert sequences.advance([("P", 5, "T"), ("Q", 8, "U")]) is None  # Q 8 again
    assert sequences.step("P", 5).lost == 0  # nothing of the refused message was applied
    spool.close()


def readings(seqs: list[int], base: datetime) -> list[bytes]:
    return [
        json.dumps(
            {
                "value": f"{60 + n / 10:.1f}",
                "ts": (base + timedelta(seconds=n)).isoformat(),
                "seq": s,
            }
        ).encode()
        for n, s in enumerate(seqs)
    ]


def test_a_publisher_restarting_at_1_and_then_skipping_is_reported(  # type: ignore[no-untyped-def]
    running, tags, spool, broker
) -> None:
    topic = f"plant/{uuid.uuid4().hex[:8]}/TT-101"
    source = MqttSource(
        spool,
        host=broker[0],
        port=broker[1],
        topics=[topic],
        client_id=f"gx-{uuid.uuid4().hex[:6]}",
        clean_session=True,
        topic_tags={topic: "GRAN01/TT-101"},
    )
    source.start()
    assert source.connected.wait(DEADLINE)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    pub.connect(*broker)
    pub.loop_start()
    try:
        before = readings(list(range(51)), datetime.now(UTC) - timedelta(hours=1))  # 0..50
        after = readings([1, 2, 4, 5], datetime.now(UTC) - timedelta(minutes=10))  # 3 skipped
        payloads = [*before, after[0], after[1], after[1], *after[2:]]  # seq 2 resent
        for payload in payloads:
            pub.publish(topic, payload, qos=1).wait_for_publish(DEADLINE)
        wait_until(lambda: source.counts["received"] >= len(payloads), what="all messages")
    finally:
        source.stop()
        pub.loop_stop()
    assert source.counts["publisher_restarts"] == 1
    assert source.counts["duplicates"] == 1  # the resent seq 2: no restart, no gap
    assert source.counts["sequence_gap"] == 2
    details = sorted(letter.detail for _id, letter in spool.rejected())
    assert details == [
        f"publisher {topic}: 1 reading(s) before seq 1 lost (restarted its count: seq 1 after 50)",
        f"publisher {topic}: 1 reading(s) before seq 4 lost",
    ]
    assert spool.get_state(PublisherSequences.key(topic)) == "5"
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert len(running.engine.values(BATCH)) == 55
    assert rejects_by_reason(running.db) == {"sequence_gap": 2}
    quality = [
        i.detail
        for i in running.engine.review_by_exception(BATCH)
        if i.kind == "exception:data_quality"
    ]
    assert len(quality) == 1 and "sequence_gap" in quality[0]


@dataclass
class Message:
    """What paho hands ``on_message``."""

    topic: str
    payload: bytes
    dup: bool = False
    mid: int = 1
    qos: int = 1


def test_a_broker_resend_straddling_a_restart_is_no_gap_and_no_second_restart(spool) -> None:  # type: ignore[no-untyped-def]
    topic = "plant/L1/TT-101"
    source = MqttSource(spool, topics=[topic], topic_tags={topic: "GRAN01/TT-101"})
    old = readings([48, 49, 50], datetime.now(UTC) - timedelta(hours=1))
    new = readings([1, 2, 3], datetime.now(UTC) - timedelta(minutes=10))
    for payload in [*old, new[0]]:
        source._on_message(None, None, Message(topic, payload))
    # A reconnect: the broker sends again what was not acknowledged, marked DUP — old
    # counts above the new last among them; then the publisher goes on.
    for payload in [old[1], old[2], new[0]]:
        source._on_message(None, None, Message(topic, payload, dup=True))
    for payload in new[1:]:
        source._on_message(None, None, Message(topic, payload))
    assert source.counts["publisher_restarts"] == 1
    assert source.counts["duplicates"] == 3
    assert [letter.detail for _id, letter in spool.rejected()] == [
        f"publisher {topic}: 1 reading(s) before seq 1 lost (restarted its count: seq 1 after 50)"
    ]
    assert spool.get_state(PublisherSequences.key(topic)) == "3"
    assert len(spool) == 6


def test_a_resent_message_the_spool_never_got_counts_as_new(spool) -> None:  # type: ignore[no-untyped-def]
    topic = "plant/L1/TT-102"
    source = MqttSource(spool, topics=[topic], topic_tags={topic: "GRAN01/TT-101"})
    sent = readings([0, 1, 2, 3], datetime.now(UTC) - timedelta(minutes=10))
    source._on_message(None, None, Message(topic, sent[0]))
    # 1 was received but never spooled (the connector died): the broker sends it again.
    source._on_message(None, None, Message(topic, sent[1], dup=True))
    source._on_message(None, None, Message(topic, sent[3], dup=True))  # 2 lost
    assert source.counts["publisher_restarts"] == 0
    assert [letter.detail for _id, letter in spool.rejected()] == [
        f"publisher {topic}: 1 reading(s) before seq 3 lost"
    ]
    assert spool.get_state(PublisherSequences.key(topic)) == "3"


def test_a_verdict_the_spool_cannot_save_is_reported_at_the_next_message(  # type: ignore[no-untyped-def]
    spool, monkeypatch
) -> None:
    topic = "plant/L1/TT-103"
    source = MqttSource(spool, topics=[topic], topic_tags={topic: "GRAN01/TT-101"})
    old = readings([50], datetime.now(UTC) - timedelta(hours=1))
    new = readings([1, 2], datetime.now(UTC) - timedelta(minutes=10))
    source._on_message(None, None, Message(topic, old[0]))
    real = spool.put_many

    def full(deliveries):  # type: ignore[no-untyped-def]
        if not any(readings for readings, _letters, _state in deliveries):
            raise sqlite3.OperationalError("database or disk is full")  # the verdict's write
        return real(deliveries)

    monkeypatch.setattr(spool, "put_many", full)
    source._on_message(None, None, Message(topic, new[0]))  # the restart: spooled, not saved
    monkeypatch.setattr(spool, "put_many", real)
    assert source.counts["spool_errors"] == 1 and len(spool) == 2
    assert spool.get_state(PublisherSequences.key(topic)) == "50"
    source._on_message(None, None, Message(topic, new[1]))  # judged against the spool's 50
    assert source.counts["publisher_restarts"] == 2
    assert [letter.detail for _id, letter in spool.rejected()] == [
        f"publisher {topic}: 2 reading(s) before seq 2 lost (restarted its count: seq 2 after 50)"
    ]
    assert spool.get_state(PublisherSequences.key(topic)) == "2"


def test_the_status_line_warns_of_publisher_restarts() -> None:
    quiet = Status(10, 0, 0.0, 10, 0, {}, {}, 0, 0, 0)
    assert quiet.warnings() == []
    restarted = Status(10, 0, 0.0, 10, 0, {}, {}, 0, 0, 0, publisher_restarts=2)
    [warning] = restarted.warnings()
    assert warning.startswith("2 JSON publisher seq restart(s): a publisher counted again")
    assert f"; WARNING: {warning}" in restarted.line(1.0)


def test_the_status_line_warns_of_unbound_publisher_names() -> None:
    unbound = Status(10, 0, 0.0, 10, 0, {}, {}, 0, 0, 0, publisher_unbound=3)
    [warning] = unbound.warnings()
    assert warning.startswith("3 JSON reading(s) name a publisher that [mqtt] publishers")
    assert f"; WARNING: {warning}" in unbound.line(1.0)


def test_gxpmes_connect_reports_a_publisher_restart(running, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    topic = "plant/L1/TT-101"
    config = {
        "tags": [
            {
                "tag": "GRAN01/TT-101",
                "topic": topic,
                "batch": BATCH,
                "parameter": "GRAN/UP-GRAN/OP-WET/PH-HEAT/temperature",
                "unit": "Cel",
            }
        ],
        "mqtt": {"topics": [topic], "own_process": False},
    }
    connector = Connector(config, running.engine, tmp_path)
    try:
        source = connector._mqtt_source(config["mqtt"])  # not connected: messages handed in
        connector.sources.append(source)
        old = readings([7, 8], datetime.now(UTC) - timedelta(hours=1))
        new = readings([0], datetime.now(UTC) - timedelta(minutes=10))
        for payload in [*old, *new]:
            source._on_message(None, None, Message(topic, payload))
        status = connector.status()
        assert status.publisher_restarts == 1 and status.sequence_gaps == 0  # restart at 0
        line, _ = connector.status_line(0, 1.0)
        assert "WARNING: 1 JSON publisher seq restart(s)" in line
        # A name [mqtt] publishers does not bind to this topic: counted, and warned of.
        for payload in named("PLC-X", [0, 1], datetime.now(UTC) - timedelta(minutes=5)):
            source._on_message(None, None, Message(topic, payload))
        assert connector.status().publisher_unbound == 2
        line, _ = connector.status_line(0, 1.0)
        assert "WARNING: 2 JSON reading(s) name a publisher" in line
    finally:
        connector.close()


def named(publisher: str, seqs: list[int], base: datetime) -> list[bytes]:
    """Readings with a ``"publisher"`` field (``readings`` with the name set)."""
    return [
        json.dumps({**json.loads(payload), "publisher": publisher}).encode()
        for payload in readings(seqs, base)
    ]


def test_a_publisher_field_on_another_topic_cannot_hide_a_loss(spool) -> None:  # type: ignore[no-untyped-def]
    a, b = "plant/L1/TT-201", "plant/L1/TT-202"
    source = MqttSource(spool, topics=["plant/L1/+"], topic_tags={a: "A", b: "B"})
    base = datetime.now(UTC) - timedelta(minutes=10)
    for payload in readings([0, 1, 2, 3, 4], base):
        source._on_message(None, None, Message(a, payload))
    # Whoever may write B claims A's name and sends the seqs A lost at the broker.
    for payload in named(a, [5, 6, 7, 8, 9], base + timedelta(seconds=30)):
        source._on_message(None, None, Message(b, payload))
    (payload,) = readings([10], base + timedelta(minutes=1))
    source._on_message(None, None, Message(a, payload))
    assert [letter.detail for _id, letter in spool.rejected()] == [
        f"publisher {a}: 5 reading(s) before seq 10 lost"
    ]
    assert spool.get_state(PublisherSequences.key(a)) == "10"  # B never moved A's count
    assert spool.get_state(PublisherSequences.key(PublisherSequences.scoped(a, b))) == "9"
    assert source.counts["publisher_unbound"] == 5
    assert len(spool) == 11  # the claimed readings are recorded as before


def test_a_configured_publisher_is_counted_across_its_topics(spool) -> None:  # type: ignore[no-untyped-def]
    one, two, other = "plant/L1/TT-301", "plant/L2/TT-301", "plant/L3/TT-301"
    source = MqttSource(
        spool, topics=["plant/#"], publishers={"PLC-1": ["plant/L1/#", "plant/L2/TT-301"]}
    )
    base = datetime.now(UTC) - timedelta(minutes=10)
    sent = named("PLC-1", [0, 1, 2, 4, 5], base)
    for topic, payload in zip([one, two, one, two, one], sent, strict=True):
        source._on_message(None, None, Message(topic, payload))
    # On a topic outside its filters the name counts for that topic alone.
    (outside,) = named("PLC-1", [1], base + timedelta(minutes=1))
    source._on_message(None, None, Message(other, outside))
    assert [letter.detail for _id, letter in spool.rejected()] == [
        "publisher PLC-1: 1 reading(s) before seq 4 lost"
    ]
    assert spool.get_state("json|PLC-1") == "5"  # the key saved before this change
    assert spool.get_state(PublisherSequences.key(PublisherSequences.scoped("PLC-1", other))) == "1"
    assert source.counts["publisher_unbound"] == 1 and source.counts["publisher_restarts"] == 0


def test_a_saved_count_of_a_configured_publisher_goes_on(spool) -> None:  # type: ignore[no-untyped-def]
    spool.set_state("json|PLC-1", "7")
    source = MqttSource(spool, topics=["plant/#"], publishers={"PLC-1": ["plant/#"]})
    (payload,) = named("PLC-1", [9], datetime.now(UTC) - timedelta(minutes=1))
    source._on_message(None, None, Message("plant/L1/TT-1", payload))
    assert [letter.detail for _id, letter in spool.rejected()] == [
        "publisher PLC-1: 1 reading(s) before seq 9 lost"
    ]


def test_an_unconfigured_name_on_two_topics_has_two_counts(spool, caplog) -> None:  # type: ignore[no-untyped-def]
    a, b = "plant/L1/TT-401", "plant/L1/TT-402"
    source = MqttSource(spool, topics=["plant/L1/+"])
    base = datetime.now(UTC) - timedelta(minutes=10)
    sent_a = named("PLC-9", [0, 1, 2, 3], base)
    sent_b = named("PLC-9", [100, 101, 102, 103], base + timedelta(minutes=1))
    for payload_a, payload_b in zip(sent_a, sent_b, strict=True):
        source._on_message(None, None, Message(a, payload_a))
        source._on_message(None, None, Message(b, payload_b))
    # One count would have seen restarts and gaps at every message.
    assert spool.rejected() == [] and source.counts["publisher_restarts"] == 0
    assert spool.get_state(PublisherSequences.key(PublisherSequences.scoped("PLC-9", a))) == "3"
    assert spool.get_state(PublisherSequences.key(PublisherSequences.scoped("PLC-9", b))) == "103"
    assert spool.get_state(PublisherSequences.key("PLC-9")) is None
    assert source.counts["publisher_unbound"] == 8
    warned = [r.getMessage() for r in caplog.records if "not bound" in r.getMessage()]
    assert len(warned) == 2 and a in warned[0] and b in warned[1]  # once per (name, topic)
    (gap,) = named("PLC-9", [6], base + timedelta(minutes=2))
    source._on_message(None, None, Message(a, gap))
    assert [letter.detail for _id, letter in spool.rejected()] == [
        f"publisher PLC-9 on topic {a}: 2 reading(s) before seq 6 lost"
    ]


@pytest.mark.parametrize(
    ("publishers", "message"),
    [
        (["plant/#"], "table of name"),
        ({"PLC-1": "plant/#"}, "non-empty list"),
        ({"PLC-1": []}, "non-empty list"),
        ({"": ["plant/#"]}, "name ''"),
        ({"PLC\x1f1": ["plant/#"]}, "printable text"),
        ({"PLC-1": ["plant/#/pv"]}, "'plant/#/pv': # must be the last level"),
        ({"PLC-1": ["plant/L+/pv"]}, r"'plant/L\+/pv': \+ and # must be a whole level"),
        ({"PLC-1": [""]}, "topic filter '': use non-empty text"),
        ({"PLC-1": [3]}, "topic filter 3"),
    ],
)
def test_publishers_configuration_is_checked(spool, publishers, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigurationError, match=message):
        source_from_config(spool, {"topics": ["plant/#"], "publishers": publishers}, {}, Path("."))


def test_publishers_configuration_is_read(spool) -> None:  # type: ignore[no-untyped-def]
    config = {"topics": ["plant/#"], "publishers": {"PLC-1": ["plant/L1/+", "plant/L2/#"]}}
    source = source_from_config(spool, config, {}, Path("."))
    assert source.publishers == {"PLC-1": ["plant/L1/+", "plant/L2/#"]}
