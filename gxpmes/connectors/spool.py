"""A durable local spool (SQLite, synchronous=FULL) between the sources and the database.

A value is acknowledged to its source only after :meth:`Spool.put` returned,
i.e. after it is on disk; the forwarder removes it only after the EBR
database committed it. Redelivered values are recognised by their dedup key
and stored once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson

from gxpmes.connectors.model import DeadLetter, Problem, Reading

__all__ = ["Spool"]

_INSERT_LETTER = (
    "INSERT INTO dead_letter (reject_id, received_at, origin, reason, detail, tag, "
    "scope, payload, payload_size, payload_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_UPSERT_STATE = (
    "INSERT INTO source_state (key, body) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET body = excluded.body"
)


class Spool:
    """Values waiting for the database, in arrival order, deduplicated."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "body TEXT NOT NULL)"
        )
        # Keys of everything ever spooled: redelivery after a crash or a broker
        # retry must not record a value twice.
        self._conn.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY)")
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
            self.reject(DeadLetter.of(Problem(reason, detail, tag), "spool", b"", now))
        self._conn.execute("DROP TABLE rejected")

    def reject(self, letter: DeadLetter) -> None:
        """Keep refused input (or a detected loss) durably for the forwarder to record."""
        with self._lock:
            self._conn.execute(_INSERT_LETTER, _letter_row(letter))

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
        many readings of each were new.

        All or nothing: if anything cannot be stored, nothing is. Deliveries are
        applied in order, so the last state saved under a key wins and a key
        repeated within the group is stored once, at its first occurrence.
        """
        keys = {r.dedup_key for batch in deliveries for r in batch[0] if r.dedup_key}
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                seen = self._seen(keys)
                news = []
                rows: list[tuple[str]] = []
                fresh: list[tuple[str]] = []
                letters: list[DeadLetter] = []
                states: dict[str, str] = {}
                for readings, refused, state in deliveries:
                    letters.extend(refused)
                    new = 0
                    for reading in readings:
                        key = reading.dedup_key
                        if key:
                            if key in seen:
                                continue
                            seen.add(key)
                            fresh.append((key,))
                        rows.append((_dump(reading),))
                        new += 1
                    news.append(new)
                    states.update(state)
                if letters:
                    self._conn.executemany(_INSERT_LETTER, [_letter_row(x) for x in letters])
                self._conn.executemany("INSERT INTO seen (key) VALUES (?)", fresh)
                self._conn.executemany("INSERT INTO pending (body) VALUES (?)", rows)
                self._conn.executemany(_UPSERT_STATE, list(states.items()))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return news

    def _seen(self, keys: set[str]) -> set[str]:
        """Which of ``keys`` were spooled before (inside the caller's transaction)."""
        found: set[str] = set()
        ordered = list(keys)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self._conn.execute(f"SELECT key FROM seen WHERE key IN ({marks})", chunk)
            )
        return found

    def peek(self, limit: int = 1000) -> list[tuple[int, Reading]]:
        """The oldest pending readings with their spool ids."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, body FROM pending ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(row_id, _load(body)) for row_id, body in rows]

    def remove(self, ids: list[int]) -> None:
        """Forget readings the database has committed."""
        if not ids:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in ids])
            self._conn.execute("COMMIT")

    def oldest_received(self) -> datetime | None:
        """When the oldest value still waiting was received (its server time), if any."""
        pending = self.peek(1)
        if not pending:
            return None
        reading = pending[0][1]
        return reading.server_ts or reading.source_ts

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM pending").fetchone()[0])

    def close(self) -> None:
        """Close the spool file."""
        with self._lock:
            self._conn.close()


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


def _dump(reading: Reading) -> str:
    # orjson: the same JSON object as json.dumps wrote before (old spools load the same).
    return orjson.dumps(
        {
            "tag": reading.tag,
            "value": str(reading.value),
            "source_ts": reading.source_ts.isoformat(),
            "server_ts": reading.server_ts.isoformat() if reading.server_ts else None,
            "quality": reading.quality,
            "key": reading.dedup_key,
        }
    ).decode("utf-8")


def _load(body: str) -> Reading:
    data = orjson.loads(body)
    return Reading(
        data["tag"],
        Decimal(data["value"]),
        datetime.fromisoformat(data["source_ts"]),
        data["quality"],
        datetime.fromisoformat(data["server_ts"]) if data["server_ts"] else None,
        data["key"],
    )
