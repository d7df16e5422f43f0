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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from audit.canonical import canonicalize, format_timestamp
from audit.errors import CanonicalizationError, EntryError
from audit.merkle import HASH_SIZE, record_hash

__all__ = [
    "ENTRY_FORMAT_VERSION",
    "GENESIS_PREV",
    "MAX_BLOCK_LEAVES",
    "Actor",
    "AuditEvent",
    "BlockRef",
    "Entry",
    "block_of",
    "encode_entry",
    "events_for_objects",
    "parse_entry",
    "seq_span",
]

ENTRY_FORMAT_VERSION = 1
GENESIS_PREV = bytes(HASH_SIZE)
"""The chain link of entry 0: 32 zero bytes (there is no previous entry)."""

_OFFSET_RE = re.compile(r"^[+-](?:[01]\d|2[0-3]):[0-5]\d$")
_MAX_TEXT = 4096
_encode_string = json.encoder.encode_basestring


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


_new_object = object.__new__
_set_field = object.__setattr__


def events_for_objects(
    actor: Actor,
    action: str,
    object_type: str,
    payloads: Iterable[tuple[str, Any]],
    *,
    reason: str | None = None,
    client_tz: str = "UTC",
) -> list[AuditEvent]:
    """One :class:`AuditEvent` per ``(object_id, new)`` pair, all sharing the other fields.

    The same events as ``AuditEvent(actor, action, object_type, object_id,
    new=new, reason=reason, client_tz=client_tz)`` for each pair, with the
    same checks, but the shared fields are validated once and each distinct
    ``object_id`` once: this is the bulk path of process value capture.
    """
    events: list[AuditEvent] = []
    checked: set[str] = set()
    first: AuditEvent | None = None
    for object_id, new in payloads:
        if first is None:  # validates every shared field (and this object id) as usual
            first = AuditEvent(
                actor, action, object_type, object_id, new=new, reason=reason, client_tz=client_tz
            )
            checked.add(object_id)
            events.append(first)
            continue
        if object_id not in checked:
            _require_text("object_id", object_id, limit=512)
            checked.add(object_id)
        # Frozen dataclass fields are set as its own __init__ sets them.
        event = _new_object(AuditEvent)
        _set_field(event, "actor", actor)
        _set_field(event, "action", action)
        _set_field(event, "object_type", object_type)
        _set_field(event, "object_id", object_id)
        _set_field(event, "new", new)
        _set_field(event, "old", None)
        _set_field(event, "reason", reason)
        _set_field(event, "client_tz", client_tz)
        _set_field(event, "requires_reason", False)
        events.append(event)
    return events


@dataclass(frozen=True, slots=True)
class BlockRef:
    """What a block entry commits to: the RFC 9162 root of its leaves and their number.

    It is the entry's top-level ``"block": {"root": <hex>, "size": <n>}``
    member (see :mod:`audit.blocks`); ordinary entries have no such member.
    """

    root: bytes
    size: int

    def __post_init__(self) -> None:
        if type(self.root) is not bytes or len(self.root) != HASH_SIZE:
            raise EntryError(f"a block root is a {HASH_SIZE}-byte hash")
        if type(self.size) is not int or not 1 <= self.size <= MAX_BLOCK_LEAVES:
            raise EntryError(f"a block holds 1 to {MAX_BLOCK_LEAVES} leaves, not {self.size!r}")

    def as_dict(self) -> dict[str, Any]:
        """The entry's ``block`` member."""
        return {"root": self.root.hex(), "size": self.size}


MAX_BLOCK_LEAVES = 1 << 20
"""Most leaves one block entry may commit to."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One immutable, sequenced, chained audit entry.

    ``block`` is set for a block entry (:meth:`audit.ledger.Ledger.append_block`):
    the entry then commits to the root of its block's leaves.
    """

    seq: int
    recorded_at: datetime
    prev: bytes
    event: AuditEvent
    canonical: bytes = field(repr=False, compare=False, default=b"")
    block: BlockRef | None = None

    @property
    def leaf_hash(self) -> bytes:
        """RFC 9162 leaf hash of the canonical bytes: SHA-256(0x00 ‖ bytes)."""
        return record_hash(self.canonical)

    def as_dict(self) -> dict[str, Any]:
        """The logical content whose RFC 8785 form is :attr:`canonical`."""
        return _entry_dict(self.seq, self.recorded_at, self.prev, self.event, self.block)


def _entry_dict(
    seq: int,
    recorded_at: datetime,
    prev: bytes,
    event: AuditEvent,
    block: BlockRef | None = None,
) -> dict[str, Any]:
    data = {
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
    if block is not None:
        data["block"] = block.as_dict()
    return data


def _orjson_default(value: object) -> str:
    """Decimal and datetime, as :func:`audit.canonical.canonicalize` writes them; else refuse."""
    kind = type(value)
    if kind is Decimal:
        if not value.is_finite():  # type: ignore[attr-defined]
            raise TypeError  # the exact encoder raises the error with its pointer
        return str(value)
    if kind is datetime:
        return format_timestamp(value)  # type: ignore[arg-type]
    raise TypeError


# orjson is a compiled encoder; for flat records of the types below it writes exactly the
# RFC 8785 bytes (proved by tests/audit_core/test_fast_encoder.py and, on millions of values,
# against the rfc8785 package by bench/crosscheck_rfc8785.py):
# * member names are ASCII (checked), so its code-point sort is RFC 8785's UTF-16 sort;
# * strings are escaped as ECMAScript does (\b \t \n \f \r \" \\, \u00xx for the other
#   controls, U+007F, U+2028/2029 and all else as UTF-8), lone surrogates are refused;
# * OPT_STRICT_INTEGER refuses integers beyond ±(2**53 − 1) instead of writing them;
# * no floats reach it (their ECMAScript form differs; the type check sends them to the
#   exact encoder), and datetimes and subclasses go to ``default`` instead of its own forms.
# Anything it refuses is encoded (or refused, with its JSON Pointer) by canonicalize().
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_FLAT_KINDS = frozenset({str, int, bool, type(None), Decimal, datetime})
_dumps = orjson.dumps


def _flat(value: Any) -> bool:
    """None, or a dict of ASCII member names and :data:`_FLAT_KINDS` values."""
    if value is None:
        return True
    if type(value) is not dict or not _FLAT_KINDS.issuperset(map(type, value.values())):
        return False
    try:
        return "".join(value).isascii()
    except TypeError:  # a member name that is no string
        return False


def _encode_value(value: Any, name: str) -> str:
    """Canonical text of the ``old``/``new`` payload ``name``; errors point into it."""
    try:
        return _encode_payload(value)
    except CanonicalizationError as exc:
        exc.path = f"/{name}{exc.path}"
        raise


def _encode_payload(value: Any) -> str:
    """Canonical text of an old/new payload, with a compiled fast path for flat records.

    Process values are flat objects of short ASCII names mapped to strings,
    integers, Decimals and timestamps; for those orjson writes exactly the
    RFC 8785 bytes. Anything else, and anything it refuses, takes the exact
    general encoder.
    """
    if value is None:
        return "null"
    if type(value) is dict and _FLAT_KINDS.issuperset(map(type, value.values())):
        try:
            if "".join(value).isascii():
                return _dumps(value, default=_orjson_default, option=_ORJSON_OPTIONS).decode()
        except TypeError:  # a non-str name, a big integer, a lone surrogate, a naive time...
            pass
    return canonicalize(value).decode("utf-8")


def encode_entry(
    seq: int,
    recorded_at: datetime | str,
    prev: bytes,
    event: AuditEvent,
    block: BlockRef | None = None,
) -> bytes:
    """RFC 8785 bytes of an entry, equal to ``canonicalize(entry.as_dict())``.

    This sits on the ingest hot path: entries whose payloads are flat records
    are written by one orjson call, others member by member in sorted order;
    property tests check both against :func:`canonicalize` and the rfc8785
    package.
    ``recorded_at`` may be given already formatted (by :func:`format_timestamp`)
    so a batch formats its one timestamp once. ``block`` adds the top-level
    ``block`` member of a block entry (sorted between ``actor`` and
    ``client_tz``); without it the bytes are exactly those of format 1 before
    blocks existed.
    """
    if type(seq) is not int or seq < 0:
        raise EntryError(f"seq must be a non-negative integer, got {seq!r}")
    if len(prev) != HASH_SIZE:
        raise EntryError(f"prev must be a {HASH_SIZE}-byte hash")
    stamp = recorded_at if isinstance(recorded_at, str) else format_timestamp(recorded_at)
    actor = event.actor
    block_text = ""
    if block is not None:
        if not isinstance(block, BlockRef):
            raise EntryError(f"block must be an audit.entry.BlockRef, got {type(block).__name__}")
        block_text = f'"block":{{"root":"{block.root.hex()}","size":{block.size}}},'
    if _flat(event.new) and _flat(event.old) and block is None:
        # The whole entry in one compiled call: its own member names are ASCII, its fields
        # strings, integers and null, and both payloads are flat records (see above).
        try:
            return _dumps(
                {
                    "action": event.action,
                    "actor": {"id": actor.user_id, "name": actor.printed_name},
                    "client_tz": event.client_tz,
                    "new": event.new,
                    "object": {"id": event.object_id, "type": event.object_type},
                    "old": event.old,
                    "prev": prev.hex(),
                    "reason": event.reason,
                    "recorded_at": stamp,
                    "seq": seq,
                    "v": ENTRY_FORMAT_VERSION,
                },
                default=_orjson_default,
                option=_ORJSON_OPTIONS,
            )
        except TypeError:  # the path below encodes it exactly, or raises the precise error
            pass
    es = _encode_string
    reason = "null" if event.reason is None else es(event.reason)
    text = (
        f'{{"action":{es(event.action)},'
        f'"actor":{{"id":{es(actor.user_id)},"name":{es(actor.printed_name)}}},'
        f"{block_text}"
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
        block = _parse_block(data["block"]) if "block" in data else None
        return Entry(data["seq"], recorded_at, bytes.fromhex(data["prev"]), event, canonical, block)
    except EntryError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EntryError(f"not a canonical audit entry: {exc}") from exc


def _parse_block(member: Any) -> BlockRef:
    """The ``block`` member of an entry, exactly as :func:`encode_entry` writes it."""
    if (
        type(member) is not dict
        or set(member) != {"root", "size"}
        or type(member["root"]) is not str
        or len(member["root"]) != 2 * HASH_SIZE
        or member["root"] != member["root"].lower()
        or type(member["size"]) is not int
    ):
        raise EntryError(f"malformed block member {member!r}")
    return BlockRef(bytes.fromhex(member["root"]), member["size"])


def block_of(canonical: bytes) -> BlockRef | None:
    """The block an entry's canonical bytes commit to, or ``None`` for an ordinary entry.

    Cheap for ordinary entries: a top-level ``block`` member is written as
    ``"block":`` in the bytes, so entries without that text are not parsed.
    Raises :class:`EntryError` for bytes that are not JSON or a malformed member.
    """
    if b'"block":' not in canonical:
        return None
    try:
        data = json.loads(canonical)
    except ValueError as exc:
        raise EntryError(f"not a canonical audit entry: {exc}") from exc
    if type(data) is not dict or "block" not in data:
        return None
    return _parse_block(data["block"])


def seq_span(first: int, end: int) -> str:
    """``entry 7 is`` or ``entries 7..9 are``, for sequence numbers ``first`` .. ``end - 1``."""
    return f"entry {first} is" if end - first == 1 else f"entries {first}..{end - 1} are"
