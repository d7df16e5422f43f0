"""Opening a database the way its user meant it.

Only ``gxpmes db upgrade`` and the demo create databases; everything else
opens one that must already exist, so a mistyped SQLite path is an error and
never a new, empty ledger. Failures of drivers and of the file system (a
server down, a wrong database name, a file that is not SQLite, a folder given
as a database, an unknown driver) become one :class:`~gxpmes.errors.DatabaseError`
naming the database, with any password in its URL masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

from audit.db import open_engine
from audit.ledger import Ledger
from gxpmes.errors import DatabaseError

__all__ = [
    "URL_FORMAT",
    "database_errors",
    "describe_failure",
    "display_url",
    "open_ledger",
    "require_database",
    "require_ledger",
    "sqlite_path",
]

URL_FORMAT = (
    "sqlite:///path/to/file.db (or a bare path), postgresql+psycopg://user:pass@host:port/db"
)
"""The database URLs gxpmes accepts, as help texts and error messages show them."""

# user:password@ up to the last "@" of the authority, however malformed the rest.
_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^/]*@")


def display_url(url_or_path: str | Path) -> str:
    """``url_or_path`` as it may be printed: a path as given, a URL with its password masked."""
    text = str(url_or_path)
    if "://" not in text:
        return text
    authority = text.split("://", 1)[1].split("/", 1)[0]
    if authority.count("@") <= 1:  # else an unencoded "@" in the password fools the parser
        try:
            return make_url(text).render_as_string(hide_password=True)
        except (sa_exc.ArgumentError, ValueError):
            pass
    return _PASSWORD_IN_URL.sub(r"\1***@", text)


def _parse(url_or_path: str | Path) -> URL | Path:
    """A URL, or the path of an SQLite file given bare."""
    text = str(url_or_path)
    if "://" not in text:
        return Path(text).expanduser()
    try:
        url = make_url(text)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise DatabaseError(f"not a database URL: {display_url(text)} (use {URL_FORMAT})") from exc
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"unsupported database {url.get_backend_name()!r} in {display_url(text)} "
            f"(use {URL_FORMAT})"
        )
    return url


def sqlite_path(url_or_path: str | Path) -> Path | None:
    """The SQLite file a URL or path names; None for other databases and SQLite URI forms."""
    parsed = _parse(url_or_path)
    if isinstance(parsed, Path):
        return parsed
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None  # an SQLite URI: the driver interprets it
    return Path(database).expanduser()


def require_database(url_or_path: str | Path, *, create: bool) -> None:
    """Refuse, before any driver runs, a database that cannot be what the user meant.

    The URL must name a supported database; a folder is never an SQLite
    database; unless ``create``, the SQLite file must exist (SQLite would
    silently create an empty one); with ``create``, its folder must exist.
    """
    path = sqlite_path(url_or_path)
    if path is None:
        return
    shown = display_url(url_or_path)
    if path.is_dir():
        raise DatabaseError(f"{shown} is a folder, not an SQLite database file")
    if not create and not path.exists():
        raise DatabaseError(f"no database at {shown} (create one with gxpmes db upgrade)")
    if create and not path.parent.is_dir():
        raise DatabaseError(f"cannot create database {shown}: folder {path.parent} does not exist")


def describe_failure(exc: BaseException) -> str | None:
    """One line saying why the database failed, or None if ``exc`` is not a database failure.

    Connection, availability and corruption failures count; integrity and
    programming errors (a bug, a trigger refusing a change) do not.
    """
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError) or (
        type(exc) is sa_exc.DatabaseError
    ):
        orig = getattr(exc, "orig", None) or exc
        detail = " ".join(line.strip() for line in str(orig).splitlines() if line.strip())
        return detail or type(orig).__name__
    return None


@contextmanager
def database_errors(url_or_path: str | Path) -> Iterator[None]:
    """Translate driver and file-system failures while opening ``url_or_path``."""
    shown = display_url(url_or_path)
    try:
        yield
    except sa_exc.NoSuchModuleError as exc:
        raise DatabaseError(f"unknown database driver in {shown} (use {URL_FORMAT})") from exc
    except sa_exc.ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {shown} (use {URL_FORMAT})") from exc
    except ImportError as exc:
        raise DatabaseError(
            f"the driver for {shown} is not installed ({exc.name} missing; "
            "for PostgreSQL: pip install 'gxpmes[postgres]')"
        ) from exc
    except OSError as exc:
        raise DatabaseError(f"cannot open database {shown}: {exc.strerror or exc}") from exc
    except sa_exc.SQLAlchemyError as exc:
        detail = describe_failure(exc)
        if detail is None:
            raise
        if "file is not a database" in detail:
            raise DatabaseError(f"{shown} is not an SQLite database") from exc
        raise DatabaseError(f"cannot open database {shown}: {detail}") from exc


def open_ledger(
    url_or_path: str | Path, *, create: bool = False, read_only: bool = False, **options: Any
) -> Ledger:
    """The audit ledger at ``url_or_path``; created only when ``create`` is true.

    ``read_only`` opens SQLite with ``mode=ro`` and PostgreSQL in read-only
    transactions. Raises :class:`DatabaseError` when the database is missing,
    unreachable or not a database.
    """
    require_database(url_or_path, create=create)
    with database_errors(url_or_path):
        engine = open_engine(url_or_path, read_only=read_only)
        try:
            if not create:
                require_ledger(engine, display_url(url_or_path))
            return Ledger(engine, create=create, **options)
        except BaseException:
            engine.dispose()
            raise


def require_ledger(engine: Engine, name: str) -> None:
    """Raise :class:`DatabaseError` unless the database behind ``engine`` holds a ledger.

    The first statement sent, so it is also where an unreachable server or a
    file that is not a database shows.
    """
    if not inspect(engine).has_table("audit_entry"):
        raise DatabaseError(f"{name} holds no audit ledger (create one with gxpmes db upgrade)")
