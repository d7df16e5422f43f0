"""Delivery through the real RabbitMQ: confirms, order, outages, nacks, duplicates, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from erp_support import (
    AMQP_URL,
    FakeErp,
    Proxy,
    confirmation,
    outbox,
    production_order,
    release_batch,
    topology,
)
from waiting import wait_until

from gxpmes.ebr.planning import planned_batch
from gxpmes.erp.delivery import open_source, open_transport
from gxpmes.erp.delivery.pump import receive
from gxpmes.erp.delivery.sender import Policy, Sender
from gxpmes.erp.exceptions import open_exceptions
from gxpmes.erp.inbound import Receiver
from gxpmes.records.verify import verify_record

B = "B-AMQP-1"


def take_answers(plant: Any, names: Any) -> Any:
    return receive(
        Receiver(plant.engine, plant.engine.erp_b2mml),
        open_source(names.receive_url()),
        follow=False,
    )


def test_released_batch_is_sent_confirmed_and_delivered(erp_plant_any: Any) -> None:
    erp_plant = erp_plant_any  # SQLite and PostgreSQL
    release_batch(erp_plant, B)
    with topology() as names:
        sender = Sender(erp_plant.db, open_transport(names.send_url()))
        try:
            assert sender.run_once() == 5
        finally:
            sender.transport.close()
        assert {r["status"] for r in outbox(erp_plant.db, B)} == {"sent"}
        erp = FakeErp(names)
        erp.drain()
        # ERP saw the batch's documents in outbox order, each with its BOD ID as message id.
        assert erp.order == [r["message_id"] for r in outbox(erp_plant.db, B)]
        for message_id, body in erp.seen.items():
            assert f"<BODID>{message_id}</BODID>".encode() in body
        counts = take_answers(erp_plant, names)
        assert counts["confirmation"] == 5
    assert {r["status"] for r in outbox(erp_plant.db, B)} == {"delivered"}
    report = verify_record(erp_plant.db.engine, trusted_keys=erp_plant.trusted_keys())
    assert not [p for p in report.problems if p.table.startswith("erp_")]


def test_rejection_becomes_an_exception_in_review(erp_plant: Any) -> None:
    release_batch(erp_plant, B)
    with topology() as names:
        sender = Sender(erp_plant.db, open_transport(names.send_url()))
        sender.run_once()
        sender.transport.close()
        erp = FakeErp(names)
        erp.drain(answer=None)
        record = next(
            r for r in outbox(erp_plant.db, B) if r["document"] == "BatchProductionRecord"
        )
        erp.publish(
            confirmation(record["message_id"], "Rejected", "plant 1000 not open for posting")
        )
        take_answers(erp_plant, names)
    items = [i for i in erp_plant.engine.review_by_exception(B) if i.kind == "erp:rejected"]
    assert len(items) == 1 and items[0].open
    assert "plant 1000 not open for posting" in items[0].detail
    # ERP problems do not block QA decisions, and a person closes them with a resolution.
    from gxpmes.erp.exceptions import resolve

    resolve(erp_plant.engine, erp_plant.sessions["qa1"], items[0].item_id, resolution="reposted")
    assert not [i for i in erp_plant.engine.review_by_exception(B) if i.open]


def test_missing_confirmation_becomes_an_exception(erp_plant: Any) -> None:
    release_batch(erp_plant, B)
    with topology() as names:
        policy = Policy(confirm_within=timedelta(hours=1))
        sender = Sender(erp_plant.db, open_transport(names.send_url()), policy)
        sender.run_once()
        assert open_exceptions(erp_plant.db, B) == []
        erp_plant.clock.advance(hours=2)
        sender.run_once()
        sender.transport.close()
    kinds = {e["kind"] for e in open_exceptions(erp_plant.db, B)}
    assert kinds == {"unconfirmed"}
    assert {r["status"] for r in outbox(erp_plant.db, B)} == {"unconfirmed"}


def test_unroutable_delivery_keeps_failing_into_an_exception(erp_plant: Any) -> None:
    """A wrong exchange: every attempt fails; after max attempts the batch shows it."""
    release_batch(erp_plant, B)
    with topology() as names:
        bad = f"{AMQP_URL}?exchange={names.exchange}-missing&routing_key=to-erp"
        policy = Policy(max_attempts=3, backoff=0.0)
        sender = Sender(erp_plant.db, open_transport(bad), policy)
        for _ in range(3):
            sender.run_once()
        sender.transport.close()
        rows = outbox(erp_plant.db, B)
        # Order per batch: only the head was tried; the rest waited behind it.
        assert [r["attempts"] for r in rows] == [3, 0, 0, 0, 0]
        assert {r["status"] for r in rows} == {"pending"}  # never dropped
        items = [i for i in erp_plant.engine.review_by_exception(B) if i.kind.startswith("erp:")]
        assert [i.kind for i in items] == ["erp:delivery_failed"]
        # Fixed destination: everything goes, in order; the exception stays for a person.
        good = Sender(erp_plant.db, open_transport(names.send_url()), policy)
        assert good.run_once() == 5
        good.transport.close()
        erp = FakeErp(names)
        erp.drain()
        assert erp.order == [r["message_id"] for r in rows]


def test_outage_mid_stream_loses_and_duplicates_nothing(erp_plant: Any) -> None:
    """The connection is cut while sending; after it returns ERP has every document once."""
    for n in range(3):
        release_batch(erp_plant, f"{B}-{n}")
        for equipment_id in ("GRAN-01", "BLEND-01"):
            erp_plant.engine.record_cleaning(erp_plant.sessions["op1"], equipment_id, "cleaned")
    proxy = Proxy()
    with topology() as names:
        url = proxy.url(f"exchange={names.exchange}&routing_key=to-erp")
        sender = Sender(erp_plant.db, open_transport(url), Policy(backoff=0.0, window=2))
        transport = sender.transport
        real = transport.publish
        sent = []

        def publish_then_cut(message: Any) -> None:
            real(message)
            sent.append(message.message_id)
            if len(sent) == 4:
                proxy.cut()  # the broker "goes away" after the 4th confirm

        transport.publish = publish_then_cut  # type: ignore[method-assign]
        sender.run_once()
        assert sender.down is not None and "connect" in sender.down
        proxy.restore()
        transport.publish = real  # type: ignore[method-assign]
        wait_until(lambda: sender.run_once() >= 0 and not outbox_pending(erp_plant), what="sent")
        transport.close()
        erp = FakeErp(names)
        erp.drain()
        expected = [r["message_id"] for r in outbox(erp_plant.db)]
        assert sorted(erp.seen) == sorted(expected)  # nothing lost
        assert erp.deliveries == len(expected)  # nothing twice (the cut came after a confirm)
        for n in range(3):
            batch = [r["message_id"] for r in outbox(erp_plant.db, f"{B}-{n}")]
            assert [m for m in erp.order if m in batch] == batch  # in order per batch
    proxy.close()


def outbox_pending(plant: Any) -> bool:
    return any(r["status"] == "pending" for r in outbox(plant.db))


def test_consumer_nacks_and_duplicate_deliveries(erp_plant: Any, monkeypatch: Any) -> None:
    """ERP's consumer nacks (requeue) and the sender resends after a crash: dedup holds."""
    release_batch(erp_plant, B)
    with topology() as names:
        sender = Sender(erp_plant.db, open_transport(names.send_url()))
        from gxpmes.erp.delivery import sender as sender_module

        def crash(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("killed before recording")

        monkeypatch.setattr(sender_module, "mark_sent", crash)
        with pytest.raises(RuntimeError, match="killed"):
            sender.run_once()
        monkeypatch.undo()
        assert {r["status"] for r in outbox(erp_plant.db, B)} == {"pending"}
        assert sender.run_once() == 5  # at least once: sent again
        sender.transport.close()
        erp = FakeErp(names)
        erp.drain(nack_first=3)
        assert erp.deliveries == 10  # every document twice on the wire ...
        assert len(erp.seen) == 5  # ... once in ERP's view, by message id
        counts = take_answers(erp_plant, names)
        assert counts["confirmation"] == 5
        # A confirmation delivered twice changes nothing the second time.
        message_id = outbox(erp_plant.db, B)[0]["message_id"]
        twice = confirmation(message_id)
        erp.publish(twice)
        erp.publish(twice)
        again = take_answers(erp_plant, names)
        assert again["confirmation"] == 1 and again["duplicate"] == 1
    assert {r["status"] for r in outbox(erp_plant.db, B)} == {"delivered"}


def fill_outbox(plant: Any, count: int, batches: int = 10) -> list[str]:
    """``count`` small documents spread over ``batches`` batches, written as the engine does."""
    import uuid

    from gxpmes.erp.outbox import enqueue

    ids = []
    with plant.db.transaction() as conn:
        for n in range(count):
            message_id = str(uuid.uuid4())
            enqueue(
                plant.db,
                conn,
                message_id=message_id,
                batch_id=f"K-{n % batches}",
                event="weighing.recorded",
                document="MaterialConsumption",
                root="ProcessOperationsPerformance",
                version="V0701",
                body=f"<doc n='{n}'><BODID>{message_id}</BODID></doc>".encode(),
                confirm=True,
            )
            ids.append(message_id)
    return ids


def test_kill_9_during_send_loses_nothing(erp_plant: Any, tmp_path: Path) -> None:
    """``gxpmes erp send --follow`` killed with SIGKILL mid-stream, then run again."""
    from audit.keys import write_key_pair
    from gxpmes.testing.plant import HEAD_KEY_NAME

    expected = fill_outbox(erp_plant, 2000)
    url = erp_plant.db.engine.url.render_as_string(hide_password=False)
    private, _ = write_key_pair(erp_plant.system_key, tmp_path / "keys", b"pass-phrase")
    env = {**os.environ, "GXPMES_KEY_PASSPHRASE": "pass-phrase"}
    head = ["--head-key", str(private), "--head-key-name", HEAD_KEY_NAME]
    with topology() as names:
        command = [
            sys.executable,
            "-m",
            "gxpmes",
            "erp",
            "send",
            "--db",
            url,
            "--to",
            names.send_url(),
            *head,
        ]
        first = subprocess.Popen([*command, "--follow"], env=env, stderr=subprocess.PIPE)
        erp = FakeErp(names)
        wait_until(lambda: bool(erp.drain(answer=None)), what="first messages at ERP")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        erp.drain(answer=None)
        at_kill = len(erp.seen)
        assert at_kill < len(expected), "the kill came after the whole outbox was sent"
        done = subprocess.run([*command, "--once"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "erp send:" in done.stdout
        erp.drain(answer=None)
        assert sorted(erp.seen) == sorted(expected)  # nothing lost; resends deduplicated
        for n in range(10):  # in order per batch, in ERP's (deduplicated) view
            batch = [m for i, m in enumerate(expected) if i % 10 == n]
            assert [m for m in erp.order if m in set(batch)] == batch
    assert {r["status"] for r in outbox(erp_plant.db)} == {"sent"}


def test_end_to_end_with_a_fake_erp(erp_plant: Any) -> None:
    """ERP receives a released batch's documents, confirms them, and sends an order back."""
    release_batch(erp_plant, B)
    with topology() as names:
        sender = Sender(erp_plant.db, open_transport(names.send_url()))
        sender.run_once()
        erp = FakeErp(names)
        received = erp.drain()
        roots = [erp_plant.engine.erp_b2mml.read(erp.seen[m]).root for m in received]
        assert "ProcessBatchProductionRecord" in roots
        erp.publish(production_order("PO-1000", bod_id="SAP-PO-1000"))
        counts = take_answers(erp_plant, names)
        assert counts["confirmation"] == 5 and counts["accepted"] == 1
        order = planned_batch(erp_plant.engine, "PO-1000")
        assert order is not None and order["recipe_id"] == "MR-GRAN"
        sender.run_once()  # the ConfirmBOD for the order goes back to ERP
        sender.transport.close()
        answers = erp.drain()
        assert len(answers) == 1
        from gxpmes.erp.bod import read_confirmation
        from isa95.b2mml.safexml import parse_xml

        answer = read_confirmation(parse_xml(erp.seen[answers[0]]))
        assert answer.accepted and answer.originals == ("SAP-PO-1000",)
    assert {r["status"] for r in outbox(erp_plant.db, B)} == {"delivered"}


def test_a_connection_dropped_while_idle_costs_no_failed_attempt(erp_plant: Any) -> None:
    """Broker restarts or heartbeats lost while idle: reconnect once, no failure recorded."""
    proxy = Proxy()
    with topology() as names:
        url = proxy.url(f"exchange={names.exchange}&routing_key=to-erp")
        sender = Sender(erp_plant.db, open_transport(url))
        fill_outbox(erp_plant, 2)
        assert sender.run_once() == 2
        proxy.cut()  # the idle connection dies ...
        proxy.restore()  # ... and the broker is back before the next document
        fill_outbox(erp_plant, 1)
        assert sender.run_once() == 1
        sender.transport.close()
        assert sender.counts["failed_attempts"] == 0
        assert [r["attempts"] for r in outbox(erp_plant.db)] == [1, 1, 1]
        assert len(FakeErp(names).drain(answer=None)) == 3
    proxy.close()
