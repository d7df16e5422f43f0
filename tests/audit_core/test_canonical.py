"""RFC 8785 canonical encoding: the RFC's own vectors, error paths, properties."""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.canonical import canonicalize, format_timestamp, number_to_json
from audit.entry import Actor, AuditEvent, encode_entry, parse_entry
from audit.errors import CanonicalizationError

# RFC 8785 Appendix B: IEEE-754 bit patterns and their required serialisation.
RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(bits))[0]


@pytest.mark.parametrize(("bits", "expected"), RFC8785_NUMBERS)
def test_rfc8785_number_vectors(bits: str, expected: str) -> None:
    assert number_to_json(_double(bits)) == expected


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_non_finite_numbers_are_refused(bits: str) -> None:
    with pytest.raises(CanonicalizationError, match="not a finite number"):
        canonicalize({"x": _double(bits)})


def test_rfc8785_section_3_2_2_example() -> None:
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        '"literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(value) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_sorting_by_utf16_code_units() -> None:
    value = json.loads(
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet '
        'With Dagesh", "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": '
        '"Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}'
    )
    keys = list(json.loads(canonicalize(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_large_integers_exactly_representable_are_numbers() -> None:
    assert canonicalize(2**53) == b"9007199254740992"
    assert canonicalize(10**21) == b"1e+21"


def test_decimal_is_kept_exact_as_string() -> None:
    assert canonicalize({"q": Decimal("1.50")}) == b'{"q":"1.50"}'
    assert canonicalize([Decimal("-0.000000000000000000001")]) == b'["-1E-21"]'


def test_timestamps_are_utc_with_microseconds() -> None:
    berlin = timezone(timedelta(hours=1))
    assert format_timestamp(datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=berlin)) == (
        "2026-01-02T03:04:05.000006Z"
    )
    assert canonicalize(datetime(2026, 1, 2, tzinfo=UTC)) == b'"2026-01-02T00:00:00.000000Z"'


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(CanonicalizationError, match="naive datetime"):
        canonicalize({"at": datetime(2026, 1, 1)})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2**53 + 1, "would write it as 9007199254740992"),
        (10**400, "beyond the range of a JSON number"),
        ({1: "a"}, "member name"),
        ({"s": "\ud800"}, "lone surrogate"),
        (b"bytes", "no canonical JSON form"),
        ({1, 2}, "no canonical JSON form"),
        (Decimal("NaN"), "not finite"),
    ],
)
def test_values_without_exact_form_are_refused(value: object, message: str) -> None:
    with pytest.raises(CanonicalizationError, match=message):
        canonicalize(value)


# Integers JCS writes exactly: the safe range, and the powers of two whose shortest
# double form is still the whole integer (2**53 .. 2**54; 2**60 would be rounded).
exact_integers = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | st.sampled_from(
    [2**53, -(2**53), 2**54, 10**21, 10**22]
)
json_scalars = (
    st.none()
    | st.booleans()
    | exact_integers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def _jcs_int(text: str) -> int | float:
    # RFC 8785 numbers are IEEE doubles: a large float is written without exponent
    # (4.963996478603631e16 as 49639964786036310) and reads back as a double.
    number = int(text)
    return number if abs(number) <= 2**53 - 1 else float(text)


@given(json_values)
def test_round_trip_is_a_fixed_point(value: object) -> None:
    encoded = canonicalize(value)
    decoded = json.loads(encoded, parse_int=_jcs_int)
    assert canonicalize(decoded) == encoded


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20))
def test_numbers_survive_exactly(values: list[float]) -> None:
    # Parsing the canonical text gives back the same doubles, bit for bit (but for -0).
    parsed = [float(x) for x in json.loads(canonicalize(values))]
    assert parsed == values


@given(st.dictionaries(st.text(max_size=8), json_scalars, max_size=8), st.randoms())
def test_member_order_does_not_matter(value: dict[str, object], rnd: object) -> None:
    items = list(value.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert canonicalize(dict(items)) == canonicalize(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_text_parses_back_to_the_same_double(x: float) -> None:
    text = number_to_json(x)
    assert float(text) == x or (x == 0 and float(text) == 0)
    assert "E" not in text and not text.endswith(".0")
    assert math.isfinite(float(text))


# ------------------------------------------------ integers and decimals of any size

any_integers = (
    st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.integers(min_value=0, max_value=1100).map(lambda k: 2**k)
    | st.integers(min_value=0, max_value=400).map(lambda k: 10**k)
    | st.integers(min_value=2, max_value=10_000).map(lambda n: 10**n - 1)
)


@given(any_integers, st.booleans())
def test_an_integer_is_written_exactly_or_refused(number: int, negative: bool) -> None:
    number = -number if negative else number
    try:
        encoded = canonicalize({"n": number})
    except CanonicalizationError as exc:
        assert exc.path == "/n" and str(exc).startswith("/n: integer ")
        assert abs(number) > 2**53 - 1  # the safe range is never refused
        return
    text = json.loads(encoded, parse_int=str, parse_float=str)["n"]
    assert Decimal(text) == number  # the text says exactly this integer, nothing rounded
    assert json.loads(encoded)["n"] == number  # and so does the double a JSON reader makes
    assert canonicalize(json.loads(encoded)) == encoded  # and reads back to the same bytes


def test_the_integer_from_the_report_is_refused_by_its_pointer() -> None:
    # 68294714393637184 is a double, but its RFC 8785 text is 68294714393637180.
    with pytest.raises(CanonicalizationError) as info:
        canonicalize({"rows": [{"value": 68294714393637184}]})
    assert info.value.path == "/rows/0/value"
    assert "68294714393637180" in str(info.value) and "Decimal" in str(info.value)
    assert canonicalize({"value": Decimal(68294714393637184)}) == b'{"value":"68294714393637184"}'


def test_pointer_tokens_are_escaped() -> None:
    with pytest.raises(CanonicalizationError) as info:
        canonicalize({"a/b": {"c~d": [float("nan")]}})
    assert info.value.path == "/a~1b/c~0d/0"


decimals_of_any_size = st.decimals(allow_nan=False, allow_infinity=False) | st.builds(
    lambda digits, exponent, sign: Decimal(f"{sign}{digits}E{exponent}"),
    st.text("0123456789", min_size=1, max_size=2000),
    st.integers(-(10**6), 10**6),
    st.sampled_from(["", "-"]),
)


@given(decimals_of_any_size)
def test_decimals_keep_every_digit(number: Decimal) -> None:
    text = json.loads(canonicalize({"q": number}))["q"]
    assert Decimal(text) == number
    assert Decimal(text).as_tuple() == number.as_tuple()  # same digits and exponent, not only value


def _earlier_integer_text(number: int) -> str | None:
    """What the encoder wrote for an integer before the exactness rule (None: refused)."""
    if abs(number) <= 2**53 - 1:
        return str(number)
    try:
        as_double = float(number)
    except OverflowError:
        return None
    return number_to_json(as_double) if as_double == number else None


@given(any_integers, st.booleans())
def test_the_rule_only_refuses_integers_that_were_written_changed(
    number: int, negative: bool
) -> None:
    # Existing ledgers keep verifying: every integer still accepted is written
    # byte for byte as before; the ones now refused were written as another integer.
    number = -number if negative else number
    earlier = _earlier_integer_text(number)
    try:
        now: str | None = canonicalize(number).decode()
    except CanonicalizationError:
        now = None
    if now is not None:
        assert now == earlier
    elif earlier is not None:
        assert Decimal(earlier) != number


def test_an_entry_written_with_a_changed_integer_still_reads() -> None:
    event = AuditEvent(Actor("u1", "U One"), "test.old", "thing", "T-1", new={"n": 1})
    old_bytes = encode_entry(7, "2026-01-01T00:00:00.000000Z", bytes(32), event).replace(
        b'"new":{"n":1}', b'"new":{"n":68294714393637180}'
    )
    assert parse_entry(old_bytes).event.new == {"n": 68294714393637180}  # what it says


def test_an_entry_names_the_payload_field_it_cannot_carry() -> None:
    event = AuditEvent(
        Actor("u1", "U One"), "value.capture", "process_value", "B-1/p", new={"value": 2**60}
    )
    with pytest.raises(CanonicalizationError) as info:
        encode_entry(0, "2026-01-01T00:00:00.000000Z", bytes(32), event)
    assert info.value.path == "/new/value"
    nested = AuditEvent(
        Actor("u1", "U One"), "x", "thing", "T-1", old={"rows": [{"row": {"n": -(2**60)}}]}
    )
    with pytest.raises(CanonicalizationError, match=r"^/old/rows/0/row/n: integer "):
        encode_entry(0, "2026-01-01T00:00:00.000000Z", bytes(32), nested)


_cells = st.one_of(
    st.none(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.text(),
)


@given(st.lists(st.lists(_cells, max_size=5), max_size=8))
def test_flat_tables_take_the_fast_path_with_identical_bytes(rows: list[list[object]]) -> None:
    # Tuples always take the general encoder; lists of plain rows take the C encoder.
    general = tuple(tuple(row) for row in rows)
    try:
        expected = canonicalize(general)
    except CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            canonicalize(rows)
        return
    assert canonicalize(rows) == expected
