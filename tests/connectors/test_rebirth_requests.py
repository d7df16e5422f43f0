"""Sparkplug rebirth requests: sent only after the message that asked for one is
acknowledged, at most one per edge node per interval, and held off after the broker
dropped the connection right after one (an ACL that denies NCMD writes).

The end-to-end case against a Mosquitto whose ACL denies the request is in
test_broker_loss.py (test_a_denied_rebirth_request_does_not_stop_delivery).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from gxpmes.connectors.mqtt import MqttSource, RebirthRequests
from gxpmes.connectors.runner import Status
from gxpmes.connectors.sparkplug import DOUBLE, Metric, Payload, encode_payload
from gxpmes.connectors.spool import Spool
from gxpmes.errors import ConfigurationError

NDATA = "spBv1.0/PLANT1/NDATA/EDGE01"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Wire:
    """Stands in for the paho client: what the source sends, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.sent.append(("puback", mid))

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.sent.append(("publish", topic))


def test_one_request_per_edge_node_per_interval() -> None:
    clock = Clock()
    requests = RebirthRequests(10.0, clock=clock)
    assert requests.allow("PLANT1/EDGE01") and requests.allow("PLANT1/EDGE02")
    clock.now += 9.9
    assert not requests.allow("PLANT1/EDGE01")
    clock.now += 0.1
    assert requests.allow("PLANT1/EDGE01")
    clock.now += 2.5
    assert requests.connection_lost() is None  # 2.5 s after the last request: not its doing


def test_a_connection_lost_right_after_a_request_holds_every_request_off() -> None:
    clock = Clock()
    requests = RebirthRequests(10.0, hold_off=60.0, max_hold_off=200.0, clock=clock)
    assert requests.allow("PLANT1/EDGE01")
    clock.now += 0.2
    assert requests.connection_lost() == 60.0
    assert requests.connection_lost() is None  # one request, one denial
    clock.now += 59.0
    assert not requests.allow("PLANT1/EDGE02")  # no edge node is asked meanwhile
    clock.now += 1.0
    assert requests.allow("PLANT1/EDGE02")
    # Denied again: the hold-off doubles, up to its maximum.
    assert requests.connection_lost() == 120.0
    clock.now += 120.0
    assert requests.allow("PLANT1/EDGE01")
    assert requests.connection_lost() == 200.0
    clock.now += 200.0
    # A request the connection outlives ends the doubling.
    assert requests.allow("PLANT1/EDGE02")
    clock.now += 2.5
    assert requests.connection_lost() is None
    assert requests.allow("PLANT1/EDGE01")
    assert requests.connection_lost() == 60.0


def test_requests_less_than_the_denial_window_apart_still_end_the_doubling() -> None:
    # Many edge nodes asked one after another, each request within 2 s of the one
    # before: the connection outlived the first ones, so the broker allows requests,
    # and a loss after them is one hold-off, not a doubled one (a flood of requests
    # must not turn every network drop into an hour without rebirths).
    clock = Clock()
    requests = RebirthRequests(10.0, hold_off=60.0, max_hold_off=3600.0, clock=clock)
    assert requests.allow("PLANT1/EDGE01")
    clock.now += 0.5
    assert requests.connection_lost() == 60.0
    clock.now += 61.0
    for n in range(20):
        assert requests.allow(f"PLANT1/EDGE{n:02}")
        clock.now += 1.0
    clock.now -= 0.5  # half a second after the last request
    assert requests.connection_lost() == 60.0
    # A broker that denies every request cuts the connection at the first: still doubled.
    clock.now += 60.0
    assert requests.allow("PLANT1/EDGE01")
    clock.now += 0.1
    assert requests.connection_lost() == 120.0


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="rebirth_interval -1"):
        RebirthRequests(-1.0)


def data_before_birth(seq: int = 0) -> bytes:
    ms = int(time.time() * 1000)
    metric = Metric(alias=1, timestamp=ms, datatype=DOUBLE, value=70.5)
    return encode_payload(Payload(timestamp=ms, seq=seq, metrics=[metric]))


def message(payload: bytes, mid: int) -> SimpleNamespace:
    return SimpleNamespace(topic=NDATA, payload=payload, dup=False, mid=mid, qos=1)


def wired(spool: Spool) -> tuple[MqttSource, Wire]:
    source = MqttSource(spool, sparkplug_topics=["spBv1.0/PLANT1/#"], client_id="gx-rebirth")
    wire = Wire()
    source.client = wire
    return source, wire


def test_the_request_goes_out_after_the_ack_of_the_message_that_asked(spool: Spool) -> None:
    source, wire = wired(spool)
    delivery = source._delivery(NDATA, data_before_birth(), ack=lambda: wire.ack(1, 1) or True)
    assert wire.sent == []  # decoding asks for nothing yet: the message is not spooled
    assert delivery.ack is not None
    delivery.ack()
    assert wire.sent == [("puback", 1), ("publish", "spBv1.0/PLANT1/NCMD/EDGE01")]
    # Through the message callback, spool commit and all: the same order.
    source._on_message(source.client, None, message(data_before_birth(1), 2))
    assert wire.sent[2] == ("puback", 2)
    assert source.counts["rebirths_held_off"] == 1  # EDGE01 was asked a moment ago


def test_no_request_when_the_ack_could_not_be_sent(spool: Spool) -> None:
    source, wire = wired(spool)
    delivery = source._delivery(NDATA, data_before_birth(), ack=lambda: False)
    assert delivery.ack is not None
    delivery.ack()  # the connection is gone: the broker delivers the message again
    assert wire.sent == [] and source.counts["rebirth_requests"] == 0


def test_a_denied_request_is_counted_and_holds_requests_off(spool: Spool) -> None:
    source, wire = wired(spool)
    source._on_message(source.client, None, message(data_before_birth(), 1))
    assert source.counts["rebirth_requests"] == 1
    source._on_disconnect(source.client, None, None, None, None)  # the broker cut it off
    assert source.counts["disconnects"] == 1 and source.counts["rebirth_denied"] == 1
    # The next message asking for a rebirth is acknowledged, and no request follows it.
    source._on_message(source.client, None, message(data_before_birth(1), 2))
    assert [kind for kind, _ in wire.sent] == ["puback", "publish", "puback"]
    assert source.counts["rebirth_requests"] == 1 and source.counts["rebirths_held_off"] == 1
    status = Status(0, 0, 0.0, 0, 0, {}, {}, 0, 0, 0, rebirths_denied=1, rebirths_held_off=4)
    [warning] = status.warnings()
    assert warning.startswith("1 Sparkplug rebirth request(s) denied")
    assert "4 request(s) held off" in warning and "spBv1.0/+/NCMD/+" in warning
    assert f"; WARNING: {warning}" in status.line(1.0)
    assert Status(0, 0, 0.0, 0, 0, {}, {}, 0, 0, 0, rebirths_held_off=4).warnings() == []
