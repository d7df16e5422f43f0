"""General and site recipes (BatchML GRecipe, GRecipeInformation) ↔ isa95.general_recipe:
the real documents in ../shared/b2mml-cases read into models and written back, and
hypothesis: model → schema-valid document → model in V0701 and V0600."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from isa95_strategies import identifiers, texts, times
from lxml import etree
from pydantic import ValidationError
from shared_paths import CASES, cases_dir

from isa95.b2mml.documents import B2MML
from isa95.errors import B2MMLError, DocumentContentError
from isa95.general_recipe import (
    ChartElementType,
    ConstraintType,
    DirectedLink,
    GeneralRecipe,
    GeneralRecipeFormula,
    GeneralRecipeHeader,
    GeneralRecipeInformation,
    GeneralRecipeType,
    HeaderProperty,
    LifeCycleState,
    MaterialList,
    MaterialsType,
    OtherInformation,
    ParameterType,
    ProcedureChartElement,
    ProcessElement,
    ProcessElementLibrary,
    ProcessElementParameter,
    ProcessElementType,
    RecipeMaterial,
    RecipeProduct,
    RecipeValue,
    ResourceConstraint,
    ResourceConstraintLibrary,
    ResourceConstraintProperty,
    SequenceOrder,
)
from isa95.recipe import Recipe, RecipeType

GRECIPES = [
    "rwth-iat-recipeeditor/expectedXml.xml",
    "rwth-iat-recipetool/GeneralRecipeHC.xml",
    "rwth-iat-recipetool/IAT-HC-Beispielrezept.xml",
    "rwth-iat-recipetool/expectedXml.xml",
]


def c14n(data: bytes) -> bytes:
    return bytes(etree.tostring(etree.fromstring(data), method="c14n"))


def content(data: bytes) -> list[tuple[str, str, dict[str, str]]]:
    """Every element (namespace and name), its text and attributes, in document order —
    the document without its layout: indentation, comments and namespace prefixes."""
    found = []
    for element in etree.fromstring(data).iter():
        if not isinstance(element.tag, str):
            continue
        text = element.text or ""
        if len(element) and not text.strip():
            text = ""  # indentation before the first child
        found.append((element.tag, text, dict(element.attrib)))
    return found


def _read(b2mml: B2MML, name: str) -> bytes:
    cases_dir()
    return (CASES / name).read_bytes()


# ------------------------------------------------------------------ the real documents


@pytest.mark.parametrize("name", GRECIPES)
def test_real_general_recipes_round_trip(b2mml: B2MML, name: str) -> None:
    data = _read(b2mml, name)
    document = b2mml.read(data)
    assert document.unmapped == [] and document.normalised == []
    model = document.model
    assert isinstance(model, GeneralRecipe | GeneralRecipeInformation)
    assert document.binding_of(model) is document.binding
    # Read with models, written back as read: C14N-equal, every text as written.
    assert c14n(b2mml.write(document)) == c14n(data)
    # Written from the models: the same elements, texts and attributes (the layout
    # — indentation, comments, prefixes — is the writer's own), and the same models.
    written = b2mml.write(document.models, version=document.version)
    assert content(written) == content(data)
    assert b2mml.read(written).models == document.models


def test_general_recipe_hc_content(b2mml: B2MML) -> None:
    document = b2mml.read(_read(b2mml, GRECIPES[1]))
    information = document.model
    assert isinstance(information, GeneralRecipeInformation)
    assert (information.id, information.descriptions) == ('"GRecipe001"', ['"GeneralRecipe"'])
    (recipe,) = information.recipes
    assert (recipe.id, recipe.recipe_type, recipe.life_cycle_state) == (
        '"GeneralRecipeHC"',
        GeneralRecipeType.GENERAL,
        LifeCycleState.DRAFT,
    )
    assert not recipe.is_site_recipe and recipe.descriptions == []
    formula = recipe.formula
    assert formula is not None and formula.inputs is not None and formula.outputs is not None
    assert formula.inputs.materials_type == MaterialsType.INPUT
    assert [(m.id, m.material_id, m.order, m.amount) for m in formula.inputs.materials] == [
        ('"E001"', '"MAT-E001"', "1", RecipeValue(value='"3/10"')),
        ('"E002"', '"MAT-E002"', "2", RecipeValue(value='"6/10"')),
        ('"E003"', '"MAT-E003"', "3", RecipeValue(value='"1/10"')),
    ]
    assert formula.inputs.materials[0].amount is not None
    assert formula.inputs.materials[0].amount.number is None  # "3/10" is no number
    assert formula.intermediates is None and formula.parameters == []
    procedure = recipe.procedure
    assert procedure is not None and procedure.element_type == ProcessElementType.PROCESS
    assert [m.id for m in procedure.materials] == ['"IE001"', '"IE002"', '"IE003"', '"OP001"']
    assert procedure.materials[0].materials[0] == RecipeMaterial(id='"E001"')
    # The procedure chart: directed links with empty IDs and descriptions, as written.
    assert len(procedure.links) == 6
    assert procedure.links[0] == DirectedLink(
        id="", descriptions=[""], from_id='"IE001"', to_id='"Combining001"'
    )
    assert procedure.successors('"Combining001"') == ['"EnthalpyChange001"']
    operations = procedure.elements
    assert [(e.id, e.element_type) for e in operations] == [
        ('"Combining001"', ProcessElementType.PROCESS_OPERATION),
        ('"EnthalpyChange001"', ProcessElementType.PROCESS_OPERATION),
        ('"Combining002"', ProcessElementType.PROCESS_OPERATION),
    ]
    assert operations[1].other_information == [
        OtherInformation(
            id="http://www.acplt.de/Capability#Changing_the_enthalpy", descriptions=[""]
        )
    ]
    assert recipe.element('"Combining002"') is operations[2]
    assert list(recipe.process_elements(ProcessElementType.PROCESS_OPERATION)) == operations
    assert [e.id for e in recipe.process_elements()] == ['"PP001"'] + [e.id for e in operations]
    # Each model points to its element.
    node = document.binding_of(operations[0])
    assert node is not None and node.tag == "ProcessElement"
    assert node.value("ID") == '"Combining001"'


def test_iat_example_content(b2mml: B2MML) -> None:
    document = b2mml.read(_read(b2mml, GRECIPES[2]))
    recipe = document.model
    assert isinstance(recipe, GeneralRecipe) and recipe.descriptions == [""]
    assert recipe.formula is not None and recipe.formula.intermediates is not None
    assert [m.material_id for m in recipe.formula.intermediates.materials] == [
        "MAT-I001",
        "MAT-I002",
    ]
    procedure = recipe.procedure
    assert procedure is not None
    assert [(link.id, link.from_id, link.to_id) for link in procedure.links][:2] == [
        ("0", "Combining001", "Intermediate001"),
        ("1", "Intermediate001", "Changing_the_enthalpy001"),
    ]
    (other,) = procedure.elements[0].other_information
    assert other.id == "OntologyIRI"
    assert other.values == [
        RecipeValue(
            value="http://www.acplt.de/Capability#Combining",
            data_type="Text",
            unit="url",
            key="Capability_with_Query.Combining",
        )
    ]
    # An element written empty (<Description/>) is kept, and reachable as written.
    node = document.binding_of(recipe)
    assert node is not None and [d.text for d in node.all("Description")] == [None]


def test_what_the_models_do_not_carry_is_listed_and_reachable(b2mml: B2MML) -> None:
    bound = b2mml.read(_read(b2mml, GRECIPES[1]), models=False).binding
    assert bound is not None
    recipe_node = bound.one("Recipe")
    assert recipe_node is not None
    kind = recipe_node.one("GRecipeType")
    assert kind is not None
    kind.set("OtherValue", "pilot")  # an enumeration's OtherValue: no model field
    scope = bound.add("HierarchyScope")
    scope.add("EquipmentID", "Site-1")
    scope.add("EquipmentElementLevel", "Site")
    document = b2mml.read(b2mml.write(bound))
    assert document.unmapped == [
        "GRecipeInformation/HierarchyScope",
        "GRecipeInformation/Recipe[0]/GRecipeType/@OtherValue",
    ]
    recipe = document.model.recipes[0]
    assert recipe.recipe_type == GeneralRecipeType.GENERAL
    node = document.binding_of(recipe)
    assert node is not None
    found = node.one("GRecipeType")
    assert found is not None and found.get("OtherValue") == "pilot"
    assert c14n(b2mml.write(document)) == c14n(b2mml.write(bound))


# ------------------------------------------------------------------ content and errors


def _with_header(b2mml: B2MML, version: str, effective: str) -> bytes:
    recipe = b2mml.new("GRecipe", version)
    recipe.add("ID", "G-1")
    header = recipe.add("Header")
    header.add("Description", "header")
    header.add("EffectiveDate", effective)
    return b2mml.write(recipe)


@pytest.mark.parametrize("version", ["V0701", "V0600"])
def test_naive_dates_are_refused_unless_a_zone_is_assumed(b2mml: B2MML, version: str) -> None:
    data = _with_header(b2mml, version, "2026-03-01T08:00:00")
    with pytest.raises(DocumentContentError, match="no time zone") as info:
        b2mml.read(data)
    assert info.value.path is not None and "EffectiveDate" in str(info.value)
    header = b2mml.read(data, assume_timezone=ZoneInfo("Europe/Helsinki")).model.header
    assert header.effective_date == datetime(2026, 3, 1, 6, tzinfo=UTC)
    with pytest.raises(ValidationError, match="timezone"):
        GeneralRecipeHeader(effective_date=datetime(2026, 3, 1))


def test_header_products_keep_their_own_descriptions(b2mml: B2MML) -> None:
    data = b"""<GRecipe xmlns="http://www.mesa.org/xml/B2MML"><Header>
    <Description>h</Description>
    <ProductID>P-1</ProductID><Description>first</Description>
    <ProductID>P-2</ProductID><Description>second</Description>
    </Header></GRecipe>"""
    assert b2mml.validate(data) == []
    model = b2mml.read(data).model
    assert model.header == GeneralRecipeHeader(
        descriptions=["h"],
        products=[
            RecipeProduct(product_id="P-1", descriptions=["first"]),
            RecipeProduct(product_id="P-2", descriptions=["second"]),
        ],
    )
    assert content(b2mml.write(model)) == content(data)


def test_values_of_a_number_type_must_be_numbers(b2mml: B2MML) -> None:
    recipe = b2mml.new("GRecipe", "V0701")
    value = recipe.add("OtherInformation").add("OtherValue")
    value.add("ValueString", "twelve")
    value.add("DataType", "decimal")
    with pytest.raises(DocumentContentError, match="not a decimal number"):
        b2mml.read(b2mml.write(recipe))
    assert RecipeValue(value="012.50", data_type="decimal").number == Decimal("12.50")
    assert RecipeValue(value="PT5M", data_type="duration").number is None


def test_padded_identifiers_are_read_trimmed_and_noted(b2mml: B2MML) -> None:
    data = b"""<GRecipe xmlns="http://www.mesa.org/xml/B2MML"><ID>G-1 </ID>
      <Header><ProductID> P-1</ProductID></Header>
      <ProcessProcedure><DirectedLink><FromID>A </FromID></DirectedLink></ProcessProcedure>
    </GRecipe>"""
    document = b2mml.read(data)
    recipe = document.model
    assert recipe.id == "G-1" and recipe.header.products[0].product_id == "P-1"
    assert recipe.procedure.links[0].from_id == "A"
    assert document.normalised == [
        "GRecipe/ID: 'G-1 ' read as 'G-1'",
        "GRecipe/Header/ProductID[0]: ' P-1' read as 'P-1'",
        "GRecipe/ProcessProcedure/DirectedLink[0]/FromID: 'A ' read as 'A'",
    ]
    assert c14n(b2mml.write(document)) == c14n(data)  # the binding keeps them as written


def test_a_nil_data_type_is_listed_not_written_empty(b2mml: B2MML) -> None:
    data = b"""<GRecipe xmlns="http://www.mesa.org/xml/B2MML"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
      <OtherInformation><OtherValue><ValueString>x</ValueString>
      <DataType xsi:nil="true"/></OtherValue></OtherInformation></GRecipe>"""
    document = b2mml.read(data)
    assert document.model.other_information[0].values == [RecipeValue(value="x")]
    assert document.unmapped == ["GRecipe/OtherInformation[0]/OtherValue[0]/DataType"]
    assert b2mml.read(b2mml.write(document.model)).model == document.model  # schema-valid
    assert c14n(b2mml.write(document)) == c14n(data)


def test_model_checks() -> None:
    with pytest.raises(ValidationError, match="surrounding whitespace"):
        GeneralRecipe(id=" G-1")
    assert GeneralRecipe(id="").id == ""  # an identifier element written empty
    with pytest.raises(ValidationError, match="before it starts"):
        GeneralRecipeHeader(
            effective_date=datetime(2026, 2, 1, tzinfo=UTC),
            expiration_date=datetime(2026, 1, 1, tzinfo=UTC),
        )
    with pytest.raises(ValidationError, match="appears twice"):
        ProcessElement(id="P", elements=[ProcessElement(id="A"), ProcessElement(id="A")])
    with pytest.raises(ValidationError, match="not a decimal number"):
        RecipeMaterial(order="first")
    with pytest.raises(ValidationError, match="not a decimal number"):
        ProcessElement(sequence_path="1/2")


def test_v0600_refuses_what_only_v0701_has(b2mml: B2MML) -> None:
    nested = GeneralRecipe(
        formula=GeneralRecipeFormula(
            parameters=[ProcessElementParameter(id="P", parameters=[ProcessElementParameter()])]
        )
    )
    with pytest.raises(B2MMLError, match="V0600 has no nested ProcessElementParameter"):
        b2mml.write(nested, version="V0600")
    constant = GeneralRecipe(
        procedure=ProcessElement(
            parameters=[ProcessElementParameter(id="P", parameter_types=[ParameterType.CONSTANT])]
        )
    )
    with pytest.raises(B2MMLError, match="'Constant' is V0701 only"):
        b2mml.write(constant, version="V0600")
    for model in (nested, constant):
        assert b2mml.read(b2mml.write(model, version="V0701")).model == model


def test_site_recipes_and_transactions(b2mml: B2MML) -> None:
    site = GeneralRecipe(id="S-1", recipe_type=GeneralRecipeType.SITE)
    document = b2mml.read(b2mml.write(site, version="V0600"))
    assert document.root == "GRecipe" and document.model.is_site_recipe
    information = GeneralRecipeInformation(
        id="GI-1", published_date=datetime(2026, 1, 1, tzinfo=UTC), recipes=[site]
    )
    document = b2mml.read(b2mml.write(information, verb="Sync"))
    assert (document.root, document.noun) == ("SyncGRecipeInformation", "GRecipeInformation")
    assert document.model == information and document.unmapped == []
    # A master-recipe model of type General is no GRecipe: refused, not converted.
    with pytest.raises(B2MMLError, match="General recipe has no BatchML"):
        b2mml.write(Recipe(id="G", recipe_type=RecipeType.GENERAL))


# ------------------------------------------------------------------ hypothesis

EXAMPLES = settings(max_examples=25, deadline=None)
units = st.none() | st.sampled_from(["kg", "Cel", "url", "%"])
descriptions = st.lists(st.just("") | texts, max_size=2)
element_ids = st.none() | st.just("") | identifiers
NUMBER_TYPES = ["decimal", "double", "integer", "Measure", "Quantity", "Amount", "Numeric"]
OTHER_TYPES = ["Text", "string", "duration", "boolean", "dateTime", "Other"]


@st.composite
def recipe_values(draw: st.DrawFn) -> RecipeValue:
    if draw(st.booleans()):
        value = draw(st.sampled_from(["1", "012.50", "-3.0", "1.5E3", "0", ""]))
        data_type: str | None = draw(st.sampled_from(NUMBER_TYPES))
    else:
        value = draw(st.sampled_from(["3/10", "PT5M", "true", ""]) | texts)
        data_type = draw(st.none() | st.sampled_from(OTHER_TYPES))
    return RecipeValue(
        value=value, data_type=data_type, unit=draw(units), key=draw(st.none() | identifiers)
    )


values = st.lists(recipe_values(), max_size=2)
orders = st.none() | st.sampled_from(["1", "2", "01", "2.50", "-1"])
material_lists = st.builds(
    MaterialList,
    id=element_ids,
    descriptions=descriptions,
    materials_type=st.none() | st.sampled_from(list(MaterialsType)),
    materials=st.lists(
        st.builds(
            RecipeMaterial,
            id=element_ids,
            descriptions=descriptions,
            material_id=element_ids,
            order=orders,
            amount=st.none() | recipe_values(),
        ),
        max_size=2,
    ),
)
constraints = st.builds(
    ResourceConstraint,
    id=element_ids,
    descriptions=descriptions,
    constraint_types=st.lists(st.sampled_from(list(ConstraintType)), max_size=2),
    life_cycle_state=st.none() | st.sampled_from(list(LifeCycleState)),
    ranges=values,
    properties=st.lists(
        st.builds(
            ResourceConstraintProperty,
            id=st.just("") | identifiers,
            descriptions=descriptions,
            values=values,
        ),
        max_size=2,
    ),
)
others = st.builds(OtherInformation, id=element_ids, descriptions=descriptions, values=values)


def parameters(version: str, depth: int = 1) -> st.SearchStrategy[ProcessElementParameter]:
    kinds = list(ParameterType)
    if version == "V0600":
        kinds = [k for k in kinds if k.value not in ("Constant", "Equation", "Reference")]
    nested = (
        st.just([])
        if version == "V0600" or not depth
        else st.lists(parameters(version, depth - 1), max_size=2)
    )
    return st.builds(
        ProcessElementParameter,
        id=element_ids,
        descriptions=descriptions,
        parameter_types=st.lists(st.sampled_from(kinds), max_size=2),
        parameters=nested,
        values=values,
    )


def elements(version: str, depth: int) -> st.SearchStrategy[ProcessElement]:
    children = (
        st.lists(elements(version, depth - 1), max_size=2, unique_by=lambda e: e.id or object())
        if depth
        else st.just([])
    )
    return st.builds(
        ProcessElement,
        id=element_ids,
        descriptions=descriptions,
        element_type=st.none() | st.sampled_from(list(ProcessElementType)),
        life_cycle_state=st.none() | st.sampled_from(list(LifeCycleState)),
        sequence_order=st.none() | st.sampled_from(list(SequenceOrder)),
        sequence_path=orders,
        materials=st.lists(material_lists, max_size=2),
        links=st.lists(
            st.builds(
                DirectedLink,
                id=element_ids,
                descriptions=descriptions,
                from_id=element_ids,
                to_id=element_ids,
            ),
            max_size=2,
        ),
        chart_elements=st.lists(
            st.builds(
                ProcedureChartElement,
                id=element_ids,
                label=st.none() | texts,
                descriptions=descriptions,
                element_type=st.none() | st.sampled_from(list(ChartElementType)),
            ),
            max_size=2,
        ),
        elements=children,
        parameters=st.lists(parameters(version), max_size=2),
        resource_constraints=st.lists(constraints, max_size=1),
        other_information=st.lists(others, max_size=1),
    )


@st.composite
def headers(draw: st.DrawFn) -> GeneralRecipeHeader:
    dates = sorted(draw(st.lists(times, min_size=2, max_size=2)))
    effective = dates[0] if draw(st.booleans()) else None
    expiration = dates[1] if draw(st.booleans()) else None
    return GeneralRecipeHeader(
        descriptions=draw(descriptions),
        derived_from_id=draw(element_ids),
        products=draw(
            st.lists(
                st.builds(
                    RecipeProduct,
                    product_id=st.just("") | identifiers,
                    descriptions=descriptions,
                    product_name=st.none() | texts,
                    batch_size=st.none() | recipe_values(),
                ),
                max_size=3,
            )
        ),
        effective_date=effective,
        expiration_date=expiration,
        header_property=draw(
            st.none()
            | st.builds(
                HeaderProperty,
                id=st.just("") | identifiers,
                descriptions=descriptions,
                values=values,
            )
        ),
    )


def general_recipes(version: str) -> st.SearchStrategy[GeneralRecipe]:
    return st.builds(
        GeneralRecipe,
        id=element_ids,
        descriptions=descriptions,
        recipe_type=st.none() | st.sampled_from(list(GeneralRecipeType)),
        life_cycle_state=st.none() | st.sampled_from(list(LifeCycleState)),
        header=st.none() | headers(),
        formula=st.none()
        | st.builds(
            GeneralRecipeFormula,
            descriptions=descriptions,
            inputs=st.none() | material_lists,
            outputs=st.none() | material_lists,
            intermediates=st.none() | material_lists,
            parameters=st.lists(parameters(version), max_size=2),
        ),
        procedure=st.none() | elements(version, 2),
        resource_constraints=st.lists(constraints, max_size=2),
        other_information=st.lists(others, max_size=2),
    )


@pytest.mark.parametrize("version", ["V0701", "V0600"])
@EXAMPLES
@given(data=st.data())
def test_general_recipes_round_trip(b2mml: B2MML, version: str, data: st.DataObject) -> None:
    recipe = data.draw(general_recipes(version))
    written = b2mml.write(recipe, version=version)  # validated against the XSD
    document = b2mml.read(written)
    assert document.root == "GRecipe" and document.unmapped == []
    assert document.model == recipe
    assert document.binding_of(document.model) is document.binding


@pytest.mark.parametrize("version", ["V0701", "V0600"])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_general_recipe_information_round_trips(
    b2mml: B2MML, version: str, data: st.DataObject
) -> None:
    information = GeneralRecipeInformation(
        id=data.draw(element_ids),
        descriptions=data.draw(descriptions),
        published_date=data.draw(st.none() | times),
        recipes=data.draw(st.lists(general_recipes(version), max_size=2)),
    )
    verb = data.draw(st.none() | st.sampled_from(["Process", "Sync", "Show"]))
    document = b2mml.read(b2mml.write(information, version=version, verb=verb))
    assert document.unmapped == [] and document.models == [information]


@pytest.mark.parametrize("version", ["V0701", "V0600"])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_libraries_and_bare_elements_round_trip(
    b2mml: B2MML, version: str, data: st.DataObject
) -> None:
    elements_library = ProcessElementLibrary(
        id=data.draw(element_ids),
        descriptions=data.draw(descriptions),
        published_date=data.draw(st.none() | times),
        elements=data.draw(st.lists(elements(version, 1), max_size=2)),
    )
    constraints_library = ResourceConstraintLibrary(
        id=data.draw(element_ids),
        descriptions=data.draw(descriptions),
        published_date=data.draw(st.none() | times),
        constraints=data.draw(st.lists(constraints, max_size=2)),
    )
    verb = data.draw(st.none() | st.sampled_from(["Process", "Sync", "Show"]))
    for model, root in (
        (elements_library, "ProcessElementLibrary"),
        (constraints_library, "ResourceConstraintLibrary"),
    ):
        document = b2mml.read(b2mml.write(model, version=version, verb=verb))
        assert document.noun == root and document.unmapped == []
        assert document.models == [model]
    element = data.draw(elements(version, 1))
    constraint = data.draw(constraints)
    for bare, root in ((element, "ProcessElement"), (constraint, "ResourceConstraint")):
        document = b2mml.read(b2mml.write(bare, version=version))
        assert (document.root, document.unmapped) == (root, [])
        assert document.model == bare
