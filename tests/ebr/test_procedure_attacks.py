"""Attacks on the enforced procedure, dispensing and capture, by one person with the
application's database login: two dispenses at once, a phase started by SQL, a role
granted by SQL, hostile timestamps and accounts. The engine refuses or notices, and
``verify_record`` names what was edited."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from ebr_support import HEAT, MIX, Plant
from sqlalchemy import select, text

from gxpmes.ebr.engine import CapturedValue, CaptureSource
from gxpmes.ebr.schema import LotRow
from gxpmes.errors import CaptureRefused, DispenseRefused, RecordIntegrityError
from gxpmes.records.verify import RecordReport, verify_record
from gxpmes.testing.plant import BALANCE, granulation_recipe
from isa95.common import Quantity

SHORT = "API-SHORT"  # 30 kg: one 20 kg dispense, not two


def _verify(plant: Plant) -> RecordReport:
    return verify_record(
        plant.db.engine, head_keys=plant.trusted_keys(), signature_keys=plant.signature_keys()
    )


def _second_line(plant: Plant) -> None:
    due = plant.clock() + timedelta(days=90)
    for equipment_id, cls in (("GRAN-02", "Granulator"), ("BLEND-02", "Blender")):
        plant.engine.register_equipment(
            plant.session("sup1"), equipment_id, level="Unit", equipment_class=cls,
            calibration_due=due,
        )  # fmt: skip
        plant.engine.record_cleaning(plant.session("op1"), equipment_id, "cleaned per SOP")


def _started(plant: Plant, batch: str, equipment: list[str], version: str = "1") -> None:
    plant.engine.create_batch(
        plant.session("sup1"), batch, recipe_id="MR-GRAN", version=version,
        lot_id=f"{batch}-LOT", planned=Quantity(value=Decimal("100"), unit="kg"),
        equipment=equipment,
    )  # fmt: skip
    plant.engine.start_batch(plant.session("op1"), batch)
    for path in ("GRAN/UP-GRAN", "GRAN/UP-GRAN/OP-WET"):
        plant.engine.command(plant.session("op1"), batch, path, "Start")


def test_parallel_dispenses_from_one_lot_never_overdraw_it(plant: Plant) -> None:
    _second_line(plant)
    plant.engine.receive_lot(
        plant.session("sup1"), SHORT, "API-PARA", Quantity(value=Decimal("30"), unit="kg"),
        expires=plant.clock() + timedelta(days=100),
    )  # fmt: skip
    plant.engine.set_lot_status(plant.session("qa2"), SHORT, "Released", reason="CoA ok")
    _started(plant, "B-1", ["GRAN-01", "BLEND-01"])
    _started(plant, "B-2", ["GRAN-02", "BLEND-02"])
    barrier = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def dispense(batch: str, user: str) -> None:
        barrier.wait()
        try:
            outcomes[batch] = plant.engine.weigh(
                batch, phase=HEAT, material_id="API-PARA", lot_id=SHORT,
                actual=Decimal("20.000"), balance_id=BALANCE, performer=plant.creds(user),
            )  # fmt: skip
        except DispenseRefused as exc:
            outcomes[batch] = exc

    threads = [
        threading.Thread(target=dispense, args=(b, u)) for b, u in (("B-1", "op1"), ("B-2", "op2"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    refused = [o for o in outcomes.values() if isinstance(o, DispenseRefused)]
    assert len(outcomes) == 2 and len(refused) == 1, outcomes
    assert f"lot {SHORT} holds 10.000 kg" in str(refused[0])
    with plant.db.read() as conn:
        held = conn.execute(select(LotRow.quantity).where(LotRow.lot_id == SHORT)).scalar_one()
    assert Decimal(held) == Decimal("10")
    consumed = [
        e for e in plant.db.ledger.entries_for("lot", SHORT) if e.event.action == "lot.consume"
    ]
    assert len(consumed) == 1 and consumed[0].event.new["quantity"] == "10.000"
    assert _verify(plant).ok


def test_a_phase_started_or_completed_by_sql_is_never_relied_on(plant: Plant) -> None:
    plant.engine.submit_recipe(plant.session("sup1"), granulation_recipe("2", ordered=True))
    plant.engine.sign_recipe("MR-GRAN", "2", "Performed", plant.creds("sup1"))
    plant.engine.sign_recipe("MR-GRAN", "2", "Approved", plant.creds("qa2"))
    _started(plant, "B-1", ["GRAN-01", "BLEND-01"], version="2")
    with plant.db.engine.begin() as conn:  # the predecessor "completed" by hand
        conn.execute(
            text("UPDATE ebr_step SET state = 'Complete' WHERE batch_id = 'B-1' AND path = :p"),
            {"p": HEAT},
        )
    with pytest.raises(RecordIntegrityError, match="ebr_step B-1/" + HEAT + " column state"):
        plant.engine.command(plant.session("op1"), "B-1", MIX, "Start")
    with plant.db.engine.begin() as conn:  # or the phase itself "started" by hand
        conn.execute(
            text("UPDATE ebr_step SET state = 'Running' WHERE batch_id = 'B-1' AND path = :p"),
            {"p": MIX},
        )
    with pytest.raises(RecordIntegrityError, match="column state"):
        plant.engine.complete_phase("B-1", MIX, plant.creds("op1"))
    report = _verify(plant)
    edited = {(p.table, p.key, p.column) for p in report.problems}
    assert ("ebr_step", f"B-1/{HEAT}", "state") in edited
    assert ("ebr_step", f"B-1/{MIX}", "state") in edited


def test_a_role_granted_by_sql_captures_nothing(plant: Plant) -> None:
    plant.start_batch("B-1", phases=(HEAT,))
    value = CapturedValue(
        "B-1", f"{HEAT}/temperature", "TT-101", Decimal("70"), "Cel", plant.clock()
    )
    with plant.db.engine.begin() as conn:
        conn.execute(text("UPDATE gx_user SET roles = 'OT Device' WHERE user_id = 'op1'"))
    with pytest.raises(CaptureRefused, match="does not match its audit trail"):
        plant.engine.capture([value], source=CaptureSource("op1", "rogue"))
    for account, client, message in (
        ("nobody", "c-1", "no account 'nobody'"),
        ("qa2", "c-1", "lacks permission 'capture.device'"),
        ("svc-ot", "", "client id '' is blank"),
        ("svc-ot", "x" * 300, "too long"),
    ):
        with pytest.raises(CaptureRefused, match=message):
            plant.engine.capture([value], source=CaptureSource(account, client))
    refused = [
        e.event.new
        for e in plant.db.ledger.entries_for("batch", "B-1")
        if e.event.action == "capture.refused"
    ]
    assert [r["account"] for r in refused] == ["op1", "nobody", "qa2", "svc-ot", "svc-ot"]
    assert plant.engine.values("B-1") == []


def test_hostile_timestamps_are_refused_and_the_skew_is_configurable(plant: Plant) -> None:
    plant.start_batch("B-1", phases=(HEAT,))
    now = plant.clock()

    def value(source_ts: Any, server_ts: Any = None) -> CapturedValue:
        return CapturedValue(
            "B-1", f"{HEAT}/temperature", "TT-101", Decimal("70"), "Cel", source_ts, server_ts
        )

    for hostile in (
        value(now.replace(year=2099)),
        value(now, server_ts=now + timedelta(days=1)),
        value(now + timedelta(seconds=61)),
        value(now.replace(tzinfo=None)),
    ):
        with pytest.raises(CaptureRefused):
            plant.engine.capture([value(now), hostile], source=plant.ot)  # all or nothing
    assert plant.engine.values("B-1") == []
    plant.engine.capture([value(now + timedelta(seconds=59))], source=plant.ot)
    plant.engine.future_skew = timedelta(0)
    with pytest.raises(CaptureRefused, match="ahead of the server clock"):
        plant.engine.capture([value(now + timedelta(seconds=1))], source=plant.ot)
    (seq,) = [v["seq"] for v in plant.engine.values("B-1")]
    entry = plant.db.ledger.entry(seq).event
    assert (entry.actor.user_id, entry.new["client_id"]) == ("svc-ot", plant.ot.client_id)
