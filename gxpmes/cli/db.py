"""``gxpmes db``: the database schema."""

from __future__ import annotations

import argparse

from gxpmes.cli.common import EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from audit.db import open_engine
    from audit.schema import create_schema
    from gxpmes.database import upgrade_schema

    engine = open_engine(args.db)
    try:
        create_schema(engine)
        upgrade_schema(engine)
    finally:
        engine.dispose()
    print(f"database {args.db} is at the current schema")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db upgrade``."""
    db_cmd = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db_upgrade = db_cmd.add_parser("upgrade", help="create or migrate the schema (Alembic)")
    db_upgrade.add_argument("--db", required=True, help="SQLAlchemy URL or SQLite file path")
    db_upgrade.set_defaults(func=cmd_db_upgrade)
