"""The devserver's memory: every ingest request, every accepted and rejected batch.

One condition variable guards it all, so a test can wait for "three batches
arrived" without polling, and a request's record and its batches appear
together (a reader never sees a batch whose request is missing).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from .rules import SizedBatch


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
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)


class Store:
    """Thread-safe, in-memory record of what the server received.

    Readers get deep copies, so a test can mutate what it reads without
    changing what later readers see.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        # Bumped on every change, so wait_for knows whether to look again.
        self._version = 0
        self._requests: list[dict[str, Any]] = []
        self._batches: list[dict[str, Any]] = []
        self._rejected: list[dict[str, Any]] = []

    def add(self, received: Received) -> tuple[list[int], list[int]]:
        """Record a finished request; return the sequence numbers given to its
        accepted and its rejected batches (for the log lines)."""
        received_at = datetime.fromtimestamp(received.arrived, timezone.utc)
        when = received_at.isoformat(timespec="milliseconds")
        with self._changed:
            request_seq = len(self._requests) + 1
            self._requests.append(
                {
                    "seq": request_seq,
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
            )
            meta = {"request": request_seq, "path": received.path, "received_at": when}
            accepted = [self._append(self._batches, meta, b.batch) for b in received.accepted]
            rejected = [
                self._append(self._rejected, {**meta, "reason": why}, batch)
                for batch, why in received.rejected
            ]
            self._version += 1
            self._changed.notify_all()
        return accepted, rejected

    @staticmethod
    def _append(records: list[dict[str, Any]], meta: dict[str, Any], batch: dict[str, Any]) -> int:
        seq = len(records) + 1
        records.append({"seq": seq, **meta, "batch": batch})
        return seq

    def requests(self) -> list[dict[str, Any]]:
        """Every ingest request so far, oldest first."""
        with self._changed:
            return copy.deepcopy(self._requests)

    def batches(self) -> list[dict[str, Any]]:
        """Every accepted batch, exactly as received, with its metadata."""
        with self._changed:
            return copy.deepcopy(self._batches)

    def rejected(self) -> list[dict[str, Any]]:
        """Historical batches answered 202 but not processed, each with its reason."""
        with self._changed:
            return copy.deepcopy(self._rejected)

    def reset(self) -> None:
        """Forget everything; numbering starts again at 1."""
        with self._changed:
            self._requests.clear()
            self._batches.clear()
            self._rejected.clear()
            self._version += 1
            self._changed.notify_all()

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
