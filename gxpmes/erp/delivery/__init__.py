"""Delivery of the outbox: endpoints and the transports behind them.

An endpoint is ``amqp[s]://USER:PASS@HOST[:PORT]/VHOST?exchange=X&routing_key=Y``
(publish) or ``...?queue=Q`` (consume), or ``dir:PATH`` (a drop folder).
:func:`open_transport` and :func:`open_source` build the matching transport;
:mod:`gxpmes.erp.delivery.sender` runs the outbox through one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from gxpmes.errors import ConfigurationError, GxpError

__all__ = [
    "DeliveryError",
    "Endpoint",
    "Incoming",
    "Message",
    "Source",
    "Transport",
    "TransportDown",
    "mask",
    "open_source",
    "open_transport",
    "parse_endpoint",
]


class DeliveryError(GxpError):
    """This message was not taken (refused, unroutable, not written)."""


class TransportDown(DeliveryError):
    """The broker or folder cannot be reached at all: no message can go now."""


@dataclass(frozen=True)
class Message:
    """One document as a transport sends it."""

    message_id: str
    root: str
    body: bytes
    batch_id: str | None
    sha256: str
    event: str
    position: int
    correlation_id: str | None = None


@dataclass(frozen=True)
class Incoming:
    """One document as a source hands it over; ``token`` is what :meth:`Source.ack` takes."""

    body: bytes
    origin: str
    token: object
    message_id: str | None = None


class Transport(Protocol):
    """Sends messages; :meth:`publish` returns only once the message is durably taken."""

    name: str

    def publish(self, message: Message) -> None:
        """Deliver one message or raise :class:`DeliveryError` / :class:`TransportDown`."""

    def close(self) -> None:
        """Release connections."""


class Source(Protocol):
    """Hands over inbound documents; a document is gone only after :meth:`ack`."""

    name: str

    def fetch(self, timeout: float) -> Incoming | None:
        """The next document, or None when none came within ``timeout`` seconds."""

    def ack(self, incoming: Incoming) -> None:
        """The document is recorded: remove it from the source."""

    def reset(self) -> None:
        """Hand every unacknowledged document out again (after a failure to record them)."""

    def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint: ``kind`` is amqp or dir; ``options`` are our query parameters."""

    kind: str
    url: str
    path: str
    options: dict[str, str]


_OURS = ("exchange", "routing_key", "queue", "declare")


def mask(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_endpoint(text: str) -> Endpoint:
    """Split an endpoint into what pika gets (``url``) and our own options."""
    if text.startswith("dir:"):
        path = text[4:]
        if not path:
            raise ConfigurationError("dir: needs a folder (dir:PATH)")
        return Endpoint("dir", text, path, {})
    parts = urlsplit(text)
    if parts.scheme not in ("amqp", "amqps"):
        raise ConfigurationError(
            f"endpoint {mask(text)!r} is neither amqp[s]://USER:PASS@HOST/VHOST?... nor dir:PATH"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in _OURS}
    rest = "&".join(f"{k}={v}" for k, v in pairs if k not in _OURS)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, ""))
    return Endpoint("amqp", url, "", ours)


def open_transport(text: str) -> Transport:
    """The transport that publishes to endpoint ``text``."""
    endpoint = parse_endpoint(text)
    if endpoint.kind == "dir":
        from gxpmes.erp.delivery.folder import FolderTransport

        return FolderTransport(endpoint.path)
    from gxpmes.erp.delivery.amqp import AmqpTransport

    if "exchange" not in endpoint.options:
        raise ConfigurationError(f"{mask(text)}: name the exchange (?exchange=X&routing_key=Y)")
    return AmqpTransport(
        endpoint.url,
        exchange=endpoint.options["exchange"],
        routing_key=endpoint.options.get("routing_key", ""),
        name=mask(text),
    )


def open_source(text: str) -> Source:
    """The source that consumes endpoint ``text``."""
    endpoint = parse_endpoint(text)
    if endpoint.kind == "dir":
        from gxpmes.erp.delivery.folder import FolderSource

        return FolderSource(endpoint.path)
    from gxpmes.erp.delivery.amqp import AmqpSource

    if not endpoint.options.get("queue"):
        raise ConfigurationError(f"{mask(text)}: name the queue to consume (?queue=Q)")
    return AmqpSource(endpoint.url, queue=endpoint.options["queue"], name=mask(text))
