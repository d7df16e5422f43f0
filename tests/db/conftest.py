"""An owner role, an application role and a database of their own, per test module.

The owner is an ordinary role with CREATEROLE that owns the database, as in
production (never the superuser); the superuser of the test server only
creates and drops databases and roles. PostgreSQL unreachable: skipped
locally, failed with ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get(
    "GXPMES_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Roles:
    """Names and URLs of one module's database and its two roles."""

    database: str
    owner: str
    app: str
    owner_url: str
    app_url: str

    def url_as(self, role: str, database: str | None = None) -> str:
        """URL of ``database`` (default: this one) connecting as ``role`` (trust auth)."""
        url = make_url(PG_ADMIN_URL).set(username=role, password=None)
        return url.set(database=database or self.database).render_as_string(hide_password=False)


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI but unavailable: {reason}")
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def admin_engine() -> Engine:
    """The test server's superuser, autocommit: creates and drops databases and roles."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        unavailable(str(exc))
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def drop_database(admin: Engine, database: str) -> None:
    """Drop ``database`` even while connections to it are open."""
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


@pytest.fixture(scope="module")
def roles() -> Iterator[Roles]:
    """A fresh database owned by a fresh owner role; the app role name is reserved, not made."""
    admin = admin_engine()
    tag = uuid.uuid4().hex[:10]
    database, owner, app = f"gxpmes_priv_{tag}", f"gxowner_{tag}", f"gxapp_{tag}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {owner} LOGIN CREATEROLE"))
            conn.execute(text(f"CREATE DATABASE {database} OWNER {owner}"))
    except Exception as exc:
        admin.dispose()
        unavailable(str(exc).splitlines()[0])
    found = Roles(database, owner, app, "", "")
    found = Roles(database, owner, app, found.url_as(owner), found.url_as(app))
    try:
        yield found
    finally:
        for name in (f"{database}_old", database):
            drop_database(admin, name)
        with admin.connect() as conn:
            # The app role and any a test derived from its name (gxapp_<tag>_pw...).
            made = conn.execute(
                text("SELECT rolname FROM pg_roles WHERE rolname LIKE :p ORDER BY rolname DESC"),
                {"p": f"{app}%"},
            ).scalars()
            for role in [*made, owner]:
                conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


@pytest.fixture(scope="module")
def admin(roles: Roles) -> Iterator[Engine]:
    """The test server's superuser (autocommit), for databases and roles a test adds."""
    engine = admin_engine()
    yield engine
    engine.dispose()
