"""The append-only, hash-chained, Merkle-logged audit ledger.

Appending takes the database's write lock (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL a transaction-scoped advisory lock), reads the tail under that
lock, and inserts the new rows in the same transaction, so concurrent
appenders in several processes get gapless, unforked sequence numbers. An
append returns only after the commit, i.e. once the database reports the
rows durable.

Signed tree heads. A ledger given a ``head_signer`` signs, in every write
transaction that appends, one checkpoint of the tail that transaction leaves
(``audit_tree_head``), under the same lock and in the same transaction as the
rows. ``append_many`` and ``append`` without ``conn`` do it themselves. An
append that joins the caller's transaction (``conn=``) leaves the head to
:meth:`Ledger.seal`, which the caller runs before committing — or uses
:meth:`Ledger.transaction`, which does; a commit of unsealed entries is
refused. Rows a bare INSERT adds are under no head, and the ledger does not
sign over a tail it did not seal: verification reports them as forged.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, inspect, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Transaction
from sqlalchemy.exc import DBAPIError, IntegrityError

from audit.blocks import (
    LeafProof,
    blob_of,
    block_path,
    check_block,
    check_leaves,
    leaf_hashes,
    leaves_of,
    pack_leaves,
    root_of_hashes,
    unpack_leaves,
)
from audit.canonical import format_timestamp
from audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from audit.db import fetch_one, open_engine
from audit.entry import (
    GENESIS_PREV,
    AuditEvent,
    BlockRef,
    Entry,
    block_of,
    encode_entry,
    parse_entry,
    seq_span,
)
from audit.errors import CheckpointError, EntryError, ProofError, SigningKeyError, StorageError
from audit.keys import KeyRegistry, TrustedKey
from audit.merkle import (
    HASH_SIZE,
    extend_frontier,
    frontier_indexes,
    frontier_root,
    inclusion_proof_indexes,
    prove_consistency,
    prove_inclusion,
    split_stored_hash_index,
    stored_hash_index,
    tree_hash,
    tree_hash_indexes,
)
from audit.note import NoteSigner
from audit.schema import (
    BLOCK_REFUSED,
    HEAD_REFUSED,
    SEQ_REFUSED,
    BlockRow,
    CheckpointRow,
    EntryRow,
    LogMetaRow,
    TreeHeadRow,
    create_schema,
    object_key,
)

__all__ = ["BatchReceipt", "BlockReceipt", "ConsistencyProof", "InclusionProof", "Ledger"]

# Arbitrary but fixed: the advisory lock every appender of one database takes.
_PG_APPEND_LOCK = 0x67786D6573  # "gxmes"
_entry_table = EntryRow.__table__
_sha256 = hashlib.sha256
_log = logging.getLogger("audit.ledger")
_ROWS_SQL = "SELECT seq, canonical, leaf_hash, tree_hashes FROM audit_entry ORDER BY seq"
_BLOCKS_SQL = "SELECT seq, leaves FROM audit_block ORDER BY seq"
_TAIL_SQL = "SELECT seq, leaf_hash FROM audit_entry ORDER BY seq DESC LIMIT 1"
_HEADS_SQL = "SELECT tree_size, note FROM audit_tree_head ORDER BY tree_size"
_LAST_HEAD_SQL = "SELECT tree_size, note FROM audit_tree_head ORDER BY tree_size DESC LIMIT 1"
_UNREAD = object()
_STAMP_MARK = b'"recorded_at":"'
_STAMP_LEN = len("2000-01-01T00:00:00.000000Z")


@dataclass(frozen=True, slots=True)
class BatchReceipt:
    """What a durable batch append produced: sequence numbers first_seq .. first_seq+count-1."""

    first_seq: int
    leaf_hashes: tuple[bytes, ...]
    tree_size: int

    @property
    def seqs(self) -> range:
        """The sequence numbers assigned, in order."""
        return range(self.first_seq, self.first_seq + len(self.leaf_hashes))


@dataclass(frozen=True, slots=True)
class BlockReceipt:
    """What a durable block append produced: entry ``seq`` commits to ``count`` leaves.

    ``root`` is the block's RFC 9162 root (the entry's ``block`` member),
    ``entry_hash`` the entry's leaf hash in the log, ``tree_size`` the log's
    size after the append.
    """

    seq: int
    count: int
    root: bytes
    entry_hash: bytes
    tree_size: int


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """RFC 9162 inclusion proof of one entry in a tree of ``tree_size`` entries."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root: bytes

    def as_json(self) -> dict[str, Any]:
        """JSON form used by ``gxpmes audit prove --json`` (hex hashes)."""
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "path": [h.hex() for h in self.path],
            "root": self.root.hex(),
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """RFC 9162 consistency proof between two tree sizes of the same log."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]

    def as_json(self) -> dict[str, Any]:
        """JSON form with hex hashes."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root.hex(),
            "new_root": self.new_root.hex(),
            "path": [h.hex() for h in self.path],
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_rows() -> Generator[Any, None, None]:
    yield from ()


_Rows = Generator[tuple[int, bytes, bytes, bytes], None, None]


def _as_bytes(rows: Generator[Any, None, None]) -> _Rows:
    try:
        for seq, canonical, leaf, tree in rows:
            yield seq, bytes(canonical), bytes(leaf), bytes(tree)
    finally:
        rows.close()


def _as_blocks(rows: Generator[Any, None, None]) -> Generator[tuple[int, bytes], None, None]:
    try:
        for seq, blob in rows:
            yield int(seq), blob_of(blob)
    finally:
        rows.close()


@dataclass(slots=True)
class _Tail:
    """Where one write transaction has left the log so far, kept in ``conn.info``.

    ``signable`` says whether the tail the transaction first extended
    (``base_size``) was under a signed head, i.e. whether the ledger may vouch
    for the log up to ``size``; ``unsealed`` whether entries await their head.
    """

    transaction: weakref.ref[Transaction]
    base_size: int
    signable: bool
    size: int
    prev: bytes
    frontier: list[bytes]
    recorded_at: datetime
    stamp: str  # ``recorded_at`` as written: the time the next append may not precede
    base_prev: bytes = b""  # the last leaf hash at ``base_size``
    written: dict[int, bytes] = field(default_factory=dict)
    """Leaf hash of each entry this transaction wrote, by seq: the seal signs only a
    tail of them (or the base), never rows someone else put there."""
    note: str | None = None  # the head the seal signed over this tail
    unsealed: bool = True


def _tail_of(row: Any) -> tuple[int, bytes]:
    """``(size, last leaf hash)`` from the last entry's ``(seq, leaf_hash)`` row (None: an
    empty log, whose chain starts at the genesis hash)."""
    if row is None:
        return 0, GENESIS_PREV
    return int(row[0]) + 1, bytes(row[1])


def _append_error(exc: BaseException | None, *, conflict: bool) -> StorageError:
    """The driver's refusal of an append, as the ledger's own error."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if SEQ_REFUSED in message or HEAD_REFUSED in message or BLOCK_REFUSED in message:
        return StorageError(
            f"the database refused the append, nothing was written: {message} "
            "(another writer appended without the ledger's lock, or the tail was tampered with)"
        )
    if conflict:
        return StorageError(f"append conflicted with another writer: {message}")
    return StorageError(f"append failed, nothing was written: {message}")


class Ledger:
    """An audit ledger stored in one database.

    Use :meth:`open` for a path or URL; pass an :class:`~sqlalchemy.Engine`
    made by :func:`audit.db.open_engine` to share one with an application.
    ``reason_required_actions`` names actions that change or delete GxP data;
    appending one of them without a reason raises :class:`EntryError`.

    ``head_signer`` is the application's tree-head key: with it, every write
    transaction's new tail is signed (see the module docstring); its public
    key is registered in :attr:`keys`, where it can be revoked. A ledger
    without one refuses to append to a log that already has signed heads,
    since its unsigned writes would leave every later entry unprovable.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        reason_required_actions: frozenset[str] | set[str] = frozenset(),
        clock: Callable[[], datetime] = _utc_now,
        origin: str | None = None,
        create: bool = True,
        head_signer: NoteSigner | None = None,
    ) -> None:
        self.engine = engine
        self.reason_required_actions = frozenset(reason_required_actions)
        self._clock = clock
        self._is_pg = engine.dialect.name == "postgresql"
        # The tree's right frontier after our last append; checked under the lock.
        self._frontier_hashes: list[bytes] = []
        self._frontier_size = -1
        self._frontier_prev = b""
        self._frontier_signable = False  # that tail is under a signed head
        self._frontier_stamp = ""  # recorded time of that tail's last entry
        self._frontier_note: str | None = None  # the head signed over that tail
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._dbapi_conflict: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        columns = [c.name for c in _entry_table.columns]
        self._insert_sql = (
            f"INSERT INTO audit_entry ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})"
        )
        self._block_sql = f"INSERT INTO audit_block (seq, leaves) VALUES ({mark}, {mark})"
        self._insert_head_sql = (
            f"INSERT INTO audit_tree_head (tree_size, note) VALUES ({mark}, {mark})"
        )
        # A ledger made before tree heads (or blocks) has no such table until opened for writing.
        self._has_heads = True
        self._has_blocks = True
        if create:
            create_schema(engine)
            self._origin = self._ensure_origin(origin)
        else:
            tables = inspect(engine)
            if not tables.has_table("audit_entry"):
                raise StorageError(
                    "this database holds no audit ledger (table audit_entry missing)"
                )
            self._has_heads = tables.has_table("audit_tree_head")
            self._has_blocks = tables.has_table("audit_block")
            self._origin = self._read_origin()
        self._tail_key = ("audit.ledger.tail", self._origin)
        self._head_signer = head_signer
        self._head_key: TrustedKey | None = None
        # Called with the new tree size as each write transaction seals (see add_append_listener).
        self._append_listeners: list[Callable[[int], None]] = []
        if head_signer is not None:
            if not self._has_heads:
                raise StorageError(
                    "this ledger predates signed tree heads (table audit_tree_head missing): "
                    "open it for writing once to add the table"
                )
            self._head_key = self._head_key_of(head_signer, register=create)
            sa_event.listen(engine, "commit", self._on_commit)
            sa_event.listen(engine, "rollback", self._on_rollback)

    @classmethod
    def open(
        cls,
        url_or_path: str | Path,
        *,
        read_only: bool = False,
        **options: Any,
    ) -> Ledger:
        """Open (and unless ``read_only``, create) the ledger at a URL or SQLite path."""
        engine = open_engine(url_or_path, read_only=read_only)
        return cls(engine, create=not read_only, **options)

    def close(self) -> None:
        """Release the engine's connections."""
        if self._head_signer is not None and sa_event.contains(
            self.engine, "commit", self._on_commit
        ):
            sa_event.remove(self.engine, "commit", self._on_commit)
            sa_event.remove(self.engine, "rollback", self._on_rollback)
        self.engine.dispose()

    # ------------------------------------------------------------- identity

    @property
    def origin(self) -> str:
        """The log's unique name: first line of every checkpoint."""
        return self._origin

    def _read_origin(self) -> str:
        with self._read() as conn:
            value = conn.scalar(select(LogMetaRow.value).where(LogMetaRow.name == "origin"))
        if value is None:
            raise StorageError("ledger has no origin recorded")
        return value

    def _ensure_origin(self, origin: str | None) -> str:
        with self.engine.begin() as conn:
            self._lock(conn)
            existing = conn.scalar(select(LogMetaRow.value).where(LogMetaRow.name == "origin"))
            if existing is not None:
                if origin is not None and origin != existing:
                    raise StorageError(f"ledger origin is {existing!r}, not {origin!r}")
                return existing
            chosen = origin or f"gxpmes.local/audit/{uuid.uuid4()}"
            if not chosen.strip() or "\n" in chosen:
                raise StorageError(f"invalid log origin {chosen!r}")
            conn.execute(insert(LogMetaRow).values(name="origin", value=chosen))
            return chosen

    # -------------------------------------------------------------- locking

    def _lock(self, conn: Connection) -> None:
        # SQLite already holds the write lock from BEGIN IMMEDIATE.
        if self._is_pg:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_APPEND_LOCK})

    def _lock_and_tail(self, conn: Connection) -> tuple[int, bytes]:
        """Take the append lock and read the tail under it: :meth:`_lock`, then :meth:`_tail`.

        On PostgreSQL both go in one pipelined round trip: the server runs them
        in order, and under READ COMMITTED the tail query's snapshot is taken
        when it starts, i.e. once the lock is held. Round trips inside the lock
        are what several writers queue for.
        """
        if not self._is_pg:  # the write lock is BEGIN IMMEDIATE's; the driver, not the ORM
            return self._driver_tail(conn)
        dbapi: Any = conn.connection.dbapi_connection
        with dbapi.pipeline():
            lock = dbapi.cursor()
            lock.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_APPEND_LOCK,))
            tail = dbapi.cursor()
            tail.execute(_TAIL_SQL)
        row = tail.fetchone()
        lock.close()
        tail.close()
        return _tail_of(row)

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(ledger_read=True)

    # -------------------------------------------------------------- reading

    @staticmethod
    def _driver_tail(conn: Connection) -> tuple[int, bytes]:
        """:meth:`_tail` through the driver's cursor, inside a transaction already begun
        (every write transaction reads it under the lock, and its seal again)."""
        return _tail_of(fetch_one(conn, _TAIL_SQL))

    @staticmethod
    def _tail(conn: Connection) -> tuple[int, bytes]:
        row = conn.execute(
            select(EntryRow.seq, EntryRow.leaf_hash).order_by(EntryRow.seq.desc()).limit(1)
        ).first()
        return _tail_of(row)

    def size(self) -> int:
        """Number of entries (highest seq + 1)."""
        with self._read() as conn:
            return self._tail(conn)[0]

    def head(self) -> tuple[int, bytes]:
        """``(tree size, hash of the last entry)``: the chain head a checkpoint records."""
        with self._read() as conn:
            return self._tail(conn)

    def _db_hashes(
        self, conn: Connection, indexes: Sequence[int], last: list[Any] | None = None
    ) -> dict[int, bytes]:
        """Stored hashes by index; with ``last``, also the bytes of the last owner and
        the largest tree head size (``None``: no head), appended to it.

        (The frontier's last hash belongs to the log's last entry, whose
        recorded time an appender needs, as it needs the last head: one query.)
        """
        owners: dict[int, list[tuple[int, int]]] = {}
        for index in indexes:
            level, k = split_stored_hash_index(index)
            owners.setdefault(((k + 1) << level) - 1, []).append((index, level))
        found: dict[int, bytes] = {}
        columns: list[Any] = [EntryRow.seq, EntryRow.leaf_hash, EntryRow.tree_hashes]
        last_seq = max(owners) if owners else -1
        if last is not None:
            columns.append(EntryRow.canonical)
            if self._has_heads:
                heads = select(func.max(TreeHeadRow.tree_size)).scalar_subquery()
                columns.append(heads.label("max_head"))
        rows = conn.execute(select(*columns).where(EntryRow.seq.in_(list(owners))))
        for row in rows:
            if last is not None and row.seq == last_seq:
                last.append(bytes(row.canonical))
                last.append(row.max_head if self._has_heads else None)
            for index, level in owners[row.seq]:
                if level == 0:
                    found[index] = bytes(row.leaf_hash)
                else:
                    blob = bytes(row.tree_hashes)
                    found[index] = blob[(level - 1) * HASH_SIZE : level * HASH_SIZE]
        bad = [i for i in indexes if len(found.get(i, b"")) != HASH_SIZE]
        if bad:
            level, k = split_stored_hash_index(bad[0])
            raise StorageError(
                f"stored hash (level {level}, index {k}) missing: entry "
                f"{((k + 1) << level) - 1} is missing or damaged"
            )
        return found

    def hash_reader(self, conn: Connection) -> Callable[[Sequence[int]], list[bytes]]:
        """A :data:`audit.merkle.HashReader` over this database connection."""

        def read(indexes: Sequence[int]) -> list[bytes]:
            found = self._db_hashes(conn, indexes)
            return [found[i] for i in indexes]

        return read

    def root(self, tree_size: int | None = None) -> bytes:
        """RFC 9162 root hash of the first ``tree_size`` entries (default: all)."""
        with self._read() as conn:
            size = self._tail(conn)[0] if tree_size is None else tree_size
            if size < 0:
                raise ProofError(f"negative tree size {size}")
            return tree_hash(size, self.hash_reader(conn))

    def entry(self, seq: int) -> Entry:
        """The entry with sequence number ``seq``."""
        with self._read() as conn:
            canonical = conn.scalar(select(EntryRow.canonical).where(EntryRow.seq == seq))
        if canonical is None:
            raise StorageError(f"no audit entry with seq {seq}")
        return parse_entry(bytes(canonical))

    def entries_for(self, object_type: str, object_id: str) -> list[Entry]:
        """Every entry about one object, in order: that object's audit trail."""
        with self._read() as conn:
            rows = conn.scalars(
                select(EntryRow.canonical)
                .where(EntryRow.object_key == object_key(object_type, object_id))
                .order_by(EntryRow.seq)
            )
            entries = [parse_entry(bytes(c)) for c in rows]
        # The key is a hash: drop the (astronomically unlikely) collisions.
        return [
            e
            for e in entries
            if e.event.object_type == object_type and e.event.object_id == object_id
        ]

    def iter_raw_rows(self, chunk: int = 10_000) -> Iterator[tuple[int, bytes, bytes, bytes]]:
        """``(seq, canonical, leaf_hash, tree_hashes)`` for every row, in seq order.

        The verification hot path: one streaming driver-level cursor (a
        server-side cursor on PostgreSQL), no ORM rows in between.
        """
        with self._read() as conn:
            yield from self._stream_rows(conn, chunk)

    def tree_heads(self) -> list[tuple[int, str]]:
        """Stored signed tree heads ``(tree size, note)``, in size order."""
        return list(self.iter_tree_heads())

    def iter_tree_heads(self, chunk: int = 10_000) -> Iterator[tuple[int, str]]:
        """Stored signed tree heads ``(tree size, note)``, in size order, streamed."""
        if not self._has_heads:
            return
        with self._read() as conn:
            for size, note in self._stream(conn, _HEADS_SQL, "gxpmes_audit_heads", chunk):
                yield int(size), note

    @contextmanager
    def snapshot(
        self, chunk: int = 10_000
    ) -> Iterator[tuple[Iterator[tuple[int, bytes, bytes, bytes]], Iterator[tuple[int, str]]]]:
        """Entry rows and tree heads of one moment, for verifying a live log.

        Yields ``(rows, heads)``: :meth:`iter_raw_rows`-style rows and
        ``(tree size, note)`` heads, both streamed in order from one read
        transaction (``REPEATABLE READ`` on PostgreSQL), so no head is newer
        than the rows beside it.
        """
        options: dict[str, Any] = {"ledger_read": True}
        if self._is_pg:
            options["isolation_level"] = "REPEATABLE READ"
        with self.engine.connect().execution_options(**options) as conn:
            conn.exec_driver_sql("SELECT 1")  # begin the transaction both streams read in
            rows = self._stream_rows(conn, chunk)
            heads = (
                self._stream(conn, _HEADS_SQL, "gxpmes_audit_heads", chunk)
                if self._has_heads
                else _no_rows()
            )
            try:
                yield rows, heads
            finally:  # close the cursors while the connection is still ours
                rows.close()
                heads.close()

    def _stream_rows(self, conn: Connection, chunk: int) -> _Rows:
        rows = self._stream(conn, _ROWS_SQL, "gxpmes_audit_rows", chunk)
        return _as_bytes(rows) if self._is_pg else rows  # sqlite3 returns bytes already

    def _stream(
        self, conn: Connection, sql: str, name: str, chunk: int
    ) -> Generator[Any, None, None]:
        """Rows of ``sql`` through one driver-level cursor (server-side on PostgreSQL)."""
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        if self._is_pg:
            if not conn.in_transaction():
                conn.exec_driver_sql("SELECT 1")  # open the transaction a named cursor needs
            named: Any = dbapi.cursor(name=name)
            try:
                named.itersize = chunk
                named.execute(sql)
                yield from named
            finally:
                named.close()
        else:
            cursor = dbapi.cursor()
            try:
                cursor.arraysize = chunk
                yield from cursor.execute(sql)
            finally:
                cursor.close()

    # -------------------------------------------------------------- proofs

    def prove_inclusion(self, seq: int, tree_size: int | None = None) -> InclusionProof:
        """Inclusion proof of entry ``seq`` in the tree of ``tree_size`` (default: current)."""
        with self._read() as conn:
            current = self._tail(conn)[0]
            size = current if tree_size is None else tree_size
            if size > current:
                raise ProofError(f"the log holds {current} entries, not {size}")
            leaf_index = stored_hash_index(0, seq)
            wanted = [*inclusion_proof_indexes(size, seq), *tree_hash_indexes(size), leaf_index]
            found = self._db_hashes(conn, wanted)  # one query for path, root and leaf

            def reader(indexes: Sequence[int]) -> list[bytes]:
                return [found[i] for i in indexes]

            path = prove_inclusion(size, seq, reader)
            return InclusionProof(
                seq, size, found[leaf_index], tuple(path), tree_hash(size, reader)
            )

    def prove_consistency(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Consistency proof from ``old_size`` to ``new_size`` (default: current size)."""
        with self._read() as conn:
            current = self._tail(conn)[0]
            size = current if new_size is None else new_size
            if size > current:
                raise ProofError(f"the log holds {current} entries, not {size}")
            reader = self.hash_reader(conn)
            path = prove_consistency(size, old_size, reader)
            return ConsistencyProof(
                old_size, size, tree_hash(old_size, reader), tree_hash(size, reader), tuple(path)
            )

    # -------------------------------------------------------------- blocks

    def block_leaves(self, seq: int) -> list[bytes]:
        """The leaves stored for block entry ``seq``, in order (unchecked: see prove_leaf)."""
        with self._read() as conn:
            return self._block_leaves(conn, seq)

    def _block_leaves(self, conn: Connection, seq: int) -> list[bytes]:
        blob = None
        if self._has_blocks:
            blob = conn.scalar(select(BlockRow.leaves).where(BlockRow.seq == seq))
        if blob is None:
            raise StorageError(f"no block leaves stored for entry {seq}")
        return leaves_of(seq, blob_of(blob))

    def prove_leaf(self, seq: int, index: int, tree_size: int | None = None) -> LeafProof:
        """Proof that leaf ``index`` of block entry ``seq`` is in the log of ``tree_size``.

        Composes the leaf's path in its block with the entry's RFC 9162
        inclusion proof; :func:`audit.blocks.check_leaf_proof` checks it with
        nothing but the log's root. Raises :class:`ProofError` for an entry
        that commits to no block or an index outside it, and
        :class:`StorageError` when the stored leaves do not match the entry.
        """
        with self._read() as conn:
            canonical = conn.scalar(select(EntryRow.canonical).where(EntryRow.seq == seq))
            if canonical is None:
                raise ProofError(f"no audit entry with seq {seq}")
            canonical = bytes(canonical)
            block = block_of(canonical)
            if block is None:
                raise ProofError(f"entry {seq} commits to no block")
            if not 0 <= index < block.size:
                raise ProofError(f"leaf index {index} is not in the block of {block.size} leaves")
            blob = pack_leaves(self._block_leaves(conn, seq))
        problem = check_block(seq, block, blob)
        if problem is not None:
            raise StorageError(f"{problem[0]}: {problem[1]}")
        leaves = unpack_leaves(blob)
        hashes = leaf_hashes(leaves)
        entry_proof = self.prove_inclusion(seq, tree_size)
        return LeafProof(
            leaf=leaves[index],
            index=index,
            block_size=block.size,
            block_path=tuple(block_path(hashes, index)),
            entry=canonical,
            seq=seq,
            tree_size=entry_proof.tree_size,
            log_path=entry_proof.path,
        )

    def iter_blocks(self, chunk: int = 100) -> Iterator[tuple[int, bytes]]:
        """``(seq, packed leaves)`` of every stored block, in seq order, streamed."""
        if not self._has_blocks:
            return
        with self._read() as conn:
            rows = self._stream(conn, _BLOCKS_SQL, "gxpmes_audit_blocks", chunk)
            try:
                for seq, blob in rows:
                    yield int(seq), blob_of(blob)
            finally:
                rows.close()

    @contextmanager
    def snapshot_blocks(
        self, chunk: int = 10_000
    ) -> Iterator[
        tuple[
            Iterator[tuple[int, bytes, bytes, bytes]],
            Iterator[tuple[int, str]],
            Iterator[tuple[int, bytes]],
        ]
    ]:
        """:meth:`snapshot`, plus the stored blocks ``(seq, packed leaves)`` of the same moment."""
        options: dict[str, Any] = {"ledger_read": True}
        if self._is_pg:
            options["isolation_level"] = "REPEATABLE READ"
        with self.engine.connect().execution_options(**options) as conn:
            conn.exec_driver_sql("SELECT 1")  # begin the transaction the streams read in
            rows = self._stream_rows(conn, chunk)
            heads = (
                self._stream(conn, _HEADS_SQL, "gxpmes_audit_heads", chunk)
                if self._has_heads
                else _no_rows()
            )
            blocks = (
                _as_blocks(self._stream(conn, _BLOCKS_SQL, "gxpmes_audit_blocks", 100))
                if self._has_blocks
                else _no_rows()
            )
            try:
                yield rows, heads, blocks
            finally:  # close the cursors while the connection is still ours
                rows.close()
                heads.close()
                blocks.close()

    # ------------------------------------------------------------- appending

    def _check_reason(self, event: AuditEvent) -> None:
        if not isinstance(event, AuditEvent):
            raise EntryError(f"expected an AuditEvent, got {type(event).__name__}")
        if event.reason is None and event.action in self.reason_required_actions:
            raise EntryError(
                f"action {event.action!r} on {event.object_type} {event.object_id!r} "
                "changes GxP data and needs a reason"
            )

    def append(self, event: AuditEvent, *, conn: Connection | None = None) -> Entry:
        """Append one entry durably and return it.

        With ``conn`` the entry joins the caller's open transaction (so a
        record change and its audit entry commit or roll back together); it is
        durable when the caller commits. With a head signer the caller must
        call :meth:`seal` before committing (or use :meth:`transaction`).
        """
        _, entries = self._append([event], keep_entries=True, conn=conn)
        return entries[0]

    def append_many(
        self, events: Sequence[AuditEvent], *, conn: Connection | None = None
    ) -> BatchReceipt:
        """Append many entries in one transaction: all become durable, or none does.

        Without ``conn`` the batch gets its own transaction and, with a head
        signer, its one signed tree head; with ``conn`` see :meth:`append`.
        """
        receipt, _ = self._append(events, keep_entries=False, conn=conn)
        return receipt

    def append_block(
        self,
        event: AuditEvent,
        leaves: Sequence[bytes],
        *,
        conn: Connection | None = None,
    ) -> BlockReceipt:
        """Append one entry that commits to a block of values (see :mod:`audit.blocks`).

        ``leaves`` are the values' RFC 8785 canonical bytes, one JSON object
        each (:func:`audit.blocks.encode_leaves` writes them; other bytes are
        checked and refused with :class:`EntryError` when not canonical). The
        entry is ``event`` plus a ``block`` member with the leaves' RFC 9162
        root and count; the leaves are stored beside it, in the same
        transaction. Each value stays provable on its own
        (:meth:`prove_leaf`). ``conn`` works as for :meth:`append`.
        """
        return self.append_blocks([(event, leaves)], conn=conn)[0]

    def append_blocks(
        self,
        blocks: Sequence[tuple[AuditEvent, Sequence[bytes]]],
        *,
        conn: Connection | None = None,
    ) -> list[BlockReceipt]:
        """Append several blocks (``(event, leaves)`` pairs) in one transaction, in order."""
        if not blocks:
            return []
        refs: list[tuple[BlockRef, bytes]] = []
        for event, leaves in blocks:
            self._check_reason(event)
            check_leaves(leaves)
            blob = pack_leaves(leaves)
            if blob.count(b"\n") != len(leaves) - 1:  # e.g. CanonicalLeaves made by hand
                raise EntryError("a leaf holds a raw newline: it is not canonical JSON")
            refs.append((BlockRef(root_of_hashes(leaf_hashes(leaves)), len(leaves)), blob))
        receipt, _ = self._append(
            [e for e, _ in blocks], keep_entries=False, conn=conn, blocks=refs
        )
        return [
            BlockReceipt(seq, ref.size, ref.root, leaf, receipt.tree_size)
            for seq, (ref, _blob), leaf in zip(receipt.seqs, refs, receipt.leaf_hashes, strict=True)
        ]

    def _append(
        self,
        events: Sequence[AuditEvent],
        *,
        keep_entries: bool,
        conn: Connection | None = None,
        blocks: Sequence[tuple[BlockRef, bytes]] | None = None,
    ) -> tuple[BatchReceipt, list[Entry]]:
        for event in events:
            self._check_reason(event)
        if not events:
            size = self.size()
            return BatchReceipt(size, (), size), []
        if blocks is not None and not self._has_blocks:
            raise StorageError(
                "this ledger predates value blocks (table audit_block missing): "
                "open it for writing once to add the table"
            )
        try:
            if conn is not None:
                receipt, entries, _tail = self._write(conn, events, keep_entries, blocks)
                # Inside the caller's transaction: whether it commits is not ours
                # to know, so the cached frontier is not trusted afterwards (the
                # commit hook sets it again). Only *after* the write: reset before
                # it, the hint the last commit left was never used.
                self._frontier_size = -1
                return receipt, entries
            with self.engine.begin() as own:
                receipt, entries, tail = self._write(own, events, keep_entries, blocks)
                self._sign_head(own, tail)  # same transaction: rows and head commit together
                del own.info[self._tail_key]
        except DBAPIError as exc:
            self._frontier_size = -1
            raise _append_error(exc.orig, conflict=isinstance(exc, IntegrityError)) from exc
        except self._dbapi_error as exc:  # raised by the driver-level executemany
            self._frontier_size = -1
            raise _append_error(exc, conflict=isinstance(exc, self._dbapi_conflict)) from exc
        except BaseException:
            self._frontier_size = -1
            raise
        self._frontier_hashes = tail.frontier
        self._frontier_size = tail.size
        self._frontier_prev = tail.prev
        self._frontier_signable = tail.signable
        self._frontier_stamp = tail.stamp
        self._frontier_note = tail.note
        return receipt, entries

    def _write(
        self,
        conn: Connection,
        events: Sequence[AuditEvent],
        keep_entries: bool,
        blocks: Sequence[tuple[BlockRef, bytes]] | None = None,
    ) -> tuple[BatchReceipt, list[Entry], _Tail]:
        """Lock, read the tail, encode, hash and insert — inside ``conn``'s transaction."""
        size, prev = self._lock_and_tail(conn)
        # Read the clock under the lock: appenders then record times in seq order.
        recorded_at = self._clock()
        if recorded_at.utcoffset() is None:
            raise EntryError("the ledger clock returned a naive datetime")
        stamp = format_timestamp(recorded_at)
        if self._head_key is not None:
            problem = self._head_key.problem_at(recorded_at)
            if problem is not None:
                raise SigningKeyError(f"refusing to sign tree heads with an invalid key: {problem}")
        earlier = self._pending(conn)  # this transaction's appends so far, if any
        base_prev = prev if earlier is None else earlier.base_prev
        frontier, signable, base_size, last_stamp = self._tail_state(conn, size, prev)
        # Stamps are fixed-width UTC text, so text order is time order. Only a tail
        # under our own signed head sets the floor: a forged far-future entry must
        # not stop every later write (it is reported as forged instead).
        if (signable or self._head_signer is None) and stamp < last_stamp:
            raise EntryError(
                f"refusing to record time going backwards: the clock says {stamp}, "
                f"but entry {size - 1} was recorded at {last_stamp}; nothing was written"
            )
        rows: list[tuple[Any, ...]] = []
        leaves: list[bytes] = []
        entries: list[Entry] = []
        keys: dict[tuple[str, str], int] = {}  # a batch's values mostly share a few objects
        n = size
        for i, event in enumerate(events):
            block = None if blocks is None else blocks[i][0]
            canonical = encode_entry(n, stamp, prev, event, block)
            leaf = _sha256(b"\x00" + canonical).digest()  # record_hash, inlined
            if n & 1:
                interior = b"".join(extend_frontier(frontier, n, leaf))
            else:  # an even record completes no subtree: it only joins the frontier
                frontier.append(leaf)
                interior = b""
            target = (event.object_type, event.object_id)
            key = keys.get(target)
            if key is None:
                key = keys[target] = object_key(*target)
            rows.append((n, key, canonical, leaf, interior))
            if keep_entries:
                entries.append(Entry(n, recorded_at, prev, event, canonical, block))
            leaves.append(leaf)
            prev = leaf
            n += 1
        # Straight to the driver's executemany: this is the ingest hot path.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if blocks is None:
                cursor.executemany(self._insert_sql, rows)
            elif self._is_pg:  # one round trip for them all
                with conn.connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
                    for row, (_block, blob) in zip(rows, blocks, strict=True):
                        cursor.execute(self._insert_sql, row)
                        cursor.execute(self._block_sql, (row[0], blob))
            else:  # a block's leaves may only follow their entry (audit_block_at_tail)
                for row, (_block, blob) in zip(rows, blocks, strict=True):
                    cursor.execute(self._insert_sql, row)
                    cursor.execute(self._block_sql, (row[0], blob))
        finally:
            cursor.close()
        transaction = conn.get_transaction()
        assert transaction is not None  # reading the tail began it
        written = {} if earlier is None else dict(earlier.written)
        written.update(zip(range(size, n), leaves, strict=True))
        tail = _Tail(
            weakref.ref(transaction),
            base_size,
            signable,
            n,
            prev,
            frontier,
            recorded_at,
            stamp,
            base_prev,
            written,
        )
        conn.info[self._tail_key] = tail
        return BatchReceipt(size, tuple(leaves), n), entries, tail

    def _tail_state(
        self, conn: Connection, size: int, prev: bytes
    ) -> tuple[list[bytes], bool, int, str]:
        """Frontier at the tail, whether a head may cover it, the transaction's base size,
        and the recorded time of the last entry (``""`` for an empty log).

        Reuses what this transaction (or this ledger's last commit) left when
        the tail is still there; otherwise reads it.
        """
        pending = self._pending(conn)
        if pending is not None and (pending.size, pending.prev) == (size, prev):
            return list(pending.frontier), pending.signable, pending.base_size, pending.stamp
        if (size, prev) == (self._frontier_size, self._frontier_prev) and self._head_kept(conn):
            frontier, signable = list(self._frontier_hashes), self._frontier_signable
            last_stamp = self._frontier_stamp
        else:
            indexes = frontier_indexes(size)
            last: list[Any] = []  # the last entry's bytes and the last head, read with it
            found = self._db_hashes(conn, indexes, last) if indexes else {}
            frontier = [found[i] for i in indexes]
            signable = self._tail_signed(conn, size, frontier, prev, *last[1:])
            last_stamp = self._stamp_of(last[0], size - 1) if size else ""
        if pending is not None:  # e.g. after a rolled-back savepoint: the base still holds
            return frontier, pending.signable, pending.base_size, last_stamp
        return frontier, signable, size, last_stamp

    def _head_kept(self, conn: Connection) -> bool:
        """Whether the last stored head is still the one this ledger signed over the cached
        tail (or that tail is under none): if a head was deleted or replaced, or its commit
        failed after the hint was taken, the tail is read and checked again instead.

        One indexed read, no signature check: the note is compared as signed.
        """
        if not self._frontier_signable or self._frontier_note is None:
            return True  # vouched for nothing: reusing it signs nothing either
        row = fetch_one(conn, _LAST_HEAD_SQL)
        return row is not None and (int(row[0]), row[1]) == (
            self._frontier_size,
            self._frontier_note,
        )

    @classmethod
    def _stamp_at(cls, conn: Connection, seq: int) -> str:
        """The ``recorded_at`` text of entry ``seq``, read from its canonical bytes."""
        return cls._stamp_of(
            conn.scalar(select(EntryRow.canonical).where(EntryRow.seq == seq)), seq
        )

    @staticmethod
    def _stamp_of(canonical: Any, seq: int) -> str:
        """The ``recorded_at`` text in entry ``seq``'s canonical bytes (``None``: missing)."""
        # Sorted members: the top-level recorded_at is the last one (quotes in
        # strings are escaped), just before seq.
        at = -1 if canonical is None else bytes(canonical).rfind(_STAMP_MARK)
        if canonical is None or at < 0:
            raise StorageError(f"entry {seq} at the tail is missing or has no recorded time")
        start = at + len(_STAMP_MARK)
        return bytes(canonical)[start : start + _STAMP_LEN].decode("ascii", "replace")

    def _tail_signed(
        self,
        conn: Connection,
        size: int,
        frontier: Sequence[bytes],
        prev: bytes,
        last_head: Any = _UNREAD,
    ) -> bool:
        """Whether the log's first ``size`` entries are under a head signed by *our* key.

        The last head must be for exactly this tail, carry its root and chain
        head, and verify under this ledger's head key: a head inserted by
        someone else (even an unsigned row) must never let the ledger sign
        over entries it did not write.
        """
        if last_head is not _UNREAD:  # read with the frontier
            last = last_head
        else:
            last = conn.scalar(select(func.max(TreeHeadRow.tree_size))) if self._has_heads else None
        if self._head_signer is None:
            if last is not None:
                raise StorageError(
                    "this log's writes carry signed tree heads: open the ledger with its "
                    "head_signer to append (unsigned entries would be reported as forged)"
                )
            return False
        if last is None:
            return True  # the log's first head vouches for what is there (trust on first use)
        if last == size:
            note = conn.scalar(select(TreeHeadRow.note).where(TreeHeadRow.tree_size == size))
            if self._head_vouches(note, size, frontier, prev):
                return True
            _log.warning(
                "audit log %s: the tree head for size %s is not this ledger's (forged?); "
                "the ledger signs no head over it, and verification reports it",
                self._origin,
                size,
            )
            return False
        _log.warning(
            "audit log %s: %s under no signed tree head (inserted without the ledger?); "
            "the ledger signs no head over an unsealed tail, and verification reports it as forged",
            self._origin,
            seq_span(last, size),
        )
        return False

    def _head_vouches(
        self, note: str | None, size: int, frontier: Sequence[bytes], prev: bytes
    ) -> bool:
        """Whether ``note`` is a head of this log at ``size``, signed by this ledger's key."""
        if note is None or self._head_key is None:
            return False
        try:
            opened = open_checkpoint(note)
        except CheckpointError:
            return False
        head = opened.checkpoint
        if (head.origin, head.tree_size, head.root, head.chain_head) != (
            self._origin,
            size,
            frontier_root(frontier),
            prev,
        ):
            return False
        verifier = self._head_key.verifier
        message = opened.text.encode("utf-8")
        return any(
            signature.name == verifier.name
            and signature.key_hash == verifier.key_hash
            and verifier.verify(message, signature.signature)
            for signature in opened.signatures
        )

    # ---------------------------------------------------------- tree heads

    def needs_head_signer(self) -> bool:
        """Whether this log has signed tree heads but this ledger no head signer.

        Such a ledger refuses to append (:class:`StorageError`): callers that
        may run without the key (e.g. a schema upgrade) ask first.
        """
        if self._head_signer is not None or not self._has_heads:
            return False
        with self._read() as conn:
            return conn.scalar(select(func.max(TreeHeadRow.tree_size))) is not None

    @property
    def head_signer(self) -> NoteSigner | None:
        """The key that signs this ledger's tree heads, if any."""
        return self._head_signer

    def _head_key_of(self, signer: NoteSigner, *, register: bool) -> TrustedKey:
        key = self.keys.register(signer) if register else self.keys.get(signer.verifier.key_id)
        key = key or TrustedKey(signer.verifier)
        problem = key.problem_at(self._clock())
        if problem is not None:
            raise SigningKeyError(f"refusing to sign tree heads with an invalid key: {problem}")
        return key

    def _pending(self, conn: Connection) -> _Tail | None:
        """What ``conn``'s current transaction appended, if anything."""
        tail: _Tail | None = conn.info.get(self._tail_key)
        if tail is None:
            return None
        current = conn.get_transaction()
        if current is None or tail.transaction() is not current:
            del conn.info[self._tail_key]  # left by an earlier transaction on this connection
            return None
        return tail

    def seal(self, conn: Connection) -> None:
        """Sign the tree head of the tail ``conn``'s transaction appended, inside it.

        Call it after the last ``append(..., conn=conn)`` and before the
        commit (:meth:`transaction` does): the head is written under the
        append lock the transaction holds, so heads increase with the log. A
        no-op when nothing was appended through ``conn`` since its last seal,
        or when the ledger has no head signer. Committing unsealed entries is
        refused with :class:`StorageError`.
        """
        pending = self._pending(conn)
        if pending is None or not pending.unsealed:
            return
        try:
            size, prev = self._driver_tail(conn)
            if (size, prev) != (pending.size, pending.prev):
                # A savepoint was rolled back since the last append: sign what is left,
                # if it is ours — never a row a trigger or a lock-less writer put there.
                ours = (
                    prev == pending.base_prev
                    if size == pending.base_size
                    else pending.base_size < size < pending.size
                    and pending.written.get(size - 1) == prev
                )
                if not ours:
                    raise StorageError(
                        f"refusing to seal: the log's tail (entry {size - 1}) is not what "
                        "this transaction wrote (a trigger, or a writer without the "
                        "ledger's lock?); nothing was signed or committed"
                    )
                if size == pending.base_size:
                    pending.unsealed = False
                    return
                pending.frontier, _signable, _base, pending.stamp = self._tail_state(
                    conn, size, prev
                )
                pending.size, pending.prev = size, prev
            self._sign_head(conn, pending)
        except DBAPIError as exc:
            raise _append_error(exc.orig, conflict=isinstance(exc, IntegrityError)) from exc
        except self._dbapi_error as exc:  # raised by the driver-level head insert
            raise _append_error(exc, conflict=isinstance(exc, self._dbapi_conflict)) from exc

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction that seals its appends before it commits.

        ``with ledger.transaction() as conn:`` change records and
        ``ledger.append(event, conn=conn)``; the rows, their entries and the
        signed tree head commit together, or nothing does.
        """
        with self.engine.begin() as conn:
            yield conn
            self.seal(conn)

    def add_append_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(tree size)`` as each write transaction of this ledger seals.

        It runs inside the appender's transaction, before the commit: it must
        be cheap and must not raise (automatic checkpoints only wake a thread,
        see :mod:`audit.anchoring.publisher`).
        """
        self._append_listeners.append(listener)

    def remove_append_listener(self, listener: Callable[[int], None]) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        if listener in self._append_listeners:
            self._append_listeners.remove(listener)

    def _sign_head(self, conn: Connection, tail: _Tail) -> None:
        tail.unsealed = False
        for listener in self._append_listeners:
            listener(tail.size)
        if self._head_signer is None or not tail.signable:
            return
        head = Checkpoint(
            self._origin, tail.size, frontier_root(tail.frontier), tail.prev, tail.recorded_at
        )
        note = sign_checkpoint(head, self._head_signer)
        tail.note = note
        # The driver's own cursor: one head per write transaction, where building
        # the ORM insert cost more than running it.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self._insert_head_sql, (tail.size, note))
        finally:
            cursor.close()

    def _on_commit(self, conn: Connection) -> None:
        pending = self._pending(conn)
        conn.info.pop(self._tail_key, None)
        if pending is not None and pending.unsealed and pending.signable:
            raise StorageError(
                f"refusing to commit: audit {seq_span(pending.base_size, pending.size)} not sealed "
                "by a signed tree head; call Ledger.seal(conn) before commit, or use "
                "Ledger.transaction()"
            )
        if pending is not None:
            # The caller's transaction commits (still under the append lock): its
            # tail is the next append's, as after an append in a transaction of our
            # own. Only a hint: _tail_state reuses it only if the tail read under
            # the lock is this one (a failed commit or another writer: read again).
            self._frontier_hashes = list(pending.frontier)
            self._frontier_size = pending.size
            self._frontier_prev = pending.prev
            self._frontier_signable = pending.signable
            self._frontier_stamp = pending.stamp
            self._frontier_note = pending.note

    def _on_rollback(self, conn: Connection) -> None:
        conn.info.pop(self._tail_key, None)

    # ----------------------------------------------------------- checkpoints

    @property
    def keys(self) -> KeyRegistry:
        """The registry of public checkpoint keys kept in this database."""
        return KeyRegistry(self.engine, clock=self._clock, audit=self._audit_key_change)

    def _audit_key_change(self, conn: Connection, event: AuditEvent) -> None:
        """A key registration or revocation's entry, in the registry's transaction."""
        head = self._head_key
        if head is not None and event.action == "key.revoke" and event.object_id == head.key_id:
            # Its own head would be signed after the revocation and fail verification.
            raise SigningKeyError(
                f"key {event.object_id} signs this ledger's tree heads: change it through a "
                "ledger opened with another head key"
            )
        self.append(event, conn=conn)
        self.seal(conn)

    def checkpoint(self, signer: NoteSigner) -> str:
        """Sign a checkpoint of the log as it is now; returns the signed note text.

        The signer's public key is registered in the key registry (if new) and a
        copy of the note is kept in the database; keep another copy elsewhere.
        """
        registered = self.keys.register(signer)
        now = self._clock()
        problem = registered.problem_at(now)
        if problem is not None:
            raise SigningKeyError(f"refusing to sign with an invalid key: {problem}")
        with self._read() as conn:
            size, head = self._tail(conn)
            root = tree_hash(size, self.hash_reader(conn))
        note = sign_checkpoint(Checkpoint(self.origin, size, root, head, now), signer)
        self.record_checkpoint(size, note)
        return note

    def apply_revocations(self, trusted: Sequence[TrustedKey]) -> list[TrustedKey]:
        """``trusted`` with revocations recorded in this database applied.

        Trust itself comes only from the caller; the database may only take it away.
        """
        registered = {k.key_id: k for k in self.keys.list_keys()}
        result = []
        for key in trusted:
            known = registered.get(key.key_id)
            if (
                known is not None
                and known.revoked_at is not None
                and (key.revoked_at is None or known.revoked_at < key.revoked_at)
            ):
                key = replace(
                    key, revoked_at=known.revoked_at, revocation_reason=known.revocation_reason
                )
            result.append(key)
        return result

    def record_checkpoint(self, tree_size: int, note: str) -> None:
        """Keep a copy of an issued checkpoint in the database (append-only table)."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(CheckpointRow).values(
                    tree_size=tree_size, created_at=format_timestamp(self._clock()), note=note
                )
            )

    def checkpoints(self) -> list[str]:
        """Signed checkpoint notes kept in the database, oldest first."""
        with self._read() as conn:
            return list(conn.scalars(select(CheckpointRow.note).order_by(CheckpointRow.id)))
