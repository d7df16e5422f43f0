"""``gxpmes demo``: the audit trail end to end on a local SQLite file.

Records a short manufacturing story (user set-up, a recipe change with a
reason, a burst of captured process values), signs a checkpoint, verifies
the trail, shows the database refusing to rewrite history, then tampers with
a *copy* (triggers dropped, one value edited) and shows verification naming
the altered entry. Everything it prints is computed, nothing is canned.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from audit.entry import Actor, AuditEvent
from audit.errors import StorageError
from audit.keys import TrustedKey, generate_private_key, load_private_key, write_key_pair
from audit.ledger import Ledger
from audit.note import NoteSigner
from audit.verify import verify_ledger


def _say(step: str) -> None:
    print(f"[demo] {step}", flush=True)


def _process_values(batch_id: str, count: int) -> list[AuditEvent]:
    collector = Actor("svc-opcua", "OPC UA collector")
    start = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    events = []
    for i in range(count):
        tag = ("TT-101", "SC-101", "PT-101")[i % 3]
        value = Decimal(60 + (i % 17)) / Decimal(1) + Decimal("0.25")
        events.append(
            AuditEvent(
                collector,
                "capture",
                "process_value",
                f"{batch_id}/{tag}",
                new={
                    "tag": tag,
                    "value": value,
                    "unit": {"TT-101": "Cel", "SC-101": "rpm", "PT-101": "kPa"}[tag],
                    "quality": "Good",
                    "source_ts": start + timedelta(seconds=i),
                },
                client_tz="Europe/Berlin",
            )
        )
    return events


def run_demo(out: Path) -> int:
    """Run the demo into folder ``out``; returns the process exit code."""
    out.mkdir(parents=True, exist_ok=True)
    db = out / "audit.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    keys_dir = out / "keys"
    if keys_dir.exists():
        shutil.rmtree(keys_dir)
    passphrase = secrets.token_urlsafe(18)
    write_key_pair(generate_private_key(), keys_dir, passphrase.encode())
    (out / "keys" / "DEMO-PASSPHRASE.txt").write_text(
        "Demo only: never store a real key's passphrase beside it.\n" + passphrase + "\n"
    )
    signer = NoteSigner(
        "gxpmes-demo", load_private_key(keys_dir / "private.pem", passphrase.encode())
    )
    _say(f"key pair in {keys_dir} (key id {signer.verifier.key_id})")

    ledger = Ledger.open(
        db, origin="gxpmes.local/demo", reason_required_actions={"update", "delete"}
    )
    admin = Actor("admin01", "Alex Admin")
    qa = Actor("qa01", "Quinn Approver")
    ledger.append(
        AuditEvent(
            admin, "create", "user", "op01", new={"name": "Olga Operator", "roles": ["Operator"]}
        )
    )
    ledger.append(
        AuditEvent(
            admin,
            "create",
            "user",
            "qa01",
            new={"name": "Quinn Approver", "roles": ["QA Approver"]},
        )
    )
    ledger.append(
        AuditEvent(
            qa,
            "update",
            "master_recipe",
            "MR-GRAN-001/v3",
            old={"granulation_temperature_high": Decimal("70.0")},
            new={"granulation_temperature_high": Decimal("72.0")},
            reason="CC-2026-014: validated range widened after PQ study",
            client_tz="Europe/Berlin",
        )
    )
    try:
        ledger.append(AuditEvent(qa, "update", "master_recipe", "MR-GRAN-001/v3", new={"x": 1}))
    except Exception as exc:  # the missing reason is refused, nothing written
        _say(f"refused as expected: {exc}")
    receipt = ledger.append_many(_process_values("B-2026-0001", 3000))
    _say(
        f"recorded {len(receipt.seqs)} process values "
        f"as entries {receipt.first_seq}..{receipt.seqs[-1]}"
    )

    note = ledger.checkpoint(signer)
    checkpoint_file = out / "checkpoint.txt"
    checkpoint_file.write_text(note)
    _say(f"signed checkpoint written to {checkpoint_file}")

    trusted = [TrustedKey(signer.verifier)]
    report = verify_ledger(ledger, checkpoint=note, trusted_keys=trusted)
    _say(f"verify original: {report.summary()}")
    proof = ledger.prove_inclusion(2)
    _say(f"inclusion proof of the recipe change (entry 2): {len(proof.path)} hashes")

    try:
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE audit_entry SET object_key = 1 WHERE seq = 2")
        refused = False
    except Exception:
        refused = True
    _say(f"database refuses UPDATE of the trail: {refused}")
    ledger.close()

    tampered = out / "tampered-copy.db"
    tampered.unlink(missing_ok=True)
    with sqlite3.connect(db) as source, sqlite3.connect(tampered) as copy:
        source.backup(copy)
    with sqlite3.connect(tampered) as conn:
        conn.execute("DROP TRIGGER audit_entry_no_update")
        canonical = conn.execute("SELECT canonical FROM audit_entry WHERE seq = 1500").fetchone()[0]
        forged = bytes(canonical).replace(b'"quality":"Good"', b'"quality":"Bad"', 1)
        conn.execute("UPDATE audit_entry SET canonical = ? WHERE seq = 1500", (forged,))
    copy_ledger = Ledger.open(tampered, read_only=True)
    bad = verify_ledger(copy_ledger, checkpoint=note, trusted_keys=trusted)
    copy_ledger.close()
    _say(f"verify tampered copy: {bad.summary()}")

    ok = report.ok and refused and not bad.ok and bad.first_bad_seq == 1500
    _say(f"output folder: {out.resolve()}")
    _say("demo finished: " + ("all checks behaved as expected" if ok else "UNEXPECTED RESULT"))
    if not ok:
        raise StorageError("demo checks did not behave as expected")
    return 0
