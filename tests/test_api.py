"""The public API against api.md: Segment 2.4.0's signatures, returns and errors, plus mParticle's needs.

Every delivery goes over real HTTP to the ``server`` fixture (conftest.py), whose
batches are checked against mParticle's schema when each test ends. Pure
message-shape checks use ``send=False``. Nothing sleeps to synchronise: tests
wait on ``flush(timeout)`` returning True or on ``server.wait_for``.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import inspect
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from conftest import KEY, SECRET, events, only_batch, only_event, received

import mparticle_analytics
from mparticle_analytics import APIError, Client
from mparticle_analytics.devserver import DevServer
from mparticle_analytics.transport import host_for_key
from mparticle_analytics.version import VERSION

MakeClient = Callable[..., Client]
Message = dict[str, Any]

LOGGER = "mparticle_analytics"
LIBRARY = {"name": "mparticle-analytics-python", "version": VERSION}
#: How Segment's ``require`` prints ``ID_TYPES = (numbers.Number, str)``.
ID_TYPES = "(<class 'numbers.Number'>, <class 'str'>)"
TS = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
TS_ISO = "2024-01-02T03:04:05.678+00:00"
TS_MS = 1704164645678
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
BASIC_TOKEN = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()

#: Segment 2.4.0's ``Client`` parameters, in order, with their defaults.
SEGMENT_CLIENT_PARAMETERS = [
    ("write_key", None), ("host", None), ("debug", False), ("max_queue_size", 10000),
    ("send", True), ("on_error", None), ("gzip", False), ("max_retries", 10),
    ("sync_mode", False), ("timeout", 15), ("proxies", None), ("thread", 1),
    ("upload_size", 100), ("upload_interval", 0.5), ("log_handler", None),
    ("oauth_client_id", None), ("oauth_client_key", None), ("oauth_key_id", None),
    ("oauth_auth_server", "https://oauth2.segment.io"), ("oauth_scope", "tracking_api:write"),
    ("max_total_backoff_duration", 43200), ("max_rate_limit_duration", 1800),
]

#: Segment 2.4.0's method parameters, in order (all positional-or-keyword, default None).
SEGMENT_METHOD_PARAMETERS = {
    "identify": ["user_id", "traits", "context", "timestamp", "anonymous_id", "integrations", "message_id"],
    "track": ["user_id", "event", "properties", "context", "timestamp", "anonymous_id", "integrations",
              "message_id"],
    "alias": ["previous_id", "user_id", "context", "timestamp", "integrations", "message_id"],
    "group": ["user_id", "group_id", "traits", "context", "timestamp", "anonymous_id", "integrations",
              "message_id"],
    "page": ["user_id", "category", "name", "properties", "context", "timestamp", "anonymous_id",
             "integrations", "message_id"],
    "screen": ["user_id", "category", "name", "properties", "context", "timestamp", "anonymous_id",
               "integrations", "message_id"],
}

#: The keys of the message each call returns (Segment 2.4.0 client.py).
SEGMENT_KEYS = {
    "identify": {"integrations", "anonymousId", "timestamp", "context", "type", "userId", "traits",
                 "messageId"},
    "track": {"integrations", "anonymousId", "properties", "timestamp", "context", "userId", "type",
              "event", "messageId"},
    "alias": {"integrations", "previousId", "timestamp", "context", "userId", "type", "messageId",
              "anonymousId"},
    "group": {"integrations", "anonymousId", "timestamp", "groupId", "context", "userId", "traits",
              "type", "messageId"},
    "page": {"integrations", "anonymousId", "properties", "timestamp", "category", "context", "userId",
             "type", "name", "messageId"},
    "screen": {"integrations", "anonymousId", "properties", "timestamp", "category", "context",
               "userId", "type", "name", "messageId"},
}

#: The smallest valid call of each type.
MINIMAL_CALLS: dict[str, Callable[[Client], tuple[bool, Message]]] = {
    "identify": lambda c: c.identify("u1"),
    "track": lambda c: c.track("u1", "Signed Up"),
    "alias": lambda c: c.alias("prev-1", "u1"),
    "group": lambda c: c.group("u1", "g1"),
    "page": lambda c: c.page("u1"),
    "screen": lambda c: c.screen("u1"),
}


#: Handlers stay alive for the whole session, so no new handler ever reuses a gone one's ``id()``
#: (the library remembers handlers by id; only the last test, written for that, lets them go).
_HANDLERS: list[logging.Handler] = []


class Collecting(logging.Handler):
    """A handler that keeps what it is given."""

    def __init__(self, *, keep_alive: bool = True) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        if keep_alive:
            _HANDLERS.append(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def offline(make_client: MakeClient) -> Client:
    """A client that builds messages and sends nothing."""
    return make_client(send=False)


@pytest.fixture
def no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MPARTICLE_API_KEY", raising=False)
    monkeypatch.delenv("MPARTICLE_API_SECRET", raising=False)


@pytest.fixture
def india_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC+05:30, so "local" and "UTC" give different offsets."""
    monkeypatch.setenv("TZ", "IST-05:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def module(server: DevServer) -> Any:
    """The module face pointed at the server, with no default client yet."""
    mparticle_analytics.default_client = None
    mparticle_analytics.write_key = KEY
    mparticle_analytics.secret = SECRET
    mparticle_analytics.host = server.url
    mparticle_analytics.upload_interval = 0.05
    return mparticle_analytics


def library_records(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= level]


# -- signatures ---------------------------------------------------------------------------------------


def test_client_positional_parameters_follow_segment_order() -> None:
    parameters = list(inspect.signature(Client).parameters.values())
    positional = parameters[: len(SEGMENT_CLIENT_PARAMETERS)]
    assert [(p.name, p.default) for p in positional] == SEGMENT_CLIENT_PARAMETERS
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in positional)
    rest = parameters[len(SEGMENT_CLIENT_PARAMETERS):]
    assert {"secret", "environment"} <= {p.name for p in rest}
    assert all(p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD) for p in rest)


def test_client_new_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Client(*[default for _, default in SEGMENT_CLIENT_PARAMETERS], SECRET)  # type: ignore[misc]


def test_client_positional_arguments_land_in_segment_fields(
    server: DevServer, own: Callable[[Client], Client]
) -> None:
    errors: list[Exception] = []

    def on_error(exc: Exception, batch: list[Message]) -> None:
        errors.append(exc)

    client = own(Client(
        KEY, server.url + "/", False, 7, True, on_error, True, 3, False, 9, None, 2, 50, 0.05, None,
        None, None, None, "https://oauth2.segment.io", "tracking_api:write", 100, 50, secret=SECRET,
    ))
    assert (client.write_key, client.host, client.debug, client.queue.maxsize) == (KEY, server.url, False, 7)
    assert (client.send, client.on_error, client.gzip, client.sync_mode) == (True, on_error, True, False)
    assert (client.timeout, client.proxies) == (9, None)
    assert client.track("u1", "Signed Up")[0] is True
    assert len(client.consumers) == 2
    assert client.flush(5) is True
    assert server.requests()[0]["content_encoding"] == "gzip"
    assert only_event(server)["data"]["event_name"] == "Signed Up"
    assert errors == []


@pytest.mark.parametrize("method", sorted(SEGMENT_METHOD_PARAMETERS))
def test_method_parameters_follow_segment_order(method: str) -> None:
    parameters = list(inspect.signature(getattr(Client, method)).parameters.values())[1:]
    assert [p.name for p in parameters] == SEGMENT_METHOD_PARAMETERS[method]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters)
    assert all(p.default is None for p in parameters)


@pytest.mark.parametrize("method", ["flush", "join", "shutdown"])
def test_lifecycle_methods_take_no_required_argument(method: str) -> None:
    parameters = list(inspect.signature(getattr(Client, method)).parameters.values())[1:]
    assert all(p.default is not inspect.Parameter.empty for p in parameters)


CONTEXT = {"userAgent": "agent/1.0"}
CONTEXT_SENT = {**CONTEXT, "library": LIBRARY}
NO_ID = f"user_id or anonymous_id must have {ID_TYPES}, got: None"
MPID = {"mParticle": {"mpid": 42}}


def test_identify_positional_arguments_follow_segment_order(server: DevServer, client: Client) -> None:
    ok, msg = client.identify("user-1", {"plan": "pro"}, CONTEXT, TS, "anon-1", MPID, "msg-1")
    assert ok is True
    assert (msg["userId"], msg["traits"], msg["context"]) == ("user-1", {"plan": "pro"}, CONTEXT_SENT)
    assert (msg["timestamp"], msg["anonymousId"], msg["integrations"]) == (TS_ISO, "anon-1", MPID)
    assert msg["messageId"] == "msg-1"
    assert client.flush(5) is True
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1", "other": "anon-1"}
    assert batch["user_attributes"] == {"plan": "pro"}
    assert (batch["device_info"]["http_header_user_agent"], batch["mpid"]) == ("agent/1.0", 42)


def test_track_positional_arguments_follow_segment_order(server: DevServer, client: Client) -> None:
    integrations = {"mParticle": {"custom_event_type": "navigation"}}
    ok, msg = client.track(
        "user-1", "Signed Up", {"plan": "pro"}, CONTEXT, TS, "anon-1", integrations, "msg-1"
    )
    assert ok is True
    assert (msg["userId"], msg["event"], msg["properties"]) == ("user-1", "Signed Up", {"plan": "pro"})
    assert (msg["context"], msg["timestamp"], msg["anonymousId"]) == (CONTEXT_SENT, TS_ISO, "anon-1")
    assert (msg["integrations"], msg["messageId"]) == (integrations, "msg-1")
    assert client.flush(5) is True
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1", "other": "anon-1"}
    assert batch["device_info"]["http_header_user_agent"] == "agent/1.0"
    data = only_event(server)["data"]
    assert (data["event_name"], data["custom_attributes"]) == ("Signed Up", {"plan": "pro"})
    assert (data["timestamp_unixtime_ms"], data["source_message_id"]) == (TS_MS, "msg-1")
    assert data["custom_event_type"] == "navigation"


def test_alias_positional_arguments_follow_segment_order(server: DevServer, client: Client) -> None:
    ok, msg = client.alias("prev-1", "user-1", CONTEXT, TS, MPID, "msg-1")
    assert ok is True
    assert (msg["previousId"], msg["userId"], msg["context"]) == ("prev-1", "user-1", CONTEXT_SENT)
    assert (msg["timestamp"], msg["integrations"], msg["messageId"]) == (TS_ISO, MPID, "msg-1")
    assert msg["anonymousId"] is None
    assert client.flush(5) is True
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1", "other": "prev-1"}
    assert (batch["device_info"]["http_header_user_agent"], batch["mpid"]) == ("agent/1.0", 42)


def test_group_positional_arguments_follow_segment_order(server: DevServer, client: Client) -> None:
    ok, msg = client.group("user-1", "group-9", {"name": "Acme"}, CONTEXT, TS, "anon-1", MPID, "msg-1")
    assert ok is True
    assert (msg["userId"], msg["groupId"], msg["traits"]) == ("user-1", "group-9", {"name": "Acme"})
    assert (msg["context"], msg["timestamp"], msg["anonymousId"]) == (CONTEXT_SENT, TS_ISO, "anon-1")
    assert (msg["integrations"], msg["messageId"]) == (MPID, "msg-1")
    assert client.flush(5) is True
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1", "other": "anon-1"}
    assert batch["user_attributes"]["group_id"] == "group-9"
    assert "Acme" in batch["user_attributes"].values()
    assert (batch["device_info"]["http_header_user_agent"], batch["mpid"]) == ("agent/1.0", 42)


@pytest.mark.parametrize("method", ["page", "screen"])
def test_page_and_screen_positional_arguments_follow_segment_order(
    server: DevServer, client: Client, method: str
) -> None:
    flags = {"mParticle": {"custom_flags": {"flag": "on"}}}
    ok, msg = getattr(client, method)(
        "user-1", "Docs", "Python", {"section": "api"}, CONTEXT, TS, "anon-1", flags, "msg-1"
    )
    assert ok is True
    assert (msg["type"], msg["userId"], msg["category"], msg["name"]) == (method, "user-1", "Docs", "Python")
    assert (msg["properties"], msg["context"]) == ({"section": "api"}, CONTEXT_SENT)
    assert msg["timestamp"] == TS_ISO
    assert (msg["anonymousId"], msg["integrations"], msg["messageId"]) == ("anon-1", flags, "msg-1")
    assert client.flush(5) is True
    batch = only_batch(server)
    assert batch["user_identities"] == {"customer_id": "user-1", "other": "anon-1"}
    assert batch["device_info"]["http_header_user_agent"] == "agent/1.0"
    data = only_event(server)["data"]
    assert data["screen_name"] == "Docs Python"  # category first, then name
    assert data["custom_attributes"]["section"] == "api"
    assert (data["timestamp_unixtime_ms"], data["source_message_id"]) == (TS_MS, "msg-1")
    assert data["custom_flags"] == {"flag": "on"}


def test_alias_rejects_anonymous_id(offline: Client) -> None:
    with pytest.raises(TypeError):
        offline.alias("prev-1", "user-1", anonymous_id="anon-1")  # type: ignore[call-arg]


# -- returns ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MINIMAL_CALLS))
def test_calls_return_true_and_segment_shaped_message(offline: Client, kind: str) -> None:
    result = MINIMAL_CALLS[kind](offline)
    assert isinstance(result, tuple) and len(result) == 2
    ok, msg = result
    assert ok is True
    assert set(msg) == SEGMENT_KEYS[kind]
    assert msg["type"] == kind
    assert msg["integrations"] == {}
    assert msg["context"] == {"library": LIBRARY}
    assert isinstance(msg["timestamp"], str) and isinstance(msg["messageId"], str)


@pytest.mark.parametrize("kind", sorted(MINIMAL_CALLS))
def test_calls_return_true_and_message_when_delivering(server: DevServer, client: Client, kind: str) -> None:
    ok, msg = MINIMAL_CALLS[kind](client)
    assert ok is True
    assert set(msg) == SEGMENT_KEYS[kind]
    assert client.flush(5) is True
    assert len(received(server)) == 1


def test_default_timestamp_is_utc_now_with_milliseconds(offline: Client) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    _, msg = offline.track("u1", "Signed Up")
    after = dt.datetime.now(dt.timezone.utc)
    assert ISO_MS.match(msg["timestamp"]), msg["timestamp"]
    assert msg["timestamp"].endswith("+00:00")
    stamp = dt.datetime.fromisoformat(msg["timestamp"])
    assert before - dt.timedelta(milliseconds=1) <= stamp <= after


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (dt.datetime(2020, 1, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5))),
         "2020-01-01T12:00:00.123+05:00"),
        (dt.datetime(2014, 9, 3, tzinfo=dt.timezone.utc), "2014-09-03T00:00:00.000+00:00"),
        (dt.datetime(2014, 9, 3, 1, 2, 3, 999999), "2014-09-03T01:02:03.999+00:00"),  # naive and old: UTC
    ],
    ids=["aware-keeps-offset", "aware-utc-zero-millis", "naive-old-is-utc"],
)
def test_timestamp_is_iso_with_milliseconds(
    offline: Client, india_time: None, timestamp: dt.datetime, expected: str
) -> None:
    assert offline.track("u1", "Signed Up", timestamp=timestamp)[1]["timestamp"] == expected


@pytest.mark.parametrize("offset", [dt.timedelta(0), dt.timedelta(hours=1)], ids=["now", "future"])
def test_naive_recent_timestamp_is_local_time(
    offline: Client, india_time: None, offset: dt.timedelta
) -> None:
    naive = dt.datetime.now() + offset
    _, msg = offline.track("u1", "Signed Up", timestamp=naive)
    assert msg["timestamp"] == naive.isoformat(timespec="milliseconds") + "+05:30"


def test_message_id_defaults_to_uuid4_string(offline: Client) -> None:
    first = offline.track("u1", "Signed Up")[1]["messageId"]
    second = offline.track("u1", "Signed Up")[1]["messageId"]
    assert isinstance(first, str) and uuid.UUID(first).version == 4
    assert str(uuid.UUID(first)) == first
    assert first != second


@pytest.mark.parametrize(
    ("message_id", "expected"),
    [(123, "123"), ("", ""), ("abc", "abc"),
     (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678")],
    ids=["int", "empty", "str", "uuid"],
)
def test_message_id_is_stringified(offline: Client, message_id: Any, expected: str) -> None:
    assert offline.track("u1", "Signed Up", message_id=message_id)[1]["messageId"] == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(42, "42"), (1.5, "1.5"), (True, "True"), ("u1", "u1")],
    ids=["int", "float", "bool", "str"],
)
def test_user_and_anonymous_ids_are_stringified(offline: Client, value: Any, expected: str) -> None:
    assert offline.identify(value)[1]["userId"] == expected
    _, msg = offline.track(None, "Signed Up", anonymous_id=value)
    assert (msg["userId"], msg["anonymousId"]) == (None, expected)
    _, msg = offline.alias("prev-1", value)
    assert msg["userId"] == expected


def test_group_and_previous_ids_are_not_stringified(offline: Client) -> None:
    _, msg = offline.group("u1", 77)
    assert msg["groupId"] == 77 and isinstance(msg["groupId"], int)
    _, msg = offline.alias(88, "u1")
    assert msg["previousId"] == 88 and isinstance(msg["previousId"], int)


def test_context_library_names_this_library(offline: Client) -> None:
    context = {"ip": "10.1.2.3", "library": {"name": "someone-else", "version": "9"}}
    _, msg = offline.track("u1", "Signed Up", context=context)
    assert msg["context"]["library"] == {"name": "mparticle-analytics-python", "version": VERSION}
    assert msg["context"]["ip"] == "10.1.2.3"
    assert mparticle_analytics.VERSION == mparticle_analytics.__version__ == VERSION


def test_caller_context_is_not_mutated(offline: Client) -> None:
    context: dict[str, Any] = {"ip": "10.1.2.3", "traits": {"plan": "pro"}}
    for call in (
        lambda: offline.track("u1", "Signed Up", context=context),
        lambda: offline.identify("u1", context=context),
        lambda: offline.alias("p", "u1", context=context),
        lambda: offline.group("u1", "g1", context=context),
        lambda: offline.page("u1", context=context),
        lambda: offline.screen("u1", context=context),
    ):
        _, msg = call()
        assert msg["context"]["library"] == LIBRARY
        assert context == {"ip": "10.1.2.3", "traits": {"plan": "pro"}}


def test_changing_a_returned_message_changes_no_other(offline: Client) -> None:
    _, first = offline.track("u1", "One")
    first["context"]["library"]["version"] = "v" * 40000
    _, second = offline.track("u1", "Two")
    assert second["context"]["library"] == LIBRARY


def test_caller_properties_and_traits_are_not_mutated(offline: Client) -> None:
    properties, traits = {"plan": "pro"}, {"name": "Ada"}
    offline.track("u1", "Signed Up", properties)
    offline.identify("u1", traits)
    assert (properties, traits) == ({"plan": "pro"}, {"name": "Ada"})


def test_changes_made_after_the_call_do_not_reach_mparticle(
    server: DevServer, make_client: MakeClient
) -> None:
    client = make_client(upload_interval=60)  # nothing is delivered before the flush below
    properties: dict[str, Any] = {"plan": "pro", "tags": ["a"], "address": {"city": "Oslo"}}
    context: dict[str, Any] = {"ip": "10.1.2.3"}
    client.track("u1", "Signed Up", properties, context=context)
    properties["plan"] = "free"
    properties["tags"].append("b")
    properties["address"]["city"] = "Bergen"
    context["ip"] = "10.9.9.9"
    assert client.flush(5) is True
    batch = only_batch(server)
    assert batch["events"][0]["data"]["custom_attributes"] == {
        "plan": "pro", "tags": '["a"]', "address.city": "Oslo"
    }
    assert batch["ip"] == "10.1.2.3"


# -- validation ---------------------------------------------------------------------------------------

Call = Callable[[Client], Any]

VALIDATION_ERRORS: list[tuple[str, Call, str]] = [
    ("identify-no-id", lambda c: c.identify(), NO_ID),
    ("identify-zero-id", lambda c: c.identify(0), NO_ID),
    ("identify-empty-id", lambda c: c.identify(""), NO_ID),
    ("identify-list-id", lambda c: c.identify(["u"]),
     f"user_id or anonymous_id must have {ID_TYPES}, got: ['u']"),
    ("track-no-id", lambda c: c.track(None, "e"), NO_ID),
    ("track-zero-id", lambda c: c.track(0, "e"), NO_ID),
    ("group-no-id", lambda c: c.group(None, "g"), NO_ID),
    ("page-no-id", lambda c: c.page(), NO_ID),
    ("screen-no-id", lambda c: c.screen(""), NO_ID),
    ("identify-traits", lambda c: c.identify("u", [1]), "traits must have <class 'dict'>, got: [1]"),
    ("group-traits", lambda c: c.group("u", "g", "x"), "traits must have <class 'dict'>, got: x"),
    ("track-properties", lambda c: c.track("u", "e", [1]), "properties must have <class 'dict'>, got: [1]"),
    ("page-properties", lambda c: c.page("u", properties="x"), "properties must have <class 'dict'>, got: x"),
    ("screen-properties", lambda c: c.screen("u", properties=[1]),
     "properties must have <class 'dict'>, got: [1]"),
    ("track-event-none", lambda c: c.track("u"), "event must have <class 'str'>, got: None"),
    ("track-event-int", lambda c: c.track("u", 5), "event must have <class 'str'>, got: 5"),
    ("identify-context", lambda c: c.identify("u", context=[1]),
     "context must have <class 'dict'>, got: [1]"),
    ("track-context", lambda c: c.track("u", "e", context="x"), "context must have <class 'dict'>, got: x"),
    ("alias-context", lambda c: c.alias("p", "u", [1]), "context must have <class 'dict'>, got: [1]"),
    ("track-integrations", lambda c: c.track("u", "e", integrations=[1]),
     "integrations must have <class 'dict'>, got: [1]"),
    ("alias-integrations", lambda c: c.alias("p", "u", integrations="x"),
     "integrations must have <class 'dict'>, got: x"),
    ("group-integrations", lambda c: c.group("u", "g", integrations=[1]),
     "integrations must have <class 'dict'>, got: [1]"),
    ("track-timestamp-str", lambda c: c.track("u", "e", timestamp="2020-01-01"),
     "timestamp must have <class 'datetime.datetime'>, got: 2020-01-01"),
    ("identify-timestamp-date", lambda c: c.identify("u", timestamp=dt.date(2020, 1, 1)),
     "timestamp must have <class 'datetime.datetime'>, got: 2020-01-01"),
    ("page-timestamp-int", lambda c: c.page("u", timestamp=5),
     "timestamp must have <class 'datetime.datetime'>, got: 5"),
    ("page-name", lambda c: c.page("u", name=5), "name must have <class 'str'>, got: 5"),
    ("page-category", lambda c: c.page("u", category=5), "category must have <class 'str'>, got: 5"),
    ("screen-name", lambda c: c.screen("u", None, ["x"]), "name must have <class 'str'>, got: ['x']"),
    ("screen-category", lambda c: c.screen("u", 1.5), "category must have <class 'str'>, got: 1.5"),
    ("alias-no-previous", lambda c: c.alias(None, "u"), f"previous_id must have {ID_TYPES}, got: None"),
    ("alias-no-user", lambda c: c.alias("p"), f"user_id must have {ID_TYPES}, got: None"),
    ("alias-no-args", lambda c: c.alias(), f"previous_id must have {ID_TYPES}, got: None"),
    ("group-no-group-id", lambda c: c.group("u"), f"group_id must have {ID_TYPES}, got: None"),
    ("group-dict-group-id", lambda c: c.group("u", {"a": 1}),
     f"group_id must have {ID_TYPES}, got: {{'a': 1}}"),
    # The order of the checks is Segment's: the first failing one is reported.
    ("track-id-before-properties", lambda c: c.track(None, None, [1]),
     NO_ID),
    ("track-properties-before-event", lambda c: c.track("u", None, [1]),
     "properties must have <class 'dict'>, got: [1]"),
    ("group-group-id-before-traits", lambda c: c.group("u", None, [1]),
     f"group_id must have {ID_TYPES}, got: None"),
    ("integrations-before-timestamp", lambda c: c.track("u", "e", timestamp="t", integrations=[1]),
     "integrations must have <class 'dict'>, got: [1]"),
    ("timestamp-before-context", lambda c: c.track("u", "e", context=[1], timestamp="t"),
     "timestamp must have <class 'datetime.datetime'>, got: t"),
]


@pytest.mark.parametrize(
    ("call", "message"), [row[1:] for row in VALIDATION_ERRORS], ids=[row[0] for row in VALIDATION_ERRORS]
)
def test_bad_arguments_raise_segment_assertion_error(offline: Client, call: Call, message: str) -> None:
    with pytest.raises(AssertionError) as raised:
        call(offline)
    assert str(raised.value) == message
    assert type(raised.value) is AssertionError


ACCEPTED_QUIRKS: list[tuple[str, Call, Callable[[Message], bool]]] = [
    ("empty-event", lambda c: c.track("u", ""), lambda m: m["event"] == ""),
    ("falsy-properties", lambda c: c.track("u", "e", []), lambda m: m["properties"] == {}),
    ("falsy-traits", lambda c: c.identify("u", ""), lambda m: m["traits"] == {}),
    ("falsy-context", lambda c: c.track("u", "e", context=""),
     lambda m: m["context"] == {"library": LIBRARY}),
    ("falsy-integrations", lambda c: c.track("u", "e", integrations=[]), lambda m: m["integrations"] == {}),
    ("page-name-zero", lambda c: c.page("u", name=0), lambda m: m["name"] == 0),
    ("page-category-zero", lambda c: c.page("u", category=0), lambda m: m["category"] == 0),
    ("screen-empty-name", lambda c: c.screen("u", "", ""), lambda m: (m["category"], m["name"]) == ("", "")),
    ("bool-user-id", lambda c: c.identify(True), lambda m: m["userId"] == "True"),
    ("anonymous-only", lambda c: c.identify(anonymous_id=5),
     lambda m: (m["userId"], m["anonymousId"]) == (None, "5")),
    ("group-id-zero", lambda c: c.group("u", 0), lambda m: m["groupId"] == 0),
    ("previous-id-zero", lambda c: c.alias(0, "u"), lambda m: m["previousId"] == 0),
    ("empty-message-id", lambda c: c.track("u", "e", message_id=""), lambda m: m["messageId"] == ""),
]


@pytest.mark.parametrize(
    ("call", "check"), [row[1:] for row in ACCEPTED_QUIRKS], ids=[row[0] for row in ACCEPTED_QUIRKS]
)
def test_segment_quirks_are_accepted(offline: Client, call: Call, check: Callable[[Message], bool]) -> None:
    ok, msg = call(offline)
    assert ok is True
    assert check(msg), msg


# -- size ---------------------------------------------------------------------------------------------


def _sized_track(client: Client, size: int, char: str = "x") -> tuple[bool, Message]:
    """A track call on ``client`` whose message is exactly ``size`` bytes of JSON, padded with ``char``."""
    def call(on: Client, pad: str) -> tuple[bool, Message]:
        return on.track("u1", "Big", {"pad": pad}, timestamp=TS, message_id="m-1")

    measuring = Client(KEY, secret=SECRET, send=False)
    base = len(json.dumps(call(measuring, "")[1]).encode())
    width = len(json.dumps(char)) - 2  # "é" is written \u00e9, an astral character as a surrogate pair
    count, rest = divmod(size - base, width)
    return call(client, char * count + "x" * rest)


# Near the limit the size bound is above 32 KB whatever the padding (it counts every character
# as 12), so the exact JSON size decides; "é" and "😀" are written as 6 and 12 characters.
@pytest.mark.parametrize("char", ["x", "é", "😀"])
@pytest.mark.parametrize("size", [32767, 32768])
def test_message_up_to_32kb_is_accepted(offline: Client, size: int, char: str) -> None:
    ok, msg = _sized_track(offline, size, char)
    assert ok is True
    assert len(json.dumps(msg).encode()) == size


@pytest.mark.parametrize("char", ["x", "é", "😀"])
def test_message_over_32kb_raises_runtime_error(offline: Client, char: str) -> None:
    with pytest.raises(RuntimeError):
        _sized_track(offline, 32769, char)
    with pytest.raises(RuntimeError):
        offline.identify("u1", {"big": char * 40000})


def test_an_int_json_cannot_write_raises_at_the_call_as_json_does(offline: Client) -> None:
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if not limit:
        pytest.skip("this Python writes ints of any length")
    with pytest.raises(ValueError):
        offline.track("u1", "Big", {"n": 10 ** (limit + 1)})
    assert offline.track("u1", "Big", {"n": 10 ** (limit - 1)})[0] is True


def test_message_over_32kb_raises_before_queueing(server: DevServer, client: Client) -> None:
    with pytest.raises(RuntimeError):
        _sized_track(client, 32769)
    assert client.queue.empty()
    _sized_track(client, 32768)
    assert client.flush(5) is True
    assert len(events(server)) == 1


# -- queue full ---------------------------------------------------------------------------------------


def test_queue_full_returns_false_and_never_raises(server: DevServer, make_client: MakeClient) -> None:
    client = make_client(max_queue_size=2, upload_size=1000, upload_interval=60)
    assert client.track("u1", "one")[0] is True
    assert client.track("u1", "two")[0] is True
    ok, msg = client.track("u1", "three")
    assert ok is False
    assert (msg["type"], msg["event"], msg["userId"]) == ("track", "three", "u1")
    ok, msg = client.identify("u1", {"plan": "pro"})
    assert ok is False and msg["type"] == "identify"
    assert client.queue.qsize() == 2
    assert client.stats()["dropped"]["queue_full"] == 2  # type: ignore[index]
    assert client.flush(5) is True
    assert [e["data"]["event_name"] for e in events(server)] == ["one", "two"]


# -- send=False ---------------------------------------------------------------------------------------


def test_send_false_sends_nothing_and_starts_no_thread(
    server: DevServer, own: Callable[[Client], Client], no_env_credentials: None
) -> None:
    client = own(Client(KEY, host=server.url, send=False))  # no secret needed
    assert client.send is False
    ok, msg = client.track("u1", "Signed Up")
    assert ok is True and msg["event"] == "Signed Up"
    assert client.identify("u1", {"plan": "pro"})[0] is True
    assert client.consumers == []
    started = time.monotonic()
    assert client.flush() is True
    assert time.monotonic() - started < 1
    client.join()
    client.shutdown()
    assert client.consumers == []
    assert server.requests() == []


# -- sync_mode ----------------------------------------------------------------------------------------


def test_sync_mode_delivers_before_returning(server: DevServer, make_client: MakeClient) -> None:
    client = make_client(sync_mode=True)
    assert client.sync_mode is True
    ok, msg = client.track("u1", "Signed Up", message_id="m-1")
    assert ok is True and msg["event"] == "Signed Up"
    assert only_event(server)["data"]["source_message_id"] == "m-1"
    assert len(server.requests()) == 1
    assert client.consumers == []


def test_sync_mode_retries_like_background(server: DevServer, make_client: MakeClient) -> None:
    client = make_client(sync_mode=True)
    server.add_fault(status=503)
    assert client.track("u1", "Signed Up")[0] is True
    assert [r["status"] for r in server.requests()] == [503, 202]
    assert only_event(server)["data"]["event_name"] == "Signed Up"


def test_sync_mode_final_failure_raises_api_error(server: DevServer, make_client: MakeClient) -> None:
    errors: list[Exception] = []
    client = make_client(sync_mode=True, on_error=lambda exc, batch: errors.append(exc))
    server.add_fault(status=400)
    with pytest.raises(APIError) as raised:
        client.track("u1", "Signed Up")
    assert raised.value.status == 400
    assert isinstance(raised.value, mparticle_analytics.APIError)
    assert errors == []  # raised to the caller instead, as Segment's sync mode does
    assert received(server) == []


def test_sync_mode_shutdown_and_join_work(server: DevServer, make_client: MakeClient) -> None:
    client = make_client(sync_mode=True)
    client.track("u1", "Signed Up")
    client.flush()
    client.join()
    client.shutdown()
    assert client.consumers == []
    assert client.track("u1", "Again")[0] is True  # still usable
    assert len(events(server)) == 2


# -- on_error -----------------------------------------------------------------------------------------


def test_on_error_gets_api_error_and_segment_messages(server: DevServer, make_client: MakeClient) -> None:
    calls: list[tuple[Exception, list[Message]]] = []
    client = make_client(on_error=lambda exc, batch: calls.append((exc, batch)))
    server.add_fault(status=400)
    client.track("u1", "Signed Up", {"plan": "pro"})
    assert client.flush(5) is True
    assert len(calls) == 1
    error, batch = calls[0]
    assert isinstance(error, APIError) and error.status == 400
    assert isinstance(batch, list) and len(batch) == 1
    assert (batch[0]["type"], batch[0]["event"], batch[0]["userId"]) == ("track", "Signed Up", "u1")
    assert batch[0]["properties"] == {"plan": "pro"}
    assert received(server) == []


def test_on_error_that_raises_does_not_stop_delivery(
    server: DevServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    calls: list[Exception] = []

    def on_error(exc: Exception, batch: list[Message]) -> None:
        calls.append(exc)
        raise ValueError("broken callback")

    client = make_client(on_error=on_error)
    server.add_fault(status=400)
    client.track("u1", "Lost")
    assert client.flush(5) is True
    assert len(calls) == 1
    assert any(r.exc_info and "broken callback" in str(r.exc_info[1]) for r in library_records(caplog))
    client.track("u1", "Kept")
    assert client.flush(5) is True
    assert [e["data"]["event_name"] for e in events(server)] == ["Kept"]
    assert all(t.is_alive() for t in client.consumers)


# -- credentials --------------------------------------------------------------------------------------


def test_missing_key_raises_segment_assertion(no_env_credentials: None) -> None:
    builds = (lambda: Client(), lambda: Client(secret=SECRET),
              lambda: Client(None, "http://h", secret=SECRET))
    for build in builds:
        with pytest.raises(AssertionError) as raised:
            build()
        assert str(raised.value) == "write_key must have <class 'str'>, got: None"


def test_missing_secret_raises_segment_assertion(no_env_credentials: None) -> None:
    with pytest.raises(AssertionError) as raised:
        Client(KEY)
    assert str(raised.value) == "secret must have <class 'str'>, got: None"


def test_key_and_secret_in_one_string(server: DevServer, own: Callable[[Client], Client],
                                      no_env_credentials: None) -> None:
    client = own(Client(f"{KEY}:{SECRET}", host=server.url, upload_interval=0.05))
    client.track("u1", "Signed Up")
    assert client.flush(5) is True
    assert [(r["status"], r["api_key"]) for r in server.requests()] == [(202, KEY)]
    assert len(events(server)) == 1
    assert SECRET not in repr(client)


def test_credentials_from_environment(
    server: DevServer, own: Callable[[Client], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPARTICLE_API_KEY", KEY)
    monkeypatch.setenv("MPARTICLE_API_SECRET", SECRET)
    client = own(Client(host=server.url, upload_interval=0.05))
    client.track("u1", "Signed Up")
    assert client.flush(5) is True
    assert [(r["status"], r["api_key"]) for r in server.requests()] == [(202, KEY)]
    assert len(events(server)) == 1


def test_wrong_secret_reports_403_and_logs_once_without_secret(
    server: DevServer, own: Callable[[Client], Client], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-value"
    calls: list[Exception] = []
    client = own(Client(KEY, host=server.url, secret=wrong, upload_interval=0.05,
                        on_error=lambda exc, batch: calls.append(exc)))
    client.track("u1", "One")
    assert client.flush(5) is True
    client.track("u1", "Two")
    assert client.flush(5) is True
    assert [r["status"] for r in server.requests()] == [403, 403]
    assert len(calls) == 2
    assert all(isinstance(exc, APIError) and exc.status == 403 for exc in calls)
    errors = library_records(caplog, logging.ERROR)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert KEY in errors[0].getMessage()
    assert caplog.records
    for record in caplog.records:
        assert wrong not in record.getMessage()
    assert wrong not in repr(client)
    assert all(wrong not in str(exc) for exc in calls)


# -- hosts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("us1-abc", "https://s2s.us1.mparticle.com"),
        ("us2-abc", "https://s2s.us2.mparticle.com"),
        ("eu1-abc", "https://s2s.eu1.mparticle.com"),
        ("au1-abc", "https://s2s.au1.mparticle.com"),
        ("abc123", "https://s2s.mparticle.com"),
        ("xx9-abc", "https://s2s.mparticle.com"),
    ],
)
def test_host_follows_key_pod(own: Callable[[Client], Client], key: str, host: str) -> None:
    assert host_for_key(key) == host
    assert own(Client(key, secret=SECRET, send=False)).host == host
    assert own(Client(key, None, secret=SECRET, send=False)).host == host


def test_host_trailing_slash_is_stripped(server: DevServer, own: Callable[[Client], Client]) -> None:
    assert own(Client(KEY, host="https://example.test/", secret=SECRET, send=False)).host == "https://example.test"
    client = own(Client(KEY, host=server.url + "/", secret=SECRET, upload_interval=0.05))
    assert client.host == server.url
    client.track("u1", "Signed Up")
    assert client.flush(5) is True
    assert [r["path"] for r in server.requests()] == ["/v2/bulkevents"]


# -- wire ---------------------------------------------------------------------------------------------


def test_requests_go_to_bulkevents_with_user_agent_and_basic_auth(server: DevServer, client: Client) -> None:
    client.track("u1", "Signed Up")
    assert client.flush(5) is True
    [request] = server.requests()
    assert (request["method"], request["path"], request["status"]) == ("POST", "/v2/bulkevents", 202)
    assert request["user_agent"] == f"mparticle-analytics-python/{VERSION}"
    assert request["api_key"] == KEY
    assert request["content_encoding"] in (None, "identity")


def test_gzip_sends_gzip_and_delivers(server: DevServer, make_client: MakeClient) -> None:
    client = make_client(gzip=True)
    assert client.gzip is True
    client.track("u1", "Signed Up", {"text": "abc " * 200})
    assert client.flush(5) is True
    [request] = server.requests()
    assert (request["content_encoding"], request["status"]) == ("gzip", 202)
    assert request["body_bytes"] < request["decoded_bytes"]
    assert only_event(server)["data"]["event_name"] == "Signed Up"


class _RecordingProxy(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy that answers every request itself, like mParticle, and records its target."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.targets.append(self.path)  # type: ignore[attr-defined]
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    """A recording proxy's URL and the request targets it has seen."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingProxy)
    httpd.targets = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.targets  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("how", ["environment", "argument"])
def test_requests_go_through_the_proxy(
    own: Callable[[Client], Client], monkeypatch: pytest.MonkeyPatch, proxy: tuple[str, list[str]], how: str
) -> None:
    url, targets = proxy
    if how == "environment":  # read at the first request, as requests would on each request
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
    proxies = {"http": url} if how == "argument" else None
    client = own(Client(KEY, secret=SECRET, host="http://mparticle.invalid", proxies=proxies))
    client.track("u1", "Signed Up")
    assert client.flush(5) is True
    assert targets == ["http://mparticle.invalid/v2/bulkevents"]


def test_a_client_is_created_without_reading_its_url() -> None:
    """As Segment's: a host that cannot be parsed fails when sending, not in the constructor."""
    client = Client(KEY, secret=SECRET, host="http://[::1", send=False)
    assert client.host == "http://[::1"


def test_a_netrc_entry_for_the_host_does_not_replace_the_credentials(
    server: DevServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone-else password not-the-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = make_client()
    client.track("u1", "Signed Up")
    assert client.flush(5) is True
    assert len(events(server)) == 1
    assert client.stats()["dropped"] == {}


# -- APIError -----------------------------------------------------------------------------------------


def test_api_error_fields_and_str() -> None:
    error = APIError(400, "BAD_REQUEST", "nope")
    assert (error.status, error.code, error.message, error.response) == (400, "BAD_REQUEST", "nope", None)
    assert str(error) == "[mParticle] BAD_REQUEST: nope (400)"
    assert isinstance(error, Exception)
    marker = object()
    assert APIError(500, "c", "m", response=marker).response is marker


def test_api_error_from_mparticle_body() -> None:
    body = json.dumps({"errors": [{"code": "BAD_REQUEST", "message": "first"},
                                  {"code": "OTHER", "message": "second"}]})
    error = APIError.from_body(400, body)
    assert (error.status, error.code, error.message) == (400, "BAD_REQUEST", "first")
    assert str(error) == "[mParticle] BAD_REQUEST: first (400)"


@pytest.mark.parametrize("body", ["{}", "[]", '"oops"', "null", "not json at all", "", '{"errors": []}'])
def test_api_error_from_other_body_is_unknown(body: str) -> None:
    error = APIError.from_body(502, body)
    assert (error.status, error.code, error.message) == (502, "unknown", body)
    assert str(error) == f"[mParticle] unknown: {body} (502)"


def test_api_error_from_server_answer(server: DevServer, make_client: MakeClient) -> None:
    client = make_client(sync_mode=True)
    server.add_fault(status=400)
    with pytest.raises(APIError) as raised:
        client.track("u1", "Signed Up")
    assert (raised.value.status, raised.value.code) == (400, "BAD_REQUEST")
    assert "injected fault" in raised.value.message
    assert raised.value.response is not None


# -- logging ------------------------------------------------------------------------------------------


def _added_handlers(before: list[logging.Handler], logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if h not in before]


def test_logger_name_and_no_handlers_by_default(
    server: DevServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    logger, root = logging.getLogger(LOGGER), logging.getLogger()
    assert all(type(h) is logging.NullHandler for h in logger.handlers)  # at most a NullHandler
    root_before = list(root.handlers)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    client = make_client(max_queue_size=1, upload_size=1000, upload_interval=60)
    client.track("u1", "one")
    assert client.track("u1", "two")[0] is False  # a warning, from the library's logger
    assert client.flush(5) is True
    assert all(type(h) is logging.NullHandler for h in logger.handlers)
    assert root.handlers == root_before
    assert any(r.name == LOGGER and r.levelno == logging.WARNING for r in caplog.records)


def test_debug_sets_debug_level_and_adds_at_most_one_handler(make_client: MakeClient) -> None:
    logger, root = logging.getLogger(LOGGER), logging.getLogger()
    before, root_before = list(logger.handlers), list(root.handlers)
    clients = [make_client(send=False, debug=True) for _ in range(3)]
    assert all(c.debug is True for c in clients)
    assert logger.level == logging.DEBUG
    assert logger.isEnabledFor(logging.DEBUG)
    added = _added_handlers(before, logger)
    assert len(added) <= 1, added
    assert root.handlers == root_before


def test_log_handler_is_attached_once(make_client: MakeClient) -> None:
    logger, root = logging.getLogger(LOGGER), logging.getLogger()
    root_before = list(root.handlers)
    handler = Collecting()
    for _ in range(3):
        make_client(send=False, log_handler=handler)
    assert logger.handlers.count(handler) == 1
    assert root.handlers == root_before
    assert handler not in root.handlers


def test_secrets_never_in_repr_or_logs(
    server: DevServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client()
    assert SECRET not in repr(client) and BASIC_TOKEN not in repr(client)
    server.add_fault(status=503)  # a retry, so the retry path logs too
    client.track("u1", "Signed Up", {"plan": "pro"})
    client.identify("u1", {"email": "ada@example.com"})
    assert client.flush(5) is True
    assert len(events(server)) == 1
    assert library_records(caplog), "expected some DEBUG records during a send with a retry"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert SECRET not in text and BASIC_TOKEN not in text, text


# -- module level -------------------------------------------------------------------------------------


def test_module_functions_return_segment_tuples(server: DevServer, module: Any) -> None:
    results = {
        "track": module.track("u1", "Signed Up", {"plan": "pro"}),
        "identify": module.identify("u1", {"plan": "pro"}),
        "group": module.group("u1", "g1"),
        "alias": module.alias("prev-1", "u1"),
        "page": module.page("u1", "Docs", "Python"),
        "screen": module.screen("u1", "Home"),
    }
    for kind, (ok, msg) in results.items():
        assert ok is True
        assert msg["type"] == kind and set(msg) == SEGMENT_KEYS[kind]
    assert isinstance(module.default_client, Client)
    assert module.flush(5) is True
    assert len(events(server)) == 3


def test_module_settings_are_read_when_default_client_is_created(server: DevServer, module: Any) -> None:
    assert module.default_client is None
    module.track("u1", "one")
    first = module.default_client
    assert isinstance(first, Client) and first.host == server.url
    module.host = "http://127.0.0.1:9"
    module.gzip = True
    module.track("u1", "two")
    assert module.default_client is first
    assert (first.host, first.gzip) == (server.url, False)
    assert module.flush(5) is True
    assert [e["data"]["event_name"] for e in events(server)] == ["one", "two"]
    first.shutdown(5)
    module.default_client = None
    module.send = False
    module.track("u1", "three")
    second = module.default_client
    assert second is not first
    assert (second.host, second.gzip, second.send) == ("http://127.0.0.1:9", True, False)


def test_module_without_write_key_raises_segment_assertion(module: Any, no_env_credentials: None) -> None:
    module.write_key = None
    with pytest.raises(AssertionError) as raised:
        module.track("u1", "Signed Up")
    assert str(raised.value) == "write_key must have <class 'str'>, got: None"


def test_module_upload_size_is_honoured(server: DevServer, module: Any) -> None:
    module.upload_size = 2
    module.upload_interval = 60  # only a full batch of 2 can go out without a flush
    module.track("u1", "one")
    module.track("u1", "two")
    assert server.wait_for(lambda s: len(events(s)) == 2, timeout=5)


def test_module_upload_interval_is_honoured(server: DevServer, module: Any) -> None:
    module.upload_interval = 60  # the default 0.5 s would have sent it well within the wait below
    module.track("u1", "one")
    assert not server.wait_for(lambda s: len(s.requests()) > 0, timeout=1.5)
    assert module.flush(5) is True
    assert len(events(server)) == 1


def test_module_thread_proxies_and_log_handler_are_honoured(server: DevServer, module: Any) -> None:
    handler = Collecting()
    proxies = {"https": "http://127.0.0.1:9"}  # the server is plain http, so this proxy is not used
    module.thread = 3
    module.proxies = proxies
    module.log_handler = handler
    module.track("u1", "Signed Up")
    client = module.default_client
    assert client.proxies == proxies
    assert len(client.consumers) == 3
    assert logging.getLogger(LOGGER).handlers.count(handler) == 1
    assert module.flush(5) is True
    assert len(events(server)) == 1


def test_module_flush_join_shutdown(server: DevServer, module: Any) -> None:
    module.track("u1", "one")
    assert module.flush(5) is True
    assert len(events(server)) == 1
    module.track("u1", "two")
    module.join()
    assert len(events(server)) == 2
    module.track("u1", "three")
    threads = module.default_client.consumers
    assert threads and all(t.is_alive() for t in threads)
    module.shutdown()
    assert len(events(server)) == 3
    assert not any(t.is_alive() for t in threads)


def test_module_flush_join_shutdown_in_sync_mode(server: DevServer, module: Any) -> None:
    module.sync_mode = True
    assert module.track("u1", "one")[0] is True
    assert len(events(server)) == 1
    assert module.default_client.consumers == []
    module.flush()
    module.join()
    module.shutdown()
    assert module.track("u1", "two")[0] is True
    assert len(events(server)) == 2


def test_module_oauth_settings_are_ignored_with_one_warning(
    server: DevServer, module: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    module.oauth_client_id = "client-id"
    module.oauth_client_key = "client-key"
    module.oauth_key_id = "key-id"
    module.oauth_auth_server = "https://oauth.example.test"
    module.oauth_scope = "something"
    assert module.track("u1", "one")[0] is True
    assert module.track("u1", "two")[0] is True
    assert module.flush(5) is True
    assert len(events(server)) == 2
    assert [r["api_key"] for r in server.requests()] == [KEY] * len(server.requests())
    warnings = [r for r in library_records(caplog, logging.WARNING) if "oauth" in r.getMessage().lower()]
    assert len(warnings) == 1


def test_client_oauth_arguments_warn_once(make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    make_client(send=False)
    assert not [r for r in library_records(caplog) if "oauth" in r.getMessage().lower()]
    make_client(send=False, oauth_client_id="id", oauth_client_key="key", oauth_key_id="kid")
    assert len([r for r in library_records(caplog) if "oauth" in r.getMessage().lower()]) == 1


# -- attributes ---------------------------------------------------------------------------------------


def test_segment_attributes_are_kept(server: DevServer, make_client: MakeClient) -> None:
    def on_error(exc: Exception, batch: list[Message]) -> None:
        pass

    client = make_client(on_error=on_error, upload_size=1000, upload_interval=60)
    assert (client.write_key, client.host, client.debug, client.send) == (KEY, server.url, False, True)
    assert (client.sync_mode, client.gzip, client.timeout, client.proxies) == (False, False, 15, None)
    assert client.on_error is on_error
    assert (client.queue.qsize(), client.queue.empty(), client.queue.maxsize) == (0, True, 10000)
    client.track("u1", "one")
    client.track("u1", "two")
    assert (client.queue.qsize(), client.queue.empty()) == (2, False)
    assert len(client.consumers) == 1 and all(t.is_alive() for t in client.consumers)
    assert client.flush(5) is True
    assert (client.queue.qsize(), client.queue.empty()) == (0, True)
    assert len(events(server)) == 2


def test_thread_option_starts_and_stops_all_threads(server: DevServer, make_client: MakeClient) -> None:
    client = make_client(thread=3)
    for n in range(10):
        client.track(f"u{n}", "Signed Up")
    threads = client.consumers
    assert len(threads) == 3 and len(set(threads)) == 3
    assert all(t.is_alive() for t in threads)
    assert client.flush(5) is True
    assert len(events(server)) == 10
    assert client.shutdown(5) is True
    assert not any(t.is_alive() for t in threads)


# -- flush --------------------------------------------------------------------------------------------


def test_flush_returns_true_once_everything_queued_arrived(
    server: DevServer, make_client: MakeClient
) -> None:
    client = make_client(upload_size=1000, upload_interval=60)  # nothing would go out on its own
    for n in range(5):
        client.track("u1", f"event-{n}")
    assert client.flush(5) is True
    assert [e["data"]["event_name"] for e in events(server)] == [f"event-{n}" for n in range(5)]
    assert client.flush(5) is True  # nothing left: returns at once


def test_flush_with_timeout_returns_false_when_it_cannot_finish(server: DevServer, client: Client) -> None:
    server.add_fault(delay=2)
    client.track("u1", "Slow")
    started = time.monotonic()
    assert client.flush(timeout=0.2) is False
    assert time.monotonic() - started < 1.5
    assert client.flush(5) is True
    assert len(events(server)) == 1


# -- last, because it lets handlers go -----------------------------------------------------------------


def test_each_new_log_handler_is_attached(make_client: MakeClient) -> None:
    """A handler given to a client is attached even if an earlier, removed one had the same ``id()``.

    CPython often puts a new object where a freed one was, so remembering handlers by
    ``id()`` silently skips new ones. This test frees its handlers, so it runs last.
    """
    logger = logging.getLogger(LOGGER)
    for round_ in range(5):
        handler = Collecting(keep_alive=False)
        make_client(send=False, log_handler=handler)
        attached = logger.handlers.count(handler)
        logger.removeHandler(handler)
        assert attached == 1, f"round {round_}: handler attached {attached} times"
        del handler
