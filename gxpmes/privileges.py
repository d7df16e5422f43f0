"""PostgreSQL least privilege: the role that runs gxpmes is not the role that owns its tables.

The *owner* role runs ``gxpmes db upgrade``: it creates and alters the tables
and so owns them. An owner can ``ALTER TABLE ... DISABLE TRIGGER``, drop the
append-only triggers, ``TRUNCATE`` and ``DROP`` — no privilege can be taken
from the owner of a table. The *application* role that gxpmes connects as
day to day must therefore be another role, holding only the privileges the
application uses. :func:`grant_app_role`, run as the owner, makes it so:

* ``SELECT`` and ``INSERT`` on every gxpmes table; ``UPDATE`` and ``DELETE``
  only where the records are not append-only (no ``DELETE`` on tables whose
  rows are never deleted); ``SELECT`` alone on the migration version table;
* ``USAGE`` on the sequences (``nextval`` only; no ``setval``);
* ``EXECUTE`` on the trigger functions of those tables;
* ``USAGE`` on the schema and ``CONNECT`` on the database, but no ``CREATE``
  on either; no ``TRUNCATE``, ``REFERENCES`` or ``TRIGGER`` anywhere; the role
  owns nothing, is no superuser, cannot create roles and is no member of the
  owner role.

Everything else on those objects is revoked, from the role and from
``PUBLIC`` (every role inherits what ``PUBLIC`` holds). The grant is
idempotent and covers only the tables present when it runs, so run it again
after every ``gxpmes db upgrade``. ``ALTER DEFAULT PRIVILEGES`` is
deliberately not used: a default cannot know whether a future table is
append-only, and an explicit grant after each migration is one reviewed step
of the change, where a default would silently hand out privileges.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gxpmes.errors import ConfigurationError

__all__ = [
    "TABLE_PRIVILEGES",
    "VERSION_TABLE",
    "AppRoleGrant",
    "app_role_problems",
    "grant_app_role",
]

VERSION_TABLE = "gx_alembic_version"
"""Alembic's version table: the application reads it to check the schema, never writes it."""

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
"""The table privileges checked after granting (every one PostgreSQL 15 knows)."""

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_READ_INSERT = ("SELECT", "INSERT")
_NO_DELETE = ("SELECT", "INSERT", "UPDATE")
_READ_WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True, slots=True)
class AppRoleGrant:
    """What :func:`grant_app_role` left the application role holding."""

    role: str
    created: bool
    schema: str
    tables: dict[str, tuple[str, ...]]
    """Table (or view) name → the privileges granted, in :data:`TABLE_PRIVILEGES` order."""
    sequences: tuple[str, ...]
    functions: tuple[str, ...]

    @property
    def append_only(self) -> tuple[str, ...]:
        """Tables the role may read and insert into, but neither update nor delete from."""
        return tuple(t for t, p in self.tables.items() if p == _READ_INSERT)


def _append_only_declared() -> set[str]:
    # Read at run time: packages add tables to these tuples in later releases.
    from audit import schema as audit_schema
    from gxpmes.ebr import schema as ebr_schema
    from gxpmes.erp import schema as erp_schema
    from gxpmes.identity import schema as identity_schema

    return {
        *audit_schema.LEDGER_TABLES,
        *identity_schema.APPEND_ONLY_TABLES,
        *ebr_schema.EBR_APPEND_ONLY,
        *erp_schema.ERP_APPEND_ONLY,
    }


def _known_tables() -> set[str]:
    """Tables the gxpmes and audit models declare (whoever should own them)."""
    from audit.schema import Base as AuditBase
    from gxpmes.ebr import schema as _ebr  # noqa: F401 - registers the EBR tables
    from gxpmes.erp import schema as _erp  # noqa: F401 - registers the ERP tables
    from gxpmes.identity.schema import AppBase

    return {*AuditBase.metadata.tables, *AppBase.metadata.tables, VERSION_TABLE}


def _table_privileges(
    name: str, relkind: str, triggers: set[str], append_only: set[str]
) -> tuple[str, ...]:
    if relkind in ("v", "m") or name == VERSION_TABLE:
        return ("SELECT",)
    # install_append_only_guards names its row trigger <table>_append_only; a
    # table guarded that way is append-only even if no tuple lists it (yet).
    if name in append_only or f"{name}_append_only" in triggers:
        return _READ_INSERT
    if f"{name}_no_delete" in triggers:  # e.g. gx_user: deactivated, never deleted
        return _NO_DELETE
    return _READ_WRITE


def grant_app_role(
    owner_engine: Engine,
    app_role: str,
    *,
    create_role: bool = True,
    password: str | None = None,
) -> AppRoleGrant:
    """Make ``app_role`` able to run every gxpmes feature, and nothing more (PostgreSQL).

    Run as the owner role, the role that ran ``gxpmes db upgrade`` and owns
    every gxpmes table (a superuser may run it too). ``app_role`` is created
    as a ``LOGIN`` role when missing and ``create_role`` is true (the owner
    then needs ``CREATEROLE``); ``password``, if given, is set as its password
    (sent to the server as a SCRAM verifier, never in clear). The role must
    not be a superuser, may not create roles, must own nothing and must not
    be a member of the owner role; otherwise :class:`ConfigurationError`.

    All in one transaction, idempotent. Covers the tables present now: run
    it again after each ``gxpmes db upgrade``. After granting, the effective
    privileges are read back from the server (``has_table_privilege``...),
    and any difference from the plan raises :class:`ConfigurationError`.
    """
    if owner_engine.dialect.name != "postgresql":
        raise ConfigurationError(
            f"database roles exist on PostgreSQL only, not on {owner_engine.dialect.name}"
        )
    if not _ROLE_NAME.fullmatch(app_role):
        raise ConfigurationError(
            f"application role name {app_role!r}: use lower-case letters, digits and _ "
            "(at most 63, not starting with a digit)"
        )
    with owner_engine.begin() as conn:
        owner, is_superuser, schema, database = conn.execute(
            text(
                "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
                " current_schema(), current_database()"
            )
        ).one()
        if app_role == owner:
            raise ConfigurationError(
                f"{app_role} is the role running this grant; the application role must be "
                "another role than the owner"
            )
        relations = _relations(conn, schema)
        table_owner = _check_ownership(relations, owner, is_superuser, app_role, schema)
        created = _ensure_role(conn, app_role, create_role=create_role, password=password)
        _check_role(conn, app_role, table_owner)
        plan = _grant(conn, app_role, schema, database, relations, table_owner)
        problems = _problems(conn, app_role, schema, database, plan, table_owner)
        if problems:
            raise ConfigurationError(
                f"role {app_role} would keep privileges it must not have (nothing was changed): "
                + "; ".join(problems)
            )
    return AppRoleGrant(
        role=app_role,
        created=created,
        schema=schema,
        tables=plan.tables,
        sequences=plan.sequences,
        functions=plan.functions,
    )


def app_role_problems(engine: Engine, app_role: str) -> list[str]:
    """What ``app_role`` may do beyond what :func:`grant_app_role` grants (empty: nothing).

    A read-only check, e.g. for a periodic review of access rights: it
    compares the server's effective privileges with the plan for the tables
    present now (a table added by a migration and not yet granted shows up
    as a missing privilege).
    """
    with engine.connect() as conn:
        schema, database = conn.execute(text("SELECT current_schema(), current_database()")).one()
        if not conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": app_role}):
            return [f"role {app_role} does not exist"]
        relations = _relations(conn, schema)
        table_owner = _owner_of_version_table(relations, schema)
        plan = _plan(conn, schema, relations, table_owner)
        return _problems(conn, app_role, schema, database, plan, table_owner)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class _Relation:
    oid: int
    name: str
    kind: str  # pg_class.relkind: r, p table; v, m view; S sequence
    owner: str


@dataclass(frozen=True, slots=True)
class _Plan:
    tables: dict[str, tuple[str, ...]]
    sequences: tuple[str, ...]
    functions: tuple[str, ...]


def _relations(conn: Connection, schema: str) -> list[_Relation]:
    rows = conn.execute(
        text(
            "SELECT c.oid, c.relname, c.relkind, pg_get_userbyid(c.relowner) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
            "ORDER BY c.relname"
        ),
        {"schema": schema},
    )
    return [_Relation(int(r[0]), r[1], r[2], r[3]) for r in rows]


def _owner_of_version_table(relations: list[_Relation], schema: str) -> str:
    for rel in relations:
        if rel.name == VERSION_TABLE:
            return rel.owner
    raise ConfigurationError(
        f"no gxpmes schema in schema {schema} ({VERSION_TABLE} missing): "
        "run `gxpmes db upgrade` as the owner role first"
    )


def _check_ownership(
    relations: list[_Relation], current: str, is_superuser: bool, app_role: str, schema: str
) -> str:
    """The owner role of the gxpmes tables, after checking the caller may grant on them."""
    owner = _owner_of_version_table(relations, schema)
    if owner == app_role:
        raise ConfigurationError(
            f"the gxpmes tables are owned by {app_role}, so it can alter, disable triggers on, "
            f"truncate and drop them; make another role the owner first (as a superuser: "
            f"REASSIGN OWNED BY {app_role} TO <owner>), then grant again as that owner"
        )
    if owner != current and not is_superuser:
        raise ConfigurationError(
            f"the gxpmes tables are owned by {owner}; run the grant as {owner}, not as {current}"
        )
    known = _known_tables()
    strangers = sorted(r.name for r in relations if r.name in known and r.owner != owner)
    if strangers:
        raise ConfigurationError(
            f"gxpmes tables not owned by {owner}: {', '.join(strangers)}; "
            "one role must own them all"
        )
    return owner


def _ensure_role(conn: Connection, role: str, *, create_role: bool, password: str | None) -> bool:
    quoted = conn.dialect.identifier_preparer.quote(role)
    row = conn.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role})
    found = row.first()
    created = found is None
    try:
        if created:
            if not create_role:
                raise ConfigurationError(
                    f"role {role} does not exist (and creating it was not asked)"
                )
            conn.execute(
                text(
                    f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "NOREPLICATION NOBYPASSRLS"
                )
            )
        elif found is not None and not found[0]:
            conn.execute(text(f"ALTER ROLE {quoted} LOGIN"))
    except DBAPIError as exc:
        raise ConfigurationError(
            f"cannot {'create' if created else 'alter'} role {role} "
            f"(the owner role needs CREATEROLE): {_server_message(exc)}"
        ) from None
    if password is not None:
        _set_password(conn, role, password)
    return created


def _set_password(conn: Connection, role: str, password: str) -> None:
    if not password:
        raise ConfigurationError(f"empty password for role {role}")
    raw = conn.connection.dbapi_connection
    pgconn = getattr(raw, "pgconn", None)
    if pgconn is None:
        raise ConfigurationError("setting a role's password needs the psycopg (3) driver")
    # libpq hashes client-side (as psql's \password does): the clear password
    # never reaches the server, its statement log or an error message.
    verifier = pgconn.encrypt_password(
        password.encode("utf-8"), role.encode("utf-8"), b"scram-sha-256"
    ).decode("ascii")
    quoted = conn.dialect.identifier_preparer.quote(role)
    literal = verifier.replace("'", "''")
    try:  # no bind-parameter parsing: the verifier contains ':'
        conn.exec_driver_sql(f"ALTER ROLE {quoted} PASSWORD '{literal}'")
    except SQLAlchemyError as exc:
        raise ConfigurationError(
            f"cannot set the password of role {role}: {_server_message(exc)}"
        ) from None


def _server_message(exc: SQLAlchemyError) -> str:
    # The driver's own message, never SQLAlchemy's (which quotes the statement).
    orig = getattr(exc, "orig", None)
    return str(orig).strip().splitlines()[0] if orig is not None else type(exc).__name__


def _check_role(conn: Connection, role: str, table_owner: str) -> None:
    attrs = conn.execute(
        text(
            "SELECT rolsuper, rolcreaterole, rolbypassrls, rolreplication, "
            "pg_has_role(:r, :owner, 'MEMBER') FROM pg_roles WHERE rolname = :r"
        ),
        {"r": role, "owner": table_owner},
    ).one()
    wrong = [
        what
        for what, bad in zip(
            ("SUPERUSER", "CREATEROLE", "BYPASSRLS", "REPLICATION", f"member of {table_owner}"),
            attrs,
            strict=True,
        )
        if bad
    ]
    if wrong:
        raise ConfigurationError(
            f"role {role} cannot be the application role: it is {', '.join(wrong)}"
        )
    owned = conn.execute(
        text(
            "SELECT what FROM pg_roles r, LATERAL ("
            "SELECT 'table ' || c.relname FROM pg_class c WHERE c.relowner = r.oid "
            "UNION ALL SELECT 'schema ' || n.nspname FROM pg_namespace n "
            "WHERE n.nspowner = r.oid "
            "UNION ALL SELECT 'function ' || p.proname FROM pg_proc p WHERE p.proowner = r.oid "
            "UNION ALL SELECT 'database ' || d.datname FROM pg_database d "
            "WHERE d.datdba = r.oid AND d.datname = current_database()"
            ") AS owned(what) WHERE r.rolname = :r ORDER BY 1 LIMIT 6"
        ),
        {"r": role},
    ).scalars()
    owned_list = list(owned)
    if owned_list:
        raise ConfigurationError(
            f"role {role} owns {', '.join(owned_list[:5])}"
            f"{' and more' if len(owned_list) > 5 else ''}; the application role must own "
            f"nothing in this database (as a superuser: REASSIGN OWNED BY {role} TO <owner>)"
        )


# ---------------------------------------------------------------- granting


def _plan(conn: Connection, schema: str, relations: list[_Relation], table_owner: str) -> _Plan:
    ours = [r for r in relations if r.owner == table_owner]
    tables = [r for r in ours if r.kind in ("r", "p", "v", "m")]
    triggers = set(
        conn.execute(
            text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = ANY(:oids)"),
            {"oids": [r.oid for r in tables]},
        ).scalars()
    )
    append_only = _append_only_declared()
    functions = conn.execute(
        text(
            "SELECT DISTINCT t.tgfoid::regprocedure::text FROM pg_trigger t "
            "WHERE NOT t.tgisinternal AND t.tgrelid = ANY(:oids) ORDER BY 1"
        ),
        {"oids": [r.oid for r in tables]},
    ).scalars()
    return _Plan(
        tables={r.name: _table_privileges(r.name, r.kind, triggers, append_only) for r in tables},
        sequences=tuple(r.name for r in ours if r.kind == "S"),
        functions=tuple(functions),
    )


def _grant(
    conn: Connection,
    role: str,
    schema: str,
    database: str,
    relations: list[_Relation],
    table_owner: str,
) -> _Plan:
    q = conn.dialect.identifier_preparer.quote
    grantee, sch = q(role), q(schema)
    plan = _plan(conn, schema, relations, table_owner)
    run = _runner(conn)
    for table, privileges in plan.tables.items():
        name = f"{sch}.{q(table)}"
        run(f"REVOKE ALL ON TABLE {name} FROM PUBLIC, {grantee}")
        run(f"GRANT {', '.join(privileges)} ON TABLE {name} TO {grantee}")
    for sequence in plan.sequences:
        name = f"{sch}.{q(sequence)}"
        run(f"REVOKE ALL ON SEQUENCE {name} FROM PUBLIC, {grantee}")
        run(f"GRANT USAGE ON SEQUENCE {name} TO {grantee}")
    for function in plan.functions:  # regprocedure text: already quoted and qualified
        run(f"GRANT EXECUTE ON FUNCTION {function} TO {grantee}")
    run(f"GRANT USAGE ON SCHEMA {sch} TO {grantee}")
    run(f"REVOKE CREATE ON SCHEMA {sch} FROM {grantee}")
    db = q(database)
    run(f"GRANT CONNECT ON DATABASE {db} TO {grantee}")
    run(f"REVOKE CREATE ON DATABASE {db} FROM {grantee}")
    # CREATE held through PUBLIC (PostgreSQL < 15 grants it on schema public)
    # is taken from PUBLIC too; a database dedicated to gxpmes loses nothing.
    if conn.scalar(text("SELECT has_schema_privilege(:r, :s, 'CREATE')"), {"r": role, "s": schema}):
        _try(conn, f"REVOKE CREATE ON SCHEMA {sch} FROM PUBLIC")
    if conn.scalar(
        text("SELECT has_database_privilege(:r, :d, 'CREATE')"), {"r": role, "d": database}
    ):
        _try(conn, f"REVOKE CREATE ON DATABASE {db} FROM PUBLIC")
    return plan


def _runner(conn: Connection) -> Callable[[str], None]:
    def run(sql: str) -> None:
        try:
            conn.exec_driver_sql(sql)
        except SQLAlchemyError as exc:
            raise ConfigurationError(
                f"{sql.split(' ON ')[0]} refused: {_server_message(exc)}"
            ) from None

    return run


def _try(conn: Connection, sql: str) -> None:
    """Run ``sql`` in a savepoint; a refusal is left to the final check to report."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(sql)
    except SQLAlchemyError:
        pass


# ---------------------------------------------------------------- checking


def _problems(
    conn: Connection, role: str, schema: str, database: str, plan: _Plan, table_owner: str
) -> list[str]:
    q = conn.dialect.identifier_preparer.quote
    sch = q(schema)
    problems: list[str] = []
    for table, granted in plan.tables.items():
        held = _held(conn, "has_table_privilege", role, f"{sch}.{q(table)}", TABLE_PRIVILEGES)
        extra = [p for p in TABLE_PRIVILEGES if p in held and p not in granted]
        missing = [p for p in granted if p not in held]
        if extra:
            problems.append(f"{', '.join(extra)} on {table}")
        if missing:
            problems.append(f"no {', '.join(missing)} on {table}")
    for sequence in plan.sequences:
        held = _held(
            conn, "has_sequence_privilege", role, f"{sch}.{q(sequence)}", ("USAGE", "UPDATE")
        )
        if "UPDATE" in held:
            problems.append(f"UPDATE (setval) on sequence {sequence}")
        if "USAGE" not in held:
            problems.append(f"no USAGE on sequence {sequence}")
    if _held(conn, "has_schema_privilege", role, schema, ("CREATE",)):
        problems.append(f"CREATE on schema {schema}")
    if _held(conn, "has_database_privilege", role, database, ("CREATE",)):
        problems.append(f"CREATE on database {database}")
    if not _held(conn, "has_database_privilege", role, database, ("CONNECT",)):
        problems.append(f"no CONNECT on database {database}")
    attrs = conn.execute(
        text(
            "SELECT rolsuper, rolcreaterole, pg_has_role(:r, :o, 'MEMBER') "
            "FROM pg_roles WHERE rolname = :r"
        ),
        {"r": role, "o": table_owner},
    ).one()
    for what, bad in zip(
        ("SUPERUSER", "CREATEROLE", f"member of {table_owner}"), attrs, strict=True
    ):
        if bad:
            problems.append(what)
    return problems


def _held(
    conn: Connection, function: str, role: str, obj: str, privileges: Iterable[str]
) -> set[str]:
    wanted = list(privileges)
    columns = ", ".join(f"{function}(:r, :o, '{p}')" for p in wanted)
    row = conn.execute(text(f"SELECT {columns}"), {"r": role, "o": obj}).one()
    return {p for p, ok in zip(wanted, row, strict=True) if ok}
