"""Bad input to ``capture`` is refused with ``CaptureRefused``: audited, all or nothing.

Tags, units and source keys the record cannot hold (a lone surrogate: no
UTF-8 and no RFC 8785 form; more than 256 or 512 characters; an empty key), a
time whose UTC time is before year 1, and a client id with a lone surrogate
are refused like every other refusal: a ``capture.refused`` entry, no value
written — never a driver's or the encoder's exception. Times at offsets with
sub-second parts are written as UTC exactly as the canonical encoder writes
them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from ebr_support import HEAT
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import format_timestamp
from gxpmes.ebr.capture import _stamp_texts
from gxpmes.ebr.engine import CapturedValue, CaptureSource
from gxpmes.errors import CaptureRefused
from gxpmes.testing.plant import OT_SOURCE

TEMPERATURE = f"{HEAT}/temperature"

_BAD: dict[str, dict[str, Any]] = {
    "tag lone surrogate": {"tag": "a\ud800b"},
    "unit lone surrogate": {"unit": "\udfff"},
    "key lone surrogate": {"source_key": "k\ud800"},
    "tag too long": {"tag": "T" * 257},
    "unit too long": {"unit": "u" * 257},
    "key too long": {"source_key": "k" * 513},
    "key empty": {"source_key": ""},
    "year 1 ahead of UTC": {
        "source_ts": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    },
}


def _value(plant, i: int, **change: Any) -> CapturedValue:  # type: ignore[no-untyped-def]
    fields: dict[str, Any] = {
        "batch_id": "B-1",
        "parameter": TEMPERATURE,
        "tag": "TT-101",
        "value": Decimal("70.0"),
        "unit": "Cel",
        "source_ts": plant.clock() - timedelta(seconds=10 - i),
        "source_key": f"k-{i}",
    }
    fields.update(change)
    return CapturedValue(**fields)


def _refusals(plant) -> list[Any]:  # type: ignore[no-untyped-def]
    return [
        e
        for e in plant.db.ledger.entries_for("batch", "B-1")
        if e.event.action == "capture.refused"
    ]


@pytest.mark.parametrize("bad", sorted(_BAD))
def test_bad_input_is_refused_audited_and_nothing_is_written(plant, bad: str) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    size = plant.db.ledger.size()
    values = [_value(plant, 0), _value(plant, 1, **_BAD[bad]), _value(plant, 2)]
    with pytest.raises(CaptureRefused, match="1 of 3 values refused, none written"):
        plant.engine.capture(values, source=OT_SOURCE)
    assert plant.engine.values("B-1") == []
    (refusal,) = _refusals(plant)
    assert plant.db.ledger.size() == size + 1
    assert refusal.event.new["count"] == 3
    # The fine values go through once the bad one is left out.
    plant.engine.capture([values[0], values[2]], source=OT_SOURCE)
    assert len(plant.engine.values("B-1")) == 2


@pytest.mark.parametrize("bad", ["tag lone surrogate", "key empty", "year 1 ahead of UTC"])
def test_a_manual_entry_refuses_the_same_input(plant, bad: str) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    with pytest.raises(CaptureRefused):
        plant.engine.manual_entry(
            plant.sessions["op1"], _value(plant, 0, **_BAD[bad]), reason="handheld reading"
        )
    assert plant.engine.values("B-1") == []


def test_longest_texts_are_recorded(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    plant.engine.capture(
        [_value(plant, 0, tag="T" * 256, unit="u" * 256, source_key="k" * 512)],
        source=OT_SOURCE,
    )
    (value,) = plant.engine.values("B-1")
    assert (len(value["tag"]), len(value["unit"])) == (256, 256)


def test_a_client_id_with_a_lone_surrogate_is_refused_and_audited(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch("B-1", phases=(HEAT,))
    source = CaptureSource(OT_SOURCE.account_id, "client\ud800")
    with pytest.raises(CaptureRefused, match="client id"):
        plant.engine.capture([_value(plant, 0)], source=source)
    (refusal,) = _refusals(plant)
    assert refusal.event.new["client_id"] == "client\\ud800"
    assert plant.engine.values("B-1") == []


_OFFSETS = st.one_of(
    st.integers(-86_399_999_999, 86_399_999_999).map(
        lambda us: timezone(timedelta(microseconds=us))
    ),
    st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m))),
    st.just(UTC),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
            _OFFSETS,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_capture_writes_times_as_the_canonical_encoder(moments: list[Any]) -> None:
    times = [naive.replace(tzinfo=zone) for naive, zone in moments]
    assert _stamp_texts(times) == [format_timestamp(t) for t in times]


def test_a_sub_second_offset_is_written_in_utc() -> None:
    moment = datetime(
        2026, 3, 2, 7, 55, 0, 500_000, tzinfo=timezone(timedelta(microseconds=500_000))
    )
    assert _stamp_texts([moment]) == ["2026-03-02T07:55:00.000000Z"]
    assert _stamp_texts([datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))]) == [""]
