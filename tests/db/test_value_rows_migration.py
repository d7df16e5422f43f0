"""Migration 0009: ebr_value rows become keyed ``(seq, leaf)`` with every cell kept.

A database at 0008 whose ``ebr_value`` still has the earlier shape (key ``seq``,
no ``leaf``) and holds values is upgraded: every row comes through unchanged
with leaf 0, the key is ``(seq, leaf)``, the indexes and the append-only guards
are back, and leaves of one block can then share a seq.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from audit.db import open_engine
from audit.entry import Actor, AuditEvent
from audit.ledger import Ledger
from audit.schema import install_append_only_guards
from gxpmes.migrations import upgrade

OP = Actor("op01", "Olga Operator")
_OLD_TABLE = """
CREATE TABLE ebr_value (
    seq {id} NOT NULL PRIMARY KEY,
    batch_id VARCHAR(128) NOT NULL,
    parameter VARCHAR(512) NOT NULL,
    tag VARCHAR(256) NOT NULL,
    value VARCHAR(64) NOT NULL,
    unit VARCHAR(16) NOT NULL,
    source_ts VARCHAR(40) NOT NULL,
    server_ts VARCHAR(40) NOT NULL,
    quality VARCHAR(16) NOT NULL,
    manual BOOLEAN NOT NULL,
    in_limits BOOLEAN NOT NULL,
    source_key VARCHAR(512)
)
"""
_T0, _T1, _T2, _T3 = (f"2026-01-01T00:00:0{i}Z" for i in range(4))
_ROWS = [
    (3, "B-1", "P/T", "TT-1", "70.5", "Cel", _T0, _T1, "Good", False, True, "k-3"),
    (7, "B-1", "P/T", "TT-1", "71", "Cel", _T2, _T3, "Bad", True, False, None),
]
_COLUMNS = (
    "seq, batch_id, parameter, tag, value, unit, source_ts, server_ts, quality, manual, "
    "in_limits, source_key"
)


def _old_shape(url: str) -> None:
    """A database at 0008 whose ebr_value has the shape before value blocks, with rows."""
    engine = open_engine(url)
    try:
        Ledger(engine).append(AuditEvent(OP, "capture", "value", "B1/1", new={"v": 1}))
        with engine.begin() as conn:
            upgrade(conn, "0008")
            conn.exec_driver_sql("DROP TABLE ebr_value")
            sqlite = conn.dialect.name == "sqlite"
            conn.exec_driver_sql(_OLD_TABLE.format(id="INTEGER" if sqlite else "BIGINT"))
            conn.exec_driver_sql(
                "CREATE INDEX ix_ebr_value_batch ON ebr_value (batch_id, parameter)"
            )
            conn.exec_driver_sql(
                "CREATE UNIQUE INDEX ux_ebr_value_source_key ON ebr_value (source_key) "
                "WHERE source_key IS NOT NULL"
            )
            mark = "?" if sqlite else "%s"
            conn.exec_driver_sql(
                f"INSERT INTO ebr_value ({_COLUMNS}) VALUES ({', '.join([mark] * 12)})",
                list(_ROWS),
            )
            install_append_only_guards(conn, ("ebr_value",))
    finally:
        engine.dispose()


def test_rows_keep_every_cell_and_become_leaf_zero(db_url: str) -> None:
    _old_shape(db_url)
    engine = open_engine(db_url)
    try:
        with engine.begin() as conn:
            upgrade(conn, "head")
        inspector = sa.inspect(engine)
        assert inspector.get_pk_constraint("ebr_value")["constrained_columns"] == ["seq", "leaf"]
        assert {i["name"] for i in inspector.get_indexes("ebr_value")} >= {
            "ix_ebr_value_batch",
            "ux_ebr_value_source_key",
        }
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                f"SELECT {_COLUMNS}, leaf FROM ebr_value ORDER BY seq"
            ).all()
        assert [(*r[:9], bool(r[9]), bool(r[10]), r[11], r[12]) for r in rows] == [
            (*row, 0) for row in _ROWS
        ]
        mark = "?" if engine.dialect.name == "sqlite" else "%s"
        with engine.begin() as conn:  # a second leaf of the same entry is a row of its own
            conn.exec_driver_sql(
                f"INSERT INTO ebr_value ({_COLUMNS}, leaf) VALUES ({', '.join([mark] * 13)})",
                [(*_ROWS[0][:11], None, 1)],
            )
        with pytest.raises(DBAPIError, match=r"(?i)refused|append-only"), engine.begin() as conn:
            conn.exec_driver_sql("UPDATE ebr_value SET value = '1' WHERE seq = 3")
        with pytest.raises(DBAPIError, match=r"(?i)refused|append-only"), engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM ebr_value WHERE seq = 7")
        with pytest.raises(DBAPIError), engine.begin() as conn:  # the source key stays unique
            conn.exec_driver_sql(
                f"INSERT INTO ebr_value ({_COLUMNS}, leaf) VALUES ({', '.join([mark] * 13)})",
                [(*_ROWS[0], 2)],
            )
        with engine.begin() as conn:  # nothing left to do: a second run changes nothing
            upgrade(conn, "head")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM ebr_value").scalar() == 3
    finally:
        engine.dispose()
