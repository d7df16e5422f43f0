"""Values that are not numbers (Sparkplug Booleans, Strings, nulls) never vanish silently.

The decoder cannot know the tag map (the application rebinds tags in the main
process), so it spools such a value as a not-numeric marker; the forwarder
refuses one of a mapped tag (``wrong_type`` dead letter + data-quality exception
on the batch) and only counts one of an unmapped tag (``not_numeric``). A marker,
or a damaged spool's JSON ``true``, is never recorded as a number.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from gxpmes.connectors.forwarder import Forwarder, _delivery_columns
from gxpmes.connectors.model import NotNumeric, Reading, TagBinding
from gxpmes.connectors.rejects import rejects_by_reason
from gxpmes.connectors.runner import Status
from gxpmes.connectors.spool import reading_of
from gxpmes.ebr.schema import RejectRow

BATCH = "B-OT-1"
TAG = "GRAN01/TT-101"


def now() -> datetime:
    return datetime.now(UTC)


def recorded(plant: Any) -> list[str]:
    return [v["value"] for v in plant.engine.values(BATCH)]


def exceptions(plant: Any) -> list[str]:
    return [
        i.detail
        for i in plant.engine.review_by_exception(BATCH)
        if i.kind == "exception:data_quality"
    ]


def test_a_not_numeric_value_is_spooled_as_a_marker_never_as_text() -> None:
    from gxpmes.connectors.spool import _item

    t0 = now()
    item = _item(Reading(TAG, NotNumeric("Boolean", "True"), t0, dedup_key="k"))
    assert item[1] == {"not_numeric": "Boolean", "text": "True"}
    back = reading_of(orjson.loads(orjson.dumps(item)))
    assert back.value == NotNumeric("Boolean", "True") and back.source_ts == t0
    assert NotNumeric("null").describe() == "null"
    assert NotNumeric("String", "'70.1'").describe() == "String '70.1'"


def test_mapped_not_numeric_values_are_refused_and_the_good_ones_around_recorded(
    running, tags, spool
) -> None:  # type: ignore[no-untyped-def]
    t0 = now() - timedelta(seconds=20)

    def at(i: int) -> datetime:
        return t0 + timedelta(milliseconds=i)

    spool.put(
        [
            Reading(TAG, Decimal("70.1"), at(0), dedup_key="a0"),
            Reading(TAG, NotNumeric("Boolean", "True"), at(1), dedup_key="a1"),
            Reading(TAG, NotNumeric("String", "'70.1'"), at(2), dedup_key="a2"),
            Reading(TAG, NotNumeric("null"), at(3), dedup_key="a3"),
            Reading(TAG, Decimal("70.2"), at(4), dedup_key="a4"),
        ]
    )
    spool.put([Reading(TAG, Decimal("70.3"), at(5), dedup_key="b0")])
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    assert forwarder.forward_once() == 3
    forwarder.forward_once()  # records the dead letters made on the way
    assert recorded(running) == ["70.1", "70.2", "70.3"]  # never 1, never 70.1 twice
    assert len(spool) == 0 and spool.rejected() == []
    assert rejects_by_reason(running.db) == {"wrong_type": 3}
    assert forwarder.counts["wrong_type"] == 3 and not forwarder.counts["not_numeric"]
    with running.db.read() as conn:
        rows = conn.execute(RejectRow.__table__.select()).all()
    assert {r.tag for r in rows} == {TAG} and {r.batch_id for r in rows} == {BATCH}
    details = sorted(r.detail for r in rows)
    assert details == [
        f"value of {TAG!r} is not a number: Boolean True",
        f"value of {TAG!r} is not a number: String '70.1'",
        f"value of {TAG!r} is not a number: null",
    ]
    (exception,) = exceptions(running)  # one per parameter and pass, naming all three
    assert exception.startswith("3 refused inputs (wrong_type 3)")


def test_unmapped_not_numeric_values_are_only_counted(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    t0 = now() - timedelta(seconds=20)
    spool.put(  # a delivery of nothing but states of unmapped metrics
        [
            Reading("G/N/D/Running", NotNumeric("Boolean", "True"), t0, dedup_key="s0"),
            Reading("G/N/D/Name", NotNumeric("String", "'Mixer 2'"), t0, dedup_key="s1"),
        ]
    )
    spool.put(
        [
            Reading(TAG, Decimal("70.1"), t0, dedup_key="m0"),
            Reading("G/N/D/Alarm", NotNumeric("null"), t0, dedup_key="m1"),
        ]
    )
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    assert forwarder.forward_once() == 1
    forwarder.forward_once()
    assert recorded(running) == ["70.1"]
    assert len(spool) == 0 and spool.rejected() == []  # no row left behind
    assert rejects_by_reason(running.db) == {} and exceptions(running) == []
    assert forwarder.counts["not_numeric"] == 3 and not forwarder.counts["wrong_type"]


def test_a_tag_bound_later_decides_when_it_is_forwarded(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    """The map at forwarding time decides, as the application may rebind at runtime."""
    t0 = now() - timedelta(seconds=20)
    spool.put([Reading("G/N/D/Valve", NotNumeric("Boolean", "False"), t0, dedup_key="v0")])
    tags.bind("G/N/D/Valve", TagBinding(BATCH, "GRAN/UP-GRAN/OP-WET/PH-HEAT/temperature", "Cel"))
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()
    assert rejects_by_reason(running.db) == {"wrong_type": 1} and recorded(running) == []
    assert any("Boolean False" in d for d in exceptions(running))


def test_a_spooled_value_that_is_not_text_is_never_a_number(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    """A damaged spool's ``true``, ``1`` or ``1.5`` (Decimal(True) == 1): refused by the
    column-wise build and by the item path, never recorded."""
    iso = (now() - timedelta(seconds=20)).isoformat()
    items = [[TAG, value, iso, "Good", None, f"x{i}"] for i, value in enumerate([True, 1, 1.5])]
    bindings = tags.get_or_none
    assert _delivery_columns(items, bindings, {}) is None
    for item in items:
        assert _delivery_columns([item], bindings, {}) is None
    good = [[TAG, "70.5", iso, "Good", None, "g"]]
    assert _delivery_columns(good, bindings, {}) is not None
    with sqlite3.connect(spool.path) as conn:
        conn.executemany(
            "INSERT INTO pending (body, n) VALUES (?, ?)",
            [(orjson.dumps([item]), 1) for item in [*items, *good]],
        )
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    forwarder.forward_once()
    assert recorded(running) == ["70.5"]
    assert rejects_by_reason(running.db) == {"unrecordable": 3}
    assert len(spool) == 0 and spool.rejected() == []


def test_the_status_line_counts_unmapped_not_numeric_values() -> None:
    quiet = Status(10, 0, 0.0, 10, 0, {}, {}, 0, 0, 0)
    assert "not numeric" not in quiet.line(1.0)
    busy = Status(10, 0, 0.0, 130, 0, {"wrong_type": 1}, {}, 0, 0, 0, not_numeric=119)
    line = busy.line(1.0)
    assert "1 rejected (wrong_type 1), 119 not numeric (unmapped), 0 errors" in line
    assert "WARNING" not in line
