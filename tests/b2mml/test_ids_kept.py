"""Identifiers an ERP sends are kept by the models (issue 17): read a document, write
the model back, and the ERP's value is written — not one the writer derives. Where the
model cannot carry something, ``unmapped`` lists it; absent elements stay absent."""

from __future__ import annotations

from datetime import UTC

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa95_strategies import data_values_any, properties_any
from lxml import etree

from isa95.b2mml.documents import B2MML
from isa95.common import Property
from isa95.equipment import EquipmentClass, EquipmentInformation
from isa95.errors import B2MMLError
from isa95.operations import (
    DataValue,
    OperationsPerformance,
    OperationsResponse,
    PersonnelActual,
    ProcessSegment,
    ProcessSegmentInformation,
    SegmentResponse,
)

V7 = "http://www.mesa.org/xml/B2MML"
V6 = "http://www.mesa.org/xml/B2MML-V0600"


def texts(data: bytes, path: str, ns: str = V7) -> list[str]:
    """Texts of the elements at ``path`` (``/``-separated local names below the root)."""
    xpath = "/".join(f"b:{step}" for step in path.split("/"))
    return [e.text or "" for e in etree.fromstring(data).iterfind(xpath, {"b": ns})]


def back(b2mml: B2MML, data: bytes) -> tuple[bytes, list[str]]:
    document = b2mml.read(data, assume_timezone=UTC)
    model = document.models[0] if len(document.models) == 1 else document.models
    return b2mml.write(model, version=document.version), document.unmapped


SCHEDULE = f"""<OperationsSchedule xmlns="{V7}"><ID>S</ID><OperationsRequest><ID>R</ID>
<SegmentRequirement><ID>SR1</ID><ProcessSegmentID>PS1</ProcessSegmentID>
<OperationsDefinitionID>OD1</OperationsDefinitionID><OperationsSegmentID>OS1</OperationsSegmentID>
<SegmentRequirementChild><ID>SR1.1</ID><ProcessSegmentID>PS2</ProcessSegmentID>
<OperationsDefinitionID>OD2</OperationsDefinitionID><OperationsSegmentID>OS2</OperationsSegmentID>
</SegmentRequirementChild></SegmentRequirement></OperationsRequest></OperationsSchedule>"""


def test_segment_requirement_keeps_its_operations_definition_and_segment(b2mml: B2MML) -> None:
    written, unmapped = back(b2mml, SCHEDULE.encode())
    seg = "OperationsRequest/SegmentRequirement"
    assert texts(written, f"{seg}/OperationsDefinitionID") == ["OD1"]
    assert texts(written, f"{seg}/OperationsSegmentID") == ["OS1"]
    assert texts(written, f"{seg}/SegmentRequirementChild/OperationsDefinitionID") == ["OD2"]
    assert texts(written, f"{seg}/SegmentRequirementChild/OperationsSegmentID") == ["OS2"]
    assert unmapped == []


def test_derived_operations_ids_stay_derived(b2mml: B2MML) -> None:
    """What the writer would derive reads as None, so a model edit re-derives it."""
    data = SCHEDULE.replace("OD1", "R").replace("OS1", "PS1").encode()
    document = b2mml.read(data, assume_timezone=UTC)
    segment = document.model.requests[0].segments[0]
    assert segment.operations_definition_id is None and segment.operations_segment_id is None
    assert segment.children[0].operations_definition_id == "OD2"


def test_v0600_refuses_operations_ids_it_cannot_carry(b2mml: B2MML) -> None:
    document = b2mml.read(SCHEDULE.encode(), assume_timezone=UTC)
    with pytest.raises(B2MMLError, match="OperationsDefinitionID"):
        b2mml.write(document.model, version="V0600")


PERFORMANCE = f"""<OperationsPerformance xmlns="{V7}"><ID>P</ID><OperationsResponse><ID>RESP</ID>
<SegmentResponse><ID>SEG</ID>
<PersonnelActual><ID>ERP-CONF-0001</ID><PersonID>JDOE</PersonID></PersonnelActual>
<EquipmentActual><ID>ERP-EQ-77</ID><EquipmentID>R-101</EquipmentID></EquipmentActual>
<MaterialActual><ID>GI-4711-0001</ID><MaterialDefinitionID>M</MaterialDefinitionID>
<MaterialLotID>L1</MaterialLotID><MaterialUse>Consumed</MaterialUse></MaterialActual>
</SegmentResponse></OperationsResponse></OperationsPerformance>"""


def test_actuals_keep_their_ids(b2mml: B2MML) -> None:
    written, unmapped = back(b2mml, PERFORMANCE.encode())
    seg = "OperationsResponse/SegmentResponse"
    assert texts(written, f"{seg}/PersonnelActual/ID") == ["ERP-CONF-0001"]
    assert texts(written, f"{seg}/EquipmentActual/ID") == ["ERP-EQ-77"]
    assert texts(written, f"{seg}/MaterialActual/ID") == ["GI-4711-0001"]
    assert unmapped == []


def test_actuals_without_ids_get_derived_ones_in_v0701_and_none_in_v0600(b2mml: B2MML) -> None:
    model = OperationsPerformance(
        id="P",
        responses=[
            OperationsResponse(
                id="R",
                segments=[SegmentResponse(id="S", personnel=[PersonnelActual(person_id="J")])],
            )
        ],
    )
    written = b2mml.write(model, version="V0701")
    assert texts(written, "OperationsResponse/SegmentResponse/PersonnelActual/ID") == ["P0"]
    assert b2mml.read(written).model == model
    keyed = model.model_copy(deep=True)
    keyed.responses[0].segments[0].personnel[0].id = "ERP-1"
    with pytest.raises(B2MMLError, match="ERP-1"):
        b2mml.write(keyed, version="V0600", verb="Process", noun="ProductionPerformance")


SEGMENT = f"""<ProcessSegment xmlns="{V7}"><ID>PS</ID>
<PersonnelSegmentSpecification><ID>SPEC-A</ID><PersonnelClassID>Operator</PersonnelClassID>
</PersonnelSegmentSpecification>
<EquipmentSegmentSpecification><ID>EQ-A</ID><EquipmentClassID>Reactor</EquipmentClassID>
</EquipmentSegmentSpecification>
<MaterialSegmentSpecification><ID>BOM-ITEM-0010</ID><MaterialDefinitionID>M</MaterialDefinitionID>
<MaterialUse>Consumed</MaterialUse></MaterialSegmentSpecification></ProcessSegment>"""


def test_process_segment_specifications_keep_their_ids(b2mml: B2MML) -> None:
    written, unmapped = back(b2mml, SEGMENT.encode())
    assert texts(written, "PersonnelSegmentSpecification/ID") == ["SPEC-A"]
    assert texts(written, "EquipmentSegmentSpecification/ID") == ["EQ-A"]
    assert texts(written, "MaterialSegmentSpecification/ID") == ["BOM-ITEM-0010"]
    assert unmapped == []


def test_v0600_equipment_level_keeps_its_equipment_id(b2mml: B2MML) -> None:
    data = (
        f'<EquipmentInformation xmlns="{V6}"><Equipment><ID>E1</ID><EquipmentLevel>'
        "<EquipmentID>AREA-1 </EquipmentID><EquipmentElementLevel>ProductionUnit"
        "</EquipmentElementLevel></EquipmentLevel></Equipment></EquipmentInformation>"
    ).encode()
    document = b2mml.read(data)
    written = b2mml.write(document.model, version="V0600")
    # the blank an ERP pads with is dropped by the models and recorded as such
    assert texts(written, "Equipment/EquipmentLevel/EquipmentID", V6) == ["AREA-1"]
    assert any("EquipmentLevel/EquipmentID" in n for n in document.normalised)
    assert document.unmapped == []
    with pytest.raises(B2MMLError, match="AREA-1"):
        b2mml.write(document.model, version="V0701")
    own = b2mml.read(data.replace(b"AREA-1 ", b"E1"))
    assert own.model.equipment[0].level_equipment_id is None
    own.model.id = "I"  # V0701 needs an ID first
    assert b2mml.write(own.model, version="V0701")  # nothing V0701 cannot carry


FORMULA = f"""<MasterRecipe xmlns="{V7}"><ID>MR</ID><Version>2</Version><Formula>
<Parameter><ID>TEMP</ID><ParameterType>ProcessParameter</ParameterType>
<Value><ValueString>5</ValueString><DataInterpretation>Constant</DataInterpretation>
<DataType>decimal</DataType><UnitOfMeasure>Cel</UnitOfMeasure></Value>
<Parameter><ID>QM-CHAR-0815-LSL</ID><ParameterType>ProcessInput</ParameterType>
<ParameterSubType>LowLimit</ParameterSubType><Value><ValueString>4</ValueString>
<DataInterpretation>Constant</DataInterpretation><DataType>decimal</DataType>
<UnitOfMeasure>Cel</UnitOfMeasure></Value></Parameter>
<Parameter><ID>TEMP.x</ID><ParameterType>ProcessParameter</ParameterType>
<ParameterSubType>Other</ParameterSubType></Parameter>
</Parameter></Formula></MasterRecipe>"""


def test_formula_limits_keep_their_id_and_parameter_type(b2mml: B2MML) -> None:
    written, unmapped = back(b2mml, FORMULA.encode())
    limit = "Formula/Parameter/Parameter"
    assert texts(written, f"{limit}/ID") == ["QM-CHAR-0815-LSL"]
    assert texts(written, f"{limit}/ParameterType") == ["ProcessInput"]
    assert texts(written, f"{limit}/ParameterSubType") == ["LowLimit"]
    # the nested parameter that is no limit is not in the model: listed whole, subtype too
    other = "MasterRecipe/Formula/Parameter[0]/Parameter[1]"
    assert f"{other}/ParameterSubType" in unmapped and f"{other}/ID" in unmapped


def test_formula_limit_written_otherwise_is_listed(b2mml: B2MML) -> None:
    """A limit the writer would not write back the same (text, DataType) is listed."""
    data = FORMULA.replace("<ValueString>4</ValueString>", "<ValueString>04</ValueString>")
    document = b2mml.read(data.encode())
    assert "MasterRecipe/Formula/Parameter[0]/Parameter[0]/Value" in document.unmapped
    assert document.model.formula[0].low == 4


@pytest.mark.parametrize(("version", "ns"), [("V0701", V7), ("V0600", V6)])
@pytest.mark.parametrize("root", ["MasterRecipe", "ControlRecipe"])
def test_a_recipe_without_version_is_written_without_one(
    b2mml: B2MML, version: str, ns: str, root: str
) -> None:
    written, unmapped = back(b2mml, f'<{root} xmlns="{ns}"><ID>R-1</ID></{root}>'.encode())
    assert texts(written, "Version", ns) == [] and unmapped == []
    document = b2mml.read(written)
    assert document.model.version == "1"  # the default, as before
    document.model.version = "2"  # a version set on the model is written
    assert texts(b2mml.write(document.model, version=version), "Version", ns) == ["2"]


def test_a_property_value_without_data_type_is_written_without_one(b2mml: B2MML) -> None:
    data = (
        f'<EquipmentInformation xmlns="{V7}"><ID>I</ID><EquipmentClass><ID>C</ID>'
        "<EquipmentClassProperty><ID>P</ID><Value><ValueString>0</ValueString></Value>"
        "</EquipmentClassProperty></EquipmentClass></EquipmentInformation>"
    ).encode()
    written, unmapped = back(b2mml, data)
    value = "EquipmentClass/EquipmentClassProperty/Value"
    assert texts(written, f"{value}/ValueString") == ["0"]
    assert texts(written, f"{value}/DataType") == [] and unmapped == []


def test_a_parameter_without_value_is_written_without_one(b2mml: B2MML) -> None:
    data = SCHEDULE.replace(
        "<SegmentRequirementChild>",
        "<SegmentParameter><ID>SP</ID></SegmentParameter>"
        "<SegmentParameter><ID>SQ</ID><Value><ValueString>1</ValueString></Value>"
        "</SegmentParameter><SegmentRequirementChild>",
    ).encode()
    written, unmapped = back(b2mml, data)
    seg = "OperationsRequest/SegmentRequirement/SegmentParameter"
    assert texts(written, f"{seg}/ID") == ["SP", "SQ"]
    assert texts(written, f"{seg}/Value/ValueString") == ["1"]  # SP has no Value
    assert texts(written, f"{seg}/Value/DataType") == [] and unmapped == []


@pytest.mark.parametrize("version", ["V0701", "V0600"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parameters=st.lists(data_values_any, max_size=3),
    props=st.lists(properties_any, max_size=3),
)
def test_absent_values_and_data_types_round_trip(
    b2mml: B2MML, version: str, parameters: list[DataValue], props: list[Property]
) -> None:
    segments = ProcessSegmentInformation(
        id="I", segments=[ProcessSegment(id="PS", parameters=parameters)]
    )
    document = b2mml.read(b2mml.write(segments, version=version))
    assert document.model == segments and document.unmapped == []
    equipment = EquipmentInformation(id="I", classes=[EquipmentClass(id="C", properties=props)])
    document = b2mml.read(b2mml.write(equipment, version=version))
    assert document.model == equipment and document.unmapped == []


RECORD = f"""<BatchProductionRecord xmlns="{V7}"><ID>BPR</ID><EntryID>ENTRY-FROM-ERP</EntryID>
<ObjectType>Batch Production Record</ObjectType><CreationDate>2026-01-01T00:00:00Z</CreationDate>
<BatchID>B</BatchID>
<DataSets><DataSet><EntryID>my-dataset-7</EntryID><ObjectType>Data Set</ObjectType>
<TagSpecification><TagIndex>1</TagIndex><DataType>decimal</DataType><UnitOfMeasure>Cel</UnitOfMeasure>
<DataSource>T1</DataSource></TagSpecification><OrderedData><TimeValue>2026-01-01T00:00:00Z</TimeValue>
<DataValue><TagIndex>1</TagIndex><Value>1.0</Value><Quality>Good</Quality></DataValue></OrderedData>
</DataSet></DataSets></BatchProductionRecord>"""


@pytest.mark.parametrize("stream", [False, True])
def test_batch_production_record_keeps_its_entry_ids(b2mml: B2MML, stream: bool) -> None:
    data = RECORD.encode()
    if stream:
        from isa95.b2mml.stream import read_batch_record

        model = read_batch_record(b2mml, data).model  # streamed: the same model
    else:
        model = b2mml.read(data).model
    written = b2mml.write(model, version="V0701")
    assert texts(written, "EntryID") == ["ENTRY-FROM-ERP"]
    assert texts(written, "DataSets/DataSet/EntryID") == ["my-dataset-7"]
    derived = b2mml.read(written.replace(b"ENTRY-FROM-ERP", b"BPR")).model
    assert derived.entry_id is None and derived.series[0].data_set_id == "my-dataset-7"


def test_a_container_the_writer_would_not_write_back_is_listed(b2mml: B2MML) -> None:
    one = (
        f'<BatchInformation xmlns="{V7}"><MasterRecipe><ID>MR</ID></MasterRecipe>'
        "</BatchInformation>"
    )
    document = b2mml.read(one.encode())
    assert etree.QName(etree.fromstring(b2mml.write(document.model))).localname == "MasterRecipe"
    assert document.unmapped[0] == "BatchInformation"
    two = one.replace(
        "</BatchInformation>", "<MasterRecipe><ID>MR2</ID></MasterRecipe></BatchInformation>"
    )
    assert "BatchInformation" not in b2mml.read(two.encode()).unmapped


def test_a_quantity_the_model_does_not_carry_is_listed_with_its_data_type(b2mml: B2MML) -> None:
    data = SCHEDULE.replace(
        "<SegmentRequirementChild>",
        "<EquipmentRequirement><ID>E0</ID><EquipmentClassID>C</EquipmentClassID>"
        "<Quantity><QuantityString>true</QuantityString><DataType>boolean</DataType></Quantity>"
        "</EquipmentRequirement><SegmentRequirementChild>",
    ).encode()
    unmapped = b2mml.read(data, assume_timezone=UTC).unmapped
    quantity = (
        "OperationsSchedule/OperationsRequest[0]/SegmentRequirement[0]"
        "/EquipmentRequirement[0]/Quantity[0]"
    )
    assert f"{quantity}/QuantityString" in unmapped and f"{quantity}/DataType" in unmapped
