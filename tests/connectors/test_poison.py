"""No payload stops delivery: fuzzed JSON and Sparkplug payloads through the real Mosquitto.

After every hostile message a good one is published on the same client; it
must arrive. Everything refused ends up acknowledged and in the rejects table.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import paho.mqtt.client as mqtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from waiting import DEADLINE, wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding
from gxpmes.connectors.mqtt import MqttSource
from gxpmes.connectors.rejects import rejects_by_reason
from gxpmes.connectors.sparkplug import DOUBLE, Metric, Payload, encode_payload

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"


def publisher(host: str, port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.connect(host, port)
    client.loop_start()
    return client


class Line:
    """A connector on the shared broker with one JSON tag and one Sparkplug metric mapped."""

    def __init__(self, running, tags, spool, broker) -> None:  # type: ignore[no-untyped-def]
        self.running, self.tags, self.spool = running, tags, spool
        suffix = uuid.uuid4().hex[:8]
        self.json_topic = f"poison/{suffix}/TT-101"
        self.group, self.node = f"P{suffix}", "EDGE"
        self.spb_tag = f"{self.group}/{self.node}/D/TT-102"
        binding = TagBinding(BATCH, f"{HEAT}/temperature", "Cel")
        tags.bind(self.json_topic, binding)
        tags.bind(self.spb_tag, binding)
        self.source = MqttSource(
            spool,
            host=broker[0],
            port=broker[1],
            topics=[f"poison/{suffix}/#"],
            sparkplug_topics=[f"spBv1.0/{self.group}/#"],
            client_id=f"gx-{suffix}",
            clean_session=True,
        )
        self.source.start()
        assert self.source.connected.wait(DEADLINE)
        self.pub = publisher(*broker)
        self.values = itertools.count(1)
        self.seq = 0
        self.expected: list[str] = []
        self.publish_spb("NBIRTH", Payload(timestamp=self.ms(), seq=0, metrics=[]), device=False)

    @staticmethod
    def ms() -> int:
        return int(datetime.now(UTC).timestamp() * 1000)

    def publish_spb(self, kind: str, payload: Payload, *, device: bool = True) -> None:
        topic = f"spBv1.0/{self.group}/{kind}/{self.node}" + ("/D" if device else "")
        self.pub.publish(topic, encode_payload(payload), qos=1).wait_for_publish(DEADLINE)

    def publish_raw(self, to_sparkplug: bool, data: bytes) -> None:
        topic = f"spBv1.0/{self.group}/DDATA/{self.node}/D" if to_sparkplug else self.json_topic
        self.pub.publish(topic, data, qos=1).wait_for_publish(DEADLINE)

    def good_values_arrive(self) -> None:
        """A good JSON reading and a good Sparkplug metric after the poison: both spooled."""
        base = datetime.now(UTC) - timedelta(seconds=30)
        n = next(self.values)
        text = f"{60 + n / 1000:.3f}"
        reading = {"value": text, "ts": (base + timedelta(milliseconds=n)).isoformat()}
        self.pub.publish(self.json_topic, json.dumps(reading), qos=1).wait_for_publish(DEADLINE)
        self.seq = (self.seq + 1) % 256
        spb_value = 50 + n / 1000
        self.publish_spb(
            "DDATA",
            Payload(
                timestamp=self.ms(),
                seq=self.seq,
                metrics=[
                    Metric(name="TT-102", timestamp=self.ms(), datatype=DOUBLE, value=spb_value)
                ],
            ),
        )
        self.expected += [text, repr(spb_value)]
        wanted = {text, repr(spb_value)}

        def delivered() -> set[str]:
            # Spooled, or already forwarded into the record where a forwarder runs.
            spooled = {str(r.value) for _i, r in self.spool.peek(100_000)}
            return spooled | {str(v["value"]) for v in self.running.engine.values(BATCH)}

        wait_until(
            lambda: wanted <= delivered(), what=f"good values {sorted(wanted)} after the poison"
        )

    def close(self) -> None:
        self.source.stop()
        self.pub.loop_stop()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["NaN", "1e999999", "-0", "\x00", "\ud800", "9" * 70]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=10,
)
json_readings = st.fixed_dictionaries(
    {},
    optional={
        "tag": st.text(max_size=300) | st.sampled_from(["GRAN01/TT-101", "a\x00b"]),
        "value": json_values,
        "ts": st.text(max_size=40)
        | st.sampled_from(["2100-01-01T00:00:00Z", "2026-01-01T00:00:00", "9999-12-31T23:59:59Z"]),
        "quality": json_values,
        "seq": json_values,
        "publisher": json_values,
    },
)


def json_payloads() -> st.SearchStrategy[bytes]:
    def dump(value: object) -> bytes:
        return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")

    return st.one_of(
        st.binary(max_size=600),
        json_readings.map(dump),
        st.lists(json_readings, max_size=4).map(dump),
        st.integers(4300, 6000).map(lambda n: b'{"value": ' + b"7" * n + b', "ts": "x"}'),
    )


recent_ms = st.builds(Line.ms)  # times that pass the checks: the values reach the forwarder
metrics = st.builds(
    Metric,
    name=st.none() | st.text(max_size=20) | st.sampled_from(["TT-102", "Running"]),
    alias=st.none() | st.integers(0, 2**64 - 1),
    timestamp=st.none() | st.integers(0, 2**64 - 1) | recent_ms,
    datatype=st.none() | st.integers(0, 20),
    is_null=st.booleans(),
    value=st.none()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.booleans()
    | st.text(max_size=10),
)


def sparkplug_payloads() -> st.SearchStrategy[bytes]:
    def encode(payload: Payload) -> bytes:
        try:
            return encode_payload(payload)
        except (ValueError, OverflowError, TypeError, UnicodeEncodeError, Exception):
            return b"\x08" + bytes(payload.seq or 0 for _ in range(3))

    return st.one_of(
        st.binary(max_size=600),
        st.builds(
            Payload,
            timestamp=st.none() | st.integers(0, 2**64 - 1) | recent_ms,
            seq=st.none() | st.integers(0, 2**64 - 1),
            metrics=st.lists(metrics, max_size=4),
        ).map(encode),
    )


def test_no_payload_stops_delivery(running, tags, spool, broker) -> None:  # type: ignore[no-untyped-def]
    line = Line(running, tags, spool, broker)
    sent = {"json": 0, "spb": 0}

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.one_of(
            json_payloads().map(lambda p: (False, p)), sparkplug_payloads().map(lambda p: (True, p))
        )
    )
    def poison_then_good(case: tuple[bool, bytes]) -> None:
        to_sparkplug, data = case
        line.publish_raw(to_sparkplug, data)
        sent["spb" if to_sparkplug else "json"] += 1
        line.good_values_arrive()

    try:
        poison_then_good()
    finally:
        line.close()
    assert line.source.counts["spool_errors"] == 0
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    recorded = {v["value"] for v in running.engine.values(BATCH)}
    missing = [v for v in line.expected if v not in recorded]
    assert not missing, f"good values not recorded: {missing[:5]}"
    assert sum(rejects_by_reason(running.db).values()) >= 1
    forwarder.forward_once()  # records the dead letters the forwarder made
    assert len(spool) == 0 and spool.rejected() == []
    # Every reading spooled (values, and Booleans, Strings, nulls of Sparkplug metrics)
    # ended as a recorded value, a dead letter (wrong_type for a non-number of the
    # mapped tag) or a counted skip (a non-number of an unmapped tag): none vanished.
    spooled = line.source.counts["received"] - line.source.counts["duplicates"]
    ended = {k: forwarder.counts[k] for k in (*_FORWARDER_OUTCOMES, "not_numeric")}
    assert sum(ended.values()) == spooled, (spooled, ended)


_FORWARDER_OUTCOMES = ("recorded", "unknown_tag", "wrong_type", "unrecordable", "capture_refused")
"""What the forwarder makes of each spooled reading: recorded, or a dead letter."""


def test_five_thousand_digit_integers_do_not_block_json_or_sparkplug(
    running, tags, spool, broker
) -> None:  # type: ignore[no-untyped-def]
    """The reported attack: 25 such messages once stopped ingestion for good."""
    line = Line(running, tags, spool, broker)
    try:
        for _ in range(25):
            line.publish_raw(
                False,
                b'{"value": '
                + b"9" * 5000
                + b', "ts": "'
                + datetime.now(UTC).isoformat().encode()
                + b'"}',
            )
        line.publish_raw(
            True,
            encode_payload(
                Payload(
                    timestamp=2**63 - 1,
                    seq=1,
                    metrics=[
                        Metric(name="TT-102", timestamp=2**63 - 1, datatype=DOUBLE, value=1.0)
                    ],
                )
            ),
        )
        line.seq = 1
        line.good_values_arrive()
    finally:
        line.close()
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    reasons = rejects_by_reason(running.db)
    assert reasons.get("malformed") == 25 and reasons.get("bad_timestamp") == 1
    recorded = {v["value"] for v in running.engine.values(BATCH)}
    assert set(line.expected) <= recorded
    # Each refused value of the mapped tags is a data-quality exception for review.
    # The refused values of the mapped tags are data-quality exceptions for review,
    # one per forwarding pass and parameter, counting them all.
    details = [
        i.detail
        for i in running.engine.review_by_exception(BATCH)
        if i.kind == "exception:data_quality"
    ]
    assert len(details) == 1
    assert details[0].startswith("26 refused inputs (bad_timestamp 1, malformed 25)")


def test_a_time_without_a_utc_instant_does_not_stop_delivery(running, tags, spool, broker) -> None:  # type: ignore[no-untyped-def]
    """The reported attack: ``0001-01-01T00:30:00+01:00`` passed the decoder and its UTC
    conversion killed the forwarder thread for good; ``+05:30:30`` was recorded 30 s off."""
    line = Line(running, tags, spool, broker)
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    thread = threading.Thread(target=forwarder.run, kwargs={"interval": 0.05}, daemon=True)
    thread.start()
    try:
        line.good_values_arrive()
        for ts in ("0001-01-01T00:30:00+01:00", "2026-03-02T13:30:00.123456+05:30:30"):
            line.publish_raw(False, json.dumps({"value": 70.6, "ts": ts}).encode())
        line.good_values_arrive()
        line.good_values_arrive()
        wait_until(
            lambda: set(line.expected) <= {v["value"] for v in running.engine.values(BATCH)},
            what="the good values behind the poison recorded",
        )
        wait_until(lambda: sum(rejects_by_reason(running.db).values()) == 2, what="2 rejects")
        assert thread.is_alive()
    finally:
        forwarder.stop()
        thread.join(DEADLINE)
        line.close()
    assert rejects_by_reason(running.db) == {"bad_timestamp": 1, "malformed": 1}
    assert "70.6" not in {v["value"] for v in running.engine.values(BATCH)}
    errors = {k: v for k, v in forwarder.counts.items() if k.endswith("errors")}
    assert not any(errors.values()), errors


_OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59, seconds=59),
    max_value=timedelta(hours=23, minutes=59, seconds=59),
)


def test_any_year_and_offset_through_the_broker(running, tags, spool, broker) -> None:  # type: ignore[no-untyped-def]
    """Times of any year 1..9999 at any offset, published as JSON: each is a reading or a
    dead letter, the good values after each one arrive, and all of it is recorded."""
    line = Line(running, tags, spool, broker)
    sent = []

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
        _OFFSETS,
    )
    def any_time_then_good(wall: datetime, offset: timedelta) -> None:
        ts = wall.replace(tzinfo=timezone(offset)).isoformat()
        sent.append(ts)
        line.publish_raw(False, json.dumps({"value": "1.5", "ts": ts}).encode())
        line.good_values_arrive()

    try:
        any_time_then_good()
    finally:
        line.close()
    assert line.source.counts["spool_errors"] == 0
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()
    recorded = {v["value"] for v in running.engine.values(BATCH)}
    assert set(line.expected) <= recorded
    assert len(spool) == 0 and spool.rejected() == []
    taken = sum(1 for v in running.engine.values(BATCH) if v["value"] == "1.5")
    refused = sum(rejects_by_reason(running.db).values())
    assert taken + refused >= len(set(sent))  # each a reading or a dead letter
    assert not forwarder.counts["forwarder_errors"] and not forwarder.counts["unrecordable"]
