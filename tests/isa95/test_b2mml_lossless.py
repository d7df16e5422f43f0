"""Every noun and verb of V0701 and V0600 reads and writes, and read → write is C14N-equal."""

from __future__ import annotations

from pathlib import Path

import pytest
from b2mml_case_table import EXPECTED
from b2mml_instances import instance, minimal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from shared_paths import CASES, schemas_dir

from isa95.b2mml.binding import Node
from isa95.b2mml.documents import B2MML, release, split_root
from isa95.b2mml.generate import generate_release
from isa95.errors import B2MMLError

RELEASES = ("V0701", "V0600")


def c14n(data: bytes) -> bytes:
    return bytes(etree.tostring(etree.fromstring(data), method="c14n"))


def texts(data: bytes) -> list[tuple[str, str | None, dict[str, str]]]:
    """Every element's name, text and attributes exactly as written, in document order."""
    return [
        (str(e.tag), e.text, dict(e.attrib))
        for e in etree.fromstring(data).iter()
        if isinstance(e.tag, str)
    ]


VALID_CASES = sorted(
    name
    for name, (outcome, _) in EXPECTED.items()
    if outcome in ("read", "read-zone", "bound", "semantic")
)


@pytest.mark.needs_cases
@pytest.mark.parametrize("name", VALID_CASES)
def test_every_valid_case_round_trips_c14n_equal(b2mml: B2MML, name: str) -> None:
    data = (CASES / name).read_bytes()
    document = b2mml.read(data, models=False)
    written = b2mml.write(document)
    assert c14n(written) == c14n(data)
    assert texts(written) == texts(data)  # lexical values: dates, decimals, blanks in IDs


@pytest.mark.parametrize("version", RELEASES)
def test_every_global_element_reads_and_writes(b2mml: B2MML, version: str) -> None:
    bindings = release(version)
    roots = sorted(n for (ns, n) in bindings.elements if ns == bindings.namespace)
    assert len(roots) > 500  # every noun, every verb, every BatchML element
    for root in roots:
        try:
            data = minimal(bindings, root)
        except B2MMLError:
            data = minimal(bindings, root, prefix="b2mml")  # unqualified locals need a prefix
        document = b2mml.read(data, models=False)
        assert document.root == root and document.binding is not None
        assert c14n(b2mml.write(document)) == c14n(data), root
        noun, verb = split_root(version, root)
        if verb is not None:
            assert document.verb == verb and root == (
                "ConfirmBOD" if verb == "Confirm" else verb + noun
            )


def test_transactions_of_both_releases_include_batchml_and_confirm() -> None:
    for version in RELEASES:
        bindings = release(version)
        roots = {n for (ns, n) in bindings.elements if ns == bindings.namespace}
        splits = {split_root(version, r) for r in roots}
        verbs = {verb for _, verb in splits if verb}
        assert verbs == {
            "Process",
            "Sync",
            "Get",
            "Show",
            "Acknowledge",
            "Change",
            "Cancel",
            "Respond",
            "Confirm",
        }
        nouns = {noun for noun, verb in splits if verb}
        # MESA's releases: 67 transaction nouns in V0701, 54 in V0600 (ConfirmBOD's BOD included).
        assert len(nouns) == {"V0701": 67, "V0600": 54}[version]
        for noun in (
            "GRecipeInformation",
            "BatchProductionRecord",
            "MaterialLot",
            "MaterialDefinition",
            "Equipment",
            "Person",
            "OperationsDefinition",
            "BOD",
        ):
            assert noun in nouns, (version, noun)
        # BatchML's bare documents.
        for bare in ("BatchInformation", "MasterRecipe", "ControlRecipe", "BatchList", "GRecipe"):
            assert (bare, None) in splits, (version, bare)
    assert ("ProductionSchedule", "Process") in {
        split_root("V0600", r) for (_, r) in release("V0600").elements
    }


@pytest.mark.parametrize("version", RELEASES)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_schema_valid_instances_round_trip(
    b2mml: B2MML, version: str, data: st.DataObject
) -> None:
    document_bytes = data.draw(instance(release(version)))
    assert b2mml.validate(document_bytes) == []  # the strategy builds through the bindings
    document = b2mml.read(document_bytes, models=False)
    written = b2mml.write(document)
    assert c14n(written) == c14n(document_bytes)
    assert texts(written) == texts(document_bytes)
    assert document.binding is not None
    assert b2mml.read(written, models=False).binding.to_data() == document.binding.to_data()  # type: ignore[union-attr]


def test_bindings_keep_extensions_and_lexical_values(b2mml: B2MML) -> None:
    ns = release("V0701").namespace
    data = f"""<?xml version="1.0"?>
<!-- sent by ERP -->
<SyncMaterialLot xmlns="{ns}" releaseID="1.0">
  <ApplicationArea>
    <CreationDateTime>2026-01-01T00:00:00Z</CreationDateTime>
    <UserArea><MaterialLot><ID>inner</ID></MaterialLot><!-- kept --></UserArea>
  </ApplicationArea>
  <DataArea>
    <Sync/>
    <MaterialLot>
      <ID>PARC-0001 </ID>
      <Quantity><QuantityString>012.50</QuantityString><UnitOfMeasure>kg</UnitOfMeasure></Quantity>
    </MaterialLot>
  </DataArea>
</SyncMaterialLot>
""".encode()
    document = b2mml.read(data)
    assert (document.noun, document.verb) == ("MaterialLot", "Sync")
    lot = document.payloads()[0]
    assert lot.value("ID") == "PARC-0001 "
    quantity = lot.all("Quantity")[0]
    assert quantity.value("QuantityString") == "012.50"
    area = document.binding.one("ApplicationArea")  # type: ignore[union-attr]
    assert area is not None and area.value("CreationDateTime") == "2026-01-01T00:00:00Z"
    user_area = area.one("UserArea")
    assert user_area is not None and len(user_area.extensions()) == 1
    assert c14n(b2mml.write(document)) == c14n(data)
    # The typed properties of the generated classes see the same content.
    from isa95.b2mml.bindings import v0701

    assert isinstance(lot, v0701.MaterialLotType)
    assert lot.ID is not None and lot.ID.text == "PARC-0001 "


def test_editing_inserts_in_schema_order_and_enforces_occurrences(b2mml: B2MML) -> None:
    lot = b2mml.new("MaterialLot", "V0701")
    lot.add("Quantity").add("QuantityString", "5")
    lot.add("Description", "first")
    lot.add("ID", "L-1")
    lot.add("Description", "second")
    assert [c.tag for c in lot.children() if isinstance(c, Node)] == [
        "ID",
        "Description",
        "Description",
        "Quantity",
    ]
    with pytest.raises(B2MMLError, match="at most 1"):
        lot.add("ID", "L-2")
    with pytest.raises(B2MMLError, match="no child element 'Bogus'"):
        lot.add("Bogus")
    data = b2mml.write(lot)
    assert b2mml.read(data).binding.value("ID") == "L-1"  # type: ignore[union-attr]


def test_an_invalid_binding_is_not_written(b2mml: B2MML) -> None:
    lot = b2mml.new("MaterialLot", "V0701")  # ID is required
    with pytest.raises(B2MMLError, match="not schema-valid"):
        b2mml.write(lot)


@pytest.mark.parametrize("version", RELEASES)
def test_committed_bindings_are_what_the_generator_gives(version: str) -> None:
    committed = Path(__file__).resolve().parents[2] / "isa95" / "b2mml" / "bindings"
    generated = generate_release(schemas_dir() / version, version)
    assert (committed / f"{version.lower()}.py").read_text(encoding="utf-8") == generated
