"""OPC UA source (asyncua): subscriptions with source/server timestamps and status codes,
reconnecting with back-off and resubscribing after a server restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gxpmes.connectors.model import DecodeError, Reading, check_reading, to_decimal
from gxpmes.connectors.spool import Spool

__all__ = ["OpcUaNode", "OpcUaSource", "quality_of"]

log = logging.getLogger("gxpmes.connectors.opcua")


@dataclass(frozen=True)
class OpcUaNode:
    """A subscribed node and the tag its values carry."""

    node_id: str
    tag: str


def quality_of(status: Any) -> str:
    """OPC UA StatusCode → Good / Uncertain / Bad (the severity bits 30–31)."""
    value = int(getattr(status, "value", status) or 0)
    severity = value >> 30
    return {0: "Good", 1: "Uncertain"}.get(severity, "Bad")


class OpcUaSource:
    """Subscribes to nodes and spools each data change; survives server restarts."""

    def __init__(
        self,
        spool: Spool,
        endpoint: str,
        nodes: list[OpcUaNode],
        *,
        publishing_interval_ms: int = 100,
        max_backoff: float = 30.0,
    ) -> None:
        self.spool = spool
        self.endpoint = endpoint
        self.nodes = nodes
        self.publishing_interval_ms = publishing_interval_ms
        self.max_backoff = max_backoff
        self.counts: Counter[str] = Counter()
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tags: dict[str, str] = {}

    async def run(self) -> None:
        """Connect, subscribe, and reconnect with back-off until :meth:`stop`."""
        from asyncua.client.client import Client

        backoff = 0.5
        while not self._stopping.is_set():
            client = Client(self.endpoint, timeout=4)
            try:
                await client.connect()
                subscription = await client.create_subscription(self.publishing_interval_ms, self)
                handles = []
                for node in self.nodes:
                    ua_node = client.get_node(node.node_id)
                    self._tags[ua_node.nodeid.to_string()] = node.tag
                    handles.append(ua_node)
                await subscription.subscribe_data_change(handles)
                self.connected.set()
                self.counts["connects"] += 1
                backoff = 0.5
                while not self._stopping.is_set():
                    await asyncio.wait_for(client.check_connection(), timeout=5)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=1.0)
            except Exception as exc:  # server down, restarted, network error
                self.counts["connection_errors"] += 1
                log.warning("OPC UA %s: %s; reconnecting in %.1f s", self.endpoint, exc, backoff)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):  # already gone
                    await client.disconnect()
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            backoff = min(self.max_backoff, backoff * 2)

    def stop(self) -> None:
        """Ask :meth:`run` to disconnect and return."""
        self._stopping.set()

    # asyncua subscription handler
    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        tag = self._tags.get(node.nodeid.to_string(), node.nodeid.to_string())
        try:
            data_value = data.monitored_item.Value
            source = data_value.SourceTimestamp or data_value.ServerTimestamp
            if source is None:
                raise DecodeError("malformed", "no source or server timestamp", tag)
            source = source if source.tzinfo else source.replace(tzinfo=UTC)  # OPC UA times are UTC
            server = data_value.ServerTimestamp
            server = (server if server.tzinfo else server.replace(tzinfo=UTC)) if server else None
            number: Decimal = to_decimal(value, tag)
            reading = Reading(
                tag,
                number,
                source,
                quality_of(data_value.StatusCode),
                server,
                dedup_key=f"opcua|{tag}|{source.isoformat()}|{number}",
            )
            self.spool.put([check_reading(reading, datetime.now(UTC))])
            self.counts["received"] += 1
        except DecodeError as exc:
            self.counts[exc.reason] += 1
            log.warning("refused OPC UA value of %s: %s", tag, exc)
            self.spool.reject(tag, exc.reason, f"OPC UA {node.nodeid.to_string()}: {exc}")

    def status_change_notification(self, status: Any) -> None:
        self.counts["status_changes"] += 1
