"""Value blocks in the audit log: audit_block holds the leaves a block entry commits to
(append-only; a row only for the log's last entry).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy import Table

    from audit.schema import BlockRow, install_append_only_guards

    connection = op.get_bind()
    # A ledger opened for writing creates it too (audit.schema.create_schema): checkfirst.
    table = BlockRow.__table__
    assert isinstance(table, Table)  # a declarative class's table
    table.create(connection, checkfirst=True)
    install_append_only_guards(connection, ("audit_block",))


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
