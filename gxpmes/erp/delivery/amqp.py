"""AMQP 0-9-1 (RabbitMQ) with pika: publisher confirms out, manual acks in.

Out: the channel is in confirm mode and every message is published
``mandatory`` and persistent, so :meth:`AmqpTransport.publish` returns only
when the broker has taken responsibility for it (routed to at least one
queue and, for durable queues, written); a nack, an unroutable message or a
closed channel raises :class:`~gxpmes.erp.delivery.DeliveryError`, a lost
connection :class:`~gxpmes.erp.delivery.TransportDown`. The AMQP
``message_id`` is the BOD ID, so receivers deduplicate redeliveries; ``type``
is the document's root element; headers carry the batch, event and SHA-256.

In: ``basic_get`` without auto-ack; a message is acked only after its
outcome is committed, so a crash redelivers it (and the BOD ID makes that a
no-op).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from gxpmes.erp.delivery import DeliveryError, Incoming, Message, TransportDown

__all__ = ["AmqpSource", "AmqpTransport"]


def _parameters(url: str) -> Any:
    import pika

    try:
        parameters = pika.URLParameters(url)
    except Exception as exc:  # pika raises ValueError/TypeError... for a bad URL
        raise DeliveryError(f"invalid AMQP URL: {exc}") from exc
    if "socket_timeout" not in url:
        parameters.socket_timeout = 5
    if "blocked_connection_timeout" not in url:
        parameters.blocked_connection_timeout = 30  # a broker in alarm must not hang us
    if "connection_attempts" not in url:
        parameters.connection_attempts = 1  # retries are the sender's, with back-off
    return parameters


class _Connection:
    """A lazily (re)opened blocking connection and channel."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.connection: Any = None
        self.channel: Any = None

    def open(self) -> Any:
        import pika
        import pika.exceptions

        if self.channel is not None and self.channel.is_open:
            return self.channel
        try:
            if self.connection is None or not self.connection.is_open:
                self.connection = pika.BlockingConnection(_parameters(self.url))
            self.channel = self.connection.channel()
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.reset()
            raise TransportDown(f"{self.name}: cannot connect: {_why(exc)}") from exc
        return self.channel

    def reset(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                connection.close()


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class AmqpTransport:
    """Publishes to one exchange and routing key with publisher confirms."""

    def __init__(self, url: str, *, exchange: str, routing_key: str, name: str) -> None:
        self.link = _Connection(url, name)
        self.exchange = exchange
        self.routing_key = routing_key
        self.name = name

    def publish(self, message: Message) -> None:
        """Publish and wait for the broker's confirm (raises unless confirmed and routed).

        A connection found dead at the first try (idle past its heartbeat, the
        broker restarted) is reopened once before the failure counts: the
        message may then go twice, which the BOD ID makes harmless.
        """

        fresh = self.link.connection is None
        try:
            self._publish(message)
        except TransportDown:
            if fresh:
                raise
            self._publish(message)

    def keepalive(self) -> None:
        """Serve heartbeats while idle, so an idle connection is not dropped by the broker."""
        connection = self.link.connection
        if connection is not None and connection.is_open:
            try:
                connection.process_data_events(0)
            except Exception:  # a dead link: reopened at the next publish
                self.link.reset()

    def _publish(self, message: Message) -> None:
        import pika
        import pika.exceptions

        channel = self.link.open()
        try:
            if not getattr(channel, "_gxpmes_confirming", False):
                channel.confirm_delivery()
                channel._gxpmes_confirming = True
            headers = {"event": message.event, "sha256": message.sha256}
            if message.batch_id is not None:
                headers["batch_id"] = message.batch_id
            channel.basic_publish(
                self.exchange,
                self.routing_key,
                message.body,
                pika.BasicProperties(
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    content_type="application/xml",
                    content_encoding="utf-8",
                    type=message.root,
                    app_id="gxpmes",
                    delivery_mode=2,
                    timestamp=int(time.time()),
                    headers=headers,
                ),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError as exc:
            raise DeliveryError(
                f"{self.name}: message {message.message_id} unroutable (no queue bound to "
                f"exchange {self.exchange!r} with key {self.routing_key!r})"
            ) from exc
        except pika.exceptions.NackError as exc:
            raise DeliveryError(f"{self.name}: broker refused {message.message_id} (nack)") from exc
        except pika.exceptions.ChannelClosedByBroker as exc:
            self.link.channel = None
            raise DeliveryError(f"{self.name}: channel closed by broker: {exc}") from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.link.reset()
            raise TransportDown(f"{self.name}: connection lost: {_why(exc)}") from exc

    def close(self) -> None:
        """Close the connection."""
        self.link.reset()


class AmqpSource:
    """Consumes one queue with manual acknowledgements."""

    def __init__(self, url: str, *, queue: str, name: str) -> None:
        self.link = _Connection(url, name)
        self.queue = queue
        self.name = name

    def fetch(self, timeout: float) -> Incoming | None:
        """The next message of the queue, or None after ``timeout`` seconds without one."""
        import pika.exceptions

        deadline = time.monotonic() + timeout
        while True:
            channel = self.link.open()
            try:
                method, properties, body = channel.basic_get(self.queue, auto_ack=False)
                if method is not None:
                    return Incoming(
                        bytes(body),
                        f"{self.name} queue {self.queue}",
                        (channel, method.delivery_tag),
                        getattr(properties, "message_id", None),
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.link.connection.sleep(min(0.2, remaining))
            except pika.exceptions.ChannelClosedByBroker as exc:
                self.link.channel = None
                raise TransportDown(f"{self.name}: {exc}") from exc
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.link.reset()
                raise TransportDown(f"{self.name}: connection lost: {_why(exc)}") from exc

    def ack(self, incoming: Incoming) -> None:
        """Acknowledge (the outcome is committed); a lost channel means a harmless redelivery."""
        import pika.exceptions

        token: Any = incoming.token
        channel, tag = token
        try:
            channel.basic_ack(tag)
        except (pika.exceptions.AMQPError, OSError) as exc:
            self.link.reset()
            raise TransportDown(f"{self.name}: ack lost (it will be redelivered): {exc}") from exc

    def reset(self) -> None:
        """Drop the connection: the broker requeues every unacknowledged message."""
        self.link.reset()

    def close(self) -> None:
        """Close the connection."""
        self.link.reset()
