"""V0701 OperationsDefinitionInformation / OperationsDefinition mapped into the product
definition models (the ones V0600's ProductInformation / ProductDefinition fill), and
written back through the bindings.

No document in the shared third-party cases holds these nouns: the tests use hand-built
documents (validated by every read) and hypothesis — model → document → model in both
releases, and random schema-valid V0701 documents read into models.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from b2mml_instances import instance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa95_strategies import decimals, identifiers, optional_text, texts

from isa95.b2mml.documents import B2MML, release
from isa95.b2mml.mapping.definitions import _definition_from_tree as _v0701_definition
from isa95.b2mml.mapping.products import _definition_from_tree as _v0600_definition
from isa95.common import Quantity
from isa95.errors import B2MMLError, DocumentContentError
from isa95.operations import (
    DataValue,
    MaterialSpecification,
    MaterialUse,
    ProductDefinition,
    ProductInformation,
    ProductSegment,
)

EXAMPLES = settings(max_examples=25, deadline=None)

quantities = st.builds(
    Quantity,
    value=decimals,
    unit=st.none() | st.sampled_from(["kg", "L"]),
    data_type=st.sampled_from(["decimal", "double"]),
    key=st.none() | identifiers,
)
data_values = st.builds(
    DataValue,
    id=identifiers,
    value=texts,
    unit=st.none() | identifiers,
    description=optional_text,
    data_type=st.sampled_from(["string", "integer", "duration", "boolean"]),
    key=st.none() | identifiers,
    children=st.lists(st.builds(DataValue, id=identifiers, value=texts), max_size=1),
)
material_specs = st.builds(
    MaterialSpecification,
    material_class_id=st.none() | identifiers,
    material_definition_id=st.none() | identifiers,
    use=st.none() | st.sampled_from(list(MaterialUse)),
    quantity=st.none() | quantities,
)


def segments(depth: int = 1) -> st.SearchStrategy[ProductSegment]:
    return st.builds(
        ProductSegment,
        id=identifiers,
        description=optional_text,
        duration=st.none() | st.sampled_from(["PT30M", "P1DT2H"]),
        process_segment_ids=st.lists(identifiers, max_size=2),
        parameters=st.lists(data_values, max_size=2),
        equipment_class_ids=st.lists(identifiers, max_size=2),
        personnel_class_ids=st.lists(identifiers, max_size=2),
        materials=st.lists(material_specs, max_size=2),
        children=st.lists(segments(depth - 1), max_size=1) if depth else st.just([]),
    )


published = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
definitions = st.builds(
    ProductDefinition,
    id=identifiers,
    version=st.none() | identifiers,
    description=optional_text,
    published=published,
    production_rule=st.none(),  # V0600 only (see the refusal below)
    bill_of_materials_id=st.none() | identifiers,
    bill_of_resources_id=st.none() | identifiers,
    segments=st.lists(segments(), max_size=2),
)
informations = st.builds(
    ProductInformation,
    id=identifiers,
    description=optional_text,
    published=published,
    definitions=st.lists(definitions, max_size=2),
)


@EXAMPLES
@pytest.mark.parametrize("version", ["V0701", "V0600"])
@given(information=informations)
def test_product_information_round_trips_in_both_releases(
    b2mml: B2MML, version: str, information: ProductInformation
) -> None:
    document = b2mml.read(b2mml.write(information, version=version, verb="Sync"))
    noun = "OperationsDefinitionInformation" if version == "V0701" else "ProductInformation"
    assert document.noun == noun and document.model == information
    assert document.unmapped == []
    node = document.binding_of(document.model)
    assert node is not None and node.value("ID") == information.id


@EXAMPLES
@pytest.mark.parametrize("verb", ["Process", "Show", "Change", "Get"])
@given(definition=definitions)
def test_v0701_operations_definition_round_trips(
    b2mml: B2MML, verb: str, definition: ProductDefinition
) -> None:
    bare = b2mml.read(b2mml.write(definition, version="V0701"))
    assert bare.root == "OperationsDefinition" and bare.model == definition
    assert bare.unmapped == []
    wrapped = b2mml.read(
        b2mml.write(ProductInformation(id="I", definitions=[definition]), verb=verb)
    )
    assert wrapped.root == f"{verb}OperationsDefinitionInformation"
    assert wrapped.model.definitions == [definition]
    for segment in definition.segments:
        node = bare.binding_of(next(s for s in bare.model.segments if s == segment))
        assert node is not None and node.tag == "OperationsSegment"


def test_v0701_refuses_what_it_cannot_carry(b2mml: B2MML) -> None:
    with pytest.raises(B2MMLError, match="no ProductProductionRule"):
        b2mml.write(ProductDefinition(id="P", production_rule="R"), version="V0701")
    with pytest.raises(B2MMLError, match="requires an ID"):
        b2mml.write(ProductInformation(definitions=[ProductDefinition(id="P")]), verb="Sync")
    # V0600 still has both.
    b2mml.write(ProductDefinition(id="P", production_rule="R"), version="V0600")
    b2mml.write(ProductInformation(definitions=[ProductDefinition(id="P")]), version="V0600")


NS = "http://www.mesa.org/xml/B2MML"
HAND_BUILT = f"""<?xml version="1.0" encoding="UTF-8"?>
<SyncOperationsDefinitionInformation xmlns="{NS}" releaseID="1.0">
  <ApplicationArea><CreationDateTime>2026-12-03T08:00:00Z</CreationDateTime></ApplicationArea>
  <DataArea>
    <Sync/>
    <OperationsDefinitionInformation>
      <ID>ODI-1</ID>
      <HierarchyScope><EquipmentID>SITE-A</EquipmentID><EquipmentElementLevel>Site</EquipmentElementLevel></HierarchyScope>
      <PublishedDate>2026-11-30T10:00:00Z</PublishedDate>
      <OperationsDefinition>
        <ID>TABLET-10MG</ID>
        <Description>Tablet 10 mg</Description>
        <Version>3</Version>
        <OperationsType>Production</OperationsType>
        <OperationsSegment>
          <ID>GRANULATE</ID>
          <Duration>PT2H</Duration>
          <ProcessSegmentID>PS-GRAN</ProcessSegmentID>
          <ParameterSpecification>
            <ID>SPEED</ID>
            <Value><ValueString>120</ValueString><DataType>integer</DataType><UnitOfMeasure>rpm</UnitOfMeasure></Value>
          </ParameterSpecification>
          <PersonnelSpecification><ID>P0</ID><PersonnelClassID>OPERATOR</PersonnelClassID></PersonnelSpecification>
          <PersonnelSpecification><ID>QA</ID><PersonID>jdoe</PersonID></PersonnelSpecification>
          <EquipmentSpecification><ID>GRAN-1</ID><EquipmentClassID>GRANULATOR</EquipmentClassID></EquipmentSpecification>
          <MaterialSpecification>
            <ID>M0</ID>
            <MaterialDefinitionID>API-7</MaterialDefinitionID>
            <MaterialUse>Consumed</MaterialUse>
            <Quantity><QuantityString>10.50</QuantityString><DataType>decimal</DataType><UnitOfMeasure>kg</UnitOfMeasure></Quantity>
          </MaterialSpecification>
          <MaterialSpecification>
            <ID>M1</ID>
            <MaterialDefinitionID>SAMPLE</MaterialDefinitionID>
            <MaterialUse>Destructive Sample</MaterialUse>
          </MaterialSpecification>
          <OperationsSegmentChild><ID>DRY</ID></OperationsSegmentChild>
        </OperationsSegment>
        <BillOfMaterialsID>BOM-1</BillOfMaterialsID>
        <BillOfMaterialsID>BOM-2</BillOfMaterialsID>
      </OperationsDefinition>
      <OperationsMaterialBill><ID>OMB-1</ID></OperationsMaterialBill>
    </OperationsDefinitionInformation>
  </DataArea>
</SyncOperationsDefinitionInformation>
""".encode()


def test_a_hand_built_document_maps_and_keeps_the_rest_on_the_binding(b2mml: B2MML) -> None:
    document = b2mml.read(HAND_BUILT)  # validated against the V0701 XSDs
    information = document.model
    assert isinstance(information, ProductInformation)
    assert information.id == "ODI-1"
    assert information.published == datetime(2026, 11, 30, 10, tzinfo=UTC)
    (definition,) = information.definitions
    assert (definition.id, definition.version, definition.description) == (
        "TABLET-10MG",
        "3",
        "Tablet 10 mg",
    )
    assert definition.bill_of_materials_id == "BOM-1"
    (segment,) = definition.segments
    assert segment.duration == "PT2H" and segment.process_segment_ids == ["PS-GRAN"]
    assert segment.parameters == [
        DataValue(id="SPEED", value="120", unit="rpm", data_type="integer")
    ]
    assert segment.personnel_class_ids == ["OPERATOR"]
    assert segment.equipment_class_ids == ["GRANULATOR"]
    assert segment.materials[0] == MaterialSpecification(
        material_definition_id="API-7",
        use=MaterialUse.CONSUMED,
        quantity=Quantity(value=Decimal("10.50"), unit="kg"),
    )
    assert segment.materials[1].use is None  # not in the model's enumeration: listed
    assert [c.id for c in segment.children] == ["DRY"]
    base = "SyncOperationsDefinitionInformation/DataArea/OperationsDefinitionInformation[0]"
    seg = f"{base}/OperationsDefinition[0]/OperationsSegment[0]"
    assert sorted(document.unmapped) == sorted(
        [
            f"{base}/HierarchyScope",
            f"{base}/OperationsMaterialBill",
            f"{base}/OperationsDefinition[0]/OperationsType",
            f"{base}/OperationsDefinition[0]/BillOfMaterialsID",  # a second one
            f"{seg}/PersonnelSpecification[1]/ID",
            f"{seg}/PersonnelSpecification[1]/PersonID",
            f"{seg}/EquipmentSpecification[0]/ID",  # not the E0 the writer makes
            f"{seg}/MaterialSpecification[1]/MaterialUse",
        ]
    )
    # Everything the models do not carry is one call away.
    node = document.binding_of(definition)
    assert node is not None and node.value("OperationsType") == "Production"
    assert [b.text for b in node.all("BillOfMaterialsID")] == ["BOM-1", "BOM-2"]
    info_node = document.binding_of(information)
    assert info_node is not None and info_node.one("OperationsMaterialBill") is not None
    seg_node = document.binding_of(segment)
    assert seg_node is not None
    assert seg_node.all("PersonnelSpecification")[1].value("PersonID") == "jdoe"
    sample = document.binding_of(segment.materials[1])
    assert sample is not None and sample.value("MaterialUse") == "Destructive Sample"
    # The document as read writes back byte-faithfully through its binding.
    assert b2mml.write(document) == b2mml.write_binding(document.binding)  # type: ignore[arg-type]


def test_a_naive_published_date_is_refused_unless_a_zone_is_assumed(b2mml: B2MML) -> None:
    naive = HAND_BUILT.replace(b"2026-11-30T10:00:00Z", b"2026-11-30T10:00:00")
    with pytest.raises(DocumentContentError, match="PublishedDate"):
        b2mml.read(naive)
    document = b2mml.read(naive, assume_timezone=UTC)
    assert document.model.published == datetime(2026, 11, 30, 10, tzinfo=UTC)


@pytest.mark.parametrize("root", ["OperationsDefinitionInformation", "OperationsDefinition"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_schema_valid_documents_map_or_are_refused_clearly(
    b2mml: B2MML, root: str, data: st.DataObject
) -> None:
    """Any valid V0701 document maps (and its model writes back to the same model), or is
    refused with DocumentContentError (an identifier or number the models refuse)."""
    xml = data.draw(instance(release("V0701"), root))
    try:
        document = b2mml.read(xml, assume_timezone=UTC)
    except DocumentContentError:
        return  # e.g. an identifier with blanks the models refuse, a Quantity not a number
    model = document.model
    assert isinstance(model, (ProductInformation, ProductDefinition))
    again = b2mml.read(b2mml.write(model, version="V0701"))
    assert again.model == model and again.unmapped == []


def test_padded_identifiers_are_read_trimmed_and_noted(b2mml: B2MML) -> None:
    padded = HAND_BUILT.replace(b"<Version>3</Version>", b"<Version>3 </Version>").replace(
        b"<ProcessSegmentID>PS-GRAN<", b"<ProcessSegmentID>PS-GRAN  <"
    )
    document = b2mml.read(padded)
    (definition,) = document.model.definitions
    assert definition.version == "3"
    assert definition.segments[0].process_segment_ids == ["PS-GRAN"]
    assert len(document.normalised) == 2
    assert document.normalised[0].endswith("/Version: '3 ' read as '3'")
    assert "OperationsSegment[0]/ProcessSegmentID[0]: 'PS-GRAN  '" in document.normalised[1]
    node = document.binding_of(definition)
    assert node is not None and node.value("Version") == "3 "  # as written


@pytest.mark.parametrize(
    ("version", "information", "definition"),
    [
        ("V0600", "ProductInformation", "ProductDefinition"),
        ("V0701", "OperationsDefinitionInformation", "OperationsDefinition"),
    ],
)
def test_each_release_reads_definitions_under_its_own_names(
    b2mml: B2MML, version: str, information: str, definition: str
) -> None:
    """One reader serves both releases: its element names, Version and production rule
    are each release's own."""
    v0600 = version == "V0600"
    model = ProductInformation(
        id="I-1",
        published=datetime(2026, 11, 29, 10, tzinfo=UTC),
        definitions=[
            ProductDefinition(
                id="D-1",
                version="3",
                production_rule="R-1" if v0600 else None,
                published=datetime(2026, 11, 30, 10, tzinfo=UTC),
                segments=[ProductSegment(id="S-1", children=[ProductSegment(id="S-2")])],
            )
        ],
    )
    data = b2mml.write(model, version=version, verb="Sync")
    document = b2mml.read(data)
    assert document.model == model and document.unmapped == []
    (read,) = document.model.definitions
    assert ("production_rule" in read.model_fields_set) is v0600  # V0701 leaves it unset
    place = f"{information}[0]/{definition}[0]"
    padded = data.replace(b"<Version>3</Version>", b"<Version>3 </Version>")
    if v0600:  # an identifier there, refused with blanks
        with pytest.raises(DocumentContentError, match=rf"{re.escape(place)} .*identifier '3 '"):
            b2mml.read(padded)
    else:  # an IdentifierType: trimmed and noted
        again = b2mml.read(padded)
        assert again.model == model
        assert again.normalised == [f"Sync{information}/DataArea/{place}/Version: '3 ' read as '3'"]
    naive = data.replace(b"2026-11-30T10:00:00Z", b"2026-11-30T10:00:00")
    with pytest.raises(DocumentContentError, match=rf"{re.escape(place)} 'D-1' .*/PublishedDate"):
        b2mml.read(naive)
    # A tree read without a document (no path) is named by its release's element.
    reader = _v0600_definition if v0600 else _v0701_definition
    with pytest.raises(DocumentContentError, match=rf"^<{definition}> 'D-1'/PublishedDate"):
        reader({"ID": "D-1", "PublishedDate": "2026-11-30T10:00:00"}, version)
