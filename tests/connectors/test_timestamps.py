"""Source times a record can hold: every decoder refuses what has no sane UTC instant.

A JSON time of year 1 at +01:00 has no UTC instant a datetime can hold (its
conversion overflows), a "+05:30:30" offset is not RFC 3339 (and was recorded
rounded to minutes), times before 1970 are no plant values: each is a dead
letter with its reason, never an exception — for any year and any offset.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import format_timestamp
from gxpmes.connectors.jsonpayload import decode_json_message
from gxpmes.connectors.model import EARLIEST, FUTURE_TOLERANCE, DecodeError, Reading, check_reading
from gxpmes.connectors.opcua import OpcUaNode, OpcUaSource
from gxpmes.connectors.sparkplug import (
    DOUBLE,
    MAX_MILLIS,
    Metric,
    Payload,
    SparkplugSession,
    encode_payload,
    millis_time,
)
from gxpmes.connectors.spool import Spool, reading_of

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TIME_REASONS = {"malformed", "bad_timestamp", "future_timestamp", "naive_timestamp"}


def decode(ts: str) -> Reading:
    payload = json.dumps({"value": 70.6, "ts": ts}).encode()
    message = decode_json_message(payload, NOW, default_tag="TT", server_ts=NOW)
    (reading,) = message.readings
    return reading


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("0001-01-01T00:30:00+01:00", "bad_timestamp"),  # its UTC instant is in year 0
        ("0001-01-01T00:00:00Z", "bad_timestamp"),
        ("1969-12-31T23:59:59.999999Z", "bad_timestamp"),
        ("1970-01-01T00:30:00+01:00", "bad_timestamp"),  # 1969 in UTC
        ("9999-12-31T23:59:59-01:00", "future_timestamp"),  # its UTC instant is in year 10000
        ("2026-03-02T13:30:00.123456+05:30:30", "malformed"),  # seconds in the offset
        ("2026-03-02T13:30:00+05:30:30.5", "malformed"),
        ("2026-03-02T08:00:00+0000", "malformed"),  # basic format
        ("20260302T080000Z", "malformed"),
        ("2026-W10-1T08:00:00Z", "malformed"),  # ISO week date
        ("2026-03-02\x0008:00:00Z", "malformed"),  # fromisoformat takes any separator
        ("2026-03-02\ud80008:00:00Z", "malformed"),
        ("2026-03-02T08Z", "malformed"),
        ("2026-03-02T08:00:00.1234567890Z", "malformed"),  # more than nanoseconds
        ("٢٠٢٦-03-02T08:00:00Z", "malformed"),  # digits of another script
        ("2026-03-02T08:00:60Z", "malformed"),
        ("2026-03-02T08:00:00+24:00", "malformed"),
        ("2026-03-02T08:00:00", "naive_timestamp"),
    ],
)
def test_json_times_without_a_sane_utc_instant_are_refused(ts: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(ts)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("ts", "utc"),
    [
        ("2026-03-02T07:59:00z", "2026-03-02T07:59:00.000000Z"),
        ("2026-03-02 13:29:00+05:30", "2026-03-02T07:59:00.000000Z"),
        ("2026-03-02t07:59:00.123456789Z", "2026-03-02T07:59:00.123456Z"),  # to the µs
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
        ("2026-03-01T23:59:00-08:00", "2026-03-02T07:59:00.000000Z"),
    ],
)
def test_rfc3339_times_are_read_exactly(ts: str, utc: str) -> None:
    assert format_timestamp(decode(ts).source_ts) == utc


_OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
    max_value=timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
)


def _texts(moment: datetime, style: int) -> str:
    text = moment.isoformat(timespec=("auto", "seconds", "milliseconds", "microseconds")[style])
    return text.replace("+00:00", "Z") if style == 1 else text


@settings(max_examples=400, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    _OFFSETS,
    st.integers(0, 3),
)
def test_any_year_and_offset_is_a_reading_or_a_dead_letter(
    wall: datetime, offset: timedelta, style: int
) -> None:
    moment = wall.replace(tzinfo=timezone(offset))
    try:
        reading = decode(_texts(moment, style))
    except DecodeError as exc:
        assert exc.reason in TIME_REASONS
        return
    # Accepted: a whole-minute offset, an instant in range, recorded exactly.
    assert not offset.seconds % 60 and not offset.microseconds
    assert EARLIEST <= reading.source_ts <= NOW + FUTURE_TOLERANCE
    assert reading.source_ts == moment
    assert format_timestamp(reading.source_ts) == format_timestamp(moment.astimezone(UTC))


def test_check_reading_refuses_offsets_with_seconds_and_times_before_1970() -> None:
    odd = datetime(2026, 3, 2, 13, 30, 30, tzinfo=timezone(timedelta(hours=5, seconds=1830)))
    with pytest.raises(DecodeError, match="whole minutes") as info:
        check_reading(Reading("T", Decimal(1), odd), NOW)
    assert info.value.reason == "bad_timestamp"
    old = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(DecodeError) as info:
        check_reading(Reading("T", Decimal(1), old), NOW)
    assert info.value.reason == "bad_timestamp"


# ------------------------------------------------------------------ Sparkplug


@given(st.integers(0, 2**64 - 1))
def test_sparkplug_milliseconds_are_exact_or_refused(millis: int) -> None:
    try:
        moment = millis_time(millis, "T")
    except DecodeError as exc:
        assert exc.reason == "bad_timestamp" and millis > MAX_MILLIS
        return
    assert moment == EARLIEST + timedelta(milliseconds=millis)  # no float rounding
    assert format_timestamp(moment).endswith(f"{millis % 1000:03d}000Z")


def test_sparkplug_times_are_checked_as_json_times() -> None:
    session = SparkplugSession()
    ms = int(datetime.now(UTC).timestamp() * 1000)
    birth = Payload(timestamp=ms, seq=0, metrics=[])
    session.handle_message("spBv1.0/G/NBIRTH/N", encode_payload(birth), datetime.now(UTC))
    data = Payload(
        timestamp=ms,
        seq=1,
        metrics=[
            Metric(name="A", timestamp=0, datatype=DOUBLE, value=1.0),  # 1970-01-01: taken
            Metric(name="B", timestamp=MAX_MILLIS, datatype=DOUBLE, value=1.0),
            Metric(name="C", timestamp=ms, datatype=DOUBLE, value=1.0),
        ],
    )
    out = session.handle_message("spBv1.0/G/NDATA/N", encode_payload(data), datetime.now(UTC))
    assert [r.tag for r in out.readings] == ["G/N/A", "G/N/C"]
    assert [(p.reason, p.tag) for p in out.problems] == [("future_timestamp", "G/N/B")]


# ------------------------------------------------------------------ OPC UA


def test_opcua_times_before_1970_are_dead_letters(spool: Spool) -> None:
    source = OpcUaSource(spool, "opc.tcp://x/", [OpcUaNode("ns=2;s=X", "OPC/X")])
    source._queues = {1: source.queue_size}
    deliveries: list[Any] = []
    source._submit = deliveries.append  # type: ignore[method-assign]
    now = datetime.now(UTC)
    items = [
        ua.MonitoredItemNotification(
            ClientHandle=1,
            Value=ua.DataValue(ua.Variant(70.0 + i, ua.VariantType.Double), SourceTimestamp=ts),
        )
        for i, ts in enumerate(
            [
                ua.win_epoch_to_datetime(0),  # OPC UA's "no time": 1601-01-01
                datetime(1969, 12, 31, 23, 59, 59),
                now - timedelta(seconds=1),
            ]
        )
    ]
    message = ua.NotificationMessage(
        SequenceNumber=1, NotificationData=[ua.DataChangeNotification(MonitoredItems=items)]
    )
    source._on_publish(message)
    letters = [x for d in deliveries for x in d.letters]
    assert [(x.reason, x.tag) for x in letters] == [("bad_timestamp", "OPC/X")] * 2
    assert [str(r.value) for d in deliveries for r in d.readings] == ["72.0"]


# ------------------------------------------------------------------ the spool


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
            _OFFSETS,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_spool_keeps_every_instant_exactly(times: list[tuple[datetime, timedelta]]) -> None:
    """Whatever aware time a reading carries (an offset with seconds included), the spool
    gives back the same instant: nothing is rounded on the way to the forwarder."""
    readings = [
        Reading("T", Decimal(i), wall.replace(tzinfo=timezone(offset)), server_ts=NOW)
        for i, (wall, offset) in enumerate(times)
    ]
    with tempfile.TemporaryDirectory() as folder:
        spool = Spool(Path(folder) / "spool.db")
        try:
            spool.put(readings)
            back = [reading_of(item) for _id, items in spool.pending_items() for item in items]
        finally:
            spool.close()
    assert [r.source_ts for r in back] == [r.source_ts for r in readings]
    assert [format_timestamp(r.source_ts) for r in back] == [
        format_timestamp(r.source_ts) for r in readings
    ]
