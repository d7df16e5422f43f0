"""ISA-95 / ISA-88 models: hierarchy rules, genealogy, qualifications, recipes, operations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from isa95.common import Quantity
from isa95.equipment import ALLOWED_CHILDREN, Equipment, EquipmentLevel
from isa95.errors import ModelError
from isa95.material import Genealogy, GenealogyLink
from isa95.operations import OperationsRequest, SegmentRequirement
from isa95.personnel import Person, Qualification
from isa95.recipe import FormulaParameter, Operation, Phase, Procedure, Recipe, UnitProcedure

L = EquipmentLevel
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def plant() -> Equipment:
    site = Equipment(id="SITE", level=L.SITE)
    area = site.add_child(Equipment(id="SOLIDS", level=L.AREA))
    cell = area.add_child(Equipment(id="PC-GRAN", level=L.PROCESS_CELL))
    unit = cell.add_child(Equipment(id="GRAN-01", level=L.UNIT))
    module = unit.add_child(Equipment(id="HEATER", level=L.EQUIPMENT_MODULE))
    module.add_child(Equipment(id="TT-101", level=L.CONTROL_MODULE))
    area.add_child(Equipment(id="WH", level=L.STORAGE_ZONE)).add_child(
        Equipment(id="BAY-1", level=L.STORAGE_UNIT)
    )
    area.add_child(Equipment(id="PACK", level=L.PRODUCTION_LINE)).add_child(
        Equipment(id="BLISTER", level=L.WORK_CELL)
    )
    return site


def test_role_based_hierarchy_builds_and_walks() -> None:
    site = plant()
    assert [e.id for e in site.walk()][:6] == [
        "SITE",
        "SOLIDS",
        "PC-GRAN",
        "GRAN-01",
        "HEATER",
        "TT-101",
    ]
    assert site.find("TT-101").level is L.CONTROL_MODULE
    with pytest.raises(ModelError, match="no equipment"):
        site.find("nope")


@pytest.mark.parametrize(
    ("parent", "child"),
    [
        (L.SITE, L.UNIT),
        (L.AREA, L.UNIT),
        (L.PROCESS_CELL, L.EQUIPMENT_MODULE),
        (L.UNIT, L.PROCESS_CELL),
        (L.CONTROL_MODULE, L.EQUIPMENT_MODULE),
        (L.ENTERPRISE, L.AREA),
        (L.PRODUCTION_LINE, L.UNIT),
        (L.STORAGE_ZONE, L.UNIT),
    ],
)
def test_wrong_parent_level_is_refused(parent: EquipmentLevel, child: EquipmentLevel) -> None:
    with pytest.raises(ModelError, match=f"cannot be placed under {parent}"):
        Equipment(id="P", level=parent).add_child(Equipment(id="C", level=child))
    with pytest.raises(ValidationError, match="cannot be placed"):
        Equipment(id="P", level=parent, children=[Equipment(id="C", level=child)])


def test_every_level_pair_follows_the_table() -> None:
    for parent in L:
        for child in L:
            node = Equipment(id="P", level=parent)
            if child in ALLOWED_CHILDREN[parent]:
                node.add_child(Equipment(id="C", level=child))
            else:
                with pytest.raises(ModelError):
                    node.add_child(Equipment(id="C", level=child))


def test_duplicate_child_is_refused() -> None:
    unit = Equipment(id="U", level=L.UNIT)
    unit.add_child(Equipment(id="EM", level=L.EQUIPMENT_MODULE))
    with pytest.raises(ModelError, match="already has a child"):
        unit.add_child(Equipment(id="EM", level=L.EQUIPMENT_MODULE))


def test_genealogy_both_ways_across_levels() -> None:
    g = Genealogy()
    g.add(
        GenealogyLink(
            consumed="API-1", produced="GRAN-1", quantity=Quantity(value=Decimal("5"), unit="kg")
        )
    )
    g.add(GenealogyLink(consumed="LAC-7", produced="GRAN-1"))
    g.add(GenealogyLink(consumed="GRAN-1", produced="BLEND-1"))
    g.add(GenealogyLink(consumed="BLEND-1", produced="TAB-1"))
    g.add(GenealogyLink(consumed="BLEND-1", produced="TAB-2"))
    assert g.where_used("API-1") == ["GRAN-1", "BLEND-1", "TAB-1", "TAB-2"]
    assert g.where_used("API-1", depth=1) == ["GRAN-1"]
    assert sorted(g.where_from("TAB-2")) == ["API-1", "BLEND-1", "GRAN-1", "LAC-7"]
    assert g.where_from("API-1") == []
    with pytest.raises(ModelError, match="cycle"):
        g.add(GenealogyLink(consumed="TAB-1", produced="API-1"))
    with pytest.raises(ModelError, match="itself"):
        g.add(GenealogyLink(consumed="X", produced="X"))
    assert len(g.links) == 5


def test_quantities_are_exact() -> None:
    assert Quantity(value="0.1", unit="kg").value == Decimal("0.1")
    with pytest.raises(ValidationError, match="never float"):
        Quantity(value=0.1)
    with pytest.raises(ValidationError, match="finite"):
        Quantity(value=Decimal("NaN"))


def test_qualification_expiry() -> None:
    person = Person(id="op1", qualifications=[Qualification(id="GMP", valid_until=T0)])
    assert person.is_qualified("GMP", T0 - timedelta(seconds=1))
    assert not person.is_qualified("GMP", T0)
    assert not person.is_qualified("ASEPTIC", T0 - timedelta(days=1))
    with pytest.raises(ValidationError, match="timezone"):
        Qualification(id="GMP", valid_until=datetime(2026, 1, 1))


def test_formula_parameter_limits() -> None:
    p = FormulaParameter(
        id="temp", target=Decimal("70"), low=Decimal("65"), high=Decimal("75"), unit="Cel"
    )
    assert p.within_limits(Decimal("65")) and p.within_limits(Decimal("75"))
    assert not p.within_limits(Decimal("75.01"))
    for bad, message in [
        ({"low": Decimal("80"), "high": Decimal("75")}, "low limit"),
        ({"target": Decimal("60"), "low": Decimal("65")}, "below low"),
        ({"target": Decimal("90"), "high": Decimal("75")}, "above high"),
        ({"target": Decimal("Infinity")}, "finite"),
    ]:
        with pytest.raises(ValidationError, match=message):
            FormulaParameter(id="t", **bad)


def test_recipe_structure_and_parameter_lookup() -> None:
    temp = FormulaParameter(id="temp", target=Decimal("70"))
    recipe = Recipe(
        id="MR-1",
        formula=[FormulaParameter(id="batch_size", target=Decimal("100"))],
        procedure=Procedure(
            id="P",
            unit_procedures=[
                UnitProcedure(
                    id="UP",
                    operations=[Operation(id="OP", phases=[Phase(id="HEAT", parameters=[temp])])],
                )
            ],
        ),
    )
    assert recipe.parameter("P/UP/OP/HEAT/temp") == temp
    assert recipe.parameter("batch_size").target == Decimal("100")
    with pytest.raises(ModelError, match="no parameter"):
        recipe.parameter("P/UP/OP/HEAT/speed")
    with pytest.raises(ValidationError, match="appears twice"):
        Recipe(
            id="R",
            procedure=Procedure(
                id="P", unit_procedures=[UnitProcedure(id="UP"), UnitProcedure(id="UP")]
            ),
        )


def test_operations_refuse_end_before_start() -> None:
    with pytest.raises(ValidationError, match="before it starts"):
        OperationsRequest(id="R", start=T0, end=T0 - timedelta(minutes=1))
    with pytest.raises(ValidationError, match="before it starts"):
        SegmentRequirement(id="S", earliest_start=T0, latest_end=T0 - timedelta(seconds=1))


@pytest.mark.parametrize("bad", ["", " lead", "trail ", "bell\x07", "cr\r"])
def test_identifiers_must_be_xml_safe(bad: str) -> None:
    with pytest.raises(ValidationError):
        Equipment(id=bad, level=L.SITE)
