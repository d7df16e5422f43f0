"""OPC UA source (asyncua): subscriptions with source/server timestamps and status codes,
reconnecting with back-off and resubscribing after a server restart.

Every publish response is handled as one unit: its data changes become the
readings of one spool delivery (one durable group commit for many responses
under load), without an asyncio task or handler call per value.

No silent loss between the server's sampling and the spool. A monitored item
keeps up to ``queue_size`` samples between publishing cycles (sized by default
from the sampling and publishing intervals, never 1); a value the server still
had to discard is reported as a ``queue_overflow`` dead letter on its tag (a
data-quality exception on its batch): the server says so with the Overflow
info bit of the next value's StatusCode (OPC UA Part 4, StatusCode InfoBits),
and a server that does not set that bit is caught by a full queue in one
publish response (``queue_full``). A gap in the publish sequence numbers is a
``sequence_gap`` dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from gxpmes.connectors.groupcommit import Delivery, GroupCommit
from gxpmes.connectors.ingestprocess import IngestProcess, die_with_parent, send_report
from gxpmes.connectors.model import (
    EARLIEST,
    FUTURE_TOLERANCE,
    DeadLetter,
    DecodeError,
    Problem,
    Reading,
    check_reading,
    check_tag,
    new_reading,
    safe_text,
    to_decimal,
)
from gxpmes.connectors.mqtt import read_secret
from gxpmes.connectors.spool import Spool
from gxpmes.errors import ConfigurationError

__all__ = [
    "INGEST_GC_THRESHOLD",
    "OpcUaNode",
    "OpcUaProcess",
    "OpcUaSecurity",
    "OpcUaSource",
    "granted_values",
    "has_overflow",
    "ingest_process_main",
    "monitored_queue_size",
    "quality_of",
    "sampling_coarser",
    "settle_gc",
    "source_from_config",
]

log = logging.getLogger("gxpmes.connectors.opcua")


@dataclass(frozen=True)
class OpcUaNode:
    """A subscribed node and the tag its values carry."""

    node_id: str
    tag: str


@dataclass(frozen=True)
class OpcUaSecurity:
    """Secure channel and user authentication of the OPC UA session.

    ``policy`` ``Basic256Sha256`` with ``mode`` ``Sign`` or ``SignAndEncrypt``
    needs the connector's application instance certificate and key, and the
    server's certificate: the server is verified against that pinned
    certificate, never trusted on first use. ``application_uri`` must be the
    URI in the client certificate's subjectAltName. A user name and password
    are sent only over a secured channel unless ``allow_plain_password``.
    """

    policy: str = "None"
    mode: str = "SignAndEncrypt"
    certificate: Path | None = None
    private_key: Path | None = None
    private_key_password: str | None = None
    server_certificate: Path | None = None
    application_uri: str | None = None
    username: str | None = None
    password: str | None = None
    allow_plain_password: bool = False

    def check(self) -> None:
        """Refuse incomplete or unsafe settings before connecting."""
        if self.policy not in ("None", "Basic256Sha256"):
            raise ConfigurationError(
                f"OPC UA security policy {self.policy!r}: use 'Basic256Sha256' (or 'None')"
            )
        if self.policy != "None":
            if self.mode not in ("Sign", "SignAndEncrypt"):
                raise ConfigurationError(f"OPC UA mode {self.mode!r}: use Sign or SignAndEncrypt")
            missing = [
                name
                for name in ("certificate", "private_key", "server_certificate")
                if getattr(self, name) is None
            ]
            if missing:
                raise ConfigurationError(
                    f"OPC UA {self.policy} needs {', '.join(missing)} (the server certificate "
                    "is pinned: a server is never trusted on first use)"
                )
        elif self.username is not None and self.password and not self.allow_plain_password:
            raise ConfigurationError(
                "refusing to send an OPC UA password over an unsecured channel (set a security "
                "policy, or allow_plain_password = true on a trusted network)"
            )

    async def apply(self, client: Any) -> None:
        """Configure an asyncua client (before connecting)."""
        from asyncua import ua
        from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

        self.check()
        if self.application_uri:
            client.application_uri = self.application_uri
        if self.policy == "Basic256Sha256":
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                str(self.certificate),
                str(self.private_key),
                self.private_key_password,
                str(self.server_certificate),
                getattr(ua.MessageSecurityMode, self.mode),
            )
        if self.username is not None:
            client.set_user(self.username)
            if self.password is not None:
                client.set_password(self.password)


_QUALITY = ("Good", "Uncertain", "Bad", "Bad")

# StatusCode bits 10-11 are the InfoType (01: DataValue); with it, bit 7 is Overflow:
# the monitored item's queue overflowed and values were discarded (Part 4, StatusCode).
_INFO_TYPE_MASK = 0x0C00
_INFO_TYPE_DATA_VALUE = 0x0400
_OVERFLOW = 0x0080

QUEUE_HEADROOM = 10
"""Publishing intervals a monitored item's queue bridges when the queue size is derived
from the intervals: publish responses may be late (a busy client, a network stall)."""

MAX_QUEUE_SIZE = 10_000


def source_key(stamp: str, tag: str, number: Decimal) -> str:
    """The source key of a value of ``tag`` at source time ``stamp`` (ISO 8601, UTC).

    The time comes first: a call's keys then land near the end of the record's
    key index, where keys that began with the tag went to one page per node
    (docs/connectors.md, "Source keys").
    """
    return f"opcua|{stamp}|{tag}|{number}"


def quality_of(status: Any) -> str:
    """OPC UA StatusCode → Good / Uncertain / Bad (the severity bits 30–31)."""
    value = int(getattr(status, "value", status) or 0)
    return _QUALITY[(value >> 30) & 3]


def has_overflow(status: Any) -> bool:
    """Whether a DataValue's StatusCode says values before it were discarded (Overflow bit)."""
    value = int(getattr(status, "value", status) or 0)
    return value & _INFO_TYPE_MASK == _INFO_TYPE_DATA_VALUE and bool(value & _OVERFLOW)


def _channel_of(client: Any) -> tuple[str, str]:
    """Security policy URI and message security mode an asyncua client connected with."""
    policy = client.security_policy
    return str(policy.URI), str(getattr(policy.Mode, "name", policy.Mode))


def monitored_queue_size(
    publishing_interval_ms: float, sampling_interval_ms: float, headroom: int = QUEUE_HEADROOM
) -> int:
    """Samples a monitored item must hold: one publishing interval's worth of samples,
    ``headroom`` times over (at least 2, at most :data:`MAX_QUEUE_SIZE`).

    A sampling interval of 0 (the server's fastest) is sized as 1 ms.
    """
    if publishing_interval_ms <= 0 or sampling_interval_ms < 0 or headroom < 1:
        raise ConfigurationError(
            "OPC UA publishing interval must be > 0 ms, sampling interval >= 0 ms, headroom >= 1"
        )
    per_cycle = math.ceil(publishing_interval_ms / max(sampling_interval_ms, 1.0))
    return max(2, min(MAX_QUEUE_SIZE, per_cycle * headroom))


def sampling_coarser(requested_ms: float, granted_ms: float) -> bool:
    """Whether a server's revised sampling interval samples more coarsely than requested:
    the record then gets fewer values than configured. A faster grant is not (more
    values; a queue that overflows from them is reported as ``queue_overflow``), nor
    is any grant for a requested 0, which asks for the server's fastest rate."""
    return requested_ms > 0 and granted_ms > requested_ms


def granted_values(values: Iterable[float], unit: str = "") -> str:
    """The values a server granted, for a log line: each distinct one (``500, 1000
    ms``) up to three, else the range (``250..4000 ms (7 distinct)``)."""
    distinct = sorted(set(values))
    if len(distinct) <= 3:
        return ", ".join(f"{v:g}" for v in distinct) + unit
    return f"{distinct[0]:g}..{distinct[-1]:g}{unit} ({len(distinct)} distinct)"


KEEPALIVE_MS = 5000
"""The server sends a keep-alive at least this often when nothing changes; three missed
keep-alives (no publish response at all) count as a lost subscription: resubscribe."""


@functools.cache
def _win_epoch_to_datetime() -> Any:
    from asyncua import ua

    return ua.win_epoch_to_datetime


@functools.cache
def _publish_subscription() -> type:
    """asyncua's Subscription, handing each publish response whole to its source."""
    from asyncua.common.subscription import Subscription

    class PublishSubscription(Subscription):
        def __init__(self, link: Any, params: Any, source: OpcUaSource) -> None:
            super().__init__(link, params, source)
            self._source = source

        async def publish_callback(self, publish_result: Any) -> None:
            # Replaces asyncua's handler dispatch (one asyncio task per value).
            self.last_publish_at = time.monotonic()
            message = publish_result.NotificationMessage
            if message.NotificationData:
                self.last_sequence_number = int(message.SequenceNumber)
            self._source._on_publish(message)

    return PublishSubscription


class OpcUaSource:
    """Subscribes to nodes and spools every sampled change; survives server restarts.

    ``sampling_interval_ms`` is requested for every monitored item; ``queue_size``
    (default :func:`monitored_queue_size` of the two intervals) is how many samples
    the server keeps for an item between publish responses; ``discard_oldest``
    which end it drops if that queue overflows all the same — a loss that is
    reported either way (``queue_overflow``), never silent. A queue size of 1 keeps
    only the latest value per publishing interval: allowed, with a warning.
    """

    def __init__(
        self,
        spool: Spool,
        endpoint: str,
        nodes: list[OpcUaNode],
        *,
        publishing_interval_ms: float = 100,
        sampling_interval_ms: float = 50,
        queue_size: int | None = None,
        discard_oldest: bool = True,
        max_notifications_per_publish: int = 10_000,
        max_backoff: float = 30.0,
        security: OpcUaSecurity | None = None,
        group_commit_values: int = 20_000,
        fast_decode: bool = True,
    ) -> None:
        from asyncua import ua

        self.security = security or OpcUaSecurity()
        self.security.check()
        if queue_size is None:
            queue_size = monitored_queue_size(publishing_interval_ms, sampling_interval_ms)
        else:
            monitored_queue_size(publishing_interval_ms, sampling_interval_ms)  # checks both
        if not 1 <= queue_size <= MAX_QUEUE_SIZE:
            raise ConfigurationError(f"OPC UA queue_size {queue_size}: use 1..{MAX_QUEUE_SIZE}")
        if queue_size == 1:
            log.warning(
                "OPC UA queue size 1: only the latest value per publishing interval is kept, "
                "changes in between are lost without notice"
            )
        if max_notifications_per_publish < 0:
            raise ConfigurationError("max_notifications_per_publish must be >= 0 (0: no limit)")
        self.spool = spool
        self.endpoint = endpoint
        self.nodes = nodes
        self.publishing_interval_ms = publishing_interval_ms
        self.sampling_interval_ms = sampling_interval_ms
        self.queue_size = queue_size
        self.discard_oldest = discard_oldest
        self.max_notifications_per_publish = max_notifications_per_publish
        self.max_backoff = max_backoff
        self.counts: Counter[str] = Counter()
        """``received`` (spooled values), ``duplicates``, ``publishes``, ``connects``,
        ``connection_errors``, ``queue_overflow``, ``sequence_gap``, ``queue_revised`` (items
        whose queue the server made smaller than requested), ``sampling_revised`` (items
        it samples more coarsely than requested), ``not_monitored`` (nodes
        the server refused), ``connection_gap`` (subscriptions renewed after a loss),
        decoding rejects by reason, and the group-commit writer's."""
        self.connected = asyncio.Event()
        self.channel: tuple[str, str] | None = None
        """Security policy URI and message security mode of the current (or last) session,
        as asyncua's client negotiated them, e.g. ``(".../SecurityPolicy#Basic256Sha256",
        "SignAndEncrypt")``; ``None`` before the first connection."""
        self.last_error: str | None = None
        """Why the last connection attempt or session failed: asyncua's status code name
        (e.g. ``BadUserAccessDenied``, ``BadIdentityTokenRejected``,
        ``BadCertificateUntrusted``) or the exception type, and at which stage."""
        self._stopping = asyncio.Event()
        self._node_ids: list[Any] = []
        for node in nodes:
            try:
                check_tag(node.tag)
            except DecodeError as exc:
                raise ConfigurationError(f"OPC UA node {node.node_id!r}: {exc.detail}") from exc
            try:
                self._node_ids.append(ua.NodeId.from_string(node.node_id))
            except Exception as exc:  # asyncua raises several types for a bad string
                raise ConfigurationError(f"OPC UA node id {node.node_id!r}: {exc}") from exc
        # Client handle (1-based index into nodes) → tag, origin, revised queue size.
        self._tags: dict[int, str] = {i: n.tag for i, n in enumerate(nodes, start=1)}
        self._origins: dict[int, str] = {i: f"opcua {n.node_id}" for i, n in enumerate(nodes, 1)}
        self.revised_queue_sizes: dict[str, int] = {}
        """Node id → the queue size the server granted (after subscribing)."""
        self.revised_sampling_intervals: dict[str, float] = {}
        """Node id → the sampling interval (ms) the server granted (after subscribing)."""
        self._queues: dict[int, int] = {}
        self._last_sequence: int | None = None
        self._resubscribe = False
        self._lost_at: datetime | None = None  # when a subscription was lost, until renewed
        self.group_commit_values = group_commit_values
        self.fast_decode = fast_decode
        """Decode publish responses with :mod:`gxpmes.connectors.opcua_decode` (the same
        objects as asyncua's decoder, about half its CPU)."""
        self.writer: GroupCommit | None = None
        """The spool writer (group commit) while :meth:`run` runs."""

    async def run(self) -> None:
        """Connect, subscribe, and reconnect with back-off until :meth:`stop`."""
        from asyncua.client.client import Client

        self.writer = GroupCommit(
            self.spool,
            max_values=self.group_commit_values,
            name="spool-writer-opcua",
            counts=self.counts,
        )
        try:
            await self._run(Client)
        finally:
            # Everything notified so far is spooled before run() returns.
            await asyncio.get_running_loop().run_in_executor(None, self.writer.close)

    async def _run(self, Client: Any) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            # asyncua's watchdog probes the server every interval and gives up on a
            # probe slower than that interval: 1 s (its default) drops busy but healthy
            # sessions on a loaded host, losing the values notified meanwhile.
            client = Client(self.endpoint, timeout=4, watchdog_intervall=5.0)
            subscribed = False
            stage = "connect"
            try:
                await self.security.apply(client)
                await client.connect()
                self.channel = _channel_of(client)
                log.info("OPC UA %s: secure channel %s, mode %s", self.endpoint, *self.channel)
                stage = "subscribe"
                subscription = await self._subscribe(client)
                subscribed = True
                self.connected.set()
                self.counts["connects"] += 1
                self._report_gap()
                backoff = 0.5
                stage = "session"
                silence = 3 * max(KEEPALIVE_MS, self.publishing_interval_ms) / 1000
                while not self._stopping.is_set():
                    await asyncio.wait_for(client.check_connection(), timeout=5)
                    quiet = time.monotonic() - (subscription.last_publish_at or time.monotonic())
                    if quiet > silence or self._resubscribe:
                        raise ConnectionError(
                            f"subscription lost (no publish response for {quiet:.0f} s, "
                            f"or the server reported its end)"
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=1.0)
            except Exception as exc:  # server down, restarted, network error
                self.counts["connection_errors"] += 1
                if subscribed and self._lost_at is None:
                    self._lost_at = datetime.now(UTC)
                self.last_error = self._failure(stage, exc)
                log.warning(
                    "OPC UA %s: %s; reconnecting in %.1f s", self.endpoint, self.last_error, backoff
                )
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):  # already gone
                    await client.disconnect()
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            backoff = min(self.max_backoff, backoff * 2)

    def _failure(self, stage: str, exc: Exception) -> str:
        """``stage: reason`` of a failed connection; asyncua's text names the status code."""
        text = str(exc).strip() or type(exc).__name__
        if stage == "connect" and isinstance(exc, TimeoutError) and self.security.policy != "None":
            # The channel request is encrypted for the pinned certificate: a server holding
            # another key cannot read it and does not answer.
            text += (
                " (no answer to the secure channel request: does the server hold the "
                "pinned server_certificate?)"
            )
        return f"{stage}: {text}"

    async def _subscribe(self, client: Any) -> Any:
        """One subscription, one monitored item per node with this source's queue settings."""
        from asyncua import ua
        from asyncua.ua.attribute_ids import AttributeIds

        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = self.publishing_interval_ms
        keepalive = max(1, math.ceil(KEEPALIVE_MS / self.publishing_interval_ms))
        params.RequestedMaxKeepAliveCount = keepalive
        params.RequestedLifetimeCount = max(10_000, 3 * keepalive)
        params.MaxNotificationsPerPublish = self.max_notifications_per_publish
        params.PublishingEnabled = True
        params.Priority = 0
        self._last_sequence = None
        self._resubscribe = False
        link = client.uaclient.session  # asyncua's object that sends publish requests
        if self.fast_decode:
            from gxpmes.connectors.opcua_decode import install

            install(link, rows=True)  # asyncua's decoder stays if it is not as expected
        subscription = _publish_subscription()(link, params, self)
        await subscription.init()
        requests = []
        for handle, node_id in enumerate(self._node_ids, start=1):
            item = ua.ReadValueId()
            item.NodeId = node_id
            item.AttributeId = AttributeIds.Value
            settings = ua.MonitoringParameters()
            settings.ClientHandle = handle
            settings.SamplingInterval = self.sampling_interval_ms
            settings.QueueSize = self.queue_size
            settings.DiscardOldest = self.discard_oldest
            request = ua.MonitoredItemCreateRequest()
            request.ItemToMonitor = item
            request.MonitoringMode = ua.MonitoringMode.Reporting
            request.RequestedParameters = settings
            requests.append(request)
        create = ua.CreateMonitoredItemsParameters()
        create.SubscriptionId = subscription.subscription_id
        create.ItemsToCreate = requests
        create.TimestampsToReturn = ua.TimestampsToReturn.Both
        # Granted queues are known only from the results; until then a full queue is
        # judged against the requested size.
        self._queues = dict.fromkeys(self._tags, self.queue_size)
        results = await subscription.server.create_monitored_items(create)
        now = datetime.now(UTC)
        letters = []
        revised: dict[str, dict[str, float]] = {"queue_revised": {}, "sampling_revised": {}}
        for handle, (node, result) in enumerate(zip(self.nodes, results, strict=True), start=1):
            if not result.StatusCode.is_good():
                self.counts["not_monitored"] += 1
                problem = Problem(
                    "not_monitored",
                    f"the server refused to monitor {node.node_id}: {result.StatusCode.name}",
                    node.tag,
                )
                log.error("OPC UA %s: %s", self.endpoint, problem.detail)
                letters.append(DeadLetter.of(problem, self._origins[handle], b"", now))
                continue
            self._queues[handle] = self._granted(node.node_id, result, revised)
        self._report_revisions(revised, len(results) - len(letters))
        if letters:
            self._submit(Delivery([], letters))
        return subscription

    def _granted(self, node_id: str, result: Any, revised: dict[str, dict[str, float]]) -> int:
        """Keep what the server granted ``node_id`` (its MonitoredItemCreateResult) and
        note in ``revised`` each setting it revised to the record's cost: a smaller
        queue (``queue_revised``), a coarser sampling interval (``sampling_revised``).
        Returns the granted queue size."""
        queue = int(result.RevisedQueueSize)
        sampling = float(result.RevisedSamplingInterval)
        self.revised_queue_sizes[node_id] = queue
        self.revised_sampling_intervals[node_id] = sampling
        if queue < self.queue_size:
            revised["queue_revised"][node_id] = queue
        if sampling_coarser(self.sampling_interval_ms, sampling):
            revised["sampling_revised"][node_id] = sampling
        return queue

    def _report_revisions(self, revised: dict[str, dict[str, float]], monitored: int) -> None:
        """Count each revised item and log one warning per kind for the subscription,
        however many items: a server that revises every item (asyncua's grants the
        publishing interval as every item's sampling interval) would otherwise log a
        line per node at every (re)subscription."""
        kinds = {
            "queue_revised": (
                "queue size smaller than requested",
                f"{self.queue_size}",
                "",
                "a burst between publish responses may overflow them (queue_overflow)",
            ),
            "sampling_revised": (
                "sampling interval coarser than requested",
                f"{self.sampling_interval_ms:g} ms",
                " ms",
                "the record gets fewer values than configured",
            ),
        }
        for counter, granted in revised.items():
            if not granted:
                continue
            what, requested, unit, cost = kinds[counter]
            self.counts[counter] += len(granted)
            log.warning(
                "OPC UA %s: %s for %d of %d monitored item(s): %s requested, %s granted (%s%s): %s",
                self.endpoint,
                what,
                len(granted),
                monitored,
                requested,
                granted_values(granted.values(), unit),
                ", ".join(list(granted)[:5]),
                ", ..." if len(granted) > 5 else "",
                cost,
            )

    def _report_gap(self) -> None:
        """After a lost subscription is renewed: a ``connection_gap`` dead letter per node
        (a data-quality exception on its batch). OPC UA servers do not redeliver: what
        changed in between is not in the record, and the record must say so."""
        if self._lost_at is None:
            return
        lost, self._lost_at = self._lost_at, None
        now = datetime.now(UTC)
        detail = (
            f"no subscription to {self.endpoint} from {lost.isoformat()} to "
            f"{now.isoformat()}: changes in between are not recorded (the first value "
            "after is the node's current value)"
        )
        self.counts["connection_gap"] += 1
        log.warning("OPC UA %s", detail)
        self._submit(
            Delivery(
                [],
                [
                    DeadLetter.of(
                        Problem("connection_gap", detail, n.tag), self._origins[h], b"", now
                    )
                    for h, n in enumerate(self.nodes, start=1)
                ],
            )
        )

    def stop(self) -> None:
        """Ask :meth:`run` to disconnect and return."""
        self._stopping.set()

    def _on_publish(self, message: Any) -> None:
        """One publish response: its values and problems become one spool delivery."""
        from asyncua import ua

        from gxpmes.connectors.opcua_decode import DataChanges

        data = message.NotificationData
        if not data:  # keep-alive
            return
        self.counts["publishes"] += 1
        now = datetime.now(UTC)
        letters: list[DeadLetter] = []
        sequence = int(message.SequenceNumber)
        expected = None if self._last_sequence is None else self._last_sequence % 0xFFFFFFFF + 1
        if expected is not None and sequence > expected:
            self.counts["sequence_gap"] += 1
            problem = Problem(
                "sequence_gap",
                f"publish responses {expected}..{sequence - 1} of {self.endpoint} never "
                "arrived: the values they carried are lost",
            )
            log.warning("OPC UA %s", problem.detail)
            letters.append(DeadLetter.of(problem, f"opcua {self.endpoint}", b"", now))
        self._last_sequence = sequence
        readings: list[Reading] = []
        for notification in data:
            if type(notification) is DataChanges:  # decoded by opcua_decode
                self._data_rows(notification.rows, now, readings, letters)
            elif isinstance(notification, ua.DataChangeNotification):
                self._data_changes(notification.MonitoredItems, now, readings, letters)
            elif isinstance(notification, ua.StatusChangeNotification):
                self.status_change_notification(notification.Status)
        if readings or letters:
            self._submit(
                Delivery(readings, letters, done=functools.partial(self._spooled, len(readings)))
            )

    def _data_changes(
        self, items: list[Any], now: datetime, readings: list[Reading], letters: list[DeadLetter]
    ) -> None:
        tags = self._tags
        seen: dict[int, int] = {}
        flagged: set[int] = set()
        append = readings.append
        latest = now + FUTURE_TOLERANCE
        stamps: dict[datetime, str] = {}  # the values of one scan share their source time
        for item in items:
            handle = item.ClientHandle
            tag = tags.get(handle)
            if tag is None:
                self.counts["unknown_handle"] += 1
                continue
            seen[handle] = seen.get(handle, 0) + 1
            data_value = item.Value
            try:
                status = data_value.StatusCode.value if data_value.StatusCode is not None else 0
                if status & _INFO_TYPE_MASK == _INFO_TYPE_DATA_VALUE and status & _OVERFLOW:
                    flagged.add(handle)
                source = data_value.SourceTimestamp or data_value.ServerTimestamp
                if source is None:
                    raise DecodeError("malformed", "no source or server timestamp", tag)
                if source.tzinfo is None:
                    source = source.replace(tzinfo=UTC)  # OPC UA times are UTC
                if source > latest or source < EARLIEST:  # check_reading's, inlined (hot loop)
                    check_reading(Reading(tag, Decimal(0), source), now)
                server = data_value.ServerTimestamp
                if server is not None and server.tzinfo is None:
                    server = server.replace(tzinfo=UTC)
                variant = data_value.Value
                value = None if variant is None else variant.Value
                if type(value) is float and math.isfinite(value):
                    number = Decimal(repr(value))  # a float's repr is < 64 characters
                else:
                    number = to_decimal(value, tag)
                stamp = stamps.get(source)
                if stamp is None:
                    stamp = stamps[source] = source.isoformat()
                quality = _QUALITY[(status >> 30) & 3]
                key = source_key(stamp, tag, number)
                append(Reading(tag, number, source, quality, server, key))
            except DecodeError as exc:
                letters.append(
                    self._refused(Problem(exc.reason, exc.detail, tag), handle, item, now)
                )
            except Exception as exc:  # an unexpected value shape must not stop the subscription
                problem = Problem("decoder_error", f"{type(exc).__name__}: {exc}", tag)
                letters.append(self._refused(problem, handle, item, now))
        self._overflows(seen, flagged, now, letters)

    def _data_rows(
        self,
        rows: list[tuple[Any, ...]],
        now: datetime,
        readings: list[Reading],
        letters: list[DeadLetter],
    ) -> None:
        """:meth:`_data_changes` for :class:`DataChanges` rows: the same readings and dead
        letters, without an asyncua object per value. Each distinct time (the values
        of one scan share it) is converted, checked and written as text once."""
        tags = self._tags
        seen: dict[int, int] = {}
        flagged: set[int] = set()
        append = readings.append
        latest = now + FUTURE_TOLERANCE
        times: dict[int, datetime] = {}  # ticks -> UTC datetime
        stamps: dict[int, str] = {}  # source ticks (checked) -> isoformat
        to_datetime = _win_epoch_to_datetime()
        quality_of_bits = _QUALITY
        for row in rows:
            handle, value, _, status, source_ticks, server_ticks = row
            tag = tags.get(handle)
            if tag is None:
                self.counts["unknown_handle"] += 1
                continue
            seen[handle] = seen.get(handle, 0) + 1
            try:
                if status is None:
                    status = 0
                elif status & _INFO_TYPE_MASK == _INFO_TYPE_DATA_VALUE and status & _OVERFLOW:
                    flagged.add(handle)
                ticks = server_ticks if source_ticks is None else source_ticks
                stamp = stamps.get(ticks)
                if stamp is None:
                    if ticks is None:
                        raise DecodeError("malformed", "no source or server timestamp", tag)
                    source = times.get(ticks)
                    if source is None:
                        source = times[ticks] = to_datetime(ticks)
                    if source > latest or source < EARLIEST:
                        check_reading(Reading(tag, Decimal(0), source), now)
                    stamp = stamps[ticks] = source.isoformat()
                else:
                    source = times[ticks]
                if server_ticks is None:
                    server = None
                else:
                    server = times.get(server_ticks)
                    if server is None:
                        server = times[server_ticks] = to_datetime(server_ticks)
                if type(value) is float and math.isfinite(value):
                    number = Decimal(repr(value))  # a float's repr is < 64 characters
                else:
                    number = to_decimal(value, tag)
                append(
                    new_reading(
                        tag,
                        number,
                        source,
                        quality_of_bits[(status >> 30) & 3],
                        server,
                        source_key(stamp, tag, number),
                    )
                )
            except DecodeError as exc:
                letters.append(
                    self._refused(Problem(exc.reason, exc.detail, tag), handle, row, now)
                )
            except Exception as exc:  # an unexpected value shape must not stop the subscription
                problem = Problem("decoder_error", f"{type(exc).__name__}: {exc}", tag)
                letters.append(self._refused(problem, handle, row, now))
        self._overflows(seen, flagged, now, letters)

    def _overflows(
        self, seen: dict[int, int], flagged: set[int], now: datetime, letters: list[DeadLetter]
    ) -> None:
        """A ``queue_overflow`` dead letter for each item whose values were (or may have
        been) discarded by the server: ``flagged`` by the Overflow bit, or as many values
        in ``seen`` (per client handle) as its granted queue holds."""
        tags, queues = self._tags, self._queues
        overflowed: list[str] = []
        for handle, count in seen.items():
            queue = queues.get(handle, 1)
            if handle in flagged:
                detail = "the server discarded values (Overflow bit of the StatusCode)"
            elif queue > 1 and count >= queue:
                detail = (
                    f"{count} values in one publish response filled the queue of {queue}: "
                    "the server may have discarded values without flagging them"
                )
            else:
                continue
            tag = tags[handle]
            overflowed.append(tag)
            problem = Problem(
                "queue_overflow", f"{detail}; raise queue_size or lower the sampling rate", tag
            )
            letters.append(DeadLetter.of(problem, self._origins[handle], b"", now))
        if overflowed:  # one log line per publish response, however many items
            self.counts["queue_overflow"] += len(overflowed)
            log.warning(
                "OPC UA %s: values of %d monitored item(s) discarded or possibly discarded "
                "by the server (%s%s): raise queue_size or lower the sampling rate",
                self.endpoint,
                len(overflowed),
                ", ".join(overflowed[:5]),
                ", ..." if len(overflowed) > 5 else "",
            )

    def _refused(self, problem: Problem, handle: int, item: Any, now: datetime) -> DeadLetter:
        self.counts[problem.reason] += 1
        origin = self._origins[handle]
        log.warning("refused OPC UA value of %s: %s", origin, safe_text(problem.detail))
        if type(item) is tuple:  # a DataChanges row: kept as asyncua's object reads
            from gxpmes.connectors.opcua_decode import monitored_item

            item = monitored_item(item)
        raw = safe_text(repr(item), 4096).encode("utf-8")
        return DeadLetter.of(problem, origin, raw, now)

    def _spooled(self, readings: int, new: int) -> None:
        # Called by the writer thread once the delivery is durable.
        self.counts["received"] += readings
        self.counts["duplicates"] += readings - new

    def status_change_notification(self, status: Any) -> None:
        """The server ended or changed the subscription (e.g. BadTimeout): resubscribe."""
        self.counts["status_changes"] += 1
        log.warning("OPC UA %s: subscription status %s", self.endpoint, status)
        if quality_of(status) == "Bad":
            self._resubscribe = True

    def _submit(self, delivery: Delivery) -> None:
        # Spooled by the writer thread, many notifications per durable commit. OPC UA
        # has no redelivery: a value the spool cannot take (disk full) is lost and
        # counted as a spool error.
        if self.writer is None:  # notified outside run(): spool at once
            writer = GroupCommit(self.spool, counts=self.counts)
            writer.submit(delivery)
            writer.close()
        else:
            self.writer.submit(delivery)


def source_from_config(
    spool: Spool, opcua_config: dict[str, Any], base: Path, group_commit_values: int = 20_000
) -> OpcUaSource:
    """An :class:`OpcUaSource` as the ``[opcua]`` table of ``gxpmes connect`` configures it
    (paths relative to ``base``)."""

    def path(key: str) -> Path | None:
        value = opcua_config.get(key)
        return None if value is None else base / str(value)

    security = OpcUaSecurity(
        policy=str(opcua_config.get("security_policy", "None")),
        mode=str(opcua_config.get("security_mode", "SignAndEncrypt")),
        certificate=path("certificate"),
        private_key=path("private_key"),
        private_key_password=read_secret(
            None, None, opcua_config.get("private_key_password_env"), base
        ),
        server_certificate=path("server_certificate"),
        application_uri=opcua_config.get("application_uri"),
        username=opcua_config.get("username"),
        password=read_secret(
            None, opcua_config.get("password_file"), opcua_config.get("password_env"), base
        ),
        allow_plain_password=bool(opcua_config.get("allow_plain_password", False)),
    )
    queue_size = opcua_config.get("queue_size")
    return OpcUaSource(
        spool,
        opcua_config["endpoint"],
        [OpcUaNode(n["node_id"], n["tag"]) for n in opcua_config.get("nodes", [])],
        publishing_interval_ms=float(opcua_config.get("publishing_interval_ms", 100)),
        sampling_interval_ms=float(opcua_config.get("sampling_interval_ms", 50)),
        queue_size=None if queue_size is None else int(queue_size),
        discard_oldest=bool(opcua_config.get("discard_oldest", True)),
        max_notifications_per_publish=int(
            opcua_config.get("max_notifications_per_publish", 10_000)
        ),
        security=security,
        group_commit_values=group_commit_values,
        fast_decode=bool(opcua_config.get("fast_decode", True)),
    )


INGEST_GC_THRESHOLD = (10_000, 20, 20)
"""The ingest process's collector thresholds once it is subscribed (Python's: 700, 10,
10). Each value leaves a few short-lived tracked objects (its Reading, rows, lists)
and nearly nothing cyclic: fewer, larger young collections."""


def settle_gc() -> int:
    """In the ingest process, once connected and subscribed: move everything alive (the
    modules, asyncua's client, the subscription) out of the collector's reach
    (``gc.freeze``) and raise its thresholds (:data:`INGEST_GC_THRESHOLD`). Collection
    CPU per value, offline, 1,000 nodes, 2,000 values per response: 2.0–2.5 µs
    default, 0.55–0.74 frozen, 0.05 frozen with these thresholds. Returns how many
    objects are frozen."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*INGEST_GC_THRESHOLD)
    return gc.get_freeze_count()


def ingest_process_main(
    options: dict[str, Any], report: Any, stop: Any, parent: int, interval: float
) -> None:
    """The OPC UA ingest process: subscribe, decode, validate, spool — no database.

    ``options``: ``spool``, ``seen_retention``, ``opcua`` (the ``[opcua]`` table),
    ``base``, ``group_commit_values``. Sends its counters on the ``report`` pipe every
    ``interval`` seconds and once more after a clean stop; stops when ``stop`` is set,
    on SIGTERM or SIGINT, or when the runner ``parent`` is gone.
    """
    import signal

    die_with_parent()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    spool = Spool(options["spool"], seen_retention=float(options["seen_retention"]))
    try:
        source = source_from_config(
            spool, options["opcua"], Path(options["base"]), int(options["group_commit_values"])
        )
    except Exception as exc:
        send_report(report, {"error": f"{type(exc).__name__}: {exc}"})
        spool.close()
        return

    frozen = 0  # objects settle_gc froze (gc.get_freeze_count walks them all: not per report)

    def snapshot() -> dict[str, Any]:
        return {
            "counts": dict(source.counts),
            "connected": source.connected.is_set(),
            "cpu": time.process_time(),
            "gc_frozen": frozen,
        }

    async def main() -> None:
        nonlocal frozen
        task = asyncio.create_task(source.run())
        settled = False
        while not stop.is_set() and os.getppid() == parent and not task.done():
            if not settled and source.connected.is_set():
                frozen = settle_gc()
                settled = True
            if not send_report(report, snapshot()):
                break  # the runner is gone
            await asyncio.sleep(interval)
        source.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        send_report(report, {**snapshot(), "stopped": True})
        spool.close()


class OpcUaProcess(IngestProcess):
    """The runner's handle on the OPC UA ingest process (:func:`ingest_process_main`):
    the subscription, decoding and spool writes use one core while the runner
    forwards and captures on the other. Restarted if it dies (``ingest_restarts``);
    OPC UA has no redelivery, so values changed meanwhile are lost (resubscribing
    brings each node's current value)."""

    label = "OPC UA"
    target = staticmethod(ingest_process_main)
