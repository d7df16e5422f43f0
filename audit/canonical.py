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

Integers are written as JCS numbers only when the number is exactly that
integer, read as a double *and* as text. Every integer within ±(2**53 − 1)
qualifies. Beyond it JCS writes the double's shortest form: ``2**53`` is
written ``9007199254740992`` (exact), but ``68294714393637184``, although a
double, would be written ``68294714393637180`` — another integer to any reader
that keeps integers whole — so it is refused, as are integers that are no
double at all. Pass a
Decimal (written as its exact string) to carry any number of digits. The rule
refuses only what was silently changed before; it changes the bytes of no
value it accepts, so entries written earlier still verify, and their parsed
content canonicalises to the same bytes again.

Errors name the offending value by its JSON Pointer (``/new/value``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
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


def _large_integer(value: int) -> str:
    """The JCS number of an integer beyond ±(2**53 − 1), if that text is exactly ``value``."""
    shown = _short(value)
    try:
        as_double = float(value)
    except OverflowError:
        raise CanonicalizationError(
            f"integer {shown} is beyond the range of a JSON number (an IEEE double); "
            "pass a Decimal to keep every digit"
        ) from None
    text = number_to_json(as_double)
    # Both: the double must be the integer (JSON readers see a double) and its
    # shortest text must spell the integer (readers that keep integers whole).
    if as_double != value or Decimal(text) != value:
        raise CanonicalizationError(
            f"integer {shown} has no exact JSON number: RFC 8785 writes numbers as IEEE "
            f"doubles and would write it as {text}; pass a Decimal to keep every digit"
        )
    return text


def _short(value: int) -> str:
    """``value`` for a message: whole when short, else its head and digit count."""
    text = str(Decimal(value))  # Decimal has no int-to-str digit limit
    return text if len(text) <= 40 else f"{text[:20]}… ({len(text.lstrip('-'))} digits)"


def _inside(error: CanonicalizationError, key: str | int) -> None:
    """Prepend ``key`` to the JSON Pointer of ``error`` (RFC 6901 escaping) as it unwinds."""
    token = str(key).replace("~", "~0").replace("/", "~1")
    error.path = f"/{token}{error.path}"


_table_encoder: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False
).encode


def _is_flat_table(rows: list[Any]) -> bool:
    """True for a list of lists of str (no lone surrogate), safe int (not bool) or None."""
    for row in rows:
        if type(row) is not list:
            return False
        for item in row:
            kind = type(item)
            if kind is str:
                if not item.isascii() and _has_surrogate(item):
                    return False
            elif kind is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    return False
            elif item is not None:
                return False
    return True


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            out.append(str(int(value)))
        else:
            out.append(_large_integer(int(value)))
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
            try:
                _encode(value[key], out)
            except CanonicalizationError as exc:
                _inside(exc, key)
                raise
        out.append("}")
    elif type(value) is list and _is_flat_table(value):
        # Rows of plain strings, safe integers and nulls (a phase's values in a
        # signed record): the C encoder writes exactly the RFC 8785 text for them.
        out.append(_table_encoder(value))
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            try:
                _encode(item, out)
            except CanonicalizationError as exc:
                _inside(exc, index)
                raise
        out.append("]")
    else:
        raise CanonicalizationError(
            f"value of type {type(value).__name__} has no canonical JSON form"
        )


def canonicalize(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises :class:`~audit.errors.CanonicalizationError` naming the offending
    value and its JSON Pointer for anything that has no exact JSON form (naive
    datetimes, NaN, integers JCS would change, lone surrogates, non-string
    member names, other types).
    """
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
