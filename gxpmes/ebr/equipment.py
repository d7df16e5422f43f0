"""Equipment inventory, cleaning, maintenance and logbook (21 CFR 211.67, 211.68, 211.182)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from gxpmes.ebr.base import (
    EngineBase,
)
from gxpmes.ebr.schema import (
    EquipmentLogRow,
    EquipmentRow,
)
from gxpmes.errors import (
    BatchError,
    EquipmentNotReady,
)
from gxpmes.identity.service import Session
from gxpmes.lengths import check_length, check_lengths
from gxpmes.records import writer as projection


class EquipmentRecords(EngineBase):
    """Equipment inventory, cleaning, maintenance and logbook (21 CFR 211.67, 211.68, 211.182)."""

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
        """Add a piece of equipment to the logbook-managed inventory.

        An id, level or class longer than its column holds is refused
        (:class:`BatchError`) before anything is written.
        """
        check_lengths(
            BatchError,
            (
                ("equipment id", equipment_id, EquipmentRow.equipment_id),
                (f"equipment {equipment_id}: level", level, EquipmentRow.level),
                (f"equipment {equipment_id}: class", equipment_class, EquipmentRow.equipment_class),
            ),
        )
        due = _calibration_text(equipment_id, calibration_due)
        with self.db.transaction() as conn:
            user = self._user(conn, session, "equipment.manage")
            projection.insert(
                conn,
                EquipmentRow,
                dict(
                    equipment_id=equipment_id,
                    level=level,
                    equipment_class=equipment_class,
                    status="Available",
                    clean=clean,
                    cleaned_at=self._ts() if clean else None,
                    calibration_due=due,
                    current_batch=None,
                ),
            )
            self._log(
                conn,
                user,
                equipment_id,
                "registered",
                None,
                f"class {equipment_class}, calibration due {due}",
            )

    def record_cleaning(self, session: Session, equipment_id: str, comment: str) -> None:
        """Record cleaning / line clearance: the equipment becomes clean."""
        with self.db.transaction() as conn:
            user = self._user(conn, session, "equipment.log")
            row = self._equipment(conn, equipment_id)
            if row.status == "In use":
                raise EquipmentNotReady(f"{equipment_id} is in use by batch {row.current_batch}")
            projection.update(
                conn,
                EquipmentRow,
                {"equipment_id": equipment_id},
                dict(clean=True, cleaned_at=self._ts()),
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
        due = None if calibration_due is None else _calibration_text(equipment_id, calibration_due)
        with self.db.transaction() as conn:
            user = self._user(conn, session, "equipment.manage")
            self._equipment(conn, equipment_id)
            if due is not None:
                projection.update(
                    conn,
                    EquipmentRow,
                    {"equipment_id": equipment_id},
                    dict(calibration_due=due),
                )
            self._log(conn, user, equipment_id, "maintenance", None, comment)

    def set_equipment_status(
        self, session: Session, equipment_id: str, status: str, *, reason: str
    ) -> None:
        """Take equipment out of service or back (Available / Out of service)."""
        if status not in ("Available", "Out of service"):
            raise BatchError(f"equipment status {status!r} is not Available or Out of service")
        if not reason or not reason.strip():
            raise BatchError(f"changing the status of {equipment_id} needs a reason")
        with self.db.transaction() as conn:
            user = self._user(conn, session, "equipment.manage")
            row = self._equipment(conn, equipment_id)
            if row.status == "In use":
                raise EquipmentNotReady(f"{equipment_id} is in use by batch {row.current_batch}")
            projection.update(
                conn, EquipmentRow, {"equipment_id": equipment_id}, dict(status=status)
            )
            # The logbook line and the entry written by hand (not _log): the entry
            # carries old and new status and the reason in its own field, which the
            # ledger requires for "equipment.status" (REASON_REQUIRED_ACTIONS).
            comment = f"{row.status} → {status}: {reason}"
            projection.insert(
                conn,
                EquipmentLogRow,
                {
                    "equipment_id": equipment_id,
                    "event": "status",
                    "batch_id": None,
                    "at": self._ts(),
                    "by": user.user_id,
                    "comment": comment,
                },
            )
            self._audit(
                conn,
                user.actor,
                "equipment.status",
                "equipment",
                equipment_id,
                old={"status": row.status},
                new={"batch_id": None, "comment": comment, "status": status},
                reason=reason,
            )

    def equipment_log(self, equipment_id: str) -> list[dict[str, Any]]:
        """The equipment's logbook, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(EquipmentLogRow)
                .where(EquipmentLogRow.equipment_id == equipment_id)
                .order_by(EquipmentLogRow.id)
            ).all()
        return [dict(r._mapping) for r in rows]


def _calibration_text(equipment_id: str, calibration_due: datetime) -> str:
    """The stored text of a calibration due date; :class:`BatchError` for anything but an
    aware datetime (a naive one cannot be compared with the batch's clock) or a text
    longer than its column holds."""
    if not isinstance(calibration_due, datetime) or calibration_due.utcoffset() is None:
        raise BatchError(
            f"equipment {equipment_id}: calibration due {calibration_due!r} is not a "
            "timezone-aware datetime"
        )
    text = calibration_due.isoformat()
    check_length(
        BatchError, f"equipment {equipment_id}: calibration due", text, EquipmentRow.calibration_due
    )
    return text
