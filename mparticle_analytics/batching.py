"""Group mapped messages into one batch per user, and batches into requests. Pure: no I/O.

Events arrive already serialized, so a batch's body is assembled by
concatenation and its size is known exactly before it is sent: nothing is
serialized twice, and no request can exceed mParticle's limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Callable, NamedTuple

from .ids import uuid4
from .mapping import Mapped
from .snapshot import Snapshot
from .values import dumps, utf8

#: mParticle's limits (wire.md "Limits").
MAX_BATCH_BYTES = 131_072
MAX_REQUEST_BYTES = 262_144  # a body must stay *under* this
MAX_BATCHES_PER_REQUEST = 100

_TAIL = b"]}"
_ID_LENGTH = 36  # of a uuid4 string


class Batch(NamedTuple):
    """One user's batch, serialized in two parts: its events are the mapped bytes themselves,
    joined only when a request is written, so that a round holds each event once.
    Its ``source_request_id`` is fixed inside ``head``."""

    #: Everything before the first event: the environment, request id, identities and profile.
    head: bytes
    #: The serialized events, in call order (a batch may carry only identities and attributes).
    events: list[bytes]
    #: Its length once written (``body``).
    size: int
    #: The messages it carries, in call order, for ``on_error`` and the stats.
    sources: list[Snapshot]

    @property
    def body(self) -> bytes:
        """The batch's JSON."""
        return b"".join((self.head, b",".join(self.events), _TAIL))


class Rejected(NamedTuple):
    """Snapshots that cannot be sent at all, and why."""

    sources: list[Snapshot]
    reason: str


class _User:
    """What the messages sharing one key add up to."""

    __slots__ = ("attributes", "deleted", "event_sources", "events", "profile_sources")

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}
        self.deleted: dict[str, None] = {}  # an ordered set
        self.profile_sources: list[Snapshot] = []
        # Two lists, not one of pairs: a pair per event would be one more object for the GC to track.
        self.events: list[bytes] = []
        self.event_sources: list[Snapshot] = []

    def change(self, attributes: dict[str, Any]) -> None:
        for name, value in attributes.items():
            if value is None:
                self.attributes.pop(name, None)
                self.deleted[name] = None
            else:
                self.attributes[name] = value
                self.deleted.pop(name, None)


def build_batches(
    mapped: Iterable[Mapped],
    *,
    environment: str,
    limit_attributes: Callable[[dict[str, Any]], dict[str, Any]],
    max_bytes: int = MAX_BATCH_BYTES,
) -> tuple[list[Batch], list[Rejected]]:
    """One batch per user (more when a user's events exceed ``max_bytes``), in first-seen order.

    Attribute changes merge in call order and ride on the user's first batch.
    ``limit_attributes`` caps the merged user attributes (mParticle allows 100).
    """
    users: dict[str, _User] = {}
    for key, event, attributes, source in mapped:
        user = users.get(key)
        if user is None:
            user = users[key] = _User()
        if attributes:
            user.change(attributes)
        if event is None:
            user.profile_sources.append(source)
        else:
            user.events.append(event)
            user.event_sources.append(source)
    opening = b'{"environment":' + dumps(environment) + b',"source_request_id":"'
    batches: list[Batch] = []
    rejected: list[Rejected] = []
    for key, user in users.items():
        _split_user(key, user, opening, limit_attributes, max_bytes, batches, rejected)
    return batches, rejected


def _split_user(
    key: str,
    user: _User,
    opening: bytes,
    limit_attributes: Callable[[dict[str, Any]], dict[str, Any]],
    max_bytes: int,
    batches: list[Batch],
    rejected: list[Rejected],
) -> None:
    """Fill the user's batches in order; ``opening`` is everything before the request id."""
    facts = utf8(key[1:-1])
    profile: dict[str, Any] = {}
    if user.attributes:
        profile["user_attributes"] = limit_attributes(user.attributes)
    if user.deleted:
        profile["deleted_user_attributes"] = list(user.deleted)
    rest_head = _head(facts, b"")
    head = _head(facts, dumps(profile)[1:-1]) if profile else rest_head
    sources = list(user.profile_sources)
    framing = len(opening) + _ID_LENGTH + len(_TAIL)
    if framing + len(head) > max_bytes:
        rejected.append(Rejected(sources, "user attributes exceed mParticle's 128 KB batch limit"))
        head, sources = rest_head, []
    size = framing + len(head)  # of the batch being filled, commas included
    whole = size + sum(map(len, user.events)) + max(len(user.events) - 1, 0)
    if whole <= max_bytes:  # the usual case: one batch
        if user.events or sources:
            batches.append(_batch(opening, head, user.events, sources + user.event_sources, whole))
        return
    events: list[bytes] = []
    for event, message in zip(user.events, user.event_sources):
        extra = len(event) + (1 if events else 0)
        if size + extra > max_bytes and (events or sources):
            batches.append(_batch(opening, head, events, sources, size))
            head, events, sources = rest_head, [], []
            size, extra = framing + len(head), len(event)
        if size + extra > max_bytes:
            rejected.append(Rejected([message], "event exceeds mParticle's 128 KB batch limit"))
            continue
        events.append(event)
        sources.append(message)
        size += extra
    if events or sources:
        batches.append(_batch(opening, head, events, sources, size))


def _head(facts: bytes, profile: bytes) -> bytes:
    """What follows the request id and precedes the events."""
    parts = [b'"']
    for part in (facts, profile):
        if part:
            parts += [b",", part]
    parts.append(b',"events":[')
    return b"".join(parts)


def _batch(opening: bytes, head: bytes, events: list[bytes], sources: list[Snapshot], size: int) -> Batch:
    """Seal a batch of ``size`` bytes with a fresh ``source_request_id``; retries resend these bytes."""
    return Batch(b"".join((opening, uuid4().encode(), head)), events, size, sources)


def pack_requests(
    batches: Sequence[Batch],
    *,
    max_bytes: int = MAX_REQUEST_BYTES,
    max_batches: int = MAX_BATCHES_PER_REQUEST,
) -> list[list[Batch]]:
    """Greedily fill requests in order: at most ``max_batches`` and under ``max_bytes`` each."""
    requests: list[list[Batch]] = []
    current: list[Batch] = []
    size = 2
    for batch in batches:
        extra = batch.size + (1 if current else 0)
        if current and (size + extra >= max_bytes or len(current) == max_batches):
            requests.append(current)
            current, size, extra = [], 2, batch.size
        current.append(batch)
        size += extra
    if current:
        requests.append(current)
    return requests


def request_body(batches: Sequence[Batch]) -> bytes:
    """The ``/v2/bulkevents`` body: a JSON array of the batches."""
    parts = [b"["]
    for n, batch in enumerate(batches):
        if n:
            parts.append(b",")
        parts += (batch.head, b",".join(batch.events), _TAIL)
    parts.append(b"]")
    return b"".join(parts)
