"""Connector source keys begin with the value's time, so text order is time order.

The record's key index (``ebr_value_key``, a b-tree on the key text) then takes a
capture call's keys near its end; keys that began with the tag went to one page
per tag, which cost a quarter of capture with a thousand OPC UA nodes
(docs/connectors.md, "Source keys").
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from gxpmes.connectors.opcua import source_key
from gxpmes.connectors.sparkplug import DOUBLE, Metric, Payload, SparkplugSession, encode_payload

TAGS = st.text(min_size=1, max_size=40)
MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
)


@given(MOMENTS, MOMENTS, TAGS, TAGS, st.decimals(allow_nan=False, allow_infinity=False))
def test_opcua_keys_sort_as_their_source_times(
    first: datetime, second: datetime, tag_a: str, tag_b: str, number: Decimal
) -> None:
    key_a = source_key(first.isoformat(), tag_a, number)
    key_b = source_key(second.isoformat(), tag_b, number)
    if first < second:
        assert key_a < key_b
    elif second < first:
        assert key_b < key_a
    assert key_a.startswith(f"opcua|{first.isoformat()}|")


def test_opcua_key_names_time_tag_and_value() -> None:
    moment = datetime(2026, 12, 3, 10, 0, 0, 250000, tzinfo=UTC)
    assert source_key(moment.isoformat(), "ns=2;s=TT-101", Decimal("70.5")) == (
        "opcua|2026-12-03T10:00:00.250000+00:00|ns=2;s=TT-101|70.5"
    )


def test_sparkplug_keys_begin_with_the_metric_time_and_sort_by_it() -> None:
    session = SparkplugSession()
    now = datetime.now(UTC)
    ms = int(now.timestamp() * 1000)
    session.handle_message(
        "spBv1.0/G/NBIRTH/N", encode_payload(Payload(timestamp=ms, seq=0, metrics=[])), now
    )
    data = Payload(
        timestamp=ms,
        seq=1,
        metrics=[
            Metric(name=f"M{i}", timestamp=ms - 1000 * (3 - i), datatype=DOUBLE, value=1.0)
            for i in range(3)
        ],
    )
    outcome = session.handle_message("spBv1.0/G/NDATA/N", encode_payload(data), now)
    keys = [reading.dedup_key for reading in outcome.readings]
    assert [key.split("|")[1] for key in keys] == [str(ms - 3000), str(ms - 2000), str(ms - 1000)]
    assert keys == sorted(keys)
    assert all(key.startswith("spb|") for key in keys)
    assert [key.rsplit("|", 1)[1] for key in keys] == ["M0", "M1", "M2"]
