"""Refused plant input of the OT connectors (dead letter, ebr_ot_reject), append-only.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from audit.schema import install_append_only_guards

    connection = op.get_bind()
    if not sa.inspect(connection).has_table("ebr_ot_reject"):
        op.create_table(
            "ebr_ot_reject",
            sa.Column("reject_id", sa.String(64), primary_key=True),
            sa.Column("received_at", sa.String(40), nullable=False),
            sa.Column("connector", sa.String(128), nullable=False),
            sa.Column("client_id", sa.String(256), nullable=False),
            sa.Column("origin", sa.String(512), nullable=False),
            sa.Column("reason", sa.String(32), nullable=False, index=True),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.Column("tag", sa.String(256), nullable=True),
            sa.Column("batch_id", sa.String(128), nullable=True, index=True),
            sa.Column("payload", sa.LargeBinary(), nullable=True),
            sa.Column("payload_size", sa.Integer(), nullable=False),
            sa.Column("payload_sha256", sa.String(64), nullable=False),
        )
    install_append_only_guards(connection, ("ebr_ot_reject",))


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
