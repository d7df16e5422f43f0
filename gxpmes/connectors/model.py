"""What connectors produce: decoded readings, the tag map, and decoding errors."""

from __future__ import annotations

import functools
import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from gxpmes.errors import GxpError

__all__ = [
    "EARLIEST",
    "MAX_KEPT",
    "DeadLetter",
    "DecodeError",
    "NotNumeric",
    "Problem",
    "Reading",
    "TagBinding",
    "TagMap",
    "check_reading",
    "check_tag",
    "new_reading",
    "safe_text",
    "to_decimal",
]

FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_TAG_CHARS = 256  # ebr_value.tag
MAX_VALUE_CHARS = 64  # ebr_value.value: longer values are refused here, never rounded
QUALITIES = frozenset({"Good", "Uncertain", "Bad"})
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""Times before this instant (the Unix and Sparkplug epoch) are refused as ``bad_timestamp``:
no plant value is that old, and a year-1 time with a positive UTC offset has no UTC
instant a datetime can hold."""


class DecodeError(GxpError, ValueError):
    """A payload or reading was refused; ``reason`` is a short category for counters."""

    def __init__(self, reason: str, detail: str, tag: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.tag = tag
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class NotNumeric:
    """A value a source sent that is not a number: a Sparkplug Boolean, String or null
    metric (``kind``: what it is; ``text``: the value, bounded, for the dead letter).

    Sparkplug is a plant-wide namespace: such metrics are normal (states, alarms,
    names) unless their tag is mapped to a batch parameter, and only the forwarder
    knows the tag map. So the decoder spools them as such, never as a Decimal (a
    Boolean is not the number 1, a String ``"70.1"`` is not 70.1), and the forwarder
    refuses one of a mapped tag (``wrong_type``) and only counts the others
    (``not_numeric``).
    """

    kind: str
    text: str = ""

    def describe(self) -> str:
        """What the value was, e.g. ``Boolean True`` or ``null``."""
        return f"{self.kind} {self.text}".rstrip()


@dataclass(frozen=True)
class Reading:
    """One decoded value from the plant, before it is mapped to a batch (a
    :class:`NotNumeric` value is not recorded: see there)."""

    tag: str
    value: Decimal | NotNumeric
    source_ts: datetime
    quality: str = "Good"
    server_ts: datetime | None = None
    dedup_key: str = ""


_new = object.__new__
_set = object.__setattr__


def new_reading(
    tag: str,
    value: Decimal,
    source_ts: datetime,
    quality: str,
    server_ts: datetime | None,
    dedup_key: str,
) -> Reading:
    """``Reading(tag, value, source_ts, quality, server_ts, dedup_key)`` made a third as
    dear: one write of the instance dictionary instead of the frozen dataclass's six
    guarded attribute writes (decoders make one per value)."""
    reading = _new(Reading)
    _set(
        reading,
        "__dict__",
        {
            "tag": tag,
            "value": value,
            "source_ts": source_ts,
            "quality": quality,
            "server_ts": server_ts,
            "dedup_key": dedup_key,
        },
    )
    return reading


@dataclass(frozen=True)
class Problem:
    """Input refused or found missing, for the dead-letter table and data-quality exceptions.

    ``tag`` names the one tag concerned; ``scope`` a tag prefix (every metric of
    a Sparkplug node) when the lost values cannot be named one by one.
    """

    reason: str
    detail: str
    tag: str | None = None
    scope: str | None = None


MAX_KEPT = 4096
"""Bytes of a refused payload kept in the dead letter (its size and SHA-256 always are)."""


@dataclass(frozen=True)
class DeadLetter:
    """A refused message (or a detected loss), as the spool and the rejects table keep it."""

    reject_id: str
    received_at: datetime
    origin: str
    reason: str
    detail: str
    tag: str | None
    scope: str | None
    payload: bytes
    payload_size: int
    payload_sha256: str

    @classmethod
    def of(cls, problem: Problem, origin: str, payload: bytes, received_at: datetime) -> DeadLetter:
        """Bound and clean what is kept: the payload to :data:`MAX_KEPT` bytes, text escaped."""
        tag = problem.tag
        if tag is not None and (len(tag) > MAX_TAG_CHARS or safe_text(tag, MAX_TAG_CHARS) != tag):
            tag = None  # not a tag a row can hold: the detail and payload still say it
        return cls(
            reject_id=str(uuid.uuid4()),
            received_at=received_at,
            origin=safe_text(origin, 512),
            reason=safe_text(problem.reason, 32),
            detail=safe_text(problem.detail, 2000),
            tag=tag,
            scope=None if problem.scope is None else safe_text(problem.scope, 256),
            payload=bytes(payload[:MAX_KEPT]),
            payload_size=len(payload),
            payload_sha256=hashlib.sha256(payload).hexdigest(),
        )


@dataclass(frozen=True)
class TagBinding:
    """Where a tag's values go: which batch parameter, in which unit."""

    batch_id: str
    parameter: str
    unit: str


class TagMap:
    """Tag → batch parameter. Applications rebind tags when a unit starts another batch."""

    def __init__(self, bindings: dict[str, TagBinding] | None = None) -> None:
        self._bindings = dict(bindings or {})

    def bind(self, tag: str, binding: TagBinding) -> None:
        """Send ``tag``'s values to ``binding`` from now on."""
        self._bindings[tag] = binding

    def get(self, tag: str) -> TagBinding:
        """The binding of ``tag``; an unknown tag is a :class:`DecodeError`."""
        binding = self._bindings.get(tag)
        if binding is None:
            raise DecodeError("unknown_tag", f"tag {tag!r} is not mapped to a batch parameter", tag)
        return binding

    def get_or_none(self, tag: str) -> TagBinding | None:
        """The binding of ``tag``, or None when it is not mapped."""
        return self._bindings.get(tag)

    def __contains__(self, tag: object) -> bool:
        return tag in self._bindings

    def under(self, prefix: str) -> list[tuple[str, TagBinding]]:
        """Mapped tags that start with ``prefix`` (e.g. every metric of one Sparkplug node)."""
        return sorted((t, b) for t, b in self._bindings.items() if t.startswith(prefix))


def safe_text(value: object, limit: int = 2000) -> str:
    """``value`` as text any database and the canonical encoder accept, at most ``limit`` chars.

    Refused input is kept verbatim only as bytes; text about it (reasons, topics,
    quoted fragments) may hold lone surrogates or control characters (NUL is
    refused by PostgreSQL), which are written as escapes instead.
    """
    text = value if isinstance(value, str) else str(value)
    text = text[: limit * 2]
    if text.isprintable() and text.isascii():
        return text[:limit]  # nothing to escape: no walk per character (dead letters in bulk)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)[:limit]


def check_tag(tag: object) -> str:
    """A tag as a value row can hold it: printable text of 1..256 characters."""
    if not isinstance(tag, str) or not _row_tag(tag):
        raise DecodeError("malformed", f"tag {safe_text(repr(tag), 80)} is missing or not a tag")
    return tag


@functools.lru_cache(maxsize=8192)  # a plant has a bounded set of tags; checked once each
def _row_tag(tag: str) -> bool:
    return (
        bool(tag.strip())
        and len(tag) <= MAX_TAG_CHARS
        and tag.isprintable()
        and safe_text(tag, MAX_TAG_CHARS + 1) == tag  # no lone surrogates
    )


def to_decimal(value: object, tag: str) -> Decimal:
    """An exact Decimal from a JSON number / numeric string; booleans, NaN and ∞ are refused."""
    if isinstance(value, bool) or value is None:
        raise DecodeError("wrong_type", f"value {value!r} is not a number", tag)
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError("non_finite", f"value {value!r} is not finite", tag)
    if isinstance(value, int | float):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation as exc:
            raise DecodeError(
                "wrong_type", f"value {safe_text(repr(value[:40]))} is not a number", tag
            ) from exc
    else:
        raise DecodeError(
            "wrong_type", f"value of type {type(value).__name__} is not a number", tag
        )
    if not number.is_finite():
        raise DecodeError("non_finite", f"value {safe_text(value, 40)} is not finite", tag)
    if len(str(number)) > MAX_VALUE_CHARS:
        raise DecodeError(
            "too_long", f"value has more than {MAX_VALUE_CHARS} characters (never rounded)", tag
        )
    return number


def check_reading(reading: Reading, now: datetime) -> Reading:
    """Refuse naive timestamps, offsets with seconds, times before :data:`EARLIEST` or far in
    the future, and unknown qualities."""
    offset = reading.source_ts.utcoffset()
    if offset is None:
        raise DecodeError(
            "naive_timestamp", f"{reading.source_ts.isoformat()} has no time zone", reading.tag
        )
    if offset.seconds % 60 or offset.microseconds:
        raise DecodeError(
            "bad_timestamp",
            f"{reading.source_ts.isoformat()}: a UTC offset has whole minutes (RFC 3339)",
            reading.tag,
        )
    # Aware datetimes compare by their UTC instants, without converting (a conversion
    # of year 1 at +01:00 or year 9999 at -01:00 overflows).
    if reading.source_ts < EARLIEST:
        raise DecodeError(
            "bad_timestamp",
            f"{reading.source_ts.isoformat()} is before {EARLIEST.isoformat()}",
            reading.tag,
        )
    if reading.source_ts > now + FUTURE_TOLERANCE:
        raise DecodeError(
            "future_timestamp",
            f"{reading.source_ts.isoformat()} is more than {FUTURE_TOLERANCE} ahead",
            reading.tag,
        )
    if reading.quality not in QUALITIES:
        raise DecodeError("bad_quality_code", f"quality {reading.quality!r}", reading.tag)
    return reading
