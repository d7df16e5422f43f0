"""Real B2MML documents by other tools (../shared/b2mml-cases), read as their README asks."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from b2mml_case_table import EXPECTED
from shared_paths import CASES

from isa95.b2mml.documents import B2MML
from isa95.errors import DocumentInvalid, ModelError, UnsupportedDocumentError

COCOP = CASES / "cocop-biz-spec"
pytestmark = pytest.mark.needs_cases  # skipped without them, failed with CI=true


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
