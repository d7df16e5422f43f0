"""``gxpmes connect``: runs the configured sources and the forwarder until SIGTERM.

Configuration (TOML)::

    spool = "connector-spool.db"      # durable local buffer
    status_interval = 10              # seconds between status lines

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

    [opcua]                           # optional
    endpoint = "opc.tcp://127.0.0.1:4840/"
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
from pathlib import Path
from typing import Any

from gxpmes.connectors.forwarder import Forwarder
from gxpmes.connectors.model import TagBinding, TagMap
from gxpmes.connectors.spool import Spool
from gxpmes.ebr.engine import BatchEngine
from gxpmes.errors import ConfigurationError

__all__ = ["Connector", "load_config"]

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
        self.spool = Spool(base / config.get("spool", "connector-spool.db"))
        self.tags = TagMap(
            {t["tag"]: TagBinding(t["batch"], t["parameter"], t["unit"]) for t in config["tags"]}
        )
        self.forwarder = Forwarder(self.spool, engine, self.tags)
        self.sources: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the sources and the forwarder in background threads."""
        mqtt_config = self.config.get("mqtt")
        if mqtt_config:
            from gxpmes.connectors.mqtt import MqttSource

            source = MqttSource(
                self.spool,
                host=mqtt_config.get("host", "127.0.0.1"),
                port=int(mqtt_config.get("port", 1883)),
                topics=mqtt_config.get("topics", []),
                sparkplug_topics=mqtt_config.get("sparkplug", []),
                client_id=mqtt_config.get("client_id", "gxpmes-connector"),
            )
            source.start()
            self.sources.append(source)
        opcua_config = self.config.get("opcua")
        if opcua_config:
            from gxpmes.connectors.opcua import OpcUaNode, OpcUaSource

            self._loop = asyncio.new_event_loop()
            opcua = OpcUaSource(
                self.spool,
                opcua_config["endpoint"],
                [OpcUaNode(n["node_id"], n["tag"]) for n in opcua_config.get("nodes", [])],
            )
            self.sources.append(opcua)
            loop = self._loop
            thread = threading.Thread(
                target=lambda: loop.run_until_complete(opcua.run()), name="opcua", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        forward = threading.Thread(target=self.forwarder.run, name="forwarder", daemon=True)
        forward.start()
        self._threads.append(forward)

    def counts(self) -> Counter[str]:
        """All counters: received, duplicates, refusals by reason, recorded, errors."""
        total: Counter[str] = Counter(self.forwarder.counts)
        for source in self.sources:
            total.update(source.counts)
        return total

    def status_line(self, previous: int, seconds: float) -> tuple[str, int]:
        """``values/s, buffered, errors`` since the previous line."""
        counts = self.counts()
        recorded = counts["recorded"]
        errors = sum(
            v
            for k, v in counts.items()
            if k not in ("received", "recorded", "duplicates", "connects", "status_changes")
        )
        rate = (recorded - previous) / seconds if seconds > 0 else 0.0
        return (
            f"connector: {rate:.1f} values/s recorded, {len(self.spool)} buffered, "
            f"{counts['received']} received, {counts['duplicates']} duplicates, {errors} errors"
        ), recorded

    def stop(self) -> None:
        """Stop the sources, forward what is spooled, and stop the forwarder."""
        for source in self.sources:
            if hasattr(source, "client"):
                source.stop()
            elif self._loop is not None:
                self._loop.call_soon_threadsafe(source.stop)
        self.forwarder.stop()
        for thread in self._threads:
            thread.join(timeout=15)
        try:
            self.forwarder.forward_once()  # last drain; anything left stays spooled
        except Exception as exc:  # database down at shutdown: the spool keeps the values
            log.warning("values kept in the spool at shutdown: %s", exc)

    def close(self) -> None:
        """Close the spool (after :meth:`stop`)."""
        self.spool.close()


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
