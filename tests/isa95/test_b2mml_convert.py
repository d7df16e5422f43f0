"""V0600 <-> V0701 conversion on the bindings, and the defects issue 17 listed."""

from __future__ import annotations

from datetime import UTC

import pytest
from b2mml_instances import instance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from shared_paths import CASES

from isa95.b2mml.convert import RENAMES, ConversionRefused
from isa95.b2mml.documents import B2MML, release
from isa95.errors import DocumentInvalid
from isa95.material import MaterialInformation, MaterialLot
from isa95.operations import (
    DataValue,
    OperationsRequest,
    OperationsSchedule,
    SegmentRequirement,
)

V0600_NS = "http://www.mesa.org/xml/B2MML-V0600"
V0701_NS = "http://www.mesa.org/xml/B2MML"
COCOP = CASES / "cocop-biz-spec"
RECIPOL = CASES / "rwth-iat-recipol"

SCHEDULE = f"""<?xml version="1.0" encoding="UTF-8"?>
<ProcessProductionSchedule xmlns="{V0600_NS}" releaseID="V0600">
  <ApplicationArea>
    <CreationDateTime>2026-03-01T08:00:00</CreationDateTime>
  </ApplicationArea>
  <DataArea>
    <Process/>
    <ProductionSchedule>
      <ID>PS-1 </ID>
      <ProductionRequest>
        <ID>PR-1</ID>
        <ProductProductionRuleID>RULE-7</ProductProductionRuleID>
        <SegmentRequirement>
          <ID>SR-1</ID>
          <ProductSegmentID>SEG-1</ProductSegmentID>
          <ProcessSegmentID>PSEG-1</ProcessSegmentID>
          <EarliestStartTime>2026-03-01T09:00:00</EarliestStartTime>
          <ProductionParameter><Parameter><ID>TEMP</ID><Value><ValueString>012.50</ValueString><DataType>decimal</DataType><UnitOfMeasure>Cel</UnitOfMeasure></Value></Parameter></ProductionParameter>
          <ProductionParameter><Parameter><ID>TIME</ID><Value><ValueString>PT1H</ValueString><DataType>duration</DataType><UnitOfMeasure/></Value></Parameter></ProductionParameter>
        </SegmentRequirement>
      </ProductionRequest>
    </ProductionSchedule>
  </DataArea>
</ProcessProductionSchedule>
""".encode()


def c14n(data: bytes) -> bytes:
    return bytes(etree.tostring(etree.fromstring(data), method="c14n"))


def values(data: bytes) -> list[tuple[str, str | None]]:
    """Local names and texts in document order, indentation left out."""
    return [
        (str(etree.QName(e).localname), None if (e.text or "").strip() == "" else e.text)
        for e in etree.fromstring(data).iter()
        if isinstance(e.tag, str)
    ]


@pytest.mark.needs_cases
@pytest.mark.parametrize(
    "name",
    [
        "rwth-iat-recipol/Testrezept_kur.xml",
        "rwth-iat-recipol/2026-04-26_BatchML_MasterRecipe1_Sol_1.xml",
        "rwth-iat-recipeeditor/Wabe10_Grundrezept.xml",
        "rwth-iat-recipetool/GeneralRecipeHC.xml",
        "rwth-iat-recipetool/IAT-HC-Beispielrezept.xml",
    ],
)
def test_real_v0701_batchml_converts_to_v0600_and_back_c14n_equal(b2mml: B2MML, name: str) -> None:
    data = (CASES / name).read_bytes()
    v0600 = b2mml.convert(data, "V0600")
    assert b2mml.validate(v0600) == []
    assert b2mml.read(v0600, models=False).version == "V0600"
    assert c14n(b2mml.convert(v0600, "V0701")) == c14n(data)


def test_production_schedule_round_trip_restores_the_noun_and_keeps_values(b2mml: B2MML) -> None:
    v0701 = b2mml.convert(SCHEDULE, "V0701", fill_ids="derive")
    document = b2mml.read(v0701, models=False)
    assert (document.version, document.root) == ("V0701", "ProcessOperationsSchedule")
    schedule = document.payloads()[0]
    assert schedule.value("ID") == "PS-1 "  # lexical values pass through
    request = schedule.all("OperationsRequest")[0]
    assert request.value("OperationsDefinitionID") == "RULE-7"  # ProductProductionRuleID
    segment = request.all("SegmentRequirement")[0]
    assert segment.value("EarliestStartTime") == "2026-03-01T09:00:00"  # naive, not interpreted
    assert segment.value("OperationsSegmentID") == "SEG-1"  # ProductSegmentID
    assert [p.value("ID") for p in segment.all("SegmentParameter")] == ["TEMP", "TIME"]
    # The way back restores ProductionSchedule, and drops what the policy derived.
    back = b2mml.convert(v0701, "V0600")
    assert b2mml.read(back, models=False).root == "ProcessProductionSchedule"
    assert values(back) == values(SCHEDULE)
    assert b"b2mml-source" not in back


def test_a_forged_derived_record_drops_nothing(b2mml: B2MML) -> None:
    v0701 = b2mml.convert(SCHEDULE, "V0701", fill_ids="derive")
    base = "/ProcessOperationsSchedule/DataArea[1]/OperationsSchedule[1]/OperationsRequest[1]"
    # A sender claims the request's real OperationsDefinitionID and a parameter were derived.
    forged = v0701.replace(
        b'derived="',
        f'derived="{base}/OperationsDefinitionID[1] {base}/SegmentRequirement[1]/ID[1] '.encode(),
    )
    back = b2mml.convert(forged, "V0600")
    assert values(back) == values(SCHEDULE)  # RULE-7 and SR-1 are still there
    tampered = v0701.replace(
        b"<OperationsDefinitionID>RULE-7</OperationsDefinitionID><",
        b"<OperationsDefinitionID>OTHER</OperationsDefinitionID><",
    )
    assert tampered != v0701
    with pytest.raises(ConversionRefused, match="OperationsDefinitionID"):
        b2mml.convert(tampered, "V0600")  # no longer what derivation gives: content, kept


def test_noun_can_be_chosen(b2mml: B2MML) -> None:
    v0701 = b2mml.convert(SCHEDULE, "V0701", fill_ids="derive")
    stripped = v0701.replace(b'<?b2mml-source noun="ProductionSchedule"', b"<?other")
    with pytest.raises(ConversionRefused, match="OperationsDefinitionID"):
        # without the record, the derived reference is content V0600's segment cannot hold
        b2mml.convert(stripped, "V0600", noun="ProductionSchedule")
    with pytest.raises(ConversionRefused, match="has no <ProcessNoSuchNoun>"):
        b2mml.convert(v0701, "V0600", noun="NoSuchNoun")


@pytest.mark.needs_cases
def test_real_v0600_schedules_are_refused_with_every_path(b2mml: B2MML) -> None:
    data = (COCOP / "ProcessProductionSchedule.xml").read_bytes()
    with pytest.raises(ConversionRefused) as info:
        b2mml.convert(data, "V0701")
    paths = [p.path for p in info.value.problems]
    base = "/ProcessProductionSchedule/DataArea[1]/ProductionSchedule[1]/ProductionRequest[1]"
    assert f"{base}/SegmentRequirement[1]/ID" in paths
    assert f"{base}/SegmentRequirement[2]/SegmentRequirement[1]/ProcessSegmentID" in paths
    with pytest.raises(ConversionRefused) as derived:
        b2mml.convert(data, "V0701", fill_ids="derive")
    assert not [p for p in derived.value.problems if p.path.endswith("/ID")]
    assert f"{base}/SegmentRequirement[1]/ProcessSegmentID" not in paths  # it has one


def test_unknown_fill_policy_is_refused(b2mml: B2MML) -> None:
    with pytest.raises(Exception, match="unknown fill policy"):
        b2mml.convert(SCHEDULE, "V0701", fill_ids="invent")


def test_rename_table_is_in_the_docs() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "b2mml.md").read_text(encoding="utf-8")
    for old, new in RENAMES.items():
        assert f"| {old} | {new} |" in docs


@pytest.mark.parametrize(("source", "target"), [("V0701", "V0600"), ("V0600", "V0701")])
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_conversion_output_is_valid_or_every_problem_is_found_before_validation(
    b2mml: B2MML, source: str, target: str, data: st.DataObject
) -> None:
    document = data.draw(instance(release(source)))
    fill = data.draw(st.sampled_from([None, "derive"]))
    try:
        converted = b2mml.convert(document, target, fill_ids=fill)
    except ConversionRefused as refused:
        # The converter's own walk names every problem: the final XSD check never has to.
        assert "not schema-valid" not in str(refused)
        root = etree.QName(etree.fromstring(document)).localname
        assert refused.problems and all(p.path.startswith(f"/{root}") for p in refused.problems)
        return
    assert b2mml.validate(converted) == []


# ---------------------------------------------------------------- issue 17's defects


def test_defect_production_parameters_read_and_write(b2mml: B2MML) -> None:
    document = b2mml.read(SCHEDULE, assume_timezone=UTC)
    segment = document.model.requests[0].segments[0]
    assert [(p.id, p.value, p.unit) for p in segment.parameters] == [
        ("TEMP", "012.50", "Cel"),
        ("TIME", "PT1H", None),
    ]
    written = b2mml.write(
        document.models, version="V0600", verb="Process", noun="ProductionSchedule"
    )
    again = b2mml.read(written, assume_timezone=UTC).model
    assert again.requests[0].segments[0].parameters == segment.parameters


def test_defect_identifier_with_trailing_blank_is_read_and_reported(b2mml: B2MML) -> None:
    data = (
        f'<MaterialInformation xmlns="{V0701_NS}"><MaterialLot><ID>PARC-0001 </ID>'
        "</MaterialLot></MaterialInformation>"
    ).encode()
    document = b2mml.read(data)
    assert document.model.lots[0].id == "PARC-0001"
    assert document.normalised == [
        "MaterialInformation/MaterialLot[0]/ID: 'PARC-0001 ' read as 'PARC-0001'"
    ]
    assert c14n(b2mml.write(document)) == c14n(data)  # the document itself keeps the blank


@pytest.mark.needs_cases
def test_defect_batch_information_with_two_master_recipes_converts(b2mml: B2MML) -> None:
    root = etree.fromstring((RECIPOL / "Testrezept_kur.xml").read_bytes())
    recipes = root.findall(f"{{{V0701_NS}}}MasterRecipe")
    second = etree.fromstring(etree.tostring(recipes[-1]))
    second.find(f"{{{V0701_NS}}}ID").text = "SECOND"  # type: ignore[union-attr]
    recipes[-1].addnext(second)
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    assert b2mml.validate(data) == []
    v0600 = b2mml.convert(data, "V0600")
    assert len(b2mml.read(v0600).models) == len(recipes) + 1
    assert c14n(b2mml.convert(v0600, "V0701")) == c14n(data)


def test_defect_model_without_segments_is_refused_clearly_for_v0701(b2mml: B2MML) -> None:
    schedule = OperationsSchedule(id="S-1", requests=[OperationsRequest(id="R-1")])
    with pytest.raises(DocumentInvalid, match=r"/OperationsSchedule/OperationsRequest\[1\]"):
        b2mml.write(schedule, version="V0701")
    assert b2mml.validate(b2mml.write(schedule, version="V0600")) == []
    with_segment = OperationsSchedule(
        id="S-1",
        requests=[
            OperationsRequest(
                id="R-1",
                segments=[
                    SegmentRequirement(
                        id="SR-1",
                        process_segment_id="PS",
                        parameters=[DataValue(id="P", value="1")],
                    )
                ],
            )
        ],
    )
    assert b2mml.validate(b2mml.write(with_segment, version="V0701")) == []


def test_defect_naive_date_times_convert_without_a_zone(b2mml: B2MML) -> None:
    v0701 = b2mml.convert(SCHEDULE, "V0701", fill_ids="derive")
    assert b"<CreationDateTime>2026-03-01T08:00:00</CreationDateTime>" in v0701


def test_defect_material_lots_convert_both_ways(b2mml: B2MML) -> None:
    model = MaterialInformation(
        lots=[MaterialLot(id="L-1", status="Released", storage_location="WH-1")]
    )
    v0701 = b2mml.write(model, version="V0701")
    v0600 = b2mml.convert(v0701, "V0600")
    assert b2mml.read(v0600).model == model
    assert b"<StorageLocation>WH-1</StorageLocation>" in v0600
    # LocationType Equipment is what V0600's text location means; it comes back.
    assert values(b2mml.convert(v0600, "V0701")) == values(v0701)
