"""A plant with ERP routes, a batch run to release, RabbitMQ helpers and a fake ERP."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gxpmes.erp.outbox import DEFAULT_ROUTES, configure_route
from gxpmes.testing.plant import BALANCE, BLEND, HEAT, MIX, OT_SOURCE
from isa95.common import Quantity

AMQP_URL = os.environ.get("GXPMES_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
ADMIN = ("admin", "routes for the ERP interface, change CC-ERP-1")


def route_defaults(plant: Any) -> None:
    """Configure the default routes (release, weighing, completion)."""
    from audit.entry import Actor

    actor = Actor("admin", "Admin")
    for event, documents in DEFAULT_ROUTES.items():
        configure_route(plant.db, actor, event, documents, reason=ADMIN[1])


def _value(plant: Any, batch_id: str, parameter: str, number: str, unit: str, tag: str) -> Any:
    from gxpmes.ebr.engine import CapturedValue

    return CapturedValue(batch_id, parameter, tag, Decimal(number), unit, plant.clock())


def _phase(plant: Any, batch_id: str, path: str, values: list[Any]) -> None:
    engine = plant.engine
    engine.command(plant.sessions["op1"], batch_id, path, "Start")
    for weighing in engine.weighings(batch_id):  # dispensed containers go into the unit
        if weighing["phase"] == path:
            engine.charge(batch_id, weighing["weighing_id"], plant.creds("op1"))
    engine.capture(values, source=OT_SOURCE)
    engine.complete_phase(batch_id, path, plant.creds("op1"))
    engine.verify_phase(batch_id, path, plant.creds("op2"))


def execute_batch(plant: Any, batch_id: str) -> None:
    """Create, weigh twice (verified), run every phase within limits, complete."""
    engine = plant.engine
    engine.create_batch(
        plant.sessions["sup1"],
        batch_id,
        recipe_id="MR-GRAN",
        version="1",
        lot_id=f"{batch_id}-LOT",
        planned=Quantity(value=Decimal("100"), unit="kg"),
        equipment=["GRAN-01", "BLEND-01"],
    )
    op = plant.sessions["op1"]
    engine.start_batch(op, batch_id)
    for path in ("GRAN/UP-GRAN", "GRAN/UP-GRAN/OP-WET", "GRAN/UP-BLEND", "GRAN/UP-BLEND/OP-BLEND"):
        engine.command(op, batch_id, path, "Start")
    for material, lot, amount, weigher, checker in (
        ("API-PARA", "API-L1", "20.000", "op1", "op2"),
        ("LACTOSE", "LAC-L7", "78.000", "op2", "op1"),
    ):
        weighing = engine.weigh(
            batch_id,
            phase=HEAT,
            material_id=material,
            lot_id=lot,
            actual=Decimal(amount),
            balance_id=BALANCE,
            performer=plant.creds(weigher),
        )
        engine.verify_weighing(weighing, plant.creds(checker))
    _phase(
        plant, batch_id, HEAT, [_value(plant, batch_id, f"{HEAT}/temperature", "70.0", "Cel", "TT")]
    )
    _phase(
        plant,
        batch_id,
        MIX,
        [
            _value(plant, batch_id, f"{MIX}/speed", "120", "rpm", "SC"),
            _value(plant, batch_id, f"{MIX}/time", "10", "min", "TM"),
        ],
    )
    _phase(plant, batch_id, BLEND, [_value(plant, batch_id, f"{BLEND}/speed", "118", "rpm", "SC2")])
    engine.complete_batch(op, batch_id, Quantity(value=Decimal("97.6"), unit="kg"))


def release_batch(plant: Any, batch_id: str) -> None:
    """:func:`execute_batch`, then review and release."""
    execute_batch(plant, batch_id)
    review = plant.engine.review_by_exception(batch_id)
    for item in review:
        if item.kind.startswith("exception") and item.open:
            plant.engine.assess_exception(item.item_id, plant.creds("qa1"), comment="no impact")
    plant.engine.complete_review(batch_id, plant.creds("qa1"))
    plant.review_trail(batch_id)
    plant.engine.release(batch_id, plant.creds("qa2"))


def outbox(db: Any, batch_id: str | None = None) -> list[dict[str, Any]]:
    """Outbox rows with their delivery state, in order."""
    from sqlalchemy import select

    from gxpmes.erp.schema import DeliveryRow, OutboxRow

    query = select(OutboxRow, DeliveryRow.status, DeliveryRow.attempts).join(
        DeliveryRow, DeliveryRow.message_id == OutboxRow.message_id
    )
    if batch_id is not None:
        query = query.where(OutboxRow.batch_id == batch_id)
    with db.read() as conn:
        rows = conn.execute(query.order_by(OutboxRow.position)).all()
    return [dict(r._mapping) for r in rows]


# ------------------------------------------------------------------ RabbitMQ


def amqp_or_fail() -> None:
    """Fail with CI=true (skip otherwise) when RabbitMQ does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=3):
            pass
    except OSError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"RabbitMQ is required in CI but unavailable: {exc}")
        pytest.skip(f"RabbitMQ unavailable: {exc}")


@dataclass
class Topology:
    """A test's own exchange and queues (deleted afterwards)."""

    exchange: str
    to_erp: str
    from_erp: str

    def send_url(self, base: str = AMQP_URL) -> str:
        return f"{base}?exchange={self.exchange}&routing_key=to-erp"

    def receive_url(self, base: str = AMQP_URL) -> str:
        return f"{base}?queue={self.from_erp}"


@contextmanager
def topology() -> Iterator[Topology]:
    """Declare a unique exchange with a queue to ERP and one from ERP; delete them after."""
    import pika

    amqp_or_fail()
    tag = uuid.uuid4().hex[:10]
    names = Topology(
        f"gxpmes-test-{tag}", f"gxpmes-test-{tag}-to-erp", f"gxpmes-test-{tag}-from-erp"
    )
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.exchange_declare(names.exchange, "direct", durable=False, auto_delete=False)
    for queue, key in ((names.to_erp, "to-erp"), (names.from_erp, "from-erp")):
        channel.queue_declare(queue, durable=True)
        channel.queue_bind(queue, names.exchange, key)
    try:
        yield names
    finally:
        channel.queue_delete(names.to_erp)
        channel.queue_delete(names.from_erp)
        channel.exchange_delete(names.exchange)
        connection.close()


@dataclass
class FakeErp:
    """Test code playing ERP: consumes what the MES sends, dedups by message id, answers."""

    names: Topology
    seen: dict[str, bytes] = field(default_factory=dict)
    deliveries: int = 0
    order: list[str] = field(default_factory=list)

    def drain(self, *, answer: str | None = "Accepted", nack_first: int = 0) -> list[str]:
        """Take every message now queued; ack, and answer new ones with a ConfirmBOD."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        new = []
        nacked = 0
        try:
            while True:
                method, properties, body = channel.basic_get(self.names.to_erp, auto_ack=False)
                if method is None:
                    break
                if nacked < nack_first:
                    nacked += 1
                    channel.basic_nack(method.delivery_tag, requeue=True)
                    continue
                self.deliveries += 1
                message_id = properties.message_id
                if message_id not in self.seen:
                    self.seen[message_id] = bytes(body)
                    self.order.append(message_id)
                    new.append(message_id)
                    if answer is not None and properties.type != "ConfirmBOD":
                        channel.basic_publish(
                            self.names.exchange,
                            "from-erp",
                            confirmation(message_id, answer),
                            pika.BasicProperties(message_id=str(uuid.uuid4()), delivery_mode=2),
                        )
                channel.basic_ack(method.delivery_tag)
        finally:
            connection.close()
        return new

    def publish(self, body: bytes) -> None:
        """ERP sends a document to the MES."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            connection.channel().basic_publish(
                self.names.exchange, "from-erp", body, pika.BasicProperties(delivery_mode=2)
            )
        finally:
            connection.close()


def confirmation(message_id: str, outcome: str = "Accepted", reason: str = "") -> bytes:
    """A ConfirmBOD as an ERP middleware writes it."""
    reason_xml = f"<Description>{reason}</Description>" if reason else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ConfirmBOD xmlns="http://www.mesa.org/xml/B2MML">
  <ApplicationArea><Sender><LogicalID>SAP-ERP</LogicalID></Sender>
    <CreationDateTime>{datetime.now(UTC).isoformat()}</CreationDateTime>
    <BODID>CONF-{uuid.uuid4()}</BODID></ApplicationArea>
  <DataArea>
    <Confirm><ResponseCriteria><ResponseExpression actionCode="{outcome}"/>
      <ChangeStatus><Code>{outcome}</Code>{reason_xml}</ChangeStatus></ResponseCriteria></Confirm>
    <BOD><OriginalApplicationArea><CreationDateTime>{datetime.now(UTC).isoformat()}</CreationDateTime>
      <BODID>{message_id}</BODID></OriginalApplicationArea>{reason_xml}</BOD>
  </DataArea>
</ConfirmBOD>""".encode()


def production_order(
    order_id: str,
    *,
    bod_id: str | None = None,
    recipe: str = "MR-GRAN",
    product: str = "TAB-500",
    quantity: str = "100",
    verb: str = "Process",
    version: str = "V0701",
    noun: str | None = None,
) -> bytes:
    """A Process/Sync OperationsSchedule with one production order, as ERP sends it."""
    from shared_paths import schemas_dir

    from isa95.b2mml.documents import B2MML, ApplicationArea
    from isa95.operations import (
        MaterialRequirement,
        MaterialUse,
        OperationsRequest,
        OperationsSchedule,
        SegmentRequirement,
    )

    schedule = OperationsSchedule(
        id=f"SCHED-{order_id}",
        # V0600's ProductionSchedule has no OperationsType: it is production by its noun.
        operations_type=None if noun == "ProductionSchedule" else "Production",
        requests=[
            OperationsRequest(
                id=order_id,
                start=datetime(2026, 12, 4, 6, tzinfo=UTC),
                end=datetime(2026, 12, 4, 18, tzinfo=UTC),
                segments=[
                    SegmentRequirement(
                        id="SEG-1",
                        process_segment_id=recipe,  # the recipe, as SAP PP-PI sends it
                        materials=[
                            MaterialRequirement(
                                material_definition_id=product,
                                lot_id=f"{order_id}-LOT",
                                use=MaterialUse.PRODUCED,
                                quantity=Quantity(value=Decimal(quantity), unit="kg"),
                            )
                        ],
                    )
                ],
            )
        ],
    )
    return B2MML(schemas_dir()).write(
        schedule,
        version=version,
        verb=verb,
        noun=noun,
        application_area=ApplicationArea(sender="SAP-ERP", bod_id=bod_id or f"ORD-{uuid.uuid4()}"),
    )


class Proxy:
    """A TCP proxy to RabbitMQ that a test can cut (an outage) and restore."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open = True
        self.links: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, query: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F?{query}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        self.open = False
        with self.lock:
            links, self.links = self.links, []
        for s in links:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.server.close()
