"""What connectors produce: decoded readings, the tag map, and decoding errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from gxpmes.errors import GxpError

__all__ = ["DecodeError", "Reading", "TagBinding", "TagMap", "check_reading", "to_decimal"]

FUTURE_TOLERANCE = timedelta(minutes=5)


class DecodeError(GxpError, ValueError):
    """A payload or reading was refused; ``reason`` is a short category for counters."""

    def __init__(self, reason: str, detail: str, tag: str | None = None) -> None:
        self.reason = reason
        self.tag = tag
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Reading:
    """One decoded value from the plant, before it is mapped to a batch."""

    tag: str
    value: Decimal
    source_ts: datetime
    quality: str = "Good"
    server_ts: datetime | None = None
    dedup_key: str = ""


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

    def __contains__(self, tag: object) -> bool:
        return tag in self._bindings


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
            raise DecodeError("wrong_type", f"value {value[:40]!r} is not a number", tag) from exc
    else:
        raise DecodeError(
            "wrong_type", f"value of type {type(value).__name__} is not a number", tag
        )
    if not number.is_finite():
        raise DecodeError("non_finite", f"value {value!r} is not finite", tag)
    return number


def check_reading(reading: Reading, now: datetime) -> Reading:
    """Refuse naive timestamps, timestamps far in the future, and unknown qualities."""
    if reading.source_ts.utcoffset() is None:
        raise DecodeError(
            "naive_timestamp", f"{reading.source_ts.isoformat()} has no time zone", reading.tag
        )
    if reading.source_ts > now + FUTURE_TOLERANCE:
        raise DecodeError(
            "future_timestamp",
            f"{reading.source_ts.isoformat()} is more than {FUTURE_TOLERANCE} ahead",
            reading.tag,
        )
    if reading.quality not in ("Good", "Uncertain", "Bad"):
        raise DecodeError("bad_quality_code", f"quality {reading.quality!r}", reading.tag)
    return reading
