"""OPC UA against asyncua's own server on 127.0.0.1: timestamps, status, restart, resubscribe."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

from asyncua import Server, ua
from waiting import DEADLINE, until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding
from gxpmes.connectors.opcua import OpcUaNode, OpcUaSource, quality_of

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(port: int) -> tuple[Server, object]:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/gxpmes/")
    index = await server.register_namespace("urn:gxpmes:test")
    plant = await server.nodes.objects.add_object(index, "GRAN01")
    variable = await plant.add_variable(ua.NodeId("GRAN01.TT101", index), "TT101", 20.0)
    await variable.set_writable()
    await server.start()
    return server, variable


def test_quality_from_status_codes() -> None:
    assert quality_of(ua.StatusCode(ua.StatusCodes.Good)) == "Good"
    assert quality_of(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) == "Uncertain"
    assert quality_of(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) == "Bad"


def test_subscription_survives_a_server_restart(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    tags.bind("GRAN01/TT-101", TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))

    async def scenario() -> None:
        port = free_port()
        server, variable = await start_server(port)
        node_id = variable.nodeid.to_string()
        source = OpcUaSource(
            spool,
            f"opc.tcp://127.0.0.1:{port}/gxpmes/",
            [OpcUaNode(node_id, "GRAN01/TT-101")],
            publishing_interval_ms=50,
        )
        task = asyncio.create_task(source.run())
        await asyncio.wait_for(source.connected.wait(), DEADLINE)
        await until(lambda: source.counts["received"] >= 1)  # the initial value
        for value in (70.5, 71.0):
            await variable.write_value(
                ua.DataValue(
                    ua.Variant(value, ua.VariantType.Double), SourceTimestamp=datetime.now(UTC)
                )
            )
            await until(
                lambda v=value: len(spool) >= 1 and source.counts["received"] >= 2 + (v == 71.0)
            )
        await variable.write_value(
            ua.DataValue(
                ua.Variant(72.5, ua.VariantType.Double),
                StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
                SourceTimestamp=datetime.now(UTC),
            )
        )
        await until(lambda: source.counts["received"] >= 4)
        await server.stop()  # the server goes away ...
        await until(lambda: not source.connected.is_set())
        server, variable = await start_server(port)  # ... and comes back
        await asyncio.wait_for(source.connected.wait(), DEADLINE)
        assert source.counts["connects"] >= 2
        received = source.counts["received"]
        await variable.write_value(
            ua.DataValue(ua.Variant(73.0, ua.VariantType.Double), SourceTimestamp=datetime.now(UTC))
        )
        # Re-subscribed: the new value arrives (as a change, or as the initial value).
        await until(
            lambda: (
                source.counts["received"] > received
                and any(str(r.value) == "73.0" for _i, r in spool.peek(1000))
            )
        )
        source.stop()
        await asyncio.wait_for(task, DEADLINE)
        await server.stop()

    asyncio.run(scenario())
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    values = running.engine.values(BATCH)
    numbers = [v["value"] for v in values]
    assert "70.5" in numbers and "71.0" in numbers and "73.0" in numbers
    assert any(v["quality"] == "Uncertain" and v["value"] == "72.5" for v in values)
    assert all(v["server_ts"] and v["source_ts"] for v in values)
    kinds = [
        i.kind for i in running.engine.review_by_exception(BATCH) if i.kind.startswith("exception")
    ]
    assert (
        "exception:bad_quality" in kinds and "exception:out_of_limit" in kinds
    )  # 20.0 °C start value


def test_a_refused_opcua_value_is_a_dead_letter_and_the_subscription_goes_on(
    running, tags, spool
) -> None:  # type: ignore[no-untyped-def]
    from gxpmes.connectors.rejects import rejects_by_reason

    tags.bind("GRAN01/TT-101", TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))

    async def scenario() -> None:
        port = free_port()
        server, variable = await start_server(port)
        source = OpcUaSource(
            spool,
            f"opc.tcp://127.0.0.1:{port}/gxpmes/",
            [OpcUaNode(variable.nodeid.to_string(), "GRAN01/TT-101")],
            publishing_interval_ms=50,
        )
        task = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(source.connected.wait(), DEADLINE)
            await until(lambda: source.counts["received"] >= 1)  # the initial value
            for value in (float("nan"), 70.75):
                await variable.write_value(
                    ua.DataValue(
                        ua.Variant(value, ua.VariantType.Double), SourceTimestamp=datetime.now(UTC)
                    )
                )
                await until(lambda: source.counts["non_finite"] + source.counts["received"] >= 2)
            await until(lambda: any(str(r.value) == "70.75" for _i, r in spool.peek(100)))
        finally:
            source.stop()
            await asyncio.wait_for(task, DEADLINE)
            await server.stop()

    asyncio.run(scenario())
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert "70.75" in [v["value"] for v in running.engine.values(BATCH)]
    assert rejects_by_reason(running.db) == {"non_finite": 1}
    kinds = [i.kind for i in running.engine.review_by_exception(BATCH)]
    assert "exception:data_quality" in kinds
