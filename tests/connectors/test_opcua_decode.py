"""The OPC UA publish-response decoder gives exactly asyncua's objects, on generated
responses of every shape (its own fast path and asyncua's fallback alike)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, cast

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from gxpmes.connectors import opcua_decode
from gxpmes.connectors.opcua import OpcUaNode, OpcUaSource
from gxpmes.connectors.opcua_decode import decode_publish_response

_TIMES = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1601, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
)
_NUMBERS = st.one_of(
    st.floats(allow_nan=False).map(lambda v: ua.Variant(v, ua.VariantType.Double)),
    st.floats(allow_nan=False, width=32).map(lambda v: ua.Variant(v, ua.VariantType.Float)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int32)),
    st.integers(0, 2**32 - 1).map(lambda v: ua.Variant(v, ua.VariantType.UInt32)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int64)),
    st.integers(0, 2**64 - 1).map(lambda v: ua.Variant(v, ua.VariantType.UInt64)),
    st.integers(-(2**15), 2**15 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int16)),
    st.integers(0, 2**16 - 1).map(lambda v: ua.Variant(v, ua.VariantType.UInt16)),
    st.integers(-128, 127).map(lambda v: ua.Variant(v, ua.VariantType.SByte)),
    st.integers(0, 255).map(lambda v: ua.Variant(v, ua.VariantType.Byte)),
    st.booleans().map(lambda v: ua.Variant(v, ua.VariantType.Boolean)),
)
_OTHERS = st.one_of(  # left to asyncua
    st.text(max_size=20).map(lambda v: ua.Variant(v, ua.VariantType.String)),
    st.lists(st.floats(allow_nan=False), max_size=3).map(
        lambda v: ua.Variant(v, ua.VariantType.Double, is_array=True)
    ),
    st.just(ua.Variant(None, ua.VariantType.Null)),
)


def _value(variant: Any, status: int | None, source: Any, server: Any, pico: int | None) -> Any:
    fields: dict[str, Any] = {"SourceTimestamp": source, "ServerTimestamp": server}
    if variant is not None:
        fields["Value"] = variant
    if status is not None:
        fields["StatusCode"] = ua.StatusCode(status)
    if pico is not None:
        fields["SourcePicoseconds"] = pico
    return ua.DataValue(**fields)


def _items(variants: Any) -> Any:
    return st.lists(
        st.builds(
            lambda handle, value: ua.MonitoredItemNotification(ClientHandle=handle, Value=value),
            st.integers(0, 2**32 - 1),
            st.builds(
                _value,
                st.one_of(st.none(), variants),
                st.one_of(st.none(), st.integers(0, 2**32 - 1)),
                _TIMES,
                _TIMES,
                st.one_of(st.none(), st.none(), st.integers(0, 9999)),
            ),
        ),
        max_size=8,
    )


def _response(lists: list[list[Any]], status_change: bool, sequence: int) -> bytes:
    response = ua.PublishResponse()
    response.Parameters.SubscriptionId = 7
    response.Parameters.AvailableSequenceNumbers = [sequence]
    response.Parameters.NotificationMessage.SequenceNumber = sequence
    response.Parameters.NotificationMessage.PublishTime = datetime(2026, 12, 3, tzinfo=UTC)
    data: list[Any] = [ua.DataChangeNotification(MonitoredItems=items) for items in lists]
    if status_change:
        data.append(ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout)))
    response.Parameters.NotificationMessage.NotificationData = data
    return bytes(struct_to_binary(response))


@settings(max_examples=300)
@given(
    st.lists(st.one_of(_items(_NUMBERS), _items(st.one_of(_NUMBERS, _OTHERS))), max_size=3),
    st.booleans(),
    st.integers(1, 2**32 - 1),
)
def test_decoded_exactly_as_asyncua_decodes(
    lists: list[list[Any]], status_change: bool, sequence: int
) -> None:
    raw = _response(lists, status_change, sequence)
    ours = decode_publish_response(Buffer(raw))
    assert ours == struct_from_binary(ua.PublishResponse, Buffer(raw))
    assert ours.Parameters.NotificationMessage.NotificationData == [
        *[ua.DataChangeNotification(MonitoredItems=items) for items in lists],
        *(
            [ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))]
            if status_change
            else []
        ),
    ]


def test_the_fast_path_is_taken_for_scalar_numbers() -> None:
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    items = [
        ua.MonitoredItemNotification(
            ClientHandle=i,
            Value=ua.DataValue(
                ua.Variant(68.0 + i, ua.VariantType.Double),
                StatusCode=ua.StatusCode(0x480),
                SourceTimestamp=now,
                ServerTimestamp=now,
            ),
        )
        for i in range(5)
    ]
    raw = _response([items], False, 3)
    fast = opcua_decode._publish_response(Buffer(raw))  # raises if it had to fall back
    assert fast == struct_from_binary(ua.PublishResponse, Buffer(raw))
    assert fast.Parameters.NotificationMessage.NotificationData[0].MonitoredItems == items


def test_malformed_input_fails_as_asyncua_fails() -> None:
    raw = _response([[]], False, 1)
    for cut in (raw[:10], raw[:-3]):
        try:
            struct_from_binary(ua.PublishResponse, Buffer(cut))
        except Exception as theirs:
            try:
                decode_publish_response(Buffer(cut))
            except Exception as ours:
                assert type(ours) is type(theirs)
            else:
                raise AssertionError("decoded a truncated response") from None


def _as_asyncua(response: Any) -> Any:
    """``response`` with each :class:`DataChanges` replaced by its asyncua objects."""
    message = response.Parameters.NotificationMessage
    message.NotificationData = [
        n.notification() if isinstance(n, opcua_decode.DataChanges) else n
        for n in message.NotificationData
    ]
    return response


@settings(max_examples=300)
@given(
    st.lists(st.one_of(_items(_NUMBERS), _items(st.one_of(_NUMBERS, _OTHERS))), max_size=3),
    st.booleans(),
    st.integers(1, 2**32 - 1),
)
def test_rows_are_the_values_asyncua_decodes(
    lists: list[list[Any]], status_change: bool, sequence: int
) -> None:
    raw = _response(lists, status_change, sequence)
    rows = decode_publish_response(Buffer(raw), rows=True)
    assert _as_asyncua(rows) == struct_from_binary(ua.PublishResponse, Buffer(raw))


# What the connector makes of a value: times the connector refuses (before 1970, far
# ahead, none), values it refuses (NaN, infinities, booleans, none), every status class.
_ANY_TIMES = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1601, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
)
_ANY_NUMBERS = st.one_of(
    _NUMBERS,
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-7, 1e22, 123.456]).map(
        lambda v: ua.Variant(v, ua.VariantType.Double)
    ),
)


def _connector_items() -> Any:
    return st.lists(
        st.builds(
            lambda handle, value: ua.MonitoredItemNotification(ClientHandle=handle, Value=value),
            st.integers(0, 4),
            st.builds(
                _value,
                _ANY_NUMBERS,
                st.one_of(
                    st.none(),
                    st.sampled_from([0, 0x480, 0x4000_0000, 0x8000_0480, 0xFFFF_FFFF]),
                    st.integers(0, 2**32 - 1),
                ),
                _ANY_TIMES,
                _ANY_TIMES,
                st.none(),
            ),
        ),
        max_size=12,
    )


def _on_publish(response: Any) -> tuple[list[Any], list[Any], dict[str, int]]:
    """What an :class:`OpcUaSource` spools of ``response``: readings, dead letters, counts."""
    nodes = [OpcUaNode(f"ns=2;s=N{i}", f"OPC/N{i}") for i in range(3)]  # handles 1..3
    source = OpcUaSource(cast(Any, None), "opc.tcp://x/", nodes, queue_size=4)
    source._queues = {h: 4 for h in range(1, 4)}
    deliveries: list[Any] = []
    source._submit = deliveries.append  # type: ignore[method-assign]
    source._on_publish(response.Parameters.NotificationMessage)
    letters = [
        (x.origin, x.reason, x.detail, x.tag, x.payload) for d in deliveries for x in d.letters
    ]
    return [r for d in deliveries for r in d.readings], letters, dict(source.counts)


@settings(max_examples=300)
@given(st.lists(_connector_items(), min_size=1, max_size=2), st.integers(1, 2**32 - 1))
def test_the_connector_spools_the_same_from_rows_as_from_asyncuas_objects(
    lists: list[list[Any]], sequence: int
) -> None:
    raw = _response(lists, False, sequence)
    rows = decode_publish_response(Buffer(raw), rows=True)
    assert all(
        isinstance(n, opcua_decode.DataChanges)
        for n in rows.Parameters.NotificationMessage.NotificationData
    )  # numbers only: the rows path, never asyncua's fallback
    assert _on_publish(rows) == _on_publish(struct_from_binary(ua.PublishResponse, Buffer(raw)))


def test_rows_refuse_what_asyncuas_objects_refuse() -> None:
    now = datetime.now(UTC)
    values = [
        (ua.Variant(70.5, ua.VariantType.Double), 0, now, now),  # a reading
        (ua.Variant(math.nan, ua.VariantType.Double), 0, now, now),  # non_finite
        (ua.Variant(True, ua.VariantType.Boolean), 0, now, None),  # wrong_type
        (ua.Variant(1, ua.VariantType.Int32), 0x480, datetime(1969, 1, 1, tzinfo=UTC), now),
        (ua.Variant(2, ua.VariantType.Int32), 0, None, None),  # no time
        (ua.Variant(3, ua.VariantType.Int32), 0x8000_0000, None, now),  # Bad, server time
    ]
    items = [
        ua.MonitoredItemNotification(ClientHandle=1 + i % 3, Value=_value(v, s, a, b, None))
        for i, (v, s, a, b) in enumerate(values)
    ]
    raw = _response([items], False, 1)
    rows = decode_publish_response(Buffer(raw), rows=True)
    readings, letters, counts = _on_publish(rows)
    assert (readings, letters, counts) == _on_publish(
        struct_from_binary(ua.PublishResponse, Buffer(raw))
    )
    assert [(str(r.value), r.quality) for r in readings] == [("70.5", "Good"), ("3", "Bad")]
    assert [x[1] for x in letters] == [
        "non_finite",
        "wrong_type",
        "bad_timestamp",
        "malformed",
        "queue_overflow",  # the Overflow bit on OPC/N1's value
    ]
    assert b"ClientHandle=2" in letters[0][4]  # kept as asyncua's object reads
