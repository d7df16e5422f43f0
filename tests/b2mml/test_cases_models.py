"""Real documents (../shared/b2mml-cases) read into domain models from the bindings,
checked against what the documents say, written back from the models and compared."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from lxml import etree
from shared_paths import CASES

from isa95.b2mml.binding import Node
from isa95.b2mml.documents import B2MML
from isa95.operations import OperationsRequest, OperationsSchedule, SegmentRequirement
from isa95.recipe import Recipe

pytestmark = pytest.mark.needs_cases  # skipped without them, failed with CI=true

V0701 = "{http://www.mesa.org/xml/B2MML}"
V0600 = "{http://www.mesa.org/xml/B2MML-V0600}"

RECIPES = [
    "rwth-iat-recipeeditor/Wabe102030_Grundrezept.xml",
    "rwth-iat-recipeeditor/Wabe10_Grundrezept.xml",
    "rwth-iat-recipol/2026-04-26_BatchML_MasterRecipe1_Sol_1.xml",
    "rwth-iat-recipol/2026-04-26_BatchML_MasterRecipe2_Sol_1.xml",
    "rwth-iat-recipol/Testrezept_kur.xml",
]
SCHEDULES = [
    "cocop-biz-spec/ProcessProductionSchedule.xml",
    "cocop-biz-spec/ProcessProductionSchedule_EmptyItems.xml",
    "cocop-biz-spec/ProcessProductionSchedule_EmptySched.xml",
]


def _texts(root: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in root.iterfind(path)]


def _values(root: etree._Element, ns: str) -> Counter[tuple[str, ...]]:
    """Every BatchML parameter value as (ID, ValueString, DataType, UnitOfMeasure)."""
    found: Counter[tuple[str, ...]] = Counter()
    for parameter in root.iter(f"{ns}Parameter"):
        for value in parameter.iterfind(f"{ns}Value"):
            found[
                (
                    parameter.findtext(f"{ns}ID") or "",
                    value.findtext(f"{ns}ValueString") or "",
                    value.findtext(f"{ns}DataType") or "",
                    value.findtext(f"{ns}UnitOfMeasure") or "",
                )
            ] += 1
    return found


def _count(root: etree._Element, ns: str, name: str) -> int:
    return sum(1 for _ in root.iter(f"{ns}{name}"))


def test_testrezept_carries_procedure_logic_elements_and_equipment(b2mml: B2MML) -> None:
    document = b2mml.read((CASES / "rwth-iat-recipol" / "Testrezept_kur.xml").read_bytes())
    recipe = document.model
    assert isinstance(recipe, Recipe)
    logic = recipe.procedure_logic
    assert logic is not None
    assert (len(logic.steps), len(logic.links), len(logic.transitions)) == (3, 4, 2)
    assert [s.recipe_element_id for s in logic.steps] == [
        "Init",
        "001:dedc4be7-2550-44a2-9d85-c9fbc83dd0dc",
        "End",
    ]
    first = logic.links[0]
    assert (first.from_ids[0].id, first.from_ids[0].type, first.to_ids[0].id) == (
        "S1",
        "Step",
        "T1",
    )
    assert (first.link_type, first.depiction, first.evaluation_order) == (
        "ControlLink",
        "LineAndArrow",
        "1",
    )
    assert logic.transitions[1].condition == "Step 001:Stirring:Duration_Stirring is Completed"
    assert logic.successors("S1") == ["T1"]
    # Recipe elements beside a procedure: Begin, End and an Operation with equipment.
    assert [(e.id, e.element_type) for e in recipe.elements] == [
        ("Init", "Begin"),
        ("End", "End"),
        ("001:dedc4be7-2550-44a2-9d85-c9fbc83dd0dc", "Operation"),
    ]
    operation = recipe.elements[2]
    assert operation.actual_equipment_ids == ["HC10Instance"]
    assert operation.equipment_requirements[0].equipment_class_id == (
        "Equipment Requirement for the HCs"
    )
    assert recipe.equipment_requirements[0].constraints[0].condition == "Material == H2O"
    # Formula: DataType and values as written.
    assert [(p.target, p.data_type, p.unit, p.subtypes) for p in recipe.formula] == [
        (Decimal(3), "duration", "Sekunde", ["ST"]),
        (Decimal(5), "duration", "Sekunde", ["ST"]),
        (Decimal(10), "duration", "Sekunde", ["ST"]),
    ]
    # The BatchInformation's equipment elements go with the recipe.
    hc10, cell = recipe.equipment_elements
    assert (hc10.id, hc10.element_type, hc10.level) == ("HC10Instance", "Other", "EquipmentModule")
    assert len(hc10.procedural_elements) == 10
    heating = hc10.procedural_elements[1].parameters[0]
    assert (heating.target, heating.data_type, heating.unit) == (
        Decimal(20),
        "Measure",
        "degree Celsius",
    )
    assert hc10.connections[0].to_equipment_ids == ["HC20Instance"]
    assert (cell.id, cell.level) == ("", "ProcessCell")
    # Only the container's list header and description are not in the models.
    assert document.unmapped == ["BatchInformation/ListHeader", "BatchInformation/Description"]


def test_models_point_to_the_binding_they_came_from(b2mml: B2MML) -> None:
    document = b2mml.read((CASES / "rwth-iat-recipol" / "Testrezept_kur.xml").read_bytes())
    recipe = document.model
    node = document.binding_of(recipe)
    assert isinstance(node, Node) and node.tag == "MasterRecipe"
    assert node.value("ID") == "MasterRecipeHC"
    assert recipe.procedure_logic is not None
    step = recipe.procedure_logic.steps[0]
    step_node = document.binding_of(step)
    assert step_node is not None and step_node.tag == "Step" and step_node.value("ID") == "S1"
    # What the model does not carry is reachable on the binding: the step's
    # empty RecipeElementVersion element, the container's list header, comments.
    version = step_node.one("RecipeElementVersion")
    assert version is not None and version.text is None
    root = document.binding
    assert root is not None and root.one("ListHeader") is not None
    header = root.one("ListHeader")
    assert header is not None and header.value("ID") == "ListHeadID"
    element = document.binding_of(recipe.equipment_elements[0])
    assert element is not None and element.value("EquipmentElementLevel") == "EquipmentModule"
    assert document.binding_of(Recipe(id="not-read")) is None


@pytest.mark.parametrize("name", RECIPES)
def test_real_recipes_written_from_models_keep_their_values(b2mml: B2MML, name: str) -> None:
    data = (CASES / name).read_bytes()
    document = b2mml.read(data)
    written = b2mml.write(document.models, version=document.version)
    again = b2mml.read(written)
    assert again.models == document.models
    source, output = etree.fromstring(data), etree.fromstring(written)
    ns = V0701
    # Every parameter value with its DataType and unit, as written.
    assert _values(output, ns) == _values(source, ns)
    for element in ("Step", "Link", "Transition", "RecipeElement", "EquipmentElement"):
        assert _count(output, ns, element) == _count(source, ns, element), element
    for path in (
        f".//{ns}Step/{ns}RecipeElementID",
        f".//{ns}Transition/{ns}Condition",
        f".//{ns}Link/{ns}FromID/{ns}FromIDValue",
        f".//{ns}Link/{ns}ToID/{ns}ToIDValue",
        f".//{ns}RecipeElement/{ns}ActualEquipmentID",
        f".//{ns}EquipmentProceduralElement/{ns}ID",
        f".//{ns}EquipmentConnection/{ns}FromEquipmentID",
    ):
        assert _texts(output, path) == _texts(source, path), path


def test_recipe_steps_links_transitions_counts(b2mml: B2MML) -> None:
    counts = {}
    for name in RECIPES:
        recipe = b2mml.read((CASES / name).read_bytes()).model
        logic = recipe.procedure_logic
        counts[name] = (len(logic.steps), len(logic.links), len(logic.transitions))
    assert counts == {
        RECIPES[0]: (5, 8, 4),
        RECIPES[1]: (5, 8, 4),
        RECIPES[2]: (5, 8, 4),
        RECIPES[3]: (5, 8, 4),
        RECIPES[4]: (3, 4, 2),
    }


def test_recipol_formula_data_types(b2mml: B2MML) -> None:
    recipe = b2mml.read((CASES / RECIPES[2]).read_bytes()).model
    kinds = {(p.data_type, p.value, p.target) for p in recipe.formula}
    assert ("integer", None, Decimal(15)) in kinds
    # "500.0" is kept as written: the target alone would write "500.0" too.
    assert ("double", None, Decimal("500.0")) in kinds


def test_cocop_schedule_parameters_requirements_and_nesting(b2mml: B2MML) -> None:
    document = b2mml.read((CASES / SCHEDULES[0]).read_bytes())
    schedule = document.model
    assert isinstance(schedule, OperationsSchedule)
    first, second = schedule.requests[0].segments
    material = first.materials[0]
    assert material.quantity is not None
    assert (material.quantity.value, material.quantity.data_type, material.quantity.key) == (
        Decimal("41.9"),
        "double",
        "ProdRate",
    )
    assert first.materials[1].lot_id == "psc2-16"
    assert len(first.equipment) == 1 and first.equipment_ids == []
    # The nested segment requirement is carried.
    assert len(second.children) == 1
    nested = second.children[0]
    assert nested.earliest_start is not None and nested.earliest_start.minute == 31
    node = document.binding_of(nested)
    assert node is not None and node.value("LatestEndTime") == "2019-04-24T16:00:00Z"
    # The boolean equipment quantities are not in the model but on its binding.
    equipment = document.binding_of(first.equipment[0])
    assert equipment is not None
    assert [q.value("QuantityString") for q in equipment.all("Quantity")] == ["false", "true"]


@pytest.mark.parametrize("name", SCHEDULES)
def test_real_schedules_written_from_models_keep_their_values(b2mml: B2MML, name: str) -> None:
    data = (CASES / name).read_bytes()
    document = b2mml.read(data)
    written = b2mml.write(document.models, version="V0600", verb=document.verb, noun=document.noun)
    again = b2mml.read(written)
    assert again.noun == "ProductionSchedule" and again.models == document.models
    source, output = etree.fromstring(data), etree.fromstring(written)
    ns = V0600
    for element in ("ProductionRequest", "SegmentRequirement", "MaterialRequirement"):
        assert _count(output, ns, element) == _count(source, ns, element), element
    for path in (
        f".//{ns}ProductionRequest/{ns}ID",
        f".//{ns}SegmentRequirement/{ns}ProcessSegmentID",
        f".//{ns}SegmentRequirement/{ns}EarliestStartTime",
        f".//{ns}MaterialRequirement/{ns}MaterialLotID",
        f".//{ns}MaterialRequirement/{ns}Quantity/{ns}Key",
    ):
        # as written: UTC comes back as ``Z``, never ``+00:00``
        assert _texts(output, path) == _texts(source, path), path


def test_unmodelled_elements_of_a_real_schedule_stay_reachable(b2mml: B2MML) -> None:
    document = b2mml.read((CASES / SCHEDULES[0]).read_bytes())
    request = document.model.requests[0]
    # The request's HierarchyScope has no model field: listed, and on its binding.
    assert any(p.endswith("ProductionRequest[0]/HierarchyScope") for p in document.unmapped)
    node = document.binding_of(request)
    assert node is not None
    scope = node.one("HierarchyScope")
    assert scope is not None and scope.value("EquipmentID") == "fsf"


def test_user_area_stays_reachable(b2mml: B2MML) -> None:
    """A UserArea (as ERP systems send them) is not in the models, is listed, and is
    reachable on the binding after reading with models."""
    schedule = OperationsSchedule(
        id="S1",
        requests=[
            OperationsRequest(
                id="R1",
                segments=[SegmentRequirement(id="SR1", process_segment_id="PS1")],
            )
        ],
    )
    bound = b2mml.read(b2mml.write(schedule, verb="Process"), models=False).binding
    assert bound is not None
    area = bound.one("ApplicationArea")
    assert area is not None
    # The wildcard is strict: its content must be a declared global element.
    area.add("UserArea").append_raw(
        etree.fromstring(
            b'<x:ProductID xmlns:x="http://www.mesa.org/xml/B2MML">P-1000</x:ProductID>'
        )
    )
    document = b2mml.read(b2mml.write(bound))
    assert document.model == schedule
    assert "ProcessOperationsSchedule/ApplicationArea/UserArea" in document.unmapped
    assert document.binding is not None
    kept = document.binding.one("ApplicationArea")
    user = kept.one("UserArea") if kept is not None else None
    assert user is not None
    (product,) = user.extensions()
    assert (etree.QName(product).localname, product.text) == ("ProductID", "P-1000")


def test_recipe_other_information_is_reachable_from_the_recipe(b2mml: B2MML) -> None:
    bound = b2mml.read((CASES / RECIPES[4]).read_bytes(), models=False).binding
    assert bound is not None
    master = bound.one("MasterRecipe")
    assert master is not None
    info = master.add("OtherInformation")
    info.add("ID", "GMP-Class")
    document = b2mml.read(b2mml.write(bound))
    assert "BatchInformation/MasterRecipe[0]/OtherInformation" in document.unmapped
    node = document.binding_of(document.model)
    assert node is not None
    assert [o.value("ID") for o in node.all("OtherInformation")] == ["GMP-Class"]
