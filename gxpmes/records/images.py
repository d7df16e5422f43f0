"""Row images in audit entries: the one projector used to write *and* to prove.

An entry that changed projected tables carries, in ``new["rows"]``, the
complete image of every row it wrote (``{"table": name, "row": {...}}``) or
the key of every row it removed (``{"table": name, "deleted": {...}}``).
Process values are the exception, for size and speed. Captured values are
written in *value blocks*: one ``value.block`` entry per batch per capture
call commits to the RFC 9162 Merkle root of its values' records, each record
(a *leaf*: the RFC 8785 bytes of a flat object) kept by the ledger
(:meth:`audit.ledger.Ledger.block_leaves`); :func:`block_value_rows` turns
the leaves into ``ebr_value`` rows keyed ``(seq, leaf)``. A manual entry
(``value.manual``) is an entry of its own carrying the value's fields flat
(as captures were before blocks, ``value.capture``), and :func:`value_row`
turns it into the row ``(seq, 0)``. Both the writer and verification use
these functions, so there is one definition of what an entry means for the
tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from orjson import loads as _loads

from audit.canonical import canonicalize
from audit.entry import _ORJSON_OPTIONS, _dumps, _orjson_default
from gxpmes.errors import GxpError
from gxpmes.records.tables import projected

__all__ = [
    "BLOCK_ACTION",
    "VALUE_ACTIONS",
    "VALUE_COLUMNS",
    "RowChange",
    "block_row_changes",
    "block_value_rows",
    "row_changes",
    "value_leaf",
    "value_name",
    "value_row",
]

VALUE_ACTIONS = frozenset({"value.capture", "value.manual"})
"""Entries that are one value each (``value.capture``: before value blocks)."""
BLOCK_ACTION = "value.block"
"""An entry committing to a block of captured values (its leaves)."""
VALUE_COLUMNS = (
    "seq",
    "leaf",
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


def value_row(seq: int, action: str, payload: Mapping[str, Any], leaf: int = 0) -> tuple[Any, ...]:
    """The ``ebr_value`` row (in :data:`VALUE_COLUMNS` order) a value record stands for:
    the payload of a value entry (``leaf`` 0) or leaf ``leaf`` of a value block."""
    return (
        seq,
        leaf,
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


def value_name(seq: int, leaf: int) -> str:
    """How a value is named in messages: ``seq/leaf`` (as every row key is printed)."""
    return f"{seq}/{leaf}"


def value_leaf(record: dict[str, Any]) -> bytes:
    """The RFC 8785 bytes of one value record (a leaf of a value block).

    Records are flat objects of fixed ASCII names mapped to text, Decimals,
    booleans and null: the compiled encoder writes exactly the RFC 8785 bytes
    for those (see :func:`audit.entry.encode_entry`); anything it refuses
    (a lone surrogate...) goes to the exact encoder, which encodes or refuses it.
    """
    try:
        return _dumps(record, default=_orjson_default, option=_ORJSON_OPTIONS)
    except TypeError:
        return canonicalize(record)


def block_value_rows(seq: int, leaves: Sequence[bytes]) -> list[tuple[Any, ...]]:
    """The ``ebr_value`` rows (in :data:`VALUE_COLUMNS` order) of value block ``seq``.

    Raises :class:`GxpError` for a leaf that is not a value record.
    """
    rows = []
    for index, leaf in enumerate(leaves):
        try:
            record = _loads(leaf)
            rows.append(value_row(seq, BLOCK_ACTION, record, index))
        except (ValueError, TypeError, KeyError) as exc:
            raise GxpError(
                f"audit entry {seq}: leaf {index} is not a value record ({exc})"
            ) from exc
    return rows


def block_row_changes(seq: int, leaves: Sequence[bytes]) -> Iterator[RowChange]:
    """The ``ebr_value`` rows value block ``seq`` wrote, as :func:`row_changes` yields them."""
    for row in block_value_rows(seq, leaves):
        yield "ebr_value", (seq, row[1]), dict(zip(VALUE_COLUMNS, row, strict=True))


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
            (seq, 0),
            dict(zip(VALUE_COLUMNS, value_row(seq, action, new), strict=True)),
        )
        return
    if action == BLOCK_ACTION:
        # Its rows are in its leaves, which the ledger keeps beside the entry:
        # block_row_changes(seq, ledger.block_leaves(seq)) yields them.
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
