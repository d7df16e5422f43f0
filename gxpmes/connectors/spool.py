"""A durable local spool (SQLite, WAL, synchronous=FULL) between the sources and the database.

A value is acknowledged to its source only after :meth:`Spool.put` returned,
i.e. after it is on disk; the forwarder removes it only after the EBR
database committed it. Redelivered values are recognised by their dedup key
and stored once.

Layout: one ``pending`` row per delivery (a message's new readings, as one
JSON array), so spooling and forwarding cost one row per message rather than
one per value. Several processes may share the file (the MQTT ingest process
writes, the runner's forwarder reads and removes): every write is one
``BEGIN IMMEDIATE`` transaction and waits for the others' locks.

Dedup keys (``seen``) are kept in *generations*: each generation is a table of
keys, written while it is the newest. A key is the reading's source time (64-bit
microseconds) followed by the 128-bit digest of its dedup key: a redelivery carries
the time its first delivery did, and keys that begin with the time are written
where the table's newest keys are — a commit touches a few pages at the table's
end instead of one random page per value, whatever the table's size. :meth:`Spool.prune_seen`
(called by the forwarder in the background) opens a new generation once the
newest is ``seen_retention`` seconds old, and drops the oldest one once both
(a) every value spooled while it was current has left the spool (recorded or
refused), and (b) it stopped taking keys at least ``seen_retention`` seconds
ago *and* this process has run that long (a broker redelivers what a crashed
connector left unacknowledged right after the restart). A key is thus kept
while its value waits and for at least the retention window after. A
redelivery later than that is spooled again and then skipped by the record
itself: ``ebr_value.source_key`` is unique, so it is never recorded twice.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from gxpmes.connectors.model import DeadLetter, NotNumeric, Problem, Reading

__all__ = ["SEEN_RETENTION", "Spool", "not_numeric_of", "reading_of", "value_of"]

SEEN_RETENTION = 900.0
"""Default seconds a dedup key is kept after its generation stopped taking keys."""

_INSERT_LETTER = (
    "INSERT INTO dead_letter (reject_id, received_at, origin, reason, detail, tag, "
    "scope, payload, payload_size, payload_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_UPSERT_STATE = (
    "INSERT INTO source_state (key, body) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET body = excluded.body"
)

_RETURNING = sqlite3.sqlite_version_info >= (3, 35)
"""SQLite says which rows an ``INSERT ... ON CONFLICT DO NOTHING`` inserted."""

_BUSY_TIMEOUT_MS = 60_000  # how long a write waits for another process's commit
_CHUNK = 500  # bound parameters per statement (SQLite before 3.32 allows 999)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_TIME = struct.Struct(">q").pack
_TIME_BYTES = 8

Item = list[Any]
"""A spooled reading: ``[tag, value, source_ts, quality, server_ts, key]`` (value and times
as text; a :class:`NotNumeric` value as ``{"not_numeric": kind, "text": text}``, which no
text parses as a number)."""


class Spool:
    """Values waiting for the database, in arrival order, deduplicated."""

    def __init__(
        self,
        path: str | Path,
        *,
        seen_retention: float = SEEN_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not seen_retention >= 0:
            raise ValueError("seen_retention must be 0 or more seconds")
        self.path = Path(path)
        self.seen_retention = seen_retention
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        # Another process may hold the write lock for a moment (one group commit).
        self._conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=_BUSY_TIMEOUT_MS / 1000,
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._create()
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _create(self) -> None:
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "body TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 1)"
        )
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(pending)")}
        if "n" not in columns:  # a spool of one row per value
            self._conn.execute("ALTER TABLE pending ADD COLUMN n INTEGER NOT NULL DEFAULT 1")
        # Generations of dedup keys (see the module text); ``last_pending`` is the last
        # pending id spooled while the generation took keys (NULL while it still does).
        # ``timed``: the generation's keys begin with the source time (see the module
        # text); 0 for a generation written before, whose keys are the bare digests.
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS seen_gen (gen INTEGER PRIMARY KEY, opened REAL NOT NULL, "
            "last_pending INTEGER, timed INTEGER NOT NULL DEFAULT 1)"
        )
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(seen_gen)")}
        if "timed" not in columns:  # generations of bare digests
            self._conn.execute("ALTER TABLE seen_gen ADD COLUMN timed INTEGER NOT NULL DEFAULT 0")
        now = self._clock()
        if self._conn.execute("SELECT count(*) FROM seen_gen").fetchone()[0] == 0:
            legacy = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='seen'"
            ).fetchone()
            if legacy is not None:  # text keys of a spool written before generations
                self._conn.execute(
                    "INSERT INTO seen_gen (gen, opened, last_pending, timed) VALUES (0, ?, ?, 0)",
                    (now, self._last_pending_id()),
                )
            self._open_generation(1, now)
        newest, timed = self._conn.execute(
            "SELECT gen, timed FROM seen_gen ORDER BY gen DESC LIMIT 1"
        ).fetchone()
        if not timed:  # new keys go to a generation of timed keys; the old one still guards
            self._conn.execute(
                "UPDATE seen_gen SET last_pending = ? WHERE gen = ?",
                (self._last_pending_id(), newest),
            )
            self._open_generation(newest + 1, now)
        # Refused input and detected losses (dead letters), kept until the
        # forwarder has written them to the record's rejects table.
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS dead_letter (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "reject_id TEXT NOT NULL, received_at TEXT NOT NULL, origin TEXT NOT NULL, "
            "reason TEXT NOT NULL, detail TEXT NOT NULL, tag TEXT, scope TEXT, "
            "payload BLOB NOT NULL, payload_size INTEGER NOT NULL, payload_sha256 TEXT NOT NULL)"
        )
        # Small per-source state that must survive a restart (Sparkplug node
        # sequence numbers and aliases, JSON publisher sequence numbers).
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS source_state (key TEXT PRIMARY KEY, body TEXT NOT NULL)"
        )
        self._adopt_legacy_rejects()

    def _open_generation(self, gen: int, now: float) -> None:
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_seen_table(gen)} (key BLOB PRIMARY KEY) WITHOUT ROWID"
        )
        self._conn.execute("INSERT INTO seen_gen (gen, opened, timed) VALUES (?, ?, 1)", (gen, now))

    def _last_pending_id(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name='pending'").fetchone()
        return 0 if row is None else int(row[0])

    def _adopt_legacy_rejects(self) -> None:
        # Spools written before dead letters kept (tag, reason, detail) only.
        legacy = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='rejected'"
        ).fetchone()
        if legacy is None:
            return
        rows = self._conn.execute("SELECT tag, reason, detail FROM rejected ORDER BY id").fetchall()
        now = datetime.now(UTC)
        for tag, reason, detail in rows:
            letter = DeadLetter.of(Problem(reason, detail, tag), "spool", b"", now)
            self._conn.execute(_INSERT_LETTER, _letter_row(letter))
        self._conn.execute("DROP TABLE rejected")

    def reject(self, letter: DeadLetter) -> None:
        """Keep refused input (or a detected loss) durably for the forwarder to record."""
        with self._lock:
            self._conn.execute(_INSERT_LETTER, _letter_row(letter))

    def refuse(self, row_id: int, kept: list[Item], letters: Sequence[DeadLetter]) -> None:
        """In one transaction: keep ``letters`` and leave only ``kept`` of pending row
        ``row_id`` (the rest were refused), so a crash neither loses nor repeats them."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(_INSERT_LETTER, [_letter_row(x) for x in letters])
                if kept:
                    self._conn.execute(
                        "UPDATE pending SET body = ?, n = ? WHERE id = ?",
                        (orjson.dumps(kept), len(kept), row_id),
                    )
                else:
                    self._conn.execute("DELETE FROM pending WHERE id = ?", (row_id,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def rejected(self, limit: int = 100) -> list[tuple[int, DeadLetter]]:
        """The oldest dead letters not yet recorded, with their spool ids."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, reject_id, received_at, origin, reason, detail, tag, scope, payload, "
                "payload_size, payload_sha256 FROM dead_letter ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            (
                row[0],
                DeadLetter(
                    row[1],
                    datetime.fromisoformat(row[2]),
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    row[7],
                    bytes(row[8]),
                    row[9],
                    row[10],
                ),
            )
            for row in rows
        ]

    def forget_rejected(self, ids: list[int]) -> None:
        """Drop dead letters the record now holds."""
        with self._lock:
            self._conn.executemany("DELETE FROM dead_letter WHERE id = ?", [(i,) for i in ids])

    def rejected_count(self) -> int:
        """Dead letters waiting to be recorded."""
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM dead_letter").fetchone()[0])

    def get_state(self, key: str) -> str | None:
        """A source's saved state (see :class:`gxpmes.connectors.sparkplug.SparkplugSession`)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM source_state WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, body: str) -> None:
        """Save a source's state durably."""
        with self._lock:
            self._conn.execute(_UPSERT_STATE, (key, body))

    def put(self, readings: list[Reading], state: dict[str, str] | None = None) -> int:
        """Store readings durably; returns how many were new (duplicates are dropped).

        ``state`` (source state such as sequence numbers) is saved in the same
        transaction, so it never runs ahead of or behind the readings it describes.
        """
        return self.put_many([(readings, [], state or {})])[0]

    def put_many(
        self, deliveries: Sequence[tuple[Sequence[Reading], Sequence[DeadLetter], dict[str, str]]]
    ) -> list[int]:
        """Store several deliveries (readings, dead letters, source state) in *one*
        transaction — one durable commit for all of them (group commit); returns how
        many readings of each were new. Each delivery's new readings are one pending row.

        All or nothing: if anything cannot be stored, nothing is. Deliveries are
        applied in order, so the last state saved under a key wins and a key
        repeated within the group is stored once, at its first occurrence.
        """
        keys = [[_seen_key(r) for r in batch[0]] for batch in deliveries]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                gens = self._conn.execute("SELECT gen, timed FROM seen_gen ORDER BY gen").fetchall()
                unique = list(dict.fromkeys(k for batch in keys for k in batch if k is not None))
                # The older generations are looked up; the newest takes the other keys and
                # says which of them it did not hold yet: those are new.
                before = self._seen(deliveries, keys, unique, gens[:-1])
                fresh = self._insert_new(
                    _seen_table(gens[-1][0]), [k for k in unique if k not in before]
                )
                news = []
                rows: list[tuple[bytes, int]] = []
                letters: list[DeadLetter] = []
                states: dict[str, str] = {}
                for (readings, refused, state), batch_keys in zip(deliveries, keys, strict=True):
                    letters.extend(refused)
                    kept = []
                    for reading, key in zip(readings, batch_keys, strict=True):
                        if key is not None:
                            if key not in fresh:
                                continue
                            fresh.discard(key)  # the same key later in the group: a duplicate
                        kept.append(_item(reading))
                    news.append(len(kept))
                    if kept:
                        rows.append((orjson.dumps(kept), len(kept)))
                    states.update(state)
                if letters:
                    self._conn.executemany(_INSERT_LETTER, [_letter_row(x) for x in letters])
                self._conn.executemany("INSERT INTO pending (body, n) VALUES (?, ?)", rows)
                self._conn.executemany(_UPSERT_STATE, list(states.items()))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return news

    def _seen(
        self,
        deliveries: Sequence[tuple[Sequence[Reading], Sequence[DeadLetter], dict[str, str]]],
        keys: list[list[bytes | None]],
        unique: list[bytes],
        gens: list[tuple[int, int]],
    ) -> set[bytes]:
        """Which of ``unique`` the generations ``gens`` hold (inside the caller's
        transaction), in whatever form each generation keeps its keys."""
        found: set[bytes] = set()
        for gen, timed in gens:
            if not unique:
                break
            if timed:
                table = _seen_table(gen)
                top = self._conn.execute(f"SELECT max(key) FROM {table}").fetchone()[0]
                # SQLite orders blobs as Python orders bytes: a key above the table's
                # largest is not in it (a closed generation's keys are older than the new).
                if top is not None:
                    found.update(self._lookup(table, [k for k in unique if k <= top]))
                continue
            if gen == 0:  # text keys of a spool written before generations
                pairs = [
                    (r.dedup_key, k)
                    for batch, ks in zip(deliveries, keys, strict=True)
                    for r, k in zip(batch[0], ks, strict=True)
                    if k is not None
                ]
                hits = self._lookup("seen", list({text for text, _k in pairs}))
                found.update(k for text, k in pairs if text in hits)
                continue
            # The bare digests of a generation written before keys began with the time.
            bare = self._lookup(_seen_table(gen), list({k[_TIME_BYTES:] for k in unique}))
            found.update(k for k in unique if k[_TIME_BYTES:] in bare)
        return found

    def _lookup(self, table: str, keys: list[Any]) -> set[Any]:
        found: set[Any] = set()
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self._conn.execute(
                    f"SELECT key FROM {table} WHERE key IN ({marks})", chunk
                )
            )
        return found

    def _insert_new(self, table: str, keys: list[bytes]) -> set[bytes]:
        """Insert ``keys`` into ``table`` (inside the caller's transaction); returns those
        it did not hold yet. One B-tree descent per key where SQLite can say which rows it
        inserted (``RETURNING``, SQLite 3.35), a look-up and an insert before."""
        if not _RETURNING:
            held = self._lookup(table, keys)
            new = [k for k in keys if k not in held]
            self._conn.executemany(f"INSERT INTO {table} (key) VALUES (?)", [(k,) for k in new])
            return set(new)
        inserted: set[bytes] = set()
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join(["(?)"] * len(chunk))
            inserted.update(
                row[0]
                for row in self._conn.execute(
                    f"INSERT INTO {table} (key) VALUES {marks} ON CONFLICT DO NOTHING "
                    "RETURNING key",
                    chunk,
                )
            )
        return inserted

    def prune_seen(self) -> int:
        """Open a new dedup-key generation when the newest is ``seen_retention`` old, and
        drop the generations no redelivery can need any more (see the module text);
        returns how many were dropped."""
        now = self._clock()
        dropped = 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                gens = self._conn.execute(
                    "SELECT gen, opened, last_pending FROM seen_gen ORDER BY gen"
                ).fetchall()
                newest, opened, _ = gens[-1]
                if now - opened >= self.seen_retention:
                    self._conn.execute(
                        "UPDATE seen_gen SET last_pending = ? WHERE gen = ?",
                        (self._last_pending_id(), newest),
                    )
                    self._open_generation(newest + 1, now)
                    gens = self._conn.execute(
                        "SELECT gen, opened, last_pending FROM seen_gen ORDER BY gen"
                    ).fetchall()
                oldest_waiting = self._conn.execute("SELECT min(id) FROM pending").fetchone()[0]
                for (gen, _opened, last_pending), following in itertools.pairwise(gens):
                    closed_for = min(now - following[1], now - self._started)
                    guarding = oldest_waiting is not None and oldest_waiting <= last_pending
                    if closed_for < self.seen_retention or guarding:
                        break
                    self._conn.execute(f"DROP TABLE IF EXISTS {_seen_table(gen)}")
                    self._conn.execute("DELETE FROM seen_gen WHERE gen = ?", (gen,))
                    dropped += 1
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return dropped

    def seen_count(self) -> int:
        """Dedup keys kept now, over all generations."""
        with self._lock:
            gens = [row[0] for row in self._conn.execute("SELECT gen FROM seen_gen")]
            return sum(
                int(self._conn.execute(f"SELECT count(*) FROM {_seen_table(g)}").fetchone()[0])
                for g in gens
            )

    def pending_items(self, limit: int = 1000, after: int = 0) -> list[tuple[int, list[Item]]]:
        """The oldest pending deliveries, whole, until they hold ``limit`` readings or more:
        ``(row id, items)`` (see :data:`Item`); only rows above id ``after`` (deliveries
        already forwarded whose removal was deferred are skipped)."""
        out = []
        total = 0
        with self._lock:
            # Row by row: a row holds a whole delivery (up to thousands of readings).
            for row_id, body, n in self._conn.execute(
                "SELECT id, body, n FROM pending WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ):
                out.append((row_id, body))
                total += n
                if total >= limit:
                    break
        pending = []
        damaged = []
        for row_id, body in out:
            try:
                pending.append((row_id, _items(body)))
            except Exception as exc:  # no delivery: it must not hold up the rows behind it
                damaged.append((row_id, body, exc))
        if damaged:
            self._set_aside(damaged)
        return pending

    def _set_aside(self, damaged: list[tuple[int, Any, Exception]]) -> None:
        """Turn pending rows that hold no delivery (a damaged file) into dead letters."""
        now = datetime.now(UTC)
        letters = []
        for row_id, body, exc in damaged:
            raw = body if isinstance(body, bytes) else str(body).encode("utf-8", "replace")
            problem = Problem(
                "unrecordable", f"spool row {row_id} holds no delivery: {type(exc).__name__}"
            )
            letters.append(DeadLetter.of(problem, "spool", raw, now))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(_INSERT_LETTER, [_letter_row(x) for x in letters])
                self._conn.executemany(
                    "DELETE FROM pending WHERE id = ?", [(row_id,) for row_id, _b, _e in damaged]
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def peek(self, limit: int = 1000) -> list[tuple[int, Reading]]:
        """The oldest pending readings with their spool ids (whole deliveries: at least
        ``limit`` readings when there are that many; the readings of one delivery share its
        id)."""
        return [
            (row_id, reading_of(item))
            for row_id, items in self.pending_items(limit)
            for item in items
        ]

    def remove(self, ids: list[int], *, wait: bool = True) -> bool:
        """Forget deliveries the database has committed (by the ids :meth:`peek` gave);
        returns whether they were removed.

        With ``wait=False`` it gives up at once (returns False) if another process
        holds the spool's write lock: the ingest process commits group after group,
        and SQLite's busy handler sleeps 1, 2, 5, 10… ms between tries, so a
        forwarder that waits loses tens of milliseconds per batch to it.
        """
        if not ids:
            return True
        with self._lock:
            if not wait:
                self._conn.execute("PRAGMA busy_timeout = 0")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                if wait:
                    raise
                return False  # locked by another writer: the caller tries again later
            finally:
                if not wait:
                    self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            try:
                self._conn.executemany(
                    "DELETE FROM pending WHERE id = ?", [(i,) for i in dict.fromkeys(ids)]
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return True

    def oldest_received(self, after: int = 0) -> datetime | None:
        """When the oldest value still waiting was received (its server time), if any;
        only rows above id ``after`` (those below were forwarded, their removal deferred)."""
        pending = self.pending_items(1, after=after)
        if not pending:
            return None
        reading = reading_of(pending[0][1][0])
        return reading.server_ts or reading.source_ts

    def waiting(self, after: int = 0) -> int:
        """Readings waiting in rows above id ``after`` (see :meth:`oldest_received`)."""
        with self._lock:
            return int(
                self._conn.execute(
                    "SELECT coalesce(sum(n), 0) FROM pending WHERE id > ?", (after,)
                ).fetchone()[0]
            )

    def __len__(self) -> int:
        """Readings in the spool: waiting, or forwarded and not yet removed."""
        return self.waiting()

    def close(self) -> None:
        """Close the spool file."""
        with self._lock:
            self._conn.close()


def _seen_table(gen: int) -> str:
    return "seen" if gen == 0 else f"seen_{int(gen)}"


def _seen_key(reading: Reading) -> bytes | None:
    """The reading's key in the ``seen`` tables: its source time, then the digest of its
    dedup key (none: the reading is not deduplicated)."""
    key = reading.dedup_key
    if not key:
        return None
    # 128 bits: a false "seen" among billions of keys is beyond any plant's lifetime.
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
    moment = reading.source_ts
    if type(moment) is datetime and moment.tzinfo is UTC:
        return _TIME((moment - _EPOCH) // _MICROSECOND) + digest
    return _instant(moment) + digest


def _instant(moment: object) -> bytes:
    """Microseconds since the Unix epoch (a naive time read as UTC), as 8 bytes; 8 zero
    bytes for what is no time. Only where keys are written depends on it, not whether
    they are found: any fixed function of the time would do."""
    try:
        if not isinstance(moment, datetime):
            raise TypeError
        epoch = _EPOCH if moment.utcoffset() is not None else _NAIVE_EPOCH
        return _TIME((moment - epoch) // _MICROSECOND)
    except (TypeError, ValueError, OverflowError, struct.error):
        return bytes(_TIME_BYTES)


def _letter_row(letter: DeadLetter) -> tuple[object, ...]:
    return (
        letter.reject_id,
        letter.received_at.isoformat(),
        letter.origin,
        letter.reason,
        letter.detail,
        letter.tag,
        letter.scope,
        letter.payload,
        letter.payload_size,
        letter.payload_sha256,
    )


def _item(reading: Reading) -> Item:
    # Times as orjson writes them: RFC 3339, read back exactly by datetime.fromisoformat.
    value = reading.value
    return [
        reading.tag,
        {"not_numeric": value.kind, "text": value.text}
        if isinstance(value, NotNumeric)
        else str(value),
        _exact(reading.source_ts),
        reading.quality,
        _exact(reading.server_ts),
        reading.dedup_key,
    ]


def _exact(moment: datetime | None) -> datetime | str | None:
    """``moment`` as orjson may write it without loss.

    orjson writes a UTC offset in whole minutes (``+05:30:30`` becomes ``+05:31``: the
    value would be recorded 30 s off); such a time is written as its UTC instant
    instead, and anything but a plain datetime as ``isoformat()`` (its exact text).
    """
    if moment is None:
        return None
    if type(moment) is datetime and moment.tzinfo is UTC:  # most times: nothing to check
        return moment
    if type(moment) is not datetime:
        return moment.isoformat()
    offset = moment.utcoffset()
    if offset is not None and (offset.seconds % 60 or offset.microseconds):
        return moment.astimezone(UTC).isoformat()
    return moment


def _items(body: str | bytes) -> list[Item]:
    data = orjson.loads(body)
    if isinstance(data, dict):  # a row of one value, from a spool written before
        return [
            [
                data["tag"],
                data["value"],
                data["source_ts"],
                data["quality"],
                data["server_ts"],
                data["key"],
            ]
        ]
    if not isinstance(data, list):
        raise ValueError(f"a delivery is a list of items, not {type(data).__name__}")
    return data


def reading_of(item: Item) -> Reading:
    """The :class:`Reading` a spooled item holds; a value that is neither text nor a
    :class:`NotNumeric` is a ``TypeError`` (JSON ``true`` is not the number 1)."""
    tag, value, source_ts, quality, server_ts, key = item
    return Reading(
        tag,
        value_of(value),
        datetime.fromisoformat(source_ts),
        quality,
        datetime.fromisoformat(server_ts) if server_ts else None,
        key,
    )


def not_numeric_of(value: object) -> NotNumeric | None:
    """The :class:`NotNumeric` an item's value field holds, or None if it holds none."""
    if type(value) is not dict:
        return None
    kind, text = value.get("not_numeric"), value.get("text", "")
    if type(kind) is not str or type(text) is not str:
        return None
    return NotNumeric(kind, text)


def value_of(value: object) -> Decimal | NotNumeric:
    """An item's value field as the reading's value: text as an exact Decimal, a
    not-numeric marker as :class:`NotNumeric`; anything else (a damaged spool's
    ``true``, ``1``) is a ``TypeError``, never a number."""
    if type(value) is str:
        return Decimal(value)
    marked = not_numeric_of(value)
    if marked is None:
        raise TypeError(f"spooled value {value!r:.80} is neither text nor a not-numeric marker")
    return marked
