"""Alembic migrations of gxpmes' application schema (``gxpmes db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

__all__ = ["upgrade"]

HERE = Path(__file__).parent


def upgrade(conn: Connection, revision: str = "head") -> None:
    """Bring the schema reachable through ``conn`` to ``revision``."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)
