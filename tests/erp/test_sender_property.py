"""Random failures, outages and crashes while sending: ERP still gets every document, in order
per batch, once in its deduplicated view (hypothesis)."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from erp_support import outbox
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gxpmes.erp.delivery import DeliveryError, Message, TransportDown
from gxpmes.erp.delivery import sender as sender_module
from gxpmes.erp.delivery.sender import Policy, Sender
from gxpmes.erp.outbox import enqueue


class FlakyErp:
    """A transport that fails as the drawn plan says, and records what ERP received."""

    name = "flaky"

    def __init__(self, plan: list[str]) -> None:
        self.plan = plan
        self.received: list[str] = []

    def publish(self, message: Message) -> None:
        step = self.plan.pop(0) if self.plan else "ok"
        if step == "refuse":
            raise DeliveryError("nack")
        if step == "down":
            raise TransportDown("broker gone")
        self.received.append(message.message_id)

    def close(self) -> None:
        pass


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(st.integers(0, 3), min_size=1, max_size=12),
    plan=st.lists(st.sampled_from(["ok", "ok", "refuse", "down"]), max_size=30),
    crashes=st.lists(st.booleans(), min_size=1, max_size=6),
    window=st.integers(1, 4),
)
@example(batches=[0, 0], plan=["refuse"], crashes=[False], window=1)  # the order case
def test_every_document_arrives_in_order(
    erp_plant: Any,
    monkeypatch: Any,
    batches: list[int],
    plan: list[str],
    crashes: list[bool],
    window: int,
) -> None:
    tag = uuid.uuid4().hex[:6]
    written: list[tuple[str, str]] = []
    with erp_plant.db.transaction() as conn:
        for n in batches:
            message_id = f"{tag}-{len(written)}"
            enqueue(
                erp_plant.db,
                conn,
                message_id=message_id,
                batch_id=f"{tag}-B{n}",
                event="weighing.recorded",
                document="MaterialConsumption",
                root="ProcessOperationsPerformance",
                version="V0701",
                body=f"<d id='{message_id}'/>".encode(),
                confirm=False,
            )
            written.append((message_id, f"{tag}-B{n}"))
    erp = FlakyErp(plan)
    sender = Sender(erp_plant.db, erp, Policy(backoff=0.0, window=window, max_attempts=3))
    real = sender_module.mark_sent
    for crash in crashes:  # a crash: published, but killed before the sent state is recorded
        monkeypatch.setattr(sender_module, "mark_sent", _killed if crash else real)
        with contextlib.suppress(_Killed):
            sender.run_once()
    monkeypatch.setattr(sender_module, "mark_sent", real)
    erp.plan = []  # the outage ends
    while sender.run_once():
        pass
    mine = {m for m, _ in written}
    seen = [m for m in erp.received if m in mine]
    assert set(seen) == mine  # nothing lost
    first = list(dict.fromkeys(seen))  # ERP's view, deduplicated by message id
    for batch in {b for _, b in written}:
        expected = [m for m, b in written if b == batch]
        assert [m for m in first if m in set(expected)] == expected  # in order per batch
    assert {r["status"] for r in outbox(erp_plant.db) if r["message_id"] in mine} == {"sent"}


class _Killed(Exception):
    pass


def _killed(*args: Any, **kwargs: Any) -> Any:
    raise _Killed
