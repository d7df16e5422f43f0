"""Export of a released batch to B2MML: BatchProductionRecord + OperationsPerformance."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from audit.entry import AuditEvent
from gxpmes.database import SYSTEM
from gxpmes.ebr.engine import RELEASED, BatchEngine
from gxpmes.errors import BatchError
from isa95.b2mml.documents import B2MML
from isa95.batchrecord import BatchProductionRecord, RecordedValue, RecordEvent, TagSeries
from isa95.common import Quantity
from isa95.operations import (
    DataValue,
    EquipmentActual,
    MaterialActual,
    MaterialUse,
    OperationsPerformance,
    OperationsResponse,
    PersonnelActual,
    SegmentResponse,
)

__all__ = ["ExportedBatch", "export_batch"]


class ExportedBatch:
    """The two documents of an export and their SHA-256 digests (recorded in the audit trail)."""

    def __init__(self, record: bytes, performance: bytes) -> None:
        self.record = record
        self.performance = performance
        self.record_sha256 = hashlib.sha256(record).hexdigest()
        self.performance_sha256 = hashlib.sha256(performance).hexdigest()


def signature_event(signature: Any) -> RecordEvent:
    """A signature as a BatchML record event: its manifestation, who, and what it signed."""
    return RecordEvent(
        id=signature.signature_id,
        timestamp=signature.signed_at,
        event_type="Operator",
        event_subtype="Security",
        message=signature.manifestation,
        person_id=signature.signer_id,
        procedural_element=signature.record_id,
    )


def batch_production_record(engine: BatchEngine, batch_id: str) -> BatchProductionRecord:
    """The batch as a BatchML BatchProductionRecord model."""
    batch = engine.batch(batch_id)
    series: dict[str, list[RecordedValue]] = defaultdict(list)
    units: dict[str, str] = {}
    for value in engine.values(batch_id):
        tag = value["tag"]
        units[tag] = value["unit"]
        series[tag].append(
            RecordedValue(
                timestamp=datetime.fromisoformat(value["source_ts"]),
                value=value["value"],
                quality=value["quality"],
            )
        )
    events = [signature_event(s) for s in engine.signatures.signatures_in_scope(batch_id)]
    for record_item in engine.record_items(batch_id):
        events.append(
            RecordEvent(
                id=record_item["item_id"],
                timestamp=datetime.fromisoformat(record_item["recorded_at"]),
                event_type="General",
                event_subtype="Other",
                message=f"{record_item['kind']}: {record_item['content']}",
                person_id=record_item["recorded_by"],
            )
        )
    for item in engine.review_by_exception(batch_id):
        if item.kind.startswith("exception:") or item.kind == "deviation":
            events.append(
                RecordEvent(
                    id=item.item_id or item.reference,
                    timestamp=engine.db.clock(),
                    event_type="General",
                    event_subtype="Other",
                    message=f"{item.kind}: {item.detail}",
                )
            )
    return BatchProductionRecord(
        id=f"BPR-{batch_id}",
        batch_id=batch_id,
        lot_id=batch["lot_id"],
        material_definition_id=batch["product_id"],
        record_status=batch["status"],
        creation_date=datetime.fromisoformat(batch["created_at"]),
        series=[
            TagSeries(tag=tag, unit=units[tag] or None, values=values)
            for tag, values in series.items()
        ],
        events=events,
    )


def operations_performance(engine: BatchEngine, batch_id: str) -> OperationsPerformance:
    """The batch's actuals (materials consumed and produced, equipment, people, yield)."""
    batch = engine.batch(batch_id)
    materials = [
        MaterialActual(
            material_definition_id=w["material_id"],
            lot_id=w["lot_id"],
            use=MaterialUse.CONSUMED,
            quantity=Quantity(value=Decimal(w["actual"]), unit=w["unit"]),
        )
        for w in engine.weighings(batch_id)
    ]
    if batch["actual_quantity"] is not None:
        materials.append(
            MaterialActual(
                material_definition_id=batch["product_id"],
                lot_id=batch["lot_id"],
                use=MaterialUse.PRODUCED,
                quantity=Quantity(value=Decimal(batch["actual_quantity"]), unit=batch["unit"]),
            )
        )
    people = sorted({s.signer_id for s in engine.signatures.signatures_in_scope(batch_id)})
    planned = Decimal(batch["planned_quantity"])
    data = []
    if batch["actual_quantity"] is not None:
        data.append(
            DataValue(
                id="yield",
                value=str(
                    (Decimal(batch["actual_quantity"]) / planned * 100).quantize(Decimal("0.01"))
                ),
                unit="%",
            )
        )
    start = datetime.fromisoformat(batch["started_at"]) if batch["started_at"] else None
    end = datetime.fromisoformat(batch["executed_at"]) if batch["executed_at"] else None
    segment = SegmentResponse(
        id=f"{batch_id}-SEG",
        process_segment_id=batch["recipe_id"],
        start=start,
        end=end,
        materials=materials,
        equipment=[EquipmentActual(equipment_id=e) for e in engine.equipment_ids(batch_id)],
        personnel=[PersonnelActual(person_id=p) for p in people],
        data=data,
    )
    return OperationsPerformance(
        id=f"PERF-{batch_id}",
        operations_type="Production",
        start=start,
        end=end,
        responses=[
            OperationsResponse(
                id=f"RESP-{batch_id}",
                request_id=batch_id,
                start=start,
                end=end,
                state="Completed",
                segments=[segment],
            )
        ],
    )


def export_batch(
    engine: BatchEngine, batch_id: str, b2mml: B2MML, *, version: str = "V0701"
) -> ExportedBatch:
    """Write the XSD-validated documents of a *released* batch and audit their hashes."""
    batch = engine.batch(batch_id)
    if batch["status"] != RELEASED:
        raise BatchError(
            f"batch {batch_id} is {batch['status']}; only released batches are exported"
        )
    exported = ExportedBatch(
        b2mml.write(batch_production_record(engine, batch_id), version=version),
        b2mml.write(operations_performance(engine, batch_id), version=version),
    )
    with engine.db.transaction() as conn:
        engine.db.audit(
            conn,
            AuditEvent(
                SYSTEM,
                "batch.export",
                "batch",
                batch_id,
                new={
                    "version": version,
                    "batch_production_record_sha256": exported.record_sha256,
                    "operations_performance_sha256": exported.performance_sha256,
                },
            ),
        )
    return exported
