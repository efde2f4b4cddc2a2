"""The devserver's validator against mParticle's published JSON Schema, batch by batch.

For every batch of the corpus (``tests/corpus/``: hand-written valid, broken
and compat batches, plus batches the real library sends, plus a mutation of
every field of the valid ones), the validator reports an error exactly when
the schema rejects the batch, apart from the documented differences where
mParticle evidently accepts more than its schema. Those are applied to a copy
of the schema ("lenient"), so the comparison stays exact:

- ``user_identities.customerid`` (mParticle's Python, Node and Ruby SDKs send it),
- a top-level integer ``schema_version`` (the same SDKs and mParticle's HTTP examples),
- ``custom_event_type: "attribution"`` on a custom event (mParticle's JSON
  reference documents attribution events; its Python SDK's
  ``AppEvent.create_attribution_event`` sends them).

Where the strict schema rejects a batch that the lenient one accepts, the
validator must say why with a ``compat.*`` warning.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
from conftest import BULK_SCHEMA, SCHEMAS
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from mparticle_analytics import Client
from mparticle_analytics.devserver import DevServer
from mparticle_analytics.devserver.validation import has_errors, validate_batch

CORPUS = Path(__file__).resolve().parent / "corpus"
AUTH = ("test-key", "test-secret")


def _lenient_validator() -> Draft7Validator:
    """mParticle's bulk schema with the documented differences let in; loaded like conftest's."""
    batch = json.loads((SCHEMAS / "mparticle.inbound.eventsapi.schema.json").read_text())
    bulk = json.loads((SCHEMAS / "mparticle.inbound.eventsapi.bulk.schema.json").read_text())
    batch["properties"]["user_identities"]["properties"]["customerid"] = {"$ref": "#/definitions/String"}
    batch["properties"]["schema_version"] = {"$ref": "#/definitions/Integer"}
    custom = batch["definitions"]["CustomEvent"]["properties"]["data"]["allOf"][1]["properties"]
    custom["custom_event_type"]["enum"].append("attribution")
    registry: Registry[Any] = Registry().with_resource(batch["$id"], Resource.from_contents(batch))
    return Draft7Validator(bulk, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


LENIENT = _lenient_validator()


def load(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((CORPUS / name).read_text(encoding="utf-8"))["batches"]
    return entries


VALID, BROKEN, COMPAT = load("valid.json"), load("broken.json"), load("compat.json")


def assert_agrees(batch: Any) -> list[dict[str, str]]:
    """The validator's problems with ``batch``, after checking its verdict against the schemas."""
    problems = validate_batch(batch)
    errors = has_errors(problems)
    lenient = LENIENT.is_valid([batch])
    errors_found = [p for p in problems if p["severity"] == "error"]
    assert errors == (not lenient), (
        f"validator {'rejects' if errors else 'accepts'} what the schema "
        f"{'accepts' if lenient else 'rejects'}: {errors_found or list(LENIENT.iter_errors([batch]))}"
    )
    compat = [p for p in problems if p["rule"].startswith("compat.")]
    # The strict schema only matters where the documented differences could apply.
    if lenient or compat:
        strict = BULK_SCHEMA.is_valid([batch])
        if lenient and not strict:
            assert compat, (
                "the strict schema rejects this, so the validator must say which difference applies"
            )
        if compat:
            assert not strict, f"compat warning where the schema agrees anyway: {compat}"
    return problems


def assert_expected(problems: list[dict[str, str]], expected: list[dict[str, str]]) -> None:
    found = {(p["path"], p["rule"]) for p in problems}
    for item in expected:
        assert (item["path"], item["rule"]) in found, f"expected {item} among {problems}"


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["name"] for entry in entries]


# --- the hand-written corpus ---------------------------------------------------


@pytest.mark.parametrize("entry", VALID, ids=ids(VALID))
def test_valid_batches_have_no_errors(entry: dict[str, Any]) -> None:
    assert BULK_SCHEMA.is_valid([entry["batch"]]), list(BULK_SCHEMA.iter_errors([entry["batch"]]))
    problems = assert_agrees(entry["batch"])
    assert not has_errors(problems)
    assert_expected(problems, entry["expect"])


@pytest.mark.parametrize("entry", BROKEN, ids=ids(BROKEN))
def test_broken_batches_get_the_error_they_deserve(entry: dict[str, Any]) -> None:
    assert not LENIENT.is_valid([entry["batch"]]), "corpus entry is not broken by mParticle's schema"
    problems = assert_agrees(entry["batch"])
    assert_expected(problems, entry["expect"])
    for item in entry["expect"]:
        assert any(p["path"] == item["path"] and p["severity"] == "error" for p in problems)


@pytest.mark.parametrize("entry", COMPAT, ids=ids(COMPAT))
def test_documented_differences_are_warnings(entry: dict[str, Any]) -> None:
    assert not BULK_SCHEMA.is_valid([entry["batch"]])
    problems = assert_agrees(entry["batch"])
    assert not has_errors(problems)
    assert_expected(problems, entry["expect"])
    assert all(p["severity"] == "warning" for p in problems if p["rule"].startswith("compat."))


def test_corpus_covers_every_event_type_and_field_family() -> None:
    seen_types = set()
    seen_fields = set()
    for entry in VALID + BROKEN + COMPAT:
        batch = entry["batch"]
        seen_fields.update(batch)
        for event in batch.get("events") or []:
            if isinstance(event, dict) and isinstance(event.get("event_type"), str):
                seen_types.add(event["event_type"])
    schema = json.loads((SCHEMAS / "mparticle.inbound.eventsapi.schema.json").read_text())
    every_type = {
        schema["definitions"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["event_type"]["enum"][0]
        for ref in schema["properties"]["events"]["items"]["oneOf"]
    }
    assert every_type <= seen_types
    assert set(schema["properties"]) <= seen_fields


# --- every field of the valid corpus, mutated ---------------------------------

#: What every field is replaced with: null, an object and an array ...
_REPLACEMENTS: tuple[Any, ...] = (None, {}, ["x"])
#: ... and two scalars, taken in turn from these pairs (all four for every field would take
#: twice as long and find nothing more: the same kinds recur across the corpus).
_SCALARS: tuple[tuple[Any, Any], ...] = (("x", 2.5), (1, True))


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):
            yield from _nodes(item, (*path, index))


def _with(batch: dict[str, Any], path: tuple[Any, ...], change: Callable[[Any, Any], None]) -> dict[str, Any]:
    mutant = copy.deepcopy(batch)
    parent: Any = mutant
    for step in path[:-1]:
        parent = parent[step]
    change(parent, path[-1])
    return mutant


def mutants() -> Iterator[tuple[str, dict[str, Any]]]:
    """Each valid batch with one field replaced by every kind of value, removed, or given a sibling.

    A change inside an event is made to a copy of the batch that keeps only that event, which
    checks the same thing in a fraction of the time.
    """
    turn = 0
    for entry in VALID:
        for path, value in _nodes(entry["batch"]):
            turn += 1
            batch = entry["batch"]
            if len(path) >= 2 and path[0] == "events":
                batch = {**batch, "events": [batch["events"][path[1]]]}
                path = ("events", 0, *path[2:])
            label = f"{entry['name']}: {'.'.join(map(str, path)) or '$'}"
            if isinstance(value, dict):
                yield f"{label} + unknown key", _with(batch, (*path, "zz_unknown"), _set(1))
            if not path:
                continue
            for replacement in (*_REPLACEMENTS, *_SCALARS[turn % 2]):
                if replacement != value or type(replacement) is not type(value):
                    yield f"{label} = {json.dumps(replacement)}", _with(batch, path, _set(replacement))
            if isinstance(path[-1], str):
                yield f"{label} removed", _with(batch, path, _delete)


def _set(value: Any) -> Callable[[Any, Any], None]:
    def change(parent: Any, key: Any) -> None:
        parent[key] = copy.deepcopy(value)

    return change


def _delete(parent: Any, key: Any) -> None:
    del parent[key]


def test_mutations_of_every_field_agree_with_the_schema() -> None:
    disagreements = []
    checked = 0
    for label, batch in mutants():
        checked += 1
        try:
            assert_agrees(batch)
        except AssertionError as exc:
            disagreements.append(f"{label}: {exc}")
    assert checked > 2500
    assert not disagreements, f"{len(disagreements)} of {checked} disagree:\n" + "\n".join(disagreements[:20])


# --- batches the real library sends -------------------------------------------


def test_every_batch_the_library_sends_is_valid_and_agrees(server: DevServer) -> None:
    """The library's own output, through the conftest server (which also checks the schema)."""
    client = Client("us1-testkey", secret="test-secret", host=server.url, upload_interval=0.05)
    context = {
        "ip": "203.0.113.9",
        "device": {
            "manufacturer": "Apple",
            "model": "iPhone15,2",
            "type": "ios",
            "advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
        },
        "app": {"name": "Demo", "version": "1.2.3", "build": "45", "namespace": "com.example"},
        "os": {"name": "iOS", "version": "17.1"},
        "screen": {"width": 1170, "height": 2532, "density": 3},
        "location": {"latitude": 52.5, "longitude": 13.4, "city": "Berlin"},
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "userAgent": "Mozilla/5.0",
    }
    try:
        traits = {
            "email": "ada@example.com",
            "firstName": "Ada",
            "address": {"city": "Berlin"},
            "tags": ["a", "b"],
            "age": 36,
            "plan": None,
        }
        client.identify("user-1", traits, context=context)
        properties = {
            "plan": "pro",
            "nested": {"deep": {"x": 1}},
            "list": [1, {"a": 2}],
            "long": "x" * 5000,
            "n" * 300: 1,
        }
        client.track("user-1", "Signed Up", properties, context=context)
        client.page("user-1", "Docs", "Quickstart", {"url": "https://example.com/docs"})
        client.screen("user-1", "Settings", "Profile")
        client.group("user-1", "group-9", {"name": "Acme", "employees": 12})
        client.alias("anon-1", "user-1")
        client.track(anonymous_id="anon-2", event="Viewed Pricing", properties={"n": 1.5})
        commerce: tuple[tuple[str, dict[str, Any]], ...] = (
            (
                "Order Completed",
                {
                    "order_id": "o-1",
                    "total": 27.5,
                    "currency": "USD",
                    "products": [{"product_id": "p-1", "name": "Monopoly", "price": 19, "quantity": 1}],
                },
            ),
            ("Product Viewed", {"product_id": "p-2", "name": "Chess", "price": 9.5}),
            ("Product Added", {"product_id": "p-2", "quantity": 2}),
            ("Checkout Step Viewed", {"step": 2}),
            ("Promotion Clicked", {"promotion_id": "promo-1", "name": "Spring"}),
            ("Product List Viewed", {"list_id": "l-1", "products": [{"product_id": "p-3"}]}),
            ("Order Refunded", {"order_id": "o-1"}),
        )
        for name, spec_properties in commerce:
            client.track("user-2", name, spec_properties)
        assert client.flush(timeout=10)
    finally:
        client.shutdown(timeout=5)
    received = server.batches()
    assert len(received) >= 4
    event_types: set[str] = set()
    for record in received:
        problems = assert_agrees(record["batch"])
        assert not has_errors(problems), problems
        event_types.update(e["event_type"] for e in record["batch"].get("events") or [])
    assert {"custom_event", "screen_view", "commerce_event"} <= event_types
    assert server.problems("error") == []
    # What the library cut to mParticle's limits shows up as a note, not an error.
    assert {p["rule"] for p in server.problems("info")} >= {"limit.at_limit"}


# --- the endpoint's verdict over HTTP -----------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Iterator[DevServer]:
    with DevServer() as running:
        yield running


@pytest.mark.parametrize("corpus", ["valid.json", "broken.json", "compat.json"])
def test_endpoint_verdict_agrees_with_the_schema(endpoint: DevServer, corpus: str) -> None:
    """Each corpus batch sent on its own: a 400, or a 202 with errors recorded, exactly when the
    lenient schema rejects it. Accepted batches are stored with the validator's problems."""
    session = requests.Session()
    for entry in load(corpus):
        before = endpoint.problems()
        response = session.post(endpoint.url + "/v2/events", json=entry["batch"], auth=AUTH, timeout=10)
        assert response.status_code in (202, 400), response.text
        stored = endpoint.problems()[len(before) :]
        rejected = response.status_code == 400 or any(p["severity"] == "error" for p in stored)
        assert rejected == (not LENIENT.is_valid([entry["batch"]])), (entry["name"], response.text, stored)
        if response.status_code == 202:
            shown = [{k: p[k] for k in ("path", "rule", "message", "severity")} for p in stored]
            assert shown == validate_batch(entry["batch"])


# --- details of the validator -------------------------------------------------


def _event(**data: Any) -> dict[str, Any]:
    return {"event_type": "custom_event", "data": {"event_name": "x", "custom_event_type": "other", **data}}


def _rules(batch: dict[str, Any], severity: str) -> set[tuple[str, str]]:
    return {(p["path"], p["rule"]) for p in validate_batch(batch) if p["severity"] == severity}


def test_limits_are_warnings_and_values_at_a_limit_are_notes() -> None:
    batch = {
        "environment": "development",
        "user_identities": {"customer_id": "u"},
        "user_attributes": {
            **{f"a{n}": n for n in range(101)},
            "list": ["x"] * 1001,
            "entries": ["y" * 513, "z" * 512],
            "k" * 257: 1,
            "v": "w" * 4097,
            "exact": "e" * 4096,
        },
        "events": [
            _event(event_name="n" * 257, custom_attributes={"big": "b" * 4097, "c" * 256: 1}),
            {"event_type": "screen_view", "data": {"screen_name": "s" * 256}},
            {
                "event_type": "push_message",
                "data": {
                    "push_message_token": "t",
                    "push_message_type": "sent",
                    "push_notification_payload": "",
                    "action_identifier": "a" * 101,
                },
            },
        ],
    }
    assert _rules(batch, "error") == set()
    assert _rules(batch, "warning") == {
        ("$.user_attributes", "limit.attribute_count"),
        ("$.user_attributes.list", "limit.list_length"),
        ("$.user_attributes.entries[0]", "limit.list_entry_length"),
        ("$.user_attributes." + "k" * 257, "limit.name_length"),
        ("$.user_attributes.v", "limit.value_length"),
        ("$.events[0].data.event_name", "limit.name_length"),
        ("$.events[0].data.custom_attributes.big", "limit.value_length"),
        ("$.events[2].data.action_identifier", "limit.value_length"),
    }
    assert _rules(batch, "info") == {
        ("$.user_attributes.entries[1]", "limit.at_limit"),
        ("$.user_attributes.exact", "limit.at_limit"),
        ("$.events[0].data.custom_attributes." + "c" * 256, "limit.at_limit"),
        ("$.events[1].data.screen_name", "limit.at_limit"),
    }
    assert BULK_SCHEMA.is_valid([batch])


def test_paths_quote_keys_that_are_not_identifiers() -> None:
    problems = validate_batch({"mpid": 1, "user_attributes": {"first name": {}, "a.b": []}})
    assert [p["path"] for p in problems if p["severity"] == "error"] == ['$.user_attributes["first name"]']


def test_every_problem_has_the_four_fields_and_a_known_severity() -> None:
    for entry in VALID + BROKEN + COMPAT:
        for problem in validate_batch(entry["batch"]):
            assert set(problem) == {"path", "rule", "message", "severity"}
            assert problem["severity"] in ("error", "warning", "info")
            assert problem["path"].startswith("$")
            assert problem["rule"].split(".")[0] in ("schema", "compat", "docs", "limit")


def test_a_batch_that_is_not_an_object_is_reported_without_raising() -> None:
    values: tuple[Any, ...] = (None, 1, "x", [], [{}])
    for value in values:
        assert validate_batch(value)[0]["rule"] == "docs.object"
