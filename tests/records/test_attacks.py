"""Forged states: a row and its log entry forged together, then hidden under a genuine head.

``test_tamper_every_table`` edits tables behind the log's back. Here the
attacker also writes the log: one well-formed entry at the tail (correct
hashes, any actor) carrying the forged row image, under a tree head signed
with a key of their own. The application's next write seals a genuine signed
head over the whole tail; the attacker then deletes their own head (SQLite
with the trigger dropped). The table agrees with the log and every entry is
under a validly signed head — only the missing signature gives it away: a
state that only a signed action reaches must carry a valid signature of that
meaning, and a signature cannot be forged without the system key.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from audit.db import open_engine
from audit.entry import Actor, AuditEvent
from audit.keys import generate_private_key
from audit.ledger import Ledger
from audit.note import NoteSigner
from gxpmes.ebr.engine import CapturedValue
from gxpmes.errors import GxpError
from gxpmes.records.tables import projected
from gxpmes.records.verify import RecordReport, verify_record
from gxpmes.testing.plant import BLEND, HEAD_KEY_NAME, HEAT, MIX, OT_SOURCE, TestPlant, build_plant
from isa95.common import Quantity

BATCH = "B-ATTACK-1"


@dataclass
class Executed:
    """A plant whose batch is Executed with one unassessed out-of-limit exception."""

    plant: TestPlant
    path: Path
    exception_id: str


@pytest.fixture
def executed(tmp_path: Path) -> Executed:
    path = tmp_path / "plant.db"
    plant = build_plant(str(path))
    engine, op1 = plant.engine, plant.sessions["op1"]
    plant.start_batch(BATCH, phases=(HEAT,))
    plant.dispense(BATCH)  # PH-HEAT's bill of materials: weighed, verified, charged
    now = plant.clock()
    engine.capture(
        [
            CapturedValue(
                BATCH,
                f"{HEAT}/temperature",
                "TT-101",
                Decimal(reading),
                "Cel",
                now + timedelta(seconds=i),
                source_key=f"tt:{i}",
            )
            for i, reading in enumerate(["70.1", "90.0", "70.0"])  # 90.0: outside [65, 75]
        ],
        source=OT_SOURCE,
    )
    for path_, parameter, unit, reading in (
        (MIX, "speed", "rpm", "121"),
        (BLEND, "speed", "rpm", "119"),
    ):
        engine.command(op1, BATCH, path_, "Start")
        engine.capture(
            [CapturedValue(BATCH, f"{path_}/{parameter}", "SC", Decimal(reading), unit, now)],
            source=OT_SOURCE,
        )
    for phase in (HEAT, MIX, BLEND):
        engine.complete_phase(BATCH, phase, plant.creds("op1"))
        engine.verify_phase(BATCH, phase, plant.creds("op2"))
    engine.complete_batch(op1, BATCH, Quantity(value=Decimal("97.5"), unit="kg"))
    (item,) = [i for i in engine.review_by_exception(BATCH) if i.open]
    assert item.kind == "exception:out_of_limit"
    return Executed(plant, path, item.item_id)


def _row(path: Path, table: str, where: str, key: str) -> dict[str, Any]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute(f"SELECT * FROM {table} WHERE {where} = ?", (key,)).fetchone())


def _forge(
    done: Executed, action: str, obj: tuple[str, str], table: str, row: dict[str, Any]
) -> int:
    """Append one forged entry carrying ``row``'s image (under the attacker's own head),
    make ``table`` agree with it, and return the size of the attacker's head."""
    spec = projected()[table]
    image = spec.image(row)
    engine = open_engine(done.path)
    try:
        ledger = Ledger(
            engine,
            create=False,
            clock=done.plant.clock,
            head_signer=NoteSigner(HEAD_KEY_NAME, generate_private_key()),
        )
        entry = ledger.append(
            AuditEvent(
                Actor("qa1", "Quinn Reviewer"),
                action,
                obj[0],
                obj[1],
                new={"rows": [{"table": table, "row": image}]},
                reason="no impact on product quality",
            )
        )
    finally:
        engine.dispose()
    with sqlite3.connect(done.path) as conn:
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
        ).fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        sets = ", ".join(f"{c} = ?" for c in spec.columns)
        keys = " AND ".join(f"{c} = ?" for c in spec.key)
        conn.execute(
            f"UPDATE {table} SET {sets} WHERE {keys}",
            [row[c] for c in spec.columns] + [row[c] for c in spec.key],
        )
    return entry.seq + 1


def _drop_head(path: Path, size: int) -> None:
    # The attacker's own head at the forged tail. (The ledger no longer signs over
    # a head it did not sign, so this only removes the trace; both checks stay.)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_tree_head_no_delete")
        conn.execute("DELETE FROM audit_tree_head WHERE tree_size = ?", (size,))
        conn.commit()


def _verify(done: Executed) -> RecordReport:
    engine = open_engine(done.path, read_only=True)
    try:
        return verify_record(
            engine,
            head_keys=done.plant.trusted_keys(),
            signature_keys=done.plant.signature_keys(),
        )
    finally:
        engine.dispose()


def _names_missing_signature(report: RecordReport, record: str, meaning: str) -> bool:
    return any(
        p.table == "gx_signature"
        and p.key == record
        and p.kind == "signature"
        and f"signed {meaning}" in str(p.expected)
        for p in report.problems
    )


@pytest.mark.slow
def test_forged_assessment_under_a_genuine_head_is_caught(executed: Executed) -> None:
    plant, exception_id = executed.plant, executed.exception_id
    row = _row(executed.path, "ebr_exception", "exception_id", exception_id)
    row.update(assessed=True, assessment="no impact on product quality")
    head = _forge(
        executed, "exception.assess", ("batch_exception", exception_id), "ebr_exception", row
    )
    # The application carries on: review and release need no open item now.
    # (An engine that refuses is fine too: verification must catch it either way.)
    with contextlib.suppress(GxpError):
        plant.engine.complete_review(BATCH, plant.creds("qa1"))
        plant.review_trail(BATCH)
        plant.engine.release(BATCH, plant.creds("qa2"))
    plant.db.close()
    _drop_head(executed.path, head)
    report = _verify(executed)
    assert not report.ok
    assert _names_missing_signature(report, f"batch_exception {exception_id}", "Reviewed"), (
        "\n".join(report.lines())
    )


@pytest.mark.slow
def test_forged_release_under_a_genuine_head_is_caught(executed: Executed) -> None:
    plant = executed.plant
    row = _row(executed.path, "ebr_batch", "batch_id", BATCH)
    row.update(status="Released", closed_at=row["executed_at"])
    head = _forge(executed, "batch.status", ("batch", BATCH), "ebr_batch", row)
    # Any later write of the application seals a head over the forged entry.
    plant.relogin("qa1")
    plant.db.close()
    _drop_head(executed.path, head)
    report = _verify(executed)
    assert not report.ok
    for meaning in ("Reviewed", "Released"):
        assert _names_missing_signature(report, f"batch {BATCH}", meaning), "\n".join(
            report.lines()
        )
