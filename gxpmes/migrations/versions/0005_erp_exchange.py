"""ERP exchange: outbox, delivery state, exceptions, inbound and rejects; planned batches
and material definitions.

Created from this release's models (as the baseline is); a later change of
their columns is a revision of its own. Outbox, inbound and rejects are
append-only.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = (
    "ebr_planned_batch",
    "ebr_material",
    "erp_route",
    "erp_outbox",
    "erp_delivery",
    "erp_exception",
    "erp_inbound",
    "erp_reject",
)


def upgrade() -> None:
    from audit.schema import install_append_only_guards
    from gxpmes.erp import schema as erp_schema
    from gxpmes.identity.schema import AppBase

    connection = op.get_bind()
    AppBase.metadata.create_all(
        connection, tables=[AppBase.metadata.tables[name] for name in TABLES], checkfirst=True
    )
    install_append_only_guards(connection, erp_schema.ERP_APPEND_ONLY)


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
