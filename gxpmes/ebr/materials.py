"""Material lots, their status, and genealogy queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from audit.canonical import format_timestamp
from gxpmes.ebr.equipment import EquipmentRecords
from gxpmes.ebr.schema import (
    GenealogyRow,
    LotRow,
)
from gxpmes.errors import BatchError
from gxpmes.identity.service import Session
from gxpmes.lengths import check_length, check_lengths
from gxpmes.records import writer as projection
from isa95.common import Quantity


class MaterialRecords(EquipmentRecords):
    """Material lots, their status, and genealogy queries."""

    def receive_lot(
        self,
        session: Session,
        lot_id: str,
        material_id: str,
        quantity: Quantity,
        *,
        status: str = "Quarantine",
        expires: datetime | None = None,
    ) -> None:
        """Receive a material lot (Quarantine until QA releases it).

        ``expires`` is the expiry (or retest) date: a lot without one, or past
        it, is never dispensed. An id, status, quantity or unit longer than its
        column holds is refused (:class:`BatchError`) before anything is written.
        """
        check_lengths(
            BatchError,
            (
                ("lot id", lot_id, LotRow.lot_id),
                (f"lot {lot_id}: material id", material_id, LotRow.material_id),
                (f"lot {lot_id}: status", status, LotRow.status),
                (f"lot {lot_id}: quantity", str(quantity.value), LotRow.quantity),
                (f"lot {lot_id}: unit", quantity.unit, LotRow.unit),
            ),
        )
        if expires is not None and expires.utcoffset() is None:
            raise BatchError(f"lot {lot_id}: expiry {expires} has no time zone")
        with self.db.transaction() as conn:
            user = self._user(conn, session, "material.receive")
            projection.insert(
                conn,
                LotRow,
                dict(
                    lot_id=lot_id,
                    material_id=material_id,
                    status=status,
                    quantity=str(quantity.value),
                    unit=quantity.unit or "",
                    expires_at=None if expires is None else format_timestamp(expires),
                ),
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
                    "expires": None if expires is None else format_timestamp(expires),
                },
            )

    def set_lot_status(self, session: Session, lot_id: str, status: str, *, reason: str) -> None:
        """QA changes a lot's status (e.g. Quarantine → Released); a reason is required."""
        if not reason or not reason.strip():
            raise BatchError(f"changing the status of lot {lot_id!r} needs a reason")
        check_length(BatchError, f"lot {lot_id}: status", status, LotRow.status)
        with self.db.transaction() as conn:
            user = self._user(conn, session, "material.release")
            row = self._one(conn, LotRow.lot_id, lot_id, "lot")
            projection.update(conn, LotRow, {"lot_id": lot_id}, dict(status=status))
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
