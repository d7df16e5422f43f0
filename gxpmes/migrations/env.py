"""Alembic environment: always runs on the connection gxpmes hands it."""

from __future__ import annotations

from alembic import context

from gxpmes.identity.schema import AppBase

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=AppBase.metadata, version_table="gx_alembic_version"
)
with context.begin_transaction():
    context.run_migrations()
