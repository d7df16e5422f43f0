"""Baseline schema: identity, signatures and the EBR engine (gxpmes 0.1).

The baseline creates the tables as declared in this release's models and
installs the database-level guards (append-only tables, undeletable users).
Later revisions alter the schema step by step.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Tables introduced by later revisions (created there, not here).
LATER_TABLES = frozenset(
    {
        "ebr_record_item",
        "ebr_ot_reject",
        "gx_account_change",
        "gx_auth_pending",
        "ebr_charge",
        "ebr_value_block",
        "ebr_value_key",
    }
)


def upgrade() -> None:
    from audit.schema import install_append_only_guards
    from gxpmes.ebr import schema as ebr_schema
    from gxpmes.identity.schema import AppBase, install_identity_guards

    connection = op.get_bind()
    baseline = [t for name, t in AppBase.metadata.tables.items() if name not in LATER_TABLES]
    AppBase.metadata.create_all(connection, tables=baseline)
    # Tables take the models' current columns; later revisions that add columns
    # check for them first, so they are no-ops on databases created this way.
    install_identity_guards(connection)
    install_append_only_guards(
        connection, tuple(t for t in ebr_schema.EBR_APPEND_ONLY if t not in LATER_TABLES)
    )


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
