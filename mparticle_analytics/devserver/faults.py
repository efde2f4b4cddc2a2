"""Scripted misbehaviour for the next ingest requests, so retry code can be tested.

A fault is one of: answer an error status (optionally with ``Retry-After``),
drop the connection before or after storing, or answer late. Faults queue in
the order they were configured and each is used up by ``count`` requests.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Final, Optional

DROP_MODES: Final = ("before", "after")
_FIELDS: Final = frozenset({"status", "retry_after", "drop", "delay", "count"})


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour; construction validates it (``ValueError``).

    :param status: answer this HTTP status (300-599) with mParticle's error body.
    :param retry_after: with ``status``, send this exact ``Retry-After`` value.
    :param drop: ``"before"``: close without storing or answering;
        ``"after"``: store as accepted, then close without answering.
    :param delay: seconds to wait before answering normally.
    """

    status: Optional[int] = None
    retry_after: Optional[str] = None
    drop: Optional[str] = None
    delay: Optional[float] = None

    def __post_init__(self) -> None:
        # Values may come straight from JSON, so types are checked here too.
        kinds = [k for k in ("status", "drop", "delay") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a fault needs exactly one of status, drop or delay")
        if self.status is not None and not (_is_int(self.status) and 300 <= self.status <= 599):
            raise ValueError(f"fault status must be an integer 300-599, not {self.status!r}")
        if self.retry_after is not None and (
            self.status is None
            or not isinstance(self.retry_after, str)
            or any(c in self.retry_after for c in "\r\n")
        ):
            raise ValueError("retry_after needs a status and must be a one-line string")
        if self.drop is not None and self.drop not in DROP_MODES:
            raise ValueError(f"fault drop must be 'before' or 'after', not {self.drop!r}")
        if self.delay is not None and not (
            isinstance(self.delay, (int, float))
            and not isinstance(self.delay, bool)
            and math.isfinite(self.delay)
            and self.delay >= 0
        ):
            raise ValueError(f"fault delay must be a number of seconds >= 0, not {self.delay!r}")

    def to_json(self) -> dict[str, Any]:
        """The fault as ``/api/faults`` shows it: only the fields that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, item: object) -> tuple[Fault, int]:
        """Parse one ``POST /api/faults`` item into ``(fault, count)``; ``ValueError`` if bad."""
        if not isinstance(item, dict):
            raise ValueError("each fault must be a JSON object")
        unknown = set(item) - _FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(
            status=item.get("status"),
            retry_after=item.get("retry_after"),
            drop=item.get("drop"),
            delay=item.get("delay"),
        )
        return fault, item.get("count", 1)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class _Pending:
    fault: Fault
    left: int


class FaultQueue:
    """Pending faults, consumed one per ingest request, shared by handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The head is used first.
        self._pending: deque[_Pending] = deque()

    def add(self, faults: list[tuple[Fault, int]]) -> None:
        """Queue each ``(fault, count)``; all or none, so a bad count adds nothing."""
        for _, count in faults:
            if not _is_int(count) or count < 1:
                raise ValueError(f"fault count must be an integer >= 1, not {count!r}")
        with self._lock:
            self._pending.extend(_Pending(fault, count) for fault, count in faults)

    def take(self) -> Optional[Fault]:
        """The fault for the request now arriving, or ``None``; uses up one count."""
        with self._lock:
            if not self._pending:
                return None
            head = self._pending[0]
            head.left -= 1
            if head.left == 0:
                self._pending.popleft()
            return head.fault

    def pending(self) -> list[dict[str, Any]]:
        """What is still queued, as ``POST /api/faults`` would accept it back."""
        with self._lock:
            return [{**p.fault.to_json(), "count": p.left} for p in self._pending]

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()
