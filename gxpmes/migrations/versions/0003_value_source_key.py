"""Source key of captured values: a value delivered twice by the plant side is recorded once.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    inspector = sa.inspect(connection)
    columns = {c["name"] for c in inspector.get_columns("ebr_value")}
    if "source_key" not in columns:
        # ebr_value is append-only by trigger; adding a nullable column rewrites no row.
        op.add_column("ebr_value", sa.Column("source_key", sa.String(512), nullable=True))
    indexes = {i["name"] for i in sa.inspect(connection).get_indexes("ebr_value")}
    if "ux_ebr_value_source_key" not in indexes:
        op.create_index(
            "ux_ebr_value_source_key",
            "ebr_value",
            ["source_key"],
            unique=True,
            sqlite_where=sa.text("source_key IS NOT NULL"),
            postgresql_where=sa.text("source_key IS NOT NULL"),
        )


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
