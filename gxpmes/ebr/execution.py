"""Batch execution: creation, ISA-88 commands, signed phases, weighing, completion."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from audit.canonical import format_timestamp
from audit.entry import Actor
from gxpmes.ebr.base import (
    CREATED,
    EXECUTED,
    IN_EXECUTION,
    _json,
    _weighing_record,
)
from gxpmes.ebr.procedure import BATCH_ID_CHARS, ProcedureRules
from gxpmes.ebr.schema import (
    BatchRow,
    EquipmentRow,
    GenealogyRow,
    LotRow,
    RecordItemRow,
    StepRow,
    WeighingRow,
)
from gxpmes.errors import (
    BatchError,
    EquipmentNotReady,
    MissingDataError,
)
from gxpmes.identity import Credentials, Meaning, SignableRecord
from gxpmes.identity.schema import SignatureRow
from gxpmes.identity.service import Session
from gxpmes.lengths import check_length, check_lengths
from gxpmes.records import writer as projection
from isa95.common import Quantity
from isa95.recipe import FormulaParameter, Recipe
from isa95.statemachine import Command, ProceduralState, ProceduralStateMachine


class BatchExecution(ProcedureRules):
    """Batch execution: creation, ISA-88 commands, signed phases, weighing, completion."""

    def create_batch(
        self,
        session: Session,
        batch_id: str,
        *,
        recipe_id: str,
        version: str,
        lot_id: str,
        planned: Quantity,
        equipment: Sequence[str],
    ) -> None:
        """Create a batch record from an approved master recipe and an order.

        Refused (:class:`BatchError`) before anything is written: a batch id of
        more than :data:`~gxpmes.ebr.procedure.BATCH_ID_CHARS` characters, a lot
        id, planned quantity or unit longer than its column holds, or a batch id
        and element path together too long to name the element's signatures.
        """
        check_lengths(
            BatchError,
            (
                ("batch id", batch_id, BATCH_ID_CHARS),
                (f"batch {batch_id}: lot id", lot_id, BatchRow.lot_id),
                (
                    f"batch {batch_id}: planned quantity",
                    str(planned.value),
                    BatchRow.planned_quantity,
                ),
                (f"batch {batch_id}: unit", planned.unit, BatchRow.unit),
            ),
        )
        recipe, status = self.recipe(recipe_id, version)
        check_lengths(
            BatchError,
            (
                ("signed element id (batch id/path)", f"{batch_id}/{path}", SignatureRow.record_id)
                for path, _element in recipe.procedural_elements()
            ),
        )
        if status != "Approved":
            raise BatchError(
                f"master recipe {recipe_id} v{version} is {status}, not Approved "
                "(211.186: two signatures needed)"
            )
        now = self._now()
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.create")
            self._check_recipe(conn, recipe_id, version)
            if conn.execute(select(BatchRow.batch_id).where(BatchRow.batch_id == batch_id)).first():
                raise BatchError(f"batch {batch_id} exists")
            classes = []
            for equipment_id in equipment:
                row = self._equipment(conn, equipment_id)
                if row.status != "Available":
                    raise EquipmentNotReady(f"{equipment_id} is {row.status}")
                if not row.clean:
                    raise EquipmentNotReady(f"{equipment_id} is not clean: record cleaning first")
                if datetime.fromisoformat(row.calibration_due) <= now:
                    raise EquipmentNotReady(
                        f"{equipment_id} is out of calibration (due {row.calibration_due})"
                    )
                classes.append((equipment_id, row.equipment_class))
            projection.insert(
                conn,
                BatchRow,
                dict(
                    batch_id=batch_id,
                    recipe_id=recipe_id,
                    recipe_version=version,
                    product_id=recipe.product_id or recipe_id,
                    lot_id=lot_id,
                    planned_quantity=str(planned.value),
                    unit=planned.unit or "",
                    actual_quantity=None,
                    equipment=_json(list(equipment)),
                    status=CREATED,
                    procedure_state="Idle",
                    created_at=format_timestamp(now),
                ),
            )
            self._create_steps(conn, batch_id, recipe, classes)
            self._audit(
                conn,
                user.actor,
                "batch.create",
                "batch",
                batch_id,
                new={
                    "recipe": f"{recipe_id}/v{version}",
                    "lot_id": lot_id,
                    "planned": planned.value,
                    "unit": planned.unit,
                    "equipment": list(equipment),
                },
            )

    def _create_steps(
        self, conn: Connection, batch_id: str, recipe: Recipe, equipment: list[tuple[str, str]]
    ) -> None:
        if recipe.procedure is None:
            raise BatchError(f"recipe {recipe.id} has no procedure to execute")
        rows = []
        for up in recipe.procedure.unit_procedures:
            unit = None
            if up.equipment_requirement is not None:
                unit = next(
                    (e for e, c in equipment if c == up.equipment_requirement.equipment_class_id),
                    None,
                )
                if unit is None:
                    raise EquipmentNotReady(
                        f"unit procedure {up.id} needs a "
                        f"{up.equipment_requirement.equipment_class_id}; none assigned"
                    )
            prefix = f"{recipe.procedure.id}/{up.id}"
            for path, _element in recipe.procedural_elements():
                if path == prefix or path.startswith(prefix + "/"):
                    kind = ("UnitProcedure", "Operation", "Phase")[path.count("/") - 1]
                    rows.append(
                        {
                            "batch_id": batch_id,
                            "path": path,
                            "kind": kind,
                            "state": "Idle",
                            "equipment_id": unit,
                        }
                    )
        for row in rows:
            projection.insert(conn, StepRow, row)

    def start_batch(self, session: Session, batch_id: str) -> None:
        """Start execution: the procedure runs and its equipment is taken into use."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.execute")
            row = self._open_batch(conn, batch_id, CREATED)
            machine = ProceduralStateMachine(batch_id, ProceduralState(row.procedure_state))
            machine.command(Command.START)
            for equipment_id in json.loads(row.equipment):
                equipment = self._equipment(conn, equipment_id)
                if equipment.status != "Available" or not equipment.clean:
                    raise EquipmentNotReady(f"{equipment_id} is no longer available and clean")
                projection.update(
                    conn,
                    EquipmentRow,
                    {"equipment_id": equipment_id},
                    dict(status="In use", clean=False, current_batch=batch_id),
                )
                self._log(conn, user, equipment_id, "use", batch_id, "taken into use")
            self._set_status(
                conn,
                user.actor,
                batch_id,
                row.status,
                IN_EXECUTION,
                procedure_state=machine.state.value,
                started_at=self._ts(),
            )

    def command(self, session: Session, batch_id: str, path: str, command: str) -> str:
        """Send an ISA-88 command to a procedural element; illegal commands raise.

        A Start is refused (:class:`~gxpmes.errors.ProcedureError`) while the
        element's parent is not Running or a predecessor the recipe names in
        ``after`` is not Complete; every refusal is recorded in the element's trail.
        """

        def run() -> str:
            with self.db.transaction() as conn:
                user = self._user(conn, session, "batch.execute")
                batch = self._open_batch(conn, batch_id, IN_EXECUTION)
                step = self._step(conn, batch_id, path)
                machine = ProceduralStateMachine(path, ProceduralState(step.state))
                machine.command(command)
                if machine.state == ProceduralState.RUNNING and step.state == "Idle":
                    recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
                    self._check_start(conn, batch, recipe, path)
                self._set_step(
                    conn, user.actor, batch_id, path, step.state, machine.state.value, str(command)
                )
                return machine.state.value

        result: str = self._audited(batch_id, path, f"command {command}", session.user_id, run)
        return result

    def state_complete(self, session: Session, batch_id: str, path: str) -> str:
        """The element's logic finished its state (Running → Complete, Holding → Held...).

        A unit procedure or operation completes only when all its children are Complete.
        """

        def run() -> str:
            with self.db.transaction() as conn:
                user = self._user(conn, session, "batch.execute")
                self._open_batch(conn, batch_id, IN_EXECUTION)
                step = self._step(conn, batch_id, path)
                machine = ProceduralStateMachine(path, ProceduralState(step.state))
                machine.complete()
                if machine.state == ProceduralState.COMPLETE and step.kind == "Phase":
                    raise BatchError(
                        f"phase {path} completes with complete_phase(), which records who "
                        "performed it"
                    )
                if machine.state == ProceduralState.COMPLETE:
                    self._check_children_complete(conn, batch_id, path)
                self._set_step(
                    conn,
                    user.actor,
                    batch_id,
                    path,
                    step.state,
                    machine.state.value,
                    "state complete",
                )
                return machine.state.value

        result: str = self._audited(batch_id, path, "state complete", session.user_id, run)
        return result

    def step_record(self, batch_id: str, path: str) -> SignableRecord:
        """What a performer signs for a phase: its identity and every value captured in it."""
        with self.db.read() as conn:
            step = self._step(conn, batch_id, path)
            values = [
                (row[0], row[3], row[5], row[6])
                for row in self._value_rows(conn, batch_id, under=path)
            ]
        content = {
            "batch_id": batch_id,
            "path": path,
            "kind": step.kind,
            "equipment_id": step.equipment_id,
            "values": [[s, p, v, u] for s, p, v, u in values],
        }
        return SignableRecord("batch_step", f"{batch_id}/{path}", content, batch_id)

    def complete_phase(self, batch_id: str, path: str, performer: Credentials) -> None:
        """A running phase completes; the performer signs it (Performed)."""
        subject = SignableRecord("batch_step", f"{batch_id}/{path}", {}, batch_id)

        def build(conn: Connection) -> SignableRecord:
            self._open_batch(conn, batch_id, IN_EXECUTION)
            step = self._step(conn, batch_id, path)
            if step.kind != "Phase" or step.state != "Running":
                raise BatchError(
                    f"{path} is a {step.kind} in state {step.state}; only a Running phase completes"
                )
            self._check_steps(conn, batch_id, [path])  # a phase "started" by SQL is not
            batch = self._batch(conn, batch_id)
            recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
            missing = self._phase_missing(conn, batch_id, recipe, path)
            if missing:
                raise MissingDataError(
                    f"phase {path} cannot complete: missing " + "; ".join(missing)
                )
            return self.step_record(batch_id, path)

        def change(conn: Connection, actor: Actor) -> None:
            self._set_step(
                conn,
                actor,
                batch_id,
                path,
                "Running",
                "Complete",
                "state complete (signed Performed)",
            )
            self._roll_up(conn, batch_id, path, actor)

        self._signed_change(performer, Meaning.PERFORMED, subject, build, change)

    def verify_phase(self, batch_id: str, path: str, checker: Credentials) -> None:
        """A second person checks a completed phase (Verified; separation of duties applies)."""
        subject = SignableRecord("batch_step", f"{batch_id}/{path}", {}, batch_id)

        def build(conn: Connection) -> SignableRecord:
            self._open_batch(conn, batch_id, IN_EXECUTION, EXECUTED)
            return self.step_record(batch_id, path)

        self._signed_change(checker, Meaning.VERIFIED, subject, build, lambda conn, actor: None)

    def _roll_up(self, conn: Connection, batch_id: str, path: str, actor: Actor) -> None:
        # When every child of an element is Complete, the element completes too.
        while "/" in path:
            parent = path.rsplit("/", 1)[0]
            children = (
                conn.execute(
                    select(StepRow.state).where(
                        StepRow.batch_id == batch_id, StepRow.path.like(f"{parent}/%")
                    )
                )
                .scalars()
                .all()
            )
            if not children or any(s != "Complete" for s in children):
                return
            row = conn.execute(
                select(StepRow).where(StepRow.batch_id == batch_id, StepRow.path == parent)
            ).one_or_none()
            if row is None:  # the procedure itself
                batch = self._batch(conn, batch_id)
                if batch.procedure_state != "Running":
                    return  # held or stopped: the state machine allows no jump to Complete
                projection.update(
                    conn, BatchRow, {"batch_id": batch_id}, dict(procedure_state="Complete")
                )
                self._audit(
                    conn,
                    actor,
                    "step.state",
                    "batch",
                    batch_id,
                    old={"state": batch.procedure_state},
                    new={"state": "Complete"},
                )
                return
            if row.state not in ("Running", "Complete"):
                return  # an element completes from Running only (ISA-88): it stays as it is
            if row.state != "Complete":
                self._set_step(
                    conn,
                    actor,
                    batch_id,
                    parent,
                    row.state,
                    "Complete",
                    "all children complete",
                )
            path = parent

    def weighing_record(self, weighing_id: str) -> SignableRecord:
        """The signable content of a weighing."""
        with self.db.read() as conn:
            row = self._one(conn, WeighingRow.weighing_id, weighing_id, "weighing")
        return _weighing_record(
            weighing_id,
            row.batch_id,
            row.material_id,
            row.lot_id,
            row.target,
            row.tolerance,
            row.actual,
            row.unit,
            row.balance_id,
        )

    def verify_weighing(self, weighing_id: str, checker: Credentials) -> None:
        """Second-person verification of a weighing (211.101(d))."""
        record = self.weighing_record(weighing_id)

        def build(conn: Connection) -> SignableRecord:
            self._open_batch(conn, record.signable_scope, IN_EXECUTION, EXECUTED)
            return self.weighing_record(weighing_id)

        self._signed_change(checker, Meaning.VERIFIED, record, build, lambda conn, actor: None)

    def record_item(
        self,
        session: Session,
        batch_id: str,
        kind: str,
        item_id: str,
        content: dict[str, Any],
        *,
        limits: FormulaParameter | None = None,
    ) -> None:
        """Record a sample taken, a label issued, or an in-process control result.

        For an in-process control (``kind="ipc"``) with ``limits`` and a
        ``content["result"]``, a result outside the limits raises an exception
        for review. Content naming a ``"phase"`` (and ``"control"`` for an IPC,
        ``"sample"`` for a sample) satisfies that phase's declared controls and
        samples; a declared control's limits come from the recipe.
        """
        if kind not in ("sample", "label", "ipc"):
            raise BatchError(f"record item kind {kind!r} is not sample, label or ipc")
        check_length(BatchError, f"{kind} id", item_id, RecordItemRow.item_id)
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.execute")
            batch = self._open_batch(conn, batch_id, IN_EXECUTION, EXECUTED)
            if content.get("phase") is not None:
                recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
                phase = self._phase(recipe, str(content["phase"]))
                if kind == "ipc":
                    declared = next(
                        (c for c in phase.controls if c.id == content.get("control")), None
                    )
                    if declared is None:
                        raise BatchError(
                            f"phase {content['phase']} declares no in-process control "
                            f"{content.get('control')!r}"
                        )
                    limits = limits or declared
            body = _json(content)
            projection.insert(
                conn,
                RecordItemRow,
                dict(
                    item_id=item_id,
                    batch_id=batch_id,
                    kind=kind,
                    content=body,
                    recorded_by=user.user_id,
                    recorded_at=self._ts(),
                ),
            )
            self._audit(
                conn,
                user.actor,
                f"record.{kind}",
                "batch_record_item",
                item_id,
                new={"batch_id": batch_id, **content},
            )
            if kind == "ipc" and limits is not None:
                result = Decimal(str(content.get("result")))
                if not limits.within_limits(result):
                    self._raise_exception(
                        conn,
                        batch_id,
                        "ipc_out_of_limit",
                        f"{item_id}: {result} {limits.unit or ''} outside "
                        f"[{limits.low}, {limits.high}]",
                        item_id,
                    )

    def record_items(self, batch_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """Samples, labels and in-process controls of a batch."""
        with self.db.read() as conn:
            query = select(RecordItemRow).where(RecordItemRow.batch_id == batch_id)
            if kind is not None:
                query = query.where(RecordItemRow.kind == kind)
            rows = conn.execute(
                query.order_by(RecordItemRow.recorded_at, RecordItemRow.item_id)
            ).all()
        return [{**dict(r._mapping), "content": json.loads(r.content)} for r in rows]

    def complete_batch(self, session: Session, batch_id: str, actual: Quantity) -> Decimal:
        """Execution finished: record yield, genealogy and equipment release; returns yield %.

        An actual quantity with more digits than the record keeps is refused
        (:class:`BatchError`), never rounded.
        """
        check_length(
            BatchError,
            f"batch {batch_id}: actual quantity",
            str(actual.value),
            BatchRow.actual_quantity,
        )
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.execute")
            batch = self._open_batch(conn, batch_id, IN_EXECUTION)
            if batch.procedure_state != "Complete":
                raise BatchError(
                    f"batch {batch_id} procedure is {batch.procedure_state}, not Complete"
                )
            if actual.unit != batch.unit:
                raise BatchError(f"actual quantity unit {actual.unit} differs from {batch.unit}")
            recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
            yield_pct = (actual.value / Decimal(batch.planned_quantity) * 100).quantize(
                Decimal("0.01")
            )
            limits = next((p for p in recipe.formula if p.id == "yield"), None)
            if limits is not None and not limits.within_limits(yield_pct):
                self._raise_exception(
                    conn,
                    batch_id,
                    "yield",
                    f"yield {yield_pct} % outside [{limits.low}, {limits.high}] %",
                    "yield",
                )
            for weighing in conn.execute(
                select(WeighingRow).where(WeighingRow.batch_id == batch_id)
            ).all():
                projection.insert(
                    conn,
                    GenealogyRow,
                    dict(
                        consumed_lot=weighing.lot_id,
                        produced_lot=batch.lot_id,
                        quantity=weighing.actual,
                        unit=weighing.unit,
                        batch_id=batch_id,
                    ),
                )
            for equipment_id in json.loads(batch.equipment):
                projection.update(
                    conn,
                    EquipmentRow,
                    {"equipment_id": equipment_id},
                    dict(status="Available", current_batch=None),
                )
                self._log(
                    conn, user, equipment_id, "release", batch_id, "batch executed; needs cleaning"
                )
            projection.insert(
                conn,
                LotRow,
                dict(
                    lot_id=batch.lot_id,
                    material_id=batch.product_id,
                    status="Quarantine",
                    quantity=str(actual.value),
                    unit=actual.unit or "",
                    expires_at=None,
                ),
            )
            # On the produced lot's own trail (its row is checked against it before use).
            self._audit(
                conn,
                user.actor,
                "lot.produce",
                "lot",
                batch.lot_id,
                new={"batch_id": batch_id, "quantity": actual.value, "unit": actual.unit},
            )
            self._set_status(
                conn,
                user.actor,
                batch_id,
                batch.status,
                EXECUTED,
                actual_quantity=str(actual.value),
                executed_at=self._ts(),
            )
            self._audit(
                conn,
                user.actor,
                "batch.yield",
                "batch",
                batch_id,
                new={"actual": actual.value, "yield_percent": yield_pct},
            )
            from gxpmes.erp.outbox import emit  # ERP production posting, same transaction

            emit(self, conn, "batch.executed", batch_id)
        return yield_pct
