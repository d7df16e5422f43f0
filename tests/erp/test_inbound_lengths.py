"""ERP texts longer than the MES's columns: the same outcome on both databases.

PostgreSQL raised a raw ``DataError`` (the receiver stopped) where SQLite kept
the text. A sender LogicalID of more than 128 characters makes the document
invalid (kept, answered Rejected); a BODID of more than 128 is keyed by the
SHA-256 of the bytes, as before, and no column takes it raw: the reply's
correlation id is left empty (the ConfirmBOD names the BODID) and a
confirmation is recorded under that key. A route's sender of more than 128
characters is a configuration error.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from erp_support import confirmation, execute_batch, outbox, production_order
from sqlalchemy import select

from audit.entry import Actor
from gxpmes.ebr.planning import planned_batch
from gxpmes.erp.bod import read_confirmation
from gxpmes.erp.inbound import Receiver
from gxpmes.erp.outbox import configure_route
from gxpmes.erp.schema import DeliveryRow, InboundRow, RejectRow, RouteRow
from gxpmes.errors import ConfigurationError
from isa95.b2mml.safexml import parse_xml


def _receiver(plant: Any) -> Receiver:
    return Receiver(plant.engine, plant.engine.erp_b2mml, sender="MES-1")


def _reply(plant: Any, message_id: str | None) -> tuple[Any, dict[str, Any]]:
    (row,) = [r for r in outbox(plant.db) if r["message_id"] == message_id]
    return read_confirmation(parse_xml(row["body"].encode())), row


def _inbound(plant: Any, key: str) -> Any:
    with plant.db.read() as conn:
        return conn.execute(select(InboundRow).where(InboundRow.bod_id == key)).one_or_none()


def test_a_sender_longer_than_its_column_makes_the_document_invalid(erp_plant_any: Any) -> None:
    plant = erp_plant_any
    body = production_order("1", bod_id="ORD-1").replace(b"SAP-ERP", b"S" * 129)
    result = _receiver(plant).handle(body, "test")
    assert result.outcome == "invalid"
    assert "sender LogicalID" in result.detail
    assert "has 129 characters; at most 128" in result.detail
    assert planned_batch(plant.engine, "1") is None and _inbound(plant, "ORD-1") is None
    with plant.db.read() as conn:
        assert conn.execute(select(RejectRow).where(RejectRow.reject_id == result.key)).one()
    answer, _ = _reply(plant, result.reply_message_id)
    assert not answer.accepted and answer.originals == ("ORD-1",)
    at_limit = production_order("2", bod_id="ORD-2").replace(b"SAP-ERP", b"S" * 128)
    assert _receiver(plant).handle(at_limit, "test").outcome == "accepted"
    assert _inbound(plant, "ORD-2").sender == "S" * 128


def test_a_long_bod_id_is_keyed_by_digest_and_answered(erp_plant_any: Any) -> None:
    plant = erp_plant_any
    long_id = "B" * 129
    result = _receiver(plant).handle(production_order("1", bod_id=long_id), "test")
    assert result.outcome == "accepted", result.detail
    assert result.key.startswith("sha256:") and _inbound(plant, result.key) is not None
    answer, row = _reply(plant, result.reply_message_id)
    assert answer.accepted and answer.originals == (long_id,)
    assert row["correlation_id"] is None
    at_limit = _receiver(plant).handle(production_order("2", bod_id="B" * 128), "test")
    assert at_limit.key == "B" * 128
    assert _reply(plant, at_limit.reply_message_id)[1]["correlation_id"] == "B" * 128


def test_a_confirmation_with_a_long_bod_id_is_recorded_under_its_key(erp_plant_any: Any) -> None:
    plant = erp_plant_any
    execute_batch(plant, "B-1")
    message_id = outbox(plant.db, "B-1")[0]["message_id"]
    body = re.sub(
        rb"<BODID>CONF-[^<]*</BODID>",
        b"<BODID>" + b"C" * 129 + b"</BODID>",
        confirmation(message_id),
    )
    result = _receiver(plant).handle(body, "test")
    assert result.outcome == "confirmation" and result.key.startswith("sha256:")
    with plant.db.read() as conn:
        delivery = conn.execute(
            select(DeliveryRow).where(DeliveryRow.message_id == message_id)
        ).one()
    assert (delivery.status, delivery.confirm_bod_id) == ("delivered", result.key)


def test_a_route_sender_longer_than_its_column_is_a_configuration_error(
    erp_plant_any: Any,
) -> None:
    plant, admin = erp_plant_any, Actor("admin", "Admin")
    size = plant.db.ledger.size()
    with pytest.raises(ConfigurationError, match="has 129 characters; at most 128") as raised:
        configure_route(plant.db, admin, "batch.executed", [], sender="S" * 129, reason="t")
    assert "sender logical id" in str(raised.value) and plant.db.ledger.size() == size
    configure_route(plant.db, admin, "batch.executed", [], sender="S" * 128, reason="t")
    with plant.db.read() as conn:
        sender = conn.scalar(select(RouteRow.sender).where(RouteRow.event == "batch.executed"))
    assert sender == "S" * 128
