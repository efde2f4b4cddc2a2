"""Attribute values: from what a caller passes to what mParticle accepts.

Two steps, on two threads. On the caller's thread, ``to_json`` is the
``json.dumps`` hook that snapshots a message: it turns the Python types
Segment users pass (datetimes, Decimals, Enums, UUIDs, bytes, sets) into JSON
and marks anything else as unsupported instead of guessing with ``str()``.
On the delivery thread (where the snapshot's NaN and infinities have been read
as None), ``Attributes`` flattens it into mParticle's
flat maps of scalars and applies mParticle's limits, counting every
truncation and drop in the client's stats.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
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
    return value.isoformat(timespec="milliseconds")


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
                out[name] = self._truncate(value, name, MAX_VALUE_LENGTH)
            elif kind is list:
                out[name] = self._sequence(value, name, lists)
            else:  # numbers, booleans and None, as JSON gave them
                out[name] = value
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
