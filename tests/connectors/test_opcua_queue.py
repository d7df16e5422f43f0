"""OPC UA monitored-item queues against asyncua's own server: every change between two
publish responses is recorded, and what the server discards is reported, never silent."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from broker_support import AppCert, make_app_cert
from hypothesis import given
from hypothesis import strategies as st
from waiting import DEADLINE, until

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding
from gxpmes.connectors.opcua import (
    MAX_QUEUE_SIZE,
    OpcUaNode,
    OpcUaSecurity,
    OpcUaSource,
    granted_values,
    has_overflow,
    monitored_queue_size,
    quality_of,
    sampling_coarser,
)
from gxpmes.errors import ConfigurationError

BATCH = "B-OT-1"
HEAT = "GRAN/UP-GRAN/OP-WET/PH-HEAT"
TAG = "GRAN01/TT-101"
OVERFLOW_GOOD = 0x0000_0480  # Good, InfoType DataValue, Overflow bit
SERVER_URI = "urn:gxpmes:test:opcua-server"
CLIENT_URI = "urn:gxpmes:test:connector"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(port: int, certs: dict[str, AppCert] | None = None) -> tuple[Server, Any]:
    """asyncua's server with one variable; Basic256Sha256 only, the client's
    certificate trusted, when ``certs`` are given."""
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/gxpmes/")
    if certs is not None:
        await server.set_application_uri(SERVER_URI)
        server.set_security_policy(
            [
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Basic256Sha256_Sign,
            ]
        )
        await server.load_certificate(str(certs["server"].cert))
        await server.load_private_key(str(certs["server"].key))

        async def only_trusted(certificate: Any, _app: Any) -> None:
            from asyncua.crypto import uacrypto

            if uacrypto.der_from_x509(certificate) != certs["client"].der:
                raise ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUntrusted)

        server.set_certificate_validator(only_trusted)
    index = await server.register_namespace("urn:gxpmes:test")
    plant = await server.nodes.objects.add_object(index, "GRAN01")
    variable = await plant.add_variable(ua.NodeId("GRAN01.TT101", index), "TT101", 20.0)
    await variable.set_writable()
    await server.start()
    return server, variable


@pytest.fixture
def opc_certs(tmp_path: Path) -> dict[str, AppCert]:
    folder = tmp_path / "opc"
    return {
        "server": make_app_cert(folder, "server", SERVER_URI),
        "client": make_app_cert(folder, "client", CLIENT_URI),
    }


def opc_security(certs: dict[str, AppCert], mode: str) -> OpcUaSecurity:
    return OpcUaSecurity(
        policy="Basic256Sha256",
        mode=mode,
        certificate=certs["client"].cert,
        private_key=certs["client"].key,
        server_certificate=certs["server"].cert,
        application_uri=CLIENT_URI,
    )


# ------------------------------------------------------------------ settings


@given(
    publishing=st.floats(min_value=1, max_value=3_600_000),
    sampling=st.floats(min_value=0, max_value=3_600_000),
)
def test_the_default_queue_holds_a_publishing_interval_of_samples(
    publishing: float, sampling: float
) -> None:
    size = monitored_queue_size(publishing, sampling)
    assert 2 <= size <= MAX_QUEUE_SIZE
    per_cycle = math.ceil(publishing / max(sampling, 1.0))
    assert size >= min(MAX_QUEUE_SIZE, per_cycle)  # never fewer than one cycle's samples
    assert size == max(2, min(MAX_QUEUE_SIZE, per_cycle * 10))


def test_queue_settings_are_checked(spool) -> None:  # type: ignore[no-untyped-def]
    node = [OpcUaNode("ns=2;s=X", TAG)]
    assert OpcUaSource(spool, "opc.tcp://x/", node).queue_size == 20  # 100 ms / 50 ms, x10
    for bad in (0, -1, MAX_QUEUE_SIZE + 1):
        with pytest.raises(ConfigurationError, match="queue_size"):
            OpcUaSource(spool, "opc.tcp://x/", node, queue_size=bad)
    with pytest.raises(ConfigurationError, match="publishing interval"):
        OpcUaSource(spool, "opc.tcp://x/", node, publishing_interval_ms=0)
    with pytest.raises(ConfigurationError, match="node id"):
        OpcUaSource(spool, "opc.tcp://x/", [OpcUaNode("ns=2;x=?", TAG)])
    with pytest.raises(ConfigurationError, match="not a tag"):
        OpcUaSource(spool, "opc.tcp://x/", [OpcUaNode("ns=2;s=X", "")])


def test_overflow_bit_and_quality() -> None:
    assert has_overflow(ua.StatusCode(OVERFLOW_GOOD))
    assert has_overflow(0x4000_0480)  # Uncertain with overflow
    assert not has_overflow(0x0000_0080)  # bit 7 without InfoType DataValue means nothing
    assert not has_overflow(ua.StatusCode(ua.StatusCodes.Good))
    assert quality_of(OVERFLOW_GOOD) == "Good"  # the value itself is good
    assert quality_of(0x4000_0480) == "Uncertain"
    assert quality_of(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) == "Bad"


def test_a_gap_in_publish_sequence_numbers_is_a_dead_letter(spool) -> None:  # type: ignore[no-untyped-def]
    source = OpcUaSource(spool, "opc.tcp://x/", [OpcUaNode("ns=2;s=X", TAG)])
    source._queues = {1: source.queue_size}
    deliveries: list[Any] = []
    source._submit = deliveries.append  # type: ignore[method-assign]
    now = datetime.now(UTC)

    def message(sequence: int) -> Any:
        item = ua.MonitoredItemNotification(
            ClientHandle=1,
            Value=ua.DataValue(
                ua.Variant(70.0 + sequence, ua.VariantType.Double), SourceTimestamp=now
            ),
        )
        return ua.NotificationMessage(
            SequenceNumber=sequence,
            NotificationData=[ua.DataChangeNotification(MonitoredItems=[item])],
        )

    for sequence in (1, 2, 5, 6):
        source._on_publish(message(sequence))
    letters = [letter for d in deliveries for letter in d.letters]
    assert [(x.reason, x.tag) for x in letters] == [("sequence_gap", None)]
    assert "3..4" in letters[0].detail
    assert [str(r.value) for d in deliveries for r in d.readings] == [
        "71.0",
        "72.0",
        "75.0",
        "76.0",
    ]
    assert source.counts["sequence_gap"] == 1


# ------------------------------------------------------------------ against a server


async def burst(variable: Any, count: int, start: float = 70.5, status: int = 0) -> list[str]:
    """``count`` changes in one go (no await yields to the server's publishing loop)."""
    now = datetime.now(UTC)
    values = []
    for i in range(count):
        value = start + i / 100
        await variable.write_value(
            ua.DataValue(
                ua.Variant(value, ua.VariantType.Double),
                StatusCode=ua.StatusCode(status),
                SourceTimestamp=now + timedelta(milliseconds=i),
            )
        )
        values.append(str(value))
    return values


async def run_burst(
    spool: Any,
    count: int,
    *,
    queue_size: int | None = None,
    status: int = 0,
    security: OpcUaSecurity | None = None,
    certs: dict[str, Any] | None = None,
) -> tuple[OpcUaSource, list[str]]:
    """A server, a source subscribed to one variable, ``count`` changes between two
    publish responses; returns the source once everything notified is spooled."""
    port = free_port()
    server, variable = await start_server(port, certs)
    source = OpcUaSource(
        spool,
        f"opc.tcp://127.0.0.1:{port}/gxpmes/",
        [OpcUaNode(variable.nodeid.to_string(), TAG)],
        publishing_interval_ms=500,
        queue_size=queue_size,
        security=security,
    )
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.connected.wait(), DEADLINE)
        await until(lambda: source.counts["received"] >= 1)  # the initial value
        publishes = source.counts["publishes"]
        written = await burst(variable, count, status=status)
        await until(lambda: source.counts["publishes"] > publishes)
        await asyncio.sleep(1.2)  # two more publishing intervals: nothing else is coming
    finally:
        source.stop()
        await asyncio.wait_for(task, DEADLINE)
        await server.stop()
    return source, written


def spooled(spool: Any) -> list[str]:
    return [str(r.value) for _i, r in spool.peek(1000)]


def test_every_change_between_two_publish_responses_is_recorded(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    tags.bind(TAG, TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))
    source, written = asyncio.run(run_burst(spool, 30))
    assert source.queue_size == 100  # 500 ms / 50 ms sampling, ten intervals of headroom
    assert set(source.revised_queue_sizes.values()) == {100}
    assert spooled(spool)[1:] == written  # after the initial value, all 30, in order
    assert source.counts["queue_overflow"] == 0
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    recorded = [v["value"] for v in running.engine.values(BATCH)]
    assert recorded[1:] == written


def test_queue_size_1_keeps_only_the_latest_value(spool) -> None:  # type: ignore[no-untyped-def]
    # What a queue of 1 (the OPC UA default for 0 or 1) does: the reason the connector
    # never asks for it by default. Nothing can be detected: the server sets no bit.
    source, written = asyncio.run(run_burst(spool, 30, queue_size=1))
    assert spooled(spool)[1:] == written[-1:]
    assert source.counts["queue_overflow"] == 0


def overflow_is_reported(running, tags, spool, source: OpcUaSource) -> None:  # type: ignore[no-untyped-def]
    from gxpmes.connectors.rejects import rejects_by_reason

    assert source.counts["queue_overflow"] == 1
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert rejects_by_reason(running.db) == {"queue_overflow": 1}
    kinds = [i.kind for i in running.engine.review_by_exception(BATCH)]
    assert "exception:data_quality" in kinds


def test_a_full_queue_is_a_data_quality_exception(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    # asyncua's server drops the oldest values of a full queue without the Overflow
    # bit: a publish response carrying as many values as the queue holds is reported.
    tags.bind(TAG, TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))
    source, written = asyncio.run(run_burst(spool, 12, queue_size=4))
    assert spooled(spool)[1:] == written[-4:]  # 8 discarded by the server
    overflow_is_reported(running, tags, spool, source)


def test_without_the_full_queue_check_the_loss_is_silent(spool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Remove the control: the same scenario then reports nothing.
    monkeypatch.setattr(OpcUaSource, "_overflows", lambda *args: None)
    source, written = asyncio.run(run_burst(spool, 12, queue_size=4))
    assert spooled(spool)[1:] == written[-4:]
    assert source.counts["queue_overflow"] == 0 and spool.rejected_count() == 0


@pytest.mark.parametrize("mode", [None, "SignAndEncrypt"])
def test_a_server_flagged_overflow_is_a_data_quality_exception(
    running, tags, spool, opc_certs, mode: str | None
) -> None:  # type: ignore[no-untyped-def]
    # A server that follows Part 4 sets the Overflow bit on the value after the gap;
    # the value is recorded (its quality is Good) and the loss reported.
    tags.bind(TAG, TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))
    secure = {} if mode is None else {"security": opc_security(opc_certs, mode), "certs": opc_certs}
    source, written = asyncio.run(run_burst(spool, 1, status=OVERFLOW_GOOD, **secure))
    assert spooled(spool)[1:] == written
    overflow_is_reported(running, tags, spool, source)
    value = [v for v in running.engine.values(BATCH) if v["value"] == written[0]]
    assert value and value[0]["quality"] == "Good"


# ------------------------------------------------------------------ what the server granted


def server_samples(monkeypatch: pytest.MonkeyPatch, grant: Callable[[float], float]) -> None:
    """asyncua's server (in this test process only) grants ``grant(requested)`` as each
    monitored item's sampling interval. asyncua itself grants the publishing interval
    whatever was asked; a plant server grants what its scan classes allow."""
    from asyncua.server.monitored_item_service import MonitoredItemService

    common = MonitoredItemService._make_monitored_item_common

    def revised(self: Any, params: Any) -> Any:
        result, mdata = common(self, params)
        result.RevisedSamplingInterval = grant(params.RequestedParameters.SamplingInterval)
        return result, mdata

    monkeypatch.setattr(MonitoredItemService, "_make_monitored_item_common", revised)


async def subscribe_all(
    spool: Any, sampling_interval_ms: float, max_queue: int | None = None, count: int = 1
) -> tuple[OpcUaSource, list[str]]:
    """A source subscribed to ``count`` variables of a server (publishing every 100 ms,
    default queue of 10), stopped once subscribed; returns it and the node ids."""
    port = free_port()
    server, variable = await start_server(port)
    if max_queue is not None:
        server.iserver.max_monitored_item_queue_size = max_queue
    index = variable.nodeid.NamespaceIndex
    variables = [variable]
    for number in range(102, 101 + count):
        name = f"TT{number}"
        node = ua.NodeId(f"GRAN01.{name}", index)
        variables.append(await server.nodes.objects.add_variable(node, name, 20.0))
    node_ids = [v.nodeid.to_string() for v in variables]
    source = OpcUaSource(
        spool,
        f"opc.tcp://127.0.0.1:{port}/gxpmes/",
        [OpcUaNode(node_id, f"{TAG}-{i}") for i, node_id in enumerate(node_ids)],
        publishing_interval_ms=100,
        sampling_interval_ms=sampling_interval_ms,
    )
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.connected.wait(), DEADLINE)
    finally:
        source.stop()
        await asyncio.wait_for(task, DEADLINE)
        await server.stop()
    return source, node_ids


async def subscribe(
    spool: Any, sampling_interval_ms: float, max_queue: int | None = None
) -> tuple[OpcUaSource, str]:
    """:func:`subscribe_all` to the server's one variable; returns its node id."""
    source, (node_id,) = await subscribe_all(spool, sampling_interval_ms, max_queue)
    return source, node_id


@pytest.mark.parametrize(
    ("requested", "granted", "coarser"),
    [
        (100, 1000, True),  # a server that samples no faster than 1 s
        (100, 100.5, True),
        (100, 100, False),
        (100, 50, False),  # faster: more values, not fewer
        (0, 1000, False),  # 0 asks for the server's fastest: whatever it grants is that
        (0, 0, False),
    ],
)
def test_sampling_is_coarser_only_when_granted_slower_than_requested(
    requested: float, granted: float, coarser: bool
) -> None:
    assert sampling_coarser(requested, granted) is coarser


def revision_warnings(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and what in r.getMessage()
    ]


def test_revised_sampling_and_queue_are_kept_counted_and_logged(spool, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    # A server that samples no faster than 1 s (2 s for every other item) and keeps at
    # most 5 values per item, asked for 100 ms and a queue of 10 for 7 nodes.
    slow = iter([1000.0, 2000.0] * 4)
    server_samples(monkeypatch, lambda requested: max(requested, next(slow)))
    with caplog.at_level(logging.WARNING, logger="gxpmes.connectors.opcua"):
        source, node_ids = asyncio.run(subscribe_all(spool, 100, max_queue=5, count=7))
    assert source.queue_size == 10
    # Kept per node and counted per node ...
    assert source.revised_sampling_intervals == {
        node_id: 1000.0 if i % 2 == 0 else 2000.0 for i, node_id in enumerate(node_ids)
    }
    assert source.revised_queue_sizes == dict.fromkeys(node_ids, 5)
    assert source.counts["sampling_revised"] == 7
    assert source.counts["queue_revised"] == 7
    # ... logged once per subscription and kind: counts, requested, granted, first nodes.
    (sampling,) = revision_warnings(caplog, "sampling interval")
    assert "sampling interval coarser than requested for 7 of 7 monitored item(s)" in sampling
    assert "100 ms requested, 1000, 2000 ms granted" in sampling
    assert "fewer values than configured" in sampling
    assert all(node_id in sampling for node_id in node_ids[:5]) and ", ...)" in sampling
    assert node_ids[5] not in sampling and node_ids[6] not in sampling
    (queue,) = revision_warnings(caplog, "queue size")
    assert "queue size smaller than requested for 7 of 7 monitored item(s)" in queue
    assert "10 requested, 5 granted" in queue and node_ids[0] in queue
    # Reported as counts and the log, no dead letter (the values recorded are the
    # server's samples; docs/connectors.md says why).
    assert spool.rejected_count() == 0


def test_one_revised_node_is_named_without_an_ellipsis(spool, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    server_samples(monkeypatch, lambda requested: max(requested, 1000.0))
    with caplog.at_level(logging.WARNING, logger="gxpmes.connectors.opcua"):
        source, node_id = asyncio.run(subscribe(spool, 100))
    assert source.counts["sampling_revised"] == 1 and source.counts["queue_revised"] == 0
    (sampling,) = revision_warnings(caplog, "sampling interval")
    assert "for 1 of 1 monitored item(s): 100 ms requested, 1000 ms granted" in sampling
    assert f"({node_id}):" in sampling
    assert not revision_warnings(caplog, "queue size")


@pytest.mark.parametrize(
    ("values", "unit", "text"),
    [
        ([5, 5, 5], "", "5"),
        ([2000.0, 1000.0, 1000.0], " ms", "1000, 2000 ms"),
        ([250.5, 500, 1000, 4000, 1000], " ms", "250.5..4000 ms (4 distinct)"),
    ],
)
def test_granted_values_are_named_distinct_or_as_a_range(
    values: list[float], unit: str, text: str
) -> None:
    assert granted_values(values, unit) == text


@pytest.mark.parametrize(
    ("requested", "grant", "granted"),
    [
        (100, lambda r: r / 2, 50.0),  # faster than asked: harmless
        (100, lambda r: r, 100.0),
        (0, lambda r: max(r, 1000.0), 1000.0),  # the fastest asked for, the fastest granted
    ],
)
def test_sampling_granted_as_fast_as_requested_is_kept_not_counted(
    spool, monkeypatch, caplog, requested: float, grant: Callable[[float], float], granted: float
) -> None:  # type: ignore[no-untyped-def]
    server_samples(monkeypatch, grant)
    with caplog.at_level(logging.WARNING, logger="gxpmes.connectors.opcua"):
        source, node_id = asyncio.run(subscribe(spool, requested))
    assert source.revised_sampling_intervals == {node_id: granted}
    assert source.counts["sampling_revised"] == 0 and source.counts["queue_revised"] == 0
    assert not any("than requested" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ gxpmes connect


def test_connect_runs_opcua_in_its_own_process(running, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    from gxpmes.connectors.runner import Connector

    port = free_port()
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    async def serve() -> None:
        started["server"], started["variable"] = await start_server(port)
        ready.set()
        await started.setdefault("stop", asyncio.Event()).wait()
        await started["server"].stop()

    # The server (this process) samples no faster than 1 s; the connector asks for 50 ms.
    server_samples(monkeypatch, lambda requested: max(requested, 1000.0))
    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(DEADLINE)
    config = {
        "spool": "spool.db",
        "tags": [{"tag": TAG, "batch": BATCH, "parameter": f"{HEAT}/temperature", "unit": "Cel"}],
        "opcua": {
            "endpoint": f"opc.tcp://127.0.0.1:{port}/gxpmes/",
            "publishing_interval_ms": 500,
            "queue_size": 50,
            "report_interval": 0.1,
            "nodes": [{"node_id": started["variable"].nodeid.to_string(), "tag": TAG}],
        },
    }
    connector = Connector(config, running.engine, tmp_path)
    try:
        connector.start()
        source = connector.sources[0]
        assert type(source).__name__ == "OpcUaProcess"  # own_process is the default
        wait = asyncio.run_coroutine_threadsafe
        deadline = datetime.now(UTC) + timedelta(seconds=DEADLINE)
        while connector.counts()["received"] < 1 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.1)  # the initial value, spooled by the other process
        written = wait(burst(started["variable"], 30), loop).result(DEADLINE)
        while connector.counts()["recorded"] < 31 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.1)
        source.counts  # noqa: B018 (reads the process's latest report)
        assert source._last["gc_frozen"] > 0  # subscribed: settled (settle_gc)
        status = connector.status()
        line, _ = connector.status_line(0, 1.0)
    finally:
        connector.stop()
        connector.close()
        loop.call_soon_threadsafe(started["stop"].set)
        thread.join(DEADLINE)
    recorded = [v["value"] for v in running.engine.values(BATCH)]
    assert recorded[1:] == written
    assert connector.counts()["queue_overflow"] == 0
    # What the server revised reaches the runner's counts from the ingest process.
    assert connector.counts()["sampling_revised"] == 1
    assert connector.counts()["queue_revised"] == 0
    # ... and its status line, where an automation engineer sees it outside the log.
    assert (status.sampling_revised, status.queue_revised) == (1, 0)
    assert status.warnings() == [
        "1 OPC UA sampling revision(s): the server samples monitored items more coarsely "
        "than requested, fewer values are recorded than configured (see the log)"
    ]
    assert "; WARNING: 1 OPC UA sampling revision(s)" in line
    assert "queue revision" not in line


def test_settle_gc_freezes_and_raises_the_thresholds() -> None:
    import gc

    from gxpmes.connectors.opcua import INGEST_GC_THRESHOLD, settle_gc

    before = gc.get_threshold()
    try:
        assert settle_gc() == gc.get_freeze_count() > 0
        assert gc.get_threshold() == INGEST_GC_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_status_warns_of_queue_overflows() -> None:
    from gxpmes.connectors.runner import Status

    line = Status(10, 0, 0.0, 10, 0, {"queue_overflow": 3}, {}, 0, 0, 0).line(1.0)
    assert "3 rejected (queue_overflow 3)" in line
    assert "WARNING: 3 OPC UA queue overflow(s)" in line


def test_status_warns_of_what_the_server_revised() -> None:
    from gxpmes.connectors.runner import Status

    quiet = Status(10, 0, 0.0, 10, 0, {}, {}, 0, 0, 0)
    assert quiet.warnings() == [] and "WARNING" not in quiet.line(1.0)
    revised = Status(10, 0, 0.0, 10, 0, {}, {}, 0, 0, 0, queue_revised=7, sampling_revised=1000)
    queue, sampling = revised.warnings()
    assert queue.startswith("7 OPC UA queue revision(s)") and "smaller queue" in queue
    assert sampling.startswith("1000 OPC UA sampling revision(s)") and "fewer values" in sampling
    line = revised.line(1.0)
    assert line.count("WARNING") == 2 and f"; WARNING: {queue}" in line
    assert f"; WARNING: {sampling}" in line
    assert "0 rejected, 0 errors" in line  # a revision is no dead letter, no error


def test_a_lost_subscription_is_a_gap_in_the_record(running, tags, spool) -> None:  # type: ignore[no-untyped-def]
    from gxpmes.connectors.rejects import rejects_by_reason

    tags.bind(TAG, TagBinding(BATCH, f"{HEAT}/temperature", "Cel"))

    async def scenario() -> OpcUaSource:
        port = free_port()
        server, variable = await start_server(port)
        source = OpcUaSource(
            spool,
            f"opc.tcp://127.0.0.1:{port}/gxpmes/",
            [OpcUaNode(variable.nodeid.to_string(), TAG)],
            publishing_interval_ms=50,
        )
        task = asyncio.create_task(source.run())
        try:
            await asyncio.wait_for(source.connected.wait(), DEADLINE)
            assert source.counts["connection_gap"] == 0  # a first connection is no gap
            await server.stop()
            await until(lambda: not source.connected.is_set())
            server, variable = await start_server(port)
            await asyncio.wait_for(source.connected.wait(), DEADLINE)
        finally:
            source.stop()
            await asyncio.wait_for(task, DEADLINE)
            await server.stop()
        return source

    source = asyncio.run(scenario())
    assert source.counts["connection_gap"] == 1
    Forwarder(spool, running.engine, tags, source=running.ot).forward_once()
    assert rejects_by_reason(running.db) == {"connection_gap": 1}
    details = [i.detail for i in running.engine.review_by_exception(BATCH)]
    assert any("connection_gap" in d and "not recorded" in d for d in details)


# ------------------------------------------------------------------ any value shape

_VARIANTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda v: ua.Variant(v, ua.VariantType.Double)
    ),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int32)),
    st.integers(0, 2**64 - 1).map(lambda v: ua.Variant(v, ua.VariantType.UInt64)),
    st.booleans().map(lambda v: ua.Variant(v, ua.VariantType.Boolean)),
    st.text(max_size=80).map(lambda v: ua.Variant(v, ua.VariantType.String)),
    st.lists(st.floats(allow_nan=False), max_size=3).map(
        lambda v: ua.Variant(v, ua.VariantType.Double, is_array=True)
    ),
    st.just(ua.Variant(None, ua.VariantType.Null)),
    st.none(),
)
_TIMES = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1601, 1, 2), max_value=datetime(9999, 12, 30)),
    st.datetimes(
        min_value=datetime(1601, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
)
_ITEMS = st.builds(
    lambda handle, variant, status, source, server: ua.MonitoredItemNotification(
        ClientHandle=handle,
        Value=ua.DataValue(
            variant,
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=source,
            ServerTimestamp=server,
        ),
    ),
    st.integers(0, 4),
    _VARIANTS,
    st.sampled_from([0, OVERFLOW_GOOD, 0x4000_0000, 0x8000_0000, 0x8000_0480, 0xFFFF_FFFF]),
    _TIMES,
    _TIMES,
)


@given(st.lists(_ITEMS, max_size=12))
def test_any_publish_response_is_spooled_or_refused_value_by_value(items: list[Any]) -> None:
    import tempfile

    from gxpmes.connectors.spool import Spool

    with tempfile.TemporaryDirectory() as folder:
        spool = Spool(Path(folder) / "spool.db")
        nodes = [OpcUaNode(f"ns=2;s=N{i}", f"OPC/N{i}") for i in range(3)]  # handles 1..3
        source = OpcUaSource(spool, "opc.tcp://x/", nodes, queue_size=5)
        source._queues = {h: 5 for h in range(1, 4)}
        deliveries: list[Any] = []
        source._submit = deliveries.append  # type: ignore[method-assign]
        message = ua.NotificationMessage(
            SequenceNumber=1, NotificationData=[ua.DataChangeNotification(MonitoredItems=items)]
        )
        source._on_publish(message)  # never raises
        readings = [r for d in deliveries for r in d.readings]
        refused = [x for d in deliveries for x in d.letters if x.reason != "queue_overflow"]
        known = [i for i in items if 1 <= i.ClientHandle <= 3]
        assert len(readings) + len(refused) == len(known)  # one outcome per value
        assert source.counts["unknown_handle"] == len(items) - len(known)
        for reading in readings:
            assert reading.source_ts.utcoffset() is not None
            assert reading.value.is_finite() and reading.quality in ("Good", "Uncertain", "Bad")
        if deliveries:
            spool.put_many([(d.readings, d.letters, d.state) for d in deliveries])  # storable
        spool.close()
