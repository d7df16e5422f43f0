"""No silent loss at the broker: the documented Mosquitto configuration keeps everything
published while the connector is down (even across a broker restart); with the stock
limits the loss is detected and reported as a data-quality exception.

Each test starts its own Mosquitto (docs/examples/mosquitto-gxpmes.conf with free
ports, a temporary persistence directory, its own certificates and passwords).
"""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker_support import EXAMPLE, Mosquitto, Pki, free_port, make_pki, password_file, site_config
from paho.mqtt.enums import CallbackAPIVersion
from waiting import DEADLINE, wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding
from gxpmes.connectors.mqtt import MqttSecurity, MqttSource
from gxpmes.connectors.rejects import rejects_by_reason

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"
USERS = {"gxpmes": "connector-pass-1", "plc": "publisher-pass-1"}


class Site:
    """A broker from the example configuration and what clients need to reach it."""

    def __init__(self, folder: Path, text: str | None = None) -> None:
        self.pki: Pki = make_pki(folder / "pki")
        self.port, self.tls_port = free_port(), free_port()
        config = site_config(
            folder,
            port=self.port,
            tls_port=self.tls_port,
            pki=self.pki,
            passwd=password_file(folder, USERS),
            text=text,
        )
        self.broker = Mosquitto(config, self.port, self.tls_port).start()

    def publisher(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"plc-{uuid.uuid4().hex[:6]}")
        client.tls_set_context(ssl.create_default_context(cafile=str(self.pki.ca)))
        client.username_pw_set("plc", USERS["plc"])
        connected = threading.Event()
        client.on_connect = lambda *_args: connected.set()
        client.connect("127.0.0.1", self.tls_port)
        client.loop_start()
        assert connected.wait(DEADLINE)
        return client

    def connector(self, spool, topic: str, client_id: str, protocol: str = "3.1.1") -> MqttSource:  # type: ignore[no-untyped-def]
        source = MqttSource(
            spool,
            host="localhost",  # the name in the broker's certificate
            port=self.tls_port,
            topics=[topic],
            client_id=client_id,
            security=MqttSecurity(ca_file=self.pki.ca, username="gxpmes", password=USERS["gxpmes"]),
            topic_tags={topic: "GRAN01/TT-101"},
            protocol=protocol,  # 5: clean_start false + a session expiry
        )
        source.start()
        assert source.connected.wait(DEADLINE), "connector did not connect over TLS"
        return source


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site = Site(tmp_path / "broker")
    yield site
    site.broker.stop()


def readings(count: int, start: int = 0) -> list[bytes]:
    base = datetime.now(UTC) - timedelta(hours=1)
    return [
        json.dumps(
            {
                "value": f"{60 + (i % 200) / 10:.1f}",
                "ts": (base + timedelta(milliseconds=i)).isoformat(),
                "seq": i,
            }
        ).encode()
        for i in range(start, start + count)
    ]


def publish_all(client: mqtt.Client, topic: str, payloads: list[bytes]) -> None:
    """Publish with QoS 1 and wait for every PUBACK: the broker has taken each one."""
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(DEADLINE)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_values_published_while_the_connector_is_down_are_all_recorded(  # type: ignore[no-untyped-def]
    running, tags, spool, site, protocol: str
) -> None:
    topic, client_id = f"plant/{uuid.uuid4().hex[:6]}/TT-101", f"gx-{uuid.uuid4().hex[:8]}"
    # The session exists at the broker; then the connector is down.
    site.connector(spool, topic, client_id, protocol).stop()
    publisher = site.publisher()
    publish_all(publisher, topic, readings(1500))
    publisher.loop_stop()
    site.broker.stop()  # and the broker restarts too: its persistence keeps the queue
    site.broker.start()
    source = site.connector(spool, topic, client_id, protocol)
    try:
        wait_until(lambda: source.counts["received"] >= 1500, what="1500 values spooled")
    finally:
        source.stop()
    assert source.counts["session_lost"] == 0
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    forwarder.forward_once()
    values = running.engine.values(BATCH)
    assert len(values) == 1500 and len({v["source_ts"] for v in values}) == 1500
    assert rejects_by_reason(running.db) == {}  # no sequence gap, nothing refused


def stock_limits(text: str) -> str:
    """The example configuration without its queue settings (Mosquitto's defaults apply:
    1000 queued messages per client), publishing $SYS counters every second."""
    kept = [
        line
        for line in text.splitlines()
        if not line.startswith(("max_queued_messages", "max_queued_bytes"))
    ]
    return "\n".join([*kept, "sys_interval 1"]) + "\n"


def test_loss_at_the_broker_is_detected_and_reported(running, tags, spool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    site = Site(tmp_path / "stock", stock_limits(EXAMPLE.read_text(encoding="utf-8")))
    try:
        topic, client_id = f"plant/{uuid.uuid4().hex[:6]}/TT-101", f"gx-{uuid.uuid4().hex[:8]}"
        tags.bind("GRAN01/TT-101", TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))
        site.connector(spool, topic, client_id).stop()
        publisher = site.publisher()
        publish_all(publisher, topic, readings(1500))  # all PUBACKed
        source = site.connector(spool, topic, client_id)
        try:
            wait_until(lambda: source.counts["received"] >= 1000, what="the queued values")
            publish_all(publisher, topic, readings(1, start=1500))  # the publisher goes on
            wait_until(lambda: source.counts["sequence_gap"] >= 1, what="the gap is seen")
            wait_until(lambda: (source.broker_dropped or 0) > 0, what="$SYS dropped count")
        finally:
            source.stop()
            publisher.loop_stop()
        assert source.counts["received"] < 1501  # the broker did drop values ...
        forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
        forwarder.forward_once()
        # ... and the batch's review shows it: a data-quality exception naming the gap.
        details = [
            i.detail
            for i in running.engine.review_by_exception(BATCH)
            if i.kind == "exception:data_quality"
        ]
        lost = 1501 - source.counts["received"]
        assert len(details) == 1 and f"{lost} reading(s) before seq 1500 lost" in details[0]
        assert rejects_by_reason(running.db) == {"sequence_gap": 1}
    finally:
        site.broker.stop()
