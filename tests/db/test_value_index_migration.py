"""Migration 0010: value blocks get an index, their values' row copies go, nothing is lost.

A database at 0009 holds one ``ebr_value`` row per captured value (a copy of
its block's leaf) beside manual entries. Upgraded: the block rows are gone
from ``ebr_value``, ``ebr_value_block`` and ``ebr_value_key`` hold what the
writer would have written (``gxpmes verify`` agrees), every value reads as
before, redelivered keys are still skipped, and ``ebr_value`` is append-only
again.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from ebr_support import make_plant
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gxpmes.ebr.engine import CapturedValue
from gxpmes.migrations import upgrade
from gxpmes.records.images import VALUE_COLUMNS, block_value_rows
from gxpmes.records.verify import verify_record
from gxpmes.testing.plant import HEAT, OT_SOURCE

TEMPERATURE = f"{HEAT}/temperature"


def _as_at_0009(plant) -> None:  # type: ignore[no-untyped-def]
    """Put the database back in 0009's shape: a row per captured value, no index tables."""
    ledger = plant.db.ledger
    mark = "?" if plant.db.engine.dialect.name == "sqlite" else "%s"
    with plant.db.engine.begin() as conn:
        blocks = [seq for (seq,) in conn.execute(text("SELECT DISTINCT seq FROM ebr_value_block"))]
        rows = [row for seq in blocks for row in block_value_rows(seq, ledger.block_leaves(seq))]
        conn.exec_driver_sql(
            f"INSERT INTO ebr_value ({', '.join(VALUE_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(VALUE_COLUMNS))})",
            rows,
        )
        conn.exec_driver_sql("DROP TABLE ebr_value_block")
        conn.exec_driver_sql("DROP TABLE ebr_value_key")
        conn.exec_driver_sql("UPDATE gx_alembic_version SET version_num = '0009'")


def test_block_rows_become_an_index_and_every_value_reads_as_before(db_url: str) -> None:
    plant = make_plant(db_url)
    try:
        plant.start_batch("B-1", phases=(HEAT,))
        values = [
            CapturedValue(
                "B-1",
                TEMPERATURE,
                "TT-101",
                Decimal(f"{70 + i}.5"),
                "Cel",
                plant.clock() - timedelta(seconds=10 - i),
                source_key=None if i % 2 else f"k-{i}",
            )
            for i in range(7)
        ]
        plant.engine.capture(values[:4], source=OT_SOURCE)
        manual = CapturedValue("B-1", TEMPERATURE, "TT-101", Decimal("70.2"), "Cel", plant.clock())
        plant.engine.manual_entry(plant.sessions["op1"], manual, reason="handheld reading")
        plant.engine.capture(values[4:], source=OT_SOURCE)
        before = plant.engine.values("B-1")
        with plant.db.read() as conn:
            index = conn.execute(text("SELECT * FROM ebr_value_block ORDER BY seq")).all()
            keys = conn.execute(text("SELECT * FROM ebr_value_key ORDER BY source_key")).all()
        assert len(before) == 8 and len(keys) == 4
        _as_at_0009(plant)
        with plant.db.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM ebr_value")).scalar() == 8
        with plant.db.engine.begin() as conn:
            upgrade(conn, "head")
        with plant.db.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM ebr_value")).scalar() == 1  # manual
            assert conn.execute(text("SELECT * FROM ebr_value_block ORDER BY seq")).all() == index
            assert (
                conn.execute(text("SELECT * FROM ebr_value_key ORDER BY source_key")).all() == keys
            )
        assert plant.engine.values("B-1") == before
        report = verify_record(plant.db.engine, trusted_keys=plant.trusted_keys())
        assert report.ok, report.lines()
        assert plant.engine.verify_values("B-1") == []
        # Redelivered values are still recognised by their keys.
        keyed = [v for v in values if v.source_key is not None]
        assert plant.engine.capture(keyed, source=OT_SOURCE) == []
        assert len(plant.engine.values("B-1")) == 8
        refused = pytest.raises(DBAPIError, match=r"(?i)refused|append-only")
        with refused, plant.db.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM ebr_value")
        for table in ("ebr_value_block", "ebr_value_key"):
            refused = pytest.raises(DBAPIError, match=r"(?i)refused|append-only")
            with refused, plant.db.engine.begin() as conn:
                conn.exec_driver_sql(f"UPDATE {table} SET seq = 0")
    finally:
        plant.db.close()
