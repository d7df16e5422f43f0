"""Plain-language pytest-bdd steps for validating a gxpmes-based MES.

Steps act on the ``gxp_plant`` fixture (see :mod:`gxpmes.testing.plant`).
*When* steps never raise a library error: they keep it, and *Then* steps
assert that the action succeeded or was refused with a given message —
so negative scenarios read as naturally as positive ones.

Phases are named by their last path element (``HEAT``, ``MIX``, ``BLEND``);
users by their ids (``op1``, ``op2``, ``sup1``, ``qa1``, ``qa2``, ``admin``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pytest_bdd import given, parsers, then, when
from sqlalchemy import text

from audit.errors import AuditError
from audit.keys import TrustedKey, generate_private_key
from audit.note import NoteSigner
from audit.verify import verify_ledger
from gxpmes.ebr.engine import CapturedValue
from gxpmes.errors import GxpError
from gxpmes.identity import Credentials, SignableRecord
from gxpmes.testing.plant import BALANCE, BLEND, HEAT, MIX, USERS, TestPlant
from isa95.common import Quantity
from isa95.errors import ISA95Error

__all__: list[str] = []  # steps register themselves; nothing to import by name

PHASES = {"HEAT": HEAT, "MIX": MIX, "BLEND": BLEND}
PARAMETERS = {
    "temperature": (HEAT, "Cel", "TT-101"),
    "speed": (MIX, "rpm", "SC-101"),
    "time": (MIX, "min", "TM-101"),
    "blend speed": (BLEND, "rpm", "SC-201"),
}


def _attempt(plant: TestPlant, action: Callable[[], Any]) -> Any:
    plant.state["error"] = None
    try:
        return action()
    except (GxpError, AuditError, ISA95Error) as exc:
        plant.state["error"] = exc
        return None


# --------------------------------------------------------------------- given


@given("a fresh GxP installation", target_fixture="plant")
def fresh_installation(gxp_plant: TestPlant) -> TestPlant:
    return gxp_plant


@given(parsers.parse('batch "{batch}" is created from the approved master recipe'))
def batch_created(plant: TestPlant, batch: str) -> None:
    plant.engine.create_batch(
        plant.session("sup1"),
        batch,
        recipe_id="MR-GRAN",
        version="1",
        lot_id=f"{batch}-LOT",
        planned=Quantity(value=Decimal("100"), unit="kg"),
        equipment=["GRAN-01", "BLEND-01"],
    )


@given(parsers.parse('batch "{batch}" is in execution'))
def batch_in_execution(plant: TestPlant, batch: str) -> None:
    plant.start_batch(batch)


@given(parsers.parse('phase "{phase}" of batch "{batch}" is running'))
def phase_running(plant: TestPlant, phase: str, batch: str) -> None:
    plant.engine.command(plant.session("op1"), batch, PHASES[phase], "Start")


@given(parsers.parse('phase "{phase}" of batch "{batch}" was performed by "{user}"'))
def phase_performed(plant: TestPlant, phase: str, batch: str, user: str) -> None:
    phase_running(plant, phase, batch)
    _phase_data(plant, batch, phase)
    plant.engine.complete_phase(batch, PHASES[phase], plant.creds(user))


def _phase_data(plant: TestPlant, batch: str, name: str) -> None:
    """The mandatory data of a running phase: its BOM (HEAT) and its required values."""
    path = PHASES[name]
    if name == "HEAT":  # its bill of materials: dispensed, verified, charged
        plant.dispense(batch, phase=path)
    parameter = {"HEAT": "temperature", "MIX": "speed", "BLEND": "speed"}[name]
    unit = "Cel" if parameter == "temperature" else "rpm"
    number = "70" if parameter == "temperature" else "120"
    plant.engine.capture(
        [
            CapturedValue(
                batch, f"{path}/{parameter}", f"{name}-PV", Decimal(number), unit, plant.clock()
            )
        ],
        source=plant.ot,
    )


@given(parsers.parse('batch "{batch}" has been executed and verified'))
def batch_executed(plant: TestPlant, batch: str) -> None:
    batch_in_execution(plant, batch)
    for name, path in PHASES.items():
        plant.engine.command(plant.session("op1"), batch, path, "Start")
        _phase_data(plant, batch, name)
        if name == "MIX":
            plant.engine.capture(
                [
                    CapturedValue(
                        batch, f"{path}/time", "TM-101", Decimal("10"), "min", plant.clock()
                    )
                ],
                source=plant.ot,
            )
        plant.engine.complete_phase(batch, path, plant.creds("op1"))
        plant.engine.verify_phase(batch, path, plant.creds("op2"))
    plant.engine.complete_batch(
        plant.session("op1"), batch, Quantity(value=Decimal("98"), unit="kg")
    )


@given(parsers.parse('batch "{batch}" has been reviewed by QA'))
def batch_reviewed(plant: TestPlant, batch: str) -> None:
    qa_reviews(plant, batch)
    assert plant.state["error"] is None, plant.state["error"]


@given(parsers.parse('a draft master recipe version "{version}"'))
def draft_recipe(plant: TestPlant, version: str) -> None:
    from gxpmes.testing.plant import granulation_recipe

    plant.engine.submit_recipe(plant.session("sup1"), granulation_recipe(version))


@given("a signed checkpoint of the audit trail", target_fixture="checkpoint")
def signed_checkpoint(plant: TestPlant) -> dict[str, Any]:
    signer = NoteSigner("validation-audit", generate_private_key())
    note = plant.db.ledger.checkpoint(signer)
    plant.state["checkpoint"] = (note, [TrustedKey(signer.verifier)])
    return {"note": note}


# ---------------------------------------------------------------------- when


@when(parsers.parse('"{user}" logs in with password "{password}"'))
def log_in(plant: TestPlant, user: str, password: str) -> None:
    _attempt(plant, lambda: plant.identity.login(user, password))


@when(parsers.parse('"{user}" logs in with the correct password'))
def log_in_correctly(plant: TestPlant, user: str) -> None:
    _attempt(plant, lambda: plant.identity.login(user, USERS[user][2]))


@when(parsers.parse('"{admin}" unlocks "{user}" with reason "{reason}"'))
def unlock(plant: TestPlant, admin: str, user: str, reason: str) -> None:
    _attempt(plant, lambda: plant.accounts.unlock(_signed_by(plant, admin), user, reason=reason))


@when(parsers.parse('"{admin}" creates user "{user}" named "{name}" with role "{role}"'))
def create_user(plant: TestPlant, admin: str, user: str, name: str, role: str) -> None:
    _attempt(
        plant,
        lambda: plant.accounts.create_user(
            _signed_by(plant, admin), user, name, [role], "Brand-New-User-2026!"
        ),
    )


@when(parsers.parse('"{admin}" deactivates "{user}" with reason "{reason}"'))
def deactivate(plant: TestPlant, admin: str, user: str, reason: str) -> None:
    _attempt(
        plant, lambda: plant.accounts.deactivate(_signed_by(plant, admin), user, reason=reason)
    )


def _signed_by(plant: TestPlant, user: str) -> Credentials:
    """``user``'s signature components in their session (account changes are signed)."""
    return Credentials(user, USERS[user][2], plant.session(user))


@when(parsers.parse('"{user}" changes the password to "{new}"'))
def change_password(plant: TestPlant, user: str, new: str) -> None:
    _attempt(plant, lambda: plant.identity.change_password(user, USERS[user][2], new))


@when(parsers.parse('{minutes:d} minutes pass without activity by "{user}"'))
def idle(plant: TestPlant, minutes: int, user: str) -> None:
    plant.clock.advance(minutes=minutes)


@when(parsers.parse('"{user}" uses the session to review'))
def use_session(plant: TestPlant, user: str) -> None:
    _attempt(plant, lambda: plant.identity.authorise(plant.session(user), "review.assess"))


@when(
    parsers.parse(
        "the OT system reports {parameter} = {value} {unit} "
        'with quality "{quality}" for batch "{batch}"'
    )
)
def ot_reports(
    plant: TestPlant, parameter: str, value: str, unit: str, quality: str, batch: str
) -> None:
    path, _unit, tag = PARAMETERS[parameter]
    name = "speed" if parameter == "blend speed" else parameter
    plant.state["captured"] = _attempt(
        plant,
        lambda: plant.engine.capture(
            [
                CapturedValue(
                    batch,
                    f"{path}/{name}",
                    tag,
                    Decimal(value),
                    unit,
                    plant.clock(),
                    quality=quality,
                )
            ],
            source=plant.ot,
        ),
    )


@when(
    parsers.parse(
        '"{user}" enters {parameter} = {value} {unit} by hand '
        'for batch "{batch}" because "{reason}"'
    )
)
def manual_entry(
    plant: TestPlant, user: str, parameter: str, value: str, unit: str, batch: str, reason: str
) -> None:
    path, _unit, tag = PARAMETERS[parameter]
    _attempt(
        plant,
        lambda: plant.engine.manual_entry(
            plant.session(user),
            CapturedValue(batch, f"{path}/{parameter}", tag, Decimal(value), unit, plant.clock()),
            reason=reason,
        ),
    )


@when(parsers.parse('"{user}" signs phase "{phase}" of batch "{batch}" as Performed'))
def sign_performed(plant: TestPlant, user: str, phase: str, batch: str) -> None:
    _attempt(plant, lambda: plant.engine.complete_phase(batch, PHASES[phase], plant.creds(user)))


@when(
    parsers.parse(
        '"{user}" signs phase "{phase}" of batch "{batch}" as Performed with password "{password}"'
    )
)
def sign_performed_with(plant: TestPlant, user: str, phase: str, batch: str, password: str) -> None:
    _attempt(
        plant,
        lambda: plant.engine.complete_phase(batch, PHASES[phase], plant.creds(user, password)),
    )


@when(parsers.parse('"{user}" signs phase "{phase}" of batch "{batch}" as Verified'))
def sign_verified(plant: TestPlant, user: str, phase: str, batch: str) -> None:
    _attempt(plant, lambda: plant.engine.verify_phase(batch, PHASES[phase], plant.creds(user)))


@when(parsers.parse('"{user}" signs the record "{record}" as "{meaning}"'))
def sign_record(plant: TestPlant, user: str, record: str, meaning: str) -> None:
    signable = SignableRecord("document", record, {"title": record, "revision": 1}, record)
    plant.state["record"] = signable
    plant.state["signature"] = _attempt(
        plant, lambda: plant.signatures.sign(signable, meaning, plant.creds(user))
    )


@when(parsers.parse('"{user}" weighs {actual} kg of lot "{lot}" for batch "{batch}"'))
def weigh(plant: TestPlant, user: str, actual: str, lot: str, batch: str) -> None:
    """Dispense from ``lot`` for PH-HEAT's bill of materials on the plant's balance."""
    material = {"API-L1": "API-PARA", "LAC-L7": "LACTOSE"}.get(lot, "API-PARA")
    plant.state["weighing"] = _attempt(
        plant,
        lambda: plant.engine.weigh(
            batch,
            phase=HEAT,
            material_id=material,
            lot_id=lot,
            actual=Decimal(actual),
            balance_id=BALANCE,
            performer=plant.creds(user),
        ),
    )


@when(parsers.parse('"{user}" verifies the weighing'))
def verify_weighing(plant: TestPlant, user: str) -> None:
    _attempt(
        plant, lambda: plant.engine.verify_weighing(plant.state["weighing"], plant.creds(user))
    )


@when(parsers.parse('"{user}" creates batch "{batch}" from master recipe version "{version}"'))
def create_batch_from(plant: TestPlant, user: str, batch: str, version: str) -> None:
    _attempt(
        plant,
        lambda: plant.engine.create_batch(
            plant.session(user),
            batch,
            recipe_id="MR-GRAN",
            version=version,
            lot_id=f"{batch}-LOT",
            planned=Quantity(value=Decimal("100"), unit="kg"),
            equipment=["GRAN-01", "BLEND-01"],
        ),
    )


@when(parsers.parse('"{user}" sends command "{command}" to phase "{phase}" of batch "{batch}"'))
def send_command(plant: TestPlant, user: str, command: str, phase: str, batch: str) -> None:
    _attempt(
        plant, lambda: plant.engine.command(plant.session(user), batch, PHASES[phase], command)
    )


@when(parsers.parse('"{user}" opens a deviation "{title}" on batch "{batch}"'))
def open_deviation(plant: TestPlant, user: str, title: str, batch: str) -> None:
    plant.state["deviation"] = _attempt(
        plant, lambda: plant.engine.open_deviation(plant.session(user), batch, title)
    )


@when(parsers.parse('QA reviews batch "{batch}"'))
def qa_reviews(plant: TestPlant, batch: str) -> None:
    def review() -> None:
        for item in plant.engine.review_by_exception(batch):
            if item.kind.startswith("exception") and item.open:
                plant.engine.assess_exception(
                    item.item_id, plant.creds("qa1"), comment="assessed, no impact"
                )
            if item.kind == "deviation" and item.open and "[open]" in item.detail:
                plant.engine.investigate_deviation(
                    plant.session("qa1"),
                    item.item_id,
                    investigation="root cause found",
                    impact="no impact",
                )
        plant.engine.complete_review(batch, plant.creds("qa1"))
        plant.review_trail(batch, "qa1")  # Annex 11 §9: release needs the trail reviewed

    _attempt(plant, review)


@when(parsers.parse('"{user}" reviews the audit trail of batch "{batch}"'))
def review_trail(plant: TestPlant, user: str, batch: str) -> None:
    plant.state["trail_review"] = _attempt(plant, lambda: plant.review_trail(batch, user))


@when(parsers.parse('"{user}" closes the deviation'))
def close_deviation(plant: TestPlant, user: str) -> None:
    _attempt(
        plant,
        lambda: plant.engine.close_deviation(
            plant.state["deviation"], plant.creds(user), conclusion="CAPA opened"
        ),
    )


@when(parsers.parse('"{user}" releases batch "{batch}"'))
def release(plant: TestPlant, user: str, batch: str) -> None:
    _attempt(plant, lambda: plant.engine.release(batch, plant.creds(user)))


@when(parsers.parse('"{user}" exports batch "{batch}" as B2MML'))
def export(plant: TestPlant, user: str, batch: str) -> None:
    import os

    from gxpmes.ebr.export import export_batch
    from isa95.b2mml.documents import B2MML

    schemas = os.environ.get("GXPMES_B2MML_SCHEMAS")
    plant.state["export"] = _attempt(
        plant, lambda: export_batch(plant.engine, batch, B2MML(schemas))
    )


@when(parsers.parse("someone edits audit entry {seq:d} directly in the database"))
def tamper_edit(plant: TestPlant, seq: int) -> None:
    with plant.db.engine.begin() as conn:
        if plant.db.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_update"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry"))
        conn.execute(
            text("UPDATE audit_entry SET canonical = canonical || CAST(' ' AS BLOB) WHERE seq = :s")
            if plant.db.engine.dialect.name == "sqlite"
            else text(
                "UPDATE audit_entry SET canonical = canonical || '\\x20'::bytea WHERE seq = :s"
            ),
            {"s": seq},
        )


@when(parsers.parse("someone deletes the last {count:d} audit entries"))
def tamper_truncate(plant: TestPlant, count: int) -> None:
    size = plant.db.ledger.size()
    plant.state["deleted_from"] = size - count
    with plant.db.engine.begin() as conn:
        if plant.db.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS audit_entry_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry"))
        conn.execute(text("DELETE FROM audit_entry WHERE seq >= :s"), {"s": size - count})


@when("someone tries to change an audit entry with SQL")
def try_sql_update(plant: TestPlant) -> None:
    plant.state["error"] = None
    try:
        with plant.db.engine.begin() as conn:
            conn.execute(text("UPDATE audit_entry SET object_key = 0 WHERE seq = 1"))
    except Exception as exc:  # the database itself refuses
        plant.state["error"] = exc


# ---------------------------------------------------------------------- then


@then("the action succeeds")
def action_succeeds(plant: TestPlant) -> None:
    assert plant.state.get("error") is None, f"refused: {plant.state['error']}"


@then(parsers.parse('the action is refused with "{message}"'))
def action_refused(plant: TestPlant, message: str) -> None:
    error = plant.state.get("error")
    assert error is not None, "the action was not refused"
    assert message.lower() in str(error).lower(), f"refused, but with: {error}"


@then(parsers.parse('the account "{user}" is locked'))
def account_locked(plant: TestPlant, user: str) -> None:
    assert plant.identity.user(user).locked


@then(parsers.parse('the account "{user}" is not locked'))
def account_not_locked(plant: TestPlant, user: str) -> None:
    assert not plant.identity.user(user).locked


@then(parsers.parse('the audit trail records "{action}" for {object_type} "{object_id}"'))
def trail_records(plant: TestPlant, action: str, object_type: str, object_id: str) -> None:
    actions = [e.event.action for e in plant.db.ledger.entries_for(object_type, object_id)]
    assert action in actions, f"{action} not in {actions}"


@then(
    parsers.parse(
        'the audit trail records "{action}" for {object_type} "{object_id}" with reason "{reason}"'
    )
)
def trail_records_reason(
    plant: TestPlant, action: str, object_type: str, object_id: str, reason: str
) -> None:
    entries = [
        e for e in plant.db.ledger.entries_for(object_type, object_id) if e.event.action == action
    ]
    assert entries and entries[-1].event.reason == reason


@then(parsers.parse('the audit trail records a login by "{user}"'))
def trail_records_login(plant: TestPlant, user: str) -> None:
    from audit.entry import parse_entry

    logins = [
        parse_entry(row[1]) for row in plant.db.ledger.iter_raw_rows() if b'"auth.login"' in row[1]
    ]
    assert any(e.event.actor.user_id == user for e in logins)


@then(parsers.parse('an "{kind}" exception is raised for batch "{batch}"'))
def exception_raised(plant: TestPlant, kind: str, batch: str) -> None:
    kinds = [i.kind for i in plant.engine.review_by_exception(batch)]
    assert f"exception:{kind}" in kinds, kinds


@then(parsers.parse('no exception is raised for batch "{batch}"'))
def no_exception(plant: TestPlant, batch: str) -> None:
    kinds = [
        i.kind for i in plant.engine.review_by_exception(batch) if i.kind.startswith("exception")
    ]
    assert kinds == [], kinds


@then(parsers.parse('batch "{batch}" has {count:d} captured values'))
def captured_count(plant: TestPlant, batch: str, count: int) -> None:
    assert len(plant.engine.values(batch)) == count


@then(parsers.parse('batch "{batch}" is "{status}"'))
def batch_status(plant: TestPlant, batch: str, status: str) -> None:
    assert plant.engine.batch(batch)["status"] == status


@then(parsers.parse('the signature shows "{text_}"'))
def signature_shows(plant: TestPlant, text_: str) -> None:
    signature = plant.state["signature"]
    assert signature is not None and text_ in signature.manifestation, getattr(
        signature, "manifestation", None
    )


@then("the signature does not verify for altered content")
def signature_altered(plant: TestPlant) -> None:
    from gxpmes.errors import SignatureError

    record = plant.state["record"]
    altered = SignableRecord(
        record.signable_type,
        record.signable_id,
        {**record.content, "revision": 2},
        record.signable_scope,
    )
    plant.signatures.verify_signature(plant.state["signature"], record)
    try:
        plant.signatures.verify_signature(plant.state["signature"], altered)
    except SignatureError:
        return
    raise AssertionError("the signature verified against altered content")


@then("the signature does not verify when copied to another record")
def signature_copied(plant: TestPlant) -> None:
    from gxpmes.errors import SignatureError

    record = plant.state["record"]
    other = SignableRecord(
        record.signable_type, record.signable_id + "-COPY", record.content, record.signable_scope
    )
    try:
        plant.signatures.verify_signature(plant.state["signature"], other)
    except SignatureError:
        return
    raise AssertionError("the signature verified on another record")


@then(parsers.parse('every signature of batch "{batch}" verifies'))
def signatures_verify(plant: TestPlant, batch: str) -> None:
    results = plant.engine.verify_batch_signatures(batch)
    assert results and all(problem is None for _s, problem in results), results


@then("the audit trail verifies")
def trail_verifies(plant: TestPlant) -> None:
    note, keys = plant.state.get("checkpoint", (None, []))
    report = verify_ledger(plant.db.ledger, checkpoint=note, trusted_keys=keys)
    assert report.ok, report.summary()


@then(parsers.parse('verification reports "{problem}" at entry {seq:d}'))
def verification_reports_at(plant: TestPlant, problem: str, seq: int) -> None:
    note, keys = plant.state.get("checkpoint", (None, []))
    report = verify_ledger(plant.db.ledger, checkpoint=note, trusted_keys=keys)
    assert (str(report.problem), report.first_bad_seq) == (problem, seq), report.summary()


@then(parsers.parse('verification reports "{problem}" at the first deleted entry'))
def verification_reports_first_deleted(plant: TestPlant, problem: str) -> None:
    verification_reports_at(plant, problem, plant.state["deleted_from"])


@then("the database refuses the change")
def database_refuses(plant: TestPlant) -> None:
    error = plant.state.get("error")
    assert error is not None and "append-only" in str(error)


@then(parsers.parse('the export is recorded in the audit trail of batch "{batch}"'))
def export_recorded(plant: TestPlant, batch: str) -> None:
    exported = plant.state.get("export")
    assert exported is not None, plant.state.get("error")
    entry = plant.db.ledger.entries_for("batch", batch)[-1]
    assert entry.event.action == "batch.export"
    assert entry.event.new["batch_production_record_sha256"] == exported.record_sha256


@then(parsers.parse('lot "{lot}" was used in lot "{product}"'))
def genealogy(plant: TestPlant, lot: str, product: str) -> None:
    assert product in plant.engine.where_used(lot)
    assert lot in plant.engine.where_from(product)


@then(parsers.parse('the equipment logbook of "{equipment}" shows "{event}"'))
def logbook_shows(plant: TestPlant, equipment: str, event: str) -> None:
    assert event in [e["event"] for e in plant.engine.equipment_log(equipment)]
