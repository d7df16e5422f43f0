"""Audit entries: who did what, to which object, when and why.

An :class:`AuditEvent` is what a caller records; the ledger turns it into an
immutable :class:`Entry` by adding the gapless sequence number, the server
time and the hash of the previous entry (the chain link). The entry's
canonical bytes (RFC 8785, see :mod:`audit.canonical`) are what is hashed into
the Merkle log and what an independent verifier re-hashes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from audit.canonical import MAX_SAFE_INTEGER, canonicalize, format_timestamp
from audit.errors import CanonicalizationError, EntryError
from audit.merkle import HASH_SIZE, record_hash

__all__ = [
    "ENTRY_FORMAT_VERSION",
    "GENESIS_PREV",
    "Actor",
    "AuditEvent",
    "Entry",
    "encode_entry",
    "parse_entry",
    "seq_span",
]

ENTRY_FORMAT_VERSION = 1
GENESIS_PREV = bytes(HASH_SIZE)
"""The chain link of entry 0: 32 zero bytes (there is no previous entry)."""

_OFFSET_RE = re.compile(r"^[+-](?:[01]\d|2[0-3]):[0-5]\d$")
_MAX_TEXT = 4096
_encode_string = json.encoder.encode_basestring
_FLAT_TYPES = (str, bool, type(None))


def _check_time_zone(name: str) -> str:
    if name == "UTC" or _OFFSET_RE.match(name):
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise EntryError(f"client_tz {name!r} is neither an IANA zone nor ±HH:MM") from exc
    return name


def _require_text(field_name: str, value: object, *, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EntryError(f"{field_name} must be a non-empty string, got {value!r}")
    if len(value) > limit:
        raise EntryError(f"{field_name} is longer than {limit} characters")
    return value


@dataclass(frozen=True, slots=True)
class Actor:
    """The person (or system account) responsible for an action.

    ``user_id`` is the unique, never reused identifier; ``printed_name`` is
    the name shown on every rendering (21 CFR 11.50).
    """

    user_id: str
    printed_name: str

    def __post_init__(self) -> None:
        _require_text("actor.user_id", self.user_id, limit=256)
        _require_text("actor.printed_name", self.printed_name, limit=256)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, as the caller describes it; the ledger makes an :class:`Entry` of it.

    ``old`` and ``new`` are JSON-like values (dict, list, str, int, bool, None,
    Decimal, aware datetime; floats are accepted and encoded per RFC 8785).
    ``requires_reason`` marks a change or deletion of GxP data, for which
    21 CFR 11.10(e) / Annex 11 §9 require a documented reason.
    """

    actor: Actor
    action: str
    object_type: str
    object_id: str
    new: Any = None
    old: Any = None
    reason: str | None = None
    client_tz: str = "UTC"
    requires_reason: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.actor, Actor):
            raise EntryError(f"actor must be an audit.Actor, got {type(self.actor).__name__}")
        _require_text("action", self.action, limit=128)
        _require_text("object_type", self.object_type, limit=128)
        _require_text("object_id", self.object_id, limit=512)
        _check_time_zone(self.client_tz)
        if self.reason is not None:
            _require_text("reason", self.reason)
        if self.requires_reason and self.reason is None:
            raise EntryError(
                f"action {self.action!r} on {self.object_type} {self.object_id!r} changes "
                "GxP data and needs a reason"
            )


@dataclass(frozen=True, slots=True)
class Entry:
    """One immutable, sequenced, chained audit entry."""

    seq: int
    recorded_at: datetime
    prev: bytes
    event: AuditEvent
    canonical: bytes = field(repr=False, compare=False, default=b"")

    @property
    def leaf_hash(self) -> bytes:
        """RFC 9162 leaf hash of the canonical bytes: SHA-256(0x00 ‖ bytes)."""
        return record_hash(self.canonical)

    def as_dict(self) -> dict[str, Any]:
        """The logical content whose RFC 8785 form is :attr:`canonical`."""
        return _entry_dict(self.seq, self.recorded_at, self.prev, self.event)


def _entry_dict(seq: int, recorded_at: datetime, prev: bytes, event: AuditEvent) -> dict[str, Any]:
    return {
        "v": ENTRY_FORMAT_VERSION,
        "seq": seq,
        "recorded_at": recorded_at,
        "prev": prev.hex(),
        "actor": {"id": event.actor.user_id, "name": event.actor.printed_name},
        "action": event.action,
        "object": {"type": event.object_type, "id": event.object_id},
        "old": event.old,
        "new": event.new,
        "reason": event.reason,
        "client_tz": event.client_tz,
    }


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CanonicalizationError(f"Decimal {value} is not finite")
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    raise TypeError  # pragma: no cover - filtered by _encode_payload's type check


# A reusable C encoder: building json.dumps' encoder per call costs more than encoding.
_flat_encoder = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _json_default, _encode_string, None, ":", ",", True, False, False
)


def _encode_value(value: Any, name: str) -> str:
    """Canonical text of the ``old``/``new`` payload ``name``; errors point into it."""
    try:
        return _encode_payload(value)
    except CanonicalizationError as exc:
        exc.path = f"/{name}{exc.path}"
        raise


def _encode_payload(value: Any) -> str:
    """Canonical text of an old/new payload, with a fast path for flat records.

    Process values are mostly flat objects of short ASCII names mapped to
    strings, small integers, Decimals and timestamps; for those the C JSON
    encoder gives exactly the RFC 8785 bytes (ASCII names sort the same by
    code point and by UTF-16). Anything else takes the general encoder.
    """
    if value is None:
        return "null"
    if type(value) is dict and _flat_encoder is not None:
        for key, item in value.items():
            kind = type(item)
            if type(key) is not str or not key.isascii():
                break
            if kind is int:
                if abs(item) > MAX_SAFE_INTEGER:
                    break
            elif not (kind is str or kind is Decimal or kind is datetime or kind in _FLAT_TYPES):
                break
        else:
            return "".join(_flat_encoder(value, 0))
    return canonicalize(value).decode("utf-8")


def encode_entry(seq: int, recorded_at: datetime | str, prev: bytes, event: AuditEvent) -> bytes:
    """RFC 8785 bytes of an entry, equal to ``canonicalize(entry.as_dict())``.

    Written out member by member in sorted order because this sits on the
    ingest hot path; a property test checks it against :func:`canonicalize`.
    ``recorded_at`` may be given already formatted (by :func:`format_timestamp`)
    so a batch formats its one timestamp once.
    """
    if type(seq) is not int or seq < 0:
        raise EntryError(f"seq must be a non-negative integer, got {seq!r}")
    if len(prev) != HASH_SIZE:
        raise EntryError(f"prev must be a {HASH_SIZE}-byte hash")
    stamp = recorded_at if isinstance(recorded_at, str) else format_timestamp(recorded_at)
    es = _encode_string
    actor = event.actor
    reason = "null" if event.reason is None else es(event.reason)
    text = (
        f'{{"action":{es(event.action)},'
        f'"actor":{{"id":{es(actor.user_id)},"name":{es(actor.printed_name)}}},'
        f'"client_tz":{es(event.client_tz)},'
        f'"new":{_encode_value(event.new, "new")},'
        f'"object":{{"id":{es(event.object_id)},"type":{es(event.object_type)}}},'
        f'"old":{_encode_value(event.old, "old")},'
        f'"prev":"{prev.hex()}",'
        f'"reason":{reason},'
        f'"recorded_at":"{stamp}",'
        f'"seq":{seq},"v":{ENTRY_FORMAT_VERSION}}}'
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalizationError("entry text contains a lone surrogate") from exc


def make_entry(seq: int, recorded_at: datetime, prev: bytes, event: AuditEvent) -> Entry:
    """Build an :class:`Entry` with its canonical bytes."""
    return Entry(seq, recorded_at, prev, event, encode_entry(seq, recorded_at, prev, event))


def parse_entry(canonical: bytes) -> Entry:
    """Rebuild an :class:`Entry` from its canonical bytes (the inverse of :func:`encode_entry`).

    Timestamps and Decimals inside ``old``/``new`` come back as the strings
    they were encoded as; JSON cannot say which strings were once Decimals.
    """
    try:
        data = json.loads(canonical)
        if data.get("v") != ENTRY_FORMAT_VERSION:
            raise EntryError(f"unsupported entry format version {data.get('v')!r}")
        recorded_at = datetime.fromisoformat(data["recorded_at"])
        event = AuditEvent(
            actor=Actor(data["actor"]["id"], data["actor"]["name"]),
            action=data["action"],
            object_type=data["object"]["type"],
            object_id=data["object"]["id"],
            new=data["new"],
            old=data["old"],
            reason=data["reason"],
            client_tz=data["client_tz"],
        )
        return Entry(data["seq"], recorded_at, bytes.fromhex(data["prev"]), event, canonical)
    except EntryError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EntryError(f"not a canonical audit entry: {exc}") from exc


def seq_span(first: int, end: int) -> str:
    """``entry 7 is`` or ``entries 7..9 are``, for sequence numbers ``first`` .. ``end - 1``."""
    return f"entry {first} is" if end - first == 1 else f"entries {first}..{end - 1} are"
