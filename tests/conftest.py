"""Shared fixtures: a real local endpoint per test, clients pointed at it, and the schema oracle.

Every batch any test causes the library to deliver to the ``server`` fixture is
validated against mParticle's published JSON Schema when the test ends
(``../shared/mparticle``; the bulk schema's ``$ref`` is resolved locally, never
fetched). A test that leaves an invalid batch behind fails.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource

import mparticle_analytics
from mparticle_analytics import Client
from mparticle_analytics.devserver import DevServer

SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "mparticle"
KEY, SECRET = "us1-testkey", "test-secret"


def _bulk_validator() -> Draft7Validator:
    if not SCHEMAS.is_dir():
        raise RuntimeError(f"mParticle's schemas are expected in {SCHEMAS} (the shared/ folder)")
    batch = json.loads((SCHEMAS / "mparticle.inbound.eventsapi.schema.json").read_text())
    bulk = json.loads((SCHEMAS / "mparticle.inbound.eventsapi.bulk.schema.json").read_text())
    registry: Registry[Any] = Registry().with_resource(batch["$id"], Resource.from_contents(batch))
    # Formats matter: the schema's ``ip`` is oneOf ipv4 / ipv6, told apart only by format.
    return Draft7Validator(bulk, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


BULK_SCHEMA = _bulk_validator()
_validated = {"batches": 0}


def schema_errors(batches: list[dict[str, Any]]) -> list[str]:
    """mParticle's schema verdict on a list of batches: one line per problem."""
    return [
        f"batch {error.path[0] if error.path else '?'}: {'/'.join(map(str, error.path))}: {error.message}"
        for error in BULK_SCHEMA.iter_errors(batches)
    ]


@pytest.fixture
def server() -> Iterator[DevServer]:
    """A fresh local endpoint; what it accepted must satisfy mParticle's schema."""
    with DevServer(key=KEY, secret=SECRET) as dev:
        yield dev
        received = [record["batch"] for record in dev.batches()]
    errors = schema_errors(received)
    _validated["batches"] += len(received)
    assert not errors, "batches that mParticle's schema rejects:\n" + "\n".join(errors)


@pytest.fixture
def own(server: DevServer) -> Iterator[Callable[[Client], Client]]:
    """Register clients a test builds itself, so each is shut down when the test ends.

    It depends on ``server`` so that clients are shut down (and deliver) before the
    server stops and checks what it received.
    """
    clients: list[Client] = []

    def keep(client: Client) -> Client:
        clients.append(client)
        return client

    yield keep
    for client in clients:
        client.shutdown(timeout=5)


@pytest.fixture
def make_client(server: DevServer, own: Callable[[Client], Client]) -> Callable[..., Client]:
    """Build clients for the test's server; each is shut down when the test ends."""

    def make(**options: Any) -> Client:
        options.setdefault("upload_interval", 0.05)
        return own(Client(KEY, secret=SECRET, host=server.url, **options))

    return make


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


@pytest.fixture(autouse=True)
def _module_state() -> Iterator[None]:
    """Tests that touch the module face must not leak settings or clients into each other."""
    saved = {name: getattr(mparticle_analytics, name) for name in _MODULE_SETTINGS}
    logger = logging.getLogger("mparticle_analytics")
    handlers, level = list(logger.handlers), logger.level
    yield
    if mparticle_analytics.default_client is not None:
        mparticle_analytics.default_client.shutdown(timeout=5)
    for name, value in saved.items():
        setattr(mparticle_analytics, name, value)
    logger.handlers[:] = handlers
    logger.setLevel(level)


_MODULE_SETTINGS = [
    "write_key", "secret", "environment", "host", "on_error", "debug", "log_handler", "send",
    "sync_mode", "max_queue_size", "gzip", "timeout", "max_retries", "proxies", "thread",
    "upload_size", "upload_interval", "max_total_backoff_duration", "max_rate_limit_duration",
    "anonymous_id_identity", "ecommerce", "historical", "shutdown_timeout", "oauth_client_id",
    "oauth_client_key", "oauth_key_id", "oauth_auth_server", "oauth_scope", "default_client",
]


def received(server: DevServer) -> list[dict[str, Any]]:
    """The batches the server accepted, as sent."""
    return [record["batch"] for record in server.batches()]


def events(server: DevServer) -> list[dict[str, Any]]:
    """Every event the server accepted, in arrival order."""
    return [event for batch in received(server) for event in batch.get("events") or []]


def only_batch(server: DevServer) -> dict[str, Any]:
    """The one batch the server accepted (fails when there is not exactly one)."""
    batches = received(server)
    assert len(batches) == 1, batches
    return batches[0]


def only_event(server: DevServer) -> dict[str, Any]:
    """The one event the server accepted (fails when there is not exactly one)."""
    found = events(server)
    assert len(found) == 1, found
    return found[0]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(
        f"mParticle schema: {_validated['batches']} delivered batches validated"
    )
