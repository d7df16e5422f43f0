"""Real B2MML documents by other tools (../shared/b2mml-cases), read as their README asks."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from shared_paths import CASES

from isa95.b2mml.documents import B2MML
from isa95.errors import DocumentInvalid, ModelError, UnsupportedDocumentError

COCOP = CASES / "cocop-biz-spec"
pytestmark = pytest.mark.needs_cases  # skipped without them, failed with CI=true

# file → (expected outcome, detail): "read" (schema-valid, with a domain model), "bound"
# (schema-valid, read into its generated binding only: no domain model), "invalid" (first error
# line and element), "legacy"/"unsupported" (clear refusal), "semantic" (XSD-valid, wrong meaning).
EXPECTED: dict[str, tuple[str, object]] = {
    "cocop-biz-spec/Neg_ProcessProductionSchedule_EndBeforeStart.xml": (
        "semantic",
        "before it starts",
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidCreationTime.xml": (
        "invalid",
        (36, "CreationDateTime"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidDate.xml": (
        "invalid",
        (47, "EarliestStartTime"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidEqElemLevel.xml": (
        "invalid",
        (47, "EquipmentElementLevel"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidMatUse.xml": (
        "invalid",
        (56, "MaterialUse"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidQuantityDataType.xml": (
        "invalid",
        (51, "DataType"),
    ),
    "cocop-biz-spec/Neg_ProcessProductionSchedule_InvalidQuantityValue.xml": (
        "semantic",
        "not a double number",
    ),
    "cocop-biz-spec/ProcessProductionSchedule.xml": ("read", "ProductionSchedule"),
    "cocop-biz-spec/ProcessProductionSchedule_DateTimeKinds.xml": (
        "read-zone",
        "ProductionSchedule",
    ),
    "cocop-biz-spec/ProcessProductionSchedule_EmptyItems.xml": ("read", "ProductionSchedule"),
    "cocop-biz-spec/ProcessProductionSchedule_EmptySched.xml": ("read", "ProductionSchedule"),
    "cocop-biz-spec/ProcessProductionSchedule_SchedulingParams.xml": (
        "invalid",
        (45, "SchedulingParameters"),
    ),
    "mesa-b2mml-batchml-examples/INV-20121210175555-0001L0001_01.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/LOT-20121210170718-0001L0001.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/MAT-20121210170256-CRBN0001.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/PES-20121229115825-53107.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/PRO-20121210181416-27942.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/ProductionBatchRecord_Example_v06.xml": ("legacy", "V0401"),
    "mesa-b2mml-batchml-examples/cough_syrup_pmw.xml": ("legacy", "BatchML V02"),
    "rwth-iat-recipeeditor/2024-11-03_MasterRecipeHC.xml": (
        "invalid",
        (341, "EquipmentElementType"),
    ),
    "rwth-iat-recipeeditor/Wabe102030_Grundrezept.xml": ("read", "MasterRecipe"),
    "rwth-iat-recipeeditor/Wabe10_Grundrezept.xml": ("read", "MasterRecipe"),
    "rwth-iat-recipeeditor/Wabe20_Grundrezept.xml": ("invalid", (519, "?")),
    "rwth-iat-recipeeditor/expectedXml.xml": ("bound", "GRecipe"),
    "rwth-iat-recipetool/GeneralRecipeHC.xml": ("bound", "GRecipeInformation"),
    "rwth-iat-recipetool/IAT-HC-Beispielrezept.xml": ("bound", "GRecipe"),
    "rwth-iat-recipetool/expectedXml.xml": ("bound", "GRecipe"),
    "rwth-iat-recipol/2026-04-26_BatchML_MasterRecipe1_Sol_1.xml": ("read", "MasterRecipe"),
    "rwth-iat-recipol/2026-04-26_BatchML_MasterRecipe2_Sol_1.xml": ("read", "MasterRecipe"),
    "rwth-iat-recipol/Testrezept_kur.xml": ("read", "MasterRecipe"),
}


def test_every_case_is_listed() -> None:
    found = {str(p.relative_to(CASES)) for p in CASES.rglob("*.xml")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_case(b2mml: B2MML, name: str) -> None:
    data = (CASES / name).read_bytes()
    outcome, detail = EXPECTED[name]
    if outcome in ("read", "read-zone"):
        zone = ZoneInfo("Europe/Helsinki") if outcome == "read-zone" else None
        document = b2mml.read(data, assume_timezone=zone)
        assert document.noun == detail and document.models
        # Nothing is silently dropped: whatever the models do not carry is listed,
        # and the full content stays in the tree.
        assert isinstance(document.unmapped, list) and document.tree
    elif outcome == "bound":
        document = b2mml.read(data)
        assert document.noun == detail and document.binding is not None
        assert document.binding.tag == detail and document.unmapped == [f"/{detail}"]
    elif outcome == "invalid":
        with pytest.raises(DocumentInvalid) as info:
            b2mml.read(data)
        line, element = detail  # type: ignore[misc]
        assert (info.value.issues[0].line, info.value.issues[0].element) == (line, element)
    elif outcome == "semantic":
        assert not b2mml.validate(data)  # passes the XSD...
        with pytest.raises(ModelError, match=str(detail)) as info:  # ...but is refused in meaning
            b2mml.read(data)
        assert "line" in str(info.value)
    else:
        with pytest.raises(UnsupportedDocumentError, match=str(detail)):
            b2mml.read(data)


def test_cocop_schedule_content(b2mml: B2MML) -> None:
    document = b2mml.read((COCOP / "ProcessProductionSchedule.xml").read_bytes())
    schedule = document.model
    request = schedule.requests[0]
    assert request.id == "my-identifier-1"
    first = request.segments[0]
    assert first.process_segment_id == "1"
    material = first.materials[0]
    assert (material.material_definition_id, material.lot_id, str(material.use)) == (
        "matte",
        "psc2-15",
        "Produced",
    )
    assert material.quantity is not None and str(material.quantity.value) == "41.9"
    assert material.quantity.unit == "t/h"
    # The second keyed quantity and the boolean equipment quantities are not
    # carried by the model, and the reader says so.
    assert any(p.endswith("Quantity[1]/QuantityString") for p in document.unmapped)
    assert any("HierarchyScope" in p for p in document.unmapped)


def test_naive_times_need_an_explicit_zone(b2mml: B2MML) -> None:
    data = (COCOP / "ProcessProductionSchedule_DateTimeKinds.xml").read_bytes()
    with pytest.raises(ModelError, match="no time zone"):
        b2mml.read(data)
    document = b2mml.read(data, assume_timezone=UTC)
    starts = [s.earliest_start for s in document.model.requests[0].segments]
    assert all(t is not None and t.utcoffset() is not None for t in starts)


def test_rwth_master_recipe_content(b2mml: B2MML) -> None:
    document = b2mml.read((CASES / "rwth-iat-recipol" / "Testrezept_kur.xml").read_bytes())
    recipe = document.model
    assert recipe.id and recipe.formula
    assert document.root == "BatchInformation"
    assert any(p.endswith("/ListHeader") for p in document.unmapped)
