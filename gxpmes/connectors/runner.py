"""``gxpmes connect``: runs the configured sources and the forwarder until SIGTERM.

Configuration (TOML)::

    spool = "connector-spool.db"      # durable local buffer
    account = "svc-ot"                # the device account values are recorded under
    client_id = "gxpmes-connector"    # recorded with every value (default: the MQTT client id)
    status_interval = 10              # seconds between status lines
    seen_retention = 900              # seconds dedup keys outlive their values (see Spool)

    [[tags]]                          # where each tag's values go
    tag = "GRAN01/TT-101"
    batch = "B-2026-0001"
    parameter = "GRAN/UP-GRAN/OP-WET/PH-HEAT/temperature"
    unit = "Cel"

    [mqtt]                            # optional
    host = "127.0.0.1"
    port = 1883
    client_id = "gxpmes-connector"    # a persistent session: unacked messages are redelivered
    topics = ["plant/+/pv"]           # plain JSON readings
    sparkplug = ["spBv1.0/PLANT1/#"]  # Sparkplug B
    own_process = true                # receive + decode + spool in a process of its own

    [opcua]                           # optional
    endpoint = "opc.tcp://127.0.0.1:4840/"
    publishing_interval_ms = 100      # sampling_interval_ms = 50, queue_size from both
    own_process = true                # subscribe + decode + spool in a process of its own
    [[opcua.nodes]]
    node_id = "ns=2;s=GRAN01.TT101"
    tag = "GRAN01/TT-101"
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding, TagMap
from gxpmes.connectors.spool import SEEN_RETENTION, Spool
from gxpmes.ebr.engine import BatchEngine, CaptureSource
from gxpmes.errors import ConfigurationError

__all__ = ["Connector", "Status", "load_config"]

log = logging.getLogger("gxpmes.connectors")


def load_config(path: Path) -> dict[str, Any]:
    """Read and check a connector configuration file."""
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read connector configuration {path}: {exc}") from exc
    if not config.get("tags"):
        raise ConfigurationError("the configuration maps no [[tags]] to batch parameters")
    for tag in config["tags"]:
        missing = {"tag", "batch", "parameter", "unit"} - set(tag)
        if missing:
            raise ConfigurationError(f"[[tags]] entry {tag} lacks {', '.join(sorted(missing))}")
    if "mqtt" not in config and "opcua" not in config:
        raise ConfigurationError("configure at least one source: [mqtt] or [opcua]")
    return config


class Connector:
    """The sources, the spool and the forwarder of one running connector."""

    def __init__(self, config: dict[str, Any], engine: BatchEngine, base: Path) -> None:
        self.config = config
        self.base = base
        client_id = config.get("client_id") or config.get("mqtt", {}).get(
            "client_id", "gxpmes-connector"
        )
        self.name = str(config.get("name", client_id))
        """The connector's identity in status lines and in the rejects table."""
        # Refused here, not per value: a client id capture refuses would make every
        # value a dead letter, a name the rejects table cannot hold would be cut.
        for what, text, limit in (("name", self.name, 128), ("client_id", str(client_id), 256)):
            if not text.strip() or len(text) > limit or not text.isprintable():
                raise ConfigurationError(
                    f"connector {what} {text[:40]!r} is blank, not printable or longer "
                    f"than {limit} characters ({len(text)})"
                )
        self.spool = Spool(
            base / config.get("spool", "connector-spool.db"),
            seen_retention=float(config.get("seen_retention", SEEN_RETENTION)),
        )
        self.tags = TagMap(
            {t["tag"]: TagBinding(t["batch"], t["parameter"], t["unit"]) for t in config["tags"]}
        )
        self.forwarder = Forwarder(
            self.spool,
            engine,
            self.tags,
            source=CaptureSource(str(config.get("account", "svc-ot")), str(client_id)),
            connector=self.name,
        )
        self.group_commit_values = int(config.get("group_commit_values", 20_000))
        """Most readings per durable spool transaction (group commit)."""
        if self.group_commit_values < 1:
            raise ConfigurationError("group_commit_values must be 1 or more")
        self.sources: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._mqtt: Any = None  # the MQTT source whose $SYS drop count is watched, if any
        self._count_within = 60.0
        self._count_missing_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _topic_tags(self) -> dict[str, str]:
        return {t["topic"]: t["tag"] for t in self.config["tags"] if "topic" in t}

    def _mqtt_source(self, mqtt_config: dict[str, Any]) -> Any:
        from gxpmes.connectors.mqtt import source_from_config

        return source_from_config(
            self.spool, mqtt_config, self._topic_tags(), self.base, self.group_commit_values
        )

    def _mqtt_process(self, mqtt_config: dict[str, Any]) -> Any:
        from gxpmes.connectors.mqtt import MqttProcess

        self._mqtt_source(mqtt_config)  # configuration errors here, before a process starts
        return MqttProcess(
            {
                "spool": str(self.spool.path),
                "seen_retention": self.spool.seen_retention,
                "mqtt": mqtt_config,
                "topic_tags": self._topic_tags(),
                "base": str(self.base),
                "group_commit_values": self.group_commit_values,
            },
            report_interval=float(mqtt_config.get("report_interval", 0.5)),
        )

    def _opcua_source(self, opcua_config: dict[str, Any]) -> Any:
        from gxpmes.connectors.opcua import source_from_config

        return source_from_config(self.spool, opcua_config, self.base, self.group_commit_values)

    def _opcua_process(self, opcua_config: dict[str, Any]) -> Any:
        from gxpmes.connectors.opcua import OpcUaProcess

        self._opcua_source(opcua_config)  # configuration errors here, before a process starts
        return OpcUaProcess(
            {
                "spool": str(self.spool.path),
                "seen_retention": self.spool.seen_retention,
                "opcua": opcua_config,
                "base": str(self.base),
                "group_commit_values": self.group_commit_values,
            },
            report_interval=float(opcua_config.get("report_interval", 0.5)),
        )

    def start(self) -> None:
        """Start the sources and the forwarder in background threads."""
        mqtt_config = self.config.get("mqtt")
        if mqtt_config:
            # Its own process by default: receiving, decoding and spooling use one core
            # while this process forwards and captures on the other.
            own = bool(mqtt_config.get("own_process", True))
            source = self._mqtt_process(mqtt_config) if own else self._mqtt_source(mqtt_config)
            source.start()
            self.sources.append(source)
            if bool(mqtt_config.get("watch_broker", True)):
                self._mqtt = source
                self._count_within = float(mqtt_config.get("broker_count_within", 60))
        opcua_config = self.config.get("opcua")
        if opcua_config and bool(opcua_config.get("own_process", True)):
            process = self._opcua_process(opcua_config)  # as MQTT: a core of its own
            process.start()
            self.sources.append(process)
        elif opcua_config:
            opcua = self._opcua_source(opcua_config)
            self._loop = asyncio.new_event_loop()
            self.sources.append(opcua)
            loop = self._loop
            thread = threading.Thread(
                target=lambda: loop.run_until_complete(opcua.run()), name="opcua", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._start_forwarder()

    def _start_forwarder(self) -> None:
        forward = threading.Thread(target=self.forwarder.run, name="forwarder", daemon=True)
        forward.start()
        self._forward_thread = forward
        self._threads.append(forward)

    def counts(self) -> Counter[str]:
        """All counters: received, duplicates, refusals by reason, recorded, errors."""
        total: Counter[str] = Counter(self.forwarder.counts)
        for source in self.sources:
            total.update(source.counts)
        return total

    def status(self) -> Status:
        """What the status line reports, as data."""
        forward = getattr(self, "_forward_thread", None)
        if forward is not None and not forward.is_alive() and not self.forwarder.stopping:
            # Forwarder.run does not return before stop(); should it ever, it is started
            # again (an error in the status line), never left dead while values pile up.
            self.forwarder.counts["forwarder_restarts"] += 1
            log.error("the forwarder had stopped; started again")
            self._threads.remove(forward)
            self._start_forwarder()
        counts = self.counts()
        rejects = {k: v for k, v in counts.items() if k in REJECT_REASONS and v}
        dropped = [s.broker_dropped for s in self.sources if getattr(s, "broker_dropped", None)]
        # Rows already recorded whose removal the forwarder deferred are not waiting.
        forwarded = self.forwarder.forwarded_up_to
        oldest = self.spool.oldest_received(after=forwarded)
        return Status(
            recorded=counts["recorded"],
            buffered=self.spool.waiting(after=forwarded),
            lag=(datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0,
            received=counts["received"],
            duplicates=counts["duplicates"],
            rejects=dict(sorted(rejects.items())),
            errors={k: counts[k] for k in ERROR_COUNTS if counts[k]},
            sequence_gaps=counts["sequence_gap"],
            publisher_restarts=counts["publisher_restarts"],
            publisher_unbound=counts["publisher_unbound"],
            broker_dropped=max(dropped, default=0),
            sessions_lost=counts["session_lost"],
            queue_revised=counts["queue_revised"],
            sampling_revised=counts["sampling_revised"],
            broker_count_missing=self._broker_count_missing(),
            not_numeric=counts["not_numeric"],
            rebirths_denied=counts["rebirth_denied"],
            rebirths_held_off=counts["rebirths_held_off"],
        )

    def _broker_count_missing(self) -> float:
        """Seconds the MQTT connection has been up without the broker's dropped-message
        count, once that exceeds ``broker_count_within`` (else 0).

        Mosquitto publishes the count (retained) every ``sys_interval``, 10 s by default:
        none for longer means the connector cannot read the topic (an ACL without it, a
        broker without $SYS) and a drop at the broker would pass without a warning.
        """
        source = self._mqtt
        if source is None or source.broker_dropped is not None or not source.connected.is_set():
            self._count_missing_since = None
            return 0.0
        now = time.monotonic()
        if self._count_missing_since is None:
            self._count_missing_since = now
        missing = now - self._count_missing_since
        return missing if missing > self._count_within else 0.0

    def status_line(self, previous: int, seconds: float) -> tuple[str, int]:
        """``values/s, buffered, lag, rejects by reason, errors, warnings`` since ``previous``."""
        status = self.status()
        rate = (status.recorded - previous) / seconds if seconds > 0 else 0.0
        return status.line(rate), status.recorded

    def stop(self) -> None:
        """Stop the sources, forward what is spooled, and stop the forwarder."""
        for source in self.sources:
            if hasattr(source, "client") or hasattr(source, "options"):  # MQTT: thread, process
                source.stop()
            elif self._loop is not None:
                self._loop.call_soon_threadsafe(source.stop)
        self.forwarder.stop()
        for thread in self._threads:
            thread.join(timeout=15)
        try:
            self.forwarder.forward_once()  # last drain; anything left stays spooled
            while self.spool.rejected_count():  # and every dead letter (bounded per pass)
                self.forwarder.forward_once()
        except Exception as exc:  # database down at shutdown: the spool keeps the values
            log.warning("values kept in the spool at shutdown: %s", exc)

    def close(self) -> None:
        """Close the spool (after :meth:`stop`)."""
        self.spool.close()


REJECT_REASONS = frozenset(
    {
        "malformed",
        "too_large",
        "too_long",
        "unknown_tag",
        "wrong_type",
        "non_finite",
        "naive_timestamp",
        "future_timestamp",
        "bad_timestamp",
        "bad_quality_code",
        "tag_override",
        "unknown_alias",
        "decoder_error",
        "unspoolable",
        "unrecordable",
        "capture_refused",
        "sequence_gap",
        "queue_overflow",
        "not_monitored",
        "connection_gap",
    }
)
"""Counters that are dead letters (kept in the rejects table), not connector errors."""

ERROR_COUNTS = (
    "spool_errors",
    "db_errors",
    "forwarder_errors",
    "forwarder_restarts",
    "connection_errors",
    "connection_refused",
    "disconnects",
    "ingest_restarts",
    "ingest_kills",
)
"""Counters that are the connector's own trouble; a clean stop (SIGTERM) adds to none."""


@dataclass(frozen=True)
class Status:
    """One status report of a running connector."""

    recorded: int
    buffered: int
    lag: float
    """Seconds since the oldest value still in the spool was received (0 when empty)."""
    received: int
    duplicates: int
    rejects: dict[str, int]
    errors: dict[str, int]
    sequence_gaps: int
    broker_dropped: int
    sessions_lost: int
    queue_revised: int = 0
    """OPC UA items granted a smaller queue than requested, counted at each subscription."""
    sampling_revised: int = 0
    """OPC UA items sampled more coarsely than requested, counted at each subscription."""
    broker_count_missing: float = 0.0
    """Seconds connected to the MQTT broker without its dropped-message count ($SYS),
    once beyond ``broker_count_within`` (else 0): broker drops cannot be seen."""
    not_numeric: int = 0
    """Values of unmapped tags that are not numbers (Sparkplug Booleans, Strings, nulls:
    states, alarms, names), counted and not recorded; a mapped one is ``wrong_type``."""
    publisher_restarts: int = 0
    """JSON publishers that started their ``seq`` count again (a restart or a reset)."""
    publisher_unbound: int = 0
    """JSON readings whose ``"publisher"`` is not bound to their topic by ``[mqtt]
    publishers``: counted for their topic alone, not under that name."""
    rebirths_denied: int = 0
    """Sparkplug rebirth requests right after which the broker dropped the connection: its
    ACL denies the connector write access to NCMD (Mosquitto 2.0 disconnects)."""
    rebirths_held_off: int = 0
    """Sparkplug rebirth requests not sent: the same edge node was asked moments before, or
    requests are held off after a denied one."""

    def warnings(self) -> list[str]:
        """Signs that values may have been lost before they reached the connector, and
        OPC UA subscriptions the server granted less than the configuration asks for."""
        out = []
        if self.sequence_gaps:
            out.append(f"{self.sequence_gaps} sequence gap(s): values lost before the connector")
        if self.publisher_restarts:
            out.append(
                f"{self.publisher_restarts} JSON publisher seq restart(s): a publisher counted "
                "again from the start, and readings it sent before that never arrived cannot "
                "be counted (see the log)"
            )
        if self.publisher_unbound:
            out.append(
                f"{self.publisher_unbound} JSON reading(s) name a publisher that [mqtt] "
                "publishers does not bind to their topic: their seq is counted for the topic "
                "alone (see the log)"
            )
        if self.rejects.get("queue_overflow"):
            out.append(
                f"{self.rejects['queue_overflow']} OPC UA queue overflow(s): values discarded "
                "by the server (raise queue_size)"
            )
        if self.broker_dropped:
            out.append(
                f"the broker reports {self.broker_dropped} dropped message(s): "
                "check max_queued_messages"
            )
        if self.broker_count_missing:
            out.append(
                f"no dropped-message count from the MQTT broker in "
                f"{self.broker_count_missing:.0f} s connected: broker drops cannot be seen "
                "(grant the connector read access to $SYS/broker/publish/messages/dropped "
                "in the broker's acl_file, or set watch_broker = false for a broker without it)"
            )
        if self.sessions_lost:
            out.append(
                f"the broker lost this connector's session {self.sessions_lost} time(s): "
                "values queued for it are gone (broker persistence, session expiry)"
            )
        if self.rebirths_denied:
            out.append(
                f"{self.rebirths_denied} Sparkplug rebirth request(s) denied: the broker "
                "dropped the connection right after each, and edge nodes are not asked for "
                f"their births ({self.rebirths_held_off} request(s) held off); grant the "
                "connector write access to spBv1.0/+/NCMD/+ in the broker's acl_file"
            )
        if self.queue_revised:
            out.append(
                f"{self.queue_revised} OPC UA queue revision(s): the server granted monitored "
                "items a smaller queue than requested, a burst may overflow them (see the log)"
            )
        if self.sampling_revised:
            out.append(
                f"{self.sampling_revised} OPC UA sampling revision(s): the server samples "
                "monitored items more coarsely than requested, fewer values are recorded than "
                "configured (see the log)"
            )
        return out

    def line(self, rate: float) -> str:
        """The status line printed by ``gxpmes connect``."""
        rejects = sum(self.rejects.values())
        by_reason = ", ".join(f"{k} {v}" for k, v in self.rejects.items())
        errors = sum(self.errors.values())
        text = (
            f"connector: {rate:.1f} values/s recorded, {self.buffered} buffered "
            f"(lag {self.lag:.1f} s), {self.received} received, {self.duplicates} duplicates, "
            f"{rejects} rejected"
            + (f" ({by_reason})" if by_reason else "")
            # Unmapped states, alarms, names: normal traffic, said only when there is some.
            + (f", {self.not_numeric} not numeric (unmapped)" if self.not_numeric else "")
            + f", {errors} errors"
        )
        if self.errors:
            text += " (" + ", ".join(f"{k} {v}" for k, v in self.errors.items()) + ")"
        for warning in self.warnings():
            text += f"; WARNING: {warning}"
        return text


def run_until_signalled(
    connector: Connector, stop: threading.Event, interval: float, echo: Any = print
) -> None:
    """Start, print a status line every ``interval`` seconds, stop when ``stop`` is set."""
    connector.start()
    previous, last = 0, time.monotonic()
    while not stop.wait(interval):
        now = time.monotonic()
        line, previous = connector.status_line(previous, now - last)
        last = now
        echo(line, flush=True)
    connector.stop()
    line, _ = connector.status_line(previous, time.monotonic() - last)
    echo(line + " (stopped)", flush=True)
    connector.close()
