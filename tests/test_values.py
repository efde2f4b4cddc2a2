"""Snapshots (``snapshot.take``: JSON text, and a bound on Segment's size check),
``values.event_json``, ``values.now_iso`` and ``values.dumps``, checked against the
``json`` module and the rules they stand in for."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import gc
import json
import random
import sys
import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest

from mparticle_analytics import Client
from mparticle_analytics.snapshot import read, restore, take
from mparticle_analytics.transport import Response
from mparticle_analytics.values import (
    Attributes,
    dumps,
    iso_utc,
    json_text,
    now_iso,
    parse,
    to_json,
    wire_json,
)
from mparticle_analytics.version import LIBRARY


class Color(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    LARGE = 3


class Text(str):
    def __str__(self) -> str:
        return "not what json writes"


class Ratio(float):
    def __repr__(self) -> str:
        return "not what json writes"


def through_json(value: Any) -> Any:
    """What the snapshot used to be: a JSON round trip, NaN and infinities read as None."""
    return json.loads(json.dumps(value, default=to_json), parse_constant=lambda _: None)


TRICKY: list[Any] = [
    {},
    {"s": "x", "i": 1, "f": 1.5, "b": True, "n": None},
    {"nested": {"deeper": {"list": [1, "two", [3.0, None], {"k": False}]}}},
    {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "in_list": [float("nan")]},
    {"aware": dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
    {"date": dt.date(2024, 1, 2), "decimal": Decimal("12.5"), "decimal_nan": Decimal("NaN")},
    {"enum": Color.RED, "int_enum": Size.LARGE, "uuid": uuid.UUID(int=7), "bytes": b"caf\xc3\xa9"},
    {"bad_bytes": b"\xff", "object": object(), "set": {1}, "frozenset": frozenset({"a"}), "tuple": (1, 2)},
    {"str_subclass": Text("plain"), "float_subclass": Ratio(0.25), "ordered": OrderedDict(a=1)},
    {1: "int key", 2.5: "float key", False: "bool key", None: "null key", float("nan"): "nan key"},
    {"escapes": "quote \" backslash \\ newline \n control \x01", "unicode": "é😀\u2028"},
    {"big": 10**400, "negative": -(10**50), "bool_false": False},
]


def _message(properties: Any, context: Any = None) -> dict[str, Any]:
    """A message as ``Client`` builds it before the snapshot."""
    return {
        "integrations": {}, "anonymousId": None, "properties": properties,
        "timestamp": "2024-01-02T03:04:05.678+00:00", "context": context or {}, "userId": "user-1",
        "type": "track", "event": "Played", "messageId": "id-1",
    }


def _segment_size(message: dict[str, Any]) -> int:
    """What Segment's 32 KB check measures: the message with its library context, as json.dumps writes it."""
    returned = {**message, "context": {**message["context"], "library": LIBRARY}}
    return len(json.dumps(returned, default=to_json).encode())


@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_a_snapshot_reads_back_as_a_json_round_trip(value: dict[Any, Any]) -> None:
    snapshot, _ = take(_message(value))
    assert restore(snapshot)["properties"] == through_json(value)
    assert json.dumps(read(snapshot, "properties")) == json.dumps(through_json(value))  # order and types


@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_the_bound_is_never_below_the_json_size_segment_checks(value: dict[Any, Any]) -> None:
    message = _message(value, {"ip": "1.2.3.4", "é": "😀"})
    _, bound = take(message)
    assert bound >= _segment_size(message)


def test_the_bound_holds_for_every_call_type() -> None:
    client = Client("key", send=False)
    long = "é\x01\x7f" * 50
    calls = [
        lambda: client.identify(long, {"k": long}, {"ip": long}, anonymous_id=long, integrations={"a": True}),
        lambda: client.track(long, long, {"k": long}, {"ip": long}, anonymous_id=long, message_id=long),
        lambda: client.page(long, long, long, {"k": long}, anonymous_id=long),
        lambda: client.screen(long, long, long, {"k": long}, anonymous_id=long),
        lambda: client.group(long, 10**30, {"k": long}, anonymous_id=long),
        lambda: client.alias(long, long),
    ]
    for call in calls:
        _, returned = call()
        message = {**returned, "context": {k: v for k, v in returned["context"].items() if k != "library"}}
        _, bound = take(message)
        assert bound >= _segment_size(message), returned["type"]


def test_the_bound_counts_what_json_dumps_escapes_in_ascii_text() -> None:
    message = _message({"note": "\x7f" * 5500})
    _, bound = take(message)
    assert bound >= _segment_size(message) > 32 * 1024


class Name(str):
    def __str__(self) -> str:
        return "not what json writes"


def test_top_level_values_are_held_as_json_has_them() -> None:
    message = {
        **_message({}), "userId": Name("é" * 6000), "event": Name("Signed Up"), "groupId": Decimal("1.50")
    }
    snapshot, bound = take(message)
    assert type(snapshot["userId"]) is str and snapshot["event"] == "Signed Up" and snapshot["groupId"] == 1.5
    assert bound >= _segment_size(message) > 32 * 1024
    assert not gc.is_tracked(snapshot)


def test_restore_gives_the_message_the_call_returned() -> None:
    message = _message({"a": 1}, {"ip": "1.2.3.4"})
    snapshot, _ = take(message)
    assert restore(snapshot) == {**message, "context": {"ip": "1.2.3.4", "library": LIBRARY}}


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth < 4 and pick < 0.15:
        return {_random_text(rng): _random_value(rng, depth + 1) for _ in range(rng.randrange(6))}
    if depth < 4 and pick < 0.25:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return rng.choice([
        lambda: _random_text(rng),
        lambda: Text(_random_text(rng)),
        lambda: rng.randrange(-(10**30), 10**30),
        lambda: Size.LARGE,
        lambda: rng.random() * 10 ** rng.randrange(-300, 300),
        lambda: Ratio(rng.random()),
        lambda: rng.choice([None, True, False, 0, 1, 1.0, float("nan"), float("-inf")]),
        lambda: dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=rng.randrange(10**8)),
        lambda: rng.choice([Decimal("2.5"), Color.RED, uuid.UUID(int=rng.getrandbits(128)), b"x", {3}, (1,)]),
    ])()


def _random_text(rng: random.Random) -> str:
    alphabet = "ab\"\\\n\x00é€😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))


def _random_key(rng: random.Random) -> Any:
    return rng.choice([_random_text, lambda r: r.randrange(-99, 99), lambda r: r.random(),
                       lambda r: r.choice([None, True, False])])(rng)


def test_snapshot_and_bound_hold_for_a_thousand_random_values() -> None:
    rng = random.Random(20241129)
    for _ in range(1000):
        value = {_random_key(rng): _random_value(rng) for _ in range(rng.randrange(8))}
        message = _message(value, {_random_text(rng): _random_text(rng)})
        message.update(userId=_random_text(rng) * 3, anonymousId=rng.choice([None, _random_text(rng)]),
                       event=_random_text(rng), groupId=rng.choice([None, 10**20, 2.5, _random_text(rng)]))
        snapshot, bound = take(message)
        # json.dumps tells True, 1 and 1.0 apart (== does not), and shows the order
        assert json.dumps(restore(snapshot)["properties"]) == json.dumps(through_json(value))
        assert bound >= _segment_size(message)


class _Accepting:
    """A transport that accepts every request without sending it anywhere."""

    def send(self, body: bytes) -> Response:
        return Response(202, {}, "")

    def close(self) -> None:
        pass


def test_a_plain_track_queues_the_snapshot_the_general_path_takes() -> None:
    """``track`` with string ids and nothing optional builds its snapshot directly: the same one."""
    client = Client("key", secret="secret", thread=0, _transport=_Accepting())  # what is queued stays
    rng = random.Random(7)
    calls = [("user-1", "Signed Up", {"plan": "pro"}, None), ("", "E", None, "anon"),
             ("u" * 3000, "😀" * 2000, {"k": "v" * 3000}, "a" * 100)]
    calls += [
        (_random_text(rng) + "u", _random_text(rng), {_random_key(rng): _random_value(rng) for _ in range(5)},
         rng.choice([None, _random_text(rng)]))
        for _ in range(300)
    ]
    for user_id, event, properties, anonymous_id in calls:
        _, message = client.track(user_id, event, properties, anonymous_id=anonymous_id)
        queued = client.queue.items[-1]
        expected, _ = take({**message, "context": {}})
        assert list(queued.items()) == list(expected.items())
        assert not gc.is_tracked(queued)
    # Over 32 KB as Segment measures it, by each part of a plain call:
    oversize = [("u", "E", {"k": "😀" * 3000}, None), ("u" * 33000, "E", None, None),
                ("u", "E" * 33000, None, None), ("u", "E", None, "a" * 33000)]
    for user_id, event, properties, anonymous_id in oversize:
        with pytest.raises(RuntimeError, match="32kb"):
            client.track(user_id, event, properties, anonymous_id=anonymous_id)
    client.shutdown()


def test_a_snapshot_shares_nothing_mutable_and_the_collector_never_walks_it() -> None:
    value: dict[str, Any] = {"list": [1, {"inner": 2}], "dict": {"k": "v"}, "when": dt.datetime(2024, 1, 2)}
    snapshot, _ = take(_message(value))
    value["list"].append(3)
    value["list"][1]["inner"] = 99
    value["dict"]["k"] = "changed"
    value["new"] = 1
    assert read(snapshot, "properties") == {
        "list": [1, {"inner": 2}], "dict": {"k": "v"}, "when": "2024-01-02T00:00:00.000+00:00"
    }
    assert not gc.is_tracked(snapshot)


def test_a_circular_reference_raises_value_error_as_json_does() -> None:
    value: dict[str, Any] = {}
    value["self"] = value
    with pytest.raises(ValueError, match="Circular reference"):
        json_text(value)
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        json_text({"list": looped})


def test_deep_nesting_that_json_can_write_is_written() -> None:
    value: dict[str, Any] = {}
    inner = value
    for _ in range(200):
        inner["d"] = {}
        inner = inner["d"]
    assert parse(json_text(value)) == value


def test_a_key_json_cannot_write_raises_type_error_as_json_does() -> None:
    with pytest.raises(TypeError, match="keys must be str, int, float, bool or None, not tuple"):
        json_text({(1, 2): "tuple key"})


def _event_json_the_long_way(text: str) -> str:
    return wire_json(Attributes(lambda reason, name: None).event(parse(text)))


@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_event_json_writes_what_the_attribute_rules_give(value: dict[Any, Any]) -> None:
    text = json_text(value)
    assert Attributes(lambda reason, name: None).event_json(text) == _event_json_the_long_way(text)


def test_event_json_holds_for_a_thousand_random_values() -> None:
    rng = random.Random(1129)
    attributes = Attributes(lambda reason, name: None)
    for _ in range(1000):
        # keys repeated 30 times are sometimes over mParticle's 256 characters
        value = {_random_text(rng) * rng.choice([1, 30]): _random_value(rng) for _ in range(rng.randrange(8))}
        text = json_text(value)
        assert attributes.event_json(text) == _event_json_the_long_way(text)


def test_keys_that_json_writes_alike_are_held_once_with_the_last_value() -> None:
    message = _message({1: "one", "1": "uno", None: "n", "null": "N", "plain": 1})
    snapshot, _ = take(message)
    assert snapshot["properties"] == '{"1":"uno","null":"N","plain":1}'
    assert Attributes(lambda reason, name: None).event_json(snapshot["properties"]) == snapshot["properties"]


def test_the_bound_counts_keys_that_json_writes_alike_twice_as_segment_does() -> None:
    message = _message({1: "😀" * 1400, "1": "😀" * 1400})
    _, bound = take(message)
    assert bound >= _segment_size(message) > 32 * 1024


def test_nesting_near_the_recursion_limit_raises_value_error_or_passes() -> None:
    limit = sys.getrecursionlimit()
    for depth in range(limit - 60, limit + 5, 3):
        value: dict[Any, Any] = {}
        inner = value
        for _ in range(depth):
            inner[1] = {}
            inner = inner[1]
        with contextlib.suppress(ValueError):  # never RecursionError
            take(_message({1: value, "1": 0}))


def test_flat_properties_within_the_limits_pass_as_the_same_text() -> None:
    text = json_text({"plan": "pro", "count": 3, "ratio": 0.5, "trial": False, "gone": None, "k" * 256: "v"})
    assert Attributes(lambda reason, name: None).event_json(text) is text
    text = json_text({"Name": "Nora Ivy", "Index": "N/I"})
    assert Attributes(lambda reason, name: None).event_json(text) is text


@pytest.mark.parametrize("value", [
    {"k" * 257: "a key over 256 characters"},
    {"first": 1, "k" * 257: "a long key after a comma"},
    {"k" * 200 + "\"" * 57: "a key over 256 characters once unescaped"},
    {'a":' + "b" * 300: "a long key holding a quote and a colon"},
    {"v": '"id","name"' + "x" * 300, "k" * 300: 1},
    {"v": "x" * 4097},
    {f"k{n}": n for n in range(101)},
    {"nan": float("nan")},
    {"Name": "N", "inf": float("inf")},
    {"In": "I", "-inf": float("-inf")},
    {"nested": {"a": 1}},
    {"list": [1]},
    {"object": object()},
], ids=["long key", "long key after a comma", "long escaped key", "long key with a colon",
        "long key after a quoting value", "long value", "101 attributes", "nan", "inf", "-inf", "nested",
        "list", "unsupported"])
def test_properties_that_the_limits_change_take_the_long_way(value: dict[str, Any]) -> None:
    text = json_text(value)
    written = Attributes(lambda reason, name: None).event_json(text)
    assert written != text
    assert written == _event_json_the_long_way(text)


def test_now_iso_is_utc_with_milliseconds_and_current() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    text = now_iso()
    after = dt.datetime.now(dt.timezone.utc)
    parsed = dt.datetime.fromisoformat(text)
    assert text.endswith("+00:00") and len(text) == len("2024-01-02T03:04:05.678+00:00")
    # time.time() may read a hair below a millisecond boundary that datetime.now() has passed
    assert before - dt.timedelta(milliseconds=1) <= parsed <= after


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, "é\n\"😀", None, True], "b": {"c": 10**30}},
    {"event_type": "custom_event", "data": {"custom_attributes": {"x": -0.0, "y": 1e300}}},
])
def test_dumps_writes_what_json_dumps_writes(value: Any) -> None:
    assert dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_dumps_refuses_nan_and_unknown_types() -> None:
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_iso_utc_writes_what_isoformat_writes_in_utc() -> None:
    rng = random.Random(7)
    zones = [dt.timezone(dt.timedelta(minutes=minutes)) for minutes in (0, 330, -480)]
    for _ in range(2000):
        value = dt.datetime(
            rng.randrange(2, 9998), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24),
            rng.randrange(60), rng.randrange(60), rng.randrange(10**6), tzinfo=rng.choice(zones),
        )
        assert iso_utc(value) == value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")
