"""Snapshots: what the queue holds for each call, from the call until delivery.

A snapshot is the Segment message the call returns, less ``context.library``,
with each of its objects (``properties``, ``traits``, ``context``,
``integrations``) held as compact JSON text (``values.json_text``). Why text:

* the caller may change its dicts as soon as the call returns; text cannot change;
* it is one C call, with ``json.dumps``'s own rules for every type and error;
* a dict of strings and numbers is invisible to CPython's cyclic garbage
  collector: a backlog of 100,000 snapshots costs its full collections
  nothing, where 100,000 nested dicts cost them about 0.25 s;
* event properties that need no change go on the wire as the same text.

The mapper reads the objects back with ``read``; ``on_error`` gets ``restore``'s message.
"""

from __future__ import annotations

import json
from typing import Any

from .values import json_text, one_per_key, parse
from .version import LIBRARY

#: The message fields held as JSON text.
OBJECTS = frozenset({"properties", "traits", "context", "integrations"})
#: A queued message; read-only.
Snapshot = dict[str, Any]

#: An empty object's text.
EMPTY = "{}"
#: What ``, "library": {...}`` adds to the context as Segment writes it.
_LIBRARY_SIZE = len(json.dumps({"library": LIBRARY}))
#: Each field's share besides its value's characters: the longest key with its quotes,
#: ": " and ", ", and a string's quotes or "null".
_PER_FIELD = len('"integrations": null, ')


def take(message: dict[str, Any]) -> tuple[Snapshot, int]:
    """The snapshot of a message the client built, and a bound on the length of its JSON.

    The bound is never below the length Segment's 32 KB check measures
    (``json.dumps`` of the message with its library context), so only a
    message whose bound passes the limit needs that check written out. Holding
    strings and numbers, a snapshot is not tracked by the garbage collector
    (unless a call passes an empty list or dict as a page's name or category).
    """
    snapshot: Snapshot = {}
    objects = 0  # the bound's share for the objects
    chars = 0  # of the strings
    for key, value in message.items():
        if value.__class__ is str:  # most fields
            chars += len(value)
        elif key in OBJECTS:
            value, size = object_text(value)
            objects += size
        elif value is not None:  # a str subclass, or an id given as a number: as JSON has it
            text = json_text(value)
            value = parse(text)
            chars += len(text)
        snapshot[key] = value
    return snapshot, bound(len(message), objects, chars)


def object_text(value: dict[Any, Any]) -> tuple[str, int]:
    """One of a message's objects as the snapshot holds it, and the bound's share for it."""
    if not value:
        return EMPTY, 0  # "{}": the field's share in ``bound`` covers it
    text = json_text(value)
    # json.dumps adds a space after each comma and colon, each of which follows
    # another character, and escapes DEL and any character past ASCII.
    size = (len(text) * 2 + text.count("\x7f") * 5) if text.isascii() else len(text) * 12
    return one_per_key(value, text), size


def bound(fields: int, objects: int, chars: int) -> int:
    """A bound on the JSON length of a message of ``fields`` fields, whose objects take
    at most ``objects`` characters and whose strings hold ``chars`` characters, each of
    which json.dumps writes in at most 12."""
    return _LIBRARY_SIZE + _PER_FIELD * fields + objects + 12 * chars


def read(snapshot: Snapshot, field: str) -> dict[str, Any]:
    """One of the snapshot's objects, as a new dict ({} when the message has none)."""
    text = snapshot.get(field)
    if text is None or text == EMPTY:
        return {}
    value: dict[str, Any] = parse(text)
    return value


def restore(snapshot: Snapshot) -> dict[str, Any]:
    """The message as the call returned it, read back from JSON (for ``on_error``)."""
    message = {key: parse(value) if key in OBJECTS else value for key, value in snapshot.items()}
    message["context"]["library"] = dict(LIBRARY)
    return message
