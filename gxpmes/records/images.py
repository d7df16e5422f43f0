"""Row images in audit entries: the one projector used to write *and* to prove.

An entry that changed projected tables carries, in ``new["rows"]``, the
complete image of every row it wrote (``{"table": name, "row": {...}}``) or
the key of every row it removed (``{"table": name, "deleted": {...}}``).
Process values are the exception, for size and speed. Captured values are
written in *value blocks*: one ``value.block`` entry per batch per capture
call commits to the RFC 9162 Merkle root of its values' records, each record
(a *leaf*: the RFC 8785 bytes of a flat object) kept by the ledger
(:meth:`audit.ledger.Ledger.block_leaves`). A block's values get no row of
their own: :func:`block_row_changes` gives its index rows (``ebr_value_block``,
one per parameter in the block) and the source keys of its values
(``ebr_value_key``), and :func:`block_value_rows` turns the leaves into value
rows (in :data:`VALUE_COLUMNS` order, keyed ``(seq, leaf)``) whenever values
are read. A manual entry (``value.manual``) is an entry of its own carrying
the value's fields flat (as captures were before blocks, ``value.capture``),
and :func:`value_row` turns it into the ``ebr_value`` row ``(seq, 0)``. Both
the writer and verification use these functions, so there is one definition
of what an entry means for the tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from orjson import loads as _loads

from audit.canonical import canonicalize
from audit.entry import _ORJSON_OPTIONS, _dumps, _orjson_default
from gxpmes.errors import GxpError
from gxpmes.records.tables import projected

__all__ = [
    "BLOCK_ACTION",
    "INDEX_COLUMNS",
    "KEY_COLUMNS",
    "VALUE_ACTIONS",
    "VALUE_COLUMNS",
    "RowChange",
    "ValueLeaves",
    "block_index_rows",
    "block_row_changes",
    "block_value_rows",
    "key_row",
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

INDEX_COLUMNS = (
    "seq",
    "parameter",
    "batch_id",
    "count",
    "first_leaf",
    "last_leaf",
    "last_server_ts",
)
"""Columns of ``ebr_value_block`` (one row per parameter per value block)."""
KEY_COLUMNS = ("source_key", "seq", "leaf", "batch_id")
"""Columns of ``ebr_value_key`` (one row per recorded value that has a source key)."""

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


def key_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The ``ebr_value_key`` row (:data:`KEY_COLUMNS`) of a value row that has a source key."""
    return (row[12], row[0], row[1], row[2])


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


class ValueLeaves:
    """The leaves of one capture: each value record's RFC 8785 bytes, from a template.

    A capture's records are flat objects of the same twelve ASCII names
    (sorted: ``account``, ``batch_id``, ``client_id``, ``in_limits``,
    ``parameter``, ``quality``, ``server_ts``, ``source_key``, ``source_ts``,
    ``tag``, ``unit``, ``value``) and share the account and client; the values
    of one parameter mostly share the batch, tag and unit. Each string's JSON
    text is written once by the compiled encoder :func:`value_leaf` uses and
    kept; per value only the texts are put in place. The value (a finite
    Decimal's ``str``) and the times (:func:`~audit.canonical.format_timestamp`
    text) are ASCII without anything to escape, so they go in as they are.
    The bytes are :func:`value_leaf`'s for the same record (property-tested
    against :func:`audit.canonical.canonicalize`); a string the compiled
    encoder refuses raises ``TypeError``, and the caller encodes that record
    with :func:`value_leaf` (which encodes or refuses it exactly).
    """

    __slots__ = ("_account", "_client", "_heads", "_texts")

    def __init__(self, account: str, client_id: str) -> None:
        self._texts: dict[str, str] = {}
        self._heads: dict[str, str] = {}
        self._account = _json(account)
        self._client = _json(client_id)

    def text(self, value: Any) -> str:
        """JSON text of a string (kept) or of any other JSON value (not kept)."""
        if type(value) is not str:
            return _json(value)
        texts = self._texts
        known = texts.get(value)
        if known is None:
            known = texts[value] = _json(value)
        return known

    def head(self, batch_id: str) -> str:
        """The text every leaf of the batch starts with, up to the ``in_limits`` value."""
        head = self._heads.get(batch_id)
        if head is None:
            head = self._heads[batch_id] = (
                f'{{"account":{self._account},"batch_id":{self.text(batch_id)},'
                f'"client_id":{self._client},"in_limits":'
            )
        return head

    def leaf(
        self,
        batch_id: str,
        parameter: str,
        tag: str,
        value: str,
        unit: str,
        source_ts: str,
        server_ts: str,
        quality: str,
        in_limits: bool,
        source_key: str | None,
    ) -> bytes:
        """The record's leaf; ``value`` is a finite Decimal's text, the times are
        :func:`~audit.canonical.format_timestamp` text."""
        head = self.head(batch_id)
        text = self.text
        return (
            f'{head}{"true" if in_limits else "false"},"parameter":{text(parameter)},'
            f'"quality":{text(quality)},"server_ts":"{server_ts}",'
            f'"source_key":{"null" if source_key is None else _json(source_key)},'
            f'"source_ts":"{source_ts}","tag":{text(tag)},"unit":{text(unit)},'
            f'"value":"{value}"}}'
        ).encode()


def _json(value: Any) -> str:
    """One JSON value by the compiled encoder's rules (TypeError when it refuses)."""
    return str(_dumps(value, default=_orjson_default, option=_ORJSON_OPTIONS), "utf-8")


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


def block_index_rows(
    seq: int, rows: Iterable[tuple[Any, ...]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The index rows (:data:`INDEX_COLUMNS`) and key rows (:data:`KEY_COLUMNS`) of
    value block ``seq``, from its value rows (:data:`VALUE_COLUMNS` order, leaf order).

    One index row per parameter, in order of first appearance: how many of the
    block's values it has, its first and last leaf, and the last one's server time.
    """
    series: dict[str, list[Any]] = {}
    keys: list[tuple[Any, ...]] = []
    for row in rows:
        leaf, batch_id, parameter, server_ts, source_key = (
            row[1],
            row[2],
            row[3],
            row[8],
            row[12],
        )
        entry = series.get(parameter)
        if entry is None:
            series[parameter] = [seq, parameter, batch_id, 1, leaf, leaf, server_ts]
        else:
            entry[3] += 1
            entry[5] = leaf
            entry[6] = server_ts
        if source_key is not None:
            keys.append((source_key, seq, leaf, batch_id))
    return [tuple(e) for e in series.values()], keys


def block_row_changes(seq: int, leaves: Sequence[bytes]) -> Iterator[RowChange]:
    """The rows value block ``seq`` wrote (its index and key rows), as :func:`row_changes`
    yields them. Raises :class:`GxpError` for a leaf that is not a value record."""
    index, keys = block_index_rows(seq, block_value_rows(seq, leaves))
    for row in index:
        yield "ebr_value_block", (seq, row[1]), dict(zip(INDEX_COLUMNS, row, strict=True))
    for row in keys:
        yield "ebr_value_key", (row[0],), dict(zip(KEY_COLUMNS, row, strict=True))


def row_changes(seq: int, action: str, new: Any) -> Iterator[RowChange]:
    """The table changes entry ``seq`` made, from its action and ``new`` payload.

    Raises :class:`GxpError` for an image that names an unknown table or lacks
    columns: such an entry cannot have been written by this library.
    """
    if action in VALUE_ACTIONS:
        if not isinstance(new, Mapping) or "batch_id" not in new:
            return  # a value entry from before values carried their batch and limits
        row = value_row(seq, action, new)
        yield "ebr_value", (seq, 0), dict(zip(VALUE_COLUMNS, row, strict=True))
        if row[12] is not None:
            yield "ebr_value_key", (row[12],), dict(zip(KEY_COLUMNS, key_row(row), strict=True))
        return
    if action == BLOCK_ACTION:
        # Its rows come from its leaves, which the ledger keeps beside the entry:
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
