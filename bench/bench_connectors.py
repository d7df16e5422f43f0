"""End-to-end MQTT throughput: publish → durable spool → EBR capture, against the broker's raw
publish → receive rate, both measured in the same run on the local Mosquitto.

    python bench/bench_connectors.py [--values 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding, TagMap
from gxpmes.connectors.mqtt import MqttSource
from gxpmes.connectors.spool import Spool


def client(name: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    c.connect("127.0.0.1", 1883)
    c.loop_start()
    return c


def payloads(count: int, per_message: int) -> list[bytes]:
    base = datetime.now(UTC)
    out = []
    for start in range(0, count, per_message):
        out.append(
            json.dumps(
                [
                    {
                        "tag": "GRAN01/TT-101",
                        "value": f"{70 + (i % 40) / 10:.1f}",
                        "ts": (base + timedelta(milliseconds=i)).isoformat(),
                    }
                    for i in range(start, min(count, start + per_message))
                ]
            ).encode()
        )
    return out


def raw_rate(messages: list[bytes], values: int) -> float:
    topic = f"bench/{uuid.uuid4().hex[:8]}"
    received = threading.Event()
    got = [0]
    sub = client("raw-sub")

    def on_message(c, u, m):  # type: ignore[no-untyped-def]
        got[0] += 1
        if got[0] == len(messages):
            received.set()

    sub.on_message = on_message
    sub.subscribe(topic, qos=1)
    time.sleep(0.5)
    pub = client("raw-pub")
    began = time.perf_counter()
    for message in messages:
        pub.publish(topic, message, qos=1)
    received.wait(120)
    elapsed = time.perf_counter() - began
    pub.loop_stop()
    sub.loop_stop()
    return values / elapsed


def main() -> None:
    from ebr_support import HEAT, make_plant

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=100)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-ot-"))
    from gxpmes.testing.plant import Clock

    class WallClock(Clock):
        # Real time: capture refuses values stamped ahead of the server's clock.
        def __call__(self) -> datetime:
            return datetime.now(UTC)

    plant = make_plant(str(workdir / "mes.db"), clock=WallClock())
    engine = plant.engine
    plant.start_batch("B-1", phases=(HEAT,))
    messages = payloads(args.values, args.per_message)
    raw = raw_rate(messages, args.values)

    spool = Spool(workdir / "spool.db")
    topic = f"bench/{uuid.uuid4().hex[:8]}"
    source = MqttSource(
        spool,
        topics=[topic],
        client_id=f"bench-{uuid.uuid4().hex[:6]}",
        clean_session=True,
        topic_tags={topic: "GRAN01/TT-101"},  # the topic names the tag the readings carry
    )
    source.start()
    source.connected.wait(10)
    forwarder = Forwarder(
        spool,
        engine,
        TagMap({"GRAN01/TT-101": TagBinding("B-1", f"{HEAT}/temperature", "Cel")}),
        source=plant.ot,
    )
    thread = threading.Thread(target=forwarder.run, kwargs={"interval": 0.05}, daemon=True)
    pub = client("bench-pub")
    began = time.perf_counter()
    thread.start()
    for message in messages:
        pub.publish(topic, message, qos=1)
    while forwarder.counts["recorded"] < args.values and time.perf_counter() - began < 300:
        time.sleep(0.05)
    ours = forwarder.counts["recorded"] / (time.perf_counter() - began)
    forwarder.stop()
    source.stop()
    pub.loop_stop()
    print(
        f"MQTT → spool → EBR capture {ours:>9,.0f} values/s   "
        f"broker publish→receive {raw:>9,.0f} values/s   ratio {ours / raw:.2f}x  "
        f"({args.values:,} values, {args.per_message} per message, QoS 1)"
    )


if __name__ == "__main__":
    main()
