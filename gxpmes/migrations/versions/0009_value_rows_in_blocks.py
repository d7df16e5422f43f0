"""Captured values in value blocks: an ebr_value row is leaf ``leaf`` of the block entry
``seq`` (a manual entry, and every value captured before blocks, is leaf 0 of its own
entry), so the row's key becomes ``(seq, leaf)``.

Existing rows keep every cell and get ``leaf`` 0. PostgreSQL adds the column and
re-keys the table in place (its guards and grants stay); SQLite cannot change a
primary key, so the table is rebuilt (rows copied, the old table dropped) as a
WITHOUT ROWID table keyed ``(seq, leaf)``, and its indexes and append-only
guards are installed again.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COPIED = (
    "seq",
    "batch_id",
    "parameter",
    "tag",
    "value",
    "unit",
    "source_ts",
    "server_ts",
    "quality",
    "manual",
    "in_limits",
    "source_key",
)


def upgrade() -> None:
    from sqlalchemy.schema import CreateTable

    from audit.schema import install_append_only_guards
    from gxpmes.ebr.schema import ValueRow

    connection = op.get_bind()
    inspector = sa.inspect(connection)
    if not inspector.has_table("ebr_value"):
        return
    if "leaf" in {c["name"] for c in inspector.get_columns("ebr_value")}:
        return  # created by this release's models (the baseline): nothing to do
    table: sa.Table = ValueRow.__table__  # type: ignore[assignment]
    if connection.dialect.name == "postgresql":
        # A constant default is stored in the catalogue: no row is rewritten (no
        # UPDATE trigger fires); then the default is dropped again.
        op.add_column(
            "ebr_value", sa.Column("leaf", sa.Integer(), nullable=False, server_default="0")
        )
        op.alter_column("ebr_value", "leaf", server_default=None)
        key = inspector.get_pk_constraint("ebr_value").get("name") or "ebr_value_pkey"
        op.drop_constraint(key, "ebr_value", type_="primary")
        op.create_primary_key(key, "ebr_value", ["seq", "leaf"])
        return
    names = ", ".join(_COPIED)
    for reflected in inspector.get_indexes("ebr_value"):
        if reflected["name"]:
            op.drop_index(reflected["name"], table_name="ebr_value")
    ddl = str(CreateTable(table).compile(dialect=connection.dialect))
    connection.exec_driver_sql(
        ddl.replace("CREATE TABLE ebr_value", "CREATE TABLE ebr_value_keyed", 1)
    )
    connection.exec_driver_sql(
        f"INSERT INTO ebr_value_keyed (leaf, {names}) SELECT 0, {names} FROM ebr_value"
    )
    # Dropping a table fires none of its triggers; its guards go with it.
    connection.exec_driver_sql("DROP TABLE ebr_value")
    # Legacy rename: only the table is renamed; SQLite does not re-parse every other
    # trigger and view of the schema (none refers to ebr_value_keyed).
    connection.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    try:
        connection.exec_driver_sql("ALTER TABLE ebr_value_keyed RENAME TO ebr_value")
    finally:
        connection.exec_driver_sql("PRAGMA legacy_alter_table = OFF")
    for index in table.indexes:
        index.create(connection)
    install_append_only_guards(connection, ("ebr_value",))


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
