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
from pathlib import Path
from typing import Any

from gxpmes.connectors.groupcommit import Delivery, GroupCommit
from gxpmes.connectors.model import (
    DeadLetter,
    DecodeError,
    Problem,
    Reading,
    check_reading,
    check_tag,
    safe_text,
    to_decimal,
)
from gxpmes.connectors.spool import Spool
from gxpmes.errors import ConfigurationError

__all__ = ["OpcUaNode", "OpcUaSecurity", "OpcUaSource", "quality_of"]

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
        security: OpcUaSecurity | None = None,
        group_commit_values: int = 20_000,
    ) -> None:
        self.security = security or OpcUaSecurity()
        self.security.check()
        self.spool = spool
        self.endpoint = endpoint
        self.nodes = nodes
        self.publishing_interval_ms = publishing_interval_ms
        self.max_backoff = max_backoff
        self.counts: Counter[str] = Counter()
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tags: dict[str, str] = {}
        self.group_commit_values = group_commit_values
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
            try:
                await self.security.apply(client)
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
        node_id = node.nodeid.to_string()
        tag = self._tags.get(node_id, node_id)
        now = datetime.now(UTC)
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
            check_tag(tag)
            self._submit(Delivery([check_reading(reading, now)], done=self._received))
        except DecodeError as exc:
            self._dead_letter(Problem(exc.reason, exc.detail, tag), node_id, value, now)
        except Exception as exc:  # an unexpected value shape must not stop the subscription
            self._dead_letter(
                Problem("decoder_error", f"{type(exc).__name__}: {exc}", tag), node_id, value, now
            )

    def _received(self, new: int) -> None:
        self.counts["received"] += 1

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

    def _dead_letter(self, problem: Problem, node_id: str, value: Any, now: datetime) -> None:
        self.counts[problem.reason] += 1
        log.warning("refused OPC UA value of %s: %s", node_id, safe_text(problem.detail))
        raw = safe_text(repr(value), 4096).encode("utf-8")
        try:
            self._submit(Delivery([], [DeadLetter.of(problem, f"opcua {node_id}", raw, now)]))
        except Exception:
            self.counts["spool_errors"] += 1
            log.exception("could not keep the refused OPC UA value of %s", node_id)

    def status_change_notification(self, status: Any) -> None:
        self.counts["status_changes"] += 1
