"""The electronic batch record engine (21 CFR 211.186, 211.188, 211.192).

A batch is created from an *approved* master recipe and runs through
Created › In execution › Executed › Reviewed › Released | Rejected, its
procedural elements driven by the ISA-88 state machine. Every change is an
audit entry written in the same transaction; after Released or Rejected
nothing in the record changes. Values captured from the plant are checked
against the recipe's limits and every exception must be assessed by QA
before release; release is blocked while a deviation is open.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select, update

from audit.canonical import canonicalize, format_timestamp
from audit.entry import Actor, AuditEvent
from gxpmes.database import Database
from gxpmes.ebr.schema import (
    BatchRow,
    DeviationRow,
    EquipmentLogRow,
    EquipmentRow,
    ExceptionRow,
    GenealogyRow,
    LotRow,
    RecipeRow,
    RecordItemRow,
    StepRow,
    ValueRow,
    WeighingRow,
)
from gxpmes.errors import (
    BatchError,
    CaptureRefused,
    EquipmentNotReady,
    GxpError,
    RecordClosedError,
    ReleaseBlocked,
)
from gxpmes.identity import Credentials, IdentityService, Meaning, SignableRecord, SignatureService
from gxpmes.identity.service import Session, User
from isa95.common import Quantity
from isa95.recipe import FormulaParameter, Phase, Recipe
from isa95.statemachine import Command, ProceduralState, ProceduralStateMachine

__all__ = ["QUALITIES", "BatchEngine", "CapturedValue", "ReviewItem"]

CREATED, IN_EXECUTION, EXECUTED, REVIEWED, RELEASED, REJECTED = (
    "Created",
    "In execution",
    "Executed",
    "Reviewed",
    "Released",
    "Rejected",
)
CLOSED = frozenset({RELEASED, REJECTED})
QUALITIES = ("Good", "Uncertain", "Bad")
OT_COLLECTOR = Actor("svc-ot", "OT data collector")
"""Default actor of captured values (the OT connector's service account)."""
_ACTIVE = frozenset(s.value for s in ProceduralState) - {"Idle", "Complete", "Stopped", "Aborted"}


@dataclass(frozen=True)
class CapturedValue:
    """A process value from the plant floor, mapped to a batch parameter.

    ``parameter`` is the recipe path ``procedure/unit procedure/operation/phase/parameter``.
    ``quality`` follows OPC UA: Good, Uncertain or Bad.
    """

    batch_id: str
    parameter: str
    tag: str
    value: Decimal
    unit: str
    source_ts: datetime
    server_ts: datetime | None = None
    quality: str = "Good"


@dataclass(frozen=True)
class ReviewItem:
    """One line of the review-by-exception view."""

    kind: str
    reference: str
    detail: str
    open: bool
    item_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _json(value: Any) -> str:
    return canonicalize(value).decode()


def _weighing_record(
    weighing_id: str,
    batch_id: str,
    material_id: str,
    lot_id: str,
    target: str,
    tolerance: str,
    actual: str,
    unit: str,
    balance_id: str,
) -> SignableRecord:
    """What the weigher and the verifier sign for a weighing."""
    content = {
        "batch_id": batch_id,
        "material_id": material_id,
        "lot_id": lot_id,
        "target": target,
        "tolerance": tolerance,
        "actual": actual,
        "unit": unit,
        "balance_id": balance_id,
    }
    return SignableRecord("weighing", weighing_id, content, batch_id)


class BatchEngine:
    """Batch records over one :class:`Database`, with identity and signatures."""

    def __init__(
        self,
        db: Database,
        identity: IdentityService,
        signatures: SignatureService,
        *,
        collector: Actor = OT_COLLECTOR,
        stale_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.db = db
        self.identity = identity
        self.signatures = signatures
        self.collector = collector
        self.stale_after = stale_after
        self._recipes: dict[tuple[str, str], Recipe] = {}

    # ---------------------------------------------------------------- helpers

    def _now(self) -> datetime:
        return self.db.clock()

    def _ts(self) -> str:
        return format_timestamp(self._now())

    def _user(self, conn: Connection, session: Session, permission: str) -> User:
        return self.identity._authorise(conn, session, permission)

    def _audit(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        object_type: str,
        object_id: str,
        *,
        new: Any = None,
        old: Any = None,
        reason: str | None = None,
    ) -> int:
        return self.db.audit(
            conn, AuditEvent(actor, action, object_type, object_id, new=new, old=old, reason=reason)
        )

    @staticmethod
    def _one(conn: Connection, column: Any, value: str, what: str) -> Any:
        """The row whose ``column`` is ``value``; :class:`BatchError` naming ``what`` if none."""
        row = conn.execute(select(column.class_).where(column == value)).one_or_none()
        if row is None:
            raise BatchError(f"no {what} {value!r}")
        return row

    def _batch(self, conn: Connection, batch_id: str) -> Any:
        row = conn.execute(select(BatchRow).where(BatchRow.batch_id == batch_id)).one_or_none()
        if row is None:
            raise BatchError(f"no batch {batch_id!r}")
        return row

    def _open_batch(self, conn: Connection, batch_id: str, *allowed: str) -> Any:
        row = self._batch(conn, batch_id)
        if row.status in CLOSED:
            raise RecordClosedError(f"batch {batch_id} is {row.status}: its record cannot change")
        if allowed and row.status not in allowed:
            raise BatchError(f"batch {batch_id} is {row.status}; this needs {' or '.join(allowed)}")
        return row

    def _set_status(
        self,
        conn: Connection,
        actor: Actor,
        batch_id: str,
        old: str,
        new: str,
        reason: str | None = None,
        **columns: Any,
    ) -> None:
        conn.execute(
            update(BatchRow).where(BatchRow.batch_id == batch_id).values(status=new, **columns)
        )
        self._audit(
            conn,
            actor,
            "batch.status",
            "batch",
            batch_id,
            old={"status": old},
            new={"status": new},
            reason=reason,
        )

    # -------------------------------------------------------------- equipment

    def register_equipment(
        self,
        session: Session,
        equipment_id: str,
        *,
        level: str,
        equipment_class: str,
        calibration_due: datetime,
        clean: bool = False,
    ) -> None:
        """Add a piece of equipment to the logbook-managed inventory."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "equipment.manage")
            conn.execute(
                insert(EquipmentRow).values(
                    equipment_id=equipment_id,
                    level=level,
                    equipment_class=equipment_class,
                    status="Available",
                    clean=clean,
                    cleaned_at=self._ts() if clean else None,
                    calibration_due=calibration_due.isoformat(),
                    current_batch=None,
                )
            )
            self._log(
                conn,
                user,
                equipment_id,
                "registered",
                None,
                f"class {equipment_class}, calibration due {calibration_due.isoformat()}",
            )

    def _log(
        self,
        conn: Connection,
        user: User | Actor,
        equipment_id: str,
        event: str,
        batch_id: str | None,
        comment: str,
    ) -> None:
        actor = user.actor if isinstance(user, User) else user
        conn.execute(
            insert(EquipmentLogRow).values(
                equipment_id=equipment_id,
                event=event,
                batch_id=batch_id,
                at=self._ts(),
                by=actor.user_id,
                comment=comment,
            )
        )
        self._audit(
            conn,
            actor,
            f"equipment.{event}",
            "equipment",
            equipment_id,
            new={"batch_id": batch_id, "comment": comment},
        )

    def record_cleaning(self, session: Session, equipment_id: str, comment: str) -> None:
        """Record cleaning / line clearance: the equipment becomes clean."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "equipment.log")
            row = self._equipment(conn, equipment_id)
            if row.status == "In use":
                raise EquipmentNotReady(f"{equipment_id} is in use by batch {row.current_batch}")
            conn.execute(
                update(EquipmentRow)
                .where(EquipmentRow.equipment_id == equipment_id)
                .values(clean=True, cleaned_at=self._ts())
            )
            self._log(conn, user, equipment_id, "cleaning", None, comment)

    def record_maintenance(
        self,
        session: Session,
        equipment_id: str,
        comment: str,
        *,
        calibration_due: datetime | None = None,
    ) -> None:
        """Record maintenance or calibration (optionally with the next calibration date)."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "equipment.manage")
            self._equipment(conn, equipment_id)
            if calibration_due is not None:
                conn.execute(
                    update(EquipmentRow)
                    .where(EquipmentRow.equipment_id == equipment_id)
                    .values(calibration_due=calibration_due.isoformat())
                )
            self._log(conn, user, equipment_id, "maintenance", None, comment)

    def set_equipment_status(
        self, session: Session, equipment_id: str, status: str, *, reason: str
    ) -> None:
        """Take equipment out of service or back (Available / Out of service)."""
        if status not in ("Available", "Out of service"):
            raise BatchError(f"equipment status {status!r} is not Available or Out of service")
        with self.db.transaction() as conn:
            user = self._user(conn, session, "equipment.manage")
            row = self._equipment(conn, equipment_id)
            if row.status == "In use":
                raise EquipmentNotReady(f"{equipment_id} is in use by batch {row.current_batch}")
            conn.execute(
                update(EquipmentRow)
                .where(EquipmentRow.equipment_id == equipment_id)
                .values(status=status)
            )
            self._log(
                conn, user, equipment_id, "status", None, f"{row.status} → {status}: {reason}"
            )

    def _equipment(self, conn: Connection, equipment_id: str) -> Any:
        row = conn.execute(
            select(EquipmentRow).where(EquipmentRow.equipment_id == equipment_id)
        ).one_or_none()
        if row is None:
            raise EquipmentNotReady(f"no equipment {equipment_id!r}")
        return row

    def equipment_log(self, equipment_id: str) -> list[dict[str, Any]]:
        """The equipment's logbook, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(EquipmentLogRow)
                .where(EquipmentLogRow.equipment_id == equipment_id)
                .order_by(EquipmentLogRow.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    # -------------------------------------------------------------- materials

    def receive_lot(
        self,
        session: Session,
        lot_id: str,
        material_id: str,
        quantity: Quantity,
        *,
        status: str = "Quarantine",
    ) -> None:
        """Receive a material lot (Quarantine until QA releases it)."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "material.receive")
            conn.execute(
                insert(LotRow).values(
                    lot_id=lot_id,
                    material_id=material_id,
                    status=status,
                    quantity=str(quantity.value),
                    unit=quantity.unit or "",
                )
            )
            self._audit(
                conn,
                user.actor,
                "lot.receive",
                "lot",
                lot_id,
                new={
                    "material_id": material_id,
                    "quantity": quantity.value,
                    "unit": quantity.unit,
                    "status": status,
                },
            )

    def set_lot_status(self, session: Session, lot_id: str, status: str, *, reason: str) -> None:
        """QA changes a lot's status (e.g. Quarantine → Released)."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "material.release")
            row = conn.execute(select(LotRow).where(LotRow.lot_id == lot_id)).one_or_none()
            if row is None:
                raise BatchError(f"no lot {lot_id!r}")
            conn.execute(update(LotRow).where(LotRow.lot_id == lot_id).values(status=status))
            self._audit(
                conn,
                user.actor,
                "lot.status",
                "lot",
                lot_id,
                old={"status": row.status},
                new={"status": status},
                reason=reason,
            )

    def where_used(self, lot_id: str) -> list[str]:
        """Lots produced from ``lot_id``, over every level."""
        return self._genealogy(lot_id, down=True)

    def where_from(self, lot_id: str) -> list[str]:
        """Lots that went into ``lot_id``, over every level."""
        return self._genealogy(lot_id, down=False)

    def _genealogy(self, lot_id: str, *, down: bool) -> list[str]:
        from isa95.material import Genealogy, GenealogyLink

        with self.db.read() as conn:
            rows = conn.execute(select(GenealogyRow.consumed_lot, GenealogyRow.produced_lot)).all()
        graph = Genealogy(GenealogyLink(consumed=c, produced=p) for c, p in rows)
        return graph.where_used(lot_id) if down else graph.where_from(lot_id)

    # ---------------------------------------------------------------- recipes

    def submit_recipe(self, session: Session, recipe: Recipe) -> None:
        """Store a master recipe version as Draft (approval needs two signatures)."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "recipe.author")
            body = _json(recipe.model_dump(mode="json"))
            conn.execute(
                insert(RecipeRow).values(
                    recipe_id=recipe.id,
                    version=recipe.version,
                    body=body,
                    status="Draft",
                    created_at=self._ts(),
                )
            )
            self._audit(
                conn,
                user.actor,
                "recipe.submit",
                "master_recipe",
                f"{recipe.id}/v{recipe.version}",
                new={"status": "Draft"},
            )

    def recipe_record(self, recipe_id: str, version: str) -> SignableRecord:
        """The signable form of a recipe version (its full content)."""
        with self.db.read() as conn:
            row = conn.execute(
                select(RecipeRow).where(
                    RecipeRow.recipe_id == recipe_id, RecipeRow.version == version
                )
            ).one_or_none()
        if row is None:
            raise BatchError(f"no master recipe {recipe_id} v{version}")
        return SignableRecord(
            "master_recipe",
            f"{recipe_id}/v{version}",
            json.loads(row.body),
            f"recipe:{recipe_id}/v{version}",
        )

    def sign_recipe(
        self, recipe_id: str, version: str, meaning: str, credentials: Credentials
    ) -> None:
        """Prepared (Performed) by one person, Approved by another: then the recipe is Approved."""
        record = self.recipe_record(recipe_id, version)
        if meaning == Meaning.APPROVED and not any(
            s.meaning == Meaning.PERFORMED for s in self.signatures.signatures_for(record)
        ):
            raise BatchError(
                "a master recipe is approved only after its author signed it (Performed)"
            )
        signature = self.signatures.sign(record, meaning, credentials)
        if meaning == Meaning.APPROVED:
            with self.db.transaction() as conn:
                conn.execute(
                    update(RecipeRow)
                    .where(RecipeRow.recipe_id == recipe_id, RecipeRow.version == version)
                    .values(status="Approved")
                )
                self._audit(
                    conn,
                    Actor(signature.signer_id, signature.printed_name),
                    "recipe.approve",
                    "master_recipe",
                    record.signable_id,
                    old={"status": "Draft"},
                    new={"status": "Approved"},
                )

    def recipe(self, recipe_id: str, version: str) -> tuple[Recipe, str]:
        """A recipe version and its status."""
        with self.db.read() as conn:
            row = conn.execute(
                select(RecipeRow).where(
                    RecipeRow.recipe_id == recipe_id, RecipeRow.version == version
                )
            ).one_or_none()
        if row is None:
            raise BatchError(f"no master recipe {recipe_id} v{version}")
        key = (recipe_id, version)
        if key not in self._recipes:
            self._recipes[key] = Recipe.model_validate(json.loads(row.body))
        return self._recipes[key], row.status

    # ---------------------------------------------------------------- batches

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
        """Create a batch record from an approved master recipe and an order."""
        recipe, status = self.recipe(recipe_id, version)
        if status != "Approved":
            raise BatchError(
                f"master recipe {recipe_id} v{version} is {status}, not Approved "
                "(211.186: two signatures needed)"
            )
        now = self._now()
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.create")
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
            conn.execute(
                insert(BatchRow).values(
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
                )
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
        conn.execute(insert(StepRow), rows)

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
                conn.execute(
                    update(EquipmentRow)
                    .where(EquipmentRow.equipment_id == equipment_id)
                    .values(status="In use", clean=False, current_batch=batch_id)
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
        """Send an ISA-88 command to a procedural element; illegal commands raise."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.execute")
            self._open_batch(conn, batch_id, IN_EXECUTION)
            step = self._step(conn, batch_id, path)
            machine = ProceduralStateMachine(path, ProceduralState(step.state))
            machine.command(command)
            self._set_step(
                conn, user.actor, batch_id, path, step.state, machine.state.value, str(command)
            )
            return machine.state.value

    def state_complete(self, session: Session, batch_id: str, path: str) -> str:
        """The element's logic finished its state (Running → Complete, Holding → Held...)."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.execute")
            self._open_batch(conn, batch_id, IN_EXECUTION)
            step = self._step(conn, batch_id, path)
            machine = ProceduralStateMachine(path, ProceduralState(step.state))
            machine.complete()
            if machine.state == ProceduralState.COMPLETE and step.kind == "Phase":
                raise BatchError(
                    f"phase {path} completes with complete_phase(), which records who performed it"
                )
            self._set_step(
                conn, user.actor, batch_id, path, step.state, machine.state.value, "state complete"
            )
            return machine.state.value

    def _step(self, conn: Connection, batch_id: str, path: str) -> Any:
        row = conn.execute(
            select(StepRow).where(StepRow.batch_id == batch_id, StepRow.path == path)
        ).one_or_none()
        if row is None:
            raise BatchError(f"batch {batch_id} has no procedural element {path!r}")
        return row

    def _set_step(
        self,
        conn: Connection,
        actor: Actor,
        batch_id: str,
        path: str,
        old: str,
        new: str,
        cause: str,
    ) -> None:
        conn.execute(
            update(StepRow)
            .where(StepRow.batch_id == batch_id, StepRow.path == path)
            .values(state=new)
        )
        self._audit(
            conn,
            actor,
            "step.state",
            "batch_step",
            f"{batch_id}/{path}",
            old={"state": old},
            new={"state": new, "cause": cause},
        )

    def step_record(self, batch_id: str, path: str) -> SignableRecord:
        """What a performer signs for a phase: its identity and every value captured in it."""
        with self.db.read() as conn:
            step = self._step(conn, batch_id, path)
            values = conn.execute(
                select(ValueRow.seq, ValueRow.parameter, ValueRow.value, ValueRow.unit)
                .where(ValueRow.batch_id == batch_id, ValueRow.parameter.like(f"{path}/%"))
                .order_by(ValueRow.seq)
            ).all()
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
        with self.db.read() as conn:
            self._open_batch(conn, batch_id, IN_EXECUTION)
            step = self._step(conn, batch_id, path)
        if step.kind != "Phase" or step.state != "Running":
            raise BatchError(
                f"{path} is a {step.kind} in state {step.state}; only a Running phase completes"
            )
        signature = self.signatures.sign(
            self.step_record(batch_id, path), Meaning.PERFORMED, performer
        )
        with self.db.transaction() as conn:
            self._set_step(
                conn,
                Actor(signature.signer_id, signature.printed_name),
                batch_id,
                path,
                "Running",
                "Complete",
                "state complete (signed Performed)",
            )
        self._roll_up(batch_id, path, Actor(signature.signer_id, signature.printed_name))

    def verify_phase(self, batch_id: str, path: str, checker: Credentials) -> None:
        """A second person checks a completed phase (Verified; separation of duties applies)."""
        with self.db.read() as conn:
            self._open_batch(conn, batch_id, IN_EXECUTION, EXECUTED)
        self.signatures.sign(self.step_record(batch_id, path), Meaning.VERIFIED, checker)

    def _roll_up(self, batch_id: str, path: str, actor: Actor) -> None:
        # When every child of an element is Complete, the element completes too.
        with self.db.transaction() as conn:
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
                    conn.execute(
                        update(BatchRow)
                        .where(BatchRow.batch_id == batch_id)
                        .values(procedure_state="Complete")
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

    # ---------------------------------------------------------------- capture

    def _limits(self, recipe: Recipe, parameter: str) -> FormulaParameter | None:
        try:
            return recipe.parameter(parameter)
        except GxpError:
            return None
        except Exception:
            return None

    def capture(self, values: Sequence[CapturedValue]) -> list[int]:
        """Record process values in bulk; returns their audit sequence numbers.

        All or nothing: if any value is refused (batch not executing, phase not
        active, unknown parameter, naive time, unknown quality) none is
        written, the refusal is audited, and :class:`CaptureRefused` says why.
        Out-of-limit and non-Good values are recorded *and* raise exceptions
        for review.
        """
        if not values:
            return []
        server_now = self._now()
        with self.db.transaction() as conn:
            problems, contexts = self._check_capture(conn, values)
            if problems:
                refused = problems
            else:
                return self._write_values(conn, values, contexts, server_now, manual=False)
        with self.db.transaction() as conn:
            self._audit(
                conn,
                self.collector,
                "capture.refused",
                "batch",
                values[0].batch_id,
                new={"count": len(values), "problems": refused[:20]},
            )
        raise CaptureRefused(
            f"{len(refused)} of {len(values)} values refused, none written: "
            + "; ".join(refused[:5])
        )

    def _check_capture(
        self, conn: Connection, values: Sequence[CapturedValue]
    ) -> tuple[list[str], dict[str, Any]]:
        problems: list[str] = []
        contexts: dict[str, Any] = {}
        steps: dict[tuple[str, str], str | None] = {}
        for value in values:
            if value.batch_id not in contexts:
                batch = conn.execute(
                    select(BatchRow).where(BatchRow.batch_id == value.batch_id)
                ).one_or_none()
                if batch is None:
                    contexts[value.batch_id] = None
                else:
                    contexts[value.batch_id] = (
                        batch,
                        self.recipe(batch.recipe_id, batch.recipe_version)[0],
                    )
            context = contexts[value.batch_id]
            where = f"{value.tag} → {value.batch_id}/{value.parameter}"
            if context is None:
                problems.append(f"{where}: no such batch")
                continue
            batch, _recipe = context
            if batch.status != IN_EXECUTION:
                problems.append(f"{where}: batch is {batch.status}, not In execution")
                continue
            phase = value.parameter.rsplit("/", 1)[0]
            key = (value.batch_id, phase)
            if key not in steps:
                steps[key] = conn.execute(
                    select(StepRow.state).where(
                        StepRow.batch_id == value.batch_id, StepRow.path == phase
                    )
                ).scalar_one_or_none()
            state = steps[key]
            if state is None:
                problems.append(f"{where}: no phase {phase!r} in this batch")
            elif state not in _ACTIVE:
                problems.append(f"{where}: phase is {state}")
            elif value.quality not in QUALITIES:
                problems.append(f"{where}: quality {value.quality!r} is not Good, Uncertain or Bad")
            elif value.source_ts.utcoffset() is None or (
                value.server_ts is not None and value.server_ts.utcoffset() is None
            ):
                problems.append(f"{where}: naive timestamp")
            elif not value.value.is_finite():
                problems.append(f"{where}: value {value.value} is not finite")
        return problems, contexts

    def _write_values(
        self,
        conn: Connection,
        values: Sequence[CapturedValue],
        contexts: dict[str, Any],
        server_now: datetime,
        *,
        manual: bool,
        actor: Actor | None = None,
        reason: str | None = None,
    ) -> list[int]:
        events = []
        rows = []
        exceptions = []
        for value in values:
            server_ts = value.server_ts or server_now
            events.append(
                AuditEvent(
                    actor or self.collector,
                    "value.manual" if manual else "value.capture",
                    "process_value",
                    f"{value.batch_id}/{value.parameter}",
                    new={
                        "tag": value.tag,
                        "value": value.value,
                        "unit": value.unit,
                        "source_ts": value.source_ts,
                        "server_ts": server_ts,
                        "quality": value.quality,
                    },
                    reason=reason,
                )
            )
            _batch, recipe = contexts[value.batch_id]
            limits = self._limits(recipe, value.parameter)
            in_limits = limits is None or limits.within_limits(value.value)
            if limits is not None and limits.unit and limits.unit != value.unit:
                in_limits = False
            rows.append((value, server_ts, in_limits))
            if not in_limits:
                exceptions.append(
                    (
                        value,
                        "out_of_limit",
                        f"{value.tag} = {value.value} {value.unit} outside "
                        f"[{limits.low if limits else ''}, {limits.high if limits else ''}] "
                        f"{limits.unit if limits else ''}".strip(),
                    )
                )
            if value.quality != "Good":
                exceptions.append((value, "bad_quality", f"{value.tag} quality {value.quality}"))
            if manual:
                exceptions.append(
                    (
                        value,
                        "manual_entry",
                        f"{value.tag} = {value.value} entered by hand: {reason}",
                    )
                )
        receipt = self.db.ledger.append_many(events, conn=conn)
        conn.execute(
            insert(ValueRow),
            [
                {
                    "seq": seq,
                    "batch_id": v.batch_id,
                    "parameter": v.parameter,
                    "tag": v.tag,
                    "value": str(v.value),
                    "unit": v.unit,
                    "source_ts": v.source_ts.isoformat(),
                    "server_ts": ts.isoformat(),
                    "quality": v.quality,
                    "manual": manual,
                    "in_limits": ok,
                }
                for seq, (v, ts, ok) in zip(receipt.seqs, rows, strict=True)
            ],
        )
        for value, kind, detail in exceptions:
            self._raise_exception(conn, value.batch_id, kind, detail, f"{value.parameter}")
        return list(receipt.seqs)

    def _raise_exception(
        self, conn: Connection, batch_id: str, kind: str, detail: str, reference: str
    ) -> str:
        exception_id = str(uuid.uuid4())
        conn.execute(
            insert(ExceptionRow).values(
                exception_id=exception_id,
                batch_id=batch_id,
                kind=kind,
                detail=detail,
                reference=reference,
                raised_at=self._ts(),
                assessed=False,
            )
        )
        self._audit(
            conn,
            self.collector,
            "exception.raise",
            "batch_exception",
            exception_id,
            new={"batch_id": batch_id, "kind": kind, "detail": detail},
        )
        return exception_id

    def manual_entry(self, session: Session, value: CapturedValue, *, reason: str) -> int:
        """A value typed in by a person (e.g. a handheld reading); always an exception to review."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.capture")
            problems, contexts = self._check_capture(conn, [value])
            if problems:
                raise CaptureRefused("; ".join(problems))
            return self._write_values(
                conn, [value], contexts, self._now(), manual=True, actor=user.actor, reason=reason
            )[0]

    def check_stale(self, batch_id: str) -> list[str]:
        """Raise a ``stale`` exception for each limited parameter of an active phase
        with no value within ``stale_after``; returns the parameters found stale."""
        now = self._now()
        stale = []
        with self.db.transaction() as conn:
            batch = self._open_batch(conn, batch_id, IN_EXECUTION)
            recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
            active = {
                r.path
                for r in conn.execute(
                    select(StepRow).where(StepRow.batch_id == batch_id, StepRow.kind == "Phase")
                ).all()
                if r.state == "Running"
            }
            for path, element in recipe.procedural_elements():
                if path not in active or not isinstance(element, Phase):
                    continue
                for parameter in element.parameters:
                    full = f"{path}/{parameter.id}"
                    last = conn.execute(
                        select(ValueRow.server_ts)
                        .where(ValueRow.batch_id == batch_id, ValueRow.parameter == full)
                        .order_by(ValueRow.seq.desc())
                        .limit(1)
                    ).scalar_one_or_none()
                    if last is None or now - datetime.fromisoformat(last) > self.stale_after:
                        self._raise_exception(
                            conn,
                            batch_id,
                            "stale",
                            f"no value for {full} within {self.stale_after}",
                            full,
                        )
                        stale.append(full)
        return stale

    # --------------------------------------------------------------- weighing

    def weigh(
        self,
        batch_id: str,
        *,
        material_id: str,
        lot_id: str,
        target: Quantity,
        tolerance: Decimal,
        actual: Decimal,
        balance_id: str,
        performer: Credentials,
    ) -> str:
        """Record a weighing/dispensing (211.101(c)); the weigher signs it (Performed)."""
        weighing_id = f"{batch_id}/W-{uuid.uuid4().hex[:8]}"
        with self.db.transaction() as conn:
            self._open_batch(conn, batch_id, IN_EXECUTION)
            lot = conn.execute(select(LotRow).where(LotRow.lot_id == lot_id)).one_or_none()
            if lot is None or lot.material_id != material_id:
                raise BatchError(f"lot {lot_id} is not a lot of {material_id}")
            if lot.status != "Released":
                raise BatchError(
                    f"lot {lot_id} is {lot.status}; only Released material may be dispensed"
                )
            if target.unit != lot.unit:
                raise BatchError(f"target unit {target.unit} differs from lot unit {lot.unit}")
        record = _weighing_record(
            weighing_id,
            batch_id,
            material_id,
            lot_id,
            str(target.value),
            str(tolerance),
            str(actual),
            target.unit or "",
            balance_id,
        )
        signature = self.signatures.sign(record, Meaning.PERFORMED, performer)
        actor = Actor(signature.signer_id, signature.printed_name)
        with self.db.transaction() as conn:
            conn.execute(
                insert(WeighingRow).values(
                    weighing_id=weighing_id,
                    batch_id=batch_id,
                    material_id=material_id,
                    lot_id=lot_id,
                    target=str(target.value),
                    tolerance=str(tolerance),
                    actual=str(actual),
                    unit=target.unit or "",
                    balance_id=balance_id,
                    performed_by=signature.signer_id,
                    weighed_at=self._ts(),
                )
            )
            remaining = Decimal(lot.quantity) - actual
            conn.execute(
                update(LotRow).where(LotRow.lot_id == lot_id).values(quantity=str(remaining))
            )
            self._audit(conn, actor, "weighing.record", "weighing", weighing_id, new=record.content)
            if abs(actual - target.value) > tolerance:
                self._raise_exception(
                    conn,
                    batch_id,
                    "weighing_tolerance",
                    f"{material_id} lot {lot_id}: {actual} {target.unit} vs target "
                    f"{target.value} ± {tolerance}",
                    weighing_id,
                )
        return weighing_id

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
        with self.db.read() as conn:
            self._open_batch(conn, record.signable_scope, IN_EXECUTION, EXECUTED)
        self.signatures.sign(record, Meaning.VERIFIED, checker)

    # ------------------------------------------------ samples, labels, controls

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
        for review.
        """
        if kind not in ("sample", "label", "ipc"):
            raise BatchError(f"record item kind {kind!r} is not sample, label or ipc")
        with self.db.transaction() as conn:
            user = self._user(conn, session, "batch.execute")
            self._open_batch(conn, batch_id, IN_EXECUTION, EXECUTED)
            body = _json(content)
            conn.execute(
                insert(RecordItemRow).values(
                    item_id=item_id,
                    batch_id=batch_id,
                    kind=kind,
                    content=body,
                    recorded_by=user.user_id,
                    recorded_at=self._ts(),
                )
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

    # -------------------------------------------------------------- completion

    def complete_batch(self, session: Session, batch_id: str, actual: Quantity) -> Decimal:
        """Execution finished: record yield, genealogy and equipment release; returns yield %."""
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
                conn.execute(
                    insert(GenealogyRow).values(
                        consumed_lot=weighing.lot_id,
                        produced_lot=batch.lot_id,
                        quantity=weighing.actual,
                        unit=weighing.unit,
                        batch_id=batch_id,
                    )
                )
            for equipment_id in json.loads(batch.equipment):
                conn.execute(
                    update(EquipmentRow)
                    .where(EquipmentRow.equipment_id == equipment_id)
                    .values(status="Available", current_batch=None)
                )
                self._log(
                    conn, user, equipment_id, "release", batch_id, "batch executed; needs cleaning"
                )
            conn.execute(
                insert(LotRow).values(
                    lot_id=batch.lot_id,
                    material_id=batch.product_id,
                    status="Quarantine",
                    quantity=str(actual.value),
                    unit=actual.unit or "",
                )
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
        return yield_pct

    # --------------------------------------------------------------- deviations

    def open_deviation(self, session: Session, batch_id: str, title: str) -> str:
        """Open a deviation against a batch (blocks release until closed)."""
        deviation_id = f"DEV-{uuid.uuid4().hex[:8].upper()}"
        with self.db.transaction() as conn:
            user = self._user(conn, session, "deviation.open")
            self._open_batch(conn, batch_id)
            conn.execute(
                insert(DeviationRow).values(
                    deviation_id=deviation_id,
                    batch_id=batch_id,
                    title=title,
                    status="open",
                    opened_by=user.user_id,
                )
            )
            self._audit(
                conn,
                user.actor,
                "deviation.open",
                "deviation",
                deviation_id,
                new={"batch_id": batch_id, "title": title},
            )
        return deviation_id

    def investigate_deviation(
        self, session: Session, deviation_id: str, *, investigation: str, impact: str
    ) -> None:
        """Record the investigation and the impact assessment: open › investigated."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "deviation.investigate")
            row = self._deviation(conn, deviation_id)
            self._open_batch(conn, row.batch_id)
            if row.status != "open":
                raise BatchError(f"deviation {deviation_id} is {row.status}")
            conn.execute(
                update(DeviationRow)
                .where(DeviationRow.deviation_id == deviation_id)
                .values(status="investigated", investigation=investigation, impact=impact)
            )
            self._audit(
                conn,
                user.actor,
                "deviation.investigate",
                "deviation",
                deviation_id,
                old={"status": "open"},
                new={"status": "investigated", "impact": impact},
                reason=investigation,
            )

    def deviation_record(self, deviation_id: str) -> SignableRecord:
        """Signable content of a deviation (its investigation and impact)."""
        with self.db.read() as conn:
            row = self._deviation(conn, deviation_id)
        return SignableRecord(
            "deviation",
            deviation_id,
            {
                "batch_id": row.batch_id,
                "title": row.title,
                "investigation": row.investigation,
                "impact": row.impact,
            },
            row.batch_id,
        )

    def close_deviation(self, deviation_id: str, approver: Credentials, *, conclusion: str) -> None:
        """QA closes an investigated deviation with a signature (Approved)."""
        record = self.deviation_record(deviation_id)
        with self.db.read() as conn:
            row = self._deviation(conn, deviation_id)
            self._open_batch(conn, row.batch_id)
        if row.status != "investigated":
            raise BatchError(
                f"deviation {deviation_id} is {row.status}; investigate it before closing"
            )
        signature = self.signatures.sign(record, Meaning.APPROVED, approver, reason=conclusion)
        with self.db.transaction() as conn:
            conn.execute(
                update(DeviationRow)
                .where(DeviationRow.deviation_id == deviation_id)
                .values(status="closed", closure=conclusion)
            )
            self._audit(
                conn,
                Actor(signature.signer_id, signature.printed_name),
                "deviation.close",
                "deviation",
                deviation_id,
                old={"status": "investigated"},
                new={"status": "closed"},
                reason=conclusion,
            )

    def _deviation(self, conn: Connection, deviation_id: str) -> Any:
        return self._one(conn, DeviationRow.deviation_id, deviation_id, "deviation")

    # ------------------------------------------------------------------ review

    def review_by_exception(self, batch_id: str) -> list[ReviewItem]:
        """What QA must look at: exceptions, deviations, manual entries, changes, open items."""
        items: list[ReviewItem] = []
        with self.db.read() as conn:
            self._batch(conn, batch_id)
            for row in conn.execute(
                select(ExceptionRow)
                .where(ExceptionRow.batch_id == batch_id)
                .order_by(ExceptionRow.raised_at)
            ).all():
                items.append(
                    ReviewItem(
                        f"exception:{row.kind}",
                        row.reference,
                        row.detail,
                        not row.assessed,
                        row.exception_id,
                        {"assessment": row.assessment},
                    )
                )
            for deviation in conn.execute(
                select(DeviationRow).where(DeviationRow.batch_id == batch_id)
            ).all():
                items.append(
                    ReviewItem(
                        "deviation",
                        deviation.deviation_id,
                        f"{deviation.title} [{deviation.status}]",
                        deviation.status != "closed",
                        deviation.deviation_id,
                        {"impact": deviation.impact, "investigation": deviation.investigation},
                    )
                )
            weighings = (
                conn.execute(
                    select(WeighingRow.weighing_id).where(WeighingRow.batch_id == batch_id)
                )
                .scalars()
                .all()
            )
            phases = conn.execute(
                select(StepRow.path, StepRow.state).where(
                    StepRow.batch_id == batch_id, StepRow.kind == "Phase"
                )
            ).all()
        verified = {
            (s.record_type, s.record_id)
            for s in self.signatures.signatures_in_scope(batch_id)
            if s.meaning == Meaning.VERIFIED
        }
        for weighing_id in weighings:
            if ("weighing", weighing_id) not in verified:
                items.append(
                    ReviewItem(
                        "open:weighing_unverified",
                        weighing_id,
                        "weighing lacks its second-person verification",
                        True,
                    )
                )
        for path, state in phases:
            if state != "Complete":
                items.append(ReviewItem("open:phase_incomplete", path, f"phase is {state}", True))
        for entry in self._changes(batch_id):
            items.append(entry)
        return items

    def _changes(self, batch_id: str) -> list[ReviewItem]:
        changes = []
        for object_type in ("batch",):
            for entry in self.db.ledger.entries_for(object_type, batch_id):
                if entry.event.reason is not None:
                    changes.append(
                        ReviewItem(
                            "change",
                            f"{object_type} {batch_id}",
                            f"{entry.event.action} by {entry.event.actor.printed_name}: "
                            f"{entry.event.old} → {entry.event.new}",
                            False,
                            str(entry.seq),
                            {"reason": entry.event.reason},
                        )
                    )
        return changes

    def exception_record(self, exception_id: str) -> SignableRecord:
        """Signable content of an exception."""
        with self.db.read() as conn:
            row = self._one(conn, ExceptionRow.exception_id, exception_id, "exception")
        return SignableRecord(
            "batch_exception",
            exception_id,
            {
                "batch_id": row.batch_id,
                "kind": row.kind,
                "detail": row.detail,
                "reference": row.reference,
            },
            row.batch_id,
        )

    def assess_exception(self, exception_id: str, reviewer: Credentials, *, comment: str) -> None:
        """QA assesses one exception, with a comment and a signature (Reviewed)."""
        if not comment.strip():
            raise BatchError("an assessment needs a comment")
        record = self.exception_record(exception_id)
        with self.db.read() as conn:
            self._open_batch(conn, record.signable_scope, EXECUTED)
        signature = self.signatures.sign(record, Meaning.REVIEWED, reviewer, reason=comment)
        with self.db.transaction() as conn:
            conn.execute(
                update(ExceptionRow)
                .where(ExceptionRow.exception_id == exception_id)
                .values(assessed=True, assessment=comment)
            )
            self._audit(
                conn,
                Actor(signature.signer_id, signature.printed_name),
                "exception.assess",
                "batch_exception",
                exception_id,
                old={"assessed": False},
                new={"assessed": True},
                reason=comment,
            )

    def batch_record(self, batch_id: str) -> SignableRecord:
        """What QA signs for the whole batch: its stable content (status excluded)."""
        with self.db.read() as conn:
            batch = self._batch(conn, batch_id)
            values = (
                conn.execute(
                    select(ValueRow.seq).where(ValueRow.batch_id == batch_id).order_by(ValueRow.seq)
                )
                .scalars()
                .all()
            )
            weighings = conn.execute(
                select(WeighingRow)
                .where(WeighingRow.batch_id == batch_id)
                .order_by(WeighingRow.weighing_id)
            ).all()
            exceptions = conn.execute(
                select(ExceptionRow)
                .where(ExceptionRow.batch_id == batch_id)
                .order_by(ExceptionRow.exception_id)
            ).all()
            deviations = conn.execute(
                select(DeviationRow)
                .where(DeviationRow.batch_id == batch_id)
                .order_by(DeviationRow.deviation_id)
            ).all()
        content = {
            "batch_id": batch_id,
            "recipe": f"{batch.recipe_id}/v{batch.recipe_version}",
            "product_id": batch.product_id,
            "lot_id": batch.lot_id,
            "planned": batch.planned_quantity,
            "actual": batch.actual_quantity,
            "unit": batch.unit,
            "executed_at": batch.executed_at,
            "value_seqs": [
                len(values),
                values[0] if values else None,
                values[-1] if values else None,
            ],
            "weighings": [[w.weighing_id, w.lot_id, w.actual] for w in weighings],
            "exceptions": [[e.exception_id, e.kind, e.assessment] for e in exceptions],
            "items": [[i["item_id"], i["kind"]] for i in self.record_items(batch_id)],
            # Ids only: a deviation's investigation and closure are signed on the
            # deviation itself, and may close after the review signature.
            "deviations": [d.deviation_id for d in deviations],
        }
        return SignableRecord("batch", batch_id, content, batch_id)

    def complete_review(self, batch_id: str, reviewer: Credentials) -> None:
        """QA completes the review: every exception assessed → Reviewed (signed)."""
        items = self.review_by_exception(batch_id)
        open_items = [i for i in items if i.open and i.kind != "deviation"]
        if open_items:
            raise ReleaseBlocked(
                f"{len(open_items)} open review item(s): "
                + "; ".join(f"{i.kind} {i.reference}" for i in open_items[:5])
            )
        with self.db.read() as conn:
            batch = self._open_batch(conn, batch_id, EXECUTED)
        signature = self.signatures.sign(self.batch_record(batch_id), Meaning.REVIEWED, reviewer)
        with self.db.transaction() as conn:
            self._set_status(
                conn,
                Actor(signature.signer_id, signature.printed_name),
                batch_id,
                batch.status,
                REVIEWED,
            )

    def release(self, batch_id: str, approver: Credentials) -> None:
        """QA releases a reviewed batch; blocked while any deviation is open (211.192)."""
        self._decide(batch_id, approver, Meaning.RELEASED, RELEASED, None)

    def reject(self, batch_id: str, approver: Credentials, *, reason: str) -> None:
        """QA rejects the batch."""
        self._decide(batch_id, approver, Meaning.REJECTED, REJECTED, reason)

    def _decide(
        self, batch_id: str, approver: Credentials, meaning: str, status: str, reason: str | None
    ) -> None:
        with self.db.read() as conn:
            batch = self._open_batch(
                conn, batch_id, REVIEWED, *((EXECUTED,) if status == REJECTED else ())
            )
            open_deviations = (
                conn.execute(
                    select(DeviationRow.deviation_id).where(
                        DeviationRow.batch_id == batch_id, DeviationRow.status != "closed"
                    )
                )
                .scalars()
                .all()
            )
        if open_deviations and status == RELEASED:
            raise ReleaseBlocked(
                f"release blocked by open deviation(s): {', '.join(open_deviations)} "
                "(21 CFR 211.192)"
            )
        signature = self.signatures.sign(
            self.batch_record(batch_id), meaning, approver, reason=reason
        )
        with self.db.transaction() as conn:
            self._set_status(
                conn,
                Actor(signature.signer_id, signature.printed_name),
                batch_id,
                batch.status,
                status,
                reason=reason,
                closed_at=self._ts(),
            )
            if status == RELEASED:
                conn.execute(
                    update(LotRow).where(LotRow.lot_id == batch.lot_id).values(status="Released")
                )

    # ------------------------------------------------------------------ queries

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch row as a dict."""
        with self.db.read() as conn:
            return dict(self._batch(conn, batch_id)._mapping)

    def values(self, batch_id: str) -> list[dict[str, Any]]:
        """Every captured value of a batch, in capture order."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(ValueRow).where(ValueRow.batch_id == batch_id).order_by(ValueRow.seq)
            ).all()
        return [dict(r._mapping) for r in rows]

    def steps(self, batch_id: str) -> list[dict[str, Any]]:
        """The procedural elements of a batch and their states."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(StepRow).where(StepRow.batch_id == batch_id).order_by(StepRow.path)
            ).all()
        return [dict(r._mapping) for r in rows]

    def weighings(self, batch_id: str) -> list[dict[str, Any]]:
        """Weighings of a batch."""
        with self.db.read() as conn:
            rows = conn.execute(select(WeighingRow).where(WeighingRow.batch_id == batch_id)).all()
        return [dict(r._mapping) for r in rows]

    def verify_batch_signatures(self, batch_id: str) -> list[tuple[Any, str | None]]:
        """Re-check every signature of the batch against the records as they are now."""
        records: dict[tuple[str, str], Any] = {}
        for signature in self.signatures.signatures_in_scope(batch_id):
            key = (signature.record_type, signature.record_id)
            if key in records:
                continue
            loader = {
                "batch_step": lambda rid: self.step_record(batch_id, rid[len(batch_id) + 1 :]),
                "weighing": self.weighing_record,
                "batch_exception": self.exception_record,
                "deviation": self.deviation_record,
                "batch": self.batch_record,
            }.get(signature.record_type)
            if loader is not None:
                records[key] = loader(signature.record_id)
        return self.signatures.verify_scope(batch_id, records)

    def verify_values(self, batch_id: str) -> list[str]:
        """Compare every stored value with its audit entry; returns the discrepancies.

        A value changed or deleted in ``ebr_value`` no longer matches (or lacks)
        the audit entry it was written with; entries themselves are protected by
        the ledger's own verification.
        """
        problems = []
        stored = {v["seq"]: v for v in self.values(batch_id)}
        batch = self.batch(batch_id)
        recipe, _ = self.recipe(batch["recipe_id"], batch["recipe_version"])
        parameters = [
            f"{path}/{p.id}"
            for path, element in recipe.procedural_elements()
            if isinstance(element, Phase)
            for p in element.parameters
        ]
        entries = [
            e
            for parameter in parameters
            for e in self.db.ledger.entries_for("process_value", f"{batch_id}/{parameter}")
        ]
        for entry in sorted(entries, key=lambda e: e.seq):
            if entry.event.action not in ("value.capture", "value.manual"):
                continue
            row = stored.pop(entry.seq, None)
            new = entry.event.new
            if row is None:
                problems.append(f"value {entry.seq} ({new['tag']}) is missing from the record")
            elif (row["value"], row["tag"], row["quality"]) != (
                new["value"],
                new["tag"],
                new["quality"],
            ):
                problems.append(
                    f"value {entry.seq} ({new['tag']}) differs from its audit entry: "
                    f"{row['value']} vs {new['value']}"
                )
        for seq, row in stored.items():
            problems.append(f"value {seq} ({row['tag']}) has no audit entry")
        return problems

    def equipment_ids(self, batch_id: str) -> Iterable[str]:
        """Equipment assigned to a batch."""
        return [str(e) for e in json.loads(self.batch(batch_id)["equipment"])]
