"""Mutated batch lists and single-resource documents (emptied, deleted, duplicated
elements, junk text): a read with models gives models or an ``ISA95Error`` naming
where — never another exception (issue 17)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from batchlist_strategies import batch_lists
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isa95_strategies import (
    equipment_information,
    material_information,
    personnel_information,
    process_segment_information,
)
from lxml import etree

from isa95.b2mml.documents import B2MML
from isa95.errors import DocumentContentError, DocumentInvalid, ISA95Error

JUNK = st.sampled_from(["", " ", "x", "-1", "1e999", "NaN", "2026-13-45T99:00:00", "Other", "\t"])


@st.composite
def models(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["list", "material", "equipment", "person", "segment"]))
    if kind == "list":
        return draw(batch_lists(equipment=False))
    found: list[Any] = []
    if kind == "material":
        info = draw(material_information)
        found = info.classes + info.definitions + info.lots
    elif kind == "equipment":
        info = draw(equipment_information)
        found = info.classes + info.equipment
    elif kind == "person":
        info = draw(personnel_information)
        found = info.classes + info.persons
    else:
        found = draw(process_segment_information).segments
    if not found:
        return draw(batch_lists(equipment=False))
    return draw(st.sampled_from(found))


@st.composite
def mutated(draw: st.DrawFn, b2mml: B2MML) -> bytes:
    model = draw(models())
    version = draw(st.sampled_from(["V0701", "V0600"]))
    verb = None if type(model).__name__ == "BatchList" else draw(st.sampled_from([None, "Sync"]))
    root = etree.fromstring(b2mml.write(model, version=version, verb=verb))
    for _ in range(draw(st.integers(1, 3))):
        elements = [e for e in root.iter() if isinstance(e.tag, str) and e is not root]
        if not elements:
            break
        target = draw(st.sampled_from(elements))
        action = draw(st.sampled_from(["junk", "delete", "duplicate", "empty"]))
        parent = target.getparent()
        assert parent is not None
        if action == "junk" and len(target) == 0:
            target.text = draw(JUNK)
        elif action == "delete":
            parent.remove(target)
        elif action == "duplicate":
            target.addnext(etree.fromstring(etree.tostring(target)))
        else:
            for child in list(target):
                target.remove(child)
            target.text = None
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@pytest.mark.parametrize("zone", [None, UTC])
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_mutated_documents_read_or_are_refused_by_the_library(
    b2mml: B2MML, zone: Any, data: st.DataObject
) -> None:
    document = data.draw(mutated(b2mml))
    try:
        read = b2mml.read(document, assume_timezone=zone)
    except DocumentInvalid as invalid:
        assert invalid.issues  # schema errors, each with line and element
        return
    except DocumentContentError as refused:
        assert refused.path  # names the element
        return
    except ISA95Error:
        return
    assert read.models  # mapped: every noun element gave its model
    assert etree.tostring(etree.fromstring(b2mml.write(read)), method="c14n") == etree.tostring(
        etree.fromstring(document), method="c14n"
    )
