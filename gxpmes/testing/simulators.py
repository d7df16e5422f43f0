"""Plant simulators for validation suites: an OPC UA server and an MQTT publisher.

Available as the fixtures ``gxp_opcua_server`` (needs the ``opcua`` extra) and
``gxp_mqtt_publisher`` (needs the ``mqtt`` extra and a broker, by default
127.0.0.1:1883).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from datetime import UTC, datetime
from decimal import Decimal
from importlib import import_module
from typing import Any

__all__ = ["MqttPublisher", "OpcUaSimulator"]


class OpcUaSimulator:
    """An asyncua server on 127.0.0.1 with one writable Double variable per tag."""

    def __init__(self, tags: list[str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/gxpmes-sim/"
        self.tags = tags
        self.node_ids: dict[str, str] = {}
        self._variables: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None

    def start(self) -> None:
        """Start the server (blocks until it listens)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    async def _start(self) -> None:
        from asyncua.server.server import Server

        ua: Any = import_module("asyncua.ua")  # asyncua's generated types are loosely typed

        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        index = await server.register_namespace("urn:gxpmes:simulator")
        folder = await server.nodes.objects.add_object(index, "Plant")
        for tag in self.tags:
            variable = await folder.add_variable(ua.NodeId(tag, index), tag, 0.0)
            await variable.set_writable()
            self._variables[tag] = variable
            self.node_ids[tag] = variable.nodeid.to_string()
        await server.start()
        self._server = server

    def set(self, tag: str, value: float, *, quality: str = "Good") -> None:
        """Write a value (with a source timestamp of now) as the plant would."""

        async def write() -> None:
            ua: Any = import_module("asyncua.ua")

            codes = {
                "Good": ua.StatusCodes.Good,
                "Uncertain": ua.StatusCodes.UncertainLastUsableValue,
                "Bad": ua.StatusCodes.BadSensorFailure,
            }
            await self._variables[tag].write_value(
                ua.DataValue(
                    ua.Variant(float(value), ua.VariantType.Double),
                    StatusCode=ua.StatusCode(codes[quality]),
                    SourceTimestamp=datetime.now(UTC),
                )
            )

        asyncio.run_coroutine_threadsafe(write(), self._loop).result(10)

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class MqttPublisher:
    """Publishes JSON readings with QoS 1, as a plant gateway would."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(
        self,
        topic: str,
        tag: str,
        value: Decimal | float | str,
        *,
        quality: str = "Good",
        when: datetime | None = None,
    ) -> None:
        """Publish one reading and wait for the broker's acknowledgement."""
        payload = {
            "tag": tag,
            "value": str(value),
            "ts": (when or datetime.now(UTC)).isoformat(),
            "quality": quality,
        }
        self.client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(10)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
