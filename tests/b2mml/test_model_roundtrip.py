"""Hypothesis: model → document → model for the model kinds mapped from the bindings
(recipes with procedure logic, recipe and equipment elements, formulas of every
DataType, schedules with parameters, nested and resource requirements, product
definitions), in every release that has them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from isa95_strategies import decimals, erp_ids, identifiers, optional_text, texts
from lxml import etree

from isa95.b2mml.documents import B2MML
from isa95.b2mml.mapping.trees import _decimal_text
from isa95.common import Quantity
from isa95.errors import B2MMLError
from isa95.operations import (
    DataValue,
    EquipmentRequirement,
    MaterialRequirement,
    MaterialSpecification,
    MaterialUse,
    OperationsRequest,
    OperationsSchedule,
    PersonnelRequirement,
    ProductDefinition,
    ProductInformation,
    ProductSegment,
    SegmentRequirement,
)
from isa95.recipe import (
    Constraint,
    EquipmentConnection,
    EquipmentElement,
    EquipmentProceduralElement,
    FormulaParameter,
    Link,
    LinkEnd,
    Operation,
    Phase,
    Procedure,
    ProcedureLogic,
    Recipe,
    RecipeElement,
    RecipeType,
    Step,
    Transition,
    UnitProcedure,
)
from isa95.recipe import (
    EquipmentRequirement as RecipeEquipmentRequirement,
)

EXAMPLES = settings(max_examples=25, deadline=None)
units = st.none() | st.sampled_from(["Cel", "rpm", "s", "kg"])
not_numbers = st.one_of(
    st.sampled_from(["PT5M", "P1DT2H", "true", "false", "2026-01-01T08:00:00Z", "NaN"]),
    texts.filter(lambda t: t.strip() and not t.strip()[0].isdigit() and t.strip()[0] not in "+-."),
)


@st.composite
def formula_parameters(draw: st.DrawFn) -> FormulaParameter:
    """A parameter of any DataType, its lexical value as a sender may write it."""
    kind = draw(st.sampled_from(["decimal", "integer", "double", "text"]))
    target = value = None
    if kind == "decimal":
        target = draw(decimals)
        if target >= 0 and draw(st.booleans()):
            value = "0" + _decimal_text(target)  # a leading zero, kept as written
        data_type = draw(st.sampled_from(["decimal", "Measure", "duration", "Quantity"]))
    elif kind == "integer":
        target = Decimal(draw(st.integers(-(10**30), 10**30)))
        data_type = draw(st.sampled_from(["integer", "long", "int"]))
    elif kind == "double":
        mantissa, exponent = draw(st.integers(1, 999)), draw(st.integers(-5, 5))
        value = f"{mantissa}E{exponent}"
        target = Decimal(value)
        data_type = "double"
    else:
        value = draw(not_numbers)
        data_type = draw(st.sampled_from(["string", "duration", "boolean", "dateTime", "Text"]))
    low = high = None
    if target is not None and abs(target) < 10**20 and draw(st.booleans()):
        low, high = target - 1, target + draw(st.sampled_from([Decimal(0), Decimal("2.5")]))
    return FormulaParameter(
        id=draw(identifiers),
        description=draw(optional_text),
        target=target,
        value=value,
        low=low,
        high=high,
        unit=draw(units),
        data_type=data_type,
        interpretation=draw(st.sampled_from(["Constant", "Reference", "Equation"])),
        parameter_type=draw(st.sampled_from(["ProcessParameter", "ProcessInput", "Other"])),
        subtypes=draw(st.lists(st.sampled_from(["ST", "Target", "Scaled"]), max_size=2)),
    )


params = st.lists(formula_parameters(), max_size=3, unique_by=lambda p: p.id)


@st.composite
def logics(draw: st.DrawFn) -> ProcedureLogic:
    steps = [
        Step(
            id=f"S{i}",
            recipe_element_id=draw(identifiers),
            recipe_element_version=draw(st.sampled_from(["", "1", "2.0"])),
            description=draw(optional_text),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    transitions = [
        Transition(
            id=f"T{i}",
            condition=draw(identifiers),
            annotation=draw(st.none() | identifiers),
            description=draw(optional_text),
        )
        for i in range(draw(st.integers(0, 2)))
    ]
    nodes = [s.id for s in steps] + [t.id for t in transitions] or ["S0"]
    ends = st.builds(
        LinkEnd,
        id=st.sampled_from(nodes),
        type=st.sampled_from(["Step", "Transition", "Other"]),
        scope=st.sampled_from(["External", "Internal"]),
    )
    links = [
        Link(
            id=f"L{i}",
            from_ids=draw(st.lists(ends, max_size=2)),
            to_ids=draw(st.lists(ends, max_size=2)),
            link_type=draw(st.sampled_from(["ControlLink", "ParallelDivergent"])),
            depiction=draw(st.sampled_from(["LineAndArrow", "None"])),
            evaluation_order=draw(st.none() | st.integers(0, 9).map(str)),
            description=draw(optional_text),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    return ProcedureLogic(links=links, steps=steps, transitions=transitions)


requirements = st.builds(
    RecipeEquipmentRequirement,
    equipment_class_id=identifiers,
    description=optional_text,
    constraints=st.lists(
        st.builds(Constraint, id=st.none() | identifiers, condition=st.none() | identifiers),
        max_size=2,
    ),
)


def elements(depth: int = 1) -> st.SearchStrategy[RecipeElement]:
    return st.builds(
        RecipeElement,
        id=identifiers,
        element_type=st.sampled_from(["Begin", "End", "Operation", "Phase", "Allocation", "Other"]),
        version=st.none() | identifiers,
        description=optional_text,
        actual_equipment_ids=st.lists(identifiers, max_size=2),
        equipment_requirements=st.lists(requirements, max_size=1),
        parameters=params,
        procedure_logic=st.none() | logics(),
        elements=st.lists(elements(depth - 1), max_size=2) if depth else st.just([]),
    )


equipment_elements = st.builds(
    EquipmentElement,
    id=st.just("") | identifiers,
    element_type=st.sampled_from(["Class", "Element", "Other"]),
    level=st.sampled_from(["ProcessCell", "Unit", "EquipmentModule"]),
    description=optional_text,
    procedural_elements=st.lists(
        st.one_of(
            st.builds(
                EquipmentProceduralElement,
                id=identifiers,
                element_type=st.sampled_from(["Procedure", "Phase"]),
                description=optional_text,
                class_id=identifiers,
            ),
            st.builds(
                EquipmentProceduralElement,
                id=identifiers,
                element_type=st.sampled_from(["Procedure", "Phase"]),
                description=optional_text,
                parameters=params,
            ),
        ),
        max_size=2,
    ),
    connections=st.lists(
        st.builds(
            EquipmentConnection,
            id=identifiers,
            connection_type=st.sampled_from(["MaterialMovement", "Other"]),
            from_equipment_ids=st.lists(identifiers, max_size=2),
            to_equipment_ids=st.lists(identifiers, max_size=2),
        ),
        max_size=2,
    ),
)


@st.composite
def recipes(draw: st.DrawFn) -> Recipe:
    procedure = None
    if draw(st.booleans()):
        procedure = Procedure(
            id="PROC",
            procedure_logic=draw(st.none() | logics()),
            elements=draw(st.lists(elements(0), max_size=1, unique_by=lambda e: e.id)),
            unit_procedures=[
                UnitProcedure(
                    id="UP1",
                    equipment_requirement=draw(st.none() | requirements),
                    elements=draw(
                        st.lists(
                            elements(0).filter(lambda e: e.element_type != "Operation"),
                            max_size=1,
                        )
                    ),
                    operations=[
                        Operation(
                            id="OP1",
                            procedure_logic=draw(st.none() | logics()),
                            elements=draw(
                                st.lists(
                                    elements(0).filter(lambda e: e.element_type != "Phase"),
                                    max_size=1,
                                )
                            ),
                            phases=[Phase(id="PH1", parameters=draw(params))],
                        )
                    ],
                )
            ],
        )
    return Recipe(
        id=draw(identifiers),
        version="1",
        description=draw(optional_text),
        formula=draw(params),
        equipment_requirements=draw(st.lists(requirements, max_size=2)),
        procedure=procedure,
        procedure_logic=draw(st.none() | logics()),
        elements=draw(
            st.lists(elements().filter(lambda e: e.element_type != "Procedure"), max_size=3)
        ),
        # Equal equipment elements are written once (see _recipe_container).
        equipment_elements=draw(st.lists(equipment_elements, max_size=2, unique_by=repr)),
    )


@pytest.mark.parametrize("version", ["V0701", "V0600"])
@EXAMPLES
@given(recipe=recipes())
def test_recipes_round_trip(b2mml: B2MML, version: str, recipe: Recipe) -> None:
    document = b2mml.read(b2mml.write(recipe, version=version))
    assert document.unmapped == []
    assert document.model == recipe
    assert document.binding_of(document.model) is not None


@EXAMPLES
@given(
    recipe_list=st.lists(recipes(), min_size=2, max_size=3),
    shared=st.lists(equipment_elements, max_size=2, unique_by=repr),
)
def test_several_recipes_share_the_equipment_elements(
    b2mml: B2MML, recipe_list: list[Recipe], shared: list[EquipmentElement]
) -> None:
    for recipe in recipe_list:
        recipe.equipment_elements = list(shared)
    document = b2mml.read(b2mml.write(recipe_list, version="V0701"))
    assert document.root == "BatchInformation" and document.models == recipe_list


@pytest.mark.parametrize("version", ["V0701", "V0600"])
@EXAMPLES
@given(recipe=recipes(), batch=st.none() | identifiers)
def test_control_recipes_round_trip(
    b2mml: B2MML, version: str, recipe: Recipe, batch: str | None
) -> None:
    control = recipe.model_copy(update={"recipe_type": RecipeType.CONTROL, "batch_id": batch})
    document = b2mml.read(b2mml.write(control, version=version))
    expected_root = "BatchInformation" if control.equipment_elements else "ControlRecipe"
    assert document.root == expected_root and document.model == control


def test_master_and_control_recipes_share_a_batch_information(b2mml: B2MML) -> None:
    master = Recipe(id="MR-1")
    control = Recipe(id="CR-1", recipe_type=RecipeType.CONTROL, batch_id="B-7")
    document = b2mml.read(b2mml.write([master, control], version="V0701"))
    assert document.root == "BatchInformation" and document.models == [master, control]
    assert document.binding is not None
    assert [c.tag for c in document.binding.children() if not isinstance(c, etree._Element)] == [
        "MasterRecipe",
        "ControlRecipe",
    ]


def test_a_general_recipe_has_no_batchml_element(b2mml: B2MML) -> None:
    with pytest.raises(B2MMLError, match="General recipe has no BatchML"):
        b2mml.write(Recipe(id="G", recipe_type=RecipeType.GENERAL))
    with pytest.raises(B2MMLError, match="only a control recipe carries a batch ID"):
        b2mml.write(Recipe(id="M", batch_id="B-1"))


def test_value_and_target_must_agree() -> None:
    with pytest.raises(ValueError, match="is not the target"):
        FormulaParameter(id="P", target=Decimal(5), value="6")
    assert FormulaParameter(id="P", target=Decimal(500), value="5E2").target == 500


# ------------------------------------------------------------------ schedules

quantities = st.builds(
    Quantity,
    value=decimals,
    unit=units,
    data_type=st.sampled_from(["decimal", "double", "integer"]).filter(bool),
    key=st.none() | identifiers,
).filter(lambda q: q.data_type != "integer" or q.value == q.value.to_integral_value())
data_values = st.builds(
    DataValue,
    id=identifiers,
    value=texts,
    unit=st.none() | identifiers,
    description=optional_text,
    data_type=st.sampled_from(["string", "integer", "duration", "boolean", "dateTime"]),
    key=st.none() | identifiers,
    children=st.lists(
        st.builds(DataValue, id=identifiers, value=texts, data_type=st.just("double")),
        max_size=1,
    ),
)


def material_requirements(version: str) -> st.SearchStrategy[MaterialRequirement]:
    return st.builds(
        MaterialRequirement,
        id=(st.none() | identifiers) if version == "V0701" else st.none(),
        material_class_id=st.none() | identifiers,
        material_definition_id=st.none() | identifiers,
        lot_id=st.none() | identifiers,
        sublot_id=st.none() | identifiers,
        description=optional_text,
        use=st.none() | st.sampled_from(list(MaterialUse)),
        quantity=quantities,
        other_quantities=st.lists(quantities, max_size=2),
    )


def resources(version: str, kind: type) -> st.SearchStrategy:  # type: ignore[type-arg]
    ids = (st.none() | identifiers) if version == "V0701" else st.none()
    if kind is EquipmentRequirement:
        return st.builds(
            EquipmentRequirement,
            id=ids,
            equipment_class_ids=st.lists(identifiers, min_size=1, max_size=2),
            equipment_ids=st.lists(identifiers, max_size=2),
            description=optional_text,
            quantity=st.none() | quantities,
        )
    return st.builds(
        PersonnelRequirement,
        id=ids,
        personnel_class_ids=st.lists(identifiers, max_size=2),
        person_ids=st.lists(identifiers, max_size=2),
        description=optional_text,
        quantity=st.none() | quantities,
    )


def segments(version: str, depth: int = 1) -> st.SearchStrategy[SegmentRequirement]:
    return st.builds(
        SegmentRequirement,
        id=st.none() | identifiers if version == "V0600" else identifiers,
        process_segment_id=identifiers,
        operations_definition_id=erp_ids("OD") if version == "V0701" else st.none(),
        operations_segment_id=erp_ids("OS") if version == "V0701" else st.none(),
        description=optional_text,
        duration=st.none() | st.sampled_from(["PT2H", "P1D"]),
        equipment_ids=st.lists(identifiers, max_size=2),
        equipment=st.lists(resources(version, EquipmentRequirement), max_size=2),
        personnel=st.lists(resources(version, PersonnelRequirement), max_size=2),
        materials=st.lists(material_requirements(version), max_size=2),
        parameters=st.lists(data_values, max_size=2),
        children=st.lists(segments(version, depth - 1), max_size=2) if depth else st.just([]),
    )


def schedules(version: str) -> st.SearchStrategy[OperationsSchedule]:
    return st.builds(
        OperationsSchedule,
        id=identifiers,
        description=optional_text,
        requests=st.lists(
            st.builds(
                OperationsRequest,
                id=identifiers,
                operations_definition_id=identifiers,
                # V0701's OperationsRequest needs a segment requirement.
                segments=st.lists(segments(version), min_size=version == "V0701", max_size=2),
            ),
            min_size=1,  # V0701's OperationsSchedule needs some content after its ID
            max_size=2,
        ),
    )


@pytest.mark.parametrize(
    ("version", "noun"),
    [
        ("V0701", "OperationsSchedule"),
        ("V0600", "OperationsSchedule"),
        ("V0600", "ProductionSchedule"),
    ],
)
@EXAMPLES
@given(data=st.data())
def test_schedules_round_trip(b2mml: B2MML, version: str, noun: str, data: st.DataObject) -> None:
    schedule = data.draw(schedules(version))
    document = b2mml.read(b2mml.write(schedule, version=version, verb="Process", noun=noun))
    assert document.noun == noun
    assert document.model == schedule
    for request in document.model.requests:
        for segment in request.segments:
            node = document.binding_of(segment)
            assert node is not None and node.value("ProcessSegmentID") == segment.process_segment_id


def test_v0600_refuses_an_id_it_cannot_carry(b2mml: B2MML) -> None:
    schedule = OperationsSchedule(
        requests=[
            OperationsRequest(
                id="R1",
                segments=[SegmentRequirement(materials=[MaterialRequirement(id="M-7")])],
            )
        ]
    )
    with pytest.raises(B2MMLError, match="V0600 material requirement has no ID"):
        b2mml.write(schedule, version="V0600", verb="Process", noun="ProductionSchedule")


# ------------------------------------------------------------------ product definitions

material_specs = st.builds(
    MaterialSpecification,
    material_class_id=st.none() | identifiers,
    material_definition_id=st.none() | identifiers,
    use=st.none() | st.sampled_from(list(MaterialUse)),
    quantity=st.none() | quantities,
)


def product_segments(depth: int = 1) -> st.SearchStrategy[ProductSegment]:
    return st.builds(
        ProductSegment,
        id=identifiers,
        description=optional_text,
        duration=st.none() | st.just("PT30M"),
        process_segment_ids=st.lists(identifiers, max_size=2),
        parameters=st.lists(data_values, max_size=2),
        equipment_class_ids=st.lists(identifiers, max_size=2),
        personnel_class_ids=st.lists(identifiers, max_size=2),
        materials=st.lists(material_specs, max_size=2),
        children=st.lists(product_segments(depth - 1), max_size=1) if depth else st.just([]),
    )


definitions = st.builds(
    ProductDefinition,
    id=identifiers,
    version=st.none() | identifiers,
    description=optional_text,
    production_rule=st.none() | identifiers,
    bill_of_materials_id=st.none() | identifiers,
    bill_of_resources_id=st.none() | identifiers,
    segments=st.lists(product_segments(), max_size=2),
)


@EXAMPLES
@given(
    information=st.builds(
        ProductInformation,
        id=st.none() | identifiers,
        definitions=st.lists(definitions, max_size=2),
    )
)
def test_product_information_round_trips(b2mml: B2MML, information: ProductInformation) -> None:
    document = b2mml.read(b2mml.write(information, version="V0600", verb="Sync"))
    assert document.noun == "ProductInformation" and document.model == information
    assert document.unmapped == []


@EXAMPLES
@given(definition=definitions)
def test_product_definition_round_trips(b2mml: B2MML, definition: ProductDefinition) -> None:
    document = b2mml.read(b2mml.write(definition, version="V0600"))
    assert document.root == "ProductDefinition" and document.model == definition
    node = document.binding_of(document.model)
    assert node is not None and node.value("ID") == definition.id


def test_product_definition_is_v0701s_operations_definition(b2mml: B2MML) -> None:
    document = b2mml.read(b2mml.write(ProductDefinition(id="P"), version="V0701"))
    assert document.root == "OperationsDefinition" and document.model == ProductDefinition(id="P")


def test_a_second_description_is_listed_not_dropped(b2mml: B2MML) -> None:
    """Models carry one description; a repeated one is listed in ``unmapped``."""
    from isa95.material import MaterialInformation, MaterialLot

    written = b2mml.write(MaterialInformation(lots=[MaterialLot(id="L1", description="first")]))
    bound = b2mml.read(written, models=False).binding
    assert bound is not None
    lot = bound.one("MaterialLot")
    assert lot is not None
    lot.add("Description", "second")
    document = b2mml.read(b2mml.write(bound))
    assert document.model.lots[0].description == "first"
    assert document.unmapped == ["MaterialInformation/MaterialLot[0]/Description"]
    node = document.binding_of(document.model.lots[0])
    assert node is not None and [d.text for d in node.all("Description")] == ["first", "second"]


def test_a_material_use_the_model_has_no_value_for_is_listed(b2mml: B2MML) -> None:
    schedule = OperationsSchedule(
        id="S1",
        requests=[
            OperationsRequest(
                id="R1",
                segments=[
                    SegmentRequirement(
                        id="SR1",
                        process_segment_id="PS1",
                        materials=[MaterialRequirement(use=MaterialUse.CONSUMED)],
                    )
                ],
            )
        ],
    )
    bound = b2mml.read(b2mml.write(schedule, verb="Process"), models=False).binding
    assert bound is not None
    use = next(e for e in bound.element.iter("{*}MaterialUse"))
    use.text = "Retained Sample"
    document = b2mml.read(b2mml.write(bound))
    (material,) = document.model.requests[0].segments[0].materials
    assert material.use is None
    assert any(p.endswith("MaterialRequirement[0]/MaterialUse") for p in document.unmapped)
    node = document.binding_of(material)
    assert node is not None and node.value("MaterialUse") == "Retained Sample"
