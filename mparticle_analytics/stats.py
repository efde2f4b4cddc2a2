"""Counters behind ``Client.stats()``, and the rate-limited warnings that go with them.

Every event a client accepts (``queued``) ends as exactly one of ``delivered``
or ``dropped`` (by reason); a full queue is the one drop that was never queued.
The queue counts what it accepts itself, so a call takes no lock here. A
forked child starts from zero: it counts its own events, as its queue holds
only its own.
Attribute values that were truncated or left out while mapping are counted
apart, under ``values``, by kind: the event carrying them was still sent.
Warnings about losses are logged at most once a minute per
reason, with the count since the last one, so a flood of bad input cannot
flood the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Callable

from .hooks import after_fork_in_child

log = logging.getLogger("mparticle_analytics")

#: Seconds between two warnings about the same reason.
WARN_EVERY = 60.0


class Stats:
    """Thread-safe counters: ``queued``, ``delivered``, ``retried``, ``dropped`` and ``values``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._reset()
        after_fork_in_child(self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()  # in a child, the parent's may have been held at the fork
        self._totals: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._values: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._last_warning: dict[str, float] = {}
        self._wording: dict[str, str] = {}  # what follows the count in each reason's warning

    def add(self, name: str, count: int = 1) -> None:
        """Count ``queued`` (in sync mode), ``delivered`` or ``retried`` events."""
        with self._lock:
            self._totals[name] += count

    def dropped(self, reason: str, count: int = 1, detail: str = "") -> None:
        """Count events that will never be delivered, and warn (rate-limited)."""
        with self._lock:
            self._dropped[reason] += count
        self._warn(reason, count, f" event(s) dropped ({reason}){detail}")

    def value(self, reason: str, name: str) -> None:
        """Count an attribute value truncated or left out while mapping (``Attributes`` reports here)."""
        with self._lock:
            self._values[reason] += 1
        self._warn(reason, 1, f" attribute value(s) {reason.replace('_', ' ')}, last: {name!r}")

    def snapshot(self, queued: int) -> dict[str, object]:
        """A copy of every counter, e.g. ``{"queued": 3, ..., "dropped": {"queue_full": 1}}``.

        :param queued: the events the queue accepted.
        """
        with self._lock:
            return {
                "queued": self._totals["queued"] + queued,
                "delivered": self._totals["delivered"],
                "retried": self._totals["retried"],
                "dropped": dict(self._dropped),
                "values": dict(self._values),
            }

    def flush_warnings(self) -> None:
        """Log every count still held back by the rate limit (at shutdown, nothing stays unsaid)."""
        with self._lock:
            pending = [(count, self._wording[reason]) for reason, count in self._unlogged.items()]
            self._unlogged.clear()
        for count, wording in pending:
            log.warning("%d%s", count, wording)

    def _warn(self, reason: str, count: int, wording: str) -> None:
        """Log ``count`` and ``wording``; never ``str.format`` it: details quote servers and callers."""
        now = self._clock()
        with self._lock:
            self._unlogged[reason] += count
            self._wording[reason] = wording
            last = self._last_warning.get(reason)
            if last is not None and now - last < WARN_EVERY:
                return
            self._last_warning[reason] = now
            pending = self._unlogged.pop(reason)
        log.warning("%d%s", pending, wording)
