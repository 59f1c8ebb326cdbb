"""SQLite `RecordStore`: the zero-dependency default, one local file that survives restarts.

One table keyed by (collection, id). The AUTOINCREMENT `seq` is the creation order: an upsert keeps
the row (and so its `seq`), while an expired row is purged first so that re-creating it counts as new.
WAL mode lets readers in other processes (CLI, a second worker) run alongside the writer.

The file holds password and token hashes and transcripts: it (and SQLite's -wal/-shm beside it, which take its
mode) is readable by its owner only, and a deleted record is overwritten (`secure_delete`) and checkpointed out
of the WAL at once, so a deleted profile's name does not linger on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    owner      TEXT,
    doc        TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    UNIQUE (collection, id)
);
CREATE INDEX IF NOT EXISTS records_by_owner ON records (collection, owner);
CREATE INDEX IF NOT EXISTS records_by_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
"""

_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class SqliteRecordStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        for file in (self.path, *(self.path.with_name(self.path.name + suffix) for suffix in ("-wal", "-shm"))):
            if file.exists():
                file.chmod(0o600)  # files made by an older version were 0644
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) where a write spans statements.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.executescript(_SCHEMA)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return fn(self._conn)

        return await asyncio.to_thread(locked)

    async def put(self, collection: str, id: str, doc: dict, *, owner: str | None = None,
                  ttl_s: float | None = None) -> None:
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive or None, got {ttl_s!r}")
        text = json.dumps(doc)

        def write(conn: sqlite3.Connection) -> None:
            now = time.time()
            expires_at = None if ttl_s is None else now + ttl_s
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM records WHERE expires_at <= ?", (now,))
                conn.execute(
                    "INSERT INTO records (collection, id, owner, doc, created_at, expires_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (collection, id) DO UPDATE SET"
                    " owner = excluded.owner, doc = excluded.doc, expires_at = excluded.expires_at",
                    (collection, id, owner, text, now, expires_at),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._run(write)

    async def get(self, collection: str, id: str) -> dict | None:
        def read(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                f"SELECT doc FROM records WHERE collection = ? AND id = ? AND {_LIVE}",
                (collection, id, time.time()),
            ).fetchone()

        row = await self._run(read)
        return None if row is None else json.loads(row[0])

    async def delete(self, collection: str, id: str) -> bool:
        def remove(conn: sqlite3.Connection) -> int:
            removed = conn.execute(
                f"DELETE FROM records WHERE collection = ? AND id = ? AND {_LIVE}", (collection, id, time.time())
            ).rowcount
            if removed:  # the WAL still holds the record's old page: copy back the overwritten one, empty the WAL
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return removed

        return await self._run(remove) == 1

    async def list(self, collection: str, *, owner: str) -> list[dict]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                f"SELECT doc FROM records WHERE collection = ? AND owner = ? AND {_LIVE} ORDER BY seq",
                (collection, owner, time.time()),
            ).fetchall()

        return [json.loads(doc) for (doc,) in await self._run(read)]

    async def ping(self) -> bool:
        try:
            await self._run(lambda conn: conn.execute("SELECT 1").fetchone())
        except sqlite3.Error:
            return False
        return True

    async def close(self) -> None:
        await self._run(lambda conn: conn.close())
