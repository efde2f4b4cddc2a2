"""Scripted misbehaviour for ingest requests, so an application's error handling can be tried.

A fault is one of: answer an error status (optionally with ``Retry-After``),
drop the connection before or after storing, or answer late. Each fault is
either *counted* (it applies to the next ``count`` requests, in the order
configured) or *random* (it applies to every request with probability
``rate``, drawn from a generator seeded with ``seed`` so a run can be
repeated). A request takes the first counted fault still pending, then every
random fault that fires: their delays add up, and the first status or drop
decides the answer. Latency on every request is a random delay at rate 1.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Final, NamedTuple, Optional

DROP_MODES: Final = ("before", "after")
_FIELDS: Final = frozenset({"status", "retry_after", "drop", "delay", "count", "rate", "seed"})


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
        if self.delay is not None and not (_is_number(self.delay) and self.delay >= 0):
            raise ValueError(f"fault delay must be a number of seconds >= 0, not {self.delay!r}")

    def to_json(self) -> dict[str, Any]:
        """The fault as ``/api/faults`` shows it: only the fields that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, item: object) -> Plan:
        """Parse one ``POST /api/faults`` item; ``ValueError`` if it is not a valid fault."""
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
        return Plan.of(fault, count=item.get("count"), rate=item.get("rate"), seed=item.get("seed"))


@dataclass(frozen=True)
class Plan:
    """A fault and when it applies: to the next ``count`` requests, or at random with ``rate``."""

    fault: Fault
    count: Optional[int] = None
    rate: Optional[float] = None
    seed: Optional[int] = None

    @classmethod
    def of(cls, fault: Fault, *, count: object = None, rate: object = None, seed: object = None) -> Plan:
        """A validated plan (``ValueError`` if not): a count (default 1), or a rate and maybe a seed."""
        if rate is None:
            if seed is not None:
                raise ValueError("a fault seed needs a rate")
            count = 1 if count is None else count
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ValueError(f"fault count must be an integer >= 1, not {count!r}")
            return cls(fault, count=count)
        if count is not None:
            raise ValueError("give a fault either a count or a rate, not both")
        if not (isinstance(rate, (int, float)) and _is_number(rate) and 0 < rate <= 1):
            raise ValueError(f"fault rate must be a probability above 0 and at most 1, not {rate!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"fault seed must be an integer, not {seed!r}")
        return cls(fault, rate=float(rate), seed=seed)


class Applied(NamedTuple):
    """What one request gets: the total delay, the status or drop fault (if any), and the record."""

    delay: float
    outcome: Optional[Fault]
    #: For the request log: the faults' fields merged, ``"random": true`` if a rate fired.
    record: Optional[dict[str, Any]]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class _Counted:
    fault: Fault
    left: int


class _Random:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.draws = random.Random(plan.seed)


class FaultQueue:
    """Pending faults, shared by the handler threads: counted ones in order, and random ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The head is used first.
        self._counted: deque[_Counted] = deque()
        self._random: list[_Random] = []

    def add(self, plans: list[Plan]) -> None:
        """Add each plan (already validated by :meth:`Plan.of`); all or none."""
        with self._lock:
            for plan in plans:
                if plan.rate is None:
                    self._counted.append(_Counted(plan.fault, plan.count or 1))
                else:
                    self._random.append(_Random(plan))

    def take(self) -> Applied:
        """The faults for the request now arriving; uses up one count of the head fault."""
        chosen: list[Fault] = []
        fired = False
        with self._lock:
            if self._counted:
                head = self._counted[0]
                head.left -= 1
                if head.left == 0:
                    self._counted.popleft()
                chosen.append(head.fault)
            for pending in self._random:
                # Drawn for every request, so a seeded run repeats whatever came before.
                if pending.draws.random() < (pending.plan.rate or 0):
                    chosen.append(pending.plan.fault)
                    fired = True
        if not chosen:
            return Applied(0.0, None, None)
        delay = sum(f.delay for f in chosen if f.delay is not None)
        outcome = next((f for f in chosen if f.delay is None), None)
        record: dict[str, Any] = {}
        for fault in chosen:
            if fault.delay is not None:
                record["delay"] = record.get("delay", 0) + fault.delay
            elif fault is outcome:
                record.update(fault.to_json())
        if fired:
            record["random"] = True
        return Applied(delay, outcome, record)

    def pending(self) -> list[dict[str, Any]]:
        """What is configured, as ``POST /api/faults`` would accept it back."""
        with self._lock:
            counted = [{**p.fault.to_json(), "count": p.left} for p in self._counted]
            randoms = [
                {
                    **r.plan.fault.to_json(),
                    "rate": r.plan.rate,
                    **({} if r.plan.seed is None else {"seed": r.plan.seed}),
                }
                for r in self._random
            ]
        return counted + randoms

    def clear(self) -> None:
        """Drop every pending fault, counted and random."""
        with self._lock:
            self._counted.clear()
            self._random.clear()
