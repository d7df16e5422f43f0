"""PostgreSQL least privilege: the application role runs gxpmes and cannot bypass its guards.

One database per module: the owner role migrates it (``gxpmes db upgrade``)
and grants the application role (:func:`gxpmes.privileges.grant_app_role`);
every attempt below then connects as the application role itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from audit.schema import LEDGER_TABLES
from gxpmes.cli import main
from gxpmes.ebr.engine import CapturedValue
from gxpmes.errors import ConfigurationError, GxpError
from gxpmes.privileges import AppRoleGrant, app_role_problems, grant_app_role
from gxpmes.testing.plant import BLEND, HEAT, MIX, OT_SOURCE, Clock, build_plant
from isa95.common import Quantity

if TYPE_CHECKING:
    from conftest import Roles

B = "B-PRIV-0001"
REFUSED = re.compile(r"permission denied|must be owner")


@pytest.fixture(scope="module")
def owner(roles: Roles) -> Iterator[Engine]:
    """The owner's engine, after ``gxpmes db upgrade`` ran as the owner."""
    assert main(["db", "upgrade", "--db", roles.owner_url]) == 0
    engine = create_engine(roles.owner_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def granted(roles: Roles, owner: Engine) -> AppRoleGrant:
    return grant_app_role(owner, roles.app)


@pytest.fixture(scope="module")
def app(roles: Roles, granted: AppRoleGrant) -> Iterator[Engine]:
    """A plain engine connecting as the application role."""
    engine = create_engine(roles.app_url)
    yield engine
    engine.dispose()


def refused(engine: Engine, sql: str) -> str:
    """Run ``sql`` as the engine's role; return the server's refusal (fail if it ran)."""
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    except DBAPIError as exc:
        message = str(exc.orig)
        assert REFUSED.search(message), f"{sql}: refused for another reason: {message}"
        return message
    pytest.fail(f"the application role could run: {sql}")


# ------------------------------------------------------------------ the grant


def test_grant_classifies_every_table(granted: AppRoleGrant, owner: Engine) -> None:
    with owner.connect() as conn:
        tables = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
        )
    assert set(granted.tables) == tables
    append_only = set(granted.append_only)
    # Read at run time: a table added to the ledger is append-only with no change here.
    assert set(LEDGER_TABLES) <= append_only
    assert {"gx_signature", "gx_password_history", "ebr_value", "ebr_weighing"} <= append_only
    assert granted.tables["gx_alembic_version"] == ("SELECT",)
    assert granted.tables["gx_user"] == ("SELECT", "INSERT", "UPDATE")  # never deleted
    assert granted.tables["ebr_batch"] == ("SELECT", "INSERT", "UPDATE", "DELETE")
    assert "audit_checkpoint_id_seq" in granted.sequences
    assert "gxpmes_audit_refuse_change()" in granted.functions


def test_grant_is_idempotent_and_reads_back_clean(
    roles: Roles, owner: Engine, granted: AppRoleGrant
) -> None:
    again = grant_app_role(owner, roles.app)
    assert not again.created and again.tables == granted.tables
    assert app_role_problems(owner, roles.app) == []
    with owner.connect() as conn:
        attrs = conn.execute(
            text(
                "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb "
                "FROM pg_roles WHERE rolname = :r"
            ),
            {"r": roles.app},
        ).one()
    assert tuple(attrs) == (True, False, False, False)


def test_a_table_added_by_a_migration_needs_the_grant_again(
    roles: Roles, owner: Engine, app: Engine, granted: AppRoleGrant
) -> None:
    with owner.begin() as conn:
        conn.execute(text("CREATE TABLE gx_later (id INTEGER PRIMARY KEY, note TEXT)"))
    try:
        assert any("gx_later" in p for p in app_role_problems(owner, roles.app))
        refused(app, "INSERT INTO gx_later VALUES (1, 'x')")
        regrant = grant_app_role(owner, roles.app)
        assert regrant.tables["gx_later"] == ("SELECT", "INSERT", "UPDATE", "DELETE")
        with app.begin() as conn:
            conn.execute(text("INSERT INTO gx_later VALUES (1, 'x')"))
        assert app_role_problems(owner, roles.app) == []
    finally:
        with owner.begin() as conn:
            conn.execute(text("DROP TABLE gx_later"))


def test_grant_refuses_unfit_roles(roles: Roles, owner: Engine, granted: AppRoleGrant) -> None:
    with pytest.raises(ConfigurationError, match="another role than the owner"):
        grant_app_role(owner, roles.owner)
    with pytest.raises(ConfigurationError, match="SUPERUSER"):
        grant_app_role(owner, "postgres")
    with pytest.raises(ConfigurationError, match="does not exist"):
        grant_app_role(owner, f"{roles.app}_missing", create_role=False)
    with pytest.raises(ConfigurationError, match="lower-case letters"):
        grant_app_role(owner, 'x"; DROP TABLE audit_entry; --')
    member = f"{roles.app}_m"
    with owner.begin() as conn:
        conn.execute(text(f"CREATE ROLE {member} LOGIN IN ROLE {roles.owner}"))
    try:
        with pytest.raises(ConfigurationError, match=f"member of {roles.owner}"):
            grant_app_role(owner, member)
    finally:
        with owner.begin() as conn:
            conn.execute(text(f"DROP ROLE {member}"))


def test_grant_refuses_sqlite(tmp_path: Path) -> None:
    from audit.db import open_engine

    engine = open_engine(tmp_path / "x.db")
    with pytest.raises(ConfigurationError, match="PostgreSQL only"):
        grant_app_role(engine, "gxpmes_app")
    engine.dispose()


def test_password_is_stored_as_a_scram_verifier(roles: Roles, owner: Engine, admin: Engine) -> None:
    role, secret = f"{roles.app}_pw", "Never-Printed-7f3a!"
    grant_app_role(owner, role, password=secret)  # the role is dropped with the module's
    with admin.connect() as conn:
        stored = conn.scalar(
            text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}
        )
    assert stored.startswith("SCRAM-SHA-256$4096:") and secret not in stored


# ------------------------------------------------------------------ bypasses


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE audit_entry ADD COLUMN forged TEXT",
        "ALTER TABLE ebr_batch ALTER COLUMN status TYPE TEXT",
        "ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only",
        "ALTER TABLE audit_entry DISABLE TRIGGER ALL",
        "ALTER TABLE gx_signature DISABLE TRIGGER gx_signature_append_only",
        "DROP TRIGGER audit_entry_append_only ON audit_entry",
        "DROP TRIGGER audit_entry_no_truncate ON audit_entry",
        "DROP TABLE audit_entry",
        "DROP TABLE ebr_batch",
        "TRUNCATE audit_entry",
        "TRUNCATE ebr_batch",
        "TRUNCATE gx_signature CASCADE",
        "CREATE TABLE gx_shadow (id INTEGER)",
        "CREATE SCHEMA shadow",
        "CREATE TRIGGER t_forge BEFORE INSERT ON ebr_batch "
        "FOR EACH ROW EXECUTE FUNCTION gxpmes_audit_refuse_change()",
        "CREATE OR REPLACE FUNCTION gxpmes_audit_refuse_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        "DROP FUNCTION gxpmes_audit_refuse_change() CASCADE",
        "UPDATE gx_alembic_version SET version_num = '0001'",
        "INSERT INTO gx_alembic_version VALUES ('9999')",
        "DELETE FROM gx_alembic_version",
        "DELETE FROM gx_user",
        "SELECT setval('audit_checkpoint_id_seq', 1)",
    ],
)
def test_bypass_is_refused(app: Engine, sql: str) -> None:
    refused(app, sql)


def test_set_role_to_the_owner_is_refused(roles: Roles, app: Engine) -> None:
    refused(app, f"SET ROLE {roles.owner}")


def test_the_app_role_cannot_grant_what_it_holds(roles: Roles, app: Engine, owner: Engine) -> None:
    with app.begin() as conn:  # PostgreSQL only warns: no grant option, nothing granted
        conn.execute(text("GRANT UPDATE, DELETE ON audit_entry, ebr_batch TO PUBLIC"))
    with owner.connect() as conn:
        assert not conn.scalar(text("SELECT has_table_privilege('public', 'ebr_batch', 'UPDATE')"))
    assert app_role_problems(owner, roles.app) == []


def test_update_and_delete_refused_on_every_append_only_table(
    app: Engine, granted: AppRoleGrant
) -> None:
    # The privilege check comes before any trigger and needs no row to exist.
    assert len(granted.append_only) >= len(LEDGER_TABLES) + 5
    with app.connect() as conn:
        columns = dict(
            conn.execute(
                text(
                    "SELECT table_name, min(column_name) FROM information_schema.columns "
                    "WHERE table_schema = current_schema() GROUP BY table_name"
                )
            ).all()
        )
    for table in granted.append_only:
        column = columns[table]
        refused(app, f"UPDATE {table} SET {column} = {column}")
        refused(app, f"DELETE FROM {table}")


# ------------------------------------------------------------------ a batch


def _values(plant, path: str, parameter: str, unit: str, *numbers: str):  # type: ignore[no-untyped-def]
    return [
        CapturedValue(B, f"{path}/{parameter}", "TT-1", Decimal(n), unit, plant.clock())
        for n in numbers
    ]


def test_a_batch_runs_end_to_end_as_the_app_role(roles: Roles, app: Engine, tmp_path: Path) -> None:
    from audit.keys import write_key_pair
    from audit.verify import verify_ledger
    from gxpmes.records.verify import verify_record

    # The owner's migration is audited at the real time; the plant's clock may not precede it.
    plant = build_plant(roles.app_url, clock=Clock(datetime.now(UTC)))
    try:
        with plant.db.read() as conn:
            assert conn.scalar(text("SELECT current_user")) == roles.app
        engine, creds = plant.engine, plant.creds
        plant.start_batch(B)
        for path, captured in (
            (HEAT, _values(plant, HEAT, "temperature", "Cel", "70.0", "76.5")),
            (MIX, _values(plant, MIX, "speed", "rpm", "120")),
            (BLEND, _values(plant, BLEND, "speed", "rpm", "118")),
        ):
            engine.command(plant.sessions["op1"], B, path, "Start")
            if path == HEAT:
                plant.dispense(B)  # its bill of materials: weighed, verified, charged
            engine.capture(captured, source=OT_SOURCE)
            engine.complete_phase(B, path, creds("op1"))
            engine.verify_phase(B, path, creds("op2"))
        engine.complete_batch(plant.sessions["op1"], B, Quantity(value=Decimal("98"), unit="kg"))
        review = engine.review_by_exception(B)
        exceptions = [i for i in review if i.kind.startswith("exception")]
        assert [i.kind for i in exceptions] == ["exception:out_of_limit"]  # 76.5 > 75 °C
        for item in exceptions:
            engine.assess_exception(item.item_id, creds("qa1"), comment="within PAR, no impact")
        engine.complete_review(B, creds("qa1"))
        plant.review_trail(B)
        engine.release(B, creds("qa2"))
        assert engine.batch(B)["status"] == "Released"
        assert verify_ledger(plant.db.ledger).ok
        report = verify_record(plant.db.engine)
        assert report.ok, report.lines()
    finally:
        plant.db.close()
    # QA's command, as the app role, with the installation's public key.
    assert plant.system_key is not None
    _private, public_pem = write_key_pair(plant.system_key, tmp_path / "keys", b"not-a-secret")
    assert main(["verify", "--db", roles.app_url, "--public-key", str(public_pem)]) == 0


def test_opening_at_head_as_the_app_role_sends_no_ddl(roles: Roles, granted: AppRoleGrant) -> None:
    from sqlalchemy import event

    from gxpmes.database import Database

    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        Database(roles.app_url).close()  # create=True (the default): nothing to create at head
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert sent, "no statement seen: the listener is not attached"
    ddl = re.compile(r"^\s*(CREATE|ALTER|DROP|GRANT|REVOKE|TRUNCATE|COMMENT)\b", re.IGNORECASE)
    assert [s for s in sent if ddl.match(s)] == []


# ------------------------------------------------------------------ schema behind


def test_app_role_on_a_schema_behind_gets_a_clear_error(roles: Roles, admin: Engine) -> None:
    from audit.db import open_engine
    from audit.schema import create_schema
    from gxpmes.database import Database
    from gxpmes.migrations import upgrade

    database = f"{roles.database}_old"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {database} OWNER {roles.owner}"))
    try:
        owner = open_engine(roles.url_as(roles.owner, database))
        create_schema(owner)
        with owner.begin() as conn:
            upgrade(conn, "0001")  # an installation migrated by an older gxpmes
        grant_app_role(owner, roles.app)
        owner.dispose()
        app_url = roles.url_as(roles.app, database)
        for create in (False, True):  # whether or not it may create: the app role never migrates
            with pytest.raises(GxpError) as caught:
                Database(app_url, create=create)
            message = str(caught.value)
            assert "at revision 0001" in message and "needs" in message, message
            assert "gxpmes db upgrade" in message and "owner" in message, message
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


# ------------------------------------------------------------------ command line


def test_db_grant_command(
    roles: Roles,
    owner: Engine,
    admin: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role, secret = f"{roles.app}_cli", "Cli-Secret-9c2e!"
    owner_url = roles.owner_url.replace(f"{roles.owner}@", f"{roles.owner}:owner-pw-x@")
    monkeypatch.setenv("GXPMES_TEST_APP_PW", secret)
    argv = ["db", "grant", "--db", owner_url, "--app-role", role]
    assert main([*argv, "--password-env", "GXPMES_TEST_APP_PW"]) == 0
    out, err = capsys.readouterr()
    assert f"role {role} created, password set" in out and "gxpmes db upgrade" in out
    assert secret not in out + err and "owner-pw-x" not in out + err
    assert main(argv) == 0  # again: nothing new
    assert f"role {role} granted" in capsys.readouterr().out
    assert app_role_problems(owner, role) == []
    with admin.connect() as conn:
        stored = conn.scalar(
            text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}
        )
    assert stored.startswith("SCRAM-SHA-256$")

    assert main([*argv[:-1], "postgres"]) == 2
    assert "SUPERUSER" in capsys.readouterr().err
    assert main([*argv[:-1], f"{role}_new", "--no-create-role"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*argv, "--password-env", "GXPMES_TEST_UNSET_VARIABLE"]) == 2
    assert "GXPMES_TEST_UNSET_VARIABLE is not set" in capsys.readouterr().err
