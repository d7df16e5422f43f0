"""MQTT source (paho-mqtt): JSON topics and Sparkplug B, acknowledged after the spool write.

No payload can stop delivery: whatever fails decoding or validation — or
even makes a decoder fail unexpectedly — becomes a dead letter in the spool
(raw bytes bounded, reason, topic, time) and is acknowledged. Only a spool
that cannot be written (disk full, I/O error) leaves a message unacknowledged,
so the broker redelivers it once the spool works again.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gxpmes.connectors.groupcommit import SPOOL_FAILURES, Delivery, GroupCommit
from gxpmes.connectors.ingestprocess import IngestProcess, die_with_parent, send_report
from gxpmes.connectors.jsonpayload import decode_json_message
from gxpmes.connectors.model import DeadLetter, DecodeError, Problem, Reading, safe_text
from gxpmes.connectors.sparkplug import SparkplugSession, rebirth_request
from gxpmes.connectors.spool import Spool
from gxpmes.errors import ConfigurationError

__all__ = [
    "BROKER_DROPPED_TOPIC",
    "FIRST_SEQ",
    "MqttProcess",
    "MqttSecurity",
    "MqttSource",
    "PublisherSequences",
    "RebirthRequests",
    "SequenceStep",
    "source_from_config",
]

log = logging.getLogger("gxpmes.connectors.mqtt")

BROKER_DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
"""Mosquitto's count of messages it dropped (queue or inflight limits), watched for warnings."""

# A spool that cannot be written is the connector's problem, not the message's:
# such a message is left unacknowledged and the broker delivers it again.
_SPOOL_FAILURES = SPOOL_FAILURES


@dataclass(frozen=True)
class MqttSecurity:
    """TLS and credentials of the broker connection.

    ``ca_file`` turns TLS on and is the only trust anchor: the broker's
    certificate must chain to it and name the host connected to. A client
    certificate (``cert_file`` + ``key_file``) is optional. ``password`` is
    sent only over TLS unless ``allow_plain_password`` says otherwise.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    allow_plain_password: bool = False

    def apply(self, client: Any) -> None:
        """Configure a paho client (before connecting)."""
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigurationError("a client certificate needs both cert_file and key_file")
        if self.ca_file is not None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert_file is not None and self.key_file is not None:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
            client.tls_set_context(context)
        elif self.cert_file is not None:
            raise ConfigurationError("a client certificate needs TLS: set ca_file")
        if self.username is not None:
            if self.ca_file is None and self.password and not self.allow_plain_password:
                raise ConfigurationError(
                    "refusing to send an MQTT password without TLS (set ca_file, or "
                    "allow_plain_password = true on a trusted network)"
                )
            client.username_pw_set(self.username, self.password)


REBIRTH_INTERVAL = 10.0
"""Seconds between two rebirth requests to the same edge node (``rebirth_interval``)."""
REBIRTH_HOLD_OFF = 60.0
"""Seconds without any rebirth request after the first denied one; doubled per denial."""
REBIRTH_HOLD_OFF_MAX = 3600.0
"""The longest hold-off after denied rebirth requests."""
REBIRTH_DENIED_WITHIN = 2.0
"""A connection lost this many seconds or less after a rebirth request: taken as denied."""


class RebirthRequests:
    """When the connector may ask a Sparkplug edge node for its births again (thread-safe).

    At most one request per edge node every ``interval`` seconds. A connection lost
    within ``denied_within`` seconds of a request is taken as the broker denying it
    (Mosquitto 2.0 disconnects a client whose publish its ACL denies): then no request
    at all for ``hold_off`` seconds — each denial costs every source of the connection
    a reconnect — doubled at each further denial up to ``max_hold_off``. A request the
    connection outlives ends the doubling.
    """

    def __init__(
        self,
        interval: float = REBIRTH_INTERVAL,
        *,
        hold_off: float = REBIRTH_HOLD_OFF,
        max_hold_off: float = REBIRTH_HOLD_OFF_MAX,
        denied_within: float = REBIRTH_DENIED_WITHIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval < 0:
            raise ConfigurationError(f"rebirth_interval {interval}: use 0 or more seconds")
        self.interval, self.hold_off, self.max_hold_off = interval, hold_off, max_hold_off
        self.denied_within = denied_within
        self._clock = clock
        self._last: dict[str, float] = {}  # per edge node: when it was last asked
        self._sent_at: float | None = None  # the last request, until the connection outlives it
        # The first request since the last denial or outlived one: requests less than
        # denied_within apart must not hide that the connection outlived the first.
        self._since: float | None = None
        self._denials = 0  # consecutive denied requests
        self._hold_until = 0.0
        self._lock = threading.Lock()

    def allow(self, node: str) -> bool:
        """Whether a request to ``node`` may go out now; if so, it is taken as sent."""
        now = self._clock()
        with self._lock:
            self._outlived(now)
            if now < self._hold_until:
                return False
            last = self._last.get(node)
            if last is not None and now - last < self.interval:
                return False
            self._last[node] = self._sent_at = now
            if self._since is None:
                self._since = now
            return True

    def _outlived(self, now: float) -> None:
        # The connection is still up more than denied_within after a request: the broker
        # allowed it, so the doubling of hold-offs ends.
        if self._since is not None and now - self._since > self.denied_within:
            self._since, self._denials = None, 0

    def connection_lost(self) -> float | None:
        """Called when the connection is lost: if that was right after a request (denied),
        the seconds no request will go out from now on; else None."""
        now = self._clock()
        with self._lock:
            self._outlived(now)
            if self._sent_at is None or now - self._sent_at > self.denied_within:
                return None
            self._sent_at = self._since = None
            self._denials += 1
            hold: float = min(self.hold_off * 2.0 ** (self._denials - 1), self.max_hold_off)
            self._hold_until = now + hold
            return hold


FIRST_SEQ = 0
"""The ``seq`` a JSON publisher's count starts at (and starts again at after a restart)."""
_SCOPE = "\x1f"  # between publisher and topic in a count name scoped to one topic
_COUNT_NAMES_CACHED = 10_000  # (publisher, topic) decisions held; cleared when more


def _gap(publisher: str, lost: int, seq: int, tag: str, why: str = "") -> Problem:
    """The ``sequence_gap`` problem of ``lost`` readings before ``seq`` of a count name."""
    who = PublisherSequences.describe(publisher)
    return Problem(
        "sequence_gap", f"publisher {who}: {lost} reading(s) before seq {seq} lost{why}", tag
    )


def check_topic_filter(topic_filter: object) -> str:
    """``topic_filter`` if it is a valid MQTT topic filter (``+`` a whole level, ``#``
    the whole last level), else ConfigurationError."""
    if not isinstance(topic_filter, str) or not topic_filter or "\x00" in topic_filter:
        raise ConfigurationError(f"topic filter {topic_filter!r}: use non-empty text")
    levels = topic_filter.split("/")
    for at, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise ConfigurationError(
                f"topic filter {topic_filter!r}: + and # must be a whole level"
            )
        if level == "#" and at != len(levels) - 1:
            raise ConfigurationError(f"topic filter {topic_filter!r}: # must be the last level")
    return topic_filter


def check_publishers(publishers: object) -> dict[str, list[str]]:
    """``[mqtt] publishers`` checked: JSON publisher name -> the topic filters on which its
    ``"publisher"`` field counts under that name; ConfigurationError naming what is wrong."""
    if not isinstance(publishers, dict):
        raise ConfigurationError("[mqtt] publishers: use a table of name = [topic filters]")
    checked: dict[str, list[str]] = {}
    for name, filters in publishers.items():
        if not isinstance(name, str) or not name or safe_text(name, 256) != name:
            raise ConfigurationError(
                f"[mqtt] publishers: name {name!r}: use printable text of 1..256 characters"
            )
        if not isinstance(filters, list) or not filters:
            raise ConfigurationError(
                f"[mqtt] publishers: {name!r}: use a non-empty list of topic filters"
            )
        try:
            checked[name] = [check_topic_filter(f) for f in filters]
        except ConfigurationError as exc:
            raise ConfigurationError(f"[mqtt] publishers: {name!r}: {exc}") from None
    return checked


@dataclass(frozen=True)
class SequenceStep:
    """What one ``seq`` says: ``lost`` readings went missing before it; ``restarted``: the
    publisher started its count again (``seq`` not above ``last``, with new readings)."""

    lost: int = 0
    restarted: bool = False
    last: int | None = None
    """The publisher's last ``seq`` before this one (None: none seen yet)."""


class PublisherSequences:
    """Last ``seq`` seen per JSON publisher, kept in the spool; says how many readings were lost.

    The rule (:meth:`step`): a ``seq`` above the last is a step forward, and
    the numbers skipped are lost readings. A ``seq`` at or below the last is
    either a redelivery — the message was spooled before, its readings are
    duplicates — and changes nothing, or a *restart*: the publisher counts
    again from :data:`FIRST_SEQ`, and the readings ``FIRST_SEQ .. seq - 1`` of
    the new count are lost. Which of the two only the spool can say (its dedup
    keys), so such a message's verdict waits for its spool commit: the source
    :meth:`defer` s it and :meth:`settle` s it once the commit said whether its
    readings were new. A message whose every ``seq`` moves forward is applied
    at once by :meth:`advance` (the hot path). Thread-safe: messages are
    decoded on one thread and settled on the spool writer's.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._last: dict[str, int] = {}
        self._waiting: Counter[str] = Counter()  # deferred messages per publisher
        self._lock = threading.Lock()

    @staticmethod
    def key(publisher: str) -> str:
        """The spool state key of ``publisher``'s last ``seq`` (a name or a :meth:`scoped`
        one)."""
        return f"json|{publisher}"

    @staticmethod
    def scoped(publisher: str, topic: str) -> str:
        """The count name of ``publisher`` on ``topic`` alone (a name not bound to the topic
        by ``[mqtt] publishers``). Decoded names and topics are printable text
        (:func:`safe_text`), so the separator, a control character, never collides."""
        return f"{publisher}{_SCOPE}{safe_text(topic, 256)}"

    @staticmethod
    def describe(name: str) -> str:
        """A count name as text for a dead letter or the log."""
        publisher, _sep, topic = name.partition(_SCOPE)
        return f"{publisher} on topic {topic}" if topic else publisher

    def _last_of(self, key: str) -> int | None:
        last = self._last.get(key)
        if last is None:
            saved = self.spool.get_state(key)
            if saved is not None:
                last = self._last[key] = int(saved)
        return last

    def step(self, publisher: str, seq: int, redelivered: bool = False) -> SequenceStep:
        """Apply one ``seq`` of ``publisher``; ``redelivered``: its message brought no new
        reading. The new last ``seq`` (unless redelivered) is for the caller to save in
        the spool with the message, under :meth:`key`."""
        with self._lock:
            return self._step(self.key(publisher), seq, redelivered)

    def _step(self, key: str, seq: int, redelivered: bool) -> SequenceStep:
        last = self._last_of(key)
        if redelivered:  # spooled before: its seq was counted then
            return SequenceStep(last=last)
        if last is None or seq > last:
            lost = 0 if last is None else seq - last - 1
            self._last[key] = seq
            return SequenceStep(lost, False, last)
        self._last[key] = seq
        return SequenceStep(seq - FIRST_SEQ, True, last)

    def advance(
        self, sequence: list[tuple[str, int, str]]
    ) -> tuple[dict[str, str], list[tuple[int, int, int]]] | None:
        """Apply a message's ``seq`` s if every one moves its publisher forward (above its
        last, or the first seen) and no earlier message of those publishers waits for its
        verdict — then redelivered or not cannot change what they say. Returns the last
        ``seq`` of each publisher to save (by :meth:`key`) and the gaps as ``(position in
        sequence, readings lost, seq)``; None, and nothing applied, otherwise."""
        with self._lock:
            lasts: dict[str, int] = {}
            gaps = []
            for position, (publisher, seq, _tag) in enumerate(sequence):
                key = self.key(publisher)
                last = lasts.get(key)
                if last is None:
                    if self._waiting.get(key):
                        return None
                    last = self._last_of(key)
                if last is not None:
                    if seq <= last:
                        return None
                    if seq > last + 1:
                        gaps.append((position, seq - last - 1, seq))
                lasts[key] = seq
            self._last.update(lasts)
            return {key: str(seq) for key, seq in lasts.items()}, gaps

    def waiting(self, sequence: list[tuple[str, int, str]]) -> bool:
        """Whether a deferred message of one of these publishers waits for its verdict."""
        with self._lock:
            return any(self._waiting[self.key(p)] for p, _s, _t in sequence)

    def defer(self, sequence: list[tuple[str, int, str]]) -> None:
        """Hold a message's ``seq`` s until its spool commit says whether it was new."""
        with self._lock:
            for key in {self.key(p) for p, _s, _t in sequence}:
                self._waiting[key] += 1

    def settle(self, sequence: list[tuple[str, int, str]], redelivered: bool) -> list[SequenceStep]:
        """Apply a deferred message's ``seq`` s, in order, now that the spool said whether
        its readings were new."""
        with self._lock:
            steps = [self._step(self.key(p), s, redelivered) for p, s, _t in sequence]
            for key in {self.key(p) for p, _s, _t in sequence}:
                self._waiting[key] -= 1
                if self._waiting[key] <= 0:
                    del self._waiting[key]
            return steps

    def unwait(self) -> None:
        """Forget deferred messages not settled: called once the spool writer is idle, so
        those were never committed (the broker delivers them again)."""
        with self._lock:
            self._waiting.clear()

    def forget(self, publishers: set[str]) -> None:
        """Drop what is held in memory of ``publishers``: read again from the spool."""
        with self._lock:
            for publisher in publishers:
                self._last.pop(self.key(publisher), None)


class MqttSource:
    """Subscribes with QoS 1 and *manual* acknowledgement: a message is acked to the
    broker only once its values (or its dead letter) are in the spool, so a crash
    before that makes the broker redeliver it (and the spool's dedup keys keep it
    from being recorded twice).

    ``topic_tags`` maps JSON topics to tags (default: the topic is the tag);
    unless ``payload_tags`` is true a reading's own ``tag`` field may not
    differ from it. ``publishers`` binds JSON ``"publisher"`` names to the topic
    filters on which they count under that name; elsewhere a name counts for
    its topic alone (see :meth:`_count_name`).

    Messages are spooled by group commit (:class:`GroupCommit`): everything that
    arrived while the previous spool transaction was being made durable goes
    into the next one, up to ``group_commit_values`` readings, and each message
    is acknowledged only after its transaction. How many messages can wait for
    one commit is the broker's in-flight window: MQTT 5 sends the connector's
    ``receive_maximum``; MQTT 3.1.1 gets the broker's ``max_inflight_messages``
    (Mosquitto: 20 unless configured).
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
        protocol: str = "3.1.1",
        session_expiry: int = 7 * 24 * 3600,
        security: MqttSecurity | None = None,
        topic_tags: dict[str, str] | None = None,
        payload_tags: bool = False,
        watch_broker: bool = True,
        receive_maximum: int = 1000,
        group_commit_values: int = 20_000,
        rebirth_interval: float = REBIRTH_INTERVAL,
        publishers: dict[str, list[str]] | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.spool = spool
        self.topics = topics or []
        self.sparkplug_topics = sparkplug_topics or []
        self.client_id = client_id
        self.topic_tags = dict(topic_tags or {})
        self.payload_tags = payload_tags
        self.watch_broker = watch_broker
        self.counts: Counter[str] = Counter()
        self.broker_dropped: int | None = None
        """The broker's own count of dropped messages (``$SYS``), when it publishes one."""
        self.sparkplug = SparkplugSession(spool)
        self.sequences = PublisherSequences(spool)
        self.publishers = check_publishers({} if publishers is None else publishers)
        """JSON ``"publisher"`` names and the topic filters each may count on across topics."""
        self._counts_of: dict[tuple[str, str], str] = {}  # (publisher, topic) -> count name
        self.rebirths = RebirthRequests(rebirth_interval)
        """When a Sparkplug rebirth request may go out (per edge node, held off after denials)."""
        self.connected = threading.Event()
        self._stopping = False
        if protocol == "5":
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
            )
        elif protocol == "3.1.1":
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                clean_session=clean_session,
                protocol=mqtt.MQTTv311,
            )
        else:
            raise ConfigurationError(f"MQTT protocol {protocol!r}: use '3.1.1' or '5'")
        if not 1 <= receive_maximum <= 65535:
            raise ConfigurationError(f"receive_maximum {receive_maximum}: use 1..65535")
        if group_commit_values < 1:
            raise ConfigurationError(f"group_commit_values {group_commit_values}: use 1 or more")
        self.receive_maximum = receive_maximum
        self.group_commit_values = group_commit_values
        self.writer: GroupCommit | None = None
        """The spool writer (group commit), running between :meth:`start` and :meth:`stop`."""
        self._ack_lock = threading.Lock()
        self._generation = 0  # connection number: acks never cross a reconnect
        self.protocol = protocol
        self.clean_session = clean_session
        self.session_expiry = session_expiry
        (security or MqttSecurity()).apply(self.client)
        self.client.manual_ack_set(True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._pending_subscriptions = 0
        self.host, self.port = host, port

    def start(self) -> None:
        """Connect (retrying in the background); messages are decoded on paho's thread and
        spooled, then acknowledged, by the group-commit writer thread."""
        self.writer = GroupCommit(
            self.spool,
            max_values=self.group_commit_values,
            max_queued=max(200_000, self.group_commit_values),
            name=f"spool-writer-{self.client_id}",
            counts=self.counts,
        )
        if self.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            # Clean start off + an expiry: the broker keeps the session (and queues
            # QoS 1 messages) for this long while the connector is away.
            properties.SessionExpiryInterval = 0 if self.clean_session else self.session_expiry
            # How many unacknowledged messages the broker may send: they wait for one commit.
            properties.ReceiveMaximum = self.receive_maximum
            self.client.connect_async(
                self.host,
                self.port,
                keepalive=30,
                clean_start=self.clean_session,
                properties=properties,
            )
        else:
            self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Spool and acknowledge what has arrived, then disconnect cleanly (not counted
        as a disconnect). Messages arriving meanwhile are spooled but not acknowledged:
        the broker redelivers them to the persistent session, and they are dropped as
        duplicates."""
        self._stopping = True
        if self.writer is not None:
            self.writer.flush(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()
        if self.writer is not None:
            self.writer.close()

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        with self._ack_lock:
            self._generation += 1
        if getattr(reason, "is_failure", False):
            self.counts["connection_refused"] += 1
            log.warning("MQTT connection refused: %s", reason)
            return
        topics = self.topics + self.sparkplug_topics
        self._pending_subscriptions = len(topics)
        for topic in topics:
            client.subscribe(topic, qos=1)
        if self.watch_broker:
            client.subscribe(BROKER_DROPPED_TOPIC, qos=0)
        if not self.clean_session:
            # A connector that had a session before and is now given a fresh one:
            # the broker lost what it had queued (no persistence, session expired).
            key = f"mqtt|session|{self.client_id}"
            if not getattr(flags, "session_present", False) and self.spool.get_state(key):
                self.counts["session_lost"] += 1
                log.warning(
                    "the MQTT broker has no session for %s: queued values are lost", self.client_id
                )
            self.spool.set_state(key, "1")
        self.counts["connects"] += 1
        log.info("connected to MQTT %s:%s as %s", self.host, self.port, self.client_id)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # No connection at all: broker down, TLS verification failed, certificate refused.
        self.counts["connection_errors"] += 1
        log.warning("cannot connect to MQTT %s:%s (retrying)", self.host, self.port)

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
        with self._ack_lock:
            self._generation += 1  # messages of this connection are redelivered, not acked
        self.connected.clear()
        if self._stopping:
            return
        self.counts["disconnects"] += 1
        hold = self.rebirths.connection_lost()
        if hold is not None:
            self.counts["rebirth_denied"] += 1
            log.warning(
                "the MQTT connection was lost right after a Sparkplug rebirth request: the "
                "broker's ACL probably denies the connector write access to spBv1.0/+/NCMD/+; "
                "no rebirth request for %.0f s",
                hold,
            )

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic == BROKER_DROPPED_TOPIC:
            self._broker_dropped(message.payload)
            return
        generation, mid, qos = self._generation, message.mid, message.qos
        try:
            delivery = self._delivery(
                message.topic,
                bytes(message.payload),
                dup=bool(message.dup),
                ack=lambda: self._ack(generation, mid, qos),
            )
        except _SPOOL_FAILURES:  # saved source state could not be read: the broker redelivers
            self.counts["spool_errors"] += 1
            log.exception("could not spool message on %s; not acknowledged", message.topic)
            return
        writer = self.writer
        if writer is None:  # not started through start(): spool at once
            writer = GroupCommit(self.spool, counts=self.counts)
            writer.submit(delivery)
            writer.close()
            return
        writer.submit(delivery)

    def _ack(self, generation: int, mid: int, qos: int) -> bool:
        """Acknowledge a message of connection ``generation``; False if that connection is
        gone (then the ack is not sent)."""
        # After a reconnect the broker redelivers what was not acknowledged, possibly
        # reusing packet ids: an ack from an earlier connection could acknowledge
        # another message, so it is not sent (the redelivered copy is a duplicate).
        with self._ack_lock:
            if generation != self._generation:
                return False
            self.client.ack(mid, qos)
            return True

    def _delivery(
        self,
        topic: str,
        payload: bytes,
        *,
        dup: bool = False,
        ack: Callable[[], bool] | None = None,
    ) -> Delivery:
        """The message's readings and dead letters, for the spool writer; raises only if the
        spool fails (reading saved sequence state). ``dup``: the broker says it sent the
        message before (MQTT DUP flag); ``ack``: acknowledges it (True if sent)."""
        now = datetime.now(UTC)
        state: dict[str, str] = {}
        deferred: list[tuple[str, int, str]] = []
        rebirth = False
        try:
            readings, problems, state, deferred, rebirth = self._decode(topic, payload, now, dup)
        except DecodeError as exc:
            readings, problems = [], [Problem(exc.reason, exc.detail, exc.tag)]
        except _SPOOL_FAILURES:
            raise  # state saved in the spool (sequence numbers) could not be read
        except Exception as exc:  # a decoder defect must not stop delivery either
            log.exception("decoder failed on a message on %s; kept as a dead letter", topic)
            readings, problems = [], [Problem("decoder_error", f"{type(exc).__name__}: {exc}")]
        # Dead letters are stored in the same transaction as the readings: a message
        # is spooled whole (its gap reported, its values kept) or not at all.
        letters = [self._reject(topic, payload, now, problem) for problem in problems]

        def done(new: int) -> None:
            self.counts["received"] += len(readings)
            self.counts["duplicates"] += len(readings) - new
            if deferred:  # committed (or kept as unspoolable): now the seq verdict
                self._settle(topic, payload, now, deferred, redelivered=new == 0)

        def unspoolable(exc: Exception) -> DeadLetter:
            # Something in the values the spool cannot store.
            tag = readings[0].tag if readings else None
            detail = f"{type(exc).__name__}: {exc}"
            return self._reject(topic, payload, now, Problem("unspoolable", detail, tag))

        def acknowledge() -> None:
            # The rebirth request only after this message's ack, on the same connection: a
            # broker that denies the request and drops the connection (Mosquitto 2.0) then
            # has the message acknowledged and does not deliver it again to ask again.
            if (ack() if ack is not None else True) and rebirth:
                self._request_rebirth(topic)

        return Delivery(
            readings, letters, state, ack=acknowledge, done=done, unspoolable=unspoolable
        )

    def _reject(self, topic: str, payload: bytes, now: datetime, problem: Problem) -> DeadLetter:
        if problem.tag is None and problem.scope is None:
            problem = replace(problem, **self._concerns(topic))
        self.counts[problem.reason] += 1
        log.warning("refused on %s: %s: %s", topic, problem.reason, safe_text(problem.detail))
        return DeadLetter.of(problem, topic, payload, now)

    def _concerns(self, topic: str) -> dict[str, str]:
        """What an undecodable message on ``topic`` concerns: the topic's tag, or (Sparkplug)
        every metric of its edge node — so it is an exception on the batches they feed."""
        parts = topic.split("/")
        if topic.startswith("spBv1.0/"):
            return {"scope": f"{parts[1]}/{parts[3]}/"} if len(parts) >= 4 else {}
        return {"tag": self.topic_tags.get(topic, topic)}

    def _decode(
        self, topic: str, payload: bytes, now: datetime, dup: bool = False
    ) -> tuple[list[Reading], list[Problem], dict[str, str], list[tuple[str, int, str]], bool]:
        """Readings, problems and source state of a message, (JSON) the ``seq`` s whose
        verdict waits for the spool commit (see :meth:`_sequence`) and (Sparkplug) whether
        to ask its edge node for a rebirth once the message is acknowledged."""
        problems: list[Problem] = []
        deferred: list[tuple[str, int, str]] = []
        rebirth = False
        if topic.startswith("spBv1.0/"):
            outcome = self.sparkplug.handle_message(topic, payload, now, save=False)
            rebirth = outcome.rebirth
            readings, problems, state = outcome.readings, outcome.problems, outcome.state
            if not all(r.server_ts for r in readings):  # stamped when received
                readings = [
                    r
                    if r.server_ts
                    else Reading(r.tag, r.value, r.source_ts, r.quality, now, r.dedup_key)
                    for r in readings
                ]
        else:  # JSON readings are stamped by the decoder
            message = decode_json_message(
                payload,
                now,
                default_tag=self.topic_tags.get(topic, topic),
                payload_tag=self.payload_tags,
                publisher=topic,
                server_ts=now,
            )
            readings = message.readings
            sequence = message.sequence
            if sequence:
                sequence = [(self._count_name(p, topic), s, t) for p, s, t in sequence]
            problems, state, deferred = self._sequence(sequence, dup)
        return readings, problems, state, deferred, rebirth

    def _count_name(self, publisher: str, topic: str) -> str:
        """Whose count a ``seq`` of ``publisher`` on ``topic`` moves. A name bound to the
        topic by :attr:`publishers` (one count across its topics); the topic's own (no
        ``"publisher"`` field); otherwise the name's count on this topic alone — a
        payload field must not move the count of a publisher on another topic (the
        broker's ACL governs topics, not fields). Cached per (publisher, topic)."""
        name = self._counts_of.get((publisher, topic))
        if name is None:
            name = self._bind(publisher, topic)
        elif name != publisher:
            self.counts["publisher_unbound"] += 1
        return name

    def _bind(self, publisher: str, topic: str) -> str:
        from paho.mqtt.client import topic_matches_sub

        filters = self.publishers.get(publisher)
        if filters is not None:
            bound = any(topic_matches_sub(f, topic) for f in filters)
        else:  # the topic's own count (the decoder's default name)
            bound = publisher == safe_text(topic, 256)
        name = publisher
        if not bound:
            name = PublisherSequences.scoped(publisher, topic)
            self.counts["publisher_unbound"] += 1
            log.warning(
                "JSON publisher %s on topic %s is not bound to it by [mqtt] publishers: "
                "its seq is counted for this topic alone",
                publisher,
                safe_text(topic),
            )
        if len(self._counts_of) >= _COUNT_NAMES_CACHED:  # many invented names: start over
            self._counts_of.clear()
        self._counts_of[(publisher, topic)] = name
        return name

    def _sequence(
        self, sequence: list[tuple[str, int, str]], dup: bool
    ) -> tuple[list[Problem], dict[str, str], list[tuple[str, int, str]]]:
        """The gaps and the last ``seq`` s to save of a JSON message, decided now when
        every ``seq`` moves its publisher forward (the hot path: no spool look-up). A ``seq``
        at or below its publisher's last (a redelivery or a restart) or a message the broker
        sent before (``dup``: spooled already, or not) waits for its spool commit instead,
        which says whether its readings were new: returned as deferred, settled by
        :meth:`_settle`."""
        if not sequence:
            return [], {}, []
        if not dup and self.sequences.waiting(sequence):
            # Its verdict depends on the waiting ones': let the writer settle them first.
            if self.writer is not None:
                self.writer.flush()
            self.sequences.unwait()
        applied = None if dup else self.sequences.advance(sequence)
        if applied is None:
            self.sequences.defer(sequence)
            return [], {}, sequence
        state, gaps = applied
        problems = [_gap(sequence[at][0], lost, seq, sequence[at][2]) for at, lost, seq in gaps]
        return problems, state, []

    def _outcome(
        self, sequence: list[tuple[str, int, str]], steps: list[SequenceStep], redelivered: bool
    ) -> tuple[list[Problem], dict[str, str]]:
        """The ``sequence_gap`` problems and the state to save of a message's steps; a
        restart is counted (``publisher_restarts``) and logged."""
        problems: list[Problem] = []
        state: dict[str, str] = {}
        for (publisher, seq, tag), step in zip(sequence, steps, strict=True):
            who = PublisherSequences.describe(publisher)
            if step.restarted:
                self.counts["publisher_restarts"] += 1
                log.warning(
                    "publisher %s restarted its seq count: %d after %s", who, seq, step.last
                )
            if step.lost:
                why = (
                    f" (restarted its count: seq {seq} after {step.last})" if step.restarted else ""
                )
                problems.append(_gap(publisher, step.lost, seq, tag, why))
            if not redelivered:
                state[PublisherSequences.key(publisher)] = str(seq)
        return problems, state

    def _settle(
        self,
        topic: str,
        payload: bytes,
        now: datetime,
        sequence: list[tuple[str, int, str]],
        redelivered: bool,
    ) -> None:
        """Settle a deferred message once committed (on the writer thread, before its
        acknowledgement): its gaps and last ``seq`` s go into the spool at once."""
        steps = self.sequences.settle(sequence, redelivered)
        problems, state = self._outcome(sequence, steps, redelivered)
        if not problems and not state:
            return
        letters = [self._reject(topic, payload, now, problem) for problem in problems]
        try:
            self.spool.put_many([([], letters, state)])
        except _SPOOL_FAILURES:
            # The spool's last seq stays the old one: forget ours, so the publisher's next
            # message is judged against what the spool holds (and reported again).
            self.counts["spool_errors"] += 1
            log.exception("could not save the seq verdict of a message on %s", topic)
            self.sequences.forget({publisher for publisher, _seq, _tag in sequence})

    def _broker_dropped(self, payload: bytes) -> None:
        try:
            dropped = int(payload.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return
        if self.broker_dropped is not None and dropped > self.broker_dropped:
            log.warning(
                "the MQTT broker dropped %d message(s) (queue or inflight limit): see "
                "max_queued_messages in the broker configuration",
                dropped - self.broker_dropped,
            )
        self.broker_dropped = dropped

    def _request_rebirth(self, topic: str) -> None:
        """Ask the edge node of ``topic`` for its births (NCMD), unless :attr:`rebirths`
        holds the request off (counted as ``rebirths_held_off``)."""
        parts = topic.split("/")
        group, node = parts[1], parts[3]
        if not self.rebirths.allow(f"{group}/{node}"):
            self.counts["rebirths_held_off"] += 1
            return
        self.counts["rebirth_requests"] += 1
        self.client.publish(
            f"spBv1.0/{group}/NCMD/{node}", rebirth_request(int(time.time() * 1000)), qos=0
        )


def read_secret(value: str | None, file: str | None, env: str | None, base: Path) -> str | None:
    """A secret from a file (relative to ``base``), an environment variable, or inline."""
    if file:
        try:
            return (base / file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read password file {file}: {exc}") from exc
    if env:
        secret = os.environ.get(env)
        if secret is None:
            raise ConfigurationError(f"environment variable {env} is not set")
        return secret
    return value


def source_from_config(
    spool: Spool,
    mqtt_config: dict[str, Any],
    topic_tags: dict[str, str],
    base: Path,
    group_commit_values: int = 20_000,
) -> MqttSource:
    """An :class:`MqttSource` as the ``[mqtt]`` table of ``gxpmes connect`` configures it
    (paths relative to ``base``)."""

    def path(key: str) -> Path | None:
        value = mqtt_config.get(key)
        return None if value is None else base / str(value)

    security = MqttSecurity(
        ca_file=path("ca_file"),
        cert_file=path("cert_file"),
        key_file=path("key_file"),
        username=mqtt_config.get("username"),
        password=read_secret(
            None, mqtt_config.get("password_file"), mqtt_config.get("password_env"), base
        ),
        allow_plain_password=bool(mqtt_config.get("allow_plain_password", False)),
    )
    return MqttSource(
        spool,
        host=mqtt_config.get("host", "127.0.0.1"),
        port=int(mqtt_config.get("port", 1883)),
        topics=mqtt_config.get("topics", []),
        sparkplug_topics=mqtt_config.get("sparkplug", []),
        client_id=mqtt_config.get("client_id", "gxpmes-connector"),
        protocol=str(mqtt_config.get("protocol", "3.1.1")),
        session_expiry=int(mqtt_config.get("session_expiry", 7 * 24 * 3600)),
        security=security,
        topic_tags=topic_tags,
        payload_tags=bool(mqtt_config.get("payload_tags", False)),
        watch_broker=bool(mqtt_config.get("watch_broker", True)),
        receive_maximum=int(mqtt_config.get("receive_maximum", 1000)),
        group_commit_values=group_commit_values,
        rebirth_interval=float(mqtt_config.get("rebirth_interval", REBIRTH_INTERVAL)),
        publishers=mqtt_config.get("publishers"),
    )


def ingest_process_main(
    options: dict[str, Any], report: Any, stop: Any, parent: int, interval: float
) -> None:
    """The MQTT ingest process: receive, decode, validate, spool, acknowledge — no database.

    ``options``: ``spool``, ``seen_retention``, ``mqtt`` (the ``[mqtt]`` table),
    ``topic_tags``, ``base``, ``group_commit_values``. Sends its counters (a dict) on the
    ``report`` pipe every ``interval`` seconds and once more after a clean stop; stops
    when ``stop`` is set, on SIGTERM or SIGINT, or when the runner ``parent`` is gone.
    """
    die_with_parent()
    for signum in (signal.SIGTERM, signal.SIGINT):  # a service manager stopping the group
        signal.signal(signum, lambda *_: stop.set())
    spool = Spool(options["spool"], seen_retention=float(options["seen_retention"]))
    try:
        source = source_from_config(
            spool,
            options["mqtt"],
            options["topic_tags"],
            Path(options["base"]),
            int(options["group_commit_values"]),
        )
    except Exception as exc:
        send_report(report, {"error": f"{type(exc).__name__}: {exc}"})
        spool.close()
        return
    # What startup allocated (modules, the client) is never garbage: the cyclic
    # collector need not walk it again at every collection of the message stream.
    gc.freeze()
    source.start()
    try:
        while not stop.wait(interval) and os.getppid() == parent:
            if not send_report(report, _report(source)):
                break  # the runner is gone
    finally:
        source.stop()
        send_report(report, {**_report(source), "stopped": True})
        spool.close()


def _report(source: MqttSource) -> dict[str, Any]:
    return {
        "counts": dict(source.counts),
        "broker_dropped": source.broker_dropped,
        "connected": source.connected.is_set(),
        "cpu": time.process_time(),
    }


class MqttProcess(IngestProcess):
    """The runner's handle on the MQTT ingest process (:func:`ingest_process_main`).

    The process receives, decodes, validates, spools and acknowledges; the
    runner's forwarder (another process, another core) reads the spool and
    captures. A process that dies is started again (counted as
    ``ingest_restarts``, an error): the broker redelivers what it left
    unacknowledged.
    """

    label = "MQTT"
    target = staticmethod(ingest_process_main)
