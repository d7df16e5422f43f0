"""Steps for the enforced procedure, weigh & dispense and OT capture identity
(21 CFR 11.10(f), 11.10(h), 211.101, 211.188(b)).

The scenarios run on the *strict* master recipe MR-GRAN v2: the plant's
granulation recipe with its order declared (MIX after HEAT, blending after
granulation), an in-process control ``moisture`` on HEAT and a second person
required for HEAT's manual entries and IPC results. Registered next to
:mod:`gxpmes.testing.steps` by the plugin; *When* steps keep refusals for the
shared *Then* steps.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pytest_bdd import given, parsers, then, when

from gxpmes.ebr.engine import CapturedValue, CaptureSource
from gxpmes.testing.plant import BOM, HEAT, TestPlant, granulation_recipe
from gxpmes.testing.steps import PHASES, _attempt
from isa95.common import Quantity
from isa95.recipe import FormulaParameter, Recipe

__all__: list[str] = []  # steps register themselves

STRICT_VERSION = "2"
MOISTURE = FormulaParameter(
    id="moisture", low=Decimal("2.0"), high=Decimal("4.0"), target=Decimal("3.0"), unit="%"
)


def strict_recipe() -> Recipe:
    """MR-GRAN v2: ordered, with an IPC on HEAT and second-person checks of its entries."""
    recipe = granulation_recipe(STRICT_VERSION, ordered=True)
    assert recipe.procedure is not None
    operation = recipe.procedure.unit_procedures[0].operations[0]
    heat = operation.phases[0].model_copy(update={"controls": [MOISTURE], "verify_entries": True})
    operation.phases[0] = heat
    return Recipe.model_validate(recipe.model_dump())


def _value(plant: TestPlant, batch: str, phase: str, parameter: str, number: str) -> CapturedValue:
    units = {"temperature": "Cel", "speed": "rpm", "time": "min"}
    return CapturedValue(
        batch, f"{PHASES[phase]}/{parameter}", f"{phase}-PV", Decimal(number),
        units.get(parameter, "Cel"), plant.clock(),
    )  # fmt: skip


@given(parsers.parse('batch "{batch}" of the strict master recipe is created and started'))
def strict_batch_started(plant: TestPlant, batch: str) -> None:
    engine = plant.engine
    engine.submit_recipe(plant.session("sup1"), strict_recipe())
    engine.sign_recipe("MR-GRAN", STRICT_VERSION, "Performed", plant.creds("sup1"))
    engine.sign_recipe("MR-GRAN", STRICT_VERSION, "Approved", plant.creds("qa2"))
    engine.create_batch(
        plant.session("sup1"),
        batch,
        recipe_id="MR-GRAN",
        version=STRICT_VERSION,
        lot_id=f"{batch}-LOT",
        planned=Quantity(value=Decimal("100"), unit="kg"),
        equipment=["GRAN-01", "BLEND-01"],
    )
    engine.start_batch(plant.session("op1"), batch)


@given(parsers.parse('the granulation unit procedure of batch "{batch}" is running'))
def granulation_running(plant: TestPlant, batch: str) -> None:
    for path in ("GRAN/UP-GRAN", "GRAN/UP-GRAN/OP-WET"):
        plant.engine.command(plant.session("op1"), batch, path, "Start")


@given(parsers.parse('phase "{phase}" of batch "{batch}" has all its data'))
@when(parsers.parse('phase "{phase}" of batch "{batch}" gets all its data'))
def phase_data(plant: TestPlant, phase: str, batch: str) -> None:
    """Dispense and charge the BOM, capture the required value, and for the strict
    HEAT record the IPC result and have it verified by a second person."""
    engine = plant.engine
    if phase == "HEAT":
        plant.dispense(batch, phase=HEAT)
    parameter = "temperature" if phase == "HEAT" else "speed"
    number = "70" if phase == "HEAT" else "120"
    engine.capture([_value(plant, batch, phase, parameter, number)], source=plant.ot)
    recipe, _ = engine.recipe(
        engine.batch(batch)["recipe_id"], engine.batch(batch)["recipe_version"]
    )
    if phase == "HEAT" and recipe.version == STRICT_VERSION:
        item = f"{batch}/IPC-moisture"
        engine.record_item(
            plant.session("op1"), batch, "ipc", item,
            {"phase": HEAT, "control": "moisture", "result": "3.1"},
        )  # fmt: skip
        engine.sign_entry(batch, item, plant.creds("op1"))
        engine.verify_entry(batch, item, plant.creds("op2"))


@given(parsers.parse('phase "{phase}" of batch "{batch}" is performed and verified'))
def phase_performed_verified(plant: TestPlant, phase: str, batch: str) -> None:
    plant.engine.command(plant.session("op1"), batch, PHASES[phase], "Start")
    phase_data(plant, phase, batch)
    plant.engine.complete_phase(batch, PHASES[phase], plant.creds("op1"))
    plant.engine.verify_phase(batch, PHASES[phase], plant.creds("op2"))


@when(parsers.parse('"{user}" starts phase "{phase}" of batch "{batch}"'))
def start_phase(plant: TestPlant, user: str, phase: str, batch: str) -> None:
    _attempt(
        plant, lambda: plant.engine.command(plant.session(user), batch, PHASES[phase], "Start")
    )


@when(parsers.parse('"{user}" completes phase "{phase}" of batch "{batch}"'))
def complete_phase(plant: TestPlant, user: str, phase: str, batch: str) -> None:
    _attempt(plant, lambda: plant.engine.complete_phase(batch, PHASES[phase], plant.creds(user)))


@when(parsers.parse('"{user}" verifies phase "{phase}" of batch "{batch}"'))
def verify_phase(plant: TestPlant, user: str, phase: str, batch: str) -> None:
    _attempt(plant, lambda: plant.engine.verify_phase(batch, PHASES[phase], plant.creds(user)))


@when(parsers.parse('"{user}" enters temperature = {number} Cel by hand in batch "{batch}"'))
def manual_temperature(plant: TestPlant, user: str, number: str, batch: str) -> None:
    plant.state["entry"] = _attempt(
        plant,
        lambda: plant.engine.manual_entry(
            plant.session(user),
            _value(plant, batch, "HEAT", "temperature", number),
            reason="probe TT-101 offline; handheld probe HP-3",
        ),
    )


@when(parsers.parse('"{user}" signs the manual entry in batch "{batch}"'))
def sign_manual(plant: TestPlant, user: str, batch: str) -> None:
    entry = str(plant.state["entry"])
    _attempt(plant, lambda: plant.engine.sign_entry(batch, entry, plant.creds(user)))


@when(parsers.parse('"{user}" verifies the manual entry in batch "{batch}"'))
def verify_manual(plant: TestPlant, user: str, batch: str) -> None:
    entry = str(plant.state["entry"])
    _attempt(plant, lambda: plant.engine.verify_entry(batch, entry, plant.creds(user)))


@when(parsers.parse('"{user}" completes batch "{batch}" with {quantity} kg'))
def complete_batch(plant: TestPlant, user: str, batch: str, quantity: str) -> None:
    _attempt(
        plant,
        lambda: plant.engine.complete_batch(
            plant.session(user), batch, Quantity(value=Decimal(quantity), unit="kg")
        ),
    )


@when(parsers.parse('QA completes the review of batch "{batch}"'))
def complete_review(plant: TestPlant, batch: str) -> None:
    _attempt(plant, lambda: plant.engine.complete_review(batch, plant.creds("qa1")))


@then(parsers.parse('the refusal is in the audit trail of phase "{phase}" of batch "{batch}"'))
def refusal_audited(plant: TestPlant, phase: str, batch: str) -> None:
    trail = plant.db.ledger.entries_for("batch_step", f"{batch}/{PHASES[phase]}")
    refused = [
        e.event.new for e in trail if e.event.action in ("procedure.refused", "signature.refused")
    ]
    assert refused, "no refusal recorded"
    assert str(plant.state["error"]) in str(refused[-1]), refused[-1]


@then(parsers.parse('phase "{phase}" of batch "{batch}" is {state}'))
def phase_state(plant: TestPlant, phase: str, batch: str, state: str) -> None:
    steps = {s["path"]: s["state"] for s in plant.engine.steps(batch)}
    assert steps[PHASES[phase]] == state, steps


# ------------------------------------------------------------ weigh & dispense


@given(
    parsers.parse('a released lot "{lot}" of {quantity} kg {material} expiring in {days:d} days')
)
def released_lot(plant: TestPlant, lot: str, quantity: str, material: str, days: int) -> None:
    plant.engine.receive_lot(
        plant.session("sup1"),
        lot,
        material,
        Quantity(value=Decimal(quantity), unit="kg"),
        expires=plant.clock() + timedelta(days=days),
    )
    plant.engine.set_lot_status(plant.session("qa2"), lot, "Released", reason="CoA reviewed")


@given(parsers.parse('the calibration of balance "{balance}" is overdue'))
def calibration_overdue(plant: TestPlant, balance: str) -> None:
    plant.engine.record_maintenance(
        plant.session("sup1"),
        balance,
        "calibration certificate withdrawn",
        calibration_due=plant.clock() - timedelta(days=1),
    )


@when(
    parsers.parse(
        '"{user}" dispenses {actual} kg of {material} from lot "{lot}" '
        'on balance "{balance}" for batch "{batch}"'
    )
)
def dispense(
    plant: TestPlant, user: str, actual: str, material: str, lot: str, balance: str, batch: str
) -> None:
    plant.state["weighing"] = _attempt(
        plant,
        lambda: plant.engine.weigh(
            batch,
            phase=HEAT,
            material_id=material,
            lot_id=lot,
            actual=Decimal(actual),
            balance_id=balance,
            performer=plant.creds(user),
        ),
    )


@then(parsers.parse('lot "{lot}" holds {quantity} kg'))
def lot_holds(plant: TestPlant, lot: str, quantity: str) -> None:
    with plant.db.read() as conn:
        from sqlalchemy import select

        from gxpmes.ebr.schema import LotRow

        held = conn.execute(select(LotRow.quantity).where(LotRow.lot_id == lot)).scalar_one()
    assert Decimal(held) == Decimal(quantity), held


@then(parsers.parse('the consumption is in the audit trail of lot "{lot}"'))
def consumption_on_lot_trail(plant: TestPlant, lot: str) -> None:
    consumed = [
        e for e in plant.db.ledger.entries_for("lot", lot) if e.event.action == "lot.consume"
    ]
    assert consumed and consumed[-1].event.new["weighing_id"] == plant.state["weighing"]


@when(parsers.parse('"{user}" charges the dispensed containers into the unit of batch "{batch}"'))
def charge_all(plant: TestPlant, user: str, batch: str) -> None:
    def charge() -> None:
        for weighing in plant.engine.weighings(batch):
            plant.engine.charge(batch, weighing["weighing_id"], plant.creds(user))

    _attempt(plant, charge)


@then(parsers.parse('every container of batch "{batch}" is recorded as charged into "{unit}"'))
def charged_into(plant: TestPlant, batch: str, unit: str) -> None:
    charges = plant.engine.charges(batch)
    assert len(charges) == len(BOM) and {c["equipment_id"] for c in charges} == {unit}, charges


# ------------------------------------------------------------------ capture


@when(
    parsers.parse(
        'the account "{account}" captures temperature = {number} Cel for batch "{batch}" '
        "as client {client}"
    )
)
def capture_as(plant: TestPlant, account: str, number: str, batch: str, client: str) -> None:
    value = _value(plant, batch, "HEAT", "temperature", number)
    plant.state["seqs"] = _attempt(
        plant, lambda: plant.engine.capture([value], source=CaptureSource(account, client))
    )


@when(
    parsers.parse('the OT connector captures parameter {parameter} = {number} for batch "{batch}"')
)
def capture_parameter(plant: TestPlant, parameter: str, number: str, batch: str) -> None:
    value = _value(plant, batch, "HEAT", parameter, number)
    plant.state["seqs"] = _attempt(plant, lambda: plant.engine.capture([value], source=plant.ot))


@when(
    parsers.parse(
        "the OT connector captures temperature = {number} Cel stamped {seconds:d} s ahead "
        'for batch "{batch}"'
    )
)
def capture_ahead(plant: TestPlant, number: str, seconds: int, batch: str) -> None:
    value = _value(plant, batch, "HEAT", "temperature", number)
    ahead = CapturedValue(
        value.batch_id, value.parameter, value.tag, value.value, value.unit,
        plant.clock() + timedelta(seconds=seconds),
    )  # fmt: skip
    plant.state["seqs"] = _attempt(plant, lambda: plant.engine.capture([ahead], source=plant.ot))


@then(parsers.parse('the value\'s audit entry names account "{account}" and client "{client}"'))
def value_entry_names(plant: TestPlant, account: str, client: str) -> None:
    (seq,) = plant.state["seqs"]
    event = plant.db.ledger.entry(seq).event
    assert (event.actor.user_id, event.new["client_id"]) == (account, client), event
