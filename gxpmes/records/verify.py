"""``gxpmes verify``: the log, every projected table, and every signature — in one report.

1. The ledger is verified as ``gxpmes audit verify`` does (hashes, chain,
   Merkle tree, signed tree heads and checkpoints when keys are given).
2. The log is replayed through :func:`gxpmes.records.images.row_changes`
   (the writer's own projector) and each projected table is compared both
   ways: a row the log never wrote, a row the log wrote that is gone, a cell
   that differs. Each entry's ``object_key`` lookup column is checked against
   its canonical bytes.
3. Every signature is re-verified against the record it signs as that record
   is *now* (system countersignature, content hash, the signer's own key).

Nothing is trusted from the database being checked: keys come from the caller.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from audit.blocks import leaves_of
from audit.keys import TrustedKey
from audit.ledger import Ledger
from audit.schema import object_key
from audit.verify import VerificationReport, keys_under_head_names, verify_ledger
from gxpmes.errors import GxpError
from gxpmes.records.images import (
    BLOCK_ACTION,
    KEY_COLUMNS,
    VALUE_ACTIONS,
    VALUE_COLUMNS,
    RowChange,
    block_row_changes,
    key_row,
    row_changes,
    value_name,
    value_row,
)
from gxpmes.records.replay import (
    ExpectedRow,
    RecordProblem,
    compare_rows,
    compare_value_rows,
    key_text,
)
from gxpmes.records.tables import TableSpec, projected

__all__ = ["RecordProblem", "RecordReport", "verify_record"]

_Row = TypeVar("_Row")
_BATCH = VALUE_COLUMNS.index("batch_id")


@dataclass
class RecordReport:
    """Outcome of :func:`verify_record`: the ledger's report and every record problem."""

    ledger: VerificationReport
    problems: list[RecordProblem] = field(default_factory=list)
    rows_checked: int = 0
    signatures_checked: int = 0
    warnings: list[str] = field(default_factory=list)
    batch: str | None = None

    @property
    def ok(self) -> bool:
        """True only when the log verifies and every table and signature agrees with it."""
        return self.ledger.ok and not self.problems

    def as_json(self) -> dict[str, Any]:
        """``{"ok", "ledger", "problems": [...], ...}`` as ``gxpmes verify --json`` prints it."""
        return {
            "ok": self.ok,
            "complete": self.complete,
            "batch": self.batch,
            "ledger": self.ledger.as_json(),
            "rows_checked": self.rows_checked,
            "signatures_checked": self.signatures_checked,
            "warnings": list(self.warnings),
            "problems": [p.as_json() for p in self.problems],
        }

    @property
    def complete(self) -> bool:
        """True when nothing was left unchecked for want of a key (no warnings)."""
        return not self.warnings

    def summary(self) -> str:
        """One line: VERIFIED, NOT VERIFIED (checks left undone) or the number of problems."""
        if self.ok:
            scope = f"batch {self.batch}" if self.batch else "all records"
            counts = (
                f"{self.ledger.entries} audit entries, {self.rows_checked} rows "
                f"({scope}), {self.signatures_checked} signatures agree with the log"
            )
            if not self.complete:
                return f"NOT VERIFIED: no problem found, but checks were left undone: {counts}"
            return f"VERIFIED: {counts}"
        count = len(self.problems) + (0 if self.ledger.ok else 1)
        return f"FAILED: {count} problem(s)"

    def lines(self) -> list[str]:
        """One line per problem (the ledger's first, if any)."""
        out = [] if self.ledger.ok else [f"audit log: {self.ledger.summary()}"]
        return out + [p.line() for p in self.problems]


_CHUNK = 20_000


def _snapshot(engine: Engine) -> Connection:
    """One read transaction for the replay and every table it is compared with.

    REPEATABLE READ on PostgreSQL (one snapshot for all statements), a plain
    ``BEGIN`` on SQLite (a WAL snapshot; no write lock, so the plant keeps
    writing while QA verifies). Without it, a row committed between reading
    the log and reading its table would be reported as extra or differing.
    """
    options: dict[str, Any] = {"ledger_read": True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    return engine.connect().execution_options(**options)


def _stream(
    conn: Connection, sql: str, params: tuple[Any, ...] = (), name: str = "gxpmes_verify"
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` through one driver cursor (server-side on PostgreSQL), in chunks."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    if not conn.in_transaction():
        conn.exec_driver_sql("SELECT 1")  # the snapshot every stream reads in
    cursor: Any = dbapi.cursor(name=name) if conn.dialect.name == "postgresql" else dbapi.cursor()
    try:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(_CHUNK):
            yield from chunk
    finally:
        cursor.close()


def _entries(
    conn: Connection, problems: list[RecordProblem], tick: Callable[[int], None]
) -> Iterator[tuple[int, str, Any]]:
    """``(seq, action, new)`` of every entry; a wrong ``object_key`` is a problem."""
    loads, raw_decode = json.loads, json.JSONDecoder().raw_decode
    keys: dict[tuple[str, str], int] = {}  # few objects, many entries (a parameter's values)
    rows = _stream(conn, "SELECT seq, object_key, canonical FROM audit_entry ORDER BY seq")
    for seq, stored_key, canonical in rows:
        try:
            text = str(canonical, "utf-8", "surrogatepass")
            try:  # canonical text is one bare JSON object: the scanner alone reads it
                data, end = raw_decode(text)
                if end != len(text):
                    raise ValueError(text)
            except ValueError:
                data = loads(text)  # anything else: json.loads decides, as it always did
            obj = data["object"]
            action = data["action"]
        except (ValueError, KeyError, TypeError):
            continue  # the ledger verification names malformed entries
        ident = (obj["type"], obj["id"])
        key = keys.get(ident)
        if key is None:
            if len(keys) > 100_000:
                keys.clear()
            key = keys[ident] = object_key(*ident)
        if stored_key != key:
            problems.append(
                RecordProblem(
                    "audit_entry", str(seq), "object_key", seq, "object_key", key, stored_key
                )
            )
        if seq % _CHUNK == 0:
            tick(seq)
        yield seq, action, data["new"]


def _rows(conn: Connection, spec: TableSpec, batch: str | None) -> Iterator[dict[str, Any]]:
    """The table's rows as the driver returns them: no type processing hides a wrong cell
    (SQLAlchemy would turn text in a flag column into ``True``)."""
    quote = conn.dialect.identifier_preparer.quote
    sql = f"SELECT {', '.join(quote(c) for c in spec.columns)} FROM {quote(spec.name)}"
    params: tuple[Any, ...] = ()
    if batch is not None and spec.batch_column is not None:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql += f" WHERE {quote(spec.batch_column)} = {mark}"
        params = (batch,)
    for row in _stream(conn, sql, params, f"gxpmes_verify_{spec.name}"):
        yield dict(zip(spec.columns, row, strict=True))


def _value_rows(conn: Connection, batch: str | None) -> Iterator[tuple[Any, ...]]:
    """``ebr_value`` rows as tuples in :data:`VALUE_COLUMNS` order, straight from the driver."""
    sql = f"SELECT {', '.join(VALUE_COLUMNS)} FROM ebr_value"
    if batch is None:
        return _stream(conn, sql, name="gxpmes_verify_values")
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return _stream(conn, f"{sql} WHERE batch_id = {mark}", (batch,), "gxpmes_verify_values")


def _fast_values(specs: dict[str, TableSpec]) -> TableSpec | None:
    """The ``ebr_value`` spec if its rows can take the tuple path (columns as expected)."""
    spec = specs.get("ebr_value")
    if spec is None or spec.key != ("seq", "leaf") or sorted(spec.columns) != sorted(VALUE_COLUMNS):
        return None
    return spec


def _in_batch(spec: TableSpec, image: dict[str, Any], batch: str | None) -> bool:
    return batch is None or spec.batch_column is None or image.get(spec.batch_column) == batch


def _verify_log(
    ledger: Ledger,
    checkpoint: str | None,
    trusted_keys: Sequence[TrustedKey],
    head_keys: Sequence[TrustedKey] | None,
    signature_keys: dict[str, bytes] | None,
    say: Callable[[str], None],
) -> VerificationReport:
    """The log check of :func:`verify_record` with the keys it was given."""
    return verify_ledger(
        ledger,
        checkpoint=checkpoint,
        trusted_keys=trusted_keys,
        head_keys=(
            # Every key the caller trusts (an installation commonly signs heads,
            # checkpoints and e-signatures with one key), under the heads' own names.
            keys_under_head_names(
                ledger,
                [k.verifier.public_key for k in trusted_keys]
                + list((signature_keys or {}).values()),
            )
            if head_keys is None
            else list(head_keys)
        )
        or None,
        progress=lambda n: say(f"audit log: {n} entries verified"),
    )


def verify_record(
    engine: Engine,
    *,
    batch: str | None = None,
    checkpoint: str | None = None,
    trusted_keys: Sequence[TrustedKey] = (),
    head_keys: Sequence[TrustedKey] | None = None,
    signature_keys: dict[str, bytes] | None = None,
    progress: Callable[[str], None] | None = None,
    ledger_check: Callable[[Ledger, Callable[[int], None]], VerificationReport] | None = None,
) -> RecordReport:
    """Verify the log, the projected tables and the signatures of one database.

    ``ledger_check(ledger, progress)``, when given, verifies the log instead
    of :func:`audit.verify.verify_ledger` with the keys above (e.g. with trust
    from a trust file and every outside checkpoint:
    :func:`audit.anchoring.verify.verify_anchored`).

    ``trusted_keys`` verify checkpoints; ``head_keys`` the signed tree heads
    (default: every key the caller trusts — checkpoint and signature keys —
    under the names the stored heads are signed with), so entries no head
    covers are reported as forged; ``signature_keys``
    (key id → Ed25519 public key) verify the system countersignature of
    e-signatures. Without them those checks are reported as not done, in
    ``warnings``, never as passed. ``batch`` limits the table comparison to
    that batch's rows plus all master data (recipes, equipment, lots, users).
    """
    started = time.monotonic()
    last = [started]

    def say(message: str) -> None:
        now = time.monotonic()
        if progress is not None and now - started > 1.0 and now - last[0] > 1.0:
            last[0] = now
            progress(message)

    ledger = Ledger(engine, create=False)
    if ledger_check is not None:
        ledger_report = ledger_check(ledger, lambda n: say(f"audit log: {n} entries verified"))
    else:
        ledger_report = _verify_log(
            ledger, checkpoint, trusted_keys, head_keys, signature_keys, say
        )
    report = RecordReport(ledger_report, batch=batch)
    report.warnings.extend(ledger_report.warnings)
    specs = projected()
    value_spec = _fast_values(specs)
    # ebr_value: (seq, leaf) → row (manual entries, captures before value blocks)
    values: dict[tuple[int, int], tuple[Any, ...]] = {}
    stored_blocks = _Blocks(ledger.iter_blocks())
    with _snapshot(engine) as conn:
        expected: dict[str, dict[tuple[Any, ...], ExpectedRow]] = {}
        for seq, action, new in _entries(
            conn, report.problems, lambda n: say(f"replay: {n} entries")
        ):
            try:
                if action == BLOCK_ACTION:
                    # A value block: its rows are its leaves (checked against the
                    # block's root by the ledger's verification).
                    if (
                        batch is not None
                        and isinstance(new, Mapping)
                        and new.get("batch_id") != batch
                    ):
                        continue
                    # Its rows (index and source keys) come from its leaves.
                    changes: list[RowChange] = list(
                        block_row_changes(seq, stored_blocks.leaves(seq))
                    )
                elif value_spec is not None and action in VALUE_ACTIONS:
                    # What row_changes() yields for a value entry, the value row kept
                    # as a tuple. (type() first: JSON objects are dicts, and an ABC
                    # check costs more.)
                    if not ((type(new) is dict or isinstance(new, Mapping)) and "batch_id" in new):
                        continue
                    row = value_row(seq, action, new)
                    if batch is not None and row[_BATCH] != batch:
                        continue
                    values[(seq, 0)] = row
                    if row[12] is None:
                        continue
                    changes = [
                        (
                            "ebr_value_key",
                            (row[12],),
                            dict(zip(KEY_COLUMNS, key_row(row), strict=True)),
                        )
                    ]
                else:
                    changes = list(row_changes(seq, action, new))
            except Exception as exc:
                report.problems.append(
                    RecordProblem("audit_entry", str(seq), None, seq, "bad_image", str(exc))
                )
                continue
            for table, key, image in changes:
                if value_spec is not None and table == value_spec.name:
                    if image is None:
                        values.pop((key[0], key[1]), None)
                    elif _in_batch(value_spec, image, batch):
                        values[(key[0], key[1])] = tuple(image[c] for c in VALUE_COLUMNS)
                    continue
                table_rows = expected.setdefault(table, {})
                if image is None:
                    table_rows.pop(key, None)
                elif _in_batch(specs[table], image, batch):
                    if table == "ebr_value_key" and key in table_rows:
                        # A source key is recorded once: a second value with it is
                        # a redelivery recorded again (its key row was removed).
                        report.problems.append(
                            _duplicate_key(key, table_rows[key].image, image, seq)
                        )
                    table_rows[key] = ExpectedRow(seq, image)
        for name, spec in specs.items():
            say(f"comparing {name}")
            if spec is value_spec:
                tuples = _Counter(_value_rows(conn, batch))
                report.problems.extend(compare_value_rows(spec, values, tuples))
                report.rows_checked += tuples.count
            else:
                found = _Counter(_rows(conn, spec, batch))
                report.problems.extend(compare_rows(spec, expected.get(name, {}), found))
                report.rows_checked += found.count
    stored_blocks.close()
    _verify_signatures(engine, report, batch, signature_keys)
    return report


def _duplicate_key(
    key: tuple[Any, ...], first: Mapping[str, Any], again: Mapping[str, Any], seq: int
) -> RecordProblem:
    """The problem of a source key that two values of the log carry."""
    names = [value_name(int(r["seq"]), int(r["leaf"])) for r in (first, again)]
    return RecordProblem(
        "ebr_value_key",
        key_text(key),
        None,
        seq,
        "duplicate_source_key",
        f"one value per source key, but values {names[0]} and {names[1]} carry it",
    )


class _Blocks:
    """The leaves of value blocks, read in seq order beside the entries (one stream)."""

    def __init__(self, blocks: Iterator[tuple[int, bytes]]) -> None:
        self.blocks = blocks
        self.seq = -1
        self.blob = b""

    def leaves(self, seq: int) -> list[bytes]:
        """The stored leaves of block entry ``seq`` (entries are asked for in seq order)."""
        while self.seq < seq:
            self.seq, self.blob = next(self.blocks, (sys.maxsize, b""))
        if self.seq != seq:
            raise GxpError(f"audit entry {seq} is a value block whose leaves are not stored")
        return leaves_of(seq, self.blob)

    def close(self) -> None:
        """Release the stream's connection."""
        close = getattr(self.blocks, "close", None)
        if close is not None:
            close()


class _Counter(Generic[_Row]):
    """Iterate rows while counting them."""

    def __init__(self, rows: Iterator[_Row]) -> None:
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[_Row]:
        for row in self.rows:
            self.count += 1
            yield row


def _verify_signatures(
    engine: Engine,
    report: RecordReport,
    batch: str | None,
    signature_keys: dict[str, bytes] | None,
) -> None:
    from gxpmes.records.signatures import check_signatures

    if not signature_keys:
        report.warnings.append(
            "e-signatures not checked: no trusted system key given (--signature-key)"
        )
        return
    checked, problems = check_signatures(engine, signature_keys, batch)
    report.signatures_checked = checked
    report.problems.extend(problems)


def print_progress(message: str) -> None:
    """Progress to stderr (the CLI's ``progress`` callback)."""
    print(message, file=sys.stderr, flush=True)


__all__ += ["key_text", "print_progress"]
