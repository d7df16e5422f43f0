"""Canonical byte form of audit entries: RFC 8785 JSON Canonicalization Scheme.

The same logical value always yields the same bytes, on every platform and
Python version, because every choice JSON leaves open is fixed:

* UTF-8 output, no insignificant whitespace;
* object members sorted by the UTF-16 code units of their names (RFC 8785 §3.2.3);
* strings escaped exactly as ECMAScript's ``JSON.stringify`` does;
* numbers serialised as ECMAScript does for IEEE-754 doubles (RFC 8785 §3.2.2.3).

Two Python types JSON does not have are mapped to strings before encoding,
so that nothing is ever rounded or reinterpreted:

* :class:`decimal.Decimal` → its exact string (``Decimal("1.50")`` → ``"1.50"``);
* aware :class:`datetime.datetime` → RFC 3339 in UTC with microseconds
  (``"2026-01-02T03:04:05.000006Z"``). Naive datetimes are rejected.

Integers that are not exactly a double (most beyond ±2**53) are rejected: JCS
numbers are doubles and such an integer would silently lose digits; pass a
Decimal or a string instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from audit.errors import CanonicalizationError

__all__ = ["MAX_SAFE_INTEGER", "canonicalize", "format_timestamp", "number_to_json"]

MAX_SAFE_INTEGER = 2**53 - 1

_encode_string = json.encoder.encode_basestring


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC text with exactly six fractional digits; naive input is refused."""
    offset = value.utcoffset()
    if offset is None:
        raise CanonicalizationError(f"naive datetime {value.isoformat()} has no time zone")
    if offset:
        value = value - offset
    # isoformat() is C code; its first 26 characters are the wall time, and
    # with the offset subtracted above that wall time is UTC.
    return value.isoformat(timespec="microseconds")[:26] + "Z"


def number_to_json(value: float) -> str:
    """Serialise a double exactly as ECMAScript's Number.prototype.toString (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(value):
        raise CanonicalizationError(f"{value!r} is not a finite number and has no JSON form")
    if value == 0:
        return "0"  # also for -0.0, as ECMAScript does
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digit string that round-trips, which is also
    # what ECMAScript requires; we only re-arrange it into ECMAScript's layout.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    # n: position of the decimal point relative to the first significant digit.
    leading_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    n = len(int_part) - leading_zeros + (int(exp_text) if exp_text else 0)
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        exponent = n - 1
        exp_sign = "+" if exponent >= 0 else "-"
        head = digits[0] + ("." + digits[1:] if k > 1 else "")
        text = f"{head}e{exp_sign}{abs(exponent)}"
    return sign + text


def _utf16_key(name: str) -> bytes:
    return name.encode("utf-16-be", "surrogatepass")


def _check_string(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalizationError(
            f"string {text[:40]!r} contains a lone surrogate, which has no UTF-8 form"
        ) from exc
    return text


def _encode(value: Any, out: list[str]) -> None:
    # Order of checks matters: bool is a subclass of int.
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_string(_check_string(value)))
    elif isinstance(value, int):
        if abs(value) <= MAX_SAFE_INTEGER:
            out.append(str(int(value)))
        else:
            # A JCS number is a double: larger integers are fine only if exact.
            try:
                as_double = float(value)
            except OverflowError:
                as_double = math.inf
            if as_double != value:
                raise CanonicalizationError(
                    f"integer {value} is not exactly a double and would lose digits; "
                    "use Decimal or str"
                )
            out.append(number_to_json(as_double))
    elif isinstance(value, float):
        out.append(number_to_json(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise CanonicalizationError(f"Decimal {value} is not finite")
        out.append(_encode_string(str(value)))
    elif isinstance(value, datetime):
        out.append(_encode_string(format_timestamp(value)))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalizationError(f"object member name {key!r} is not a string")
        out.append("{")
        first = True
        for key in sorted(value, key=_utf16_key):
            if not first:
                out.append(",")
            first = False
            out.append(_encode_string(_check_string(key)))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise CanonicalizationError(
            f"value of type {type(value).__name__} has no canonical JSON form"
        )


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`~audit.errors.CanonicalizationError` naming the offending
    value for anything that has no exact JSON form (naive datetimes, NaN,
    oversized integers, lone surrogates, non-string member names, other types).
    """
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
