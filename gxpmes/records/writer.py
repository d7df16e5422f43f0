"""Writing application rows: stage the change, attach its image to the next audit entry.

Engine code changes a projected table only through :func:`insert`,
:func:`update` and :func:`delete`. Each executes at once (so later reads in
the transaction see it) and stages the row's full image on the connection;
:meth:`gxpmes.database.Database.audit` takes the staged images into the entry
it appends. A transaction that would commit staged images without an entry
is refused (:func:`check_flushed`), so no GMP change can reach the tables
unlogged. Rows of tables with a *seq column* are inserted after the entry,
because their key or a column is that entry's sequence number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, and_, func, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert as sql_insert
from sqlalchemy import update as sql_update

from audit.entry import AuditEvent
from gxpmes.errors import GxpError
from gxpmes.records.tables import NOT_PROJECTED, TableSpec, projected

__all__ = [
    "attach",
    "check_flushed",
    "delete",
    "insert",
    "update",
    "update_returning",
    "write_deferred",
]

_STAGED = "gxpmes_staged_rows"
_DEFERRED = "gxpmes_deferred_rows"


def _spec_of(model: Any) -> TableSpec | None:
    """The spec of a projected table; None for a table named in :data:`NOT_PROJECTED`."""
    name = str(getattr(model, "__tablename__", None) or getattr(model, "name", None))
    if name in NOT_PROJECTED:
        return None
    spec = projected().get(name)
    if spec is None:
        raise GxpError(f"{name!r} is not an application table")
    return spec


def _stage(conn: Connection, item: dict[str, Any]) -> None:
    conn.info.setdefault(_STAGED, []).append(item)


def _where(spec: TableSpec, key: Mapping[str, Any]) -> Any:
    columns = spec.table.c
    return and_(*(columns[k] == key[k] for k in spec.key))


def insert(conn: Connection, model: Any, values: Mapping[str, Any]) -> None:
    """Insert one row and stage its image (for seq tables: insert after the entry)."""
    spec = _spec_of(model)
    if spec is None:
        conn.execute(sql_insert(model).values(**values))
        return
    row = {c: values.get(c) for c in spec.columns}
    if len(spec.key) == 1 and row[spec.key[0]] is None and spec.seq_column is None:
        # A surrogate integer key: assigned here (the transaction holds the write
        # lock) so the image in the log names the row exactly.
        column = spec.table.c[spec.key[0]]
        row[spec.key[0]] = (conn.scalar(select(func.max(column))) or 0) + 1
    if spec.seq_column is not None:
        conn.info.setdefault(_DEFERRED, []).append((spec, row))
        image = spec.image({**row, spec.seq_column: 0})
        del image[spec.seq_column]
    else:
        conn.execute(sql_insert(spec.table).values(**row))
        image = spec.image(row)
    _stage(conn, {"table": spec.name, "row": image})


def update(
    conn: Connection, model: Any, key: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    """Change columns of one existing row and stage its new full image; returns the old row."""
    spec = _spec_of(model)
    if spec is None:
        table = model.__table__
        where = and_(*(table.c[k] == v for k, v in key.items()))
        old = conn.execute(select(table).where(where)).mappings().one_or_none()
        conn.execute(sql_update(table).where(where).values(**changes))
        return dict(old or {})
    if spec.seq_column is not None:
        raise GxpError(f"{spec.name} rows are written once and never changed")
    old = conn.execute(select(spec.table).where(_where(spec, key))).mappings().one_or_none()
    if old is None:
        raise GxpError(f"no {spec.name} row {dict(key)!r} to change")
    conn.execute(sql_update(spec.table).where(_where(spec, key)).values(**changes))
    _stage(conn, {"table": spec.name, "row": spec.image({**old, **changes})})
    return dict(old)


def update_returning(
    conn: Connection,
    model: Any,
    key: Mapping[str, Any],
    changes: Mapping[str, Any],
    *,
    where: Any = None,
) -> dict[str, Any] | None:
    """One atomic ``UPDATE ... WHERE key [AND where] RETURNING *``; stages the new image.

    ``changes`` may hold SQL expressions (``column + 1``): the database
    computes them on the row as it is at that instant, so concurrent writers
    never overwrite each other's counts. Returns the new row, or None (and
    stages nothing) when no row matched.
    """
    spec = _spec_of(model)
    if spec is None or spec.seq_column is not None:
        raise GxpError(f"{model!r}: update_returning is for changeable projected tables")
    condition = _where(spec, key) if where is None else and_(_where(spec, key), where)
    new = (
        conn.execute(
            sql_update(spec.table).where(condition).values(**changes).returning(*spec.table.c)
        )
        .mappings()
        .one_or_none()
    )
    if new is None:
        return None
    row = dict(new)
    _stage(conn, {"table": spec.name, "row": spec.image(row)})
    return row


def delete(conn: Connection, model: Any, key: Mapping[str, Any]) -> None:
    """Remove one row and stage its removal."""
    spec = _spec_of(model)
    if spec is None:
        raise GxpError(f"{model!r}: rows of tables outside the record are not deleted here")
    conn.execute(sql_delete(spec.table).where(_where(spec, key)))
    _stage(conn, {"table": spec.name, "deleted": {k: key[k] for k in spec.key}})


def attach(conn: Connection, event: AuditEvent) -> AuditEvent:
    """``event`` carrying the images staged on ``conn`` since the last entry."""
    staged = conn.info.pop(_STAGED, None)
    if not staged:
        return event
    new = event.new
    if new is None:
        payload: dict[str, Any] = {}
    elif isinstance(new, Mapping):
        payload = dict(new)
    else:
        payload = {"value": new}
    payload["rows"] = staged
    return replace(event, new=payload)


def write_deferred(conn: Connection, seq: int) -> None:
    """Insert the seq-table rows staged for the entry just appended as ``seq``."""
    for spec, row in conn.info.pop(_DEFERRED, []):
        assert spec.seq_column is not None
        conn.execute(sql_insert(spec.table).values(**{**row, spec.seq_column: seq}))


def check_flushed(conn: Connection) -> None:
    """Refuse to commit table changes that no audit entry carries."""
    staged = conn.info.pop(_STAGED, None)
    deferred = conn.info.pop(_DEFERRED, None)
    if staged or deferred:
        tables = sorted({i["table"] for i in staged or []} | {s.name for s, _ in deferred or []})
        raise GxpError(f"refusing to commit changes to {', '.join(tables)} without an audit entry")


def discard(conn: Connection) -> None:
    """Forget staged images (the transaction rolled back)."""
    conn.info.pop(_STAGED, None)
    conn.info.pop(_DEFERRED, None)
