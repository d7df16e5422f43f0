"""The validation plugin's plant simulators feed the connectors like a real plant."""

from __future__ import annotations

import asyncio
import time
import uuid

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
        await asyncio.wait_for(source.connected.wait(), 15)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(gxp_opcua_server.set, "GRAN01.TT101", 70.25)
        await asyncio.to_thread(gxp_opcua_server.set, "GRAN01.TT101", 69.75, quality="Uncertain")
        for _ in range(200):
            if source.counts["received"] >= 3:
                break
            await asyncio.sleep(0.05)
        source.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(run())
    Forwarder(spool, running.engine, tags).forward_once()
    values = {(v["value"], v["quality"]) for v in running.engine.values(BATCH)}
    assert ("70.25", "Good") in values and ("69.75", "Uncertain") in values


def test_mqtt_publisher_to_batch(running, tags, spool, broker, gxp_mqtt_publisher) -> None:  # type: ignore[no-untyped-def]
    topic = f"sim/{uuid.uuid4().hex[:8]}"
    source = MqttSource(
        spool, topics=[topic], client_id=f"gx-{uuid.uuid4().hex[:6]}", clean_session=True
    )
    source.start()
    assert source.connected.wait(10)
    for value in ("70.5", "71.5"):
        gxp_mqtt_publisher.publish(topic, "GRAN01/TT-101", value)
    deadline = time.monotonic() + 10
    while source.counts["received"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    source.stop()
    Forwarder(spool, running.engine, tags).forward_once()
    assert [v["value"] for v in running.engine.values(BATCH)] == ["70.5", "71.5"]
