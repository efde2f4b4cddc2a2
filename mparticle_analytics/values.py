"""Attribute values: from what a caller passes to what mParticle accepts.

Two steps, on two threads. On the caller's thread, ``json_text`` writes each
dict a call passes as compact JSON, as ``json.dumps(value, default=to_json)``
would: ``to_json`` turns the Python types Segment users pass (datetimes,
Decimals, Enums, UUIDs, bytes, sets) into JSON and marks anything else as
unsupported instead of guessing with ``str()``. On the delivery thread,
``Attributes`` turns that text into mParticle's flat maps of scalars and
applies mParticle's limits, counting every truncation and drop in the
client's stats; NaN and infinities become None. Event properties that need
no change (flat, within every limit: the usual case) pass as the same text.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Optional, TypeVar

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


K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V, limit: int = 4096) -> V:
    """Store ``value`` in a cache that starts over when full: its memory stays bounded
    without bookkeeping on the hits, and the values an application uses are few."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def iso_utc(value: dt.datetime) -> str:
    """A datetime as ISO-8601 in UTC with milliseconds, e.g. ``2024-01-02T03:04:05.678+00:00``.

    What ``isoformat(timespec="milliseconds")`` writes, in half its time: each
    day's date is written once (an event's datetimes fall on a few days).
    """
    zone = value.tzinfo
    if zone is not _UTC:  # most callers already use UTC: skip the conversion then
        if zone.__class__ is not dt.timezone and (zone is None or value.utcoffset() is None):
            value = guess_timezone(value)
        value = value.astimezone(_UTC)
    day = value.toordinal()
    date = _dates.get(day) or remember(_dates, day, value.date().isoformat())
    two = _TWO_DIGITS
    return (
        f"{date}T{two[value.hour]}:{two[value.minute]}:{two[value.second]}."
        f"{_THREE_DIGITS[value.microsecond // 1000]}+00:00"
    )


_dates: dict[int, str] = {}  # day ordinal -> "YYYY-MM-DD"
_TWO_DIGITS = [f"{n:02d}" for n in range(60)]
_THREE_DIGITS = [f"{n:03d}" for n in range(1000)]


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


def compact_encoder(
    default: Optional[Callable[[Any], Any]], *, allow_nan: bool, sort_keys: bool = False
) -> Callable[[Any], str]:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False, ...)``, built once.

    Why: ``json.dumps`` with options builds a new encoder on every call, a third
    of the cost of encoding a small dict. Without circular checks, whose state
    could not be shared between threads: a cycle ends in ``RecursionError``.
    Where the C accelerator is missing (PyPy), ``JSONEncoder`` does the same job.
    """
    encoder = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan, check_circular=False,
        sort_keys=sort_keys, default=default,
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    encode = make(
        None, encoder.default, json.encoder.encode_basestring, None, ":", ",", sort_keys, False, allow_nan
    )
    return lambda value: "".join(encode(value, 0))


_CALLER_JSON = compact_encoder(to_json, allow_nan=True)
#: mParticle's wire JSON as text: compact, and never NaN (wire.md "Request").
wire_json = compact_encoder(None, allow_nan=False)
#: ``json.loads``, with NaN and the infinities read as None (mParticle's JSON has no such numbers).
parse: Callable[[str], Any] = json.JSONDecoder(parse_constant=lambda _: None).decode


#: What ``json.dumps`` says of a cycle; here also of nesting past the recursion limit.
_TOO_DEEP = "Circular reference detected (or nesting too deep to write)"


def json_text(value: Any) -> str:
    """A caller's value as compact JSON text: ``json.dumps(value, default=to_json)`` in one C call.

    Raises what ``json.dumps`` raises: ``TypeError`` for a key JSON cannot
    have, ``ValueError`` for an int too long to write, and ``ValueError`` for a
    circular reference or nesting deeper than about 900 levels (Python's
    recursion limit; flattening on the delivery thread would fail on it).
    """
    try:
        return _CALLER_JSON(value)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None


def one_per_key(value: dict[Any, Any], text: str) -> str:
    """``text``, the JSON of ``value``, with one member per key, as a JSON reader keeps them.

    Keys JSON writes alike (``1`` and ``"1"``) both appear in ``json.dumps``'s
    text; the last value wins, as it did in the old copy. Only the top level:
    nested objects always go through ``parse`` on their way to mParticle.
    """
    try:
        "".join(value)  # every key a string (the usual case, found in one C call): nothing to merge
    except TypeError:
        try:
            return json_text(parse(text))
        except RecursionError:  # parse's own frames, on nesting that only just fitted the encoder
            raise ValueError(_TOO_DEEP) from None
    return text


def dumps(value: Any) -> bytes:
    """``wire_json`` as the UTF-8 bytes a request carries."""
    return utf8(wire_json(value))


def utf8(text: str) -> bytes:
    """JSON text as UTF-8. A lone surrogate, which UTF-8 cannot hold, is written as its
    JSON escape (``\\udc80``), as ``json.dumps`` writes it, instead of failing the batch."""
    return text.encode("utf-8", "backslashreplace")


def now_iso() -> str:
    """The current time as ``iso_utc`` writes it, for the timestamp of nearly every call.

    Why not ``iso_utc(datetime.now(timezone.utc))``: formatting costs most of a
    microsecond a call. Here the text is written once per millisecond, in which
    an application may make a hundred calls, and their queued messages share it.
    """
    global _last
    now = time.time()
    millisecond = int(now * 1000)
    cached, text = _last
    if millisecond != cached:
        second, fraction = divmod(millisecond, 1000)
        if second != cached // 1000:
            text = iso_utc(dt.datetime.fromtimestamp(second, _UTC))
        text = f"{text[:19]}.{_THREE_DIGITS[fraction]}+00:00"
        _last = (millisecond, text)
    return text


_last = (-1000, "")  # the millisecond since the epoch now_iso last wrote, and its text


#: A key longer than mParticle allows, in a flat object's compact JSON (an escape counts as its
#: length, which can only overcount): the first key, or one after a comma. A quote after "{" or ","
#: starts a key, as a string's content never holds one unescaped; the literal "," lets the search
#: skip ahead, in time proportional to the text.
_LONG_NAME = r'"(?:[^"\\]|\\.){' + str(MAX_NAME_LENGTH + 1) + r',}":'
_LONG_FIRST_KEY = re.compile("{" + _LONG_NAME)
_LONG_KEY = re.compile("," + _LONG_NAME)


def _unchanged_by_limits(text: str) -> bool:
    """Whether ``Attributes.event`` would return the object in this JSON text unchanged.

    True for flat objects within mParticle's limits, decided from the text alone by
    a few scans of it (half a microsecond for 200 characters, 6 µs for 4,000). It may
    say False for an object that would pass (a string value holding "{" or "NaN",
    say): that one only takes the longer way.
    """
    return (
        len(text) <= MAX_VALUE_LENGTH  # so no string in it is longer
        and text.find("{", 1) < 0  # no nested object, nor a value marked unsupported
        and "[" not in text
        # Searching for one character is several times faster than for a word.
        and ("N" not in text or "NaN" not in text)
        and ("I" not in text or "Infinity" not in text)
        and (len(text) < _FEWEST_CHARACTERS_OVER_MAX or text.count(":") <= MAX_ATTRIBUTES)
        and (len(text) <= MAX_NAME_LENGTH or not (_LONG_FIRST_KEY.match(text) or _LONG_KEY.search(text)))
    )


#: The shortest JSON object with more members than mParticle allows: '{"":0,"":0,...}'.
_FEWEST_CHARACTERS_OVER_MAX = 2 + (MAX_ATTRIBUTES + 1) * len('"":0,') - 1


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

    def event_json(self, text: str) -> str:
        """``event()`` for properties held as JSON text, returning JSON text.

        Why: most events carry a few flat properties, which mParticle takes as
        they are. Their text then goes on the wire unchanged, instead of being
        parsed, flattened and written again.
        """
        if _unchanged_by_limits(text):
            return text
        return wire_json(self.event(parse(text)))

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
