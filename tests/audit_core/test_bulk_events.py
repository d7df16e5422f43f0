"""events_for_objects: the bulk path builds exactly the events the constructor would."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.entry import GENESIS_PREV, Actor, AuditEvent, encode_entry, events_for_objects
from audit.errors import EntryError

ANN = Actor("svc-ot", "OT collector")
ids = st.text(min_size=1, max_size=20).filter(str.strip)
payloads = st.lists(
    st.tuples(ids, st.dictionaries(st.text(max_size=5), st.integers(-100, 100), max_size=3)),
    max_size=10,
)


@given(
    payloads=payloads,
    reason=st.none() | st.text(min_size=1, max_size=10).filter(str.strip),
    zone=st.sampled_from(["UTC", "+02:00", "Europe/Berlin"]),
)
def test_bulk_events_equal_constructed_ones(
    payloads: list[tuple[str, dict[str, Any]]], reason: str | None, zone: str
) -> None:
    bulk = events_for_objects(
        ANN, "value.capture", "process_value", payloads, reason=reason, client_tz=zone
    )
    one_by_one = [
        AuditEvent(
            ANN, "value.capture", "process_value", oid, new=new, reason=reason, client_tz=zone
        )
        for oid, new in payloads
    ]
    assert bulk == one_by_one
    for event, expected in zip(bulk, one_by_one, strict=True):
        for field in dataclasses.fields(AuditEvent):  # every field set, none left unset
            assert getattr(event, field.name) == getattr(expected, field.name)
        assert encode_entry(3, "2026-01-01T00:00:00.000000Z", GENESIS_PREV, event) == encode_entry(
            3, "2026-01-01T00:00:00.000000Z", GENESIS_PREV, expected
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actor": "svc"}, "actor must be an audit.Actor"),
        ({"action": " "}, "action must be a non-empty string"),
        ({"object_type": ""}, "object_type must be a non-empty string"),
        ({"client_tz": "Mars/Olympus"}, "client_tz"),
        ({"reason": ""}, "reason must be a non-empty string"),
    ],
)
def test_shared_fields_are_checked(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"actor": ANN, "action": "value.capture", "object_type": "pv"}
    args.update(kwargs)
    extra = {k: args.pop(k) for k in ("reason", "client_tz") if k in args}
    with pytest.raises(EntryError, match=message):
        events_for_objects(
            args["actor"], args["action"], args["object_type"], [("a", None), ("b", None)], **extra
        )


@pytest.mark.parametrize("bad", ["", "   ", "x" * 513, 7])
def test_every_distinct_object_id_is_checked(bad: Any) -> None:
    with pytest.raises(EntryError, match="object_id"):
        events_for_objects(ANN, "value.capture", "pv", [("B/P", 1), ("B/P", 2), (bad, 3)])


def test_no_payloads_no_events() -> None:
    assert events_for_objects(ANN, "value.capture", "pv", []) == []
