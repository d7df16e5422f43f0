"""The validation plugin's plant simulators feed the connectors like a real plant."""

from __future__ import annotations

import asyncio
import uuid

from waiting import DEADLINE, until, wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding
from gxpmes.connectors.mqtt import MqttSource
from gxpmes.connectors.opcua import OpcUaNode, OpcUaSource

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"


def test_opcua_simulator_to_batch(running, tags, spool, gxp_opcua_server) -> None:  # type: ignore[no-untyped-def]
    tags.bind("GRAN01/TT-101", TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))
    source = OpcUaSource(
        spool,
        gxp_opcua_server.endpoint,
        [OpcUaNode(gxp_opcua_server.node_ids["GRAN01.TT101"], "GRAN01/TT-101")],
        publishing_interval_ms=50,
    )

    async def run() -> None:
        task = asyncio.create_task(source.run())
        await asyncio.wait_for(source.connected.wait(), DEADLINE)
        await until(lambda: source.counts["received"] >= 1, what="the initial value")
        # One write at a time: a monitored item queues one value per publishing interval.
        await asyncio.to_thread(gxp_opcua_server.set, "GRAN01.TT101", 70.25)
        await until(lambda: source.counts["received"] >= 2, what="70.25 received")
        await asyncio.to_thread(gxp_opcua_server.set, "GRAN01.TT101", 69.75, quality="Uncertain")
        await until(lambda: source.counts["received"] >= 3, what="69.75 received")
        source.stop()
        await asyncio.wait_for(task, DEADLINE)

    asyncio.run(run())
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    values = {(v["value"], v["quality"]) for v in running.engine.values(BATCH)}
    assert ("70.25", "Good") in values and ("69.75", "Uncertain") in values


def test_mqtt_publisher_to_batch(running, tags, spool, broker, gxp_mqtt_publisher) -> None:  # type: ignore[no-untyped-def]
    topic = f"sim/{uuid.uuid4().hex[:8]}"
    source = MqttSource(
        spool,
        topics=[topic],
        client_id=f"gx-{uuid.uuid4().hex[:6]}",
        clean_session=True,
        topic_tags={topic: "GRAN01/TT-101"},  # the topic maps to the tag the payload names
    )
    source.start()
    assert source.connected.wait(DEADLINE)
    for value in ("70.5", "71.5"):
        gxp_mqtt_publisher.publish(topic, "GRAN01/TT-101", value)
    wait_until(lambda: source.counts["received"] >= 2, what="both values received")
    source.stop()
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert [v["value"] for v in running.engine.values(BATCH)] == ["70.5", "71.5"]
