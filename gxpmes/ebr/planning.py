"""Planned batches (production orders) and material definitions, as ERP sends them.

ERP plans; the MES executes. A *planned batch* is a production order the
plant has been asked to make — order id, product, recipe, quantity and
dates — before any batch record exists; a *material definition* is the
material master a lot refers to. Both are GMP-relevant master data, so
both are projections of the audit log like every other table, and every
change is an entry. These handlers hold the rules; :mod:`gxpmes.erp.inbound`
feeds them from B2MML.

The handlers take the engine (for its database, clock and recipe lookup)
and an :class:`~audit.entry.Actor` — an interface is a system account, like
the OT collector, not a person with a session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from audit.canonical import canonicalize, format_timestamp
from audit.entry import Actor, AuditEvent
from gxpmes.ebr.schema import LotRow, RecipeRow
from gxpmes.errors import BatchError
from gxpmes.identity.schema import AppBase
from gxpmes.lengths import check_length, check_lengths
from gxpmes.records import writer as projection

__all__ = [
    "PLANNED",
    "MaterialDefinitionRow",
    "PlannedBatch",
    "PlannedBatchRow",
    "define_material",
    "plan_batch",
    "planned_batch",
    "receive_lot",
]

PLANNED = "Planned"


class PlannedBatchRow(AppBase):
    """A production order from ERP, not yet a batch record."""

    __tablename__ = "ebr_planned_batch"

    order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    product_id: Mapped[str] = mapped_column(String(128))
    recipe_id: Mapped[str] = mapped_column(String(128))
    recipe_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lot_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    quantity: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(16))
    earliest_start: Mapped[str | None] = mapped_column(String(40), nullable=True)
    latest_end: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # Planned
    source: Mapped[str] = mapped_column(String(256))  # the BOD that planned it
    planned_at: Mapped[str] = mapped_column(String(40))


class MaterialDefinitionRow(AppBase):
    """Material master data (ISA-95 MaterialDefinition) as ERP defines it."""

    __tablename__ = "ebr_material"

    material_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    classes: Mapped[str] = mapped_column(Text)  # RFC 8785 JSON list of class ids
    properties: Mapped[str] = mapped_column(Text)  # RFC 8785 JSON list of {id, value, unit}
    source: Mapped[str] = mapped_column(String(256))
    defined_at: Mapped[str] = mapped_column(String(40))


@dataclass(frozen=True)
class PlannedBatch:
    """A production order as the plant is asked to make it."""

    order_id: str
    product_id: str
    recipe_id: str
    quantity: Decimal
    unit: str
    recipe_version: str | None = None
    lot_id: str | None = None
    earliest_start: datetime | None = None
    latest_end: datetime | None = None

    def row(self) -> dict[str, Any]:
        """The columns this order fixes (status, source and time are the handler's)."""
        return {
            "order_id": self.order_id,
            "product_id": self.product_id,
            "recipe_id": self.recipe_id,
            "recipe_version": self.recipe_version,
            "lot_id": self.lot_id,
            "quantity": str(self.quantity),
            "unit": self.unit,
            "earliest_start": _ts(self.earliest_start),
            "latest_end": _ts(self.latest_end),
        }


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise BatchError("dates of a planned batch need a time zone")
    return format_timestamp(value)


def _audit(
    db: Any, conn: Connection, actor: Actor, action: str, kind: str, key: str, **kw: Any
) -> int:
    return int(db.audit(conn, AuditEvent(actor, action, kind, key, **kw)))


def _check_order(conn: Connection, order: PlannedBatch) -> None:
    if not order.order_id.strip():
        raise BatchError("a planned batch needs an order id")
    try:
        if not order.quantity.is_finite() or order.quantity <= 0:
            raise BatchError(f"order {order.order_id}: quantity {order.quantity} is not positive")
    except InvalidOperation as exc:  # signalling NaN
        raise BatchError(f"order {order.order_id}: quantity is not a number") from exc
    if not order.unit:
        raise BatchError(f"order {order.order_id}: quantity has no unit")
    check_lengths(
        BatchError,
        (
            ("order id", order.order_id, PlannedBatchRow.order_id),
            (f"order {order.order_id}: lot id", order.lot_id, PlannedBatchRow.lot_id),
            (f"order {order.order_id}: quantity", str(order.quantity), PlannedBatchRow.quantity),
            (f"order {order.order_id}: unit", order.unit, PlannedBatchRow.unit),
        ),
    )
    if (
        order.earliest_start is not None
        and order.latest_end is not None
        and order.latest_end < order.earliest_start
    ):
        raise BatchError(f"order {order.order_id}: latest end is before earliest start")
    _ts(order.earliest_start)
    _ts(order.latest_end)
    query = select(RecipeRow.version, RecipeRow.status, RecipeRow.body).where(
        RecipeRow.recipe_id == order.recipe_id
    )
    if order.recipe_version is not None:
        query = query.where(RecipeRow.version == order.recipe_version)
    recipes = conn.execute(query).all()
    if not recipes:
        version = f" v{order.recipe_version}" if order.recipe_version else ""
        raise BatchError(f"order {order.order_id}: no master recipe {order.recipe_id}{version}")
    if not any(r.status == "Approved" for r in recipes):
        raise BatchError(
            f"order {order.order_id}: master recipe {order.recipe_id} has no Approved version"
        )
    import json

    products = {json.loads(r.body).get("product_id") or order.recipe_id for r in recipes}
    if order.product_id not in products:
        raise BatchError(
            f"order {order.order_id}: recipe {order.recipe_id} makes "
            f"{', '.join(sorted(str(p) for p in products))}, not {order.product_id}"
        )


def plan_batch(
    engine: Any,
    conn: Connection,
    actor: Actor,
    order: PlannedBatch,
    *,
    source: str,
    replace: bool,
) -> str:
    """Record ``order`` as a planned batch inside ``conn``'s transaction.

    Returns ``"added"``, ``"changed"`` or ``"unchanged"``. An order that
    exists is changed only with ``replace`` (ERP's Sync) and only while it
    is still Planned; Process of an existing, different order is refused.
    The recipe must exist with an Approved version making the product.
    """
    _check_order(conn, order)
    columns = order.row()
    old = conn.execute(
        select(PlannedBatchRow).where(PlannedBatchRow.order_id == order.order_id)
    ).one_or_none()
    now = format_timestamp(engine.db.clock())
    if old is None:
        projection.insert(
            conn,
            PlannedBatchRow,
            {**columns, "status": PLANNED, "source": source, "planned_at": now},
        )
        _audit(
            engine.db,
            conn,
            actor,
            "order.plan",
            "planned_batch",
            order.order_id,
            new={**columns, "source": source},
        )
        return "added"
    current = {k: getattr(old, k) for k in columns}
    if current == columns:
        return "unchanged"
    if not replace:
        raise BatchError(f"order {order.order_id} is already planned with other data")
    if old.status != PLANNED:
        raise BatchError(f"order {order.order_id} is {old.status}; it can no longer change")
    projection.update(
        conn, PlannedBatchRow, {"order_id": order.order_id}, {**columns, "source": source}
    )
    changed = {k: v for k, v in columns.items() if current[k] != v}
    _audit(
        engine.db,
        conn,
        actor,
        "order.change",
        "planned_batch",
        order.order_id,
        old={k: current[k] for k in changed},
        new=changed,
        reason=f"changed by {source}",
    )
    return "changed"


def planned_batch(engine: Any, order_id: str) -> dict[str, Any] | None:
    """The planned batch ``order_id`` as a dict, or None."""
    with engine.db.read() as conn:
        row = conn.execute(
            select(PlannedBatchRow).where(PlannedBatchRow.order_id == order_id)
        ).one_or_none()
    return None if row is None else dict(row._mapping)


def define_material(
    engine: Any,
    conn: Connection,
    actor: Actor,
    material_id: str,
    *,
    description: str | None,
    classes: list[str],
    properties: list[dict[str, Any]],
    source: str,
) -> str:
    """Add or change a material definition; returns added, changed or unchanged."""
    if not material_id.strip():
        raise BatchError("a material definition needs an id")
    check_length(BatchError, "material id", material_id, MaterialDefinitionRow.material_id)
    columns = {
        "material_id": material_id,
        "description": description,
        "classes": canonicalize(classes).decode(),
        "properties": canonicalize(properties).decode(),
    }
    old = conn.execute(
        select(MaterialDefinitionRow).where(MaterialDefinitionRow.material_id == material_id)
    ).one_or_none()
    now = format_timestamp(engine.db.clock())
    if old is None:
        projection.insert(
            conn, MaterialDefinitionRow, {**columns, "source": source, "defined_at": now}
        )
        _audit(
            engine.db,
            conn,
            actor,
            "material.define",
            "material",
            material_id,
            new={"description": description, "classes": classes, "source": source},
        )
        return "added"
    current = {k: getattr(old, k) for k in columns}
    if current == columns:
        return "unchanged"
    projection.update(
        conn, MaterialDefinitionRow, {"material_id": material_id}, {**columns, "source": source}
    )
    _audit(
        engine.db,
        conn,
        actor,
        "material.change",
        "material",
        material_id,
        old={k: current[k] for k in columns if current[k] != columns[k]},
        new={k: v for k, v in columns.items() if current[k] != v},
        reason=f"changed by {source}",
    )
    return "changed"


def receive_lot(
    engine: Any,
    conn: Connection,
    actor: Actor,
    lot_id: str,
    material_id: str,
    quantity: Decimal,
    unit: str,
    *,
    source: str,
) -> str:
    """Receive a lot announced by ERP: always in Quarantine, of a defined material.

    A lot the plant already holds is never changed from outside (its status
    and quantity are the plant's): the same lot again is ``"unchanged"``,
    different data is refused. Returns ``"added"`` or ``"unchanged"``.
    """
    if not lot_id.strip():
        raise BatchError("a lot needs an id")
    if not quantity.is_finite() or quantity < 0:
        raise BatchError(f"lot {lot_id}: quantity {quantity} is not a quantity")
    if not unit:
        raise BatchError(f"lot {lot_id}: quantity has no unit")
    check_lengths(
        BatchError,
        (
            ("lot id", lot_id, LotRow.lot_id),
            (f"lot {lot_id}: quantity", str(quantity), LotRow.quantity),
            (f"lot {lot_id}: unit", unit, LotRow.unit),
        ),
    )
    defined = conn.execute(
        select(MaterialDefinitionRow.material_id).where(
            MaterialDefinitionRow.material_id == material_id
        )
    ).first()
    if defined is None:
        raise BatchError(f"lot {lot_id}: material {material_id} is not defined")
    old = conn.execute(select(LotRow).where(LotRow.lot_id == lot_id)).one_or_none()
    if old is not None:
        if (old.material_id, old.unit) == (material_id, unit):
            return "unchanged"
        raise BatchError(f"lot {lot_id} exists as {old.material_id} in {old.unit}")
    projection.insert(
        conn,
        LotRow,
        dict(
            lot_id=lot_id,
            material_id=material_id,
            status="Quarantine",
            quantity=str(quantity),
            unit=unit,
        ),
    )
    _audit(
        engine.db,
        conn,
        actor,
        "lot.receive",
        "lot",
        lot_id,
        new={
            "material_id": material_id,
            "quantity": quantity,
            "unit": unit,
            "status": "Quarantine",
            "source": source,
        },
    )
    return "added"
