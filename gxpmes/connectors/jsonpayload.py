"""Plain JSON payloads: ``{"tag": "...", "value": 70.1, "ts": "2026-...Z", "quality": "Good"}``.

A reading may also carry ``"seq"`` (an integer the publisher increments by one
per reading) and ``"publisher"`` (whose count it is, on the topics ``[mqtt]
publishers`` binds that name to; any other name counts for its topic alone;
default: the MQTT topic): the connector then reports readings lost on the way
as data-quality exceptions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from gxpmes.connectors.model import (
    EARLIEST,
    FUTURE_TOLERANCE,
    QUALITIES,
    DecodeError,
    Reading,
    check_reading,
    check_tag,
    new_reading,
    safe_text,
    to_decimal,
)

__all__ = ["MAX_PAYLOAD", "JsonMessage", "decode_json", "decode_json_message"]

MAX_PAYLOAD = 64 * 1024

# RFC 3339 date-time (section 5.6; "T"/"Z" in either case, or a space for "T"), at most
# nine fraction digits (kept to the microsecond). No offset is a naive time, refused
# as such; an offset must be hours and minutes (no seconds: a "+05:30:30" would be
# recorded 30 s off). Python's fromisoformat alone takes much more (week dates, basic
# format, any separator character), so the text is matched first.
_DATE_TIME = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_RFC3339 = re.compile(_DATE_TIME + "?").fullmatch
# The times of a whole message, one per line, each with its offset (the column-wise check).
_RFC3339_LINES = re.compile(f"(?:{_DATE_TIME}\n)*{_DATE_TIME}").fullmatch


@dataclass(frozen=True)
class JsonMessage:
    """The readings of one message and the publisher sequence numbers they carried."""

    readings: list[Reading]
    sequence: list[tuple[str, int, str]]
    """``(publisher, seq, tag)`` of each reading that carried a ``seq``, in message order."""


def decode_json(payload: bytes, now: datetime, *, default_tag: str | None = None) -> list[Reading]:
    """Decode one JSON reading or a JSON list of readings; raises :class:`DecodeError`.

    ``default_tag`` is used when a reading has no ``tag`` (e.g. the tag is in the topic).
    """
    return decode_json_message(payload, now, default_tag=default_tag).readings


def decode_json_message(
    payload: bytes,
    now: datetime,
    *,
    default_tag: str | None = None,
    payload_tag: bool = True,
    publisher: str = "",
    server_ts: datetime | None = None,
) -> JsonMessage:
    """Decode a message; with ``payload_tag=False`` a reading's ``tag`` may not differ from
    ``default_tag`` (the tag the topic maps to), so a payload cannot write into another tag.
    ``server_ts`` (when it was received) is stamped on every reading."""
    if len(payload) > MAX_PAYLOAD:
        raise DecodeError("too_large", f"payload of {len(payload)} bytes")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers beyond Python's digit limit.
        raise DecodeError("malformed", f"not JSON: {safe_text(exc, 200)}") from exc
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > 10_000:
        raise DecodeError("malformed", "expected one reading or a list of 1..10000 readings")
    latest = now + FUTURE_TOLERANCE
    plain = _plain(items, latest, default_tag, payload_tag, server_ts)
    if plain is not None:
        return JsonMessage(plain, [])
    readings = []
    sequence = []
    for item in items:
        if not isinstance(item, dict):
            raise DecodeError("malformed", "a reading must be a JSON object")
        claimed = item.get("tag", default_tag)
        if default_tag is not None and not payload_tag and claimed != default_tag:
            raise DecodeError(
                "tag_override",
                f"payload names tag {safe_text(repr(claimed), 80)}; the topic maps to "
                f"{default_tag!r} and the configuration does not let payloads choose the tag",
                default_tag,
            )
        tag = check_tag(claimed)
        if "value" not in item:
            raise DecodeError("malformed", "reading has no value", tag)
        ts_text = item.get("ts")
        if not isinstance(ts_text, str):
            raise DecodeError("malformed", "reading has no ts (RFC 3339 time)", tag)
        try:
            if _RFC3339(ts_text) is None:
                raise ValueError
            source_ts = _time_of(ts_text)
        except ValueError as exc:
            raise DecodeError(
                "malformed", f"ts {safe_text(repr(ts_text[:40]))} is not RFC 3339", tag
            ) from exc
        quality = item.get("quality", "Good")
        if not isinstance(quality, str):
            raise DecodeError("bad_quality_code", f"quality {safe_text(repr(quality), 40)}", tag)
        value = to_decimal(item["value"], tag)
        if "seq" in item:
            seq, who = item["seq"], item.get("publisher", publisher)
            if type(seq) is not int or not 0 <= seq < 2**63:
                raise DecodeError("malformed", "seq must be an integer 0..2^63-1", tag)
            if not isinstance(who, str) or not who or len(who) > 256:
                raise DecodeError("malformed", "publisher must be text of 1..256 characters", tag)
            sequence.append((safe_text(who, 256), seq, tag))
        reading = Reading(
            tag, value, source_ts, quality, server_ts, _source_key(tag, ts_text, value)
        )
        # The checks of check_reading, with the message's time bound computed once;
        # check_reading itself says what is wrong.
        offset = source_ts.utcoffset()
        if offset is None or source_ts > latest or source_ts < EARLIEST or quality not in QUALITIES:
            check_reading(reading, now)
        readings.append(reading)
    return JsonMessage(readings, sequence)


def _time_of(text: str) -> datetime:
    """The time of an RFC 3339 text already matched (``Z`` read as UTC): ValueError if
    there is no such instant."""
    if text[-1] in "Zz":
        return datetime.fromisoformat(text[:-1] + "+00:00")
    return datetime.fromisoformat(text)


def _source_key(tag: str, time_text: str, value: object) -> str:
    """The source key of a JSON reading: its tag, its time as sent and its value."""
    return f"json|{tag}|{time_text}|{value}"


def _plain(
    items: list[object],
    latest: datetime,
    default_tag: str | None,
    payload_tag: bool,
    server_ts: datetime | None,
) -> list[Reading] | None:
    """The readings of a message whose readings all pass every check, decoded column by
    column (each check once per message or per distinct text); None when anything is
    off or unusual (``seq``) — the reading-by-reading loop then says exactly what.

    What is returned is what that loop returns: the same values, times and keys.
    """
    for item in items:
        if type(item) is not dict or "seq" in item:
            return None
    dicts: list[dict[str, Any]] = items  # type: ignore[assignment]
    try:
        claimed: list[Any] = [item.get("tag", default_tag) for item in dicts]
        texts: list[Any] = [item["ts"] for item in dicts]
        raws = [item["value"] for item in dicts]
        qualities: list[Any] = [item.get("quality", "Good") for item in dicts]
        for tag in set(claimed):  # unhashable: TypeError
            if default_tag is not None and not payload_tag and tag != default_tag:
                return None
            check_tag(tag)
        if not QUALITIES.issuperset(qualities):
            return None
        joined = "\n".join(texts)  # not text: TypeError
        if joined.count("\n") != len(texts) - 1 or _RFC3339_LINES(joined) is None:
            return None
        times = list(map(_time_of, texts))
        if min(times) < EARLIEST or max(times) > latest:
            return None
        numbers = _numbers(raws, claimed)
    except (KeyError, TypeError, ValueError):  # DecodeError is a ValueError
        return None
    return [
        new_reading(tag, value, moment, quality, server_ts, _source_key(tag, text, shown))
        for tag, (value, shown), moment, quality, text in zip(
            claimed, numbers, times, qualities, texts, strict=True
        )
    ]


def _numbers(raws: list[object], tags: list[object]) -> list[tuple[Decimal, str]]:
    """Each value as :func:`to_decimal` reads it, with its text; a number or text repeated
    in the message is read once (floats by value but zero, whose sign counts; never
    mixed with integers, which compare equal to floats but read differently)."""
    texts: dict[str, tuple[Decimal, str]] = {}
    floats: dict[float, tuple[Decimal, str]] = {}
    out = []
    for raw, tag in zip(raws, tags, strict=True):
        kind = type(raw)
        memo = texts if kind is str else floats if kind is float and raw else None
        if memo is not None:
            known = memo.get(raw)  # type: ignore[call-overload]
            if known is None:
                number = to_decimal(raw, tag)  # type: ignore[arg-type]
                known = memo[raw] = (number, f"{number}")  # type: ignore[index]
            out.append(known)
        else:
            number = to_decimal(raw, tag)  # type: ignore[arg-type]
            out.append((number, f"{number}"))
    return out
