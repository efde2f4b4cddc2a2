"""How Segment calls become mParticle batches: mapping.md §1-3, §5 and §6 (not §4, e-commerce).

Every test sends real calls through a ``Client`` to the local devserver, waits on
``client.flush`` and reads the batches as they arrived. The ``server`` fixture
also validates every received batch against mParticle's JSON Schema.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import time
import uuid
from decimal import Decimal
from typing import Any, Callable

import pytest
from conftest import events, only_batch, only_event, received

from mparticle_analytics import Client
from mparticle_analytics.devserver import DevServer

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
UUID_A = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
UUID_B = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
FORBIDDEN_BATCH_FIELDS = ("schema_version", "timestamp_unixtime_ms", "api_key", "source_info", "batch_id")


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def new_client(make_client: Callable[..., Client]) -> Callable[..., Client]:
    """Clients that deliver only when flushed, so a flush sends everything queued as one chunk."""

    def make(**options: Any) -> Client:
        options.setdefault("upload_interval", 60)
        return make_client(**options)

    return make


@pytest.fixture
def client(new_client: Callable[..., Client]) -> Client:
    return new_client()


def flushed(client: Client) -> None:
    assert client.flush(5), "flush timed out"


def losses(client: Client) -> dict[str, int]:
    values = client.stats()["values"]
    assert isinstance(values, dict)
    return values


def batch_for(server: DevServer, customer_id: str) -> dict[str, Any]:
    matching = [b for b in received(server) if b.get("user_identities", {}).get("customer_id") == customer_id]
    assert len(matching) == 1, received(server)
    return matching[0]


def ms(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class JSONText:
    """Equal to a string holding strict JSON (no NaN/Infinity) that decodes to ``value``."""

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        try:
            return json.loads(other, parse_constant=_reject_constant) == self.value
        except ValueError:
            return False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JSONText({self.value!r})"


def send_attributes(
    client: Client, server: DevServer, where: str, attributes: dict[str, Any]
) -> dict[str, Any]:
    """Send ``attributes`` as event properties or identify traits; return the mapped map."""
    if where == "event":
        client.track("user-1", "Attributes", attributes)
    else:
        client.identify("user-1", attributes)
    flushed(client)
    batch = only_batch(server)
    if where == "event":
        (event,) = batch["events"]
        return event["data"]["custom_attributes"]
    return batch.get("user_attributes") or {}


# -- §1 one batch per user -------------------------------------------------------------------------


def test_messages_with_the_same_identities_share_one_batch_and_users_are_separate(
    client: Client, server: DevServer
) -> None:
    client.track("user-1", "First")
    client.track("user-2", "Other user")
    client.page("user-1", "Docs", "Intro")
    client.track("user-1", "Third")
    client.identify("user-2", {"plan": "pro"})
    flushed(client)

    batches = received(server)
    assert len(batches) == 2
    one, two = batch_for(server, "user-1"), batch_for(server, "user-2")
    assert [e["data"].get("event_name", e["data"].get("screen_name")) for e in one["events"]] == [
        "First", "Docs Intro", "Third",
    ]
    assert [e["data"]["event_name"] for e in two["events"]] == ["Other user"]
    assert two["user_attributes"] == {"plan": "pro"}
    assert "user_attributes" not in one


def test_events_keep_call_order_within_a_batch(client: Client, server: DevServer) -> None:
    names = [f"Event {n:02d}" for n in range(30)]
    for name in names:
        client.track("user-1", name)
    flushed(client)
    assert [e["data"]["event_name"] for e in only_batch(server)["events"]] == names


def test_user_attributes_from_several_identifies_merge_later_value_wins_and_none_deletes(
    client: Client, server: DevServer
) -> None:
    client.identify("user-1", {"a": 1, "b": 1, "c": 1, "keep": "yes"})
    client.identify("user-1", {"a": 2, "b": None, "c": None})
    client.identify("user-1", {"c": 3})
    flushed(client)
    batch = only_batch(server)
    assert batch["user_attributes"] == {"a": 2, "c": 3, "keep": "yes"}
    assert batch["deleted_user_attributes"] == ["b"]


def test_environment_is_production_by_default(client: Client, server: DevServer) -> None:
    client.track("user-1", "Default")
    flushed(client)
    assert only_batch(server)["environment"] == "production"


def test_environment_is_development_when_configured(
    new_client: Callable[..., Client], server: DevServer
) -> None:
    client = new_client(environment="development")
    client.track("user-1", "Dev")
    flushed(client)
    assert only_batch(server)["environment"] == "development"


@pytest.mark.parametrize("environment", ["staging", "Production", "dev", "", None])
def test_environment_other_than_production_or_development_is_an_assertion_error(
    new_client: Callable[..., Client], environment: Any
) -> None:
    with pytest.raises(AssertionError):
        new_client(environment=environment)


def test_every_batch_has_a_fresh_uuid4_source_request_id(client: Client, server: DevServer) -> None:
    for user in ("user-1", "user-2", "user-3"):
        client.track(user, "Ping")
    flushed(client)
    client.track("user-1", "Ping again")
    flushed(client)

    ids = [batch["source_request_id"] for batch in received(server)]
    assert len(ids) == 4
    assert len(set(ids)) == 4
    for value in ids:
        assert isinstance(value, str)
        assert uuid.UUID(value).version == 4
        assert str(uuid.UUID(value)) == value.lower()


def test_batches_never_carry_output_only_fields(client: Client, server: DevServer) -> None:
    stamp = dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    context = {"userAgent": "UA", "app": {"name": "App"}, "library": {"name": "x", "version": "1"}}
    client.identify("user-1", {"plan": "pro"}, context=context, timestamp=stamp)
    client.track("user-2", "Tracked", {"a": 1}, context=context, timestamp=stamp)
    client.page("user-3", "Docs", "Intro", timestamp=stamp)
    client.screen("user-4", None, "Home", timestamp=stamp)
    client.group("user-5", "group-1", {"name": "Acme"}, timestamp=stamp)
    client.alias("anon-6", "user-6", timestamp=stamp)
    flushed(client)

    batches = received(server)
    assert len(batches) == 6
    for batch in batches:
        for field in FORBIDDEN_BATCH_FIELDS:
            assert field not in batch, (field, batch)


def test_identify_only_batch_is_sent_with_identities_and_attributes(
    client: Client, server: DevServer
) -> None:
    client.identify("user-1", {"plan": "pro"}, anonymous_id="anon-1")
    flushed(client)
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1", "other": "anon-1"}
    assert batch["user_attributes"] == {"plan": "pro"}
    assert not batch.get("events")


# -- §2 identities ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("user_id", "expected"), [("user-1", "user-1"), (42, "42"), (4.5, "4.5")])
def test_user_id_is_customer_id_stringified(
    client: Client, server: DevServer, user_id: Any, expected: str
) -> None:
    client.track(user_id, "Ping")
    flushed(client)
    assert only_batch(server)["user_identities"] == {"customer_id": expected}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"customer_id": "user-1", "other": "anon-1"}),
        ({"anonymous_id_identity": "other"}, {"customer_id": "user-1", "other": "anon-1"}),
        ({"anonymous_id_identity": "other_id_3"}, {"customer_id": "user-1", "other_id_3": "anon-1"}),
        ({"anonymous_id_identity": "other_id_10"}, {"customer_id": "user-1", "other_id_10": "anon-1"}),
        ({"anonymous_id_identity": None}, {"customer_id": "user-1"}),
    ],
)
def test_anonymous_id_goes_to_the_configured_identity_type(
    new_client: Callable[..., Client], server: DevServer, options: dict[str, Any], expected: dict[str, str]
) -> None:
    client = new_client(**options)
    client.track("user-1", "Ping", anonymous_id="anon-1")
    flushed(client)
    assert only_batch(server)["user_identities"] == expected


def test_anonymous_id_alone_is_the_only_identity(client: Client, server: DevServer) -> None:
    client.track(None, "Ping", anonymous_id=1234)
    flushed(client)
    assert only_batch(server)["user_identities"] == {"other": "1234"}


@pytest.mark.parametrize("identity", ["customer_id", "email", "other_id_1", "other_id_11", "OTHER", ""])
def test_invalid_anonymous_id_identity_is_an_assertion_error(
    new_client: Callable[..., Client], identity: str
) -> None:
    with pytest.raises(AssertionError):
        new_client(anonymous_id_identity=identity)


@pytest.mark.parametrize("call", ["identify", "track", "page", "screen", "group"])
def test_message_without_user_id_or_anonymous_id_is_refused(client: Client, call: str) -> None:
    arguments: dict[str, tuple[Any, ...]] = {
        "identify": (None, {"a": 1}), "track": (None, "Ev"), "page": (None, "C", "N"),
        "screen": (None, "C", "N"), "group": (None, "group-1"),
    }
    with pytest.raises(AssertionError):
        getattr(client, call)(*arguments[call])


def test_traits_email_is_the_email_identity_not_a_user_attribute(client: Client, server: DevServer) -> None:
    client.identify("user-1", {"email": "ada@example.com", "plan": "pro"})
    flushed(client)
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1", "email": "ada@example.com"}
    assert batch["user_attributes"] == {"plan": "pro"}


@pytest.mark.parametrize("call", ["identify", "track"])
def test_context_traits_email_is_the_email_identity(client: Client, server: DevServer, call: str) -> None:
    context = {"traits": {"email": "ada@example.com"}}
    if call == "identify":
        client.identify("user-1", {"plan": "pro"}, context=context)
    else:
        client.track("user-1", "Ping", context=context)
    flushed(client)
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1", "email": "ada@example.com"}
    assert "email" not in (batch.get("user_attributes") or {})


def test_email_without_at_sign_stays_a_plain_attribute(client: Client, server: DevServer) -> None:
    client.identify("user-1", {"email": "not-an-email"}, context={"traits": {"email": "also-not"}})
    flushed(client)
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1"}
    assert batch["user_attributes"] == {"email": "not-an-email"}


@pytest.mark.parametrize("key", ["mParticle", "mparticle"])
def test_integrations_user_identities_merge_into_user_identities(
    client: Client, server: DevServer, key: str
) -> None:
    extra = {"mobile_number": "+15555550100", "facebook": "fb-1", "other_id_2": "crm-9"}
    client.track("user-1", "Ping", anonymous_id="anon-1", integrations={key: {"user_identities": extra}})
    flushed(client)
    assert only_batch(server)["user_identities"] == {"customer_id": "user-1", "other": "anon-1", **extra}


def test_integrations_mpid_is_the_batch_mpid(client: Client, server: DevServer) -> None:
    client.track("user-1", "With mpid", integrations={"mParticle": {"mpid": 123}})
    client.track("user-1", "Without mpid")
    flushed(client)
    batches = received(server)
    assert len(batches) == 2
    with_mpid = [b for b in batches if "mpid" in b]
    assert len(with_mpid) == 1
    assert with_mpid[0]["mpid"] == 123
    assert [e["data"]["event_name"] for e in with_mpid[0]["events"]] == ["With mpid"]


# -- §3 event types --------------------------------------------------------------------------------


def test_identify_sends_no_event(client: Client, server: DevServer) -> None:
    client.identify("user-1", {"plan": "pro"})
    flushed(client)
    assert events(server) == []
    assert len(received(server)) == 1


def test_track_is_a_custom_event_with_name_type_other_and_properties(
    client: Client, server: DevServer
) -> None:
    client.track("user-1", "Signed Up", {"plan": "pro", "seats": 3, "trial": True})
    flushed(client)
    event = only_event(server)
    assert event["event_type"] == "custom_event"
    assert event["data"]["event_name"] == "Signed Up"
    assert event["data"]["custom_event_type"] == "other"
    assert event["data"]["custom_attributes"] == {"plan": "pro", "seats": 3, "trial": True}


@pytest.mark.parametrize(
    ("call", "category", "name", "expected"),
    [
        ("page", "Docs", "Intro", "Docs Intro"),
        ("page", "Docs", None, "Docs"),
        ("page", None, "Intro", "Intro"),
        ("page", None, None, "Loaded a Page"),
        ("screen", "Settings", "Privacy", "Settings Privacy"),
        ("screen", "Settings", None, "Settings"),
        ("screen", None, "Privacy", "Privacy"),
        ("screen", None, None, "Loaded a Screen"),
    ],
)
def test_page_and_screen_are_screen_views_named_by_category_and_name(
    client: Client, server: DevServer, call: str, category: Any, name: Any, expected: str
) -> None:
    getattr(client, call)("user-1", category, name)
    flushed(client)
    event = only_event(server)
    assert event["event_type"] == "screen_view"
    assert event["data"]["screen_name"] == expected


@pytest.mark.parametrize("call", ["page", "screen"])
@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("Docs", {"path": "/intro", "depth": 2, "category": "Docs"}),
        (None, {"path": "/intro", "depth": 2}),
    ],
)
def test_page_and_screen_custom_attributes_are_properties_plus_category(
    client: Client, server: DevServer, call: str, category: Any, expected: dict[str, Any]
) -> None:
    getattr(client, call)("user-1", category, "Intro", {"path": "/intro", "depth": 2})
    flushed(client)
    assert only_event(server)["data"]["custom_attributes"] == expected


@pytest.mark.parametrize(("group_id", "expected"), [("group-1", "group-1"), (7, "7")])
def test_group_sets_group_id_and_group_traits_as_user_attributes(
    client: Client, server: DevServer, group_id: Any, expected: str
) -> None:
    client.group("user-1", group_id, {"name": "Acme", "employees": 40})
    flushed(client)
    batch = only_batch(server)
    assert not batch.get("events")
    assert batch["user_identities"] == {"customer_id": "user-1"}
    assert batch["user_attributes"] == {"group_id": expected, "group.name": "Acme", "group.employees": 40}


def test_group_traits_email_is_a_group_attribute_not_the_user_email_identity(
    client: Client, server: DevServer
) -> None:
    client.group("user-1", "group-1", {"email": "billing@acme.example"})
    flushed(client)
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1"}
    assert batch["user_attributes"] == {"group_id": "group-1", "group.email": "billing@acme.example"}


@pytest.mark.parametrize(
    ("options", "previous_id", "user_id", "expected"),
    [
        ({}, "anon-1", "user-1", {"customer_id": "user-1", "other": "anon-1"}),
        ({}, 5, 6, {"customer_id": "6", "other": "5"}),
        ({"anonymous_id_identity": "other_id_3"}, "anon-1", "user-1",
         {"customer_id": "user-1", "other_id_3": "anon-1"}),
    ],
)
def test_alias_sends_a_batch_linking_user_id_and_previous_id(
    new_client: Callable[..., Client],
    server: DevServer,
    options: dict[str, Any],
    previous_id: Any,
    user_id: Any,
    expected: dict[str, str],
) -> None:
    client = new_client(**options)
    client.alias(previous_id, user_id)
    flushed(client)
    batch = only_batch(server)
    assert batch["user_identities"] == expected
    assert not batch.get("events")
    assert not batch.get("user_attributes")


@pytest.mark.parametrize(
    "timestamp",
    [
        dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc),
        dt.datetime(2023, 7, 8, 22, 30, 0, 125000, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(2021, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    ],
)
@pytest.mark.parametrize("call", ["track", "page", "screen"])
def test_event_timestamp_is_integer_milliseconds_of_the_given_timestamp(
    client: Client, server: DevServer, timestamp: dt.datetime, call: str
) -> None:
    if call == "track":
        client.track("user-1", "Stamped", timestamp=timestamp)
    else:
        getattr(client, call)("user-1", "C", "N", timestamp=timestamp)
    flushed(client)
    value = only_event(server)["data"]["timestamp_unixtime_ms"]
    assert type(value) is int
    assert value == ms(timestamp)


def test_naive_old_timestamp_is_taken_as_utc_as_segment_does(client: Client, server: DevServer) -> None:
    client.track("user-1", "Naive", timestamp=dt.datetime(2020, 1, 2, 3, 4, 5))
    flushed(client)
    assert only_event(server)["data"]["timestamp_unixtime_ms"] == ms(
        dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    )


def test_event_timestamp_defaults_to_now(client: Client, server: DevServer) -> None:
    before = int(time.time() * 1000)
    client.track("user-1", "Now")
    after = int(time.time() * 1000)
    flushed(client)
    value = only_event(server)["data"]["timestamp_unixtime_ms"]
    assert type(value) is int
    assert before <= value <= after


def test_source_message_id_is_the_message_id(client: Client, server: DevServer) -> None:
    client.track("user-1", "Given", message_id="msg-given-1")
    _, msg = client.track("user-1", "Default")
    flushed(client)
    given, default = events(server)
    assert given["data"]["source_message_id"] == "msg-given-1"
    assert default["data"]["source_message_id"] == msg["messageId"]
    assert uuid.UUID(default["data"]["source_message_id"]).version == 4


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        pytest.param({"latitude": 51.5072, "longitude": -0.1276}, {"latitude": 51.5072, "longitude": -0.1276},
                     id="floats"),
        pytest.param({"latitude": 0, "longitude": 10}, {"latitude": 0, "longitude": 10}, id="ints"),
        pytest.param({"latitude": 51.5}, None, id="no-longitude"),
        pytest.param({"longitude": -0.12}, None, id="no-latitude"),
        pytest.param({"latitude": "51.5", "longitude": -0.12}, None, id="string"),
        pytest.param({"latitude": 51.5, "longitude": None}, None, id="none"),
        pytest.param({"latitude": True, "longitude": 1.0}, None, id="bool"),
        pytest.param({"latitude": float("nan"), "longitude": 1.0}, None, id="nan"),
        pytest.param({"latitude": 1.0, "longitude": float("inf")}, None, id="inf"),
        pytest.param({}, None, id="empty"),
    ],
)
def test_context_location_is_event_location_only_when_both_are_numbers(
    client: Client, server: DevServer, location: dict[str, Any], expected: Any
) -> None:
    client.track("user-1", "Located", context={"location": location})
    flushed(client)
    assert only_event(server)["data"].get("location") == expected


# -- §5 attribute values ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["event", "user"])
def test_nested_dicts_are_flattened_with_dots(client: Client, server: DevServer, where: str) -> None:
    mapped = send_attributes(client, server, where, {"shop": {"city": "Paris", "geo": {"zone": 3}}, "top": 1})
    assert mapped == {"shop.city": "Paris", "shop.geo.zone": 3, "top": 1}


def test_lists_of_scalars_stay_lists_in_user_attributes(client: Client, server: DevServer) -> None:
    mapped = send_attributes(client, server, "user", {"tags": ["a", 1, True, None, 2.5]})
    assert mapped == {"tags": ["a", 1, True, None, 2.5]}


def test_lists_become_json_strings_in_event_attributes(client: Client, server: DevServer) -> None:
    mapped = send_attributes(client, server, "event", {"tags": ["a", 1, True, None, 2.5]})
    assert mapped == {"tags": JSONText(["a", 1, True, None, 2.5])}


@pytest.mark.parametrize("where", ["event", "user"])
def test_list_holding_dicts_is_json_encoded_everywhere(client: Client, server: DevServer, where: str) -> None:
    value = [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}]
    mapped = send_attributes(client, server, where, {"items": value})
    assert mapped == {"items": JSONText(value)}


class Color(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    LARGE = 3


NAMESPACE_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")

# (value, as a user attribute, as an event attribute)
CONVERSIONS = [
    pytest.param(dt.date(2024, 1, 2), "2024-01-02", "2024-01-02", id="date"),
    pytest.param(Decimal("12.5"), 12.5, 12.5, id="decimal"),
    pytest.param(Decimal("-3"), -3, -3, id="decimal-integral"),
    pytest.param(Decimal("NaN"), "NaN", "NaN", id="decimal-nan"),
    pytest.param(Decimal("Infinity"), "Infinity", "Infinity", id="decimal-infinity"),
    pytest.param(Color.RED, "red", "red", id="enum"),
    pytest.param(Size.LARGE, 3, 3, id="int-enum"),
    pytest.param(NAMESPACE_UUID, str(NAMESPACE_UUID), str(NAMESPACE_UUID), id="uuid"),
    pytest.param(b"caf\xc3\xa9", "café", "café", id="bytes"),
    pytest.param({"solo"}, ["solo"], JSONText(["solo"]), id="set"),
    pytest.param(frozenset({7}), [7], JSONText([7]), id="frozenset"),
    pytest.param((1, "two"), [1, "two"], JSONText([1, "two"]), id="tuple"),
    pytest.param(float("nan"), None, None, id="nan"),
    pytest.param(float("inf"), None, None, id="inf"),
    pytest.param(float("-inf"), None, None, id="-inf"),
    pytest.param([1.5, float("nan"), float("inf")], [1.5, None, None], JSONText([1.5, None, None]),
                 id="list-with-nan"),
    pytest.param([{"x": float("nan")}], JSONText([{"x": None}]), JSONText([{"x": None}]),
                 id="dicts-with-nan"),
]


@pytest.mark.parametrize(("value", "as_user", "as_event"), CONVERSIONS)
@pytest.mark.parametrize("where", ["event", "user"])
def test_python_values_are_converted_to_json_attribute_values(
    client: Client, server: DevServer, where: str, value: Any, as_user: Any, as_event: Any
) -> None:
    mapped = send_attributes(client, server, where, {"value": value, "other": "kept"})
    expected = as_event if where == "event" else as_user
    assert mapped.get("value") == expected
    assert mapped["other"] == "kept"
    if expected is None and where == "event":
        assert "value" in mapped  # NaN becomes null, it is not silently dropped from events
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        assert not isinstance(mapped["value"], str)
    assert losses(client) == {}


@pytest.mark.parametrize("where", ["event", "user"])
@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 1, 2, 5, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2024, 1, 1, 22, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc),
    ],
)
def test_aware_datetimes_become_iso_strings_in_utc_with_milliseconds(
    client: Client, server: DevServer, where: str, value: dt.datetime
) -> None:
    mapped = send_attributes(client, server, where, {"at": value})
    assert mapped["at"] in ("2024-01-02T03:04:05.678Z", "2024-01-02T03:04:05.678+00:00")


@pytest.mark.parametrize("where", ["event", "user"])
@pytest.mark.parametrize("bad", [b"\xff\xfe\xfa", object()], ids=["invalid-utf8", "object"])
def test_values_without_a_json_form_are_dropped_and_counted(
    client: Client, server: DevServer, where: str, bad: Any
) -> None:
    result = (
        client.track("user-1", "Bad", {"bad": bad, "good": 1})
        if where == "event"
        else client.identify("user-1", {"bad": bad, "good": 1})
    )
    assert result[0] is True
    flushed(client)
    batch = only_batch(server)
    mapped = batch["events"][0]["data"]["custom_attributes"] if where == "event" else batch["user_attributes"]
    assert mapped == {"good": 1}
    assert "bad" not in (batch.get("deleted_user_attributes") or [])
    assert losses(client) == {"invalid_value": 1}
    assert client.stats()["delivered"] == 1
    assert client.stats()["dropped"] == {}


def test_value_losses_are_logged_at_warning_at_most_once_per_kind(
    client: Client, server: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mparticle_analytics")
    for n in range(3):
        client.track("user-1", f"Bad {n}", {"bad": object(), "long": "x" * 4097})
    flushed(client)
    assert len(events(server)) == 3
    assert losses(client) == {"invalid_value": 3, "truncated_value": 3}
    warnings = [
        r for r in caplog.records if r.name.startswith("mparticle_analytics") and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert any("bad" in r.getMessage() for r in warnings)


@pytest.mark.parametrize("where", ["event", "user"])
@pytest.mark.parametrize(("length", "truncated"), [(256, 0), (257, 1)])
def test_attribute_names_over_256_characters_are_truncated(
    client: Client, server: DevServer, where: str, length: int, truncated: int
) -> None:
    name = "n" * length
    mapped = send_attributes(client, server, where, {name: "v", "short": 1})
    assert mapped == {"n" * 256: "v", "short": 1}
    assert losses(client).get("truncated_name", 0) == truncated


@pytest.mark.parametrize("where", ["event", "user"])
@pytest.mark.parametrize(("length", "truncated"), [(4096, 0), (4097, 1)])
def test_string_values_over_4096_characters_are_truncated(
    client: Client, server: DevServer, where: str, length: int, truncated: int
) -> None:
    mapped = send_attributes(client, server, where, {"text": "é" * length})
    assert mapped == {"text": "é" * 4096}
    assert losses(client).get("truncated_value", 0) == truncated


@pytest.mark.parametrize(("count", "dropped"), [(100, 0), (101, 1), (105, 5)])
def test_event_attributes_beyond_100_are_dropped(
    client: Client, server: DevServer, count: int, dropped: int
) -> None:
    properties = {f"p{n:03d}": n for n in range(count)}
    mapped = send_attributes(client, server, "event", properties)
    assert mapped == {f"p{n:03d}": n for n in range(min(count, 100))}
    assert losses(client).get("too_many_event_attributes", 0) == dropped


@pytest.mark.parametrize(("count", "dropped"), [(100, 0), (101, 1)])
@pytest.mark.parametrize("identifies", [1, 2])
def test_user_attributes_beyond_100_in_a_batch_are_dropped(
    client: Client, server: DevServer, count: int, dropped: int, identifies: int
) -> None:
    names = [f"t{n:03d}" for n in range(count)]
    split = len(names) // identifies
    for part in range(identifies):
        chunk = names[part * split:] if part == identifies - 1 else names[part * split:(part + 1) * split]
        client.identify("user-1", {name: name for name in chunk})
    flushed(client)
    assert only_batch(server)["user_attributes"] == {name: name for name in names[:100]}
    assert losses(client).get("too_many_user_attributes", 0) == dropped


@pytest.mark.parametrize(("entries", "truncated"), [(1000, 0), (1001, 1)])
def test_user_attribute_lists_beyond_1000_entries_are_truncated(
    client: Client, server: DevServer, entries: int, truncated: int
) -> None:
    mapped = send_attributes(client, server, "user", {"ids": list(range(entries))})
    assert mapped == {"ids": list(range(1000))}
    assert losses(client).get("truncated_list", 0) == truncated


@pytest.mark.parametrize(("length", "truncated"), [(512, 0), (513, 1)])
def test_user_attribute_list_entries_over_512_characters_are_truncated(
    client: Client, server: DevServer, length: int, truncated: int
) -> None:
    mapped = send_attributes(client, server, "user", {"tags": ["short", "x" * length]})
    assert mapped == {"tags": ["short", "x" * 512]}
    assert sum(losses(client).values()) == truncated
    assert losses(client).get("truncated_value", 0) == truncated


RESERVED_TRAITS = [
    ({"firstName": "Ada"}, "$firstname", "Ada"),
    ({"first_name": "Ada"}, "$firstname", "Ada"),
    ({"lastName": "Lovelace"}, "$lastname", "Lovelace"),
    ({"last_name": "Lovelace"}, "$lastname", "Lovelace"),
    ({"gender": "female"}, "$gender", "female"),
    ({"age": 36}, "$age", 36),
    ({"phone": "+44 20 7946 0000"}, "$mobile", "+44 20 7946 0000"),
    ({"address": {"city": "London"}}, "$city", "London"),
    ({"address": {"state": "Greater London"}}, "$state", "Greater London"),
    ({"address": {"postalCode": "W1A 1AA"}}, "$zip", "W1A 1AA"),
    ({"address": {"postal_code": "W1A 1AA"}}, "$zip", "W1A 1AA"),
    ({"address": {"country": "UK"}}, "$country", "UK"),
    ({"address": {"street": "1 Main St"}}, "$address", "1 Main St"),
]


@pytest.mark.parametrize(("traits", "attribute", "value"), RESERVED_TRAITS)
def test_reserved_traits_become_mparticle_reserved_user_attributes(
    client: Client, server: DevServer, traits: dict[str, Any], attribute: str, value: Any
) -> None:
    client.identify("user-1", traits)
    flushed(client)
    assert only_batch(server)["user_attributes"] == {attribute: value}


def test_all_reserved_traits_together(client: Client, server: DevServer) -> None:
    client.identify("user-1", {
        "firstName": "Ada", "lastName": "Lovelace", "gender": "female", "age": 36, "phone": "555",
        "address": {"city": "London", "state": "LDN", "postalCode": "W1", "country": "UK", "street": "1 St"},
        "plan": "pro",
    })
    flushed(client)
    assert only_batch(server)["user_attributes"] == {
        "$firstname": "Ada", "$lastname": "Lovelace", "$gender": "female", "$age": 36, "$mobile": "555",
        "$city": "London", "$state": "LDN", "$zip": "W1", "$country": "UK", "$address": "1 St",
        "plan": "pro",
    }


@pytest.mark.parametrize(
    ("traits", "deleted"),
    [
        ({"plan": None, "seats": 3}, ["plan"]),
        ({"firstName": None, "seats": 3}, ["$firstname"]),
        ({"address": {"city": None}, "seats": 3}, ["$city"]),
        ({"prefs": {"theme": None}, "seats": 3}, ["prefs.theme"]),
    ],
)
def test_none_trait_in_identify_goes_to_deleted_user_attributes(
    client: Client, server: DevServer, traits: dict[str, Any], deleted: list[str]
) -> None:
    client.identify("user-1", traits)
    flushed(client)
    batch = only_batch(server)
    assert batch["user_attributes"] == {"seats": 3}
    assert batch["deleted_user_attributes"] == deleted


# -- §6 context and per-call overrides -------------------------------------------------------------

CONTEXT_ROWS = [
    pytest.param({"ip": "203.0.113.7"}, {"ip": "203.0.113.7"}, id="ipv4"),
    pytest.param({"ip": "2001:db8::1"}, {"ip": "2001:db8::1"}, id="ipv6"),
    pytest.param({"userAgent": "Mozilla/5.0 (X11)"},
                 {"device_info": {"http_header_user_agent": "Mozilla/5.0 (X11)"}}, id="user-agent"),
    pytest.param({"device": {"type": "ios", "advertisingId": UUID_A}},
                 {"device_info": {"ios_advertising_id": UUID_A}}, id="ios-advertising-id"),
    pytest.param({"device": {"type": "android", "advertisingId": UUID_A}},
                 {"device_info": {"android_advertising_id": UUID_A}}, id="android-advertising-id"),
    pytest.param({"device": {"type": "ios", "id": UUID_B}}, {"device_info": {"ios_idfv": UUID_B}},
                 id="ios-id"),
    pytest.param({"device": {"type": "android", "id": "8af8770a27cfd182"}},
                 {"device_info": {"android_uuid": "8af8770a27cfd182"}}, id="android-id"),
    pytest.param({"device": {"adTrackingEnabled": True}}, {"device_info": {"limit_ad_tracking": False}},
                 id="ad-tracking-enabled"),
    pytest.param({"device": {"adTrackingEnabled": False}}, {"device_info": {"limit_ad_tracking": True}},
                 id="ad-tracking-disabled"),
    pytest.param({"device": {"manufacturer": "Apple", "model": "iPhone15,2", "name": "Ada's phone",
                             "token": "tok-1"}},
                 {"device_info": {"device_manufacturer": "Apple", "device_model": "iPhone15,2",
                                  "device": "Ada's phone", "push_token": "tok-1"}}, id="device-facts"),
    pytest.param({"os": {"name": "iOS", "version": "17.1"}},
                 {"device_info": {"platform": "iOS", "os_version": "17.1"}}, id="os-ios"),
    pytest.param({"os": {"name": "IOS"}}, {"device_info": {"platform": "iOS"}}, id="os-ios-upper"),
    pytest.param({"os": {"name": "android", "version": "14"}},
                 {"device_info": {"platform": "Android", "os_version": "14"}}, id="os-android"),
    pytest.param({"os": {"name": "ANDROID"}}, {"device_info": {"platform": "Android"}},
                 id="os-android-upper"),
    pytest.param({"os": {"name": "Windows", "version": "11"}}, {"device_info": {"os_version": "11"}},
                 id="os-other"),
    pytest.param({"os": {"name": "Mac OS X"}}, {}, id="os-other-no-version"),
    pytest.param({"locale": "en-US"}, {"device_info": {"locale_language": "en", "locale_country": "US"}},
                 id="locale"),
    pytest.param({"screen": {"width": 390, "height": 844, "density": 3}},
                 {"device_info": {"screen_width": 390, "screen_height": 844, "screen_dpi": 3}}, id="screen"),
    pytest.param({"network": {"carrier": "T-Mobile"}}, {"device_info": {"network_carrier": "T-Mobile"}},
                 id="carrier"),
    pytest.param({"app": {"name": "Shop", "version": "2.3.1", "build": "2301",
                          "namespace": "com.example.shop"}},
                 {"application_info": {"application_name": "Shop", "application_version": "2.3.1",
                                       "application_build_number": "2301", "package": "com.example.shop"}},
                 id="app"),
    pytest.param({"device": {"type": "ios", "advertisingId": "not-a-uuid"}}, {},
                 id="advertising-id-not-uuid"),
]


@pytest.mark.parametrize(("context", "expected"), CONTEXT_ROWS)
def test_context_maps_to_batch_ip_device_info_and_application_info(
    client: Client, server: DevServer, context: dict[str, Any], expected: dict[str, Any]
) -> None:
    client.track("user-1", "In context", context=context)
    flushed(client)
    batch = only_batch(server)
    assert {k: batch[k] for k in ("ip", "device_info", "application_info", "mpid") if k in batch} == expected
    assert batch["user_identities"] == {"customer_id": "user-1"}


def test_messages_without_identities_keep_their_own_batch_facts(
    make_client: Callable[..., Client], server: DevServer
) -> None:
    client = make_client(anonymous_id_identity=None)  # an anonymousId alone is then no identity
    client.track(anonymous_id="anon-1", event="First", context={"ip": "1.1.1.1"})
    client.track(anonymous_id="anon-2", event="Second", context={"ip": "2.2.2.2"})
    flushed(client)
    ips = {batch["events"][0]["data"]["event_name"]: batch.get("ip") for batch in received(server)}
    assert ips == {"First": "1.1.1.1", "Second": "2.2.2.2"}


@pytest.mark.parametrize("ip", ["999.1.1.1", "not-an-ip", "10.0.0", "2001:db8::zz", 12345])
def test_invalid_context_ip_is_dropped_and_counted(client: Client, server: DevServer, ip: Any) -> None:
    client.track("user-1", "Bad ip", context={"ip": ip})
    flushed(client)
    assert "ip" not in only_batch(server)
    assert losses(client) == {"invalid_value": 1}


@pytest.mark.parametrize(
    ("screen", "expected"),
    [
        pytest.param({"width": 390.0, "height": 844.0, "density": 3.0},
                     {"screen_width": 390, "screen_height": 844, "screen_dpi": 3}, id="floats"),
        pytest.param({"width": 390, "height": 844, "density": 2},
                     {"screen_width": 390, "screen_height": 844, "screen_dpi": 2}, id="ints"),
        pytest.param({"width": float("nan"), "height": 844, "density": float("inf")},
                     {"screen_height": 844}, id="not-finite"),
    ],
)
def test_screen_dimensions_are_sent_as_integers(
    client: Client, server: DevServer, screen: dict[str, Any], expected: dict[str, int]
) -> None:
    client.track("user-1", "Screen", context={"screen": screen})
    flushed(client)
    batch = only_batch(server)
    assert len(batch["events"]) == 1
    device = batch["device_info"]
    assert device == expected
    assert all(type(value) is int for value in device.values())


def test_context_fields_without_an_mparticle_place_are_not_sent(client: Client, server: DevServer) -> None:
    context = {
        "library": {"name": "lib-sentinel", "version": "9.9.9-sentinel"},
        "timezone": "tz-sentinel/Nowhere",
        "campaign": {"name": "campaign-sentinel", "source": "src-sentinel"},
        "page": {"url": "https://page-sentinel.example/", "title": "title-sentinel"},
        "referrer": {"type": "referrer-sentinel"},
        "groupId": "group-sentinel",
    }
    client.track("user-1", "Context", {"a": 1}, context=context)
    client.identify("user-1", {"b": 2}, context=context)
    flushed(client)
    batch = only_batch(server)
    assert "sentinel" not in json.dumps(batch)
    assert set(batch) <= {"environment", "source_request_id", "user_identities", "user_attributes", "events"}
    assert batch["user_attributes"] == {"b": 2}
    assert batch["events"][0]["data"]["custom_attributes"] == {"a": 1}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param({"app": {"version": "1.0"}}, {"app": {"version": "2.0"}}, id="app-version"),
        pytest.param({"device": {"model": "Pixel 8"}}, {"device": {"model": "Pixel 9"}}, id="device-model"),
        pytest.param({"os": {"name": "iOS"}}, {"os": {"name": "Android"}}, id="platform"),
        pytest.param({"ip": "203.0.113.1"}, {"ip": "203.0.113.2"}, id="ip"),
        pytest.param({"userAgent": "UA-1"}, {}, id="user-agent-or-none"),
    ],
)
def test_messages_with_different_device_or_app_facts_go_to_different_batches(
    client: Client, server: DevServer, first: dict[str, Any], second: dict[str, Any]
) -> None:
    client.track("user-1", "A1", context=first)
    client.track("user-1", "B1", context=second)
    client.track("user-1", "A2", context=first)
    flushed(client)
    batches = received(server)
    assert len(batches) == 2
    by_names = sorted([e["data"]["event_name"] for e in b["events"]] for b in batches)
    assert by_names == [["A1", "A2"], ["B1"]]


@pytest.mark.parametrize(
    "integrations",
    [
        {"mParticle": False},
        {"mparticle": False},
        {"MPARTICLE": False},
        {"All": False},
        {"all": False},
        {"All": False, "Amplitude": True},
        {"All": True, "mParticle": False},
        {"ALL": False, "mparticle": False},
    ],
    ids=json.dumps,
)
@pytest.mark.parametrize("call", ["track", "identify", "page"])
def test_integrations_switched_off_for_mparticle_are_not_sent(
    client: Client, server: DevServer, integrations: dict[str, Any], call: str
) -> None:
    if call == "track":
        result = client.track("user-skipped", "Skipped", integrations=integrations)
    elif call == "identify":
        result = client.identify("user-skipped", {"a": 1}, integrations=integrations)
    else:
        result = client.page("user-skipped", "C", "N", integrations=integrations)
    assert result[0] is True
    assert result[1]["userId"] == "user-skipped"
    assert result[1]["type"] == call
    client.track("user-sentinel", "Sentinel")
    flushed(client)
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-sentinel"}


@pytest.mark.parametrize(
    "integrations",
    [
        {"All": False, "mParticle": True},
        {"all": False, "mparticle": True},
        {"All": True},
        {"mParticle": True},
        {"Amplitude": False},
        {},
    ],
    ids=json.dumps,
)
def test_integrations_enabling_mparticle_are_sent(
    client: Client, server: DevServer, integrations: dict[str, Any]
) -> None:
    result = client.track("user-1", "Sent", integrations=integrations)
    assert result[0] is True
    flushed(client)
    assert only_event(server)["data"]["event_name"] == "Sent"


@pytest.mark.parametrize(
    "event_type",
    ["navigation", "location", "search", "transaction", "user_content", "user_preference", "social",
     "other", "media"],
)
@pytest.mark.parametrize("key", ["mParticle", "mparticle"])
def test_custom_event_type_override_is_used_when_valid(
    client: Client, server: DevServer, event_type: str, key: str
) -> None:
    client.track("user-1", "Typed", integrations={key: {"custom_event_type": event_type}})
    flushed(client)
    assert only_event(server)["data"]["custom_event_type"] == event_type
    assert losses(client) == {}


def test_an_event_name_maps_the_same_however_often_and_however_it_was_sent_before(
    client: Client, server: DevServer
) -> None:
    long_name = "E" * 300
    for _ in range(2):
        client.track("user-1", "Typed")
        client.track("user-1", "Typed", integrations={"mParticle": {"custom_event_type": "search"}})
        client.track("user-1", long_name)
        client.track("user-1", "Product Viewed", {"product_id": "p1"})
    flushed(client)
    sent = [(e["event_type"], e["data"]["event_name"], e["data"].get("custom_event_type"))
            for e in events(server)]
    assert sent == [
        ("custom_event", "Typed", "other"), ("custom_event", "Typed", "search"),
        ("custom_event", "E" * 256, "other"), ("commerce_event", "Product Viewed", None),
    ] * 2
    assert losses(client) == {"truncated_name": 2}


@pytest.mark.parametrize("event_type", ["bogus", "Navigation", "add_to_cart", "", 3])
def test_invalid_custom_event_type_override_is_other_and_counted(
    client: Client, server: DevServer, event_type: Any
) -> None:
    client.track("user-1", "Typed", integrations={"mParticle": {"custom_event_type": event_type}})
    flushed(client)
    assert only_event(server)["data"]["custom_event_type"] == "other"
    assert losses(client) == {"invalid_override": 1}


@pytest.mark.parametrize("call", ["track", "page", "screen"])
def test_custom_flags_override_is_sent_on_the_event(client: Client, server: DevServer, call: str) -> None:
    flags = {"Google.Category": "Video", "Facebook.EventSourceUrl": "https://example.com/x"}
    integrations = {"mParticle": {"custom_flags": flags}}
    if call == "track":
        client.track("user-1", "Flagged", integrations=integrations)
    else:
        getattr(client, call)("user-1", "C", "N", integrations=integrations)
    flushed(client)
    assert only_event(server)["data"]["custom_flags"] == flags


def test_unknown_mparticle_option_keys_are_ignored(client: Client, server: DevServer) -> None:
    integrations = {"mParticle": {"unknown-sentinel": "zzz-sentinel"}}
    client.track("user-1", "Plain", {"a": 1}, integrations=integrations)
    flushed(client)
    batch = only_batch(server)
    assert "sentinel" not in json.dumps(batch)
    (event,) = batch["events"]
    assert event["data"]["event_name"] == "Plain"
    assert event["data"]["custom_event_type"] == "other"
    assert event["data"]["custom_attributes"] == {"a": 1}
    assert losses(client) == {}


def test_other_destinations_options_are_ignored(client: Client, server: DevServer) -> None:
    options = {"custom_event_type": "search", "mpid": 99, "custom_flags": {"k": "v"},
               "user_identities": {"facebook": "fb"}}
    client.track("user-1", "Plain", integrations={"Amplitude": options, "mParticleClone": options})
    flushed(client)
    batch = only_batch(server)
    assert "mpid" not in batch
    assert batch["user_identities"] == {"customer_id": "user-1"}
    (event,) = batch["events"]
    assert event["data"]["custom_event_type"] == "other"
    assert "custom_flags" not in event["data"]

