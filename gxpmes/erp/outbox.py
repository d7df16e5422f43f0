"""The transactional outbox: documents for ERP written with the GMP event that causes them.

The engine calls :func:`emit` inside the transaction of a release, a
weighing (dispensing/charging) or a batch completion. If the database holds
a route for that event (:func:`configure_route`), the documents are built,
written as B2MML ``Process<Noun>`` BODs whose BOD ID is the message id, and
inserted into ``erp_outbox`` (with a ``pending`` ``erp_delivery`` row) in
that same transaction: the event and its documents commit together or not
at all. If a document cannot be written (no schemas, a schema-invalid
document), the GMP event is refused rather than committed without it.

Each document is one audit entry (``erp.outbox``) whose row images hold the
document itself and its SHA-256, keyed by the batch, so the batch's trail
lists what was sent about it and ``gxpmes verify`` proves the outbox.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from audit.canonical import format_timestamp
from audit.entry import Actor, AuditEvent
from gxpmes.erp.schema import DeliveryRow, OutboxRow, RouteRow
from gxpmes.errors import ConfigurationError, GxpError
from gxpmes.lengths import check_length
from gxpmes.records import writer as projection

__all__ = [
    "DEFAULT_ROUTES",
    "ERP_INTERFACE",
    "EVENT_DOCUMENTS",
    "Outgoing",
    "configure_route",
    "emit",
    "enqueue",
    "routes",
]

ERP_INTERFACE = Actor("svc-erp", "ERP interface")
"""Actor of the exchange's own entries (deliveries, confirmations, inbound documents)."""

EVENT_DOCUMENTS: dict[str, tuple[str, ...]] = {
    "batch.released": (
        "BatchProductionRecord",
        "OperationsPerformance",
        "MaterialConsumption",
        "MaterialProduction",
    ),
    "batch.rejected": ("BatchProductionRecord", "OperationsPerformance"),
    "batch.executed": ("MaterialConsumption", "MaterialProduction"),
    "weighing.recorded": ("MaterialConsumption",),
    "charge.recorded": ("MaterialConsumption",),
}
"""GMP events the engine emits, and the documents each may write (consumption of the
weighing dispensed or charged, or of every weighing at completion)."""

DEFAULT_ROUTES: dict[str, tuple[str, ...]] = {
    "batch.released": ("BatchProductionRecord", "OperationsPerformance"),
    "weighing.recorded": ("MaterialConsumption",),
    "batch.executed": ("MaterialProduction",),
}
"""What ``gxpmes erp route --defaults`` configures."""


@dataclass(frozen=True)
class Outgoing:
    """One outbound document as the sender reads it from the outbox."""

    message_id: str
    position: int
    batch_id: str | None
    event: str
    document: str
    root: str
    body: bytes
    sha256: str
    confirm: bool
    correlation_id: str | None


def routes(conn: Connection) -> dict[str, Any]:
    """Every configured route, by event."""
    return {r.event: r for r in conn.execute(select(RouteRow)).all()}


def configure_route(
    db: Any,
    actor: Actor,
    event: str,
    documents: Sequence[str],
    *,
    version: str = "V0701",
    sender: str = "MES",
    confirm: bool = True,
    reason: str,
) -> None:
    """Set which documents ``event`` writes (none: the event writes nothing); audited."""
    if event not in EVENT_DOCUMENTS:
        raise ConfigurationError(
            f"unknown event {event!r}; events: {', '.join(sorted(EVENT_DOCUMENTS))}"
        )
    wrong = [d for d in documents if d not in EVENT_DOCUMENTS[event]]
    if wrong:
        raise ConfigurationError(
            f"{event} cannot write {', '.join(wrong)}; it writes "
            f"{', '.join(EVENT_DOCUMENTS[event])}"
        )
    if version not in ("V0701", "V0600"):
        raise ConfigurationError(f"B2MML release {version!r} is not V0701 or V0600")
    if not sender.strip():
        raise ConfigurationError("the sender logical id is empty")
    check_length(ConfigurationError, "the sender logical id", sender, RouteRow.sender)
    if not reason.strip():
        raise ConfigurationError("a route change needs a reason")
    columns = {
        "documents": ",".join(dict.fromkeys(documents)),
        "version": version,
        "sender": sender,
        "confirm": confirm,
        "changed_at": format_timestamp(db.clock()),
    }
    with db.transaction() as conn:
        old = conn.execute(select(RouteRow).where(RouteRow.event == event)).one_or_none()
        if old is None:
            projection.insert(conn, RouteRow, {"event": event, **columns})
        else:
            projection.update(conn, RouteRow, {"event": event}, columns)
        db.audit(
            conn,
            AuditEvent(
                actor,
                "erp.route",
                "erp_route",
                event,
                old=None if old is None else {"documents": old.documents},
                new={k: v for k, v in columns.items() if k != "changed_at"},
                reason=reason,
            ),
        )


def enqueue(
    db: Any,
    conn: Connection,
    *,
    message_id: str,
    batch_id: str | None,
    event: str,
    document: str,
    root: str,
    version: str,
    body: bytes,
    confirm: bool,
    correlation_id: str | None = None,
    actor: Actor = ERP_INTERFACE,
) -> str:
    """Insert one document and its pending delivery, with their audit entry; returns its id."""
    position = (conn.scalar(select(func.max(OutboxRow.position))) or 0) + 1
    digest = hashlib.sha256(body).hexdigest()
    projection.insert(
        conn,
        OutboxRow,
        dict(
            message_id=message_id,
            position=position,
            batch_id=batch_id,
            event=event,
            document=document,
            root=root,
            version=version,
            body=body.decode("utf-8"),
            sha256=digest,
            confirm=confirm,
            correlation_id=correlation_id,
            created_at=format_timestamp(db.clock()),
        ),
    )
    projection.insert(
        conn,
        DeliveryRow,
        dict(message_id=message_id, batch_id=batch_id, status="pending", attempts=0),
    )
    db.audit(
        conn,
        AuditEvent(
            actor,
            "erp.outbox",
            "batch" if batch_id else "erp_message",
            batch_id or message_id,
            new={"message_id": message_id, "document": document, "root": root, "sha256": digest},
        ),
    )
    return message_id


# ------------------------------------------------------------------ documents


def _signatures(conn: Connection, batch_id: str) -> list[Any]:
    # Read through the event's own connection: the signature of a release is
    # part of this transaction and invisible to any other connection yet.
    from gxpmes.identity.schema import SignatureRow
    from gxpmes.identity.signatures import _from_row

    rows = conn.execute(
        select(SignatureRow)
        .where(SignatureRow.scope == batch_id)
        .order_by(SignatureRow.created_order)
    ).all()
    return [_from_row(r) for r in rows]


def _batch(conn: Connection, batch_id: str) -> Any:
    from gxpmes.ebr.schema import BatchRow

    return conn.execute(select(BatchRow).where(BatchRow.batch_id == batch_id)).one()


def _performance(batch: Any, materials: list[Any], suffix: str, people: list[str]) -> Any:
    from datetime import datetime

    from isa95.operations import (
        OperationsPerformance,
        OperationsResponse,
        PersonnelActual,
        SegmentResponse,
    )

    start = datetime.fromisoformat(batch.started_at) if batch.started_at else None
    end = datetime.fromisoformat(batch.executed_at) if batch.executed_at else None
    segment = SegmentResponse(
        id=f"{batch.batch_id}-{suffix}",
        process_segment_id=batch.recipe_id,
        start=start,
        end=end,
        materials=materials,
        personnel=[PersonnelActual(person_id=p) for p in people],
    )
    return OperationsPerformance(
        id=f"{suffix}-{batch.batch_id}",
        operations_type="Production",
        start=start,
        end=end,
        responses=[
            OperationsResponse(
                id=f"RESP-{batch.batch_id}-{suffix}",
                request_id=batch.batch_id,
                start=start,
                end=end,
                segments=[segment],
            )
        ],
    )


def _consumption(engine: Any, conn: Connection, batch_id: str, facts: dict[str, Any]) -> Any:
    from gxpmes.ebr.schema import WeighingRow
    from isa95.common import Quantity
    from isa95.operations import MaterialActual, MaterialUse

    query = select(WeighingRow).where(WeighingRow.batch_id == batch_id)
    if facts.get("weighing_id"):
        query = query.where(WeighingRow.weighing_id == facts["weighing_id"])
    weighings = conn.execute(query.order_by(WeighingRow.weighing_id)).all()
    if not weighings:
        return None
    materials = [
        MaterialActual(
            material_definition_id=w.material_id,
            lot_id=w.lot_id,
            use=MaterialUse.CONSUMED,
            quantity=Quantity(value=Decimal(w.actual), unit=w.unit),
        )
        for w in weighings
    ]
    people = sorted({w.performed_by for w in weighings})
    return _performance(_batch(conn, batch_id), materials, "CONS", people)


def _production(engine: Any, conn: Connection, batch_id: str, facts: dict[str, Any]) -> Any:
    from isa95.common import Quantity
    from isa95.operations import MaterialActual, MaterialUse

    batch = _batch(conn, batch_id)
    if batch.actual_quantity is None:
        return None
    produced = MaterialActual(
        material_definition_id=batch.product_id,
        lot_id=batch.lot_id,
        use=MaterialUse.PRODUCED,
        quantity=Quantity(value=Decimal(batch.actual_quantity), unit=batch.unit),
    )
    return _performance(batch, [produced], "PROD", [])


def _record(engine: Any, conn: Connection, batch_id: str, facts: dict[str, Any]) -> Any:
    from gxpmes.ebr.export import batch_production_record, signature_event

    # The committed record plus what this transaction changed: the status and
    # the deciding signature (read through ``conn``).
    model = batch_production_record(engine, batch_id)
    known = {e.id for e in model.events}
    events = list(model.events) + [
        signature_event(s) for s in _signatures(conn, batch_id) if s.signature_id not in known
    ]
    return model.model_copy(
        update={"record_status": _batch(conn, batch_id).status, "events": events}
    )


def _operations(engine: Any, conn: Connection, batch_id: str, facts: dict[str, Any]) -> Any:
    from gxpmes.ebr.export import operations_performance
    from isa95.operations import PersonnelActual

    model = operations_performance(engine, batch_id)
    people = sorted({s.signer_id for s in _signatures(conn, batch_id)})
    response = model.responses[0]
    segment = response.segments[0].model_copy(
        update={"personnel": [PersonnelActual(person_id=p) for p in people]}
    )
    return model.model_copy(
        update={"responses": [response.model_copy(update={"segments": [segment]})]}
    )


_BUILDERS: dict[str, Callable[[Any, Connection, str, dict[str, Any]], Any]] = {
    "BatchProductionRecord": _record,
    "OperationsPerformance": _operations,
    "MaterialConsumption": _consumption,
    "MaterialProduction": _production,
}


def _b2mml(engine: Any) -> Any:
    b2mml = getattr(engine, "erp_b2mml", None)
    if b2mml is None:
        from isa95.b2mml.documents import B2MML

        b2mml = B2MML()
        engine.erp_b2mml = b2mml
    return b2mml


def emit(engine: Any, conn: Connection, event: str, batch_id: str, **facts: Any) -> list[str]:
    """Write the documents routed for ``event`` into the outbox, inside ``conn``'s transaction.

    Returns the message ids written (none when the event has no route).
    Raises :class:`ConfigurationError` when a routed document cannot be
    written, which rolls the GMP event back with it.
    """
    route = conn.execute(select(RouteRow).where(RouteRow.event == event)).one_or_none()
    if route is None or not route.documents:
        return []
    from isa95.b2mml.documents import ApplicationArea
    from isa95.errors import ISA95Error

    written = []
    for document in route.documents.split(","):
        try:
            model = _BUILDERS[document](engine, conn, batch_id, facts)
            if model is None:
                continue  # e.g. consumption of a batch that weighed nothing
            message_id = str(uuid.uuid4())
            b2mml = _b2mml(engine)
            body = b2mml.write(
                model,
                version=route.version,
                verb="Process",
                application_area=ApplicationArea(
                    creation=engine.db.clock(), sender=route.sender, bod_id=message_id
                ),
            )
        except (ISA95Error, KeyError) as exc:
            raise ConfigurationError(
                f"ERP route {event}: {document} for batch {batch_id} cannot be written "
                f"({exc}); the {event} event is refused, not committed without its document"
            ) from exc
        except GxpError:
            raise
        root = "Process" + b2mml.noun_for(model, route.version).name
        written.append(
            enqueue(
                engine.db,
                conn,
                message_id=message_id,
                batch_id=batch_id,
                event=event,
                document=document,
                root=root,
                version=route.version,
                body=body,
                confirm=route.confirm,
            )
        )
    return written
