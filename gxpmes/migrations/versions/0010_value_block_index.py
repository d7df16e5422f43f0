"""Captured values are no longer copied into rows: ebr_value_block indexes the value blocks
(one row per parameter per block) and ebr_value_key holds the source keys of recorded
values; ebr_value keeps the values that are audit entries of their own.

A value block's leaves are its values' records (RFC 8785, kept by the ledger
beside the entry that commits to them). Until now each leaf was copied into an
``ebr_value`` row as well; capture wrote one row per value into a table with
three B-trees, which cost more than the ledger's own append. From this revision:

* ``ebr_value_block`` (key ``seq``, ``parameter``): which block holds how many
  values of a parameter of a batch (first and last leaf, the last one's server
  time for stale checks); values are read from the leaves;
* ``ebr_value_key`` (key ``source_key``): the value each source key was
  recorded as (``seq``, ``leaf``, batch): redelivered values are skipped, and
  the key cannot be recorded twice, whichever process tries;
* ``ebr_value``: manual entries, and values captured before value blocks
  (each an entry of its own, leaf 0), as before.

Existing databases: for every value block already in the log, its index and
key rows are built from its leaves by the same projector the writer and
``gxpmes verify`` use (:func:`gxpmes.records.images.block_row_changes`); the
source keys of the rows that stay in ``ebr_value`` are copied into
``ebr_value_key``; then the ``ebr_value`` rows of value blocks are removed.
They were a projection of the leaves, which stay in the log unchanged, so no
record is lost: every value reads as before, and ``gxpmes verify`` checks the
new tables against the log. The append-only guard of ``ebr_value`` is lifted
for that one statement and installed again in the same transaction.

Revision ID: 0010
Revises: 0009
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_CHUNK = 500


def upgrade() -> None:
    from audit.blocks import unpack_leaves
    from audit.schema import install_append_only_guards
    from gxpmes.ebr.schema import ValueBlockRow, ValueKeyRow
    from gxpmes.records.images import (
        BLOCK_ACTION,
        INDEX_COLUMNS,
        KEY_COLUMNS,
        block_index_rows,
        block_value_rows,
    )

    connection = op.get_bind()
    for model in (ValueBlockRow, ValueKeyRow):
        table = model.__table__
        assert isinstance(table, sa.Table)  # a declarative class's table
        table.create(connection, checkfirst=True)
    install_append_only_guards(connection, ("ebr_value_block", "ebr_value_key"))
    inspector = sa.inspect(connection)
    if not inspector.has_table("ebr_value"):
        return
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"

    def insert(table: str, columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
        if rows:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join([mark] * len(columns))})",
                    rows,
                )
            finally:
                cursor.close()

    blocks: list[int] = []
    if inspector.has_table("audit_block"):
        found = connection.exec_driver_sql(
            "SELECT b.seq, b.leaves, e.canonical FROM audit_block b "
            "JOIN audit_entry e ON e.seq = b.seq ORDER BY b.seq"
        )
        while chunk := found.fetchmany(_CHUNK):
            index: list[tuple[object, ...]] = []
            keys: list[tuple[object, ...]] = []
            for seq, blob, canonical in chunk:
                if json.loads(bytes(canonical)).get("action") != BLOCK_ACTION:
                    continue
                rows, key_rows = block_index_rows(
                    seq, block_value_rows(seq, unpack_leaves(bytes(blob)))
                )
                index += rows
                keys += key_rows
                blocks.append(int(seq))
            insert("ebr_value_block", INDEX_COLUMNS, index)
            insert("ebr_value_key", KEY_COLUMNS, keys)
    block_seqs = "SELECT seq FROM ebr_value_block"
    connection.exec_driver_sql(
        f"INSERT INTO ebr_value_key ({', '.join(KEY_COLUMNS)}) "
        "SELECT source_key, seq, leaf, batch_id FROM ebr_value "
        f"WHERE source_key IS NOT NULL AND seq NOT IN ({block_seqs})"
    )
    if not blocks:
        return
    # The block values' copies go; the leaves they were copied from stay in the log.
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ALTER TABLE ebr_value DISABLE TRIGGER ebr_value_append_only")
        connection.exec_driver_sql(f"DELETE FROM ebr_value WHERE seq IN ({block_seqs})")
        connection.exec_driver_sql("ALTER TABLE ebr_value ENABLE TRIGGER ebr_value_append_only")
    else:
        connection.exec_driver_sql("DROP TRIGGER IF EXISTS ebr_value_no_delete")
        connection.exec_driver_sql(f"DELETE FROM ebr_value WHERE seq IN ({block_seqs})")
        install_append_only_guards(connection, ("ebr_value",))


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
