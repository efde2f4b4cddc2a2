"""The devserver's memory: every ingest request, every accepted and rejected batch.

One condition variable guards it all, so a test can wait for "three batches
arrived" without polling, and a request's record and its batches appear
together (a reader never sees a batch whose request is missing).

Every batch, accepted or (historical) rejected, is one *entry* with a global
``id`` in arrival order, its validation problems and the user it belongs to;
``batches()`` and ``rejected()`` are views of the entries. :class:`Store`
keeps them in memory; :class:`.sqlite_store.SqliteStore` also writes them to
a SQLite file and reads them back on start.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from .rules import SizedBatch
from .validation import count
from .views import user_of


@dataclass
class Received:
    """One request to an ingest path, filled in by the handler as it is processed.

    Fields left at their defaults mean the handler did not get that far (for
    example ``api_key`` stays ``None`` when the Authorization header is missing).
    ``status`` stays ``None`` when the connection was dropped without an answer.
    """

    method: str
    path: str
    user_agent: Optional[str]
    content_encoding: Optional[str]
    #: Seconds since the epoch when the request arrived; the historical rule's "now".
    arrived: float = field(default_factory=time.time)
    api_key: Optional[str] = None
    #: Bytes on the wire, and after gzip decompression (``None`` if never decoded).
    body_bytes: int = 0
    decoded_bytes: Optional[int] = None
    batch_count: Optional[int] = None
    status: Optional[int] = None
    error: Optional[str] = None
    fault: Optional[dict[str, Any]] = None
    accepted: list[SizedBatch] = field(default_factory=list)
    #: Historical batches mParticle would drop, each with the reason.
    rejected: list[tuple[SizedBatch, str]] = field(default_factory=list)


class Store:
    """Thread-safe, in-memory record of what the server received.

    Readers get deep copies, so a test can mutate what it reads without
    changing what later readers see.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        # Bumped on every change, so wait_for knows whether to look again.
        self._version = 0
        # Changes on reset (and per process), so a page can tell its ids are stale.
        self._generation = secrets.token_hex(8)
        self._requests: list[dict[str, Any]] = []
        self._entries: list[dict[str, Any]] = []
        self._accepted = 0
        self._rejected = 0

    def add(self, received: Received) -> tuple[list[int], list[int]]:
        """Record a finished request; return the sequence numbers given to its
        accepted and its rejected batches (for the log lines)."""
        received_at = datetime.fromtimestamp(received.arrived, timezone.utc)
        when = received_at.isoformat(timespec="milliseconds")
        with self._changed:
            request = {
                "seq": len(self._requests) + 1,
                "method": received.method,
                "path": received.path,
                "status": received.status,
                "received_at": when,
                "user_agent": received.user_agent,
                "content_encoding": received.content_encoding,
                "api_key": received.api_key,
                "body_bytes": received.body_bytes,
                "decoded_bytes": received.decoded_bytes,
                "batches": received.batch_count,
                "error": received.error,
                "fault": received.fault,
            }
            meta = {"request": request["seq"], "path": received.path, "received_at": when}
            accepted = range(self._accepted + 1, self._accepted + len(received.accepted) + 1)
            rejected = range(self._rejected + 1, self._rejected + len(received.rejected) + 1)
            outcomes: list[tuple[int, SizedBatch, Optional[str]]] = [
                (seq, sized, None) for seq, sized in zip(accepted, received.accepted)
            ]
            outcomes += [(seq, sized, why) for seq, (sized, why) in zip(rejected, received.rejected)]
            entries = [
                self._entry(len(self._entries) + n, seq, meta, sized, why)
                for n, (seq, sized, why) in enumerate(outcomes, start=1)
            ]
            # Written first: if that fails, nothing of the request is in memory either.
            self._persist(request, entries)
            self._requests.append(request)
            self._entries.extend(entries)
            self._accepted += len(accepted)
            self._rejected += len(rejected)
            self._version += 1
            self._changed.notify_all()
        return list(accepted), list(rejected)

    @staticmethod
    def _entry(
        entry_id: int, seq: int, meta: dict[str, Any], sized: SizedBatch, reason: Optional[str]
    ) -> dict[str, Any]:
        problems = [dict(p) for p in sized.problems]
        return {
            "id": entry_id,
            "status": "accepted" if reason is None else "rejected",
            "seq": seq,
            **meta,
            "reason": reason,
            "user": user_of(sized.batch)["key"],
            "size": sized.size,
            "counts": count(problems),
            "problems": problems,
            "batch": sized.batch,
        }

    def _persist(self, request: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        """Called under the lock before a request is added; a durable store writes it here."""

    def _forget(self) -> None:
        """Called under the lock on reset; a durable store deletes everything here."""

    def _load(self, requests: list[dict[str, Any]], entries: list[dict[str, Any]]) -> None:
        """Start from what a durable store read back."""
        with self._changed:
            self._requests = requests
            self._entries = entries
            self._accepted = sum(1 for e in entries if e["status"] == "accepted")
            self._rejected = len(entries) - self._accepted

    def requests(self) -> list[dict[str, Any]]:
        """Every ingest request so far, oldest first."""
        with self._changed:
            return copy.deepcopy(self._requests)

    def batches(self) -> list[dict[str, Any]]:
        """Every accepted batch, exactly as received, with its metadata."""
        return self._view("accepted", ())

    def rejected(self) -> list[dict[str, Any]]:
        """Historical batches answered 202 but not processed, each with its reason."""
        return self._view("rejected", ("reason",))

    def _view(self, status: str, extra: tuple[str, ...]) -> list[dict[str, Any]]:
        keys = ("seq", "request", "path", "received_at", *extra, "batch")
        with self._changed:
            return [
                {key: copy.deepcopy(entry[key]) for key in keys}
                for entry in self._entries
                if entry["status"] == status
            ]

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        """Every batch with an ``id`` above ``since``, accepted or rejected, with its problems."""
        return copy.deepcopy(self.snapshot(since))

    def snapshot(self, since: int = 0) -> list[dict[str, Any]]:
        """Like :meth:`entries` but not copied, for readers that only read (the JSON API):
        entries are never changed once stored."""
        with self._changed:
            # Ids are 1, 2, ... in list order, so the ones above ``since`` start at index ``since``.
            return self._entries[max(since, 0) :]

    def latest(self) -> int:
        """The ``id`` of the newest entry (0 when there is none)."""
        with self._changed:
            return len(self._entries)

    def generation(self) -> str:
        """An opaque token that changes when ids start again (a reset, a new process)."""
        with self._changed:
            return self._generation

    def reset(self) -> None:
        """Forget everything; numbering starts again at 1."""
        with self._changed:
            self._forget()
            self._requests.clear()
            self._entries.clear()
            self._accepted = self._rejected = 0
            self._generation = secrets.token_hex(8)
            self._version += 1
            self._changed.notify_all()

    def wake(self) -> None:
        """Make every :meth:`wait_for` look again (the server is stopping)."""
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def close(self) -> None:
        """Release what the store holds open; the in-memory store holds nothing."""

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` is true, re-checking after every change.

        The predicate runs without the lock held, so it may do anything, even
        call the server's own HTTP API. Returns ``False`` if it is still false
        after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._version
            if predicate():
                return True
            with self._changed:
                while self._version == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)
