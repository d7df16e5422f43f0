"""Plain JSON payloads: ``{"tag": "...", "value": 70.1, "ts": "2026-...Z", "quality": "Good"}``."""

from __future__ import annotations

import json
from datetime import datetime

from gxpmes.connectors.model import DecodeError, Reading, check_reading, to_decimal

__all__ = ["MAX_PAYLOAD", "decode_json"]

MAX_PAYLOAD = 64 * 1024


def decode_json(payload: bytes, now: datetime, *, default_tag: str | None = None) -> list[Reading]:
    """Decode one JSON reading or a JSON list of readings; raises :class:`DecodeError`.

    ``default_tag`` is used when a reading has no ``tag`` (e.g. the tag is in the topic).
    """
    if len(payload) > MAX_PAYLOAD:
        raise DecodeError("too_large", f"payload of {len(payload)} bytes")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DecodeError("malformed", f"not JSON: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > 10_000:
        raise DecodeError("malformed", "expected one reading or a list of 1..10000 readings")
    readings = []
    for item in items:
        if not isinstance(item, dict):
            raise DecodeError("malformed", "a reading must be a JSON object")
        tag = item.get("tag", default_tag)
        if not isinstance(tag, str) or not tag.strip() or len(tag) > 256:
            raise DecodeError("malformed", f"tag {tag!r} is missing or not a string")
        if "value" not in item:
            raise DecodeError("malformed", "reading has no value", tag)
        ts_text = item.get("ts")
        if not isinstance(ts_text, str):
            raise DecodeError("malformed", "reading has no ts (RFC 3339 time)", tag)
        try:
            source_ts = datetime.fromisoformat(ts_text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise DecodeError("malformed", f"ts {ts_text[:40]!r} is not RFC 3339", tag) from exc
        quality = item.get("quality", "Good")
        if not isinstance(quality, str):
            raise DecodeError("bad_quality_code", f"quality {quality!r}", tag)
        value = to_decimal(item["value"], tag)
        reading = Reading(tag, value, source_ts, quality, dedup_key=f"json|{tag}|{ts_text}|{value}")
        readings.append(check_reading(reading, now))
    return readings
