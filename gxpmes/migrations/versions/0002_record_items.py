"""Samples, labels and in-process control results of a batch (ebr_record_item).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from audit.schema import install_append_only_guards

    connection = op.get_bind()
    if not sa.inspect(connection).has_table("ebr_record_item"):
        op.create_table(
            "ebr_record_item",
            sa.Column("item_id", sa.String(128), primary_key=True),
            sa.Column("batch_id", sa.String(128), nullable=False, index=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("content", sa.Text(), nullable=False),
            sa.Column("recorded_by", sa.String(64), nullable=False),
            sa.Column("recorded_at", sa.String(40), nullable=False),
        )
    install_append_only_guards(connection, ("ebr_record_item",))


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
