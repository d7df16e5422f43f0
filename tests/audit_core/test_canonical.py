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
        (2**53 + 1, "not exactly a double"),
        (10**400, "not exactly a double"),
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


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
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
    # RFC 8785 numbers are IEEE doubles: big integers read back as doubles.
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
