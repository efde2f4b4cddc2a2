"""Attribute values: from what a caller passes to what mParticle accepts.

Two steps, on two threads. On the caller's thread, ``freeze`` copies the
dicts a call passes into JSON's types, as ``json.loads(json.dumps(value,
default=to_json))`` would but several times faster: ``to_json`` turns the
Python types Segment users pass (datetimes, Decimals, Enums, UUIDs, bytes,
sets) into JSON and marks anything else as unsupported instead of guessing
with ``str()``; NaN and infinities become None. On the delivery thread,
``Attributes`` flattens those copies into mParticle's flat maps of scalars and
applies mParticle's limits, counting every truncation and drop in the
client's stats.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Optional

from dateutil.tz import tzlocal

#: mParticle's limits on attribute maps (wire.md "Limits").
MAX_NAME_LENGTH = 256
MAX_VALUE_LENGTH = 4096
MAX_ATTRIBUTES = 100
MAX_LIST_ENTRIES = 1000
MAX_LIST_ENTRY_LENGTH = 512

#: The key of the placeholder ``to_json`` leaves where a value had no JSON form.
UNSUPPORTED = "__unsupported__"

_UTC = dt.timezone.utc  # C-implemented: converting with it is several times faster than tzutc()

#: Reports a counted loss: ``(reason, attribute name)``.
Report = Callable[[str, str], None]


def guess_timezone(value: dt.datetime) -> dt.datetime:
    """Give a naive datetime a zone the way Segment does.

    A naive value within 5 seconds of now (or in the future) is taken as local
    time, anything older as UTC; aware values are returned unchanged.
    """
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value
    if (dt.datetime.now() - value).total_seconds() < 5:
        return value.replace(tzinfo=tzlocal())
    return value.replace(tzinfo=_UTC)


def iso_utc(value: dt.datetime) -> str:
    """A datetime as ISO-8601 in UTC with milliseconds, e.g. ``2024-01-02T03:04:05.678+00:00``."""
    if value.tzinfo is not _UTC:  # most callers already use UTC: skip the conversion then
        value = guess_timezone(value).astimezone(_UTC)
    # What isoformat(timespec="milliseconds") writes, in two thirds of its time (an f-string is slower).
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00" % (  # noqa: UP031
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond // 1000
    )


def to_json(value: object) -> Any:
    """``json.dumps`` ``default=`` hook: the JSON form of a caller's value (mapping.md §5)."""
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {UNSUPPORTED: "bytes (not UTF-8)"}
    if isinstance(value, (set, frozenset)):
        return list(value)
    return {UNSUPPORTED: type(value).__name__}


#: Upper bounds on JSON lengths, as ``json.dumps`` writes them (ASCII, ", " and ": ").
_PER_CHAR = 12  # an astral character becomes a surrogate pair, "\\ud83d\\ude00"
_PER_ITEM = 6  # a key's quotes, ": " and ", "
_FLOAT = 24  # the longest float repr, e.g. -2.2250738585072014e-308
_CONSTANT = 5  # true, false, null, NaN
_SHORT_INT_BITS = 4_000  # ints this short have under 1,300 digits, always writable


def freeze(value: dict[Any, Any]) -> tuple[dict[str, Any], int]:
    """A deep copy of a caller's dict in JSON's types, and a bound on the length of its JSON.

    Why a copy: the caller may change its dicts as soon as the call returns,
    and the delivery thread reads them later. Why the bound: it settles
    Segment's 32 KB check without serializing the message; only a message
    whose bound passes the limit needs ``json.dumps`` to know. Raises what
    ``json.dumps`` raises: ``TypeError`` for a key JSON cannot have, and
    ``ValueError`` for a circular reference (or nesting over ``MAX_DEPTH`` levels).
    """
    return _dict(value, 0)


#: Levels of nesting ``freeze`` follows; deeper is taken for a circular reference.
MAX_DEPTH = 100


def _dict(value: dict[Any, Any], depth: int) -> tuple[dict[str, Any], int]:
    """The loop every value goes through (list entries too): common types without a call."""
    if depth > MAX_DEPTH:
        raise ValueError(f"Circular reference detected (or nesting over {MAX_DEPTH} levels)")
    depth += 1
    copy: dict[str, Any] = {}
    size = 2
    for key, item in value.items():
        if type(key) is not str:
            key = _key(key)
        kind = type(item)
        if kind is str:
            size += _PER_CHAR * len(item) + 2
        elif kind is int:
            bits = item.bit_length()
            # At most that many digits, and a sign. Past _SHORT_INT_BITS, write it: json.dumps
            # refuses ints over sys.get_int_max_str_digits() digits, and so must the call.
            size += bits // 3 + 2 if bits <= _SHORT_INT_BITS else len(int.__repr__(item))
        elif kind is float:
            size += _FLOAT
            if not math.isfinite(item):
                item = None
        elif item is None or kind is bool:
            size += _CONSTANT
        elif kind is dict:
            item, item_size = _dict(item, depth) if item else ({}, 2)
            size += item_size
        elif kind is dt.datetime:
            item = iso_utc(item)
            size += len(item) + 2
        else:
            item, item_size = _other(item, depth)
            size += item_size
        copy[key] = item
        size += _PER_CHAR * len(key) + _PER_ITEM
    return copy, size


def _other(item: Any, depth: int) -> tuple[Any, int]:
    """Lists, tuples, subclasses of the JSON types, and what ``to_json`` converts."""
    if isinstance(item, dict):
        return _dict(item, depth)
    if isinstance(item, (list, tuple)):
        entries, size = _dict(dict(enumerate(item)), depth)
        return list(entries.values()), size
    # ``json.dumps`` writes subclasses as their base type (an IntEnum as its number).
    if isinstance(item, str):
        plain: Any = str.__str__(item)
    elif isinstance(item, int):
        plain = int.__int__(item)
    elif isinstance(item, float):
        plain = float.__float__(item)
    else:
        plain = to_json(item)
    entries, size = _dict({"": plain}, depth)
    return entries[""], size


def _key(key: Any) -> str:
    """A dict key as ``json.dumps`` writes it."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        if math.isfinite(key):
            return float.__repr__(key)
        return "NaN" if math.isnan(key) else ("Infinity" if key > 0 else "-Infinity")
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def now_iso() -> str:
    """The current time as ``iso_utc`` writes it, for the timestamp of nearly every call.

    Why not ``iso_utc(datetime.now(timezone.utc))``: formatting costs most of a
    microsecond a call; here ``iso_utc`` formats the seconds part once per second.
    """
    global _second_text
    now = time.time()
    second = int(now)
    cached, text = _second_text
    if second != cached:
        text = iso_utc(dt.datetime.fromtimestamp(second, _UTC))[:19]  # up to the seconds
        _second_text = (second, text)
    return f"{text}.{int((now - second) * 1000):03d}+00:00"


_second_text = (-1, "")


def _is_unsupported(value: dict[str, Any]) -> bool:
    return len(value) == 1 and UNSUPPORTED in value


class Attributes:
    """Turns snapshot dicts into mParticle attribute maps, within mParticle's limits.

    ``report(reason, name)`` is told about each value that is truncated or dropped.
    """

    def __init__(self, report: Report):
        self._report = report

    def event(self, values: Optional[dict[str, Any]]) -> dict[str, Any]:
        """Event ``custom_attributes``: scalars only; lists become JSON strings."""
        return self._limit(self._flatten(values, "", {}, lists=False), "event attributes")

    def user(self, values: Optional[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
        """``user_attributes``: scalars or lists of scalars; ``None`` is kept (it means delete)."""
        return self._flatten(values, prefix, {}, lists=True)

    def strings(self, values: Optional[dict[str, Any]]) -> dict[str, str]:
        """Product ``custom_attributes``: every value a string (mParticle's schema)."""
        flat = self._limit(self._flatten(values, "", {}, lists=False), "product attributes")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in flat.items() if v is not None}

    def limit_user(self, values: dict[str, Any]) -> dict[str, Any]:
        """Cap a batch's merged user attributes at mParticle's count."""
        return self._limit(values, "user attributes")

    def _limit(self, values: dict[str, Any], kind: str) -> dict[str, Any]:
        if len(values) <= MAX_ATTRIBUTES:
            return values
        kept = dict(list(values.items())[:MAX_ATTRIBUTES])
        for name in list(values)[MAX_ATTRIBUTES:]:
            self._report(f"too_many_{kind.replace(' ', '_')}", name)
        return kept

    def _flatten(
        self, values: Optional[dict[str, Any]], prefix: str, out: dict[str, Any], *, lists: bool
    ) -> dict[str, Any]:
        if not values:
            return out
        for key, value in values.items():
            name = f"{prefix}.{key}" if prefix else key
            kind = type(value)
            if kind is dict:
                if _is_unsupported(value):
                    self._report("invalid_value", name)
                else:
                    self._flatten(value, name, out, lists=lists)
                continue
            if len(name) > MAX_NAME_LENGTH:
                self._report("truncated_name", name)
                name = name[:MAX_NAME_LENGTH]
            if kind is str:
                if len(value) > MAX_VALUE_LENGTH:  # checked here: this loop runs for every value
                    value = self._truncate(value, name, MAX_VALUE_LENGTH)
            elif kind is list:
                value = self._sequence(value, name, lists)
            out[name] = value  # strings, numbers, booleans and None
        return out

    def _sequence(self, value: list[Any], name: str, lists: bool) -> Any:
        """A list: kept as a list of scalars in user attributes, else its JSON text."""
        if any(isinstance(v, dict) and _is_unsupported(v) for v in value):
            self._report("invalid_value", name)
            value = [v for v in value if not (isinstance(v, dict) and _is_unsupported(v))]
        if lists and all(not isinstance(v, (dict, list)) for v in value):
            return self._list(value, name)
        return self._truncate(json.dumps(value, separators=(",", ":")), name, MAX_VALUE_LENGTH)

    def _list(self, value: list[Any], name: str) -> list[Any]:
        if len(value) > MAX_LIST_ENTRIES:
            self._report("truncated_list", name)
            value = value[:MAX_LIST_ENTRIES]
        return [self._truncate(v, name, MAX_LIST_ENTRY_LENGTH) if isinstance(v, str) else v for v in value]

    def _truncate(self, value: str, name: str, limit: int) -> str:
        if len(value) <= limit:
            return value
        self._report("truncated_value", name)
        return value[:limit]
