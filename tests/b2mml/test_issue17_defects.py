"""Regression tests for the defects and silent changes issue 17 lists that had no
dedicated test yet: a ConfirmBOD read, releaseID, DataType, DataInterpretation and
empty elements. docs/b2mml.md ("Issue 17 status") names the test of every other one."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from lxml import etree

from isa95.b2mml.documents import B2MML, ApplicationArea
from isa95.material import MaterialInformation, MaterialLot
from isa95.recipe import FormulaParameter, Recipe

NS = {"V0701": "http://www.mesa.org/xml/B2MML", "V0600": "http://www.mesa.org/xml/B2MML-V0600"}
RELEASES = ("V0701", "V0600")


def c14n(data: bytes) -> bytes:
    return bytes(etree.tostring(etree.fromstring(data), method="c14n"))


@pytest.mark.parametrize("version", RELEASES)
def test_a_confirm_bod_is_read(b2mml: B2MML, version: str) -> None:
    original = ApplicationArea(
        creation=datetime(2026, 5, 1, tzinfo=UTC), sender="ERP", bod_id="B-1"
    )
    data = b2mml.confirm(original, version=version, description="received")
    document = b2mml.read(data)
    assert (document.root, document.noun, document.verb) == ("ConfirmBOD", "BOD", "Confirm")
    assert document.application_area is not None
    (bod,) = document.payloads()
    area = bod.one("OriginalApplicationArea")
    assert area is not None and area.value("BODID") == "B-1"
    assert area.value("CreationDateTime") == "2026-05-01T00:00:00Z"
    assert c14n(b2mml.write(document)) == c14n(data)


@pytest.mark.parametrize("version", RELEASES)
def test_release_id_is_kept_as_read(b2mml: B2MML, version: str) -> None:
    data = (
        f'<SyncMaterialInformation xmlns="{NS[version]}" releaseID="V0600-sender-2.1">'
        "<ApplicationArea><CreationDateTime>2026-01-01T00:00:00Z</CreationDateTime>"
        "</ApplicationArea><DataArea><Sync/><MaterialInformation><ID>MI</ID>"
        "<MaterialLot><ID>L-1</ID></MaterialLot></MaterialInformation></DataArea>"
        "</SyncMaterialInformation>"
    ).encode()
    document = b2mml.read(data)
    written = b2mml.write(document)
    assert etree.fromstring(written).get("releaseID") == "V0600-sender-2.1"
    assert c14n(written) == c14n(data)


@pytest.mark.parametrize("version", RELEASES)
def test_property_data_types_and_empty_descriptions_survive_the_models(
    b2mml: B2MML, version: str
) -> None:
    data = (
        f'<MaterialInformation xmlns="{NS[version]}"><MaterialLot><ID>L-1</ID>'
        "<Description></Description>"
        "<MaterialLotProperty><ID>Count</ID><Value><ValueString>0042</ValueString>"
        "<DataType>integer</DataType></Value></MaterialLotProperty>"
        "<MaterialLotProperty><ID>Hold</ID><Value><ValueString>PT4H</ValueString>"
        "<DataType>duration</DataType></Value></MaterialLotProperty>"
        "</MaterialLot></MaterialInformation>"
    ).encode()
    model = b2mml.read(data).model
    lot = model.lots[0]
    assert lot.description == ""
    assert [(p.value, p.data_type) for p in lot.properties] == [
        ("0042", "integer"),
        ("PT4H", "duration"),
    ]
    written = b2mml.write(model, version=version)
    ns = NS[version]
    root = etree.fromstring(written)
    assert root.find(f"{{{ns}}}MaterialLot/{{{ns}}}Description") is not None  # not dropped
    assert [e.text for e in root.iter(f"{{{ns}}}DataType")] == ["integer", "duration"]
    assert b2mml.read(written).model == model


@pytest.mark.parametrize("version", RELEASES)
def test_data_interpretation_is_not_forced_to_constant(b2mml: B2MML, version: str) -> None:
    recipe = Recipe(
        id="MR-1",
        formula=[
            FormulaParameter(id="Mass", target=Decimal("12.5"), interpretation="Reference"),
            FormulaParameter(id="Time", value="PT5M", data_type="duration"),
        ],
    )
    written = b2mml.write(recipe, version=version)
    texts = [e.text for e in etree.fromstring(written).iter(f"{{{NS[version]}}}DataInterpretation")]
    assert texts == ["Reference", "Constant"]
    assert b2mml.read(written).model == recipe


def test_writing_a_model_gives_the_transaction_profiles_release_id(b2mml: B2MML) -> None:
    """Models carry no releaseID: a transaction written from them says ``1.0``; a
    document read and written back keeps its own (above)."""
    written = b2mml.write(
        MaterialInformation(lots=[MaterialLot(id="L-1")]), version="V0701", verb="Sync"
    )
    assert etree.fromstring(written).get("releaseID") == "1.0"
