"""MQTT source (paho-mqtt): JSON topics and Sparkplug B, acknowledged after the spool write."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from gxpmes.connectors.jsonpayload import decode_json
from gxpmes.connectors.model import DecodeError
from gxpmes.connectors.sparkplug import SparkplugSession, rebirth_request
from gxpmes.connectors.spool import Spool

__all__ = ["MqttSource"]

log = logging.getLogger("gxpmes.connectors.mqtt")


class MqttSource:
    """Subscribes with QoS 1 and *manual* acknowledgement: a message is acked to the
    broker only once its values are in the spool, so a crash before that makes the
    broker redeliver it (and the spool's dedup keys keep it from being recorded twice).
    """

    def __init__(
        self,
        spool: Spool,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        topics: list[str] | None = None,
        sparkplug_topics: list[str] | None = None,
        client_id: str = "gxpmes-connector",
        clean_session: bool = False,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.spool = spool
        self.topics = topics or []
        self.sparkplug_topics = sparkplug_topics or []
        self.counts: Counter[str] = Counter()
        self.sparkplug = SparkplugSession()
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.manual_ack_set(True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._pending_subscriptions = 0
        self.host, self.port = host, port

    def start(self) -> None:
        """Connect (retrying in the background) and process messages on paho's thread."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect cleanly."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connection refused: %s", reason)
            return
        topics = self.topics + self.sparkplug_topics
        self._pending_subscriptions = len(topics)
        for topic in topics:
            client.subscribe(topic, qos=1)
        log.info("connected to MQTT %s:%s", self.host, self.port)

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any
    ) -> None:
        # Ready only once the broker confirmed every subscription.
        self._pending_subscriptions -= 1
        if self._pending_subscriptions <= 0:
            self.connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected.clear()
        self.counts["disconnects"] += 1

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        now = datetime.now(UTC)
        try:
            if message.topic.startswith("spBv1.0/"):
                readings, rebirth = self.sparkplug.handle(message.topic, message.payload)
                if rebirth:
                    self._request_rebirth(message.topic)
            else:
                readings = decode_json(message.payload, now, default_tag=message.topic)
            readings = [r if r.server_ts else _with_server_ts(r, now) for r in readings]
            if readings:
                new = self.spool.put(readings)
                self.counts["received"] += len(readings)
                self.counts["duplicates"] += len(readings) - new
        except DecodeError as exc:
            self.counts[exc.reason] += 1
            log.warning("refused message on %s: %s", message.topic, exc)
            if exc.tag:
                self.spool.reject(exc.tag, exc.reason, f"MQTT {message.topic}: {exc}")
        except Exception:  # the spool could not be written: do not ack, the broker redelivers
            self.counts["spool_errors"] += 1
            log.exception("could not spool message on %s; not acknowledged", message.topic)
            return
        client.ack(message.mid, message.qos)

    def _request_rebirth(self, topic: str) -> None:
        parts = topic.split("/")
        group, node = parts[1], parts[3]
        self.counts["rebirth_requests"] += 1
        self.client.publish(
            f"spBv1.0/{group}/NCMD/{node}", rebirth_request(int(time.time() * 1000)), qos=0
        )


def _with_server_ts(reading: Any, now: datetime) -> Any:
    from dataclasses import replace

    return replace(reading, server_ts=now)
