"""Someone with the database login edits the exchange's tables: ``gxpmes verify`` notices."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from erp_support import confirmation, production_order

from gxpmes.erp.bod import Confirmation
from gxpmes.erp.confirmations import apply_confirmation
from gxpmes.erp.delivery import open_transport
from gxpmes.erp.delivery.sender import Sender
from gxpmes.erp.inbound import Receiver
from gxpmes.erp.outbox import enqueue
from gxpmes.records.verify import verify_record


def exchange(plant: Any, tmp_path: Path) -> list[str]:
    """Two documents sent, one accepted and one rejected by ERP, and an order taken in."""
    ids = []
    with plant.db.transaction() as conn:
        for n in range(2):
            message_id = str(uuid.uuid4())
            enqueue(
                plant.db,
                conn,
                message_id=message_id,
                batch_id="B-X",
                event="batch.released",
                document="BatchProductionRecord",
                root="ProcessBatchProductionRecord",
                version="V0701",
                body=f"<doc n='{n}'/>".encode(),
                confirm=True,
            )
            ids.append(message_id)
    out = tmp_path / "out"
    out.mkdir()
    Sender(plant.db, open_transport(f"dir:{out}")).run_once()
    with plant.db.transaction() as conn:
        apply_confirmation(plant.db, conn, Confirmation("C-1", (ids[0],), True, ()))
        apply_confirmation(plant.db, conn, Confirmation("C-2", (ids[1],), False, ("no",)))
    receiver = Receiver(plant.engine, plant.engine.erp_b2mml)
    assert receiver.handle(production_order("PO-7"), "t").outcome == "accepted"
    assert receiver.handle(confirmation(ids[0]), "t").outcome == "confirmation"
    return ids


def problems(url: str, plant: Any) -> list[Any]:
    from audit.db import open_engine

    engine = open_engine(url, read_only=True)
    try:
        report = verify_record(engine, trusted_keys=plant.trusted_keys())
    finally:
        engine.dispose()
    return [p for p in report.problems if p.table.startswith(("erp_", "ebr_planned"))]


EDITS = [
    ("UPDATE erp_delivery SET status = 'delivered' WHERE status = 'rejected'", "erp_delivery"),
    ("UPDATE erp_exception SET resolved = 1, resolution = 'fine'", "erp_exception"),
    ("UPDATE ebr_planned_batch SET quantity = '1000'", "ebr_planned_batch"),
    ("UPDATE erp_route SET documents = ''", "erp_route"),
    ("UPDATE erp_outbox SET body = '<forged/>'", "erp_outbox"),
    ("DELETE FROM erp_inbound", "erp_inbound"),
    (
        "INSERT INTO erp_exception VALUES ('x', 'B-X', NULL, 'rejected', 'd', 't', 0, NULL, NULL)",
        "erp_exception",
    ),
]


@pytest.mark.parametrize(("sql", "table"), EDITS, ids=[t for _, t in EDITS])
def test_an_edited_exchange_table_is_caught(
    erp_plant: Any, tmp_path: Path, sql: str, table: str
) -> None:
    exchange(erp_plant, tmp_path)
    url = str(erp_plant.db.engine.url.database)
    assert problems(url, erp_plant) == []
    erp_plant.db.close()
    copy = tmp_path / "copy.db"
    source = sqlite3.connect(url)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    # The owner's rights: the append-only guards go first.
    for (name,) in target.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    ).fetchall():
        target.execute(f'DROP TRIGGER "{name}"')
    target.execute(sql)
    target.commit()
    target.close()
    found = problems(str(copy), erp_plant)
    assert any(p.table == table for p in found), found
