"""Enforced procedure and weigh & dispense: lot expiry, the phase and container of a
weighing, and the charging of containers into units (ebr_charge, append-only).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _add_missing(table: str, *columns: sa.Column) -> None:  # type: ignore[type-arg]
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    for column in columns:
        if column.name not in have:
            # Nullable: no existing row is rewritten (ebr_weighing is append-only).
            op.add_column(table, column)


def upgrade() -> None:
    from audit.schema import install_append_only_guards

    connection = op.get_bind()
    _add_missing("ebr_lot", sa.Column("expires_at", sa.String(40), nullable=True))
    _add_missing(
        "ebr_weighing",
        sa.Column("phase", sa.String(512), nullable=True),
        sa.Column("container_id", sa.String(128), nullable=True),
    )
    if not sa.inspect(connection).has_table("ebr_charge"):
        op.create_table(
            "ebr_charge",
            sa.Column("charge_id", sa.String(64), primary_key=True),
            sa.Column("batch_id", sa.String(128), nullable=False, index=True),
            sa.Column("phase", sa.String(512), nullable=False),
            sa.Column("weighing_id", sa.String(64), nullable=False, index=True),
            sa.Column("container_id", sa.String(128), nullable=False),
            sa.Column("equipment_id", sa.String(128), nullable=False),
            sa.Column("charged_by", sa.String(64), nullable=False),
            sa.Column("charged_at", sa.String(40), nullable=False),
        )
    install_append_only_guards(connection, ("ebr_charge",))


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
