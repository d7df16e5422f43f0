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
128-bit key digests, written while it is the newest. :meth:`Spool.prune_seen`
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
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from gxpmes.connectors.model import DeadLetter, Problem, Reading

__all__ = ["SEEN_RETENTION", "Spool", "reading_of"]

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

Item = list[Any]
"""A spooled reading: ``[tag, value, source_ts, quality, server_ts, key]`` (value and times
as text)."""


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
            self.path, isolation_level=None, check_same_thread=False, timeout=60
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
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS seen_gen (gen INTEGER PRIMARY KEY, opened REAL NOT NULL, "
            "last_pending INTEGER)"
        )
        if self._conn.execute("SELECT count(*) FROM seen_gen").fetchone()[0] == 0:
            legacy = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='seen'"
            ).fetchone()
            now = self._clock()
            if legacy is not None:  # text keys of a spool written before generations
                self._conn.execute(
                    "INSERT INTO seen_gen (gen, opened, last_pending) VALUES (0, ?, ?)",
                    (now, self._last_pending_id()),
                )
            self._open_generation(1, now)
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
        self._conn.execute("INSERT INTO seen_gen (gen, opened) VALUES (?, ?)", (gen, now))

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
        digests = [[_digest(r.dedup_key) for r in batch[0]] for batch in deliveries]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                gens = [row[0] for row in self._conn.execute("SELECT gen FROM seen_gen")]
                current = max(gens)
                seen = self._seen(deliveries, digests, gens)
                news = []
                rows: list[tuple[bytes, int]] = []
                fresh: list[tuple[bytes]] = []
                letters: list[DeadLetter] = []
                states: dict[str, str] = {}
                for (readings, refused, state), keys in zip(deliveries, digests, strict=True):
                    letters.extend(refused)
                    kept = []
                    for reading, key in zip(readings, keys, strict=True):
                        if key is not None:
                            if key in seen:
                                continue
                            seen.add(key)
                            fresh.append((key,))
                        kept.append(_item(reading))
                    news.append(len(kept))
                    if kept:
                        rows.append((orjson.dumps(kept), len(kept)))
                    states.update(state)
                if letters:
                    self._conn.executemany(_INSERT_LETTER, [_letter_row(x) for x in letters])
                self._conn.executemany(
                    f"INSERT INTO {_seen_table(current)} (key) VALUES (?)", fresh
                )
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
        digests: list[list[bytes | None]],
        gens: list[int],
    ) -> set[bytes]:
        """Which digests were spooled before (inside the caller's transaction)."""
        keys = list({d for batch in digests for d in batch if d is not None})
        found: set[bytes] = set()
        if not keys:
            return found
        for gen in gens:
            if gen == 0:  # text keys of an older spool
                texts = {
                    r.dedup_key: d
                    for batch, ds in zip(deliveries, digests, strict=True)
                    for r, d in zip(batch[0], ds, strict=True)
                    if d is not None
                }
                found.update(texts[k] for k in self._lookup("seen", list(texts)))
                continue
            found.update(self._lookup(_seen_table(gen), keys))
        return found

    def _lookup(self, table: str, keys: list[Any]) -> set[Any]:
        found: set[Any] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self._conn.execute(
                    f"SELECT key FROM {table} WHERE key IN ({marks})", chunk
                )
            )
        return found

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

    def pending_items(self, limit: int = 1000) -> list[tuple[int, list[Item]]]:
        """The oldest pending deliveries, whole, until they hold ``limit`` readings or more:
        ``(row id, items)`` (see :data:`Item`)."""
        out = []
        total = 0
        with self._lock:
            # Row by row: a row holds a whole delivery (up to thousands of readings).
            for row_id, body, n in self._conn.execute(
                "SELECT id, body, n FROM pending ORDER BY id LIMIT ?", (limit,)
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

    def remove(self, ids: list[int]) -> None:
        """Forget deliveries the database has committed (by the ids :meth:`peek` gave)."""
        if not ids:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "DELETE FROM pending WHERE id = ?", [(i,) for i in dict.fromkeys(ids)]
            )
            self._conn.execute("COMMIT")

    def oldest_received(self) -> datetime | None:
        """When the oldest value still waiting was received (its server time), if any."""
        pending = self.pending_items(1)
        if not pending:
            return None
        reading = reading_of(pending[0][1][0])
        return reading.server_ts or reading.source_ts

    def __len__(self) -> int:
        """Readings waiting."""
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(sum(n), 0) FROM pending").fetchone()[0])

    def close(self) -> None:
        """Close the spool file."""
        with self._lock:
            self._conn.close()


def _seen_table(gen: int) -> str:
    return "seen" if gen == 0 else f"seen_{int(gen)}"


def _digest(key: str) -> bytes | None:
    # 128 bits: a false "seen" among billions of keys is beyond any plant's lifetime.
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest() if key else None


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
    return [
        reading.tag,
        str(reading.value),
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
    """The :class:`Reading` a spooled item holds."""
    tag, value, source_ts, quality, server_ts, key = item
    return Reading(
        tag,
        Decimal(value),
        datetime.fromisoformat(source_ts),
        quality,
        datetime.fromisoformat(server_ts) if server_ts else None,
        key,
    )
