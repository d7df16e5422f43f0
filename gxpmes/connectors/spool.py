"""A durable local spool (SQLite, synchronous=FULL) between the sources and the database.

A value is acknowledged to its source only after :meth:`Spool.put` returned,
i.e. after it is on disk; the forwarder removes it only after the EBR
database committed it. Redelivered values are recognised by their dedup key
and stored once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from gxpmes.connectors.model import Reading

__all__ = ["Spool"]


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
        # Refused input that names a tag: the forwarder turns it into a
        # data-quality exception on the batch the tag feeds.
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS rejected (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "tag TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL)"
        )

    def reject(self, tag: str, reason: str, detail: str) -> None:
        """Keep a refused reading of ``tag`` for the forwarder to report on its batch."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO rejected (tag, reason, detail) VALUES (?, ?, ?)",
                (tag, reason, detail[:1000]),
            )

    def rejected(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        """``(id, tag, reason, detail)`` of refused readings not yet reported."""
        with self._lock:
            return [
                tuple(r)
                for r in self._conn.execute(
                    "SELECT id, tag, reason, detail FROM rejected ORDER BY id LIMIT ?", (limit,)
                )
            ]

    def forget_rejected(self, ids: list[int]) -> None:
        """Drop reported refusals."""
        with self._lock:
            self._conn.executemany("DELETE FROM rejected WHERE id = ?", [(i,) for i in ids])

    def put(self, readings: list[Reading]) -> int:
        """Store readings durably; returns how many were new (duplicates are dropped)."""
        new = 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for reading in readings:
                    if reading.dedup_key:
                        cursor = self._conn.execute(
                            "INSERT OR IGNORE INTO seen (key) VALUES (?)", (reading.dedup_key,)
                        )
                        if cursor.rowcount == 0:
                            continue
                    self._conn.execute("INSERT INTO pending (body) VALUES (?)", (_dump(reading),))
                    new += 1
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return new

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

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM pending").fetchone()[0])

    def close(self) -> None:
        """Close the spool file."""
        with self._lock:
            self._conn.close()


def _dump(reading: Reading) -> str:
    return json.dumps(
        {
            "tag": reading.tag,
            "value": str(reading.value),
            "source_ts": reading.source_ts.isoformat(),
            "server_ts": reading.server_ts.isoformat() if reading.server_ts else None,
            "quality": reading.quality,
            "key": reading.dedup_key,
        }
    )


def _load(body: str) -> Reading:
    data = json.loads(body)
    return Reading(
        data["tag"],
        Decimal(data["value"]),
        datetime.fromisoformat(data["source_ts"]),
        data["quality"],
        datetime.fromisoformat(data["server_ts"]) if data["server_ts"] else None,
        data["key"],
    )
