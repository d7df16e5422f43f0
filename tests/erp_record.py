"""The ERP exchange's part of the realistic record (tests/record_support.py): every ERP table
holds rows — a route, documents sent and confirmed (one rejected: an exception), an order,
a material and a lot taken in, a hostile document refused."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from gxpmes.erp.bod import Confirmation
from gxpmes.erp.confirmations import apply_confirmation
from gxpmes.erp.delivery import open_transport
from gxpmes.erp.delivery.sender import Sender
from gxpmes.erp.inbound import Receiver
from gxpmes.erp.outbox import DEFAULT_ROUTES, ERP_INTERFACE, configure_route, enqueue


def record_erp_exchange(plant: Any, batch_id: str) -> None:
    """Write rows into every ERP exchange table, through the library's own paths."""
    from shared_paths import schemas_dir

    from isa95.b2mml.documents import B2MML, ApplicationArea
    from isa95.common import Quantity
    from isa95.operations import (
        MaterialRequirement,
        MaterialUse,
        OperationsRequest,
        OperationsSchedule,
        SegmentRequirement,
    )

    b2mml = B2MML(schemas_dir())
    for event, documents in DEFAULT_ROUTES.items():
        configure_route(plant.db, ERP_INTERFACE, event, documents, reason="ERP go-live")
    ids = []
    with plant.db.transaction() as conn:
        for n in range(2):
            message_id = str(uuid.uuid4())
            enqueue(
                plant.db,
                conn,
                message_id=message_id,
                batch_id=batch_id,
                event="batch.released",
                document="BatchProductionRecord",
                root="ProcessBatchProductionRecord",
                version="V0701",
                body=f"<BatchProductionRecord n='{n}'/>".encode(),
                confirm=True,
            )
            ids.append(message_id)
    folder = Path(mkdtemp(prefix="gxpmes-erp-record-"))
    Sender(plant.db, open_transport(f"dir:{folder}")).run_once()
    with plant.db.transaction() as conn:
        apply_confirmation(plant.db, conn, Confirmation("ERP-C-1", (ids[0],), True, ()))
        apply_confirmation(
            plant.db, conn, Confirmation("ERP-C-2", (ids[1],), False, ("period closed",))
        )
    receiver = Receiver(plant.engine, b2mml)
    material = b"""<?xml version="1.0" encoding="UTF-8"?>
<SyncMaterialDefinition xmlns="http://www.mesa.org/xml/B2MML" releaseID="1.0">
  <ApplicationArea><CreationDateTime>2026-12-01T08:00:00Z</CreationDateTime>
    <BODID>ERP-M-1</BODID></ApplicationArea>
  <DataArea><Sync/><MaterialDefinition><ID>MCC-101</ID></MaterialDefinition></DataArea>
</SyncMaterialDefinition>"""
    assert receiver.handle(material, "record").outcome == "accepted"
    order = b2mml.write(
        OperationsSchedule(
            id="S-1",
            requests=[
                OperationsRequest(
                    id="PO-1",
                    segments=[
                        SegmentRequirement(
                            id="SEG-1",
                            process_segment_id="MR-GRAN",
                            materials=[
                                MaterialRequirement(
                                    material_definition_id="TAB-500",
                                    use=MaterialUse.PRODUCED,
                                    quantity=Quantity(value=Decimal("100"), unit="kg"),
                                )
                            ],
                        )
                    ],
                )
            ],
        ),
        verb="Process",
        application_area=ApplicationArea(sender="SAP-ERP", bod_id="ERP-O-1"),
    )
    result = receiver.handle(order, "record")
    assert result.outcome == "accepted", result.detail
    assert receiver.handle(b"<!DOCTYPE x []><x/>", "record").outcome == "invalid"
