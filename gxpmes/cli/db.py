"""``gxpmes db``: the database schema."""

from __future__ import annotations

import argparse
import sys

from gxpmes.cli.common import DB_HELP, EXIT_OK, CliError, add_head_key_options, head_signer_of


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from audit.db import open_engine
    from audit.ledger import Ledger
    from gxpmes.database import upgrade_schema
    from gxpmes.dbopen import database_errors, display_url, require_database

    # With the demo, the one command that may create a database. It records the
    # ledger's origin too: the application role, which never creates anything,
    # may be the first to open the database.
    require_database(args.db, create=True)
    with database_errors(args.db):
        engine = open_engine(args.db)
        try:
            # Ledger tables, append-only guards, origin (kept if present).
            ledger = Ledger(engine, head_signer=head_signer_of(args))
            done = upgrade_schema(engine, ledger=ledger)
        finally:
            engine.dispose()
    print(f"database {display_url(args.db)} is at the current schema")
    if done.migrated and not done.audited:
        # Never an unsigned entry in a log with signed heads: it would read as forged.
        print(
            f"warning: migration from revision {done.before or '(none)'} to {done.after} is "
            "not in the audit trail (this log's tree heads are signed and this command holds "
            "no head key: give --head-key); record it in the change control",
            file=sys.stderr,
        )
    if args.db.startswith("postgresql"):
        print("PostgreSQL: run `gxpmes db grant` again for the application role")
    return EXIT_OK


def cmd_db_grant(args: argparse.Namespace) -> int:
    import os

    from audit.db import open_engine
    from gxpmes.dbopen import database_errors, display_url, require_database
    from gxpmes.privileges import grant_app_role

    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise CliError(f"environment variable {args.password_env} is not set or empty")
    require_database(args.db, create=False)
    with database_errors(args.db):
        engine = open_engine(args.db)
        try:
            grant = grant_app_role(
                engine, args.app_role, create_role=args.create_role, password=password
            )
        finally:
            engine.dispose()
    tables, append_only = len(grant.tables), len(grant.append_only)
    print(
        f"role {grant.role} {'created, ' if grant.created else ''}"
        f"{'password set, ' if password else ''}granted on {display_url(args.db)}: "
        f"{tables} tables ({append_only} append-only: SELECT, INSERT only), "
        f"{len(grant.sequences)} sequences; no ALTER, DROP, TRUNCATE, TRIGGER or CREATE"
    )
    print("run this again after every `gxpmes db upgrade`")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db upgrade`` and ``db grant``."""
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
    add_head_key_options(db_upgrade)
    db_upgrade.set_defaults(func=cmd_db_upgrade)
    db_grant = db_cmd.add_parser(
        "grant",
        help="PostgreSQL: give the application role what gxpmes needs, and nothing more",
        description="Run as the owner role (the role that ran `gxpmes db upgrade` and owns the "
        "tables). Makes the application role a LOGIN role that can run every gxpmes feature but "
        "cannot alter, drop or truncate tables, disable or drop triggers, update or delete "
        "append-only records, or create objects. Idempotent; run it again after every "
        "`gxpmes db upgrade`.",
    )
    db_grant.add_argument(
        "--db", required=True, metavar="URL", help="the database, connecting as the owner role"
    )
    db_grant.add_argument(
        "--app-role", required=True, metavar="NAME", help="the role gxpmes connects as"
    )
    db_grant.add_argument(
        "--password-env",
        metavar="VAR",
        help="environment variable holding the application role's password to set "
        "(default: leave the password as it is)",
    )
    db_grant.add_argument(
        "--no-create-role",
        dest="create_role",
        action="store_false",
        help="refuse if the role does not exist, instead of creating it (needs CREATEROLE)",
    )
    db_grant.set_defaults(func=cmd_db_grant)
