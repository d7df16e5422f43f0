"""Numbers of any size survive model → B2MML → model exactly, or are refused by name."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isa95.b2mml.documents import B2MML
from isa95.b2mml.mapping.trees import MAX_NUMBER_CHARS
from isa95.common import Quantity
from isa95.errors import B2MMLError
from isa95.material import MaterialInformation, MaterialLot
from isa95.operations import OperationsRequest, OperationsSchedule, SegmentRequirement
from isa95.recipe import FormulaParameter, Recipe

VERSIONS = ["V0701", "V0600"]

integers = (
    st.integers()
    | st.integers(min_value=2**53 - 8, max_value=2**64)
    | st.sampled_from([68294714393637184, -(2**63), 2**53 + 1])
    | st.integers(min_value=17, max_value=4000).map(lambda n: 10**n - 1)
    | st.integers(min_value=4301, max_value=9000).map(lambda n: 10**n + 7)  # past int("…")
)
# Decimals with many digits and wide exponents, but short enough to write out in full.
decimals = st.builds(
    lambda sign, digits, exponent: Decimal(f"{sign}{digits}E{exponent}"),
    st.sampled_from(["", "-"]),
    st.text("0123456789", min_size=1, max_size=400),
    st.integers(min_value=-3000, max_value=3000),
) | st.decimals(allow_nan=False, allow_infinity=False)


def _settings() -> settings:
    return settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("version", VERSIONS)
def test_quantities_and_formula_values_round_trip_exactly(b2mml: B2MML, version: str) -> None:
    @_settings()
    @given(decimals, decimals)
    def check(a: Decimal, b: Decimal) -> None:
        low, high = sorted((a, b))
        lot = MaterialLot(id="L-1", quantity=Quantity(value=a, unit="kg"))
        recipe = Recipe(
            id="MR-1",
            batch_size=Quantity(value=b, unit="kg"),
            formula=[FormulaParameter(id="P", target=low, low=low, high=high, unit="kg")],
        )
        for model in (MaterialInformation(lots=[lot]), recipe):
            document = b2mml.read(b2mml.write(model, version=version))
            assert document.model == model  # Decimal equality: the same number
        parameter = b2mml.read(b2mml.write(recipe, version=version)).model.formula[0]
        assert (parameter.low, parameter.high) == (low, high)

    check()


@pytest.mark.parametrize("version", VERSIONS)
def test_integer_priorities_round_trip_exactly(b2mml: B2MML, version: str) -> None:
    @_settings()
    @given(integers)
    def check(priority: int) -> None:
        segment = SegmentRequirement(id="G", process_segment_id="PS-1")
        schedule = OperationsSchedule(
            id="S-1", requests=[OperationsRequest(id="R-1", priority=priority, segments=[segment])]
        )
        document = b2mml.read(b2mml.write(schedule, version=version))
        assert document.model.requests[0].priority == priority

    check()


def test_the_reported_integer_is_written_as_itself(b2mml: B2MML) -> None:
    lot = MaterialLot(id="L-1", quantity=Quantity(value=Decimal(68294714393637184), unit="ea"))
    data = b2mml.write(MaterialInformation(lots=[lot]), version="V0701")
    assert b"<QuantityString>68294714393637184</QuantityString>" in data
    assert b2mml.read(data).model.lots[0].quantity.value == 68294714393637184


def test_exponents_are_written_out_as_xsd_decimal(b2mml: B2MML) -> None:
    recipe = Recipe(id="MR-1", batch_size=Quantity(value=Decimal("1.5E+3"), unit="kg"))
    data = b2mml.write(recipe, version="V0701")  # Nominal is xsd:decimal: no exponent allowed
    assert b"<Nominal>1500</Nominal>" in data


@pytest.mark.parametrize(
    "number",
    [Decimal(f"1E+{MAX_NUMBER_CHARS}"), Decimal(f"1E-{MAX_NUMBER_CHARS}"), 10**MAX_NUMBER_CHARS],
    ids=["huge-decimal", "tiny-decimal", "huge-integer"],
)
def test_numbers_too_long_to_write_out_are_refused(b2mml: B2MML, number: Decimal | int) -> None:
    if isinstance(number, int):
        model: object = OperationsSchedule(
            id="S-1",
            requests=[
                OperationsRequest(
                    id="R-1",
                    priority=number,
                    segments=[SegmentRequirement(id="G", process_segment_id="PS-1")],
                )
            ],
        )
    else:
        model = MaterialInformation(
            lots=[MaterialLot(id="L-1", quantity=Quantity(value=number, unit="kg"))]
        )
    with pytest.raises(B2MMLError, match="B2MML cannot carry it"):
        b2mml.write(model, version="V0701")
