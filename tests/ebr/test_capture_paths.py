"""Capture's two paths write the same bytes, and a source key is recorded once.

Capture checks and encodes a call of plain values column by column
(``_plain_blocks``) and anything else value by value (``_prepare_blocks``,
which also says why a value is refused). Both write each leaf from a template
instead of encoding a dict: the leaves must be exactly the RFC 8785 bytes of
the value's record (:func:`audit.canonical.canonicalize`), and both paths must
give the same leaves, block index, source keys and exceptions. Redelivered
source keys are dropped under the write lock, so two captures racing with the
same keys record each key once.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from audit.canonical import canonicalize, format_timestamp
from audit.entry import Actor
from gxpmes.ebr.engine import CapturedColumns, CapturedValue
from gxpmes.errors import BatchError
from gxpmes.records.images import ValueLeaves, value_leaf
from gxpmes.records.verify import verify_record
from gxpmes.testing.plant import HEAT, OT_SOURCE

TEMPERATURE = f"{HEAT}/temperature"
NAMES = st.text(max_size=12)  # any Unicode but lone surrogates (RFC 8785 refuses those)
TEXTS = st.one_of(
    st.sampled_from(["TT-101", "Cel", 'a"b\\c', "\x00\x1f\x7f", "é€😀", "\u2028"]), NAMES
)
NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(Decimal),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1000, max_value=1000),
    st.builds(
        lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
        st.text("0123456789", min_size=1, max_size=20),
        st.integers(-30, 30),
    ),
    st.sampled_from(
        [Decimal("65"), Decimal("75"), Decimal("75.0001"), Decimal("-0"), Decimal("0E-7")]
    ),
)
ZONES = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=2)),
        timezone(timedelta(hours=-5, minutes=-30)),
        # offsets with seconds and sub-second parts (orjson drops the latter)
        timezone(-timedelta(seconds=1)),
        timezone(timedelta(microseconds=500_000)),
        timezone(timedelta(microseconds=1)),
        timezone(-timedelta(hours=3, microseconds=7)),
    ]
)
KEYS = st.one_of(st.none(), TEXTS.filter(bool))  # "" is refused (None: no key)


def _record(value: CapturedValue, leaf: bytes) -> dict[str, Any]:
    """The record the leaf must encode, built here from the value (in_limits from the leaf)."""
    return {
        "account": OT_SOURCE.account_id,
        "batch_id": value.batch_id,
        "client_id": OT_SOURCE.client_id,
        "in_limits": json.loads(leaf)["in_limits"],
        "parameter": value.parameter,
        "quality": value.quality,
        "server_ts": json.loads(leaf)["server_ts"],
        "source_key": value.source_key,
        "source_ts": format_timestamp(value.source_ts),
        "tag": value.tag,
        "unit": value.unit,
        "value": str(value.value),
    }


@settings(max_examples=300, deadline=None)
@given(
    account=NAMES,
    client=NAMES,
    batch=NAMES,
    parameter=TEXTS,
    tag=TEXTS,
    unit=TEXTS,
    number=NUMBERS,
    quality=st.sampled_from(["Good", "Uncertain", "Bad"]),
    in_limits=st.booleans(),
    key=st.one_of(st.none(), TEXTS),
    stamp=st.datetimes(timezones=st.just(UTC)),
)
def test_template_leaves_are_the_canonical_bytes(**kw: Any) -> None:
    leaves = ValueLeaves(kw["account"], kw["client"])
    source = format_timestamp(kw["stamp"])
    server = format_timestamp(kw["stamp"] + timedelta(microseconds=1))
    record = {
        "account": kw["account"],
        "batch_id": kw["batch"],
        "client_id": kw["client"],
        "in_limits": kw["in_limits"],
        "parameter": kw["parameter"],
        "quality": kw["quality"],
        "server_ts": server,
        "source_key": kw["key"],
        "source_ts": source,
        "tag": kw["tag"],
        "unit": kw["unit"],
        "value": kw["number"],
    }
    leaf = leaves.leaf(
        kw["batch"],
        kw["parameter"],
        kw["tag"],
        str(kw["number"]),
        kw["unit"],
        source,
        server,
        kw["quality"],
        kw["in_limits"],
        kw["key"],
    )
    assert leaf == canonicalize(record) == value_leaf(record)
    # Twice through the same template (its texts are kept): the same bytes.
    assert leaf == leaves.leaf(
        kw["batch"],
        kw["parameter"],
        kw["tag"],
        str(kw["number"]),
        kw["unit"],
        source,
        server,
        kw["quality"],
        kw["in_limits"],
        kw["key"],
    )


def test_a_lone_surrogate_is_refused_by_the_template_for_the_exact_path() -> None:
    with pytest.raises(TypeError):
        ValueLeaves("svc", "c").leaf("B", "P", "\ud800", "1", "Cel", "t", "t", "Good", True, None)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_both_capture_paths_write_the_same_blocks(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    engine = plant.engine
    actor = Actor(OT_SOURCE.account_id, "OT device")
    now = plant.clock()
    item = st.builds(
        lambda number, tag, unit, quality, key, back, micro, zone, server: CapturedValue(
            "B-1",
            TEMPERATURE,
            tag,
            number,
            unit,
            (now - timedelta(seconds=back)).replace(microsecond=micro).astimezone(zone),
            server,
            quality=quality,
            source_key=key,
        ),
        number=NUMBERS,
        tag=st.one_of(st.just("TT-101"), TEXTS),
        unit=st.sampled_from(["Cel", "K", 'a"b']),
        quality=st.sampled_from(["Good", "Uncertain", "Bad"]),
        key=KEYS,
        back=st.integers(0, 10**6),
        micro=st.sampled_from([0, 1, 999_999, 123_456]),
        zone=ZONES,
        server=st.one_of(
            st.none(), st.sampled_from([now - timedelta(seconds=5), now.replace(microsecond=0)])
        ),
    )

    # A historian's usual call: one tag, unit and quality, times apart, numbers in or
    # out of the limits (the column path writes such a call from one text).
    uniform = st.builds(
        lambda numbers, quality, keyed, micro: [
            CapturedValue(
                "B-1",
                TEMPERATURE,
                "TT-101",
                number,
                "Cel",
                (now - timedelta(seconds=len(numbers) - i)).replace(microsecond=micro),
                quality=quality,
                source_key=f"u-{i}-{number}" if keyed else None,
            )
            for i, number in enumerate(numbers)
        ],
        numbers=st.lists(st.decimals("60", "80", places=2), min_size=1, max_size=40),
        quality=st.sampled_from(["Good", "Bad"]),
        keyed=st.booleans(),
        micro=st.sampled_from([0, 5]),
    )

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.lists(item, min_size=1, max_size=30), uniform))
    def check(values: list[CapturedValue]) -> None:
        values = [v for v in values if len(str(v.value)) <= 64]
        if not values:
            return
        with plant.db.transaction() as conn:
            server_now = plant.clock()
            plain = engine._plain_blocks(conn, values, server_now, actor, OT_SOURCE.client_id)
            ref = engine._prepare_blocks(conn, values, server_now, actor, OT_SOURCE.client_id)
            held = engine._plain_blocks(
                conn, CapturedColumns.of(values), server_now, actor, OT_SOURCE.client_id
            )
        assert plain is not None  # plain values all: the column path takes them
        # Values handed as columns: the same blocks, index, keys and exceptions.
        assert held is not None and held[0] == []
        assert [(b.leaves, b.index, b.keys) for b in held[1]] == [
            (b.leaves, b.index, b.keys) for b in plain[1]
        ]
        assert held[2:] == plain[2:]
        problems, blocks, block_of, exceptions = ref
        assert problems == [] and plain[0] == []
        assert [b.leaves for b in plain[1]] == [b.leaves for b in blocks]
        assert [b.index for b in plain[1]] == [b.index for b in blocks]
        assert [b.keys for b in plain[1]] == [b.keys for b in blocks]
        assert plain[2] == block_of
        assert plain[3] == exceptions
        for value, leaf in zip(values, blocks[0].leaves, strict=True):
            record = _record(value, leaf)
            assert leaf == canonicalize(record)
            expected = value.value >= 65 and value.value <= 75 and value.unit == "Cel"
            assert record["in_limits"] is expected
        assert {kind for _v, kind, _d in exceptions} <= {"out_of_limit", "bad_quality"}

    check()


def test_a_refused_call_takes_the_path_that_says_why(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    good = CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("70"), "Cel", plant.clock())
    naive = CapturedValue(
        "B-1", TEMPERATURE, "TT-101", Decimal("70"), "Cel", plant.clock().replace(tzinfo=None)
    )
    with plant.db.transaction() as conn:
        args = (plant.clock(), Actor(OT_SOURCE.account_id, "OT device"), "c")
        assert plant.engine._plain_blocks(conn, [good, naive], *args) is None
        problems = plant.engine._prepare_blocks(conn, [good, naive], *args)[0]
    assert problems == ["TT-101 → B-1/" + TEMPERATURE + ": naive timestamp"]


def _keyed(plant, keys: range) -> list[CapturedValue]:  # type: ignore[no-untyped-def]
    return [
        CapturedValue(
            "B-1",
            TEMPERATURE,
            "TT-101",
            Decimal(f"70.{k}"),
            "Cel",
            plant.clock() - timedelta(seconds=1),
            source_key=f"k-{k}",
        )
        for k in keys
    ]


def test_concurrent_captures_of_one_source_key_record_it_once(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    # Two deliveries that overlap (keys 5-9 in both), raced from two threads,
    # each with its own connection; and the same delivery twice.
    calls = [_keyed(plant, range(0, 10)), _keyed(plant, range(5, 15)), _keyed(plant, range(0, 10))]
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def deliver(i: int) -> None:
        start.wait()
        try:
            results[i] = plant.engine.capture(calls[i], source=OT_SOURCE)
        except Exception as exc:  # pragma: no cover - reported below
            results[i] = exc

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(isinstance(r, Exception) for r in results), results
    recorded = plant.engine.values("B-1")
    assert sorted(v["source_key"] for v in recorded) == sorted(f"k-{k}" for k in range(15))
    assert sum(len(r) for r in results) == 15
    with plant.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM ebr_value_key")).scalar() == 15
    # Redelivered later: nothing new.
    assert plant.engine.capture(_keyed(plant, range(0, 15)), source=OT_SOURCE) == []
    assert verify_record(plant.db.engine, trusted_keys=plant.trusted_keys()).ok


def test_the_key_table_refuses_a_second_recording_of_a_key(plant) -> None:  # type: ignore[no-untyped-def]
    """Whatever the code above it does, the database keeps one row per source key."""
    plant.start_batch("B-1", phases=(HEAT,))
    (seq, *_rest) = plant.engine.capture(_keyed(plant, range(2)), source=OT_SOURCE)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), plant.db.engine.begin() as c:
        c.execute(
            text("INSERT INTO ebr_value_key VALUES ('k-0', :s, 5, 'B-1')"),
            {"s": seq},
        )


def test_stale_check_reads_the_block_index_and_manual_entries(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    plant.engine.capture(
        [CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("70"), "Cel", plant.clock())],
        source=OT_SOURCE,
    )
    plant.clock.advance(minutes=4)
    assert plant.engine.check_stale("B-1") == []
    plant.clock.advance(minutes=2)
    assert plant.engine.check_stale("B-1") == [TEMPERATURE]
    manual = CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("70.2"), "Cel", plant.clock())
    plant.engine.manual_entry(plant.sessions["op1"], manual, reason="handheld reading")
    assert plant.engine.check_stale("B-1") == []  # the manual entry is the newest value
    plant.clock.advance(minutes=6)
    assert plant.engine.check_stale("B-1") == [TEMPERATURE]
    plant.engine.capture(
        [CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("71"), "Cel", plant.clock())],
        source=OT_SOURCE,
    )
    assert plant.engine.check_stale("B-1") == []
    assert datetime.fromisoformat(plant.engine.values("B-1")[-1]["server_ts"]) == plant.clock()


VALUES = st.builds(
    CapturedValue,
    batch_id=st.sampled_from(["B-1", "B-2"]),
    parameter=st.just(TEMPERATURE),
    tag=TEXTS,
    value=st.one_of(NUMBERS, st.integers(-5, 5)),
    unit=st.sampled_from(["Cel", "K"]),
    source_ts=st.datetimes(timezones=ZONES),
    server_ts=st.none() | st.datetimes(timezones=st.just(UTC)),
    quality=st.sampled_from(["Good", "Uncertain", "Bad"]),
    source_key=KEYS,
)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(VALUES, max_size=12), cut=st.integers(-14, 14), data=st.data())
def test_captured_columns_are_the_sequence_of_their_values(
    values: list[CapturedValue], cut: int, data: st.DataObject
) -> None:
    columns = CapturedColumns.of(values)
    assert len(columns) == len(values)
    assert list(columns) == values
    assert [columns[i] for i in range(len(values))] == values
    assert list(columns[:cut]) == values[:cut] and list(columns[cut:]) == values[cut:]
    assert isinstance(columns[:cut], CapturedColumns)
    picked = data.draw(st.lists(st.integers(0, len(values) - 1)) if values else st.just([]))
    assert list(columns.picked(picked)) == [values[i] for i in picked]
    # Each column is a copy: changing the caller's list later changes nothing.
    tags = [v.tag for v in values]
    held = CapturedColumns(
        [v.batch_id for v in values],
        [v.parameter for v in values],
        tags,
        [v.value for v in values],
        [v.unit for v in values],
        [v.source_ts for v in values],
        [v.server_ts for v in values],
        [v.quality for v in values],
        [v.source_key for v in values],
    )
    tags.append("extra")
    assert list(held) == values


def test_captured_columns_defaults_lengths_and_read_only() -> None:
    now = datetime.now(UTC)
    columns = CapturedColumns(["B"], ["P"], ["T"], [7], ["Cel"], [now])
    # Defaults of CapturedValue (no server time, Good, no key); an int becomes a Decimal.
    assert columns[0] == CapturedValue("B", "P", "T", Decimal(7), "Cel", now)
    assert type(columns[0].value) is Decimal
    with pytest.raises(BatchError, match=r"unit has 0 items, batch_id has 1"):
        CapturedColumns(["B"], ["P"], ["T"], [7], [], [now])
    with pytest.raises(BatchError, match=r"source_key has 2 items"):
        CapturedColumns(["B"], ["P"], ["T"], [7], ["Cel"], [now], source_key=["a", "b"])
    with pytest.raises(AttributeError, match="read-only"):
        columns.tag = ["other"]  # type: ignore[misc]
    assert list(CapturedColumns.of([])) == [] and repr(columns) == "CapturedColumns(1 values)"


def test_capture_of_columns_skips_recorded_and_repeated_keys(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    engine = plant.engine
    first = engine.capture(CapturedColumns.of(_keyed(plant, range(0, 10))), source=OT_SOURCE)
    assert len(first) == 10
    # Keys 5-9 recorded already, 10-14 twice in the call, one value without a key.
    again = _keyed(plant, range(5, 15)) + _keyed(plant, range(10, 15))
    unkeyed = CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("71"), "Cel", plant.clock())
    seqs = engine.capture(CapturedColumns.of([*again, unkeyed]), source=OT_SOURCE)
    assert len(seqs) == 6
    recorded = engine.values("B-1")
    assert sorted(v["source_key"] for v in recorded if v["source_key"]) == sorted(
        f"k-{k}" for k in range(15)
    )
    assert len(recorded) == 16
    assert engine.capture(CapturedColumns.of(_keyed(plant, range(0, 15))), source=OT_SOURCE) == []
    assert verify_record(plant.db.engine, trusted_keys=plant.trusted_keys()).ok


def test_a_refused_call_of_columns_says_why(plant) -> None:  # type: ignore[no-untyped-def]
    from gxpmes.errors import CaptureRefused

    plant.start_batch("B-1", phases=(HEAT,))
    now = plant.clock()
    columns = CapturedColumns(
        ["B-1", "B-1"],
        [TEMPERATURE, TEMPERATURE],
        ["TT-101", "TT-101"],
        [Decimal("70"), Decimal("71")],
        ["Cel", "Cel"],
        [now, now.replace(tzinfo=None)],
    )
    with pytest.raises(CaptureRefused, match="naive timestamp"):
        plant.engine.capture(columns, source=OT_SOURCE)
    assert plant.engine.values("B-1") == []


def test_captured_columns_cannot_change_after_they_are_made(plant) -> None:  # type: ignore[no-untyped-def]
    """Capture reads the columns as they are: a column emptied or grown after the
    length check (the keys cleared, say) would be recorded as something else."""
    plant.start_batch("B-1", phases=(HEAT,))
    columns = CapturedColumns.of(_keyed(plant, range(3)))
    assert all(type(column) is tuple for column in columns.columns())
    with pytest.raises(AttributeError):
        columns.source_key.clear()  # type: ignore[attr-defined]
    now = plant.clock()
    with pytest.raises(BatchError, match="captured column value is not a sequence: int"):
        CapturedColumns(["B-1"], [TEMPERATURE], ["TT-101"], 7, ["Cel"], [now])  # type: ignore[arg-type]
    assert len(plant.engine.capture(columns, source=OT_SOURCE)) == 3
    assert sorted(v["source_key"] for v in plant.engine.values("B-1")) == ["k-0", "k-1", "k-2"]


class _Relabelled(CapturedColumns):
    """A subclass whose items are not its stored columns: every value's key is k-0."""

    __slots__ = ()

    def columns(self) -> tuple[tuple[Any, ...], ...]:
        *fields, _keys = super().columns()
        return (*fields, ("k-0",) * len(self))


def test_a_subclass_of_captured_columns_is_read_as_its_values(plant) -> None:  # type: ignore[no-untyped-def]
    """Only CapturedColumns itself is read column by column: a subclass is a sequence
    like any other, so the keys looked up are the keys written (here all k-0, recorded
    already: nothing new), never a key the table holds already."""
    plant.start_batch("B-1", phases=(HEAT,))
    plant.engine.capture(_keyed(plant, range(1)), source=OT_SOURCE)
    relabelled = _Relabelled.of(_keyed(plant, range(1, 3)))
    assert [v.source_key for v in relabelled] == ["k-0", "k-0"]
    assert plant.engine.capture(relabelled, source=OT_SOURCE) == []
    assert [v["source_key"] for v in plant.engine.values("B-1")] == ["k-0"]
    assert verify_record(plant.db.engine, trusted_keys=plant.trusted_keys()).ok


class _Key(str):
    """A str subclass (as numpy.str_ is) whose methods say something else."""

    def __str__(self) -> str:
        return "other"

    def __len__(self) -> int:
        return 1


_ODD: dict[str, tuple[dict[str, Any], str]] = {
    "naive server time": ({"server_ts": datetime(2026, 3, 2, 7)}, "naive timestamp"),
    "server time as text": (
        {"server_ts": "2026-03-02T07:00:00Z"},
        "server time '2026-03-02T07:00:00Z' is not a datetime",
    ),
    "server time 0": ({"server_ts": 0}, "server time 0 is not a datetime"),
    "no source time": ({"source_ts": None}, "source time None is not a datetime"),
    "a date": ({"source_ts": datetime(2026, 3, 2).date()}, "is not a datetime"),
    "quality in a list": ({"quality": ["Good"]}, "quality ['Good'] is not Good"),
    "no batch id": ({"batch_id": None}, "a batch id and a parameter are text"),
    "parameter in a list": ({"parameter": [TEMPERATURE]}, "a batch id and a parameter are"),
    "empty batch id": ({"batch_id": ""}, "no such batch"),
    "batch id too long for an object id": ({"batch_id": "B" * 600}, "no such batch"),
    "lone surrogate in the batch id": ({"batch_id": "B-1\ud800"}, "lone surrogate"),
}


@pytest.mark.parametrize("odd", sorted(_ODD))
def test_odd_fields_are_refused_and_audited_on_both_paths(plant, odd: str) -> None:  # type: ignore[no-untyped-def]
    """A value the record cannot hold is refused (CaptureRefused, the refusal audited,
    nothing written) whether handed as a list or as columns — never a TypeError,
    AttributeError or an audit entry that cannot name the batch."""
    from gxpmes.errors import CaptureRefused

    plant.start_batch("B-1", phases=(HEAT,))
    change, message = _ODD[odd]
    fields: dict[str, Any] = {
        "batch_id": "B-1",
        "parameter": TEMPERATURE,
        "tag": "TT-101",
        "value": Decimal("70"),
        "unit": "Cel",
        "source_ts": plant.clock() - timedelta(seconds=1),
        "source_key": "k-odd",
    }
    values = [CapturedValue(**{**fields, **change}), *_keyed(plant, range(2))]
    size = plant.db.ledger.size()
    for handed in (values, CapturedColumns.of(values)):
        with pytest.raises(CaptureRefused, match=r"1 of 3 values refused.*" + re.escape(message)):
            plant.engine.capture(handed, source=OT_SOURCE)
    assert plant.db.ledger.size() == size + 2  # each refusal audited
    assert plant.engine.values("B-1") == []
    assert verify_record(plant.db.engine, trusted_keys=plant.trusted_keys()).ok


def test_a_source_key_of_a_str_subclass_is_its_text(plant) -> None:  # type: ignore[no-untyped-def]
    """A key of a str subclass is looked up and recorded as the text it holds: a
    redelivery is skipped, not a duplicate row the key table refuses (IntegrityError)."""
    plant.start_batch("B-1", phases=(HEAT,))
    plant.engine.capture(_keyed(plant, range(1)), source=OT_SOURCE)
    (again,) = _keyed(plant, range(1))
    odd = CapturedValue(**{**again.__dict__, "source_key": _Key("k-0")})
    assert type(odd.source_key) is str and odd.source_key == "k-0"
    assert plant.engine.capture([odd], source=OT_SOURCE) == []
    keys = [_Key("k-0"), _Key("k-1"), "k-1"]
    columns = CapturedColumns(
        ["B-1"] * 3,
        [TEMPERATURE] * 3,
        ["TT-101"] * 3,
        [Decimal("70")] * 3,
        ["Cel"] * 3,
        [plant.clock()] * 3,
        source_key=keys,
    )
    assert [type(k) for k in columns.source_key] == [str, str, str]
    assert len(plant.engine.capture(columns, source=OT_SOURCE)) == 1
    assert sorted(v["source_key"] for v in plant.engine.values("B-1")) == ["k-0", "k-1"]
    assert verify_record(plant.db.engine, trusted_keys=plant.trusted_keys()).ok


class _Seventy(Decimal):
    """A Decimal subclass whose text names another number than its value."""

    def __str__(self) -> str:
        return "1"


def test_a_decimal_subclass_is_recorded_as_the_number_checked_against_the_limits(plant) -> None:  # type: ignore[no-untyped-def]
    """The record's text and its in_limits verdict speak of one number: a subclass whose
    str() says 1 for 70 (limits 65-75) was recorded as value 1, in limits, no exception."""
    plant.start_batch("B-1", phases=(HEAT,))
    now = plant.clock() - timedelta(seconds=1)
    value = CapturedValue("B-1", TEMPERATURE, "TT-101", _Seventy("70"), "Cel", now)
    assert type(value.value) is Decimal and str(value.value) == "70"
    columns = CapturedColumns(["B-1"], [TEMPERATURE], ["TT-101"], [_Seventy("70")], ["Cel"], [now])
    plant.engine.capture([value], source=OT_SOURCE)
    plant.engine.capture(columns, source=OT_SOURCE)
    plant.engine.manual_entry(plant.sessions["op1"], value, reason="handheld reading")
    recorded = plant.engine.values("B-1")
    assert [(v["value"], v["in_limits"]) for v in recorded] == [("70", True)] * 3
    assert verify_record(plant.db.engine, trusted_keys=plant.trusted_keys()).ok


class _NeverLater(datetime):
    """A datetime subclass that is never later than anything."""

    def __gt__(self, other: object) -> bool:
        return False

    def __lt__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return False


def test_a_datetime_subclass_is_checked_as_the_time_it_records(plant) -> None:  # type: ignore[no-untyped-def]
    """A time five hours ahead of the clock is refused even if its class says it is never
    later: the future check and the record read one plain datetime."""
    from gxpmes.errors import CaptureRefused

    plant.start_batch("B-1", phases=(HEAT,))
    ahead = plant.clock() + timedelta(hours=5)
    later = _NeverLater.fromtimestamp(ahead.timestamp(), UTC)
    assert not later > plant.clock()
    value = CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("70"), "Cel", later)
    assert type(value.source_ts) is datetime and value.source_ts == ahead
    past = plant.clock() - timedelta(seconds=1)
    served = CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("70"), "Cel", past, later)
    head = (["B-1"], [TEMPERATURE], ["TT-101"], [Decimal("70")], ["Cel"])
    columns = CapturedColumns(*head, [later])  # the subclass itself, not a CapturedValue's
    served_columns = CapturedColumns(*head, [past], [later])
    for handed in ([value], [served], columns, served_columns):
        with pytest.raises(CaptureRefused, match="ahead of the server clock"):
            plant.engine.capture(handed, source=OT_SOURCE)
    with pytest.raises(CaptureRefused, match="ahead of the server clock"):
        plant.engine.manual_entry(plant.sessions["op1"], value, reason="handheld reading")
    assert plant.engine.values("B-1") == []


class _AlwaysGood(str):
    """A str subclass equal to (and hashed as) "Good", whatever text it holds."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash("Good")


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("tag", _Key("t" * 300), "tag 't.*has 300 characters; at most 256"),
        ("unit", _Key("u" * 300), "unit 'u.*has 300 characters; at most 256"),
        ("quality", _AlwaysGood("Evil"), "quality 'Evil' is not Good, Uncertain or Bad"),
    ],
)
def test_text_of_a_str_subclass_is_checked_as_the_text_it_holds(  # type: ignore[no-untyped-def]
    plant, field: str, text: str, message: str
) -> None:
    """A subclass's len() and == are not the checks' answer: a 300-character tag that
    says it has 1 was recorded past the limit, a quality "Evil" equal to Good as Good."""
    from gxpmes.errors import CaptureRefused

    plant.start_batch("B-1", phases=(HEAT,))
    fields: dict[str, Any] = {
        "batch_id": "B-1",
        "parameter": TEMPERATURE,
        "tag": "TT-101",
        "value": Decimal("70"),
        "unit": "Cel",
        "source_ts": plant.clock() - timedelta(seconds=1),
        "quality": "Good",
    }
    odd = {**fields, field: text}
    columns = CapturedColumns(*([odd[name]] for name in list(fields)[:6]), quality=[odd["quality"]])
    for handed in ([CapturedValue(**odd)], columns):
        with pytest.raises(CaptureRefused, match=message):
            plant.engine.capture(handed, source=OT_SOURCE)
    assert plant.engine.values("B-1") == []
