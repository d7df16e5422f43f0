"""The enforced procedure (21 CFR 211.100, 211.188(b), 11.10(f)): order, mandatory data,
weigh & dispense against the bill of materials (211.101), charging, second-person checks.

The master recipe declares the rules (:mod:`isa95.recipe`): each element's
``after`` siblings, and each phase's required parameters, BOM lines, in-process
controls, samples, signatures and whether manual entries need a second person.
This module refuses, with an exception naming what is missing, every step the
recipe does not allow, and records each refusal in the audit trail. Before it
relies on a state in the tables it re-checks those rows against the log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from audit.entry import Actor
from gxpmes.database import SYSTEM
from gxpmes.ebr.base import EXECUTED, IN_EXECUTION, _weighing_record
from gxpmes.ebr.capture import ValueCapture
from gxpmes.ebr.schema import (
    BatchRow,
    ChargeRow,
    EquipmentRow,
    LotRow,
    RecordItemRow,
    StepRow,
    ValueBlockRow,
    ValueRow,
    WeighingRow,
)
from gxpmes.errors import (
    BatchError,
    DispenseRefused,
    GxpError,
    MissingDataError,
    ProcedureError,
    RecordIntegrityError,
    SeparationOfDutiesError,
)
from gxpmes.identity import Credentials, Meaning, SignableRecord
from gxpmes.identity.schema import SignatureRow
from gxpmes.lengths import chars_of, check_length
from gxpmes.records import writer as projection
from gxpmes.records.replay import compare_rows, replay
from gxpmes.records.tables import projected
from isa95.recipe import MaterialRequirement, Phase, Recipe

__all__ = ["BALANCE_CLASS", "BATCH_ID_CHARS", "ProcedureRules"]

BALANCE_CLASS = "balance"
"""Equipment class (case-insensitive) of the registered balances weighings are made on."""

_WEIGHING, _CHARGE, _ID_HEX = "/W-", "/CH-", 8  # weighing / charge ids: batch id + these + hex
BATCH_ID_CHARS = min(
    chars_of(WeighingRow.weighing_id) - len(_WEIGHING) - _ID_HEX,
    chars_of(ChargeRow.charge_id) - len(_CHARGE) - _ID_HEX,
)
"""The longest batch id (52): its weighing and charge ids (the batch id, ``/W-`` or
``/CH-`` and 8 hex digits) must fit their 64-character columns."""


def _charge_content(weighing: Any, equipment_id: str) -> dict[str, Any]:
    """What the person charging a container signs."""
    return {
        "batch_id": weighing.batch_id,
        "phase": weighing.phase,
        "weighing_id": weighing.weighing_id,
        "container_id": weighing.container_id,
        "material_id": weighing.material_id,
        "lot_id": weighing.lot_id,
        "quantity": weighing.actual,
        "unit": weighing.unit,
        "equipment_id": equipment_id,
    }


class ProcedureRules(ValueCapture):
    """Order, mandatory data, weigh & dispense, charging and entry verification."""

    # ----------------------------------------------------------- log checks

    def _check_rows(
        self,
        conn: Connection,
        entries: Iterable[Any],
        table: str,
        keys: set[tuple[Any, ...]],
        where: Any,
    ) -> None:
        """Rows ``where`` selects (keys ``keys``) are what the given trail entries wrote."""
        by_seq = {entry.seq: entry.event for entry in entries}
        state = replay((seq, by_seq[seq].action, by_seq[seq].new) for seq in sorted(by_seq))
        spec = projected()[table]
        expected = {k: v for k, v in state.get(table, {}).items() if k in keys}
        found = [dict(r) for r in conn.execute(select(spec.table).where(where)).mappings()]
        problems = list(compare_rows(spec, expected, found))
        if problems:
            raise RecordIntegrityError(
                "the record does not match its audit trail: "
                + "; ".join(p.line() for p in problems[:5])
            )

    def _check_steps(
        self, conn: Connection, batch_id: str, paths: Iterable[str], *, batch_row: bool = False
    ) -> None:
        """The step rows of ``paths`` (and the batch row) match the log before they are trusted."""
        paths = sorted(set(paths))
        trail = self.db.ledger.entries_for
        entries = list(trail("batch", batch_id))
        for path in paths:
            entries += trail("batch_step", f"{batch_id}/{path}")
        self._check_rows(
            conn,
            entries,
            "ebr_step",
            {(batch_id, p) for p in paths},
            (StepRow.batch_id == batch_id) & StepRow.path.in_(paths),
        )
        if batch_row:
            self._check_rows(
                conn, entries, "ebr_batch", {(batch_id,)}, BatchRow.batch_id == batch_id
            )

    def _refused(self, batch_id: str, path: str, what: str, by: str, exc: Exception) -> None:
        """Record a refused procedural action in the element's trail (after the rollback)."""
        with self.db.transaction() as conn:
            self._audit(
                conn,
                SYSTEM,
                "procedure.refused",
                "batch_step",
                f"{batch_id}/{path}",
                new={"action": what, "by": by, "error": type(exc).__name__, "detail": str(exc)},
            )

    # ------------------------------------------------------------ ordering

    def _check_start(self, conn: Connection, batch: Any, recipe: Recipe, path: str) -> None:
        """A Start is allowed: the parent is Running and every predecessor is Complete."""
        batch_id = batch.batch_id
        parent = path.rpartition("/")[0]
        predecessors = recipe.predecessors(path)
        at_top = "/" not in parent  # a unit procedure: its parent is the batch's procedure
        self._check_steps(conn, batch_id, [*predecessors, *([] if at_top else [parent])],
                          batch_row=at_top)  # fmt: skip
        if at_top:
            parent_state = self._batch(conn, batch_id).procedure_state
        else:
            parent_state = self._step(conn, batch_id, parent).state
        if parent_state != "Running":
            raise ProcedureError(
                f"{path} cannot start: its parent {parent} is {parent_state}, not Running"
            )
        waiting = [
            f"{p} ({state})"
            for p in predecessors
            if (state := self._step(conn, batch_id, p).state) != "Complete"
        ]
        if waiting:
            raise ProcedureError(
                f"{path} cannot start before its predecessor(s) complete: " + ", ".join(waiting)
            )

    def _check_children_complete(self, conn: Connection, batch_id: str, path: str) -> None:
        children = conn.execute(
            select(StepRow.path, StepRow.state).where(
                StepRow.batch_id == batch_id, StepRow.path.like(f"{path}/%")
            )
        ).all()
        self._check_steps(conn, batch_id, [c.path for c in children])
        open_children = [f"{p} ({s})" for p, s in children if s != "Complete"]
        if open_children:
            raise ProcedureError(
                f"{path} cannot complete while its children are not Complete: "
                + ", ".join(open_children[:5])
            )

    # ------------------------------------------------------- mandatory data

    @staticmethod
    def _phase(recipe: Recipe, path: str) -> Phase:
        element = recipe.element(path)
        if not isinstance(element, Phase):
            raise BatchError(f"{path} is not a phase")
        return element

    def _signed(self, conn: Connection, record_type: str, record_id: str) -> dict[str, set[str]]:
        """Meaning → signers of the signatures on one record."""
        rows = conn.execute(
            select(SignatureRow.meaning, SignatureRow.signer_id).where(
                SignatureRow.record_type == record_type, SignatureRow.record_id == record_id
            )
        ).all()
        signed: dict[str, set[str]] = {}
        for meaning, signer in rows:
            signed.setdefault(meaning, set()).add(signer)
        return signed

    def _phase_items(self, conn: Connection, batch_id: str, path: str) -> list[Any]:
        rows = conn.execute(select(RecordItemRow).where(RecordItemRow.batch_id == batch_id)).all()
        return [r for r in rows if json.loads(r.content).get("phase") == path]

    def phase_missing(self, batch_id: str, path: str) -> list[str]:
        """What phase ``path`` still lacks before it may complete (empty: nothing)."""
        with self.db.read() as conn:
            batch = self._batch(conn, batch_id)
            recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
            return self._phase_missing(conn, batch_id, recipe, path)

    def _phase_missing(
        self, conn: Connection, batch_id: str, recipe: Recipe, path: str
    ) -> list[str]:
        phase = self._phase(recipe, path)
        missing: list[str] = []
        recorded = {
            parameter
            for table in (ValueRow, ValueBlockRow)
            for parameter in conn.execute(
                select(table.parameter)
                .where(table.batch_id == batch_id, table.parameter.like(f"{path}/%"))
                .distinct()
            ).scalars()
        }
        missing += [
            f"a value of parameter {p.id}"
            for p in phase.parameters
            if p.id in phase.required and f"{path}/{p.id}" not in recorded
        ]
        items = self._phase_items(conn, batch_id, path)
        contents = [(r, json.loads(r.content)) for r in items]
        missing += [
            f"the IPC result {c.id}"
            for c in phase.controls
            if not any(r.kind == "ipc" and body.get("control") == c.id for r, body in contents)
        ]
        missing += [
            f"the sample {s}"
            for s in phase.samples
            if not any(r.kind == "sample" and body.get("sample") == s for r, body in contents)
        ]
        weighings = {
            w.material_id: w
            for w in conn.execute(
                select(WeighingRow).where(
                    WeighingRow.batch_id == batch_id, WeighingRow.phase == path
                )
            ).all()
        }
        charged = set(
            conn.execute(select(ChargeRow.weighing_id).where(ChargeRow.batch_id == batch_id))
            .scalars()
            .all()
        )
        for line in phase.materials:
            weighing = weighings.get(line.material_id)
            if weighing is None:
                missing.append(f"the dispensing of {line.material_id}")
            elif weighing.weighing_id not in charged:
                missing.append(
                    f"the charging of container {weighing.container_id} ({line.material_id})"
                )
        if phase.verify_entries:
            missing += self._unverified_entries(conn, batch_id, path, [r for r, _b in contents])
        return missing

    def _unverified_entries(
        self, conn: Connection, batch_id: str, path: str, items: list[Any]
    ) -> list[str]:
        """Manual entries and IPC results of the phase not signed Performed and Verified."""
        entries = [
            ("manual entry", "process_value", f"{batch_id}/{seq}", str(seq))
            for seq in self._manual_entries(conn, batch_id, path)
        ] + [
            ("IPC result", "batch_record_item", row.item_id, row.item_id)
            for row in items
            if row.kind == "ipc"
        ]
        missing = []
        for what, record_type, record_id, name in entries:
            signed = self._signed(conn, record_type, record_id)
            if not signed.get("Performed") or not signed.get("Verified"):
                missing.append(f"{what} {name} signed Performed and Verified (a second person)")
        return missing

    def _manual_entries(self, conn: Connection, batch_id: str, path: str) -> list[int]:
        return list(
            conn.execute(
                select(ValueRow.seq).where(
                    ValueRow.batch_id == batch_id,
                    ValueRow.parameter.like(f"{path}/%"),
                    ValueRow.manual.is_(True),
                )
            )
            .scalars()
            .all()
        )

    def _check_record_complete(self, conn: Connection, batch_id: str, what: str) -> None:
        """Every phase has its data and its required signatures, else :class:`MissingDataError`."""
        batch = self._batch(conn, batch_id)
        recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
        missing: list[str] = []
        for path, element in recipe.procedural_elements():
            if not isinstance(element, Phase):
                continue
            missing += [f"{path}: {m}" for m in self._phase_missing(conn, batch_id, recipe, path)]
            signed = self._signed(conn, "batch_step", f"{batch_id}/{path}")
            missing += [
                f"{path}: a {meaning} signature"
                for meaning in element.signatures
                if not signed.get(meaning)
            ]
        if missing:
            raise MissingDataError(
                f"batch {batch_id} cannot be {what}: {len(missing)} item(s) missing: "
                + "; ".join(missing[:8])
            )

    # ---------------------------------------------------- weigh & dispense

    @staticmethod
    def _bom_line(recipe: Recipe, phase: str, material_id: str) -> MaterialRequirement:
        element = recipe.element(phase) if phase else None
        if not isinstance(element, Phase):
            raise DispenseRefused(f"{phase!r} is not a phase of recipe {recipe.id}")
        for line in element.materials:
            if line.material_id == material_id:
                return line
        listed = ", ".join(m.material_id for m in element.materials) or "nothing"
        raise DispenseRefused(
            f"{material_id} is not in the bill of materials of phase {phase} (it lists {listed})"
        )

    @staticmethod
    def _scaled(recipe: Recipe, batch: Any, line: MaterialRequirement) -> tuple[Decimal, Decimal]:
        """Target and tolerance for this batch: the BOM scaled by planned / recipe batch size."""
        size = recipe.batch_size
        if size is None or size.unit != batch.unit or not size.value:
            return line.quantity.value, line.tolerance
        factor = Decimal(batch.planned_quantity) / size.value
        return line.quantity.value * factor, line.tolerance * factor

    def _check_balance(self, conn: Connection, balance_id: str, now: datetime) -> None:
        row = conn.execute(
            select(EquipmentRow).where(EquipmentRow.equipment_id == balance_id)
        ).one_or_none()
        if row is None:
            raise DispenseRefused(f"no registered balance {balance_id!r}")
        self._check_rows(
            conn,
            self.db.ledger.entries_for("equipment", balance_id),
            "ebr_equipment",
            {(balance_id,)},
            EquipmentRow.equipment_id == balance_id,
        )
        if row.equipment_class.casefold() != BALANCE_CLASS:
            raise DispenseRefused(f"{balance_id} is a {row.equipment_class}, not a balance")
        if row.status != "Available":
            raise DispenseRefused(f"balance {balance_id} is {row.status}")
        if datetime.fromisoformat(row.calibration_due) <= now:
            raise DispenseRefused(
                f"balance {balance_id} is out of calibration (due {row.calibration_due})"
            )

    def _check_lot(
        self, conn: Connection, lot_id: str, material_id: str, unit: str, amount: Decimal
    ) -> Any:
        lot = conn.execute(select(LotRow).where(LotRow.lot_id == lot_id)).one_or_none()
        if lot is None or lot.material_id != material_id:
            raise DispenseRefused(f"lot {lot_id} is not a lot of {material_id}")
        self._check_rows(
            conn,
            self.db.ledger.entries_for("lot", lot_id),
            "ebr_lot",
            {(lot_id,)},
            LotRow.lot_id == lot_id,
        )
        if lot.status != "Released":
            raise DispenseRefused(
                f"lot {lot_id} is {lot.status}; only Released material may be dispensed"
            )
        if lot.expires_at is None:
            raise DispenseRefused(f"lot {lot_id} has no expiry date; it cannot be dispensed")
        if datetime.fromisoformat(lot.expires_at) <= self._now():
            raise DispenseRefused(f"lot {lot_id} expired on {lot.expires_at}")
        if lot.unit != unit:
            raise DispenseRefused(f"lot {lot_id} is kept in {lot.unit}, the BOM line in {unit}")
        if amount > Decimal(lot.quantity):
            raise DispenseRefused(
                f"lot {lot_id} holds {lot.quantity} {lot.unit}; {amount} cannot be dispensed"
            )
        return lot

    def weigh(
        self,
        batch_id: str,
        *,
        phase: str,
        material_id: str,
        lot_id: str,
        actual: Decimal,
        balance_id: str,
        performer: Credentials,
        container_id: str | None = None,
    ) -> str:
        """Dispense a BOM line of ``phase`` into a container (211.101(c)); the weigher signs.

        Refused (:class:`DispenseRefused`, audited) unless the material is on
        the phase's BOM line and not yet dispensed, ``actual`` lies within the
        line's tolerance (scaled to the planned batch size), ``balance_id`` is a
        registered balance that is Available and calibrated now, and the lot is
        Released, unexpired, of that material and holds enough. The check and the
        consumption run under the write lock, so two dispenses from one lot
        never both draw on the same quantity; the consumption is an entry on the
        lot's own trail. Returns the weighing id. An ``actual`` of more than 64
        characters or a container id of more than 128 is refused before anything
        is written or audited (the record keeps neither rounded nor cut).
        """
        weighing_id = f"{batch_id}{_WEIGHING}{uuid.uuid4().hex[:_ID_HEX]}"
        container = container_id or f"C-{weighing_id.rsplit('-', 1)[1]}"
        if not isinstance(actual, Decimal) or not actual.is_finite() or actual <= 0:
            raise DispenseRefused(f"weighed quantity {actual!r} is not a positive Decimal")
        # Refused, never rounded; both checked before anything is written or audited.
        check_length(DispenseRefused, "weighed quantity", str(actual), WeighingRow.actual)
        check_length(DispenseRefused, "container id", container, WeighingRow.container_id)
        seen: dict[str, Any] = {}
        subject = SignableRecord("weighing", weighing_id, {}, batch_id)

        def build(conn: Connection) -> SignableRecord:
            batch = self._open_batch(conn, batch_id, IN_EXECUTION)
            recipe, _ = self.recipe(batch.recipe_id, batch.recipe_version)
            line = self._bom_line(recipe, phase, material_id)
            step = self._step(conn, batch_id, phase)
            self._check_steps(conn, batch_id, [phase])
            if step.state not in ("Idle", "Running"):
                raise DispenseRefused(f"phase {phase} is {step.state}: nothing more is dispensed")
            target, tolerance = self._scaled(recipe, batch, line)
            unit = line.quantity.unit or ""
            if abs(actual - target) > tolerance:
                raise DispenseRefused(
                    f"{material_id}: {actual} {unit} is outside {target} ± {tolerance} {unit}"
                )
            self._check_balance(conn, balance_id, self._now())
            seen["lot"] = self._check_lot(conn, lot_id, material_id, unit, actual)
            done = conn.execute(
                select(WeighingRow.weighing_id).where(
                    WeighingRow.batch_id == batch_id,
                    WeighingRow.phase == phase,
                    WeighingRow.material_id == material_id,
                )
            ).first()
            if done is not None:
                raise DispenseRefused(
                    f"{material_id} of phase {phase} is already dispensed ({done[0]})"
                )
            seen["unit"] = unit
            record = _weighing_record(
                weighing_id,
                batch_id,
                material_id,
                lot_id,
                str(target),
                str(tolerance),
                str(actual),
                unit,
                balance_id,
            )
            seen["record"] = record
            return record

        def change(conn: Connection, actor: Actor) -> None:
            lot, record = seen["lot"], seen["record"]
            projection.insert(
                conn,
                WeighingRow,
                dict(
                    weighing_id=weighing_id,
                    batch_id=batch_id,
                    material_id=material_id,
                    lot_id=lot_id,
                    target=record.content["target"],
                    tolerance=record.content["tolerance"],
                    actual=str(actual),
                    unit=seen["unit"],
                    balance_id=balance_id,
                    performed_by=actor.user_id,
                    weighed_at=self._ts(),
                    phase=phase,
                    container_id=container,
                ),
            )
            self._audit(
                conn,
                actor,
                "weighing.record",
                "weighing",
                weighing_id,
                new={**record.content, "phase": phase, "container_id": container},
            )
            remaining = Decimal(lot.quantity) - actual
            projection.update(conn, LotRow, {"lot_id": lot_id}, dict(quantity=str(remaining)))
            self._audit(
                conn,
                actor,
                "lot.consume",
                "lot",
                lot_id,
                old={"quantity": lot.quantity},
                new={
                    "quantity": str(remaining),
                    "consumed": str(actual),
                    "unit": lot.unit,
                    "batch_id": batch_id,
                    "weighing_id": weighing_id,
                },
            )
            from gxpmes.erp.outbox import emit  # ERP consumption posting, same transaction

            emit(self, conn, "weighing.recorded", batch_id, weighing_id=weighing_id)

        self._signed_change(performer, Meaning.PERFORMED, subject, build, change)
        return weighing_id

    def charge(self, batch_id: str, weighing_id: str, performer: Credentials) -> str:
        """Charge a dispensed container into the unit of its phase; the performer signs.

        The phase must be Running; each container is charged once. The charge
        row names container, weighing, phase and unit. Returns the charge id.
        """
        charge_id = f"{batch_id}{_CHARGE}{uuid.uuid4().hex[:_ID_HEX]}"
        subject = SignableRecord("charge", charge_id, {}, batch_id)
        seen: dict[str, Any] = {}

        def build(conn: Connection) -> SignableRecord:
            self._open_batch(conn, batch_id, IN_EXECUTION)
            weighing = conn.execute(
                select(WeighingRow).where(WeighingRow.weighing_id == weighing_id)
            ).one_or_none()
            if weighing is None or weighing.batch_id != batch_id or weighing.phase is None:
                raise BatchError(f"no dispensed container {weighing_id!r} in batch {batch_id}")
            if conn.execute(
                select(ChargeRow.charge_id).where(ChargeRow.weighing_id == weighing_id)
            ).first():
                raise BatchError(f"container {weighing.container_id} is already charged")
            step = self._step(conn, batch_id, weighing.phase)
            self._check_steps(conn, batch_id, [weighing.phase])
            self._check_charge(weighing, step)
            content = _charge_content(weighing, step.equipment_id or "")
            seen["content"] = content
            return SignableRecord("charge", charge_id, content, batch_id)

        def change(conn: Connection, actor: Actor) -> None:
            content = seen["content"]
            projection.insert(
                conn,
                ChargeRow,
                dict(
                    charge_id=charge_id,
                    batch_id=batch_id,
                    phase=content["phase"],
                    weighing_id=weighing_id,
                    container_id=content["container_id"],
                    equipment_id=content["equipment_id"],
                    charged_by=actor.user_id,
                    charged_at=self._ts(),
                ),
            )
            self._audit(
                conn,
                actor,
                "material.charge",
                "batch_step",
                f"{batch_id}/{content['phase']}",
                new=content,
            )
            from gxpmes.erp.outbox import emit  # ERP consumption posting, same transaction

            emit(self, conn, "charge.recorded", batch_id, weighing_id=weighing_id)

        self._signed_change(performer, Meaning.PERFORMED, subject, build, change)
        return charge_id

    @staticmethod
    def _check_charge(weighing: Any, step: Any) -> None:
        """A container is charged into its phase's unit while the phase runs."""
        if step.state != "Running":
            raise ProcedureError(
                f"container {weighing.container_id} is charged while phase {weighing.phase} "
                f"runs; it is {step.state}"
            )

    def charge_record(self, charge_id: str) -> SignableRecord:
        """The signable content of a charge (container, weighing, phase, unit)."""
        with self.db.read() as conn:
            charge = self._one(conn, ChargeRow.charge_id, charge_id, "charge")
            weighing = self._one(conn, WeighingRow.weighing_id, charge.weighing_id, "weighing")
        content = _charge_content(weighing, charge.equipment_id)
        return SignableRecord("charge", charge_id, content, charge.batch_id)

    def charges(self, batch_id: str) -> list[dict[str, Any]]:
        """Containers charged into units, for a batch."""
        with self.db.read() as conn:
            rows = conn.execute(select(ChargeRow).where(ChargeRow.batch_id == batch_id)).all()
        return [dict(r._mapping) for r in rows]

    # ------------------------------------------------- entry verification

    def entry_record(self, batch_id: str, entry: str) -> tuple[SignableRecord, str]:
        """The signable form of a manual entry (its audit seq) or an IPC result (its item id),
        and who entered it."""
        with self.db.read() as conn:
            if entry.isdigit():
                row = conn.execute(
                    select(ValueRow).where(
                        ValueRow.seq == int(entry),
                        ValueRow.leaf == 0,
                        ValueRow.batch_id == batch_id,
                    )
                ).one_or_none()
                if row is None or not row.manual:
                    raise BatchError(f"batch {batch_id} has no manual entry {entry}")
                # leaf is 0 for every manual entry: left out, so the signed content is as before.
                content = {
                    k: v for k, v in dict(row._mapping).items() if k not in ("in_limits", "leaf")
                }
                by = self.db.ledger.entry(row.seq).event.actor.user_id
                return SignableRecord("process_value", f"{batch_id}/{entry}", content, batch_id), by
            item = conn.execute(
                select(RecordItemRow).where(RecordItemRow.item_id == entry)
            ).one_or_none()
            if item is None or item.batch_id != batch_id or item.kind != "ipc":
                raise BatchError(f"batch {batch_id} has no IPC result {entry!r}")
            content = {**dict(item._mapping), "content": json.loads(item.content)}
            return SignableRecord("batch_record_item", entry, content, batch_id), item.recorded_by

    def sign_entry(self, batch_id: str, entry: str, performer: Credentials) -> None:
        """Whoever entered a manual value (audit seq) or an IPC result (item id) signs it."""
        record, entered_by = self.entry_record(batch_id, entry)

        def build(conn: Connection) -> SignableRecord:
            self._open_batch(conn, batch_id, IN_EXECUTION, EXECUTED)
            if performer.user_id != entered_by:
                raise SeparationOfDutiesError(
                    f"{record.signable_type} {entry} was entered by {entered_by}: only they sign "
                    "it Performed"
                )
            return self.entry_record(batch_id, entry)[0]

        self._signed_change(performer, Meaning.PERFORMED, record, build, lambda conn, a: None)

    def verify_entry(self, batch_id: str, entry: str, checker: Credentials) -> None:
        """A second person verifies a manual entry (audit seq) or an IPC result (item id)."""
        record, entered_by = self.entry_record(batch_id, entry)

        def build(conn: Connection) -> SignableRecord:
            self._open_batch(conn, batch_id, IN_EXECUTION, EXECUTED)
            if checker.user_id == entered_by:
                raise SeparationOfDutiesError(
                    f"{checker.user_id} entered {record.signable_type} {entry}: a second person "
                    "verifies it"
                )
            return self.entry_record(batch_id, entry)[0]

        self._signed_change(checker, Meaning.VERIFIED, record, build, lambda conn, actor: None)

    def _audited(self, batch_id: str, path: str, what: str, by: str, run: Any) -> Any:
        """Run ``run()``; a refusal is recorded in the element's trail, then re-raised."""
        from isa95.errors import IllegalTransition

        try:
            return run()
        except (GxpError, IllegalTransition) as exc:
            if not isinstance(exc, RecordIntegrityError):
                self._refused(batch_id, path, what, by, exc)
            raise
