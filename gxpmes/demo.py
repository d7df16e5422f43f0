"""``gxpmes demo``: one batch end to end on a local SQLite file.

Builds a small plant (site › area › process cell › granulator and blender),
users with Part 11 roles, released material lots and a master recipe approved
with two signatures; executes a granulation + blending batch fed with
simulated plant values (a few out of limits, one of doubtful quality), with
weighing and second-person checks, signatures, review by exception, a
deviation investigated and closed, release by QA, B2MML export, a signed
checkpoint and a final verification of the audit trail — and shows that a
tampered copy of the database is caught. Everything printed is computed.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from audit.db import open_engine
from audit.keys import TrustedKey, generate_private_key, load_private_key, write_key_pair
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import verify_ledger
from gxpmes.database import Database
from gxpmes.ebr.engine import BatchEngine, CapturedValue, CaptureSource
from gxpmes.identity import (
    AccountAdministration,
    Credentials,
    IdentityService,
    SignatureService,
)
from gxpmes.identity.signatures import key_id_of
from gxpmes.records.verify import verify_record
from gxpmes.testing.plant import granulation_recipe
from isa95.common import Quantity
from isa95.errors import SchemaError

BATCH = "B-2026-0001"
HEAT, MIX, BLEND = (
    "GRAN/UP-GRAN/OP-WET/PH-HEAT",
    "GRAN/UP-GRAN/OP-WET/PH-MIX",
    "GRAN/UP-BLEND/OP-BLEND/PH-BLEND",
)
PEOPLE = {
    "admin": ("Alex Admin", ["Administrator"]),
    "sup1": ("Sam Supervisor", ["Supervisor"]),
    "op1": ("Olga Operator", ["Operator"]),
    "op2": ("Otto Operator", ["Operator"]),
    "qa1": ("Quinn Reviewer", ["QA Reviewer"]),
    "qa2": ("Petra Approver", ["QA Approver"]),
    "svc-ot": ("OT data collector", ["OT Device"]),
}
OT_SOURCE = CaptureSource("svc-ot", "demo-plant-simulator")
"""The simulated plant delivers its values under the device account svc-ot."""


def _say(step: str) -> None:
    print(f"[demo] {step}", flush=True)


def _find_schemas(explicit: Path | None) -> Path | None:
    """The folder with MESA's V0701 schemas for the export step; None skips the export.

    A folder the user named (``--schemas`` or ``GXPMES_B2MML_SCHEMAS``) must
    hold them: a wrong one is an error before anything runs, never a step
    silently skipped. Otherwise the installed schemas
    (``gxpmes b2mml schemas install``), then a ``shared/`` checkout beside
    the project, are used when present.
    """
    from isa95.b2mml.schema_store import installed_schema_dir
    from isa95.b2mml.schemas import ENV_VAR

    named = explicit or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if named is not None:
        source = "--schemas" if explicit else ENV_VAR
        if not named.expanduser().is_dir():
            raise SchemaError(f"{source} {named} is not a folder")
        if not any((named.expanduser() / "V0701").glob("*.xsd")):
            raise SchemaError(
                f"{source} {named} holds no V0701 B2MML schemas (expected V0701/*.xsd in it; "
                "the demo exports B2MML V0701)"
            )
        return named.expanduser()
    here = Path(__file__).resolve().parents[2]
    candidates = [
        installed_schema_dir(),
        Path.cwd().parent / "shared" / "schemas" / "b2mml",
        here / "shared" / "schemas" / "b2mml",
    ]
    return next((c for c in candidates if c and any((c / "V0701").glob("*.xsd"))), None)


def _simulated(
    batch: str,
    parameter: str,
    tag: str,
    unit: str,
    start: datetime,
    count: int,
    centre: float,
    swing: float,
    spikes: dict[int, str] | None = None,
    doubtful: frozenset[int] = frozenset(),
) -> list[CapturedValue]:
    values = []
    for i in range(count):
        reading = f"{centre + swing * math.sin(i / 9):.2f}"
        if spikes and i in spikes:
            reading = spikes[i]
        values.append(
            CapturedValue(
                batch,
                parameter,
                tag,
                Decimal(reading),
                unit,
                start + timedelta(seconds=i),
                quality="Uncertain" if i in doubtful else "Good",
            )
        )
    return values


def _copy_database(source_path: Path, copy_path: Path) -> Path:
    """A consistent copy of an SQLite database (the online backup API), replacing any old one."""
    copy_path.unlink(missing_ok=True)
    with sqlite3.connect(source_path) as source, sqlite3.connect(copy_path) as copy:
        source.backup(copy)
    return copy_path


def run_demo(out: Path, schemas: Path | None = None) -> int:
    """Run the demo into folder ``out``; returns the process exit code.

    Raises :class:`~isa95.errors.SchemaError` before doing anything when a
    schema folder was named but holds no B2MML V0701 schemas.
    """
    schema_dir = _find_schemas(schemas)
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / "gxpmes-demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    keys = out / "keys"
    if keys.exists():
        shutil.rmtree(keys)
    passphrase = secrets.token_urlsafe(18)
    write_key_pair(generate_private_key(), keys, passphrase.encode())
    (keys / "DEMO-PASSPHRASE.txt").write_text(
        "Demo only: never store a real key's passphrase beside it.\n" + passphrase + "\n"
    )
    system_key = load_private_key(keys / "private.pem", passphrase.encode())
    _say(f"1/9 installation in {out.resolve()} (system key in {keys})")

    # One installation key: it countersigns e-signatures, signs every tree head
    # of the log (so rows inserted behind the application's back show as
    # forged) and signs the checkpoint kept outside the database.
    signer = NoteSigner("gxpmes-demo", system_key)
    db = Database(db_path, origin="gxpmes.local/demo", head_signer=signer)
    identity = IdentityService(db)
    passwords = {
        user: f"Demo-Pass-{secrets.token_hex(4)}!" for user in PEOPLE
    }  # hex: never a user id
    signatures = SignatureService(identity, system_key)
    identity.bootstrap_admin("admin", PEOPLE["admin"][0], passwords["admin"])
    admin = Credentials("admin", passwords["admin"], identity.login("admin", passwords["admin"]))
    for user, (name, roles) in PEOPLE.items():
        if user != "admin":
            # An administrator issues a one-time password (signed, audited); the
            # user must set their own before they can log in or sign.
            issued = f"Issued-{secrets.token_hex(4)}!"
            AccountAdministration(signatures).create_user(admin, user, name, roles, issued)
            identity.change_password(user, issued, passwords[user])
    sessions = {
        u: identity.login(u, passwords[u], client_tz="Europe/Berlin")
        for u in PEOPLE
        if u != "admin"
    }

    def creds(user: str) -> Credentials:
        # Within the user's session (its time zone shows on the signature).
        return Credentials(user, passwords[user], sessions[user])

    engine = BatchEngine(db, identity, signatures)
    _say(f"2/9 users: {', '.join(f'{n} ({u}: {r[0]})' for u, (n, r) in PEOPLE.items())}")

    sup = sessions["sup1"]
    for equipment_id, equipment_class in (("GRAN-01", "Granulator"), ("BLEND-01", "Blender")):
        engine.register_equipment(
            sup,
            equipment_id,
            level="Unit",
            equipment_class=equipment_class,
            calibration_due=db.clock() + timedelta(days=120),
        )
        engine.record_cleaning(
            sessions["op1"], equipment_id, "cleaned per SOP-CL-001; line clearance done"
        )
    engine.register_equipment(
        sup,
        "BAL-07",
        level="Equipment Module",
        equipment_class="Balance",
        calibration_due=db.clock() + timedelta(days=60),
    )
    for lot_id, material in (("API-24-017", "API-PARA"), ("LAC-24-233", "LACTOSE")):
        engine.receive_lot(
            sup,
            lot_id,
            material,
            Quantity(value=Decimal("400"), unit="kg"),
            expires=db.clock() + timedelta(days=540),
        )
        engine.set_lot_status(
            sessions["qa2"], lot_id, "Released", reason="CoA and identity test passed"
        )
    # Ordered: mixing after heating, blending after granulation; PH-HEAT carries the BOM.
    engine.submit_recipe(sup, granulation_recipe(ordered=True))
    engine.sign_recipe("MR-GRAN", "1", "Performed", creds("sup1"))
    engine.sign_recipe("MR-GRAN", "1", "Approved", creds("qa2"))
    _say(
        "3/9 plant GRAN-01 + BLEND-01 clean and calibrated; lots released; "
        "recipe MR-GRAN v1 approved "
        "(prepared by sup1, approved by qa2)"
    )

    engine.create_batch(
        sup,
        BATCH,
        recipe_id="MR-GRAN",
        version="1",
        lot_id=f"{BATCH}-TAB",
        planned=Quantity(value=Decimal("100"), unit="kg"),
        equipment=["GRAN-01", "BLEND-01"],
    )
    engine.start_batch(sessions["op1"], BATCH)
    for path in ("GRAN/UP-GRAN", "GRAN/UP-GRAN/OP-WET"):
        engine.command(sessions["op1"], BATCH, path, "Start")
    dispensed = []
    for material, lot, actual, weigher, checker in (
        ("API-PARA", "API-24-017", "20.012", "op1", "op2"),
        ("LACTOSE", "LAC-24-233", "78.040", "op2", "op1"),
    ):
        weighing = engine.weigh(
            BATCH,
            phase=HEAT,
            material_id=material,
            lot_id=lot,
            actual=Decimal(actual),
            balance_id="BAL-07",
            performer=creds(weigher),
        )
        engine.verify_weighing(weighing, creds(checker))
        dispensed.append((weighing, weigher))
    _say(
        f"4/9 batch {BATCH} started; bill of materials dispensed on balance BAL-07 "
        "(2 weighings, second-person verified)"
    )

    # The simulated readings are the last 300 s of plant history (never in the future).
    start = db.clock() - timedelta(seconds=300)
    captured = 0
    for path, parameter, tag, unit, centre, swing, spikes, doubtful, who in (
        (
            HEAT,
            "temperature",
            "GRAN01.TT-101.PV",
            "Cel",
            70.0,
            3.0,
            {140: "76.40", 141: "75.80"},
            frozenset(),
            ("op1", "op2"),
        ),
        (
            MIX,
            "speed",
            "GRAN01.SC-101.PV",
            "rpm",
            120.0,
            12.0,
            None,
            frozenset({55}),
            ("op1", "op2"),
        ),
        (
            BLEND,
            "speed",
            "BLEND01.SC-201.PV",
            "rpm",
            120.0,
            10.0,
            None,
            frozenset(),
            ("op2", "op1"),
        ),
    ):
        if path == BLEND:  # blending starts once granulation is complete
            for parent in ("GRAN/UP-BLEND", "GRAN/UP-BLEND/OP-BLEND"):
                engine.command(sessions["op1"], BATCH, parent, "Start")
        engine.command(sessions[who[0]], BATCH, path, "Start")
        if path == HEAT:  # the dispensed containers go into the granulator
            for weighing, weigher in dispensed:
                engine.charge(BATCH, weighing, creds(weigher))
        values = _simulated(
            BATCH, f"{path}/{parameter}", tag, unit, start, 300, centre, swing, spikes, doubtful
        )
        if path == MIX:
            values.append(
                CapturedValue(BATCH, f"{MIX}/time", "GRAN01.TM-101", Decimal("10"), "min", start)
            )
        for chunk in range(0, len(values), 100):
            engine.capture(values[chunk : chunk + 100], source=OT_SOURCE)
        captured += len(values)
        engine.complete_phase(BATCH, path, creds(who[0]))
        engine.verify_phase(BATCH, path, creds(who[1]))
    _say(
        f"5/9 {captured} process values captured through the OT capture API; "
        "3 phases performed and verified"
    )

    yield_pct = engine.complete_batch(
        sessions["op1"], BATCH, Quantity(value=Decimal("97.4"), unit="kg")
    )
    deviation = engine.open_deviation(
        sessions["op1"], BATCH, "Granulator temperature above 75 °C for 2 s"
    )
    review = engine.review_by_exception(BATCH)
    exceptions = [i for i in review if i.kind.startswith("exception")]
    _say(
        f"6/9 executed, yield {yield_pct} %; review by exception lists "
        f"{len(exceptions)} exception(s) and "
        f"{sum(i.kind == 'deviation' for i in review)} deviation — not {captured} values"
    )
    for item in exceptions:
        _say(f"      - {item.kind}: {item.detail}")
        engine.assess_exception(
            item.item_id, creds("qa1"), comment="assessed: no impact on product quality"
        )
    engine.investigate_deviation(
        sessions["qa1"],
        deviation,
        investigation="heater PID overshoot after refill",
        impact="none: within proven acceptable range 60-80 °C (PQ report PQ-17)",
    )
    engine.complete_review(BATCH, creds("qa1"))
    try:
        engine.release(BATCH, creds("qa2"))
    except Exception as exc:  # the open deviation must block release (211.192)
        _say(f"      release refused as it must be: {exc}")
    engine.close_deviation(deviation, creds("qa2"), conclusion="CAPA-2026-012: retune PID")
    # Annex 11 §9: QA reads the batch's audit trail and signs its review; release needs it.
    from gxpmes.trail import TrailScope, collect_trail

    trail = collect_trail(db, TrailScope(batch_id=BATCH))
    engine.trail_reviews.record(
        trail.scope,
        trail.through_seq,
        trail.content_sha256,
        creds("qa1"),
        comment="audit trail reviewed: every change explained, reasons given",
    )
    _say(
        f"      audit trail of {BATCH} reviewed by qa1: {len(trail.rows)} entries "
        f"(sha256 {trail.content_sha256[:16]}…)"
    )
    engine.release(BATCH, creds("qa2"))
    released = next(s for s, _ in engine.verify_batch_signatures(BATCH) if s.meaning == "Released")
    _say(f"7/9 released: {released.manifestation}")

    written = [db_path.name, f"{keys.name}/"]
    if schema_dir is None:
        _say(
            "8/9 B2MML export skipped: no MESA schemas found "
            "(set GXPMES_B2MML_SCHEMAS or --schemas)"
        )
    else:
        from gxpmes.ebr.export import export_batch
        from isa95.b2mml.documents import B2MML

        exported = export_batch(engine, BATCH, B2MML(schema_dir))
        for name, data in (
            (f"{BATCH}-BatchProductionRecord.xml", exported.record),
            (f"{BATCH}-OperationsPerformance.xml", exported.performance),
        ):
            (out / name).write_bytes(data)
            written.append(name)
        _say(f"8/9 B2MML V0701 exported and XSD-validated (sha256 {exported.record_sha256[:16]}…)")

    note = db.ledger.checkpoint(signer)
    (out / "checkpoint.txt").write_text(note)
    written.append("checkpoint.txt")
    trusted = [TrustedKey(signer.verifier)]
    try:
        from gxpmes.reports import render_report

        reports = render_report(engine, BATCH, out, checkpoint=note, trusted_keys=trusted)
        written += [p.name for p in reports.values()]
        _say(f"      batch record report: {', '.join(p.name for p in reports.values())}")
        from gxpmes.reports.trail import write_trail

        trail_files = write_trail(
            collect_trail(db, TrailScope(batch_id=BATCH)),
            out,
            reviews=engine.trail_reviews.reviews(BATCH),
        )
        written += [p.name for p in trail_files.values()]
        _say(f"      audit trail for review: {', '.join(p.name for p in trail_files.values())}")
    except ImportError as exc:
        _say(f"      report skipped: install the 'reports' extra ({exc.name} missing)")
    public = signer.verifier.public_key
    record = verify_record(
        db.engine,
        checkpoint=note,
        trusted_keys=trusted,
        signature_keys={key_id_of(public): public},
    )
    report = record.ledger
    db.close()

    tampered = _copy_database(db_path, out / "tampered-copy.db")
    written.append(tampered.name)
    with sqlite3.connect(tampered) as conn:
        conn.execute("DROP TRIGGER audit_entry_no_update")
        seq, canonical = conn.execute(
            "SELECT seq, canonical FROM audit_entry "
            "WHERE CAST(canonical AS TEXT) LIKE '%76.40%' LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE audit_entry SET canonical = ? WHERE seq = ?",
            (bytes(canonical).replace(b"76.40", b"74.40"), seq),
        )
    copy_ledger = Ledger.open(tampered, read_only=True)
    bad = verify_ledger(copy_ledger, checkpoint=note, trusted_keys=trusted)
    copy_ledger.close()
    # A second attack, on the record rather than the log: an exception marked
    # assessed by SQL. The log is untouched; replaying it shows the difference.
    edited = _copy_database(db_path, out / "edited-record-copy.db")
    written.append(edited.name)
    with sqlite3.connect(edited) as conn:
        conn.execute(
            "UPDATE ebr_exception SET assessment = 'no impact' WHERE exception_id = "
            "(SELECT MIN(exception_id) FROM ebr_exception)"
        )
    edited_engine = open_engine(edited, read_only=True)
    edited_report = verify_record(edited_engine, checkpoint=note, trusted_keys=trusted)
    edited_engine.dispose()
    _say(f"9/9 record: {record.summary()}")
    _say(f"      audit trail: {report.summary()}")
    _say(f"      tampered log copy (76.40 → 74.40 °C): {bad.summary()}")
    _say(
        f"      edited record copy (an assessment rewritten by SQL): {edited_report.summary()}"
        + (f" — {edited_report.lines()[0]}" if edited_report.lines() else "")
    )
    _say(
        f"      QA checks it with: gxpmes verify --db {db_path.name} "
        "--checkpoint checkpoint.txt --public-key keys/public.pem"
    )
    ok = (
        record.ok
        and not bad.ok
        and bad.first_bad_seq == seq
        and not edited_report.ok
        and any(p.table == "ebr_exception" for p in edited_report.problems)
    )
    _say(f"output in {out.resolve()}: {', '.join(written)}")
    _say("demo finished: " + ("all checks behaved as expected" if ok else "UNEXPECTED RESULT"))
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(run_demo(Path("gxpmes-demo"), None))
