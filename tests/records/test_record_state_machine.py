"""Random engine operations, then one random cell edited anywhere: always caught.

Hypothesis draws a sequence of batch-record operations — create and start
batches, run phases, capture values in and out of limits, manual entries,
weighings and their checks, samples/labels/IPC, deviations, exception
assessment, review, release and rejection, equipment and lot changes, role
changes, failed signatures, password changes, personal signing keys — and
runs them through the engine's public API on a copy of a prepared SQLite
installation. An operation the engine refuses (``GxpError``, or an illegal
ISA-88 command's ``IllegalTransition``) is part
of the story: refusals are audited too and must leave the record consistent.

Afterwards the untouched database must verify, and a copy with one cell
edited (a type-appropriate new value, NULL, or text of the wrong type) must
not — with the edited table, and for a non-key cell its column, named.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sqlite3
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from record_support import IPC_LIMITS, RecordDb, changed_value, sqlite_copy, verify

from audit.note import NoteSigner
from gxpmes.database import Database
from gxpmes.ebr.engine import BatchEngine, CapturedValue
from gxpmes.errors import GxpError
from gxpmes.identity import (
    Credentials,
    IdentityService,
    Meaning,
    PasswordHasher,
    PasswordPolicy,
    SignatureService,
)
from gxpmes.records.tables import TableSpec, projected
from gxpmes.testing.plant import (
    BALANCE,
    BLEND,
    BOM,
    HEAD_KEY_NAME,
    HEAT,
    MIX,
    OT_SOURCE,
    USERS,
    Clock,
    TestPlant,
    build_plant,
)
from isa95.common import Quantity
from isa95.errors import ISA95Error

PHASES = {
    HEAT: ("temperature", "Cel", 65, 75),
    MIX: ("speed", "rpm", 100, 140),
    BLEND: ("speed", "rpm", 100, 140),
}
LOTS = {"API-L1": "API-PARA", "LAC-L7": "LACTOSE"}
EQUIPMENT = ("GRAN-01", "BLEND-01")


@dataclass
class Template:
    """The prepared installation every example starts from (copied, never changed)."""

    path: Path
    scratch: Path  # each example works in a fresh folder under it
    now: Any
    sessions: dict[str, Any]
    system_key: Ed25519PrivateKey  # countersigns e-signatures and signs tree heads
    keys: RecordDb  # what a verifier trusts


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("template") / "plant.db"
    plant = build_plant(str(path))
    plant.signatures.enroll_user_key("op2", USERS["op2"][2])  # digital-signature mode
    plant.db.close()
    assert plant.system_key is not None
    return Template(
        path,
        tmp_path_factory.mktemp("examples"),
        plant.clock(),
        dict(plant.sessions),
        plant.system_key,
        RecordDb(str(path), plant.signature_keys(), tuple(plant.trusted_keys())),
    )


@dataclass
class Story:
    """One example's installation and what its operations created."""

    plant: TestPlant
    passwords: dict[str, str] = field(default_factory=lambda: {u: v[2] for u, v in USERS.items()})
    batches: list[str] = field(default_factory=list)
    weighings: list[str] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)  # operations that went through

    def creds(self, user: str) -> Credentials:
        return Credentials(user, self.passwords[user])


def open_story(template: Template, path: Path) -> Story:
    """The plant's services over a copy of the template, signing heads as the plant does."""
    shutil.copyfile(template.path, path)
    clock = Clock(template.now)
    head_signer = NoteSigner(HEAD_KEY_NAME, template.system_key)
    db = Database(str(path), clock=clock, head_signer=head_signer)
    identity = IdentityService(
        db, policy=PasswordPolicy(idle_timeout_minutes=240), hasher=PasswordHasher(log2_n=10)
    )
    signatures = SignatureService(identity, template.system_key)
    engine = BatchEngine(db, identity, signatures)
    plant = TestPlant(
        db,
        identity,
        signatures,
        engine,
        clock,
        dict(template.sessions),
        system_key=template.system_key,
    )
    return Story(plant)


# ------------------------------------------------------------------ operations
# Each takes the story and hypothesis' ``draw``; the engine may refuse (GxpError).

Draw = Callable[[st.SearchStrategy[Any]], Any]


class NothingToDo(Exception):
    """The operation has nothing to act on yet (no batch, weighing or deviation)."""


def _pick(draw: Draw, items: list[str]) -> str:
    if not items:
        raise NothingToDo
    return str(draw(st.sampled_from(items)))


def create_batch(story: Story, draw: Draw) -> None:
    batch_id = f"B-{len(story.batches) + 1}"
    story.batches.append(batch_id)  # first: a refused create still leaves an id to try
    story.plant.start_batch(batch_id)


def start_phase(story: Story, draw: Draw) -> None:
    batch, phase = _pick(draw, story.batches), draw(st.sampled_from(list(PHASES)))
    story.plant.engine.command(story.plant.sessions["op1"], batch, phase, "Start")


def _value(story: Story, draw: Draw, batch: str, phase: str, manual: bool = False) -> CapturedValue:
    parameter, unit, low, high = PHASES[phase]
    inside = draw(st.booleans())
    reading = draw(st.integers(low, high) if inside else st.sampled_from([low - 5, high + 5]))
    story.plant.clock.advance(seconds=1)
    return CapturedValue(
        batch,
        f"{phase}/{parameter}",
        "MANUAL" if manual else f"TAG-{parameter}",
        Decimal(reading),
        unit,
        story.plant.clock(),
        quality=draw(st.sampled_from(["Good", "Good", "Uncertain", "Bad"])),
    )


def capture(story: Story, draw: Draw) -> None:
    batch, phase = _pick(draw, story.batches), draw(st.sampled_from(list(PHASES)))
    count = draw(st.integers(1, 3))
    story.plant.engine.capture(
        [_value(story, draw, batch, phase) for _ in range(count)],
        source=OT_SOURCE,
    )


def manual_entry(story: Story, draw: Draw) -> None:
    batch, phase = _pick(draw, story.batches), draw(st.sampled_from(list(PHASES)))
    value = _value(story, draw, batch, phase, manual=True)
    story.plant.engine.manual_entry(story.plant.sessions["op1"], value, reason="handheld reading")


def weigh(story: Story, draw: Draw) -> None:
    batch, lot = _pick(draw, story.batches), draw(st.sampled_from(sorted(LOTS)))
    quantity = Decimal(BOM[LOTS[lot]][1])
    actual = quantity + (Decimal("0.02") if draw(st.booleans()) else Decimal("0.5"))  # in/out
    story.weighings.append(
        story.plant.engine.weigh(
            batch,
            phase=HEAT,
            material_id=LOTS[lot],
            lot_id=lot,
            actual=actual,
            balance_id=BALANCE,
            performer=story.creds(draw(st.sampled_from(["op1", "op2"]))),
        )
    )


def charge(story: Story, draw: Draw) -> None:
    weighing = _pick(draw, story.weighings)
    story.plant.engine.charge(weighing.rsplit("/W-", 1)[0], weighing, story.creds("op1"))


def _complete_bom(story: Story, batch: str) -> None:
    """Dispense and charge whatever of PH-HEAT's bill of materials is still missing."""
    engine = story.plant.engine
    weighed = {w["material_id"]: w["weighing_id"] for w in engine.weighings(batch)}
    for material, (lot, quantity, _tolerance) in BOM.items():
        if material not in weighed:
            weighed[material] = engine.weigh(
                batch,
                phase=HEAT,
                material_id=material,
                lot_id=lot,
                actual=Decimal(quantity),
                balance_id=BALANCE,
                performer=story.creds("op1"),
            )
    charged = {c["weighing_id"] for c in engine.charges(batch)}
    for weighing in weighed.values():
        if weighing not in charged:
            engine.charge(batch, weighing, story.creds("op1"))


def verify_weighing(story: Story, draw: Draw) -> None:
    weighing = _pick(draw, story.weighings)
    checker = story.creds(draw(st.sampled_from(["op1", "op2"])))
    story.plant.engine.verify_weighing(weighing, checker)


def record_item(story: Story, draw: Draw) -> None:
    batch, kind = _pick(draw, story.batches), draw(st.sampled_from(["sample", "label", "ipc"]))
    number = len(story.done)
    content: dict[str, Any] = {"n": number}
    if kind == "ipc":
        content["result"] = draw(st.sampled_from(["2.0", "4.5"]))  # in and out of limits
    story.plant.engine.record_item(
        story.plant.sessions["op1"],
        batch,
        kind,
        f"{batch}/{kind}-{number}",
        content,
        limits=IPC_LIMITS,
    )


def run_phase(story: Story, draw: Draw, phase: str | None = None) -> None:
    """Start (if needed), capture, complete (op1) and verify (op2, maybe digitally) a phase."""
    batch = _pick(draw, story.batches)
    phase = phase or draw(st.sampled_from(list(PHASES)))
    engine = story.plant.engine
    with contextlib.suppress(GxpError, ISA95Error):  # already running, or the batch is not
        engine.command(story.plant.sessions["op1"], batch, phase, "Start")
    if phase == HEAT:
        _complete_bom(story, batch)
    engine.capture(
        [_value(story, draw, batch, phase)],
        source=OT_SOURCE,
    )
    engine.complete_phase(batch, phase, story.creds("op1"))
    if draw(st.booleans()):
        engine.verify_phase(batch, phase, story.creds("op2"))
    else:
        story.plant.signatures.sign(
            engine.step_record(batch, phase),
            Meaning.VERIFIED,
            story.creds("op2"),
            digital=True,
        )


def complete_batch(story: Story, draw: Draw) -> None:
    batch = _pick(draw, story.batches)
    actual = Decimal(draw(st.sampled_from(["97.5", "80.0"])))  # in and out of yield limits
    story.plant.engine.complete_batch(
        story.plant.sessions["op1"], batch, Quantity(value=actual, unit="kg")
    )


def open_deviation(story: Story, draw: Draw) -> None:
    batch = _pick(draw, story.batches)
    deviation = story.plant.engine.open_deviation(story.plant.sessions["op1"], batch, "excursion")
    story.deviations.append(deviation)


def investigate_deviation(story: Story, draw: Draw) -> None:
    story.plant.engine.investigate_deviation(
        story.plant.sessions["qa1"],
        _pick(draw, story.deviations),
        investigation="root cause found",
        impact="none",
    )


def close_deviation(story: Story, draw: Draw) -> None:
    deviation = _pick(draw, story.deviations)
    story.plant.engine.close_deviation(deviation, story.creds("qa2"), conclusion="CAPA-1")


def assess_exceptions(story: Story, draw: Draw) -> None:
    engine = story.plant.engine
    for item in engine.review_by_exception(_pick(draw, story.batches)):
        if item.kind.startswith("exception") and item.open:
            engine.assess_exception(item.item_id, story.creds("qa1"), comment="no impact")


def complete_review(story: Story, draw: Draw) -> None:
    story.plant.engine.complete_review(_pick(draw, story.batches), story.creds("qa1"))


def finish_batch(story: Story, draw: Draw) -> None:
    """Complete a batch, assess its exceptions, settle its deviations and review it."""
    engine, batch = story.plant.engine, _pick(draw, story.batches)
    actual = Decimal(draw(st.sampled_from(["97.5", "80.0"])))
    engine.complete_batch(story.plant.sessions["op1"], batch, Quantity(value=actual, unit="kg"))
    for item in engine.review_by_exception(batch):
        if item.kind == "open:weighing_unverified":  # the second person checks each weighing
            engine.verify_weighing(item.reference, story.creds("op2"))
        elif item.kind.startswith("exception") and item.open:
            engine.assess_exception(item.item_id, story.creds("qa1"), comment="no impact")
        elif item.kind == "deviation" and item.open:
            with contextlib.suppress(GxpError):  # already investigated
                engine.investigate_deviation(
                    story.plant.sessions["qa1"], item.item_id, investigation="found", impact="none"
                )
            engine.close_deviation(item.item_id, story.creds("qa2"), conclusion="CAPA-2")
    engine.complete_review(batch, story.creds("qa1"))


def release(story: Story, draw: Draw) -> None:
    batch = _pick(draw, story.batches)
    if draw(st.booleans()):  # release needs the trail reviewed; sometimes it is not
        story.plant.review_trail(batch)
    story.plant.engine.release(batch, story.creds("qa2"))


def reject(story: Story, draw: Draw) -> None:
    batch = _pick(draw, story.batches)
    story.plant.engine.reject(batch, story.creds("qa2"), reason="out of specification")


def equipment_change(story: Story, draw: Draw) -> None:
    engine, sup = story.plant.engine, story.plant.sessions["sup1"]
    equipment = draw(st.sampled_from(EQUIPMENT))
    match draw(st.sampled_from(["maintenance", "cleaning", "out", "back"])):
        case "maintenance":
            due = story.plant.clock() + timedelta(days=90)
            engine.record_maintenance(sup, equipment, "calibrated", calibration_due=due)
        case "cleaning":
            engine.record_cleaning(story.plant.sessions["op1"], equipment, "cleaned")
        case "out":
            engine.set_equipment_status(sup, equipment, "Out of service", reason="leak")
        case _:
            engine.set_equipment_status(sup, equipment, "Available", reason="repaired")


def lot_status(story: Story, draw: Draw) -> None:
    story.plant.engine.set_lot_status(
        story.plant.sessions["qa2"],
        draw(st.sampled_from(sorted(LOTS))),
        draw(st.sampled_from(["Quarantine", "Released", "Rejected"])),
        reason="QC result",
    )


def identity_change(story: Story, draw: Draw) -> None:
    plant, admin = story.plant, story.plant.sessions["admin"]
    match draw(st.sampled_from(["roles", "wrong password", "password", "key"])):
        case "roles":
            roles = draw(st.sampled_from([["Operator"], ["Operator", "Supervisor"]]))
            plant.accounts.set_roles(
                Credentials("admin", story.passwords["admin"], admin),
                "op2",
                roles,
                reason="shift change",
            )
        case "wrong password":  # a refused signature counts a failed attempt
            record = plant.engine.recipe_record("MR-GRAN", "1")
            plant.signatures.sign(record, Meaning.VERIFIED, Credentials("op2", "not-it"))
        case "password":
            new = f"Changed-{len(story.done)}-Pass!"
            plant.identity.change_password("op1", story.passwords["op1"], new)
            story.passwords["op1"] = new
        case _:
            plant.signatures.enroll_user_key("op1", story.passwords["op1"])


# Weighted: a batch needs three phases and a review before release is reachable.
OPERATIONS = [
    *[create_batch] * 2,
    start_phase,
    capture,
    manual_entry,
    weigh,
    verify_weighing,
    charge,
    record_item,
    *[run_phase] * 5,
    complete_batch,
    open_deviation,
    investigate_deviation,
    close_deviation,
    assess_exceptions,
    complete_review,
    *[finish_batch] * 2,
    *[release] * 2,
    reject,
    equipment_change,
    lot_status,
    identity_change,
]


STAGES = ("none", "created", "phases run", "reviewed", "released", "rejected")
"""How far a first batch is taken before the random operations (each stage is a test)."""


def advance(story: Story, draw: Draw, stage: str) -> None:
    """Take a first batch to ``stage`` (random sequences rarely get past execution alone)."""
    if stage == "none":
        return
    create_batch(story, draw)
    if stage == "created":
        return
    for phase in PHASES:
        run_phase(story, draw, phase)
    if stage == "phases run":
        return
    finish_batch(story, draw)
    if stage == "released":
        for batch in story.batches:  # the stage is reached: its trail review is not drawn
            story.plant.review_trail(batch)
        release(story, draw)
    elif stage == "rejected":
        reject(story, draw)


# ------------------------------------------------------------------ one edit


def _edit(draw: Draw, path: Path) -> tuple[TableSpec, str, str]:
    """Change one drawn cell of a drawn row, with plain SQL; returns (table, key, column)."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        filled = [
            n
            for n in sorted(projected())
            if conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]
        ]
        # Uniform choices from a drawn seed (hypothesis favours the first items of a list).
        pick = random.Random(draw(st.binary(min_size=16, max_size=16)))
        spec = projected()[pick.choice(filled)]
        order = ", ".join(f'"{k}"' for k in spec.key)
        rows = [dict(r) for r in conn.execute(f'SELECT * FROM "{spec.name}" ORDER BY {order}')]
        row = pick.choice(rows)
        column = pick.choice(spec.columns)
        old = row[column]
        modes = ["typed"]
        if old is not None and spec.table.c[column].nullable:
            modes.append("null")
        if column not in spec.key:
            modes.append("wrong type")
        match draw(st.sampled_from(modes)):
            case "typed":
                new = changed_value(spec.table.c[column], old, fresh_key=column in spec.key)
            case "null":
                new = None
            case _:
                # SQLite keeps what it is given: text in a number, flag or bytes column
                # (letters: numeric text would become a number under NUMERIC affinity).
                new = draw(st.text(alphabet=string.ascii_letters + " -", min_size=1, max_size=12))
                new = new if new != old else new + "-"
        where = " AND ".join(f'"{k}" = ?' for k in spec.key)
        changed = conn.execute(
            f'UPDATE "{spec.name}" SET "{column}" = ? WHERE {where}',
            (new, *(row[k] for k in spec.key)),
        )
        assert changed.rowcount == 1
    conn.close()
    return spec, "/".join(str(row[k]) for k in spec.key), column


@pytest.mark.parametrize("stage", STAGES)
# No shrinking: an example takes about a second, shrinking one takes minutes;
# a failure names the edit and every operation that went through instead.
@settings(
    max_examples=8,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_operations_then_one_edit_is_always_caught(
    template: Template, stage: str, data: st.DataObject
) -> None:
    scratch = Path(tempfile.mkdtemp(dir=template.scratch))
    try:
        _story_then_edit(template, scratch, stage, data)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _story_then_edit(template: Template, scratch: Path, stage: str, data: st.DataObject) -> None:
    story = open_story(template, scratch / "record.db")
    try:
        advance(story, data.draw, stage)
        for operation in data.draw(
            st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=30), label="operations"
        ):
            try:
                operation(story, data.draw)
            except (GxpError, ISA95Error, NothingToDo):
                continue
            story.done.append(operation.__name__)
        for batch in story.batches:
            with contextlib.suppress(GxpError):  # a batch whose creation was refused
                event(f"batch reached: {story.plant.engine.batch(batch)['status']}")
    finally:
        story.plant.db.close()
    intact = verify(str(scratch / "record.db"), template.keys)
    assert intact.ok, f"untouched record fails after {story.done}:\n" + "\n".join(intact.lines())

    edited = sqlite_copy(scratch / "record.db", scratch / "edited.db")
    spec, key, column = _edit(data.draw, edited)
    report = verify(str(edited), template.keys)
    event(f"edited: {spec.name}")
    assert not report.ok, f"{spec.name} {key} {column} edited, not caught (after {story.done})"
    named = [p for p in report.problems if p.table == spec.name]
    assert named, "\n".join(report.lines())
    if column not in spec.key:
        assert any((p.key, p.column, p.kind) == (key, column, "column_differs") for p in named), (
            "\n".join(report.lines())
        )


def test_deviation_opened_after_review_leaves_a_verifiable_record(template: Template) -> None:
    # Found by the test above: a deviation opened on a Reviewed batch changed
    # what the Reviewed signature covers (the batch record lists deviation ids),
    # so the untouched record no longer verified and the batch could never be
    # released or rejected. Refusing the deviation, or a record that still
    # verifies, are both acceptable; a broken signature is not.
    scratch = Path(tempfile.mkdtemp(dir=template.scratch))
    try:
        story = open_story(template, scratch / "record.db")
        plant, engine = story.plant, story.plant.engine
        try:
            plant.start_batch("B-1")
            for phase, (parameter, unit, low, _high) in PHASES.items():
                engine.command(plant.sessions["op1"], "B-1", phase, "Start")
                if phase == HEAT:
                    plant.dispense("B-1")
                engine.capture(
                    [
                        CapturedValue(
                            "B-1", f"{phase}/{parameter}", "T", Decimal(low), unit, plant.clock()
                        )
                    ],
                    source=OT_SOURCE,
                )
                engine.complete_phase("B-1", phase, story.creds("op1"))
                engine.verify_phase("B-1", phase, story.creds("op2"))
            engine.complete_batch(
                plant.sessions["op1"], "B-1", Quantity(value=Decimal("98"), unit="kg")
            )
            engine.complete_review("B-1", story.creds("qa1"))
            assert engine.batch("B-1")["status"] == "Reviewed"
            with contextlib.suppress(GxpError):
                engine.open_deviation(plant.sessions["op1"], "B-1", "late finding")
        finally:
            plant.db.close()
        report = verify(str(scratch / "record.db"), template.keys)
        assert report.ok, "\n".join(report.lines())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
