"""Payload decoding, Sparkplug B codec, spool and forwarder — including hypothesis fuzzing."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.errors import StorageError
from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.jsonpayload import decode_json
from gxpmes.connectors.model import DeadLetter, DecodeError, Problem, Reading, TagMap
from gxpmes.connectors.sparkplug import (
    DOUBLE,
    INT32,
    INT64,
    Metric,
    Payload,
    SparkplugSession,
    decode_payload,
    encode_payload,
)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@given(st.binary(max_size=300))
def test_json_decoder_never_crashes_on_bytes(data: bytes) -> None:
    try:
        readings = decode_json(data, NOW)
    except DecodeError as exc:
        assert exc.reason
    else:
        assert all(isinstance(r.value, Decimal) and r.value.is_finite() for r in readings)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from(["tag", "value", "ts", "quality", "x"]), json_values, max_size=5
    )
)
def test_json_decoder_never_crashes_on_objects(item: dict[str, object]) -> None:
    try:
        decode_json(json.dumps(item).encode(), NOW)
    except DecodeError as exc:
        assert exc.reason in {
            "malformed",
            "wrong_type",
            "non_finite",
            "naive_timestamp",
            "future_timestamp",
            "bad_quality_code",
        }


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "malformed"),
        (b'{"tag": "T", "value": "abc", "ts": "2026-03-02T08:00:00Z"}', "wrong_type"),
        (b'{"tag": "T", "value": "Infinity", "ts": "2026-03-02T08:00:00Z"}', "non_finite"),
        (b'{"tag": "T", "value": 1, "ts": "2026-03-02T08:00:00"}', "naive_timestamp"),
        (b'{"tag": "T", "value": 1, "ts": "2026-03-03T08:00:00Z"}', "future_timestamp"),
        (
            b'{"tag": "T", "value": 1, "ts": "2026-03-02T08:00:00Z", "quality": "Excellent"}',
            "bad_quality_code",
        ),
        (b'{"value": 1, "ts": "2026-03-02T08:00:00Z"}', "malformed"),
    ],
)
def test_each_kind_of_bad_input_has_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_json(payload, NOW)
    assert info.value.reason == reason


def test_unknown_tag_is_refused_by_the_map() -> None:
    with pytest.raises(DecodeError, match="unknown_tag"):
        TagMap().get("NOPE")


metrics = st.builds(
    Metric,
    name=st.none() | st.text(min_size=1, max_size=10),
    alias=st.none() | st.integers(0, 2**63),
    timestamp=st.none() | st.integers(0, 2**50),
    datatype=st.just(DOUBLE),
    value=st.floats(allow_nan=False, allow_infinity=False),
)


@given(
    st.builds(
        Payload,
        timestamp=st.none() | st.integers(0, 2**50),
        seq=st.none() | st.integers(0, 255),
        metrics=st.lists(metrics, max_size=4),
    )
)
def test_sparkplug_codec_round_trip(payload: Payload) -> None:
    assert decode_payload(encode_payload(payload)) == payload


def test_sparkplug_signed_integers() -> None:
    payload = Payload(
        seq=1,
        metrics=[
            Metric(name="a", datatype=INT32, value=-5),
            Metric(name="b", datatype=INT64, value=-(2**40)),
        ],
    )
    decoded = decode_payload(encode_payload(payload))
    assert [m.value for m in decoded.metrics] == [-5, -(2**40)]


@given(st.binary(max_size=200))
def test_sparkplug_decoder_never_crashes(data: bytes) -> None:
    with contextlib.suppress(DecodeError):  # refusing is fine; any other error is not
        decode_payload(data)


def test_sparkplug_session_rules() -> None:
    session = SparkplugSession()
    ms = 1_772_438_400_000
    _, rebirth = session.handle("spBv1.0/G/NDATA/N", encode_payload(Payload(timestamp=ms, seq=3)))
    assert rebirth  # data before a birth
    session.handle(
        "spBv1.0/G/NBIRTH/N",
        encode_payload(
            Payload(
                timestamp=ms,
                seq=0,
                metrics=[Metric(name="T", alias=1, timestamp=ms, datatype=DOUBLE, value=1.5)],
            )
        ),
    )
    readings, rebirth = session.handle(
        "spBv1.0/G/NDATA/N",
        encode_payload(
            Payload(
                timestamp=ms,
                seq=1,
                metrics=[Metric(alias=1, timestamp=ms + 1, datatype=DOUBLE, value=2.5)],
            )
        ),
    )
    assert not rebirth and [(r.tag, str(r.value)) for r in readings] == [("G/N/T", "2.5")]
    _, rebirth = session.handle(
        "spBv1.0/G/NDATA/N",
        encode_payload(
            Payload(
                timestamp=ms,
                seq=2,
                metrics=[Metric(alias=99, timestamp=ms, datatype=DOUBLE, value=1.0)],
            )
        ),
    )
    assert rebirth  # unknown alias
    session.handle("spBv1.0/G/NDEATH/N", encode_payload(Payload(timestamp=ms)))
    _, rebirth = session.handle("spBv1.0/G/NDATA/N", encode_payload(Payload(timestamp=ms, seq=3)))
    assert rebirth  # after death, data needs a new birth
    with pytest.raises(DecodeError, match="not a Sparkplug B topic"):
        session.handle("other/topic", b"")
    with pytest.raises(DecodeError, match="non_finite"):
        session.handle(
            "spBv1.0/G/NBIRTH/N",
            encode_payload(
                Payload(
                    timestamp=ms,
                    seq=0,
                    metrics=[Metric(name="T", timestamp=ms, datatype=DOUBLE, value=float("nan"))],
                )
            ),
        )


def test_spool_keeps_order_and_drops_redeliveries(spool) -> None:  # type: ignore[no-untyped-def]
    readings = [
        Reading("T", Decimal(i), NOW + timedelta(seconds=i), dedup_key=f"k{i}") for i in range(5)
    ]
    assert spool.put(readings[:2]) == 2
    assert spool.put(readings[1:]) == 3  # k1 dropped: spooled before
    assert spool.put(readings[2:]) == 0  # redelivered: nothing new
    assert [str(r.value) for _i, r in spool.peek()] == ["0", "1", "2", "3", "4"]
    ids = [i for i, _r in spool.peek(2)]  # whole deliveries: the first one
    assert len(set(ids)) == 1 and len(ids) == 2
    spool.remove(ids)
    assert len(spool) == 3
    assert spool.put(readings[:1]) == 0  # even after it was forwarded
    assert [str(r.value) for _i, r in spool.peek(1)] == ["2", "3", "4"]


def test_spool_survives_reopening(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gxpmes.connectors.spool import Spool

    first = Spool(tmp_path / "s.db")
    first.put([Reading("T", Decimal("1.5"), NOW, dedup_key="a")])
    first.close()
    again = Spool(tmp_path / "s.db")
    assert [str(r.value) for _i, r in again.peek()] == ["1.5"]
    again.close()


def test_forwarder_keeps_values_through_a_database_outage(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    spool.put(
        [
            Reading("GRAN01/TT-101", Decimal("70.5"), NOW, dedup_key="x1"),
            Reading("GRAN01/TT-101", Decimal("71.5"), NOW + timedelta(seconds=1), dedup_key="x2"),
            Reading("UNKNOWN", Decimal("1"), NOW, dedup_key="x3"),
        ]
    )
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    real_capture = running.engine.capture
    outage = {"left": 2}

    def failing_capture(values, source):  # type: ignore[no-untyped-def]
        if outage["left"]:
            outage["left"] -= 1
            raise StorageError("database unreachable")
        return real_capture(values, source=source)

    running.engine.capture = failing_capture
    for _ in range(2):
        with pytest.raises(StorageError):
            forwarder.forward_once()
        assert len(spool) == 2  # unknown tag dropped (counted), good values kept
    assert forwarder.forward_once() == 2
    assert len(spool) == 0 and forwarder.counts["unknown_tag"] >= 1
    assert [v["value"] for v in running.engine.values("B-OT-1")] == ["70.5", "71.5"]


def test_refused_input_of_a_mapped_tag_is_a_data_quality_exception(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    for tag, reason, detail in (
        ("GRAN01/TT-101", "non_finite", "value NaN"),
        ("NOT-MAPPED", "malformed", "garbage"),
    ):
        spool.reject(DeadLetter.of(Problem(reason, detail, tag), "test/topic", b"x", NOW))
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    items = [
        i
        for i in running.engine.review_by_exception("B-OT-1")
        if i.kind == "exception:data_quality"
    ]
    assert len(items) == 1 and "non_finite: value NaN" in items[0].detail
    assert spool.rejected() == [] and forwarder.counts["data_quality_exceptions"] == 1


_NEAR = ["2026-03-02T07:59:00Z", "2026-03-02 09:29:00.5+01:30", "2026-03-02t07:00:00.123456789z"]
_ODD_TIMES = [
    "2026-03-02T07:59:00",  # naive
    "2026-03-02T08:06:00Z",  # ahead
    "1969-12-31T23:59:59Z",  # before 1970
    "2026-02-30T08:00:00Z",  # no such day
    "2026-03-02T07:59:00Z\n2026-03-02T07:59:00Z",  # two lines in one
    "2026-03-02T07:59:00+05:30:30",
    5,
]
_ODD_VALUES = ["1e5", "-0", "abc", "NaN", "9" * 70, 1, True, None]
_items = st.fixed_dictionaries(
    {
        # Mostly good readings (so the column-wise path runs), each field sometimes odd.
        "value": st.one_of(
            *[st.sampled_from([0.0, -0.0, 1.0, "1", " 70.1 "])] * 6,
            st.sampled_from(_ODD_VALUES),
            st.floats(),
            st.integers(-(10**70), 10**70),
            st.decimals(allow_nan=False, allow_infinity=False).map(str),
        ),
        "ts": st.sampled_from(_NEAR * 15 + _ODD_TIMES),
    },
    optional={
        "tag": st.sampled_from(["T"] * 15 + ["U", "", " ", "T\x00", 7, None, ["T"]]),
        "quality": st.sampled_from(["Good", "Bad", "Uncertain"] * 5 + ["good", 1, ["Good"]]),
        "seq": st.integers(-1, 3),
    },
)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.tuples(_items, st.integers(0, 20)).map(lambda x: [1] if x[1] == 7 else x[0]),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([None, "T", "T"]),
    st.booleans(),
)
def test_column_wise_decoding_is_the_reading_by_reading_loop(  # type: ignore[no-untyped-def]
    items, default_tag, payload_tag
) -> None:
    """The column-wise path gives exactly what the loop gives, or leaves it to the loop
    (which alone says what is refused)."""
    import gxpmes.connectors.jsonpayload as jsonpayload

    payload = json.dumps(items).encode()

    def decoded(column_wise: bool) -> object:
        saved = jsonpayload._plain
        if not column_wise:
            jsonpayload._plain = lambda *args: None  # type: ignore[assignment]
        try:
            message = jsonpayload.decode_json_message(
                payload,
                NOW,
                default_tag=default_tag,
                payload_tag=payload_tag,
                publisher="pub",
                server_ts=NOW,
            )
        except DecodeError as exc:
            return ("refused", exc.reason, exc.detail, exc.tag)
        finally:
            jsonpayload._plain = saved
        return [
            (r.tag, str(r.value), r.source_ts, r.source_ts.utcoffset(), r.quality, r.dedup_key)
            for r in message.readings
        ] + message.sequence

    assert decoded(True) == decoded(False)


@given(
    st.tuples(
        st.text(max_size=5),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.datetimes(timezones=st.just(UTC)),
        st.sampled_from(["Good", "Bad"]),
        st.none() | st.datetimes(timezones=st.just(UTC)),
        st.text(max_size=5),
    )
)
def test_new_reading_is_the_dataclass_reading(fields) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import FrozenInstanceError, replace
    from dataclasses import fields as dataclass_fields

    from gxpmes.connectors.model import new_reading

    made, built = new_reading(*fields), Reading(*fields)
    assert type(made) is Reading and vars(made) == vars(built)
    assert made == built and hash(made) == hash(built)
    assert [getattr(made, f.name) for f in dataclass_fields(Reading)] == list(fields)
    assert replace(made, quality="Bad") == replace(built, quality="Bad")
    with pytest.raises(FrozenInstanceError):
        made.tag = "other"  # type: ignore[misc]
