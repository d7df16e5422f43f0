"""Account controls: one-time passwords, signed account changes, pending password checks.

* ``gx_user.password_issued_by``: the administrator who issued the current
  (one-time) password; NULL once the owner set their own. Existing accounts
  keep NULL: their passwords were set before this control existed.
* ``gx_account_change`` (append-only): each administrator's change of an
  account, the record their ``Authorised`` signature covers.
* ``gx_auth_pending``: password checks in progress (lockout counting).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from audit.schema import install_append_only_guards
    from gxpmes.identity.schema import AppBase

    connection = op.get_bind()
    columns = {c["name"] for c in sa.inspect(connection).get_columns("gx_user")}
    if "password_issued_by" not in columns:
        op.add_column("gx_user", sa.Column("password_issued_by", sa.String(64), nullable=True))
    AppBase.metadata.create_all(
        connection,
        tables=[AppBase.metadata.tables[n] for n in ("gx_account_change", "gx_auth_pending")],
        checkfirst=True,
    )
    install_append_only_guards(connection, ("gx_account_change",))


def downgrade() -> None:
    raise NotImplementedError("GxP records are never dropped by a migration")
