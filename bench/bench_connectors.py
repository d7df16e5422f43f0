"""OT ingest throughput: MQTT and OPC UA into durable batch records, next to same-run baselines.

    python bench/bench_connectors.py [--values 40000] [--per-message 1,100]
                                     [--opcua-nodes 1000] [--opcua-seconds 10]

MQTT: a real paho publisher (its own process, QoS 1) publishes JSON readings into
the Mosquitto on 127.0.0.1:1883; as ``gxpmes connect`` runs it, the connector
(MQTT 5, group commit, acks after the spool commit) is an ingest process of its
own and the forwarder and capture run in this one, and the clock stops when every
value is in the batch record (read as ``BatchEngine.values`` reads them).
Baselines, same run, same messages: the broker alone (a paho subscriber
counting the values), the spool alone (``Spool.put_many`` of the decoded
readings in the same group sizes) and
``BatchEngine.capture`` alone. The publisher keeps at most a window of messages
ahead of what the consumer has taken, so the stock broker's per-client queue
(1,000 messages) never overflows, for the baseline as for the connector.

OPC UA: an asyncua server (its own process) with N variables, all written every
100 ms; one gxpmes OPC UA subscription (publishing interval 100 ms) → spool →
eBR, against a plain asyncua client subscription counting notifications.

CPU time is this process's (``time.process_time``): connector, forwarder and
capture, not the publisher or the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.jsonpayload import decode_json_message
from gxpmes.connectors.model import Reading, TagBinding, TagMap
from gxpmes.connectors.mqtt import MqttSource
from gxpmes.connectors.opcua import OpcUaNode, OpcUaSource
from gxpmes.connectors.runner import Connector
from gxpmes.connectors.spool import Spool
from gxpmes.ebr.engine import CapturedValue

TAGS = 10
# Messages the publisher may be ahead of the consumer: stock Mosquitto 2.0 counts the
# unacknowledged messages beyond its max_inflight_messages (20) against
# max_queued_messages (1,000) even for an MQTT 5 receive maximum of 1,000, and drops
# the rest; the example configuration has no such limit, the stock broker does.
WINDOW = 800
FORWARD_BATCH = 5000


# --------------------------------------------------------------------------- MQTT


def messages(count: int, per_message: int, prefix: str) -> list[tuple[str, bytes]]:
    """``count`` readings over TAGS topics, ``per_message`` readings of one tag per message."""
    base = datetime.now(UTC)  # after the phase started; 100 µs apart
    out = []
    for start in range(0, count, per_message):
        tag = (start // per_message) % TAGS
        items = [
            {
                "value": f"{70 + (i % 40) / 10:.1f}",
                "ts": (base + timedelta(microseconds=i * 100)).isoformat(),
            }
            for i in range(start, min(count, start + per_message))
        ]
        body = items[0] if per_message == 1 else items
        out.append((f"{prefix}/TT-{tag:03d}", json.dumps(body).encode()))
    return out


def publish(todo: list[tuple[str, bytes]], consumed: Any, go: Any, done: Any) -> None:
    """The publisher process: QoS 1, at most WINDOW messages ahead of ``consumed``."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    go.wait()
    last = None
    for sent, (topic, body) in enumerate(todo):
        while sent - consumed.value >= WINDOW:
            time.sleep(0.0005)
        last = pub.publish(topic, body, qos=1)
        if last.rc != mqtt.MQTT_ERR_SUCCESS:
            raise SystemExit(f"publish failed: {mqtt.error_string(last.rc)}")
    if last is not None:
        last.wait_for_publish(120)
    done.set()
    pub.loop_stop()
    pub.disconnect()


class Publisher:
    def __init__(self, todo: list[tuple[str, bytes]]) -> None:
        ctx = mp.get_context("fork")
        self.consumed = ctx.Value("q", 0, lock=False)
        self.go, self.done = ctx.Event(), ctx.Event()
        self.process = ctx.Process(
            target=publish, args=(todo, self.consumed, self.go, self.done), daemon=True
        )
        self.process.start()
        time.sleep(0.5)  # connected

    def start(self) -> None:
        self.go.set()

    def join(self) -> None:
        self.process.join(60)
        if self.process.is_alive():
            self.process.kill()


def broker_alone(todo: list[tuple[str, bytes]], prefix: str, values: int) -> dict[str, float]:
    """A paho subscriber (MQTT 5, receive maximum 1000, QoS 1) counting messages."""
    publisher = Publisher(todo)
    got = [0]
    finished = threading.Event()

    def on_message(c: Any, u: Any, m: Any) -> None:
        got[0] += 1
        publisher.consumed.value = got[0]
        if got[0] == len(todo):
            finished.set()

    sub = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-sub-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.ReceiveMaximum = 1000
    sub.on_message = on_message
    sub.connect("127.0.0.1", 1883, properties=properties)
    sub.loop_start()
    sub.subscribe(f"{prefix}/#", qos=1)
    time.sleep(0.5)
    cpu, began = time.process_time(), time.perf_counter()
    publisher.start()
    if not finished.wait(300):
        raise SystemExit(f"broker alone: {got[0]} of {len(todo)} messages arrived")
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    sub.loop_stop()
    sub.disconnect()
    publisher.join()
    return {"rate": values / elapsed, "cpu_us": cpu / values * 1e6}


def ebr_count(engine: Any, prefix: str) -> int:
    """Values of B-1 recorded from tags under ``prefix`` (read as the engine reads them)."""
    return sum(1 for v in engine.values("B-1") if str(v["tag"]).startswith(prefix))


def mqtt_to_ebr(
    plant: Any, workdir: Path, todo: list[tuple[str, bytes]], prefix: str, values: int
) -> dict[str, float]:
    """``gxpmes connect``'s layout: the MQTT ingest process (receive, decode, spool, ack)
    and this process (forwarder + capture), sharing the spool file."""
    from ebr_support import HEAT

    config = {
        "spool": f"spool-{uuid.uuid4().hex[:6]}.db",
        "account": plant.ot.account_id,
        "client_id": plant.ot.client_id,
        "tags": [
            {
                "tag": f"{prefix}/TT-{t:03d}",
                "batch": "B-1",
                "parameter": f"{HEAT}/temperature",
                "unit": "Cel",
            }
            for t in range(TAGS)
        ],
        "mqtt": {
            "topics": [f"{prefix}/#"],
            "client_id": f"bench-{uuid.uuid4().hex[:6]}",
            "protocol": "5",
            "session_expiry": 60,
            "receive_maximum": 1000,
            "watch_broker": False,
            "report_interval": 0.05,  # the publisher's window follows the reports
        },
    }
    connector = Connector(config, plant.engine, workdir)
    publisher = Publisher(todo)
    connector.start()
    source = connector.sources[0]
    forwarder = connector.forwarder
    if not source.connected.wait(60):
        raise SystemExit("the MQTT ingest process did not connect")
    stop = threading.Event()

    def track() -> None:  # the publisher's window follows what is spooled and acknowledged
        while not stop.wait(0.02):
            publisher.consumed.value = source.counts["deliveries"]

    threading.Thread(target=track, daemon=True).start()
    time.sleep(0.2)
    child_cpu = source.cpu
    cpu, began = time.process_time(), time.perf_counter()
    publisher.start()
    spooled_at = None
    while forwarder.counts["recorded"] < values and time.perf_counter() - began < 600:
        if spooled_at is None and source.counts["received"] >= values:
            spooled_at = time.perf_counter()
        time.sleep(0.01)
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu
    counts = source.counts  # the latest report
    child_cpu = source.cpu - child_cpu
    stop.set()
    connector.stop()
    publisher.join()
    connector.close()
    rows = ebr_count(plant.engine, prefix)
    if rows != values:
        raise SystemExit(
            f"MQTT → eBR: {rows} of {values} values recorded "
            f"(forwarder {dict(forwarder.counts)}, source {dict(counts)})"
        )
    return {
        "rate": values / elapsed,
        "spooled": values / ((spooled_at or time.perf_counter()) - began),
        "cpu_us": cpu / values * 1e6,
        "child_cpu_us": child_cpu / values * 1e6,
        "commits": counts["commits"],
        "messages": len(todo),
    }


def decode_alone(todo: list[tuple[str, bytes]], workdir: Path, values: int) -> float:
    """CPU µs per value of decoding + validating the messages (the ingest process's part
    before the spool), as the MQTT source does it."""
    spool = Spool(workdir / f"spool-decode-{uuid.uuid4().hex[:6]}.db")
    source = MqttSource(spool, topics=["x"], client_id="bench-decode", watch_broker=False)
    cpu = time.process_time()
    for topic, body in todo:
        source._delivery(topic, body)
    cpu = time.process_time() - cpu
    spool.close()
    return cpu / values * 1e6


def decoded(todo: list[tuple[str, bytes]]) -> list[list[Reading]]:
    now = datetime.now(UTC)
    return [
        [
            replace(r, server_ts=now)
            for r in decode_json_message(body, now, default_tag=topic, payload_tag=False).readings
        ]
        for topic, body in todo
    ]


def spool_alone(workdir: Path, batches: list[list[Reading]], group: int) -> dict[str, float]:
    """Spool.put_many of the same readings, ``group`` messages per durable commit; then
    reading them back as the forwarder does (``pending_items``, 5,000 at a time)."""
    spool = Spool(workdir / f"spool-alone-{uuid.uuid4().hex[:6]}.db")
    values = sum(len(b) for b in batches)
    cpu, began = time.process_time(), time.perf_counter()
    for start in range(0, len(batches), group):
        spool.put_many([(b, [], {}) for b in batches[start : start + group]])
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    read = time.process_time()
    while pending := spool.pending_items(FORWARD_BATCH):
        spool.remove([row_id for row_id, _items in pending])
    read = time.process_time() - read
    spool.close()
    return {
        "rate": values / elapsed,
        "cpu_us": cpu / values * 1e6,
        "read_cpu_us": read / values * 1e6,
    }


def capture_alone(plant: Any, batches: list[list[Reading]]) -> dict[str, float]:
    from ebr_support import HEAT

    captured = [
        CapturedValue(
            "B-1",
            f"{HEAT}/temperature",
            r.tag,
            r.value,
            "Cel",
            r.source_ts,
            r.server_ts,
            r.quality,
            "alone|" + r.dedup_key,
        )
        for b in batches
        for r in b
    ]
    cpu, began = time.process_time(), time.perf_counter()
    for start in range(0, len(captured), FORWARD_BATCH):
        plant.engine.capture(captured[start : start + FORWARD_BATCH], source=plant.ot)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {"rate": len(captured) / elapsed, "cpu_us": cpu / len(captured) * 1e6}


# --------------------------------------------------------------------------- OPC UA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def opcua_server(port: int, nodes: int, ready: Any, stop: Any, writes: Any) -> None:
    """The server process: ``nodes`` variables, every one written every 100 ms."""
    from asyncua import Server, ua

    async def serve() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
        index = await server.register_namespace("urn:gxpmes:bench")
        plant = await server.nodes.objects.add_object(index, "PLANT")
        variables = [
            await plant.add_variable(ua.NodeId(f"TT{i:04d}", index), f"TT{i:04d}", 20.0)
            for i in range(nodes)
        ]
        await server.start()
        ready.set()
        tick = 0
        while not stop.is_set():
            began = time.perf_counter()
            tick += 1
            now = datetime.now(UTC)
            for i, variable in enumerate(variables):
                value = ua.DataValue(
                    ua.Variant(70.0 + ((tick + i) % 40) / 10, ua.VariantType.Double),
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                )
                await server.write_attribute_value(variable.nodeid, value)
            writes.value += nodes
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - began)))
        await server.stop()

    asyncio.run(serve())


class OpcUaServer:
    def __init__(self, nodes: int) -> None:
        ctx = mp.get_context("fork")
        self.port = free_port()
        self.ready, self.stop_event = ctx.Event(), ctx.Event()
        self.writes = ctx.Value("q", 0, lock=False)
        self.process = ctx.Process(
            target=opcua_server,
            args=(self.port, nodes, self.ready, self.stop_event, self.writes),
            daemon=True,
        )
        self.process.start()
        if not self.ready.wait(120):
            raise SystemExit("the OPC UA server did not start")
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/bench/"
        self.node_ids = [f"ns=2;s=TT{i:04d}" for i in range(nodes)]

    def close(self) -> None:
        self.stop_event.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


def opcua_plain(server: OpcUaServer, seconds: float) -> dict[str, float]:
    """A plain asyncua client subscription (same parameters) counting notifications."""
    from asyncua import Client

    class Count:
        n = 0

        def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
            self.n += 1

    async def run() -> dict[str, float]:
        handler = Count()
        async with Client(server.endpoint, timeout=10) as client:
            subscription = await client.create_subscription(100, handler)
            await subscription.subscribe_data_change([client.get_node(n) for n in server.node_ids])
            await asyncio.sleep(1.0)  # initial values
            start, writes = handler.n, server.writes.value
            cpu, began = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            elapsed = time.perf_counter() - began
            n = handler.n - start
            return {
                "rate": n / elapsed,
                "offered": (server.writes.value - writes) / elapsed,
                "cpu_us": (time.process_time() - cpu) / max(1, n) * 1e6,
            }

    return asyncio.run(run())


def opcua_to_ebr(
    plant: Any, workdir: Path, server: OpcUaServer, seconds: float
) -> dict[str, float]:
    from ebr_support import HEAT

    spool = Spool(workdir / f"spool-opcua-{uuid.uuid4().hex[:6]}.db")
    nodes = [OpcUaNode(n, f"OPC/{n}") for n in server.node_ids]
    tags = TagMap({n.tag: TagBinding("B-1", f"{HEAT}/temperature", "Cel") for n in nodes})
    source = OpcUaSource(spool, server.endpoint, nodes, publishing_interval_ms=100)
    forwarder = Forwarder(spool, plant.engine, tags, source=plant.ot, batch_size=FORWARD_BATCH)
    loop = asyncio.new_event_loop()
    opc = threading.Thread(target=lambda: loop.run_until_complete(source.run()), daemon=True)
    fwd = threading.Thread(target=forwarder.run, kwargs={"interval": 0.2}, daemon=True)
    before = ebr_count(plant.engine, "OPC/")
    opc.start()
    fwd.start()
    deadline = time.monotonic() + 60
    while not source.connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # initial values
    received0, recorded0 = source.counts["received"], forwarder.counts["recorded"]
    writes = server.writes.value
    cpu, began = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    received = source.counts["received"] - received0
    recorded = forwarder.counts["recorded"] - recorded0
    elapsed = time.perf_counter() - began
    offered = (server.writes.value - writes) / elapsed
    cpu = time.process_time() - cpu
    loop.call_soon_threadsafe(source.stop)
    opc.join(30)
    while forwarder.counts["recorded"] < source.counts["received"]:
        time.sleep(0.05)
    forwarder.stop()
    fwd.join()
    rows = ebr_count(plant.engine, "OPC/") - before
    if rows != source.counts["received"]:
        raise SystemExit(f"OPC UA → eBR: {rows} of {source.counts['received']} recorded")
    spool.close()
    return {
        "received": received / elapsed,
        "rate": recorded / elapsed,
        "cpu_us": cpu / max(1, recorded) * 1e6,
        "commits": source.counts["commits"],
        "offered": offered,
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    from ebr_support import HEAT, make_plant

    from gxpmes.testing.plant import Clock

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=40_000)
    parser.add_argument("--per-message", default="1,100")
    parser.add_argument("--opcua-nodes", type=int, default=1000)
    parser.add_argument("--opcua-seconds", type=float, default=10.0)
    parser.add_argument("--skip", default="", help="mqtt and/or opcua")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-ot-"))

    class WallClock(Clock):
        # Real time: capture refuses values stamped ahead of the server's clock.
        def __call__(self) -> datetime:
            return datetime.now(UTC)

    plant = make_plant(str(workdir / "mes.db"), clock=WallClock())
    plant.start_batch("B-1", phases=(HEAT,))
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores); {args.values:,} values per MQTT run")

    if "mqtt" not in args.skip:
        for per_message in (int(p) for p in args.per_message.split(",")):
            prefix = f"bench/{uuid.uuid4().hex[:8]}"
            todo = messages(args.values, per_message, prefix)
            raw = broker_alone(todo, prefix, args.values)
            batches = decoded(todo)
            decode_us = decode_alone(todo, workdir, args.values)
            ours = mqtt_to_ebr(plant, workdir, todo, prefix, args.values)
            group = max(1, round(ours["messages"] / max(1, ours["commits"])))
            spooled = spool_alone(workdir, batches, group)
            capture = capture_alone(plant, batches)
            print(
                f"\nMQTT, {per_message} value(s) per message ({len(todo):,} messages, QoS 1):\n"
                f"  MQTT → durable spool (acked)     {ours['spooled']:>9,.0f} values/s\n"
                f"  MQTT → durable eBR (recorded)    {ours['rate']:>9,.0f} values/s   "
                f"{group} messages per spool commit\n"
                f"    CPU µs/value: ingest process {ours['child_cpu_us']:.1f}, "
                f"forwarder + capture process {ours['cpu_us']:.1f}\n"
                f"  broker alone (paho sub)          {raw['rate']:>9,.0f} values/s   "
                f"ratio {ours['rate'] / raw['rate']:.3f}x   {raw['cpu_us']:.1f} µs CPU/value\n"
                f"  spool alone (put_many, {group}/commit) {spooled['rate']:>9,.0f} values/s   "
                f"ratio {ours['rate'] / spooled['rate']:.2f}x   "
                f"{spooled['cpu_us']:.1f} µs CPU/value\n"
                f"  capture alone ({FORWARD_BATCH}/call)     {capture['rate']:>9,.0f} values/s   "
                f"ratio {ours['rate'] / capture['rate']:.2f}x   "
                f"{capture['cpu_us']:.1f} µs CPU/value\n"
                f"  stages, CPU µs/value: paho receive {raw['cpu_us']:.1f}, "
                f"decode + validate {decode_us:.1f}, spool write {spooled['cpu_us']:.1f}, "
                f"spool read {spooled['read_cpu_us']:.1f}, capture {capture['cpu_us']:.1f}"
            )

    if "opcua" not in args.skip:
        server = OpcUaServer(args.opcua_nodes)
        try:
            plain = opcua_plain(server, args.opcua_seconds)
            ours = opcua_to_ebr(plant, workdir, server, args.opcua_seconds)
            offered = args.opcua_nodes * 10
        finally:
            server.close()
        print(
            f"\nOPC UA, one subscription to {args.opcua_nodes} nodes, each written every 100 ms "
            f"(nominal {offered:,} values/s), publishing interval 100 ms:\n"
            f"  OPC UA → durable spool           {ours['received']:>9,.0f} values/s   "
            f"(server wrote {ours['offered']:,.0f}/s)\n"
            f"  OPC UA → durable eBR (recorded)  {ours['rate']:>9,.0f} values/s   "
            f"{ours['cpu_us']:.0f} µs CPU/value\n"
            f"  plain asyncua subscription       {plain['rate']:>9,.0f} values/s   "
            f"ratio {ours['rate'] / plain['rate']:.2f}x   {plain['cpu_us']:.0f} µs CPU/value "
            f"(server wrote {plain['offered']:,.0f}/s)"
        )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
