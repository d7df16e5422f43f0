"""The recipe's declared order (ISA-88 sequence and parallel branches) and mandatory data:
any acyclic ``after`` graph of siblings is accepted, any cycle or stranger is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from isa95.common import Quantity
from isa95.recipe import MaterialRequirement, Operation, Phase, Procedure, Recipe, UnitProcedure


def _recipe(after: dict[int, list[int]], count: int) -> Recipe:
    phases = [Phase(id=f"P{i}", after=[f"P{j}" for j in after.get(i, [])]) for i in range(count)]
    operation = Operation(id="OP", phases=phases)
    return Recipe(
        id="R",
        procedure=Procedure(
            id="PROC", unit_procedures=[UnitProcedure(id="UP", operations=[operation])]
        ),
    )


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, dict[int, list[int]]]:
    count = draw(st.integers(1, 7))
    after = {
        i: sorted(draw(st.sets(st.integers(0, i - 1), max_size=i))) if i else []
        for i in range(count)
    }
    return count, after


@given(dags())
def test_every_acyclic_order_is_accepted_and_predecessors_are_its_edges(
    dag: tuple[int, dict[int, list[int]]],
) -> None:
    count, after = dag
    recipe = _recipe(after, count)
    for i in range(count):
        assert recipe.predecessors(f"PROC/UP/OP/P{i}") == [f"PROC/UP/OP/P{j}" for j in after[i]]


@given(dags(), st.data())
def test_a_back_edge_closing_a_cycle_is_refused(
    dag: tuple[int, dict[int, list[int]]], data: st.DataObject
) -> None:
    count, after = dag
    edges = [(i, j) for i, js in after.items() for j in js]
    if not edges:
        return  # no edge to close a cycle with
    i, j = data.draw(st.sampled_from(edges))  # P_i after P_j: now P_j after P_i too
    after = {k: list(v) for k, v in after.items()}
    after[j] = [*after[j], i]
    with pytest.raises(ValidationError, match="cycle"):
        _recipe(after, count)


def test_strangers_and_bad_declarations_are_refused() -> None:
    with pytest.raises(ValidationError, match="not another phase of the same parent"):
        _recipe({0: [5]}, 2)
    with pytest.raises(ValidationError, match="not another phase"):
        _recipe({0: [0]}, 1)
    with pytest.raises(ValidationError, match="always signed Performed"):
        Phase(id="P", signatures=["Verified"])
    with pytest.raises(ValidationError, match="required x is not a parameter"):
        Phase(id="P", required=["x"])
    kg = Quantity(value=Decimal("1"), unit="kg")
    with pytest.raises(ValidationError, match="listed twice"):
        Phase(
            id="P",
            materials=[MaterialRequirement(material_id="M", quantity=kg, tolerance=Decimal(0))] * 2,
        )
    with pytest.raises(ValidationError, match="tolerance"):
        MaterialRequirement(material_id="M", quantity=kg, tolerance=Decimal("-1"))
    with pytest.raises(ValidationError, match="positive"):
        MaterialRequirement(
            material_id="M", quantity=Quantity(value=Decimal(0), unit="kg"), tolerance=Decimal(0)
        )
    with pytest.raises(ValidationError, match="needs a unit"):
        MaterialRequirement(
            material_id="M", quantity=Quantity(value=Decimal(1)), tolerance=Decimal(0)
        )
