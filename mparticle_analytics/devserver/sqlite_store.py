"""``--db FILE``: the same store, written through to SQLite so a session survives restarts.

Everything stays in memory for fast reads (a devserver session is small);
each request is also written, in one transaction, to a SQLite file that the
next server on the same file reads back, and that anyone can query while the
server runs (WAL mode)::

    sqlite3 session.db "select rule, count(*) from problems group by rule"
    sqlite3 session.db "select id, user, json_extract(batch, '$.events[0].data.event_name') from batches"

Tables: ``requests`` (one row per ingest request), ``batches`` (one row per
accepted or rejected batch; ``batch`` is its JSON), ``problems`` (one row per
validation problem, ``batch_id`` pointing at ``batches.id``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Final, Optional, Union

from .store import Store
from .validation import count

#: Bump when the tables change; an older file is refused rather than misread.
SCHEMA_VERSION: Final = 1

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY, method TEXT, path TEXT, status INTEGER, received_at TEXT,
    api_key TEXT, error TEXT, record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY, status TEXT NOT NULL, seq INTEGER NOT NULL, request INTEGER NOT NULL,
    path TEXT, received_at TEXT, user TEXT, reason TEXT, size INTEGER,
    errors INTEGER, warnings INTEGER, batch TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS problems (
    batch_id INTEGER NOT NULL, path TEXT, rule TEXT, severity TEXT, message TEXT
);
CREATE INDEX IF NOT EXISTS problems_by_batch ON problems (batch_id);
"""


class SqliteStore(Store):
    """A :class:`.Store` that also keeps everything in the SQLite file ``path``.

    Raises ``sqlite3.DatabaseError`` (or ``OSError``) if the file cannot be
    opened, is not a SQLite database, or was written by an incompatible version.
    """

    def __init__(self, path: Union[str, Path]) -> None:
        super().__init__()
        self.path = Path(path)
        self._db_lock = threading.Lock()
        self._connection: Optional[sqlite3.Connection] = None
        requests, entries = self._read()
        self._load(requests, entries)

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_TABLES)
            row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            elif row[0] != str(SCHEMA_VERSION):
                connection.close()
                raise sqlite3.DatabaseError(
                    f"{self.path} holds devserver data of schema version {row[0]}, not {SCHEMA_VERSION}"
                )
            self._connection = connection
        return self._connection

    def _read(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        with self._db_lock:
            db = self._db()
            requests = [json.loads(r[0]) for r in db.execute("SELECT record FROM requests ORDER BY seq")]
            problems: dict[int, list[dict[str, str]]] = {}
            for batch_id, path, rule, severity, message in db.execute(
                "SELECT batch_id, path, rule, severity, message FROM problems ORDER BY rowid"
            ):
                problems.setdefault(batch_id, []).append(
                    {"path": path, "rule": rule, "message": message, "severity": severity}
                )
            entries = []
            for row in db.execute(
                "SELECT id, status, seq, request, path, received_at, reason, user, size, batch "
                "FROM batches ORDER BY id"
            ):
                entry_id, status, seq, request, path, received_at, reason, user, size, batch = row
                found = problems.get(entry_id, [])
                entries.append(
                    {
                        "id": entry_id, "status": status, "seq": seq, "request": request, "path": path,
                        "received_at": received_at, "reason": reason, "user": user, "size": size,
                        "counts": count(found), "problems": found, "batch": json.loads(batch),
                    }
                )
        return requests, entries

    def _persist(self, request: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        with self._db_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO requests (seq, method, path, status, received_at, api_key, error, record) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        request["seq"], request["method"], request["path"], request["status"],
                        request["received_at"], request["api_key"], request["error"], _dumps(request),
                    ),
                )
                for entry in entries:
                    db.execute(
                        "INSERT INTO batches (id, status, seq, request, path, received_at, user, reason, "
                        "size, errors, warnings, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            entry["id"], entry["status"], entry["seq"], entry["request"], entry["path"],
                            entry["received_at"], entry["user"], entry["reason"], entry["size"],
                            entry["counts"]["error"], entry["counts"]["warning"], _dumps(entry["batch"]),
                        ),
                    )
                    db.executemany(
                        "INSERT INTO problems (batch_id, path, rule, severity, message) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [
                            (entry["id"], p["path"], p["rule"], p["severity"], p["message"])
                            for p in entry["problems"]
                        ],
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _forget(self) -> None:
        with self._db_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            for table in ("requests", "batches", "problems"):
                db.execute(f"DELETE FROM {table}")
            db.execute("COMMIT")

    def close(self) -> None:
        """Close the file; the next write opens it again."""
        with self._db_lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

