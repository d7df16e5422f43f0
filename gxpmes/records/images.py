"""Row images in audit entries: the one projector used to write *and* to prove.

An entry that changed projected tables carries, in ``new["rows"]``, the
complete image of every row it wrote (``{"table": name, "row": {...}}``) or
the key of every row it removed (``{"table": name, "deleted": {...}}``).
Process values are the exception, for size and speed: a ``value.capture`` /
``value.manual`` entry carries the value's fields flat, and
:func:`value_row` turns them into the ``ebr_value`` row. Both the writer and
verification call :func:`row_changes`, so there is one definition of what an
entry means for the tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gxpmes.errors import GxpError
from gxpmes.records.tables import projected

__all__ = [
    "VALUE_ACTIONS",
    "VALUE_COLUMNS",
    "RowChange",
    "row_changes",
    "value_row",
]

VALUE_ACTIONS = frozenset({"value.capture", "value.manual"})
VALUE_COLUMNS = (
    "seq",
    "batch_id",
    "parameter",
    "tag",
    "value",
    "unit",
    "source_ts",
    "server_ts",
    "quality",
    "manual",
    "in_limits",
    "source_key",
)

RowChange = tuple[str, tuple[Any, ...], dict[str, Any] | None]
"""``(table, primary key, full row image or None for a removed row)``."""


def value_row(seq: int, action: str, payload: Mapping[str, Any]) -> tuple[Any, ...]:
    """The ``ebr_value`` row (in :data:`VALUE_COLUMNS` order) a value entry stands for."""
    return (
        seq,
        payload["batch_id"],
        payload["parameter"],
        payload["tag"],
        str(payload["value"]),
        payload["unit"],
        payload["source_ts"],
        payload["server_ts"],
        payload["quality"],
        action == "value.manual",
        payload["in_limits"],
        payload.get("source_key"),
    )


def row_changes(seq: int, action: str, new: Any) -> Iterator[RowChange]:
    """The table changes entry ``seq`` made, from its action and ``new`` payload.

    Raises :class:`GxpError` for an image that names an unknown table or lacks
    columns: such an entry cannot have been written by this library.
    """
    if action in VALUE_ACTIONS:
        if not isinstance(new, Mapping) or "batch_id" not in new:
            return  # a value entry from before values carried their batch and limits
        yield (
            "ebr_value",
            (seq,),
            dict(zip(VALUE_COLUMNS, value_row(seq, action, new), strict=True)),
        )
        return
    if not isinstance(new, Mapping):
        return
    images = new.get("rows")
    if not isinstance(images, list):
        return
    for item in images:
        table = item.get("table") if isinstance(item, Mapping) else None
        spec = projected().get(table) if isinstance(table, str) else None
        if spec is None:
            raise GxpError(f"audit entry {seq} carries a row of unknown table {table!r}")
        if "deleted" in item:
            deleted = item["deleted"]
            yield spec.name, tuple(deleted[k] for k in spec.key), None
            continue
        image = dict(item["row"])
        if spec.seq_column is not None:
            image[spec.seq_column] = seq
        missing = [c for c in spec.columns if c not in image]
        if missing:
            raise GxpError(
                f"audit entry {seq}: row of {spec.name} lacks column(s) {', '.join(missing)}"
            )
        yield spec.name, spec.key_of(image), image
