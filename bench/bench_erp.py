"""ERP delivery: 1,000 released-batch documents sent through RabbitMQ with publisher confirms and
confirmed by ConfirmBODs, against raw pika publishing the same bytes with confirms, same run.

    python bench/bench_erp.py [--documents 1000] [--values 200] [--amqp amqp://guest:guest@127.0.0.1:5672/%2F]

Ours = ``Sender.run_once`` (outbox read in order, publish + broker confirm per document,
``sent`` state recorded and audited per window) and then the receiver taking ERP's
ConfirmBODs (one audited transaction each). Baseline = a BlockingChannel in confirm mode
publishing the same bodies, mandatory and persistent, one confirm per message.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "erp"))


def record_document(b2mml: object, values: int) -> bytes:
    """A released batch's BatchProductionRecord with ``values`` process values."""
    from isa95.b2mml.documents import ApplicationArea
    from isa95.batchrecord import BatchProductionRecord, RecordedValue, TagSeries

    start = datetime(2026, 12, 1, 6, tzinfo=UTC)
    model = BatchProductionRecord(
        id="BPR-B-1",
        batch_id="B-1",
        lot_id="B-1-LOT",
        material_definition_id="TAB-500",
        record_status="Released",
        creation_date=start,
        series=[
            TagSeries(
                tag="GRAN01.TT-101.PV",
                unit="Cel",
                values=[
                    RecordedValue(
                        timestamp=start + timedelta(seconds=i),
                        value=str(Decimal(7000 + i % 400) / 100),
                        quality="Good",
                    )
                    for i in range(values)
                ],
            )
        ],
    )
    return b2mml.write(  # type: ignore[attr-defined, no-any-return]
        model,
        verb="Process",
        application_area=ApplicationArea(sender="MES", bod_id="TEMPLATE-BOD-ID"),
    )


def main() -> None:
    import pika
    from erp_support import Topology, confirmation, topology
    from shared_paths import schemas_dir

    from gxpmes.erp.delivery import open_source, open_transport
    from gxpmes.erp.delivery.pump import receive
    from gxpmes.erp.delivery.sender import Sender
    from gxpmes.erp.inbound import Receiver
    from gxpmes.erp.outbox import enqueue
    from gxpmes.testing.plant import build_plant
    from isa95.b2mml.documents import B2MML

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--values", type=int, default=200)
    args = parser.parse_args()
    b2mml = B2MML(schemas_dir())
    template = record_document(b2mml, args.values)
    workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-erp-"))
    plant = build_plant(str(workdir / "mes.db"))
    plant.engine.erp_b2mml = b2mml
    bodies = []
    with plant.db.transaction() as conn:
        for n in range(args.documents):
            message_id = str(uuid.uuid4())
            body = template.replace(b"TEMPLATE-BOD-ID", message_id.encode())
            bodies.append(body)
            enqueue(
                plant.db,
                conn,
                message_id=message_id,
                batch_id=f"B-{n % 50}",
                event="batch.released",
                document="BatchProductionRecord",
                root="ProcessBatchProductionRecord",
                version="V0701",
                body=body,
                confirm=True,
            )
    print(f"{args.documents} documents of {len(template)} bytes each")

    with topology() as names:
        names = Topology(names.exchange, names.to_erp, names.from_erp)
        sender = Sender(plant.db, open_transport(names.send_url()))
        began = time.perf_counter()
        sent = sender.run_once()
        ours_send = time.perf_counter() - began
        sender.transport.close()
        assert sent == args.documents, sent

        # ERP's side (not timed): take the documents, answer each with a ConfirmBOD.
        connection = pika.BlockingConnection(pika.URLParameters(names.send_url().split("?")[0]))
        channel = connection.channel()
        taken = 0
        while True:
            method, properties, _ = channel.basic_get(names.to_erp, auto_ack=True)
            if method is None:
                break
            taken += 1
            channel.basic_publish(
                names.exchange,
                "from-erp",
                confirmation(properties.message_id),
                pika.BasicProperties(delivery_mode=2),
            )
        assert taken == args.documents, taken

        began = time.perf_counter()
        counts = receive(
            Receiver(plant.engine, b2mml), open_source(names.receive_url()), follow=False
        )
        ours_confirm = time.perf_counter() - began
        assert counts["confirmation"] == args.documents, counts

        # Baseline: raw pika, same bytes, confirm mode, mandatory, persistent.
        channel.queue_purge(names.to_erp)
        channel.confirm_delivery()
        began = time.perf_counter()
        for body in bodies:
            channel.basic_publish(
                names.exchange,
                "to-erp",
                body,
                pika.BasicProperties(message_id=str(uuid.uuid4()), delivery_mode=2),
                mandatory=True,
            )
        raw = time.perf_counter() - began
        connection.close()
    plant.db.close()
    n = args.documents
    print(f"raw pika publish + confirm:        {n / raw:8.0f} documents/s")
    print(
        f"erp send (outbox → confirmed pub): {n / ours_send:8.0f} documents/s"
        f"  ({ours_send / raw:.2f}x the raw time)"
    )
    print(f"confirmations taken (ConfirmBOD):  {n / ours_confirm:8.0f} documents/s")
    total = ours_send + ours_confirm
    print(
        f"sent and confirmed, end to end:    {n / total:8.0f} documents/s"
        f"  ({total / raw:.2f}x the raw publish time)"
    )


if __name__ == "__main__":
    main()
