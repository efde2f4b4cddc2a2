"""``values.freeze``: the caller-side snapshot (a copy in JSON's types, and a bound on its JSON size),
``values.now_iso`` and ``mapping.dumps``, checked against the ``json`` module they stand in for."""

from __future__ import annotations

import datetime as dt
import enum
import json
import random
import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest

from mparticle_analytics.mapping import dumps
from mparticle_analytics.values import MAX_DEPTH, freeze, iso_utc, now_iso, to_json


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


@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_the_copy_is_what_a_json_round_trip_gives(value: dict[Any, Any]) -> None:
    copy, _ = freeze(value)
    assert copy == through_json(value)
    assert json.dumps(copy) == json.dumps(through_json(value))  # same order, same types


@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_the_bound_is_never_below_the_json_size_segment_checks(value: dict[Any, Any]) -> None:
    _, bound = freeze(value)
    assert bound >= len(json.dumps(value, default=to_json).encode())


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


def test_copy_and_bound_hold_for_a_thousand_random_values() -> None:
    rng = random.Random(20241129)
    for _ in range(1000):
        value = {_random_key(rng): _random_value(rng) for _ in range(rng.randrange(8))}
        copy, bound = freeze(value)
        # json.dumps tells True, 1 and 1.0 apart (== does not), and shows the order
        assert json.dumps(copy) == json.dumps(through_json(value))
        assert bound >= len(json.dumps(value, default=to_json).encode())


def test_the_copy_shares_nothing_mutable_with_the_callers_value() -> None:
    value: dict[str, Any] = {"list": [1, {"inner": 2}], "dict": {"k": "v"}}
    copy, _ = freeze(value)
    value["list"].append(3)
    value["list"][1]["inner"] = 99
    value["dict"]["k"] = "changed"
    value["new"] = 1
    assert copy == {"list": [1, {"inner": 2}], "dict": {"k": "v"}}


def test_a_circular_reference_raises_value_error_as_json_does() -> None:
    value: dict[str, Any] = {}
    value["self"] = value
    with pytest.raises(ValueError, match="Circular reference"):
        freeze(value)
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        freeze({"list": looped})


def test_nesting_up_to_the_limit_is_copied() -> None:
    value: dict[str, Any] = {}
    inner = value
    for _ in range(MAX_DEPTH):
        inner["d"] = {}
        inner = inner["d"]
    copy, _ = freeze(value)
    assert copy == value


def test_a_key_json_cannot_write_raises_type_error_as_json_does() -> None:
    with pytest.raises(TypeError, match="keys must be str, int, float, bool or None, not tuple"):
        freeze({(1, 2): "tuple key"})


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
