"""One OPC UA subscription into durable batch records, next to same-run baselines.

    python bench/bench_opcua.py [--nodes 1000] [--rate 20000] [--seconds 10]
                                [--publishing-ms 100] [--queue-size N] [--server 2]
                                [--skip STAGES] [--profile]

The source: an asyncua server in its own process with ``--nodes`` Double
variables; a writer task in that process changes them round-robin (68.00–71.99,
inside the test recipe's 65–75 °C limits: no exception per value), ``--rate``
changes per second in total (5 ms slices), with source and server timestamps.
Each node changes ``rate / nodes`` times per second, i.e. several times per
publishing interval: every change must reach the record, so the monitored
items need a queue (``--queue-size``, default the connector's own sizing).

asyncua's server deep-copies every value it notifies (``copy.deepcopy`` of the
DataValue, about 60 µs) and the old bench built a new Variant per write; the
writer here reuses immutable Variants and DataValues and the copy is removed
in the server process only (safe: nothing mutates a DataValue after it is
written). ``--server 2`` (the default) also takes the lean path for the rest of
a change, in the server process only: the write goes straight to the
variable's monitored items (what ``write_attribute_value`` does for a good
Double), the monitored-item callback builds no default DataValue per
notification, and the data-change notification's body is written with one
``struct`` pack per value (:func:`lean_data_changes`, checked against
asyncua's bytes before the server starts). The stock server and the one
without the deepcopy (``--server 0`` / ``1``) are measured in the same run
("source capacity"): the measured stages should show the connector's limit,
not the test server's. It stays asyncua, with no other dependency: PyPI's
open62541-based ``o6`` wheel runs only in a time-limited script mode under a
commercial licence, and Debian 12 has no open62541 package.

Stages, all against the same server, one subscription each, in this order:

1. source capacity: stock, no deepcopy and lean server, writing as fast as it
   can, one plain subscriber counting what arrives;
2. asyncua alone: a subscription whose publish callback only counts the values
   asyncua decoded (no handler call per value) — the client-side ceiling;
3. asyncua handler API: ``datachange_notification`` per value (one asyncio task
   each), as the connector received before;
4. gxpmes → durable spool (``OpcUaSource``, no forwarder);
5. gxpmes → durable spool → eBR, everything in this process (source in a thread,
   forwarder and ``BatchEngine.capture`` in another);
6. gxpmes → durable spool → eBR as ``gxpmes connect`` runs it by default: the
   source in an ingest process of its own (``OpcUaProcess``), forwarder and
   capture in this process — two cores.

For each stage the writer is paused while subscribing (initial values are not
counted), runs ``--seconds``, is paused again, and the stage waits until every
change written in the window has arrived: "lost" is written minus received.
The eBR stages also check that every value received is in the record. CPU is
this process's ``time.process_time`` per value (client, spool writer,
forwarder, capture; the ingest process's own CPU is added separately in stage
6); the server's CPU per change is printed separately. ``--profile``: cProfile
of stages 4–5 in this process, and of the ingest process's main thread
(receive, decode, readings; not its spool writer thread) in stage 6 — with
cProfile's overhead the ingest falls behind: use it for where, not how much.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing as mp
import os
import pstats
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding, TagMap
from gxpmes.connectors.opcua import OpcUaNode, OpcUaProcess, OpcUaSource, monitored_queue_size
from gxpmes.connectors.spool import Spool

SLICE = 0.005
FORWARD_BATCH = 5000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the source


def lean_data_changes() -> Callable[[Any], bytes]:
    """asyncua's encoder of a notification's body, with a direct path for a
    DataChangeNotification of the bench writer's values (scalar Doubles with a status
    code and both timestamps, no picoseconds): one ``struct`` pack per value instead of
    asyncua's generic field loops. Anything else goes to asyncua's encoder; the bench
    checks both give the same bytes before it serves."""
    import struct

    from asyncua import ua
    from asyncua.ua import ua_binary
    from asyncua.ua.uatypes import datetime_to_win_epoch

    generic = ua_binary.struct_to_binary
    notification, variant = ua.DataChangeNotification, ua.Variant
    double = ua.VariantType.Double
    count, item = struct.Struct("<i"), struct.Struct("<IBBdIqq").pack

    def encode(obj: Any) -> bytes:
        if obj.__class__ is not notification or obj.DiagnosticInfos:
            return generic(obj)
        ticks: dict[datetime, int] = {}
        parts = [count.pack(len(obj.MonitoredItems))]
        for change in obj.MonitoredItems:
            value = change.Value
            v = value.Value
            source, server = value.SourceTimestamp, value.ServerTimestamp
            if (
                v.__class__ is not variant
                or v.VariantType is not double
                or v.is_array
                or v.Dimensions is not None
                or value.StatusCode is None
                or source is None
                or server is None
                or value.SourcePicoseconds is not None
                or value.ServerPicoseconds is not None
            ):
                return generic(obj)
            s = ticks.get(source)
            if s is None:
                s = ticks[source] = datetime_to_win_epoch(source)
            t = ticks.get(server)
            if t is None:
                t = ticks[server] = datetime_to_win_epoch(server)
            parts.append(item(change.ClientHandle, 15, 11, v.Value, value.StatusCode.value, s, t))
        parts.append(count.pack(0))  # no DiagnosticInfos
        return b"".join(parts)

    return encode


def serve(port: int, nodes: int, rate: float, patched: int, ctl: dict[str, Any]) -> None:
    """The server process: ``nodes`` variables, ``rate`` changes/s (0: as fast as it can).
    ``patched``: 0 stock asyncua; 1 without the deepcopy per notified value; 2 that and
    the lean write and encoding paths (:func:`lean_data_changes`, writes straight to the
    variables' monitored items)."""
    from asyncua import Server, ua

    if patched >= 2:
        from asyncua.ua import ua_binary

        encode = lean_data_changes()
        now = datetime.now(UTC)
        sample = ua.DataChangeNotification(
            MonitoredItems=[
                ua.MonitoredItemNotification(
                    ClientHandle=7,
                    Value=ua.DataValue(
                        ua.Variant(68.25, ua.VariantType.Double),
                        SourceTimestamp=now,
                        ServerTimestamp=now,
                    ),
                )
            ]
        )
        if encode(sample) != ua_binary.struct_to_binary(sample):
            raise SystemExit("the lean encoder does not write what asyncua writes")
        ua_binary.struct_to_binary = encode  # the notification bodies (extension objects)
        from asyncua.server.monitored_item_service import MonitoredItemService

        stock_callback = MonitoredItemService.datachange_callback
        notification = ua.MonitoredItemNotification
        disabled = ua.MonitoringMode.Disabled

        async def datachange(self: Any, handle: int, value: Any, error: Any = None) -> None:
            # asyncua's callback for an item without filter (trigger StatusValue) and a
            # good scalar: the same decision, without building a default DataValue per
            # notification (asyncua's MonitoredItemNotification() does) nor comparing
            # dataclasses field by field.
            mid = self._monitored_datachange[handle]
            data = self._monitored_items[mid]
            if error or data.filter or data.mode == disabled:
                return await stock_callback(self, handle, value, error)
            values = data.mvalue
            old = values.current_dvalue
            values.old_dvalue, values.current_dvalue = old, value
            if (
                old is not None
                and old.Value == value.Value
                and old.StatusCode.value == value.StatusCode.value
            ):
                return None
            await self.isub.enqueue_datachange_event(
                mid, notification(ClientHandle=data.client_handle, Value=value), data.queue_size
            )
            return None

        MonitoredItemService.datachange_callback = datachange  # type: ignore[method-assign]
    if patched:
        from asyncua.server import monitored_item_service

        def keep(self: Any, value: Any) -> None:  # the writer never mutates a DataValue
            self.old_dvalue = self.current_dvalue
            self.current_dvalue = value

        monitored_item_service.MonitoredItemValues.set_current_datavalue = keep

    async def run() -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
        index = await server.register_namespace("urn:gxpmes:bench")
        plant = await server.nodes.objects.add_object(index, "PLANT")
        ids = []
        for i in range(nodes):
            variable = await plant.add_variable(ua.NodeId(f"TT{i:04d}", index), f"TT{i:04d}", 20.0)
            ids.append(variable.nodeid)
        await server.start()
        ctl["ready"].set()
        double = ua.VariantType.Double
        variants = [ua.Variant(68.0 + k / 100, double) for k in range(400)]
        write: Any = server.write_attribute_value
        if patched >= 2:  # what write_attribute_value does for a good Double, directly
            attributes = [
                server.iserver.aspace._nodes[i].attributes[ua.AttributeIds.Value] for i in ids
            ]
            by_id = dict(zip(ids, attributes, strict=True))

            async def write(node_id: Any, value: Any) -> None:
                attribute = by_id[node_id]
                attribute.value = value
                for handle, notify in attribute.datachange_callbacks.items():
                    await notify(handle, value)

        position, total, owed = 0, 0, 0.0
        per_slice = rate * SLICE
        if per_slice > nodes:
            raise SystemExit("--rate too high for --nodes: a node would change twice per slice")
        cpu0 = time.process_time()
        next_at = time.perf_counter()
        while not ctl["stop"].is_set():
            if not ctl["writing"].is_set():
                ctl["cpu"].value = time.process_time() - cpu0
                await asyncio.sleep(0.01)
                next_at = time.perf_counter()
                continue
            now = datetime.now(UTC)
            if rate:
                owed += per_slice
                count = int(owed)
                owed -= count
            else:
                count = min(nodes, 500)
            shared: dict[int, Any] = {}
            for _ in range(count):
                k = total % 400
                total += 1
                if patched:  # one DataValue per distinct value and slice, shared by nodes
                    value = shared.get(k)
                    if value is None:
                        value = shared[k] = ua.DataValue(
                            variants[k], SourceTimestamp=now, ServerTimestamp=now
                        )
                else:  # what a plain asyncua program writes: a new DataValue every time
                    value = ua.DataValue(
                        ua.Variant(68.0 + k / 100, ua.VariantType.Double),
                        SourceTimestamp=now,
                        ServerTimestamp=now,
                    )
                await write(ids[position], value)
                position = (position + 1) % nodes
            ctl["writes"].value = total
            ctl["cpu"].value = time.process_time() - cpu0
            if rate:
                next_at += SLICE
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            else:
                await asyncio.sleep(0)
        await server.stop()

    asyncio.run(run())


class Source:
    """The server process and its controls."""

    def __init__(self, nodes: int, rate: float, patched: int) -> None:
        ctx = mp.get_context("fork")
        self.port = free_port()
        self.ctl = {
            "ready": ctx.Event(),
            "stop": ctx.Event(),
            "writing": ctx.Event(),
            "writes": ctx.Value("q", 0, lock=False),
            "cpu": ctx.Value("d", 0.0, lock=False),
        }
        self.process = ctx.Process(
            target=serve, args=(self.port, nodes, rate, patched, self.ctl), daemon=True
        )
        self.process.start()
        if not self.ctl["ready"].wait(180):
            raise SystemExit("the OPC UA server did not start")
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/bench/"
        self.node_ids = [f"ns=2;s=TT{i:04d}" for i in range(nodes)]

    @property
    def writes(self) -> int:
        return int(self.ctl["writes"].value)

    @property
    def cpu(self) -> float:
        return float(self.ctl["cpu"].value)

    def writing(self, on: bool) -> None:
        (self.ctl["writing"].set if on else self.ctl["writing"].clear)()
        time.sleep(0.05)  # the slice in progress ends

    def close(self) -> None:
        self.ctl["stop"].set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


# --------------------------------------------------------------------------- a stage


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of process ``pid`` (Linux ``/proc``): its main thread (the ingest
    process: receive, decode, readings) and its other threads (the spool writer...),
    each as user and system time; empty where ``/proc`` is not."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = "main" if int(tid) == pid else "other threads"
        out[f"{name} user"] = out.get(f"{name} user", 0.0) + int(fields[11]) / tick
        out[f"{name} system"] = out.get(f"{name} system", 0.0) + int(fields[12]) / tick
    return out


def profiled_ingest(options: dict[str, Any], *args: Any) -> None:
    """The OPC UA ingest process under cProfile (its main thread: receive, decode,
    readings; the spool writer thread is not in it), stats written to ``options["profile"]``."""
    from gxpmes.connectors.opcua import ingest_process_main

    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        ingest_process_main(options, *args)
    finally:
        profile.disable()
        profile.dump_stats(options["profile"])


class ProfiledOpcUaProcess(OpcUaProcess):
    target = staticmethod(profiled_ingest)


def measure(
    source: Source,
    seconds: float,
    received: Callable[[], int],
    nodes: int,
    settle: Callable[[], None] | None = None,
    profile: cProfile.Profile | None = None,
    other_cpu: Callable[[], float] | None = None,
) -> dict[str, float]:
    """Initial values in, then ``seconds`` of writing; waits for everything written.
    ``other_cpu``: CPU seconds of another process of ours, counted over the same span."""
    deadline = time.monotonic() + 120
    while received() < nodes and time.monotonic() < deadline:  # initial values
        time.sleep(0.05)
    time.sleep(0.3)
    c0, w0, s0 = received(), source.writes, source.cpu
    o0 = other_cpu() if other_cpu else 0.0
    cpu, began = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    source.writing(True)
    time.sleep(seconds)
    source.writing(False)
    elapsed = time.perf_counter() - began
    in_window = received() - c0
    server_cpu = source.cpu - s0
    last, still = received(), time.monotonic()
    while received() - c0 < source.writes - w0 and time.monotonic() - still < 10:
        time.sleep(0.05)
        if received() != last:
            last, still = received(), time.monotonic()
    written = source.writes - w0  # the writer's last slice may end after the pause
    if settle:
        settle()
    if profile:
        profile.disable()
    total = received() - c0
    if other_cpu:
        time.sleep(0.3)  # the other process's next report
    other = (other_cpu() - o0) if other_cpu else 0.0
    return {
        "other_us": other / max(1, total) * 1e6,
        "rate": in_window / elapsed,
        "offered": written / elapsed,  # (the last slice counts in)
        "written": written,
        "lost": written - total,
        "drained": total / (time.perf_counter() - began),
        "cpu_us": (time.process_time() - cpu) / max(1, total) * 1e6,
        "server_us": server_cpu / max(1, written) * 1e6,
    }


def plain_stage(
    source: Source, seconds: float, queue_size: int, publishing_ms: float, handler_api: bool
) -> dict[str, float]:
    """asyncua alone: count decoded values per publish response, or per handler call."""
    from asyncua import Client, ua
    from asyncua.common.subscription import Subscription

    count = [0]

    class Counting(Subscription):
        async def publish_callback(self, publish_result: Any) -> None:
            self.last_publish_at = time.monotonic()
            for notification in publish_result.NotificationMessage.NotificationData:
                if isinstance(notification, ua.DataChangeNotification):
                    count[0] += len(notification.MonitoredItems)

    class Handler:
        def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
            count[0] += 1

    result: dict[str, float] = {}

    async def run() -> None:
        async with Client(source.endpoint, timeout=30, watchdog_intervall=10.0) as client:
            nodes = [client.get_node(n) for n in source.node_ids]
            if handler_api:
                subscription = await client.create_subscription(publishing_ms, Handler())
            else:
                params = ua.CreateSubscriptionParameters(
                    RequestedPublishingInterval=publishing_ms,
                    RequestedLifetimeCount=10000,
                    RequestedMaxKeepAliveCount=50,
                    MaxNotificationsPerPublish=10000,
                    PublishingEnabled=True,
                )
                subscription = Counting(client.uaclient.session, params, Handler())
                await subscription.init()
            await subscription.subscribe_data_change(nodes, queuesize=queue_size)
            loop = asyncio.get_running_loop()
            result.update(
                await loop.run_in_executor(
                    None, measure, source, seconds, lambda: count[0], len(nodes)
                )
            )
            await subscription.delete()

    asyncio.run(run())
    return result


def ebr_count(engine: Any, prefix: str) -> int:
    """Values of B-1 recorded from tags under ``prefix`` (read as the engine reads them)."""
    return sum(1 for v in engine.values("B-1") if str(v["tag"]).startswith(prefix))


def gxpmes_stage(
    source: Source,
    seconds: float,
    workdir: Path,
    publishing_ms: float,
    queue_size: int | None,
    plant: Any = None,
    profile: cProfile.Profile | None = None,
    own_process: bool = False,
) -> dict[str, float]:
    """OpcUaSource → spool (→ forwarder → eBR when ``plant`` is given), the source in a
    thread of this process or (``own_process``, as ``gxpmes connect`` runs it) in an
    ingest process of its own."""
    from ebr_support import HEAT

    path = workdir / f"spool-opcua-{uuid.uuid4().hex[:6]}.db"
    spool = Spool(path)
    prefix = f"OPC-{uuid.uuid4().hex[:6]}/"  # a stage's own tags: its own dedup keys
    nodes = [OpcUaNode(n, prefix + n) for n in source.node_ids]
    opc: Any
    if own_process:
        config = {
            "endpoint": source.endpoint,
            "publishing_interval_ms": publishing_ms,
            "nodes": [{"node_id": n.node_id, "tag": n.tag} for n in nodes],
        }
        if queue_size is not None:
            config["queue_size"] = queue_size
        options = {
            "spool": str(path),
            "seen_retention": spool.seen_retention,
            "opcua": config,
            "base": str(workdir),
            "group_commit_values": 20_000,
        }
        if profile is not None:
            options["profile"] = str(workdir / f"ingest-{uuid.uuid4().hex[:6]}.prof")
        opc = (OpcUaProcess if profile is None else ProfiledOpcUaProcess)(
            options, report_interval=0.1
        )
    else:
        opc = OpcUaSource(
            spool,
            source.endpoint,
            nodes,
            publishing_interval_ms=publishing_ms,
            queue_size=queue_size,
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=lambda: loop.run_until_complete(opc.run()), daemon=True)
    forwarder = fwd = None
    if plant is not None:
        tags = TagMap({n.tag: TagBinding("B-1", f"{HEAT}/temperature", "Cel") for n in nodes})
        forwarder = Forwarder(spool, plant.engine, tags, source=plant.ot, batch_size=FORWARD_BATCH)
        fwd = threading.Thread(target=forwarder.run, kwargs={"interval": 0.2}, daemon=True)
        before = ebr_count(plant.engine, prefix)
    if own_process:
        opc.start()
    else:
        thread.start()
    if fwd:
        fwd.start()

    def received() -> int:
        return int(opc.counts["received"])

    def settle() -> None:  # the eBR stage ends when the record holds every value
        if forwarder is not None:
            deadline = time.monotonic() + 300
            while forwarder.counts["recorded"] < received() and time.monotonic() < deadline:
                time.sleep(0.05)

    def counter() -> int:
        return int(forwarder.counts["recorded"]) if forwarder else received()

    snapshots: list[dict[str, float]] = []

    def ingest_cpu() -> float:
        opc.counts  # noqa: B018 (reads the process's reports)
        snapshots.append(thread_cpu(opc._process.pid))
        return float(opc.cpu)

    result = measure(
        source,
        seconds,
        counter,
        len(nodes),
        settle,
        None if own_process else profile,
        ingest_cpu if own_process else None,
    )
    if own_process:
        result["ingest_us"] = result["other_us"]
        if len(snapshots) >= 2 and snapshots[0]:
            total = max(1, int(counter()))
            result["threads"] = {  # type: ignore[assignment]
                k: (snapshots[-1].get(k, 0.0) - snapshots[0].get(k, 0.0)) / total * 1e6
                for k in snapshots[-1]
            }
        opc.stop()
        if profile is not None:
            print("\ningest process, whole life (start-up included), by own CPU time:")
            pstats.Stats(options["profile"]).sort_stats("tottime").print_stats(30)
        result["queue"] = queue_size or monitored_queue_size(publishing_ms, 50)
    else:
        loop.call_soon_threadsafe(opc.stop)
        thread.join(60)
        result["queue"] = min(opc.revised_queue_sizes.values(), default=0)
    counts = opc.counts
    result["overflows"] = counts["queue_overflow"]
    result["publishes"] = counts["publishes"]
    result["commits"] = counts["commits"]
    if forwarder is not None and fwd is not None:
        forwarder.stop()
        fwd.join()
        forwarder.forward_once()
        rows = ebr_count(plant.engine, prefix) - before
        if rows != counts["received"]:  # every value is in the record
            raise SystemExit(
                f"OPC UA → eBR: {rows} of {counts['received']} recorded "
                f"(forwarder {dict(forwarder.counts)}, source {dict(counts)})"
            )
    spool.close()
    return result


# --------------------------------------------------------------------------- main


def main() -> None:
    from ebr_support import HEAT, make_plant

    from gxpmes.testing.plant import Clock

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20_000, help="changes/s written")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--publishing-ms", type=float, default=100.0)
    parser.add_argument("--queue-size", type=int, default=None)
    parser.add_argument(
        "--server",
        type=int,
        default=2,
        choices=(0, 1, 2),
        help="the measured stages' server: 0 stock, 1 no deepcopy, 2 lean (default)",
    )
    parser.add_argument("--skip", default="", help="capacity,plain,handler,spool,ebr,process")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the gxpmes stages (the ingest process its own)",
    )
    args = parser.parse_args()
    queue = args.queue_size or monitored_queue_size(args.publishing_ms, 50)
    workdir = Path(tempfile.mkdtemp(prefix="gxpmes-bench-opcua-"))
    skip = set(args.skip.split(","))
    print(
        f"load average {os.getloadavg()[0]:.1f} (2 cores); {args.nodes:,} nodes, "
        f"{args.rate:,.0f} changes/s offered ({args.rate / args.nodes:.0f} per node per s), "
        f"publishing interval {args.publishing_ms:.0f} ms, queue size {queue}, "
        f"{args.seconds:.0f} s per stage"
    )
    line = "  {:<36} {:>8,.0f} values/s  {:>5.1f} µs CPU/value  lost {:>6,.0f} of {:>7,.0f}{}"

    if "capacity" not in skip:
        print("\nsource capacity (writing as fast as it can, one counting subscriber):")
        for patched, name in (
            (0, "stock asyncua server"),
            (1, "no deepcopy"),
            (2, "bench source (lean write, encoding)"),
        ):
            server = Source(args.nodes, 0, patched)
            try:
                r = plain_stage(server, min(args.seconds, 5), queue, args.publishing_ms, False)
            finally:
                server.close()
            print(
                f"  {name:<36} {r['offered']:>8,.0f} changes/s written, "
                f"{r['server_us']:.1f} µs server CPU/change; received {r['rate']:,.0f}/s"
            )

    class WallClock(Clock):
        # Real time: capture refuses values stamped ahead of the server's clock.
        def __call__(self) -> datetime:
            return datetime.now(UTC)

    server = Source(args.nodes, args.rate, args.server)
    results: dict[str, dict[str, float]] = {}
    profile = cProfile.Profile() if args.profile else None
    try:
        if "plain" not in skip:
            results["asyncua alone (values decoded)"] = plain_stage(
                server, args.seconds, queue, args.publishing_ms, False
            )
        if "handler" not in skip:
            results["asyncua handler API (task/value)"] = plain_stage(
                server, args.seconds, queue, args.publishing_ms, True
            )
        if "spool" not in skip:
            results["gxpmes → durable spool"] = gxpmes_stage(
                server, args.seconds, workdir, args.publishing_ms, args.queue_size, None, profile
            )
        plant = None
        if "ebr" not in skip or "process" not in skip:
            plant = make_plant(str(workdir / "mes.db"), clock=WallClock())
            plant.start_batch("B-1", phases=(HEAT,))
        if "ebr" not in skip:
            results["gxpmes → durable eBR, one process"] = gxpmes_stage(
                server, args.seconds, workdir, args.publishing_ms, args.queue_size, plant, profile
            )
        if "process" not in skip:
            results["gxpmes → eBR, ingest process"] = gxpmes_stage(
                server,
                args.seconds,
                workdir,
                args.publishing_ms,
                args.queue_size,
                plant,
                profile,
                True,
            )
    finally:
        server.close()
    print(f"\none subscription, {args.rate:,.0f} changes/s offered:")
    base = results.get("asyncua alone (values decoded)")
    for name, r in results.items():
        extra = f"  ratio {r['rate'] / base['rate']:.2f}x" if base and r is not base else ""
        if "overflows" in r:
            extra += f", {r['overflows']:.0f} overflow reports, queue {r['queue']:.0f}"
        if "ingest_us" in r:
            extra += f", + ingest process {r['ingest_us']:.1f} µs CPU/value"
        print(line.format(name, r["rate"], r["cpu_us"], r["lost"], r["written"], extra))
        if r.get("threads"):
            parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["threads"].items()))  # type: ignore[attr-defined]
            print(f"  {'':<36} ingest process µs CPU/value by thread: {parts}")
        print(
            f"  {'':<36} server wrote {r['offered']:,.0f}/s ({r['server_us']:.1f} µs CPU/change); "
            f"all of it in {r['written'] / max(1, r['drained']):.1f} s → {r['drained']:,.0f}/s"
        )
    if profile and not {"spool", "ebr"} <= skip:
        print("\nthis process, stages 4-5, by own CPU time:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
