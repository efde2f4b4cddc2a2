"""mParticle's size and count limits (wire.md "Limits"), checked just under and just over each."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from conftest import received

from mparticle_analytics import Client
from mparticle_analytics.batching import (
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    Batch,
    build_batches,
    pack_requests,
    request_body,
)
from mparticle_analytics.devserver import DevServer
from mparticle_analytics.mapping import Mapped


def event_of(size: int, n: int = 0) -> bytes:
    """A serialized event of exactly ``size`` bytes."""
    head = b'{"event_type":"custom_event","data":{"n":%d,"pad":"' % n
    return head + b"x" * (size - len(head) - 3) + b'"}}'


def mapped(event: bytes, user: str = "u1", attributes: Any = None) -> Mapped:
    key = json.dumps({"user_identities": {"customer_id": user}}, separators=(",", ":"))
    return key, event, attributes or {}, json.dumps({"type": "track", "userId": user})


def build(items: list[Mapped]) -> tuple[list[Batch], list[Any]]:
    batches, rejected = build_batches(items, environment="production", limit_attributes=lambda a: a)
    assert [b.size for b in batches] == [len(b.body) for b in batches]
    assert request_body(batches) == b"[" + b",".join(b.body for b in batches) + b"]"
    return batches, rejected


def overhead() -> int:
    """The bytes a one-user batch spends besides its events (and the comma between two)."""
    batch = build([mapped(b"{}")])[0][0]
    return len(batch.body) - 2


def test_a_batch_of_exactly_128kb_is_one_batch() -> None:
    size = (MAX_BATCH_BYTES - overhead() - 1) // 2
    first = event_of(size)
    second = event_of(MAX_BATCH_BYTES - overhead() - 1 - size, 1)
    batches, rejected = build([mapped(first), mapped(second)])
    assert len(batches) == 1 and not rejected
    assert len(batches[0].body) == MAX_BATCH_BYTES
    assert json.loads(batches[0].body)["events"][1]["data"]["n"] == 1


def test_a_user_over_128kb_is_split_into_consecutive_batches() -> None:
    size = (MAX_BATCH_BYTES - overhead() - 1) // 2
    events = [event_of(size, 0), event_of(MAX_BATCH_BYTES - overhead() - size, 1), event_of(100, 2)]
    batches, rejected = build([mapped(e) for e in events])
    assert [len(b.events) for b in batches] == [1, 2] and not rejected
    assert all(len(b.body) <= MAX_BATCH_BYTES for b in batches)
    order = [e["data"]["n"] for b in batches for e in json.loads(b.body)["events"]]
    assert order == [0, 1, 2]
    ids = {json.loads(b.body)["source_request_id"] for b in batches}
    users = {json.dumps(json.loads(b.body)["user_identities"]) for b in batches}
    assert len(ids) == 2 and len(users) == 1


def test_user_attributes_ride_on_the_first_batch_only() -> None:
    size = MAX_BATCH_BYTES // 2
    items = [mapped(event_of(size), attributes={"plan": "pro"}), mapped(event_of(size, 1))]
    first, second = (json.loads(b.body) for b in build(items)[0])
    assert first["user_attributes"] == {"plan": "pro"} and "user_attributes" not in second


def test_one_event_that_fits_no_batch_is_rejected_not_sent() -> None:
    fits = event_of(MAX_BATCH_BYTES - overhead())
    too_big = event_of(MAX_BATCH_BYTES - overhead() + 1, 1)
    batches, rejected = build([mapped(fits), mapped(too_big)])
    assert [len(b.body) for b in batches] == [MAX_BATCH_BYTES]
    assert len(rejected) == 1 and rejected[0].sources == ['{"type": "track", "userId": "u1"}']


def test_one_batch_per_user_in_first_seen_order() -> None:
    batches, _ = build([mapped(b"{}", "a"), mapped(b"{}", "b"), mapped(b"{}", "a")])
    users = [json.loads(b.body)["user_identities"]["customer_id"] for b in batches]
    assert users == ["a", "b"] and [len(b.events) for b in batches] == [2, 1]


def fake_batches(sizes: list[int]) -> list[Batch]:
    """Batches whose bodies (a head, no events, and the 2-byte tail) are ``size`` bytes long."""
    return [Batch(b"x" * (size - 2), [], size, [str(i)]) for i, size in enumerate(sizes)]


def test_100_batches_fit_one_request_and_101_do_not() -> None:
    assert [len(r) for r in pack_requests(fake_batches([10] * MAX_BATCHES_PER_REQUEST))] == [100]
    assert [len(r) for r in pack_requests(fake_batches([10] * 101))] == [100, 1]


def test_a_request_stays_under_256kb() -> None:
    # Two batches plus brackets and a comma: 3 bytes of framing.
    just_under = MAX_REQUEST_BYTES - 1 - 3
    fits = pack_requests(fake_batches([just_under // 2, just_under - just_under // 2]))
    assert len(fits) == 1 and len(request_body(fits[0])) == MAX_REQUEST_BYTES - 1
    over = pack_requests(fake_batches([just_under // 2, just_under - just_under // 2 + 1]))
    assert len(over) == 2 and all(len(request_body(r)) < MAX_REQUEST_BYTES for r in over)


@pytest.mark.parametrize("users", [1, 150])
def test_big_traffic_is_delivered_within_the_limits_over_http(
    users: int, make_client: Callable[..., Client], server: DevServer
) -> None:
    client = make_client(upload_size=300)
    payload = "y" * 3000
    for n in range(300):
        client.track(f"user-{n % users}", "Big", {"n": n, "payload": payload})
    assert client.flush(10)
    batches = received(server)
    assert sum(len(b["events"]) for b in batches) == 300
    assert all(r["status"] == 202 for r in server.requests())
    assert all(len(json.dumps(b, separators=(",", ":"))) <= MAX_BATCH_BYTES for b in batches)
    assert client.stats()["delivered"] == 300
