"""Orders, materials and lots from ERP: through the engine's rules, answered, idempotent, safe."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from erp_support import outbox, production_order
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gxpmes.ebr.planning import planned_batch
from gxpmes.erp.bod import read_confirmation
from gxpmes.erp.delivery import open_source
from gxpmes.erp.delivery.pump import receive
from gxpmes.erp.inbound import Receiver
from gxpmes.records.verify import verify_record
from isa95.b2mml.safexml import parse_xml


def receiver(plant: Any) -> Receiver:
    return Receiver(plant.engine, plant.engine.erp_b2mml, sender="MES-1")


def reply(plant: Any, message_id: str | None) -> Any:
    rows = [r for r in outbox(plant.db) if r["message_id"] == message_id]
    assert len(rows) == 1
    assert rows[0]["root"] == "ConfirmBOD" and rows[0]["confirm"] is False
    return read_confirmation(parse_xml(rows[0]["body"].encode()))


def test_a_production_order_becomes_a_planned_batch(erp_plant_any: Any) -> None:
    plant = erp_plant_any
    order_bod = production_order("4711", bod_id="ORD-1")
    result = receiver(plant).handle(order_bod, "test")
    assert result.outcome == "accepted", result.detail
    order = planned_batch(plant.engine, "4711")
    assert order is not None
    assert (order["recipe_id"], order["product_id"], order["quantity"], order["unit"]) == (
        "MR-GRAN",
        "TAB-500",
        "100",
        "kg",
    )
    assert order["earliest_start"].startswith("2026-12-04T06:00:00")
    assert order["status"] == "Planned" and order["lot_id"] == "4711-LOT"
    answer = reply(plant, result.reply_message_id)
    assert answer.accepted and answer.originals == ("ORD-1",)
    # Redelivery: nothing again, no second answer.
    again = receiver(plant).handle(order_bod, "test")
    assert again.outcome == "duplicate"
    assert sum(r["root"] == "ConfirmBOD" for r in outbox(plant.db)) == 1
    entries = plant.db.ledger.entries_for("planned_batch", "4711")
    assert [e.event.action for e in entries] == ["order.plan"]
    report = verify_record(plant.db.engine, trusted_keys=plant.trusted_keys())
    assert not [p for p in report.problems if p.table.startswith(("erp_", "ebr_planned"))]


def test_orders_against_the_rules_are_rejected_with_reasons(erp_plant: Any) -> None:
    unknown = receiver(erp_plant).handle(production_order("1", recipe="MR-NONE"), "test")
    assert unknown.outcome == "rejected" and "no master recipe MR-NONE" in unknown.detail
    answer = reply(erp_plant, unknown.reply_message_id)
    assert not answer.accepted and any("MR-NONE" in r for r in answer.reasons)
    wrong = receiver(erp_plant).handle(production_order("2", product="ASPIRIN"), "test")
    assert wrong.outcome == "rejected" and "not ASPIRIN" in wrong.detail
    zero = receiver(erp_plant).handle(production_order("3", quantity="0"), "test")
    assert zero.outcome == "rejected" and "not positive" in zero.detail
    assert planned_batch(erp_plant.engine, "1") is None
    # Process of an existing order with other data is refused; Sync changes it.
    assert receiver(erp_plant).handle(production_order("9"), "t").outcome == "accepted"
    refused = receiver(erp_plant).handle(production_order("9", quantity="250"), "t")
    assert refused.outcome == "rejected" and "already planned" in refused.detail
    synced = receiver(erp_plant).handle(production_order("9", quantity="250", verb="Sync"), "t")
    assert synced.outcome == "accepted" and "changed" in synced.detail
    assert planned_batch(erp_plant.engine, "9")["quantity"] == "250"  # type: ignore[index]


MATERIALS = """<?xml version="1.0" encoding="UTF-8"?>
<{verb}{noun} xmlns="http://www.mesa.org/xml/B2MML" releaseID="1.0">
  <ApplicationArea><CreationDateTime>2026-12-01T08:00:00Z</CreationDateTime>
    <BODID>{bod}</BODID></ApplicationArea>
  <DataArea><{verb}/>{payload}</DataArea>
</{verb}{noun}>"""
DEFINITION = (
    "<MaterialDefinition><ID>MCC-101</ID><Description>cellulose</Description></MaterialDefinition>"
)
LOT = """<MaterialLot><ID>{lot}</ID><MaterialDefinitionID>MCC-101</MaterialDefinitionID>
  <Status>Released</Status>
  <Quantity><QuantityString>250</QuantityString><DataType>decimal</DataType>
  <UnitOfMeasure>kg</UnitOfMeasure></Quantity></MaterialLot>"""


def test_material_definitions_and_lots_arrive_in_quarantine(erp_plant: Any) -> None:
    r = receiver(erp_plant)
    lot_first = MATERIALS.format(
        verb="Process", noun="MaterialLot", bod="L-0", payload=LOT.format(lot="MCC-L1")
    )
    early = r.handle(lot_first.encode(), "test")
    assert early.outcome == "rejected" and "not defined" in early.detail
    definition = MATERIALS.format(
        verb="Sync", noun="MaterialDefinition", bod="M-1", payload=DEFINITION
    )
    assert r.handle(definition.encode(), "test").outcome == "accepted"
    lot = MATERIALS.format(
        verb="Process", noun="MaterialLot", bod="L-1", payload=LOT.format(lot="MCC-L1")
    )
    result = r.handle(lot.encode(), "test")
    assert result.outcome == "accepted", result.detail
    assert "ERP status 'Released' ignored" in result.detail
    with erp_plant.db.read() as conn:
        from sqlalchemy import select

        from gxpmes.ebr.schema import LotRow

        row = conn.execute(select(LotRow).where(LotRow.lot_id == "MCC-L1")).one()
    assert (row.status, row.quantity, row.unit) == ("Quarantine", "250", "kg")
    entry = erp_plant.db.ledger.entries_for("lot", "MCC-L1")[-1]
    assert entry.event.action == "lot.receive" and entry.event.actor.user_id == "svc-erp"


def test_v0600_production_schedule(erp_plant: Any) -> None:
    v0600 = production_order("V6", version="V0600", noun="ProductionSchedule")
    assert b"<ProcessProductionSchedule" in v0600
    result = receiver(erp_plant).handle(v0600, "test")
    assert result.outcome == "accepted", result.detail
    assert planned_batch(erp_plant.engine, "V6") is not None
    answer = reply(erp_plant, result.reply_message_id)
    assert answer.accepted
    rows = [r for r in outbox(erp_plant.db) if r["message_id"] == result.reply_message_id]
    assert "B2MML-V0600" in rows[0]["body"]  # answered in the sender's release


HOSTILE = [
    b"",
    b"not xml at all",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>',
    b'<!DOCTYPE x SYSTEM "http://attacker.example/x.dtd"><x/>',
    b"<ProcessOperationsSchedule xmlns='urn:other'/>",
    b"<ProcessOperationsSchedule xmlns='http://www.mesa.org/xml/B2MML'/>",
    b"\xff\xfe<\x00x\x00",
    b"<a>" * 100000,
]


def test_hostile_documents_are_refused_kept_and_answered(erp_plant: Any, tmp_path: Any) -> None:
    inbox = tmp_path / "from-erp"
    inbox.mkdir()
    for n, body in enumerate([*HOSTILE, production_order("OK-1")]):
        (inbox / f"{n:03d}.xml").write_bytes(body)
    counts = receive(receiver(erp_plant), open_source(f"dir:{inbox}"), follow=False)
    assert counts["invalid"] == len(HOSTILE) and counts["accepted"] == 1
    assert sorted(p.name for p in inbox.iterdir()) == ["processed"]
    with erp_plant.db.read() as conn:
        from sqlalchemy import select

        from gxpmes.erp.schema import RejectRow

        rejects = conn.execute(select(RejectRow)).all()
    assert len(rejects) == len(HOSTILE)
    assert all(r.reason and r.reply_message_id for r in rejects)
    assert any("DOCTYPE" in r.reason for r in rejects)
    bodies = {r["message_id"]: r["body"] for r in outbox(erp_plant.db)}
    assert all('actionCode="Rejected"' in bodies[r.reply_message_id] for r in rejects)
    # The same poison again: kept once, answered once.
    (inbox / "again.xml").write_bytes(HOSTILE[2])
    again = receive(receiver(erp_plant), open_source(f"dir:{inbox}"), follow=False)
    assert again["duplicate"] == 1
    assert planned_batch(erp_plant.engine, "OK-1") is not None


def test_a_reused_bod_id_with_other_content_is_refused(erp_plant: Any) -> None:
    r = receiver(erp_plant)
    assert r.handle(production_order("A", bod_id="SAME"), "t").outcome == "accepted"
    other = r.handle(production_order("B", bod_id="SAME"), "t")
    assert other.outcome == "invalid" and "already taken with other content" in other.detail
    assert planned_batch(erp_plant.engine, "B") is None


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reasons=st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
            min_size=1,
            max_size=40,
        ).filter(lambda s: s.strip() == s and s.strip()),
        max_size=3,
        unique=True,
    ),
    accepted=st.booleans(),
    version=st.sampled_from(["V0701", "V0600"]),
)
def test_confirm_bod_round_trip(
    b2mml: Any, reasons: list[str], accepted: bool, version: str
) -> None:
    from datetime import UTC, datetime

    from gxpmes.erp.bod import Header, confirm_bod

    original = Header("ProcessX", version, f"B-{uuid.uuid4()}", "ERP", "2026-01-01T00:00:00Z")
    data = confirm_bod(
        b2mml,
        original,
        accepted=accepted,
        reasons=reasons,
        bod_id="C-1",
        sender="MES",
        created=datetime.now(UTC),
        version=version,
    )
    back = read_confirmation(parse_xml(data))
    assert back.originals == (original.bod_id,) and back.accepted is accepted
    assert set(reasons) <= set(back.reasons)


def test_receiver_does_not_swallow_database_failures(erp_plant: Any, monkeypatch: Any) -> None:
    """A database failure is not the document's fault: it stays at its source (no ack)."""
    r = receiver(erp_plant)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OSError("database gone")

    monkeypatch.setattr(erp_plant.db, "transaction", down)
    with pytest.raises(OSError):
        r.handle(production_order("X"), "t")


def test_concurrent_receivers_take_a_document_once(erp_plant_any: Any, tmp_path: Any) -> None:
    """Two receiver processes get the same order at once: one takes it, one sees it taken."""
    import subprocess
    import sys
    from pathlib import Path

    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )
    from shared_paths import schemas_dir

    plant = erp_plant_any
    key = tmp_path / "head.pem"
    key.write_bytes(
        plant.system_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    document = tmp_path / "order.xml"
    document.write_bytes(production_order("RACE-1", bod_id="SAP-RACE-1"))
    url = plant.db.engine.url.render_as_string(hide_password=False)
    child = Path(__file__).with_name("receive_child.py")
    args = [sys.executable, str(child), url, str(key), str(schemas_dir()), str(document)]
    for _ in range(3):  # rounds: the second and third find it taken already
        runs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in runs)
        assert all(p.returncode == 0 for p in runs)
        if "accepted" in outcomes:
            assert outcomes == ["accepted", "duplicate"]
        else:
            assert outcomes == ["duplicate", "duplicate"]
    assert planned_batch(plant.engine, "RACE-1") is not None
    assert sum(r["root"] == "ConfirmBOD" for r in outbox(plant.db)) == 1
    assert len(plant.db.ledger.entries_for("planned_batch", "RACE-1")) == 1
