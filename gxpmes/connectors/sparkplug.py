"""Sparkplug B: the payload's protobuf encoding and the edge-node session rules.

Only the part of ``sparkplug_b.proto`` a data consumer needs is implemented
(Payload: timestamp, metrics, seq; Metric: name, alias, timestamp, datatype,
is_null and the scalar values), straight from the protobuf wire format, so
no generated code is needed. :class:`SparkplugSession` tracks births (metric
aliases), sequence numbers and deaths per edge node and says when a rebirth
must be requested.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from gxpmes.connectors.model import (
    MAX_VALUE_CHARS,
    DecodeError,
    NotNumeric,
    Problem,
    Reading,
    check_reading,
    check_tag,
    safe_text,
)

__all__ = [
    "Metric",
    "Outcome",
    "Payload",
    "SparkplugSession",
    "decode_payload",
    "encode_payload",
    "not_numeric",
    "rebirth_request",
]

# Sparkplug B data types (scalar ones).
INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 = 1, 2, 3, 4, 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
_SIGNED = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
_NUMERIC = frozenset(
    {INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64, FLOAT, DOUBLE, DATETIME}
)
_TYPE_NAMES = (  # by datatype number
    "Unknown",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float",
    "Double",
    "Boolean",
    "String",
    "DateTime",
    "Text",
    "UUID",
    "DataSet",
    "Bytes",
    "File",
    "Template",
    "PropertySet",
    "PropertySetList",
)


@dataclass
class Metric:
    """One Sparkplug metric (the scalar subset)."""

    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None  # ms since the epoch
    datatype: int | None = None
    is_null: bool = False
    value: int | float | bool | str | None = None


@dataclass
class Payload:
    """A Sparkplug B payload."""

    timestamp: int | None = None
    seq: int | None = None
    metrics: list[Metric] = field(default_factory=list)


# ------------------------------------------------------------- wire format


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("malformed", "truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("malformed", "varint longer than 10 bytes")


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` for every field of a message."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("malformed", "field number 0")
        if wire == 0:
            value, pos = _read_varint(data, pos)
            out.append((number, wire, value))
        elif wire == 1:
            if pos + 8 > len(data):
                raise DecodeError("malformed", "truncated 64-bit field")
            out.append((number, wire, data[pos : pos + 8]))
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise DecodeError("malformed", "truncated length-delimited field")
            out.append((number, wire, data[pos : pos + length]))
            pos += length
        elif wire == 5:
            if pos + 4 > len(data):
                raise DecodeError("malformed", "truncated 32-bit field")
            out.append((number, wire, data[pos : pos + 4]))
            pos += 4
        else:
            raise DecodeError("malformed", f"unsupported wire type {wire}")
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _decode_metric(data: bytes) -> Metric:
    metric = Metric()
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2 and isinstance(value, bytes):
            metric.name = value.decode("utf-8", "strict")
        elif number == 2 and wire == 0 and isinstance(value, int):
            metric.alias = value
        elif number == 3 and wire == 0 and isinstance(value, int):
            metric.timestamp = value
        elif number == 4 and wire == 0 and isinstance(value, int):
            metric.datatype = value
        elif number == 7 and wire == 0 and isinstance(value, int):
            metric.is_null = bool(value)
        elif number in (10, 11) and wire == 0 and isinstance(value, int):
            bits = _SIGNED.get(metric.datatype or 0)
            metric.value = _signed(value, bits) if bits else value
        elif number == 12 and wire == 5 and isinstance(value, bytes):
            metric.value = struct.unpack("<f", value)[0]
        elif number == 13 and wire == 1 and isinstance(value, bytes):
            metric.value = struct.unpack("<d", value)[0]
        elif number == 14 and wire == 0 and isinstance(value, int):
            metric.value = bool(value)
        elif number == 15 and wire == 2 and isinstance(value, bytes):
            metric.value = value.decode("utf-8", "strict")
    return metric


def decode_payload(data: bytes) -> Payload:
    """Decode a Sparkplug B payload; malformed input raises :class:`DecodeError`."""
    if len(data) > 1 << 20:
        raise DecodeError("too_large", f"payload of {len(data)} bytes")
    payload = Payload()
    try:
        for number, wire, value in _fields(data):
            if number == 1 and wire == 0 and isinstance(value, int):
                payload.timestamp = value
            elif number == 2 and wire == 2 and isinstance(value, bytes):
                payload.metrics.append(_decode_metric(value))
            elif number == 3 and wire == 0 and isinstance(value, int):
                payload.seq = value
    except UnicodeDecodeError as exc:
        raise DecodeError("malformed", f"metric name or string is not UTF-8: {exc}") from exc
    except (struct.error, ValueError, OverflowError) as exc:  # DecodeError is a ValueError
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError("malformed", f"undecodable field: {exc}") from exc
    return payload


def _ld(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _encode_metric(metric: Metric) -> bytes:
    out = bytearray()
    if metric.name is not None:
        out += _ld(1, metric.name.encode())
    if metric.alias is not None:
        out += _varint(2 << 3) + _varint(metric.alias)
    if metric.timestamp is not None:
        out += _varint(3 << 3) + _varint(metric.timestamp)
    if metric.datatype is not None:
        out += _varint(4 << 3) + _varint(metric.datatype)
    if metric.is_null:
        out += _varint(7 << 3) + _varint(1)
    value, kind = metric.value, metric.datatype
    if value is not None and not metric.is_null:
        if kind == BOOLEAN:
            out += _varint(14 << 3) + _varint(int(bool(value)))
        elif kind == FLOAT:
            out += _varint(12 << 3 | 5) + struct.pack("<f", float(value))
        elif kind == DOUBLE:
            out += _varint(13 << 3 | 1) + struct.pack("<d", float(value))
        elif kind in (STRING, TEXT):
            out += _ld(15, str(value).encode())
        elif kind in (INT64, UINT64, DATETIME):
            out += _varint(11 << 3) + _varint(int(value))
        else:
            out += _varint(10 << 3) + _varint(int(value) & 0xFFFFFFFF)
    return bytes(out)


def encode_payload(payload: Payload) -> bytes:
    """Encode a payload (used for rebirth requests and by tests / simulators)."""
    out = bytearray()
    if payload.timestamp is not None:
        out += _varint(1 << 3) + _varint(payload.timestamp)
    for metric in payload.metrics:
        out += _ld(2, _encode_metric(metric))
    if payload.seq is not None:
        out += _varint(3 << 3) + _varint(payload.seq)
    return bytes(out)


def rebirth_request(now_ms: int) -> bytes:
    """The NCMD payload asking an edge node to publish its births again."""
    return encode_payload(
        Payload(
            timestamp=now_ms,
            metrics=[
                Metric(name="Node Control/Rebirth", timestamp=now_ms, datatype=BOOLEAN, value=True)
            ],
        )
    )


# ----------------------------------------------------------------- sessions

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MILLIS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time a datetime holds


class NodeStore(Protocol):
    """Where a session keeps node state across restarts (the spool)."""

    def get_state(self, key: str) -> str | None: ...

    def set_state(self, key: str, body: str) -> None: ...


@dataclass
class _Node:
    seq: int | None = None
    aliases: dict[int, str] = field(default_factory=dict)
    online: bool = False

    def dump(self) -> str:
        return json.dumps({"seq": self.seq, "online": self.online, "aliases": self.aliases})

    @classmethod
    def load(cls, body: str) -> _Node:
        data = json.loads(body)
        aliases = {int(k): str(v) for k, v in data.get("aliases", {}).items()}
        return cls(data.get("seq"), aliases, bool(data.get("online")))


@dataclass
class Outcome:
    """What one Sparkplug message yields."""

    readings: list[Reading] = field(default_factory=list)
    rebirth: bool = False
    """A rebirth must be requested (unknown alias, sequence gap, data before birth)."""
    problems: list[Problem] = field(default_factory=list)
    """Refused metrics and detected losses: dead letters, data-quality exceptions."""
    state: dict[str, str] = field(default_factory=dict)
    """Node state changed by the message (key → JSON), to be saved with its readings."""


def millis_time(millis: int, name: str) -> datetime:
    """A Sparkplug timestamp (ms since the epoch, UTC) as an aware datetime; range-checked."""
    if not 0 <= millis <= MAX_MILLIS:
        raise DecodeError(
            "bad_timestamp", f"metric {name} timestamp {millis} ms is out of range", name
        )
    return _EPOCH + timedelta(milliseconds=millis)  # exact (a float of ms / 1000 is not)


class SparkplugSession:
    """Per edge node: births, aliases, sequence numbers; turns messages into readings.

    With a ``store`` the node state (last ``seq``, aliases) survives a restart
    of the connector, so messages the broker dropped while it was down show
    up as a sequence gap.
    """

    def __init__(self, store: NodeStore | None = None) -> None:
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._store = store

    def _node(self, group: str, node: str) -> _Node:
        key = (group, node)
        if key not in self._nodes:
            body = self._store.get_state(f"spb|{group}|{node}") if self._store is not None else None
            self._nodes[key] = _Node.load(body) if body else _Node()
        return self._nodes[key]

    def handle(self, topic: str, data: bytes) -> tuple[list[Reading], bool]:
        """Readings of a message and whether to request a rebirth; refused metrics raise."""
        outcome = self.handle_message(topic, data, datetime.now(UTC))
        refused = [p for p in outcome.problems if p.reason not in ("sequence_gap", "unknown_alias")]
        if refused:
            raise DecodeError(refused[0].reason, refused[0].detail, refused[0].tag)
        return outcome.readings, outcome.rebirth

    def handle_message(
        self, topic: str, data: bytes, now: datetime, *, save: bool = True
    ) -> Outcome:
        """Decode and apply one message; a payload that cannot be decoded raises
        :class:`DecodeError`, a refused metric is a problem of the outcome (the
        other metrics are values of their own and are kept). With ``save=False``
        the changed node state is only returned (``outcome.state``)."""
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != "spBv1.0":
            raise DecodeError("malformed", f"{topic!r} is not a Sparkplug B topic")
        group, kind, node = parts[1], parts[2], parts[3]
        device = parts[4] if len(parts) > 4 else None
        payload = decode_payload(data)
        state = self._node(group, node)
        before = state.dump()
        outcome = self._apply(state, kind, group, node, device, payload, now)
        if state.dump() != before:
            outcome.state[f"spb|{group}|{node}"] = state.dump()
            if save and self._store is not None:  # else the caller saves it with the readings
                self._store.set_state(f"spb|{group}|{node}", state.dump())
        return outcome

    def _apply(
        self,
        state: _Node,
        kind: str,
        group: str,
        node: str,
        device: str | None,
        payload: Payload,
        now: datetime,
    ) -> Outcome:
        outcome = Outcome()
        node_prefix = f"{group}/{node}/"
        if kind == "NDEATH":
            state.online = False
            state.seq = None
            return outcome
        if kind not in ("NBIRTH", "DBIRTH", "NDATA", "DDATA", "DDEATH"):
            return outcome
        if kind == "NBIRTH":
            state.aliases.clear()
            state.online = True
        elif state.seq is None or not state.online:
            outcome.rebirth = True  # data without a birth: ask for one
        elif payload.seq is not None:
            step = (payload.seq - state.seq) % 256
            if step not in (0, 1):  # 0: the broker redelivered the last message
                outcome.rebirth = True
                outcome.problems.append(
                    Problem(
                        "sequence_gap",
                        f"edge node {group}/{node}: seq {state.seq} then {payload.seq}, "
                        f"{step - 1} message(s) lost",
                        scope=node_prefix,
                    )
                )
        if payload.seq is not None:
            state.seq = payload.seq % 256
        if kind == "DDEATH":
            return outcome
        prefix = f"{group}/{node}" + (f"/{device}" if device else "")
        for metric in payload.metrics:
            if kind in ("NBIRTH", "DBIRTH") and metric.alias is not None and metric.name:
                state.aliases[metric.alias] = f"{prefix}/{metric.name}"
            if metric.name:
                name = f"{prefix}/{metric.name}"
            elif metric.alias is not None and metric.alias in state.aliases:
                name = state.aliases[metric.alias]  # alias 0 is an alias like any other
            else:
                outcome.rebirth = True
                outcome.problems.append(
                    Problem(
                        "unknown_alias",
                        f"metric alias {metric.alias} of {prefix} is unknown (no birth seen)",
                        scope=node_prefix,
                    )
                )
                continue
            if metric.name is not None and metric.name.startswith(("Node Control/", "Properties/")):
                continue
            try:
                outcome.readings.append(self._reading(name, prefix, metric, payload, now))
            except DecodeError as exc:
                outcome.problems.append(
                    Problem(exc.reason, exc.detail, tag=exc.tag if exc.tag == name else None)
                )
        return outcome

    @staticmethod
    def _reading(
        name: str, prefix: str, metric: Metric, payload: Payload, now: datetime
    ) -> Reading:
        tag = check_tag(name)
        millis = metric.timestamp if metric.timestamp is not None else payload.timestamp
        if millis is None:
            raise DecodeError("malformed", f"metric {name} has no timestamp", tag)
        number = not_numeric(metric) or _number(name, metric.value, tag)
        # The time first (13 digits until 2286, so text order is time order): the
        # record's key index takes each call's keys near its end, not one page per
        # metric (docs/connectors.md, "Source keys").
        key = f"spb|{millis}|{prefix}|{payload.seq}|{metric.alias}|{metric.name}"
        if len(key) > 512:  # ebr_value_key.source_key
            digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
            key = f"spb|{millis}|sha256|{digest}"
        reading = Reading(tag, number, millis_time(millis, tag), dedup_key=key)
        return check_reading(reading, now)


def _number(name: str, value: int | float | bool | str | None, tag: str) -> Decimal:
    """The exact Decimal of a numeric metric value (called after :func:`not_numeric`)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError("non_finite", f"metric {name} is {value}", tag)
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)  # type: ignore[arg-type]
    if len(str(number)) > MAX_VALUE_CHARS:
        raise DecodeError(
            "too_long", f"metric {name} has more than {MAX_VALUE_CHARS} characters", tag
        )
    return number


def _type_name(datatype: int) -> str:
    return _TYPE_NAMES[datatype] if 0 <= datatype < len(_TYPE_NAMES) else f"datatype {datatype}"


def not_numeric(metric: Metric) -> NotNumeric | None:
    """What a metric that is not a number is (a Boolean, String, null, a type this decoder
    does not read...), or None for a number.

    Such metrics are spooled as :class:`NotNumeric` — never as a number: ``True`` is
    not 1, and a String ``"70.1"`` is text because Sparkplug's datatype says so — and
    the forwarder, which knows the tag map, refuses one of a mapped tag (``wrong_type``)
    and only counts the others (states, alarms, names of a plant-wide namespace).
    """
    value, datatype = metric.value, metric.datatype
    if metric.is_null:
        return NotNumeric("null")
    if datatype and datatype not in _NUMERIC:  # the datatype says what it is (0: unknown)
        return NotNumeric(_type_name(datatype), _text(value))
    if value is None:
        return NotNumeric(f"{_type_name(datatype)} without a value" if datatype else "no value")
    if isinstance(value, bool):
        return NotNumeric("Boolean", _text(value))
    if isinstance(value, str):
        return NotNumeric("String", _text(value))
    return None


def _text(value: int | float | bool | str | None) -> str:
    """A metric value as the dead letter quotes it (bounded)."""
    if value is None:
        return ""
    return safe_text(repr(value[:40] if isinstance(value, str) else value), 60)
