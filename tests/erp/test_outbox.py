"""The transactional outbox: documents commit with their GMP event, or neither does."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import pytest
from erp_support import execute_batch, outbox, release_batch

from gxpmes.erp import outbox as outbox_module
from gxpmes.erp.outbox import configure_route
from gxpmes.errors import ConfigurationError
from gxpmes.records.verify import verify_record
from gxpmes.testing.plant import BALANCE, HEAT
from isa95.common import Quantity

B = "B-ERP-1"


def test_release_weighing_and_completion_write_their_documents(erp_plant_any: Any) -> None:
    plant = erp_plant_any
    release_batch(plant, B)
    rows = outbox(plant.db, B)
    assert [(r["event"], r["document"]) for r in rows] == [
        ("weighing.recorded", "MaterialConsumption"),
        ("weighing.recorded", "MaterialConsumption"),
        ("batch.executed", "MaterialProduction"),
        ("batch.released", "BatchProductionRecord"),
        ("batch.released", "OperationsPerformance"),
    ]
    assert all(r["status"] == "pending" for r in rows)
    b2mml = plant.engine.erp_b2mml
    for row in rows:
        body = row["body"].encode()
        assert hashlib.sha256(body).hexdigest() == row["sha256"]
        document = b2mml.read(body)  # schema-valid, with the message id as BOD ID
        assert document.verb == "Process"
        assert document.application_area.bod_id == row["message_id"]
    record = b2mml.read(rows[3]["body"].encode()).model
    assert record.record_status == "Released"  # the status of the deciding transaction
    assert any("Released" in (e.message or "") for e in record.events)  # its signature too
    # The documents' hashes are in the batch's audit trail, written by the event's transaction.
    trail = plant.db.ledger.entries_for("batch", B)
    audited = {e.event.new["sha256"] for e in trail if e.event.action == "erp.outbox"}
    assert audited == {r["sha256"] for r in rows}
    report = verify_record(plant.db.engine, trusted_keys=plant.trusted_keys())
    assert not [p for p in report.problems if p.table.startswith(("erp_", "ebr_planned"))]


def test_no_route_no_document(erp_plant: Any) -> None:
    from audit.entry import Actor

    configure_route(erp_plant.db, Actor("admin", "Admin"), "weighing.recorded", [], reason="off")
    execute_batch(erp_plant, B)
    assert [r["event"] for r in outbox(erp_plant.db, B)] == ["batch.executed"]


def test_a_failing_document_refuses_the_event(erp_plant: Any, monkeypatch: Any) -> None:
    """An event never commits without its outbox row: the release is refused whole."""
    execute_batch(erp_plant, B)
    erp_plant.engine.complete_review(B, erp_plant.creds("qa1"))
    erp_plant.review_trail(B)
    before = outbox(erp_plant.db, B)

    def broken(*args: Any) -> Any:
        from isa95.errors import B2MMLError

        raise B2MMLError("schemas unreadable")

    monkeypatch.setitem(outbox_module._BUILDERS, "OperationsPerformance", broken)
    with pytest.raises(ConfigurationError, match="refused"):
        erp_plant.engine.release(B, erp_plant.creds("qa2"))
    assert erp_plant.engine.batch(B)["status"] == "Reviewed"
    assert outbox(erp_plant.db, B) == before  # not even the BatchProductionRecord


def test_a_rolled_back_event_leaves_no_outbox_row(erp_plant: Any, monkeypatch: Any) -> None:
    """The weighing fails after its documents were written: none of them remains."""
    from gxpmes.ebr import execution

    execute_batch(erp_plant, "B-OTHER")  # some unrelated rows first
    before = outbox(erp_plant.db)
    for equipment_id in ("GRAN-01", "BLEND-01"):
        erp_plant.engine.record_cleaning(
            erp_plant.sessions["op1"], equipment_id, "cleaned, SOP-CL-01"
        )
    erp_plant.engine.create_batch(
        erp_plant.sessions["sup1"],
        B,
        recipe_id="MR-GRAN",
        version="1",
        lot_id="L-9",
        planned=Quantity(value=Decimal("100"), unit="kg"),
        equipment=["GRAN-01", "BLEND-01"],
    )
    erp_plant.engine.start_batch(erp_plant.sessions["op1"], B)
    real = outbox_module.emit

    def emit_then_fail(*args: Any, **kwargs: Any) -> Any:
        written = real(*args, **kwargs)
        assert written  # the documents were written in the transaction ...
        raise RuntimeError("power cut")  # ... which then fails

    monkeypatch.setattr(outbox_module, "emit", emit_then_fail)
    with pytest.raises(RuntimeError):
        erp_plant.engine.weigh(
            B,
            phase=HEAT,
            material_id="API-PARA",
            lot_id="API-L1",
            actual=Decimal("20"),
            balance_id=BALANCE,
            performer=erp_plant.creds("op1"),
        )
    assert execution is not None
    assert outbox(erp_plant.db) == before
    assert erp_plant.engine.weighings(B) == []


def test_removing_the_hook_is_caught(erp_plant: Any, monkeypatch: Any) -> None:
    """Control removed → the first test's expectation fails (the hook is what writes)."""
    monkeypatch.setattr(outbox_module, "emit", lambda *a, **k: [])
    release_batch(erp_plant, B)
    assert outbox(erp_plant.db, B) == []


def test_routes_are_checked(erp_plant: Any) -> None:
    from audit.entry import Actor

    actor = Actor("admin", "Admin")
    with pytest.raises(ConfigurationError, match="unknown event"):
        configure_route(erp_plant.db, actor, "batch.started", [], reason="x")
    with pytest.raises(ConfigurationError, match="cannot write"):
        configure_route(
            erp_plant.db, actor, "weighing.recorded", ["BatchProductionRecord"], reason="x"
        )
    with pytest.raises(ConfigurationError, match="reason"):
        configure_route(erp_plant.db, actor, "weighing.recorded", [], reason=" ")


def test_a_rejected_batch_can_be_reported_too(erp_plant: Any) -> None:
    from audit.entry import Actor

    configure_route(
        erp_plant.db,
        Actor("admin", "Admin"),
        "batch.rejected",
        ["BatchProductionRecord"],
        reason="ERP needs to know of rejected batches (CC-9)",
    )
    execute_batch(erp_plant, B)
    erp_plant.engine.reject(B, erp_plant.creds("qa2"), reason="granulate out of specification")
    (row,) = [r for r in outbox(erp_plant.db, B) if r["event"] == "batch.rejected"]
    record = erp_plant.engine.erp_b2mml.read(row["body"].encode()).model
    assert record.record_status == "Rejected"


def test_charging_can_post_the_consumption_instead_of_dispensing(erp_plant: Any) -> None:
    from audit.entry import Actor
    from gxpmes.testing.plant import HEAT

    actor = Actor("admin", "Admin")
    reason = "SAP posts goods issue when the container is charged (CC-12)"
    configure_route(erp_plant.db, actor, "weighing.recorded", [], reason=reason)
    configure_route(erp_plant.db, actor, "charge.recorded", ["MaterialConsumption"], reason=reason)
    erp_plant.start_batch(B, phases=(HEAT,))
    weighings = erp_plant.dispense(B, charge=False)
    assert outbox(erp_plant.db, B) == []  # dispensed, not yet charged: nothing posted
    erp_plant.engine.charge(B, weighings[0], erp_plant.creds("op1"))
    (row,) = outbox(erp_plant.db, B)
    assert row["event"] == "charge.recorded"
    performance = erp_plant.engine.erp_b2mml.read(row["body"].encode()).model
    (material,) = performance.responses[0].segments[0].materials
    assert material.use == "Consumed"
    weighing = next(w for w in erp_plant.engine.weighings(B) if w["weighing_id"] == weighings[0])
    assert (material.lot_id, str(material.quantity.value)) == (
        weighing["lot_id"],
        weighing["actual"],
    )
