"""Values that are not numbers (Sparkplug Booleans, Strings, nulls) never vanish silently.

The decoder cannot know the tag map (the application rebinds tags in the main
process), so it spools such a value as a not-numeric marker; the forwarder
refuses one of a mapped tag (``wrong_type`` dead letter + data-quality exception
on the batch) and only counts one of an unmapped tag (``not_numeric``). A marker,
or a damaged spool's JSON ``true``, is never recorded as a number.
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from waiting import DEADLINE, wait_until

from gxpmes.connectors.forwarder import Forwarder, _delivery_columns
from gxpmes.connectors.model import NotNumeric, Reading, TagBinding
from gxpmes.connectors.mqtt import MqttSource
from gxpmes.connectors.rejects import rejects_by_reason
from gxpmes.connectors.runner import Status
from gxpmes.connectors.sparkplug import (
    BOOLEAN,
    DATETIME,
    DOUBLE,
    FLOAT,
    INT32,
    STRING,
    TEXT,
    Metric,
    Payload,
    SparkplugSession,
    decode_payload,
    encode_payload,
    not_numeric,
)
from gxpmes.connectors.spool import reading_of
from gxpmes.ebr.schema import RejectRow

BATCH = "B-OT-1"
TAG = "GRAN01/TT-101"
TEMPERATURE = TagBinding(BATCH, "GRAN/UP-GRAN/OP-WET/PH-HEAT/temperature", "Cel")


def now() -> datetime:
    return datetime.now(UTC)


def recorded(plant: Any) -> list[str]:
    return [v["value"] for v in plant.engine.values(BATCH)]


def exceptions(plant: Any) -> list[str]:
    return [
        i.detail
        for i in plant.engine.review_by_exception(BATCH)
        if i.kind == "exception:data_quality"
    ]


def test_a_not_numeric_value_is_spooled_as_a_marker_never_as_text() -> None:
    from gxpmes.connectors.spool import _item

    t0 = now()
    item = _item(Reading(TAG, NotNumeric("Boolean", "True"), t0, dedup_key="k"))
    assert item[1] == {"not_numeric": "Boolean", "text": "True"}
    back = reading_of(orjson.loads(orjson.dumps(item)))
    assert back.value == NotNumeric("Boolean", "True") and back.source_ts == t0
    assert NotNumeric("null").describe() == "null"
    assert NotNumeric("String", "'70.1'").describe() == "String '70.1'"


def test_mapped_not_numeric_values_are_refused_and_the_good_ones_around_recorded(
    running, tags, spool
) -> None:  # type: ignore[no-untyped-def]
    t0 = now() - timedelta(seconds=20)

    def at(i: int) -> datetime:
        return t0 + timedelta(milliseconds=i)

    spool.put(
        [
            Reading(TAG, Decimal("70.1"), at(0), dedup_key="a0"),
            Reading(TAG, NotNumeric("Boolean", "True"), at(1), dedup_key="a1"),
            Reading(TAG, NotNumeric("String", "'70.1'"), at(2), dedup_key="a2"),
            Reading(TAG, NotNumeric("null"), at(3), dedup_key="a3"),
            Reading(TAG, Decimal("70.2"), at(4), dedup_key="a4"),
        ]
    )
    spool.put([Reading(TAG, Decimal("70.3"), at(5), dedup_key="b0")])
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    assert forwarder.forward_once() == 3
    forwarder.forward_once()  # records the dead letters made on the way
    assert recorded(running) == ["70.1", "70.2", "70.3"]  # never 1, never 70.1 twice
    assert len(spool) == 0 and spool.rejected() == []
    assert rejects_by_reason(running.db) == {"wrong_type": 3}
    assert forwarder.counts["wrong_type"] == 3 and not forwarder.counts["not_numeric"]
    with running.db.read() as conn:
        rows = conn.execute(RejectRow.__table__.select()).all()
    assert {r.tag for r in rows} == {TAG} and {r.batch_id for r in rows} == {BATCH}
    details = sorted(r.detail for r in rows)
    assert details == [
        f"value of {TAG!r} is not a number: Boolean True",
        f"value of {TAG!r} is not a number: String '70.1'",
        f"value of {TAG!r} is not a number: null",
    ]
    (exception,) = exceptions(running)  # one per parameter and pass, naming all three
    assert exception.startswith("3 refused inputs (wrong_type 3)")


def test_unmapped_not_numeric_values_are_only_counted(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    t0 = now() - timedelta(seconds=20)
    spool.put(  # a delivery of nothing but states of unmapped metrics
        [
            Reading("G/N/D/Running", NotNumeric("Boolean", "True"), t0, dedup_key="s0"),
            Reading("G/N/D/Name", NotNumeric("String", "'Mixer 2'"), t0, dedup_key="s1"),
        ]
    )
    spool.put(
        [
            Reading(TAG, Decimal("70.1"), t0, dedup_key="m0"),
            Reading("G/N/D/Alarm", NotNumeric("null"), t0, dedup_key="m1"),
        ]
    )
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    assert forwarder.forward_once() == 1
    forwarder.forward_once()
    assert recorded(running) == ["70.1"]
    assert len(spool) == 0 and spool.rejected() == []  # no row left behind
    assert rejects_by_reason(running.db) == {} and exceptions(running) == []
    assert forwarder.counts["not_numeric"] == 3 and not forwarder.counts["wrong_type"]


def test_a_tag_bound_later_decides_when_it_is_forwarded(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    """The map at forwarding time decides, as the application may rebind at runtime."""
    t0 = now() - timedelta(seconds=20)
    spool.put([Reading("G/N/D/Valve", NotNumeric("Boolean", "False"), t0, dedup_key="v0")])
    tags.bind("G/N/D/Valve", TagBinding(BATCH, "GRAN/UP-GRAN/OP-WET/PH-HEAT/temperature", "Cel"))
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()
    assert rejects_by_reason(running.db) == {"wrong_type": 1} and recorded(running) == []
    assert any("Boolean False" in d for d in exceptions(running))


def test_a_spooled_value_that_is_not_text_is_never_a_number(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    """A damaged spool's ``true``, ``1`` or ``1.5`` (Decimal(True) == 1): refused by the
    column-wise build and by the item path, never recorded."""
    iso = (now() - timedelta(seconds=20)).isoformat()
    items = [[TAG, value, iso, "Good", None, f"x{i}"] for i, value in enumerate([True, 1, 1.5])]
    bindings = tags.get_or_none
    assert _delivery_columns(items, bindings, {}) is None
    for item in items:
        assert _delivery_columns([item], bindings, {}) is None
    good = [[TAG, "70.5", iso, "Good", None, "g"]]
    assert _delivery_columns(good, bindings, {}) is not None
    with sqlite3.connect(spool.path) as conn:
        conn.executemany(
            "INSERT INTO pending (body, n) VALUES (?, ?)",
            [(orjson.dumps([item]), 1) for item in [*items, *good]],
        )
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()
    assert recorded(running) == ["70.5"]
    assert rejects_by_reason(running.db) == {"unrecordable": 3}
    assert len(spool) == 0 and spool.rejected() == []


def test_the_status_line_counts_unmapped_not_numeric_values() -> None:
    quiet = Status(10, 0, 0.0, 10, 0, {}, {}, 0, 0, 0)
    assert "not numeric" not in quiet.line(1.0)
    busy = Status(10, 0, 0.0, 130, 0, {"wrong_type": 1}, {}, 0, 0, 0, not_numeric=119)
    line = busy.line(1.0)
    assert "1 rejected (wrong_type 1), 119 not numeric (unmapped), 0 errors" in line
    assert "WARNING" not in line


# ---------------------------------------------------------------- the decoder


def ms_now() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def born() -> SparkplugSession:
    session = SparkplugSession()
    birth = Payload(timestamp=ms_now(), seq=0, metrics=[])
    session.handle_message("spBv1.0/G/NBIRTH/N", encode_payload(birth), datetime.now(UTC))
    return session


def test_sparkplug_metrics_that_are_not_numbers_are_markers_never_decimals() -> None:
    ms = ms_now() - 1000
    metrics = [
        Metric(name="Running", timestamp=ms, datatype=BOOLEAN, value=True),
        Metric(name="Stopped", timestamp=ms, datatype=BOOLEAN, value=False),
        Metric(name="Setpoint", timestamp=ms, datatype=STRING, value="70.1"),
        Metric(name="Note", timestamp=ms, datatype=TEXT, value="hot"),
        Metric(name="Missing", timestamp=ms, datatype=DOUBLE, is_null=True),
        Metric(name="TT-102", timestamp=ms, datatype=DOUBLE, value=70.5),
        Metric(name="Node Control/Rebirth", timestamp=ms, datatype=BOOLEAN, value=False),
        Metric(name="Properties/Site", timestamp=ms, datatype=STRING, value="Basel"),
    ]
    payload = encode_payload(Payload(timestamp=ms, seq=1, metrics=metrics))
    out = born().handle_message("spBv1.0/G/DDATA/N/D", payload, datetime.now(UTC))
    assert out.problems == [] and not out.rebirth
    assert [(r.tag, r.value) for r in out.readings] == [
        ("G/N/D/Running", NotNumeric("Boolean", "True")),
        ("G/N/D/Stopped", NotNumeric("Boolean", "False")),
        ("G/N/D/Setpoint", NotNumeric("String", "'70.1'")),  # text, though it reads as 70.1
        ("G/N/D/Note", NotNumeric("Text", "'hot'")),
        ("G/N/D/Missing", NotNumeric("null")),
        ("G/N/D/TT-102", Decimal("70.5")),
    ]  # Node Control/ and Properties/ metrics are not process values: skipped
    assert all(r.source_ts == out.readings[-1].source_ts and r.dedup_key for r in out.readings)


def test_the_datatype_and_the_value_both_say_what_is_not_a_number() -> None:
    # A Boolean datatype carried in an integer field, a number in the string field, a
    # type this decoder does not read: none of them is a number.
    assert not_numeric(Metric(datatype=BOOLEAN, value=1)) == NotNumeric("Boolean", "1")
    assert not_numeric(Metric(datatype=INT32, value="7")) == NotNumeric("String", "'7'")
    assert not_numeric(Metric(datatype=INT32, value=True)) == NotNumeric("Boolean", "True")
    assert not_numeric(Metric(datatype=16)) == NotNumeric("DataSet")
    assert not_numeric(Metric(datatype=99, value=5)) == NotNumeric("datatype 99", "5")
    assert not_numeric(Metric(datatype=DOUBLE)) == NotNumeric("Double without a value")
    assert not_numeric(Metric()) == NotNumeric("no value")
    assert not_numeric(Metric(value=True)) == NotNumeric("Boolean", "True")
    long = not_numeric(Metric(datatype=STRING, value="x" * 10_000))
    assert long is not None and len(long.text) <= 60
    for number in (
        Metric(datatype=DOUBLE, value=1.5),
        Metric(datatype=INT32, value=-3),
        Metric(datatype=DATETIME, value=1),
        Metric(value=7),
        Metric(datatype=0, value=7),
    ):
        assert not_numeric(number) is None


def test_a_not_numeric_metric_gets_the_checks_a_number_gets() -> None:
    """A bad time is refused as for any metric (naming the tag), not spooled as a marker."""
    payload = Payload(
        timestamp=ms_now(),
        seq=1,
        metrics=[
            Metric(name="Valve", timestamp=ms_now() + 3_600_000, datatype=BOOLEAN, value=True)
        ],
    )
    out = born().handle_message("spBv1.0/G/DDATA/N/D", encode_payload(payload), datetime.now(UTC))
    assert out.readings == []
    assert [(p.reason, p.tag) for p in out.problems] == [("future_timestamp", "G/N/D/Valve")]


_NAMES = ["TT-102", "Valve", "Setpoint", "Name"]
_any_metric = st.builds(
    Metric,
    name=st.sampled_from(_NAMES),
    timestamp=st.none() | st.integers(0, 2**45) | st.just(ms_now() - 5000),
    datatype=st.none() | st.integers(0, 25),
    is_null=st.booleans(),
    value=st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["70.1", "1", "NaN", ""]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_any_metric, min_size=1, max_size=4, unique_by=lambda m: m.name),
    st.none() | st.just(ms_now() - 5000),
)
def test_every_sparkplug_metric_is_a_reading_or_a_refusal(metrics, stamp) -> None:  # type: ignore[no-untyped-def]
    """Whatever a metric holds, it yields exactly one reading or one refusal naming its tag
    — nothing is skipped silently — and a Decimal only when it is a finite number of a
    numeric (or no) datatype: never a Boolean, a String, a null."""
    try:
        data = encode_payload(Payload(timestamp=stamp, seq=1, metrics=metrics))
    except (ValueError, TypeError, OverflowError, UnicodeEncodeError):
        assume(False)
    decoded = decode_payload(data).metrics  # what the wire carried (float32, signed ints...)
    out = born().handle_message("spBv1.0/G/DDATA/N/D", data, datetime.now(UTC))
    per_tag = Counter(r.tag for r in out.readings) + Counter(p.tag for p in out.problems)
    assert per_tag == Counter(f"G/N/D/{m.name}" for m in decoded)
    readings = {r.tag: r for r in out.readings}
    for metric in decoded:
        reading = readings.get(f"G/N/D/{metric.name}")
        if reading is None:
            continue  # refused, naming its tag (above)
        is_number = not_numeric(metric) is None
        assert isinstance(reading.value, Decimal) == is_number
        if is_number:
            assert not isinstance(metric.value, bool | str) and metric.value is not None
            assert not metric.is_null and metric.datatype in (None, 0, *range(1, 11), DATETIME)
            value = metric.value
            assert isinstance(value, int | float) and math.isfinite(value)
            assert reading.value == (Decimal(repr(value)) if isinstance(value, float) else value)


# ------------------------------------------------------ end to end, the broker


def test_not_numeric_sparkplug_metrics_through_the_broker(running, tags, spool, broker) -> None:  # type: ignore[no-untyped-def]
    """A real Mosquitto, a Sparkplug DDATA of numbers, Booleans, Strings and nulls: the
    numbers are recorded; the non-numbers of mapped tags are wrong_type dead letters and a
    data-quality exception on the batch; those of unmapped tags are only counted."""
    group, node = f"N{uuid.uuid4().hex[:8]}", "EDGE"
    prefix = f"{group}/{node}/D"
    for name in ("TT-102", "Valve", "Setpoint"):
        tags.bind(f"{prefix}/{name}", TEMPERATURE)
    source = MqttSource(
        spool,
        host=broker[0],
        port=broker[1],
        sparkplug_topics=[f"spBv1.0/{group}/#"],
        client_id=f"gx-{uuid.uuid4().hex[:8]}",
        clean_session=True,
    )
    source.start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    try:
        assert source.connected.wait(DEADLINE)
        pub.connect(*broker)
        pub.loop_start()
        ms = ms_now() - 2000

        def publish(kind: str, payload: Payload, device: str = "") -> None:
            topic = f"spBv1.0/{group}/{kind}/{node}" + (f"/{device}" if device else "")
            pub.publish(topic, encode_payload(payload), qos=1).wait_for_publish(DEADLINE)

        publish("NBIRTH", Payload(timestamp=ms, seq=0, metrics=[]))
        metrics = [
            Metric(name="TT-102", timestamp=ms, datatype=DOUBLE, value=70.25),
            Metric(name="Valve", timestamp=ms, datatype=BOOLEAN, value=True),  # mapped
            Metric(name="Setpoint", timestamp=ms, datatype=STRING, value="70.1"),  # mapped
            Metric(name="Running", timestamp=ms, datatype=BOOLEAN, value=True),
            Metric(name="Name", timestamp=ms, datatype=STRING, value="Mixer 2"),
            Metric(name="Alarm", timestamp=ms, datatype=FLOAT, is_null=True),
            Metric(name="TT-102", timestamp=ms + 1, datatype=DOUBLE, value=70.5),
        ]
        publish("DDATA", Payload(timestamp=ms, seq=1, metrics=metrics), device="D")
        wait_until(lambda: source.counts["received"] >= 7, what="the DDATA spooled")
    finally:
        source.stop()
        pub.loop_stop()
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()  # records the dead letters made on the way
    assert recorded(running) == ["70.25", "70.5"]
    assert rejects_by_reason(running.db) == {"wrong_type": 2}
    with running.db.read() as conn:
        rows = conn.execute(RejectRow.__table__.select()).all()
    assert sorted((r.tag, r.batch_id) for r in rows) == [
        (f"{prefix}/Setpoint", BATCH),
        (f"{prefix}/Valve", BATCH),
    ]
    assert forwarder.counts["not_numeric"] == 3 and forwarder.counts["wrong_type"] == 2
    (exception,) = exceptions(running)
    assert exception.startswith("2 refused inputs (wrong_type 2)")
    assert len(spool) == 0 and spool.rejected() == []


@pytest.mark.parametrize("kind", [BOOLEAN, STRING])
def test_a_metric_mapped_only_after_it_was_spooled_is_still_refused(
    running, tags, spool, kind
) -> None:  # type: ignore[no-untyped-def]
    """The ingest process does not know the map: the forwarder decides at forwarding time."""
    value: object = True if kind == BOOLEAN else "1"
    ms = ms_now() - 1000
    data = encode_payload(
        Payload(
            timestamp=ms,
            seq=1,
            metrics=[Metric(name="V", timestamp=ms, datatype=kind, value=value)],
        )
    )
    out = born().handle_message("spBv1.0/G/DDATA/N/D", data, datetime.now(UTC))
    spool.put(out.readings)
    tags.bind("G/N/D/V", TEMPERATURE)
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()
    assert recorded(running) == [] and rejects_by_reason(running.db) == {"wrong_type": 1}
