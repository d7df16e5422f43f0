"""``gxpmes db``: the database schema."""

from __future__ import annotations

import argparse

from gxpmes.cli.common import DB_HELP, EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from audit.db import open_engine
    from audit.schema import create_schema
    from gxpmes.database import upgrade_schema
    from gxpmes.dbopen import database_errors, display_url, require_database

    # With the demo, the one command that may create a database. The ledger's
    # origin is left for the application's first open to choose.
    require_database(args.db, create=True)
    with database_errors(args.db):
        engine = open_engine(args.db)
        try:
            create_schema(engine)
            upgrade_schema(engine)
        finally:
            engine.dispose()
    print(f"database {display_url(args.db)} is at the current schema")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db upgrade``."""
    db_cmd = sub.add_parser(
        "db", help="database schema", description="Create or migrate the database schema."
    ).add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_upgrade = db_cmd.add_parser(
        "upgrade",
        help="create or migrate the schema (Alembic)",
        description="Create the database (an SQLite file is created if missing) or migrate its "
        "schema to the one this gxpmes needs. Safe to run again.",
    )
    db_upgrade.add_argument("--db", required=True, metavar="URL", help=DB_HELP)
    db_upgrade.set_defaults(func=cmd_db_upgrade)
