"""BatchML BatchList ↔ isa95.batchlist in V0701 and V0600: model → XML (schema-valid) →
model with hypothesis; documents read with models and written back C14N-equal; what
the model does not carry listed in ``unmapped`` and reachable on the binding (issue 17)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from b2mml_instances import instance
from batchlist_strategies import batch_lists, entries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from shared_paths import schemas_dir

from gxpmes.cli import main
from isa95.b2mml.documents import B2MML, release
from isa95.batchlist import (
    BatchList,
    BatchListEntry,
    BatchMode,
    BatchStatus,
)
from isa95.errors import B2MMLError, DocumentContentError
from isa95.recipe import Recipe

V0701_NS = "http://www.mesa.org/xml/B2MML"
V0600_NS = "http://www.mesa.org/xml/B2MML-V0600"
RELEASES = ("V0701", "V0600")


def c14n(data: bytes) -> bytes:
    return bytes(etree.tostring(etree.fromstring(data), method="c14n"))


@pytest.mark.parametrize("version", RELEASES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_model_to_schema_valid_xml_and_back(
    b2mml: B2MML, version: str, data: st.DataObject
) -> None:
    model = data.draw(batch_lists(equipment=version == "V0701"))
    written = b2mml.write(model, version=version)  # validated against MESA's XSD
    assert b2mml.validate(written) == []
    document = b2mml.read(written)
    assert document.root == "BatchList" and document.models == [model]
    assert document.unmapped == [] and document.normalised == []
    for entry in (e for top in model.entries for e in top.walk()):
        read = document.model.find(entry.id)
        assert read is not None and document.binding_of(read) is not None


@pytest.mark.parametrize("version", RELEASES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry=entries(equipment=False))
def test_a_bare_batch_list_entry_round_trips(
    b2mml: B2MML, version: str, entry: BatchListEntry
) -> None:
    written = b2mml.write(entry, version=version)
    document = b2mml.read(written)
    assert document.root == "BatchListEntry" and document.models == [entry]


@pytest.mark.parametrize("version", RELEASES)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_schema_valid_batch_lists_read_with_models_and_write_back_c14n_equal(
    b2mml: B2MML, version: str, data: st.DataObject
) -> None:
    source = data.draw(instance(release(version), "BatchList"))
    try:
        document = b2mml.read(source, assume_timezone=UTC)
    except DocumentContentError as refused:
        # schema-valid but wrong in meaning: an end before its start, an ID of blanks only
        assert refused.path is not None and refused.path.startswith("BatchList")
        return
    (model,) = document.models
    assert isinstance(model, BatchList)
    assert document.binding_of(model) is document.binding
    assert c14n(b2mml.write(document)) == c14n(source)
    # everything the model does not carry is listed, by path
    for path in document.unmapped:
        assert path.startswith("BatchList")


def test_what_the_model_does_not_carry_is_listed_and_reachable(b2mml: B2MML) -> None:
    data = f"""<?xml version="1.0" encoding="UTF-8"?>
<BatchList xmlns="{V0701_NS}">
  <ListHeader><ID>BL-1 </ID><Origin>BATCH-SRV</Origin>
    <CreateDate>2026-02-01T06:00:00Z</CreateDate></ListHeader>
  <BatchListEntry>
    <ID>CAMP-1</ID>
    <BatchListEntryType>Campaign</BatchListEntryType>
    <Status OtherValue="Quarantined">Other</Status>
    <BatchListEntry>
      <ID>B-1</ID>
      <BatchListEntryType>Batch</BatchListEntryType>
      <Status>Running</Status>
      <Mode>Automatic</Mode>
      <RecipeID>MR-7</RecipeID>
      <RecipeVersion>3 </RecipeVersion>
      <BatchID>B-1</BatchID>
      <RequestedStartTime>2026-02-01T07:00:00+01:00</RequestedStartTime>
      <ActualStartTime>2026-02-01T07:05:00+01:00</ActualStartTime>
      <BatchPriority format="n">2</BatchPriority>
      <RequestedBatchSize unitCode="KGM">0500.0</RequestedBatchSize>
      <ActualBatchSize>498.25</ActualBatchSize>
      <UnitOfMeasure>kg</UnitOfMeasure>
      <Note>first</Note><Note>second</Note>
      <Parameter><ID>TEMP</ID><ParameterType>ProcessParameter</ParameterType></Parameter>
      <EquipmentClassID>Reactor</EquipmentClassID>
      <EquipmentID>R-101</EquipmentID>
      <ActualEquipmentID> R-101</ActualEquipmentID>
    </BatchListEntry>
  </BatchListEntry>
</BatchList>
""".encode()
    document = b2mml.read(data)
    model = document.model
    assert (model.id, model.created) == ("BL-1", datetime(2026, 2, 1, 6, tzinfo=UTC))
    campaign = model.entries[0]
    assert (campaign.entry_type, campaign.status) == ("Campaign", "Quarantined")
    batch = campaign.entries[0]
    assert batch == model.find("B-1")
    assert (batch.status, batch.mode, batch.recipe_id, batch.recipe_version) == (
        BatchStatus.RUNNING,
        BatchMode.AUTOMATIC,
        "MR-7",
        "3",
    )
    assert batch.requested_batch_size == Decimal("500.0")
    assert (batch.actual_batch_size, batch.priority, batch.unit) == (Decimal("498.25"), 2, "kg")
    assert batch.notes == ["first", "second"]
    assert (batch.equipment_ids, batch.equipment_class_ids, batch.actual_equipment_ids) == (
        ["R-101"],
        ["Reactor"],
        ["R-101"],
    )
    assert batch.actual_start is not None and batch.actual_start.utcoffset() is not None
    entry = "BatchList/BatchListEntry[0]/BatchListEntry[0]"
    assert sorted(document.unmapped) == sorted(
        [
            "BatchList/ListHeader/Origin",
            f"{entry}/BatchPriority/@format",
            f"{entry}/RequestedBatchSize/@unitCode",
            f"{entry}/Parameter",
        ]
    )
    assert document.normalised == [
        "BatchList/ListHeader/ID: 'BL-1 ' read as 'BL-1'",
        f"{entry}/RecipeVersion: '3 ' read as '3'",
        f"{entry}/ActualEquipmentID[0]: ' R-101' read as 'R-101'",
    ]
    node = document.binding_of(batch)
    assert node is not None
    assert [p.value("ID") for p in node.all("Parameter")] == ["TEMP"]
    assert node.value("RequestedBatchSize") == "0500.0"  # as written
    assert c14n(b2mml.write(document)) == c14n(data)


def test_v0600_equipment_ids_are_refused_not_dropped(b2mml: B2MML) -> None:
    """V0600 typed BatchListEntry/EquipmentID as Property/Condition/Value, no identifier."""
    model = BatchList(entries=[BatchListEntry(id="B-1", equipment_ids=["R-101"])])
    with pytest.raises(B2MMLError, match="V0600 cannot carry equipment_ids"):
        b2mml.write(model, version="V0600")
    assert b2mml.read(b2mml.write(model, version="V0701")).model == model
    data = (
        f'<BatchList xmlns="{V0600_NS}"><BatchListEntry><ID>B-1</ID>'
        "<BatchListEntryType>Batch</BatchListEntryType>"
        "<EquipmentID><Condition>clean</Condition></EquipmentID>"
        "</BatchListEntry></BatchList>"
    ).encode()
    document = b2mml.read(data)
    assert document.model == BatchList(entries=[BatchListEntry(id="B-1")])
    assert document.unmapped == ["BatchList/BatchListEntry[0]/EquipmentID"]


def test_an_end_before_its_start_is_refused_with_its_path(b2mml: B2MML) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        BatchListEntry(
            id="B",
            actual_start=datetime(2026, 1, 2, tzinfo=UTC),
            actual_end=datetime(2026, 1, 1, tzinfo=UTC),
        )
    data = (
        f'<BatchList xmlns="{V0701_NS}"><BatchListEntry><ID>B-1</ID>'
        "<BatchListEntryType>Batch</BatchListEntryType>"
        "<ActualStartTime>2026-01-02T00:00:00Z</ActualStartTime>"
        "<ActualEndTime>2026-01-01T00:00:00Z</ActualEndTime>"
        "</BatchListEntry></BatchList>"
    ).encode()
    with pytest.raises(DocumentContentError, match=r"ends .* before it starts") as refused:
        b2mml.read(data)
    assert refused.value.path == "BatchList/BatchListEntry[0]"
    assert b2mml.read(data, models=False).binding is not None  # still readable as bound


def test_naive_times_need_a_zone(b2mml: B2MML) -> None:
    data = (
        f'<BatchList xmlns="{V0701_NS}"><BatchListEntry><ID>B-1</ID>'
        "<BatchListEntryType>Batch</BatchListEntryType>"
        "<RequestedStartTime>2026-01-02T08:00:00</RequestedStartTime>"
        "</BatchListEntry></BatchList>"
    ).encode()
    with pytest.raises(DocumentContentError, match="no time zone"):
        b2mml.read(data)
    document = b2mml.read(data, assume_timezone=UTC)
    assert document.model.entries[0].requested_start == datetime(2026, 1, 2, 8, tzinfo=UTC)
    assert b"2026-01-02T08:00:00<" in b2mml.write(document)  # as written, not as interpreted


def test_a_batch_list_in_batch_information_is_mapped_beside_the_recipes(b2mml: B2MML) -> None:
    recipe = Recipe(id="MR-1")
    batch_list = BatchList(id="BL", entries=[BatchListEntry(id="B-1", recipe_id="MR-1")])
    info = etree.fromstring(b2mml.write([recipe, recipe.model_copy(update={"id": "MR-2"})]))
    assert etree.QName(info).localname == "BatchInformation"
    listed = etree.fromstring(b2mml.write(batch_list, version="V0701"))
    info.append(listed)  # BatchList follows the master recipes in BatchInformation
    data = etree.tostring(info, xml_declaration=True, encoding="UTF-8")
    document = b2mml.read(data)
    assert [type(m).__name__ for m in document.models] == ["Recipe", "Recipe", "BatchList"]
    assert document.models[2] == batch_list
    assert not any("BatchList" in p for p in document.unmapped)
    assert c14n(b2mml.write(document)) == c14n(data)


def test_models_refuse_floats_and_non_finite_numbers() -> None:
    with pytest.raises(ValueError, match="never float"):
        BatchListEntry(id="B", requested_batch_size=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        BatchListEntry(id="B", actual_batch_size=Decimal("NaN"))


def test_cli_reads_a_batch_list_into_json(
    b2mml: B2MML,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GXPMES_B2MML_SCHEMAS", str(schemas_dir()))
    model = BatchList(
        id="BL",
        entries=[
            BatchListEntry(
                id="B-1",
                requested_batch_size=Decimal("500.0"),
                actual_start=datetime(2026, 2, 1, 6, tzinfo=UTC),
            )
        ],
    )
    source = tmp_path / "list.xml"
    source.write_bytes(b2mml.write(model, version="V0600"))
    assert main(["b2mml", "read", str(source), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["root"], result["unmapped"]) == ("BatchList", [])
    assert BatchList.model_validate(result["models"][0]) == model
    out = tmp_path / "list-v0701.xml"
    assert main(["b2mml", "convert", str(source), "--to", "V0701", "--out", str(out)]) == 0
    assert b2mml.read(out.read_bytes()).model == model


@pytest.mark.parametrize(("source", "target"), [("V0701", "V0600"), ("V0600", "V0701")])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batch_lists_convert_between_releases_and_read_the_same(
    b2mml: B2MML, source: str, target: str, data: st.DataObject
) -> None:
    model = data.draw(batch_lists(equipment=False))
    written = b2mml.write(model, version=source)
    converted = b2mml.convert(written, target)
    assert b2mml.validate(converted) == []
    assert b2mml.read(converted).model == model
    assert c14n(b2mml.convert(converted, source)) == c14n(written)
