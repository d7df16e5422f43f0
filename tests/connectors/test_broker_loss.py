"""No silent loss at the broker: the documented Mosquitto configuration keeps everything
published while the connector is down (even across a broker restart); with the stock
limits the loss is detected and reported as a data-quality exception. The example ACL
lets the connector read the broker's dropped-message count and send Sparkplug rebirth
requests; without those grants the status line says the count is missing.

Each test starts its own Mosquitto (docs/examples/mosquitto-gxpmes.conf with free
ports, a temporary persistence directory, its own certificates and passwords).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker_support import (
    EXAMPLE,
    EXAMPLE_ACL,
    Mosquitto,
    Pki,
    free_port,
    make_pki,
    password_file,
    site_config,
)
from paho.mqtt.enums import CallbackAPIVersion
from waiting import DEADLINE, wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding
from gxpmes.connectors.mqtt import MqttSecurity, MqttSource
from gxpmes.connectors.rejects import rejects_by_reason
from gxpmes.connectors.runner import Connector
from gxpmes.connectors.sparkplug import DOUBLE, Metric, Payload, encode_payload

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"
USERS = {"gxpmes": "connector-pass-1", "plc": "publisher-pass-1", "edge01": "edge-pass-1"}
DROPPED = "$SYS/broker/publish/messages/dropped"
NCMD = "spBv1.0/PLANT1/NCMD/EDGE01"  # the edge node of the example ACL


class Site:
    """A broker from the example configuration and what clients need to reach it."""

    def __init__(self, folder: Path, text: str | None = None, acl: str | None = None) -> None:
        self.pki: Pki = make_pki(folder / "pki")
        self.port, self.tls_port = free_port(), free_port()
        config = site_config(
            folder,
            port=self.port,
            tls_port=self.tls_port,
            pki=self.pki,
            passwd=password_file(folder, USERS),
            text=text,
            acl=acl,
        )
        self.broker = Mosquitto(config, self.port, self.tls_port).start()

    def publisher(self, user: str = "plc") -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}"
        )
        client.tls_set_context(ssl.create_default_context(cafile=str(self.pki.ca)))
        client.username_pw_set(user, USERS[user])
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


# ------------------------------------------------------------------ the broker's ACL


def listen(client: mqtt.Client, topic: str) -> list[bytes]:
    """Subscribe ``client`` to ``topic`` (the broker has confirmed it on return)."""
    received: list[bytes] = []
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_message = lambda _c, _u, message: received.append(message.payload)
    client.subscribe(topic, qos=0)
    assert subscribed.wait(DEADLINE), f"subscription to {topic} not confirmed"
    return received


def acl_connector(site: Site, running, folder: Path, parameter: str = "x") -> Connector:  # type: ignore[no-untyped-def]
    """``gxpmes connect`` as a site runs it: user gxpmes over TLS, Sparkplug of PLANT1; the
    edge node's TT-101 feeds the batch's ``parameter`` of the HEAT phase."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mqtt-password").write_text(USERS["gxpmes"] + "\n", encoding="utf-8")
    config = {
        "tags": [
            {
                "tag": "PLANT1/EDGE01/TT-101",
                "batch": BATCH,
                "parameter": f"{HEAT}/{parameter}",
                "unit": "Cel",
            }
        ],
        "mqtt": {
            "host": "localhost",
            "port": site.tls_port,
            "client_id": f"gx-{uuid.uuid4().hex[:8]}",
            "sparkplug": ["spBv1.0/PLANT1/#"],
            "ca_file": str(site.pki.ca),
            "username": "gxpmes",
            "password_file": "mqtt-password",
            "own_process": False,
            "broker_count_within": 0.5,
        },
    }
    connector = Connector(config, running.engine, folder)
    connector.start()
    return connector


def data_before_birth(edge: mqtt.Client) -> None:
    """NDATA of an edge node the connector has no birth of: it asks for a rebirth (NCMD)."""
    ms = int(time.time() * 1000)
    metric = Metric(alias=1, timestamp=ms, datatype=DOUBLE, value=70.5)
    payload = encode_payload(Payload(timestamp=ms, seq=0, metrics=[metric]))
    edge.publish("spBv1.0/PLANT1/NDATA/EDGE01", payload, qos=1).wait_for_publish(DEADLINE)


def missing_count_warning(connector: Connector) -> list[str]:
    return [w for w in connector.status().warnings() if "no dropped-message count" in w]


def test_the_example_acl_grants_the_broker_count_and_rebirth_requests(running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    site = Site(tmp_path / "acl", EXAMPLE.read_text(encoding="utf-8") + "sys_interval 1\n")
    edge = site.publisher("edge01")
    connector = acl_connector(site, running, tmp_path / "connector")
    try:
        commands = listen(edge, NCMD)
        source = connector.sources[0]
        wait_until(source.connected.is_set, what="the connector connects with its ACL")
        data_before_birth(edge)
        wait_until(lambda: commands, what="the rebirth request reaches the edge node")
        assert b"Node Control/Rebirth" in commands[0]
        wait_until(lambda: source.broker_dropped is not None, what="the broker's dropped count")
        status = connector.status()
        assert source.broker_dropped == 0 and status.broker_count_missing == 0
        assert missing_count_warning(connector) == []
    finally:
        connector.stop()
        connector.close()
        edge.loop_stop()
        site.broker.stop()


def without_the_count_grant(acl: str) -> str:
    """The example ACL without the connector's $SYS line; user plc may read the count
    instead, to show the broker publishes it."""
    line = f"topic read {DROPPED}"
    assert line in acl.splitlines()
    kept = [x for x in acl.splitlines() if x != line]
    return "\n".join(kept).replace("user plc\n", f"user plc\n{line}\n") + "\n"


def test_without_the_grant_the_count_is_missing_and_the_status_says_so(running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    acl = without_the_count_grant(EXAMPLE_ACL.read_text(encoding="utf-8"))
    site = Site(tmp_path / "acl", EXAMPLE.read_text(encoding="utf-8") + "sys_interval 1\n", acl)
    observer = site.publisher("plc")
    connector = None
    try:
        counts = listen(observer, DROPPED)
        wait_until(lambda: counts, what="the broker publishes its dropped count")  # retained
        connector = acl_connector(site, running, tmp_path / "connector")
        source = connector.sources[0]
        wait_until(source.connected.is_set, what="the connector connects")
        # The broker grants the subscription and then sends nothing on it.
        wait_until(lambda: missing_count_warning(connector), what="the missing-count warning")
        # The retained count was there all along: only the ACL kept it from the connector.
        assert source.broker_dropped is None and source.counts["disconnects"] == 0
        line, _ = connector.status_line(0, 1.0)
        assert "WARNING: no dropped-message count from the MQTT broker" in line
        assert f"read access to {DROPPED}" in line
    finally:
        if connector is not None:
            connector.stop()
            connector.close()
        observer.loop_stop()
        site.broker.stop()


def without_the_ncmd_grant(acl: str) -> str:
    """The example ACL without the connector's write access to rebirth requests (NCMD)."""
    line = "topic write spBv1.0/+/NCMD/+"
    assert line in acl.splitlines()
    return "\n".join(x for x in acl.splitlines() if x != line) + "\n"


def edge_publish(edge: mqtt.Client, kind: str, seq: int, metric: Metric, ms: int) -> None:
    """A message of edge node PLANT1/EDGE01, taken by the broker (PUBACK) on return."""
    payload = encode_payload(Payload(timestamp=ms, seq=seq, metrics=[metric]))
    edge.publish(f"spBv1.0/PLANT1/{kind}/EDGE01", payload, qos=1).wait_for_publish(DEADLINE)


def rebirth_warnings(connector: Connector) -> list[str]:
    return [w for w in connector.status().warnings() if "rebirth request" in w]


def test_a_denied_rebirth_request_does_not_stop_delivery(running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Mosquitto 2.0 disconnects a client whose publish its ACL denies. The rebirth request
    goes out only after the message that asked for it is acknowledged, so that message is
    not delivered again to ask again; the connector holds further requests off, records the
    edge node's data and says in its status line that the ACL denies the requests."""
    acl = without_the_ncmd_grant(EXAMPLE_ACL.read_text(encoding="utf-8"))
    site = Site(tmp_path / "acl", acl=acl)
    edge = site.publisher("edge01")
    connector = acl_connector(site, running, tmp_path / "connector", parameter="temperature")
    try:
        source = connector.sources[0]
        wait_until(source.connected.is_set, what="the connector connects")
        data_before_birth(edge)  # asks for a rebirth: the broker cuts the connector off
        wait_until(lambda: source.counts["disconnects"] >= 1, what="the denied request")
        wait_until(source.connected.is_set, what="the connector connects again")
        # The edge node births on its own (a restart) and goes on: these must be recorded.
        ms = int(time.time() * 1000)
        birth = Metric(name="TT-101", alias=1, timestamp=ms, datatype=DOUBLE, value=70.0)
        edge_publish(edge, "NBIRTH", 0, birth, ms)
        for seq in range(1, 6):
            data = Metric(alias=1, timestamp=ms + seq, datatype=DOUBLE, value=70.0 + seq / 4)
            edge_publish(edge, "NDATA", seq, data, ms + seq)
        wait_until(lambda: connector.counts()["recorded"] >= 6, what="the edge node's values")
        # More data (an unknown alias asks for a rebirth again) still flows, without a loop.
        stray = Metric(alias=9, timestamp=ms + 6, datatype=DOUBLE, value=1.0)
        edge_publish(edge, "NDATA", 6, stray, ms + 6)
        edge_publish(
            edge, "NDATA", 7, Metric(alias=1, timestamp=ms + 7, datatype=DOUBLE, value=72.0), ms + 7
        )
        wait_until(lambda: connector.counts()["recorded"] >= 7, what="the value after the stray")
        # A redelivery loop reconnects about once a second: none within the next seconds.
        with pytest.raises(AssertionError):
            wait_until(lambda: source.counts["disconnects"] > 1, timeout=4, what="a loop")
        assert source.connected.is_set() and source.counts["disconnects"] == 1
        assert source.counts["rebirth_requests"] == 1 and source.counts["rebirth_denied"] == 1
        assert source.counts["rebirths_held_off"] >= 1  # the stray's request was not sent
        [warning] = rebirth_warnings(connector)
        assert "1 Sparkplug rebirth request(s) denied" in warning and "spBv1.0/+/NCMD/+" in warning
        line, _ = connector.status_line(0, 1.0)
        assert f"WARNING: {warning}" in line
    finally:
        connector.stop()
        connector.close()
        edge.loop_stop()
        site.broker.stop()
    values = running.engine.values(BATCH)
    assert [v["value"] for v in values] == [
        "70.0",
        "70.25",
        "70.5",
        "70.75",
        "71.0",
        "71.25",
        "72.0",
    ]
