"""Captured numbers of any size come back exactly — from the value row and the audit entry."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from ebr_support import HEAT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gxpmes.ebr.engine import CapturedValue
from gxpmes.errors import CaptureRefused
from gxpmes.testing.plant import OT_SOURCE

BATCH = "B-BIG"
PARAMETER = f"{HEAT}/temperature"
ROW_CHARS = 64  # ebr_value.value is VARCHAR(64)

integers = (
    st.integers(min_value=-(10**63) + 1, max_value=10**63 - 1)
    | st.integers(min_value=2**53 - 4, max_value=2**64)
    | st.sampled_from([68294714393637184, -(2**63), 2**53 + 1, 10**63 - 1])
)
decimals = st.decimals(allow_nan=False, allow_infinity=False).filter(
    lambda d: len(str(d)) <= ROW_CHARS
) | st.builds(
    lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
    st.text("0123456789", min_size=1, max_size=40),
    st.integers(-20, 20),
)


def _capture(plant, number: object) -> int:  # type: ignore[no-untyped-def]
    value = CapturedValue(BATCH, PARAMETER, "TT-101", number, "Cel", plant.clock())  # type: ignore[arg-type]
    return plant.engine.capture([value], source=OT_SOURCE)[0]


def _read_back(plant, seq: int) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    """The value as the record reads it and as the log holds it (its value block's leaf)."""
    (row,) = [v["value"] for v in plant.engine.values(BATCH) if v["seq"] == seq]
    assert plant.db.ledger.entry(seq).event.action == "value.block"
    (leaf,) = plant.db.ledger.block_leaves(seq)
    return row, json.loads(leaf)["value"]


def test_numbers_of_any_size_come_back_exactly(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch(BATCH, phases=(HEAT,))

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(integers | decimals)
    def check(number: int | Decimal) -> None:
        row, audited = _read_back(plant, _capture(plant, number))
        assert Decimal(row) == number and Decimal(str(audited)) == number
        assert row == audited == str(Decimal(number))  # the same exact text, both places

    check()


def test_the_reported_integer_comes_back_as_itself(plant) -> None:  # type: ignore[no-untyped-def]
    plant.start_batch(BATCH, phases=(HEAT,))
    for number in (68294714393637184, Decimal(68294714393637184)):
        assert _read_back(plant, _capture(plant, number)) == ("68294714393637184",) * 2


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (Decimal("1" * (ROW_CHARS + 1)), "at most 64 characters"),
        (10**ROW_CHARS, "at most 64 characters"),
        (25.5, "not a Decimal"),  # a float is already rounded before it arrives
        ("25.5", "not a Decimal"),
        (True, "not a Decimal"),
    ],
    ids=["long-decimal", "long-integer", "float", "str", "bool"],
)
def test_numbers_a_value_row_cannot_carry_are_refused(  # type: ignore[no-untyped-def]
    plant, number: object, message: str
) -> None:
    plant.start_batch(BATCH, phases=(HEAT,))
    with pytest.raises(CaptureRefused, match=message):
        _capture(plant, number)
    refused = [
        e
        for e in plant.db.ledger.entries_for("batch", BATCH)
        if e.event.action == "capture.refused"
    ]
    assert refused and message in refused[-1].event.new["problems"][0]
