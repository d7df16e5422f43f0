"""MQTT against the real Mosquitto: JSON and Sparkplug B into a batch, acked after the spool."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from waiting import DEADLINE, wait_until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding
from gxpmes.connectors.mqtt import MqttSource
from gxpmes.connectors.sparkplug import DOUBLE, Metric, Payload, encode_payload

BATCH = "B-OT-1"


def publisher(host: str, port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.connect(host, port)
    client.loop_start()
    return client


def test_json_values_reach_the_batch_and_bad_ones_are_counted(running, tags, spool, broker) -> None:  # type: ignore[no-untyped-def]
    prefix = f"test/{uuid.uuid4().hex[:8]}"
    source = MqttSource(
        spool,
        host=broker[0],
        port=broker[1],
        topics=[f"{prefix}/#"],
        client_id=f"gx-{uuid.uuid4().hex[:6]}",
        clean_session=True,
        payload_tags=True,  # these readings name their tag; the topic does not
    )
    source.start()
    assert source.connected.wait(DEADLINE)
    pub = publisher(*broker)
    now = datetime.now(UTC)
    good = [
        {
            "tag": "GRAN01/TT-101",
            "value": 70 + i / 10,
            "ts": (now + timedelta(seconds=i)).isoformat(),
        }
        for i in range(20)
    ]
    pub.publish(f"{prefix}/pv", json.dumps(good), qos=1).wait_for_publish()
    pub.publish(f"{prefix}/pv", json.dumps(good[:5]), qos=1).wait_for_publish()  # a redelivery
    for bad in (
        b"not json",
        json.dumps({"tag": "GRAN01/TT-101", "value": "NaN", "ts": now.isoformat()}),
        json.dumps({"tag": "GRAN01/TT-101", "value": 1, "ts": "2026-01-01T00:00:00"}),
        json.dumps(
            {"tag": "GRAN01/TT-101", "value": 1, "ts": (now + timedelta(days=1)).isoformat()}
        ),
        json.dumps({"tag": "GRAN01/TT-101", "value": True, "ts": now.isoformat()}),
    ):
        pub.publish(f"{prefix}/pv", bad, qos=1).wait_for_publish()
    wait_until(
        lambda: (
            source.counts["received"] >= 25
            and sum(
                source.counts[k]
                for k in (
                    "malformed",
                    "non_finite",
                    "naive_timestamp",
                    "future_timestamp",
                    "wrong_type",
                )
            )
            >= 5
        )
    )
    assert source.counts["duplicates"] == 5
    assert (
        source.counts["malformed"],
        source.counts["non_finite"],
        source.counts["naive_timestamp"],
        source.counts["future_timestamp"],
        source.counts["wrong_type"],
    ) == (1, 1, 1, 1, 1)
    forwarder = Forwarder(spool, running.engine, tags, source=running.ot)
    assert forwarder.forward_once() == 20
    values = running.engine.values(BATCH)
    assert [v["value"] for v in values][:3] == ["70.0", "70.1", "70.2"]
    assert len(spool) == 0
    source.stop()
    pub.loop_stop()


def test_sparkplug_births_aliases_and_rebirth_on_gap(running, tags, spool, broker) -> None:  # type: ignore[no-untyped-def]
    group, node = f"G{uuid.uuid4().hex[:6]}", "EDGE1"
    tags.bind(
        f"{group}/{node}/GRAN01/TT-101",
        TagBinding(BATCH, "GRAN/UP-GRAN/OP-WET/PH-HEAT/temperature", "Cel"),
    )
    source = MqttSource(
        spool,
        host=broker[0],
        port=broker[1],
        sparkplug_topics=[f"spBv1.0/{group}/#"],
        client_id=f"gx-{uuid.uuid4().hex[:6]}",
        clean_session=True,
    )
    source.start()
    assert source.connected.wait(DEADLINE)
    commands: list[bytes] = []
    pub = publisher(*broker)
    subscribed = threading.Event()
    pub.on_subscribe = lambda *_args: subscribed.set()
    pub.on_message = lambda c, u, m: commands.append(m.payload)
    pub.subscribe(f"spBv1.0/{group}/NCMD/{node}", qos=0)
    wait_until(subscribed.is_set, what="broker confirms the NCMD subscription")
    ms = int(time.time() * 1000)
    base = f"spBv1.0/{group}"
    pub.publish(
        f"{base}/NBIRTH/{node}", encode_payload(Payload(timestamp=ms, seq=0, metrics=[])), qos=1
    )
    pub.publish(
        f"{base}/DBIRTH/{node}/GRAN01",
        encode_payload(
            Payload(
                timestamp=ms,
                seq=1,
                metrics=[Metric(name="TT-101", alias=7, timestamp=ms, datatype=DOUBLE, value=70.5)],
            )
        ),
        qos=1,
    )
    pub.publish(
        f"{base}/DDATA/{node}/GRAN01",
        encode_payload(
            Payload(
                timestamp=ms + 1000,
                seq=2,
                metrics=[Metric(alias=7, timestamp=ms + 1000, datatype=DOUBLE, value=71.25)],
            )
        ),
        qos=1,
    )
    pub.publish(
        f"{base}/DDATA/{node}/GRAN01",
        encode_payload(
            Payload(
                timestamp=ms + 3000,
                seq=5,
                metrics=[Metric(alias=7, timestamp=ms + 3000, datatype=DOUBLE, value=72.0)],
            )
        ),
        qos=1,
    )  # seq gap
    wait_until(lambda: source.counts["received"] >= 3 and commands)
    assert source.counts["rebirth_requests"] >= 1 and b"Node Control/Rebirth" in commands[0]
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert [v["value"] for v in running.engine.values(BATCH)] == ["70.5", "71.25", "72.0"]
    source.stop()
    pub.loop_stop()
