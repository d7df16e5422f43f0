"""Hypothesis strategies for isa95.batchlist models (BatchML batch lists)."""

from __future__ import annotations

from datetime import datetime

from hypothesis import strategies as st
from isa95_strategies import decimals, identifiers, optional_text, texts, times

from isa95.batchlist import (
    BatchList,
    BatchListEntry,
    BatchListEntryKind,
    BatchMode,
    BatchStatus,
)


def _coded(
    values: type[BatchStatus] | type[BatchMode] | type[BatchListEntryKind],
) -> st.SearchStrategy[str]:
    return st.sampled_from([v.value for v in values]) | identifiers


def _interval() -> st.SearchStrategy[tuple[datetime | None, datetime | None]]:
    return st.tuples(st.none() | times, st.none() | times).map(
        lambda pair: tuple(sorted(pair)) if None not in pair else pair  # type: ignore[return-value]
    )


@st.composite
def entries(draw: st.DrawFn, depth: int = 0, equipment: bool = True) -> BatchListEntry:
    requested = draw(_interval())
    actual = draw(_interval())
    ids = st.lists(identifiers, max_size=2)
    return BatchListEntry(
        id=draw(identifiers),
        entry_type=draw(_coded(BatchListEntryKind)),
        description=draw(optional_text),
        status=draw(st.none() | _coded(BatchStatus)),
        mode=draw(st.none() | _coded(BatchMode)),
        recipe_id=draw(st.none() | identifiers),
        recipe_version=draw(st.none() | identifiers),
        batch_id=draw(st.none() | identifiers),
        lot_id=draw(st.none() | identifiers),
        campaign_id=draw(st.none() | identifiers),
        product_id=draw(st.none() | identifiers),
        order_id=draw(st.none() | identifiers),
        external_id=draw(st.none() | identifiers),
        start_condition=draw(st.none() | times),
        requested_start=requested[0],
        requested_end=requested[1],
        actual_start=actual[0],
        actual_end=actual[1],
        priority=draw(st.none() | decimals),
        requested_batch_size=draw(st.none() | decimals),
        actual_batch_size=draw(st.none() | decimals),
        unit=draw(st.none() | st.sampled_from(["kg", "L", "t"])),
        notes=draw(st.lists(texts, max_size=2)),
        equipment_ids=draw(ids) if equipment else [],
        equipment_class_ids=draw(ids),
        actual_equipment_ids=draw(ids),
        entries=draw(st.lists(entries(depth + 1, equipment), max_size=2 if depth < 2 else 0)),
    )


@st.composite
def batch_lists(draw: st.DrawFn, equipment: bool = True) -> BatchList:
    return BatchList(
        id=draw(st.none() | identifiers),
        version=draw(st.none() | identifiers),
        created=draw(st.none() | times),
        description=draw(optional_text),
        entries=draw(st.lists(entries(0, equipment), max_size=3)),
    )
