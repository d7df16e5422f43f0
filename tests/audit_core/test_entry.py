"""Audit entries: validation, canonical bytes, parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.canonical import canonicalize
from audit.entry import GENESIS_PREV, Actor, AuditEvent, encode_entry, make_entry, parse_entry
from audit.errors import CanonicalizationError, EntryError

ANN = Actor("u-ann", "Ann Operator")
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_reason_required_for_gxp_changes() -> None:
    with pytest.raises(EntryError, match="needs a reason"):
        AuditEvent(ANN, "update", "batch", "B1", new={"qty": 1}, requires_reason=True)
    event = AuditEvent(
        ANN, "update", "batch", "B1", new={"qty": 1}, reason="typo", requires_reason=True
    )
    assert event.reason == "typo"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": ""}, "action"),
        ({"object_type": " "}, "object_type"),
        ({"object_id": ""}, "object_id"),
        ({"client_tz": "Mars/Olympus"}, "client_tz"),
        ({"reason": ""}, "reason"),
        ({"action": "x" * 200}, "longer than"),
    ],
)
def test_incomplete_events_are_refused(kwargs: dict[str, str], message: str) -> None:
    base = {"action": "create", "object_type": "batch", "object_id": "B1"}
    base.update(kwargs)
    with pytest.raises(EntryError, match=message):
        AuditEvent(ANN, **base)  # type: ignore[arg-type]


def test_actor_needs_id_and_printed_name() -> None:
    with pytest.raises(EntryError, match="printed_name"):
        Actor("u1", "")
    with pytest.raises(EntryError, match="actor must be"):
        AuditEvent("u1", "create", "batch", "B1")  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "+05:30", "-03:00"])
def test_client_time_zone_forms(zone: str) -> None:
    assert AuditEvent(ANN, "create", "batch", "B1", client_tz=zone).client_tz == zone


def test_naive_values_are_refused_when_encoding() -> None:
    event = AuditEvent(ANN, "capture", "value", "B1/TT1", new={"at": datetime(2026, 1, 1)})
    with pytest.raises(CanonicalizationError, match="naive"):
        encode_entry(0, T0, GENESIS_PREV, event)
    with pytest.raises(CanonicalizationError, match="naive"):
        encode_entry(0, datetime(2026, 1, 1), GENESIS_PREV, AuditEvent(ANN, "a", "b", "c"))


def test_entry_bytes_are_documented_form() -> None:
    event = AuditEvent(
        ANN,
        "update",
        "recipe",
        "R1",
        old={"t": Decimal("70.0")},
        new={"t": Decimal("72.0")},
        reason="CC-1",
        client_tz="Europe/Berlin",
    )
    data = encode_entry(7, T0, b"\x01" * 32, event)
    assert data == (
        b'{"action":"update","actor":{"id":"u-ann","name":"Ann Operator"},'
        b'"client_tz":"Europe/Berlin","new":{"t":"72.0"},"object":{"id":"R1","type":"recipe"},'
        b'"old":{"t":"70.0"},"prev":"' + (b"01" * 32) + b'","reason":"CC-1",'
        b'"recorded_at":"2026-03-01T12:00:00.123456Z","seq":7,"v":1}'
    )


payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(max_size=12)
    | st.decimals(allow_nan=False, allow_infinity=False, places=4)
    | st.datetimes(timezones=st.just(timezone(timedelta(hours=2)))),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=5),
    max_leaves=12,
)


@given(
    seq=st.integers(0, 2**40),
    new=payloads,
    old=payloads,
    reason=st.none() | st.text(min_size=1, max_size=30).filter(str.strip),
    name=st.text(min_size=1, max_size=20).filter(str.strip),
)
def test_fast_encoder_equals_general_canonical_form(
    seq: int, new: object, old: object, reason: str | None, name: str
) -> None:
    event = AuditEvent(Actor("u1", name), "update", "obj", "id-1", new=new, old=old, reason=reason)
    try:
        expected = canonicalize(make_entry(seq, T0, GENESIS_PREV, event).as_dict())
    except CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            encode_entry(seq, T0, GENESIS_PREV, event)
        return
    assert encode_entry(seq, T0, GENESIS_PREV, event) == expected


@given(new=payloads, seq=st.integers(0, 10**9))
def test_parse_inverts_encode(new: object, seq: int) -> None:
    event = AuditEvent(ANN, "capture", "value", "B1", new=new, client_tz="+01:00")
    try:
        entry = make_entry(seq, T0, b"\x02" * 32, event)
    except CanonicalizationError:
        return
    parsed = parse_entry(entry.canonical)
    assert (parsed.seq, parsed.recorded_at, parsed.prev) == (seq, T0, b"\x02" * 32)
    assert parsed.event.actor == ANN and parsed.event.client_tz == "+01:00"
    assert canonicalize(parsed.event.new) == canonicalize(new)
    assert parsed.leaf_hash == entry.leaf_hash


@pytest.mark.parametrize("blob", [b"not json", b"{}", b'{"v":2}', b'{"v":1,"seq":0}'])
def test_parse_refuses_non_entries(blob: bytes) -> None:
    with pytest.raises(EntryError):
        parse_entry(blob)
