"""The devserver over real HTTP: mParticle's rules, the JSON API, faults and the CLI.

Each test starts its own server on a free port. Nothing sleeps to synchronise:
tests wait on the HTTP answer or on ``DevServer.wait_for``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional
from unittest.mock import ANY

import pytest
import requests

from mparticle_analytics import cli
from mparticle_analytics.devserver import DevServer
from mparticle_analytics.devserver import __main__ as devserver_main
from mparticle_analytics.devserver.command import configure_parser, run

AUTH = ("test-key", "test-secret")
HOUR_MS = 3_600_000
BULK = "/v2/bulkevents"
EVENTS = "/v2/events"
HISTORICAL = "/v2/bulkevents/historical"
LOGGER = "mparticle_analytics.devserver"


@pytest.fixture
def server() -> Iterator[DevServer]:
    """Replaces conftest's schema-checked server: these tests send invalid batches on purpose."""
    with DevServer() as running:
        yield running


def now_ms() -> int:
    return int(time.time() * 1000)


def event(event_type: str = "custom_event", **data: Any) -> dict[str, Any]:
    return {"event_type": event_type, "data": {"event_name": "Played", **data}}


def batch(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "events": list(events) if events else [event()],
        "user_identities": {"customer_id": "user-1"},
        "environment": "development",
        **fields,
    }


def compact(document: Any) -> bytes:
    """The measure mParticle's batch limit uses: compact UTF-8 JSON."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def padded_batch(size: int, tail: str = "") -> dict[str, Any]:
    """A batch whose compact UTF-8 JSON is exactly ``size`` bytes; ``tail`` ends the padding."""
    padded = batch(user_attributes={"padding": tail})
    missing = size - len(compact(padded))
    padded["user_attributes"]["padding"] = "x" * missing + tail
    assert len(compact(padded)) == size
    return padded


def post(
    server: DevServer,
    path: str,
    document: Any,
    *,
    auth: Optional[tuple[str, str]] = AUTH,
    headers: Optional[dict[str, str]] = None,
) -> requests.Response:
    """POST ``document`` (bytes as they are, anything else as compact JSON)."""
    body = document if isinstance(document, bytes) else compact(document)
    return requests.post(
        server.url + path,
        data=body,
        auth=auth,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=10,
    )


def assert_error(response: requests.Response, status: int, code: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"errors": [{"code": code, "message": ANY}]}
    assert fragment in response.json()["errors"][0]["message"]


# --- ingest paths -----------------------------------------------------------


@pytest.mark.parametrize("path", [EVENTS, BULK, HISTORICAL])
def test_each_path_accepts_and_stores(server: DevServer, path: str) -> None:
    sent = batch(event(timestamp_unixtime_ms=now_ms() - 100 * HOUR_MS), source_request_id="r-1")
    body = compact(sent if path == EVENTS else [sent])

    response = post(server, path, body, headers={"User-Agent": "demo/1.0"})

    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
    assert response.headers["X-mp-rate-limit-percentage-used"] == "0"
    assert server.batches() == [{"seq": 1, "request": 1, "path": path, "received_at": ANY, "batch": sent}]
    assert server.requests() == [
        {
            "seq": 1,
            "method": "POST",
            "path": path,
            "status": 202,
            "received_at": ANY,
            "user_agent": "demo/1.0",
            "content_encoding": None,
            "api_key": "test-key",
            "body_bytes": len(body),
            "decoded_bytes": len(body),
            "batches": 1,
            "error": None,
            "fault": None,
        }
    ]


def test_keep_alive_connection_survives_success_and_error(server: DevServer) -> None:
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    token = base64.b64encode(b"test-key:test-secret").decode()
    try:
        for body, status in ((compact([batch()]), 202), (b"[", 400), (compact([batch()]), 202)):
            connection.request("POST", BULK, body, {"Authorization": f"Basic {token}"})
            response = connection.getresponse()
            response.read()
            assert response.status == status
            assert not response.will_close
    finally:
        connection.close()
    assert len(server.batches()) == 2


def test_log_line_per_accepted_batch(server: DevServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sent = batch(
        event(),
        event(),
        event("screen_view", screen_name="Home"),
        user_identities={"customer_id": "user-1", "other": "anon-9"},
        user_attributes={"a": 1, "b": 2, "c": 3, "d": 4},
    )

    assert post(server, BULK, [sent, batch()]).status_code == 202

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("batch ")]
    assert lines == [
        "batch 1 (bulkevents) user customer_id=user-1 other=anon-9: 3 events "
        f"[custom_event x2, screen_view], 4 user attributes, {len(compact(sent)):,} bytes",
        f"batch 2 (bulkevents) user customer_id=user-1: 1 event [custom_event], "
        f"0 user attributes, {len(compact(batch())):,} bytes",
    ]


# --- auth -------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer abc",
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
)
def test_missing_or_unparseable_auth_is_401(server: DevServer, authorization: Optional[str]) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = post(server, BULK, [batch()], auth=None, headers=headers)

    assert_error(response, 401, "UNAUTHORIZED")
    assert server.batches() == []
    assert server.requests()[0]["status"] == 401


def test_wrong_credentials_are_403_and_secret_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    secret = "configured-secret-7f3a"
    with DevServer(key="right-key", secret=secret) as server:
        wrong_key = post(server, BULK, [batch()], auth=("wrong-key", secret))
        wrong_secret = post(server, BULK, [batch()], auth=("right-key", "guessed-secret"))
        right = post(server, BULK, [batch()], auth=("right-key", secret))
        records = server.requests()

    assert_error(wrong_key, 403, "FORBIDDEN", "'wrong-key'")
    assert_error(wrong_secret, 403, "FORBIDDEN", "secret does not match")
    assert right.status_code == 202
    assert [r["api_key"] for r in records] == ["wrong-key", "right-key", "right-key"]
    seen = caplog.text + json.dumps(records) + wrong_key.text + wrong_secret.text + repr(server)
    assert caplog.records
    for value in (secret, "guessed-secret"):
        assert value not in seen


@pytest.mark.parametrize(
    ("key", "secret", "auth", "status"),
    [
        ("k", None, ("k", "any-secret"), 202),
        ("k", None, ("other", "any-secret"), 403),
        (None, "s", ("any-key", "s"), 202),
        (None, "s", ("any-key", "other"), 403),
    ],
)
def test_only_configured_credentials_are_checked(
    key: Optional[str], secret: Optional[str], auth: tuple[str, str], status: int
) -> None:
    with DevServer(key=key, secret=secret) as server:
        assert post(server, BULK, [batch()], auth=auth).status_code == status


# --- encoding and limits ----------------------------------------------------


def test_gzip_body_is_accepted(server: DevServer) -> None:
    body = compact([batch(), batch()])
    compressed = gzip.compress(body)

    response = post(server, BULK, compressed, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 202
    assert [r["batch"] for r in server.batches()] == [batch(), batch()]
    [record] = server.requests()
    assert record["content_encoding"] == "gzip"
    assert (record["body_bytes"], record["decoded_bytes"]) == (len(compressed), len(body))


def test_broken_gzip_is_400(server: DevServer) -> None:
    response = post(server, BULK, b"not gzip", headers={"Content-Encoding": "gzip"})
    assert_error(response, 400, "BAD_REQUEST", "gzip")


@pytest.mark.parametrize("use_gzip", [False, True])
@pytest.mark.parametrize(("size", "status"), [(262_143, 202), (262_144, 413)])
def test_request_must_be_under_256_kb(server: DevServer, size: int, status: int, use_gzip: bool) -> None:
    # "[" + first + "," + second + "]": three bytes of array around two batches.
    first, second = padded_batch(131_072), padded_batch(size - 3 - 131_072)
    body = b"[" + compact(first) + b"," + compact(second) + b"]"
    assert len(body) == size
    headers = {"Content-Encoding": "gzip"} if use_gzip else {}

    response = post(server, BULK, gzip.compress(body) if use_gzip else body, headers=headers)

    if status == 202:
        assert response.status_code == 202
        assert len(server.batches()) == 2
    else:
        assert_error(response, 413, "REQUEST_TOO_LARGE", "262,144")
        assert server.batches() == []


@pytest.mark.parametrize(("count", "status"), [(100, 202), (101, 400)])
def test_at_most_100_batches_per_request(server: DevServer, count: int, status: int) -> None:
    response = post(server, BULK, [batch() for _ in range(count)])

    assert response.status_code == status
    assert len(server.batches()) == (count if status == 202 else 0)
    assert server.requests()[0]["batches"] == count
    if status == 400:
        assert_error(response, 400, "BAD_REQUEST", "101 batches")


@pytest.mark.parametrize(
    ("size", "tail", "status"),
    [
        (131_072, "", 202),
        (131_073, "", 400),
        # Bytes, not characters: "é" is two bytes in UTF-8.
        (131_072, "é" * 1000, 202),
        (131_073, "é" * 1000, 400),
    ],
)
def test_batch_at_most_128_kb(server: DevServer, size: int, tail: str, status: int) -> None:
    response = post(server, EVENTS, padded_batch(size, tail))

    assert response.status_code == status
    if status == 400:
        assert_error(response, 400, "BAD_REQUEST", f"{size:,} bytes")
    assert len(server.batches()) == (1 if status == 202 else 0)


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        (BULK, b'[{"events": [', "malformed JSON"),
        (BULK, b'{"events": []}', "array of batches"),
        (BULK, b"[1]", "batches[0] is a number"),
        (EVENTS, b"[{}]", "one batch object"),
        (EVENTS, b'{"events": {}}', "events is an object"),
        (EVENTS, b'{"events": [1]}', "events[0] is a number"),
        (EVENTS, b'{"events": [{"data": {}}]}', "lacks event_type"),
        (EVENTS, b'{"events": [{"event_type": "custom_event"}]}', "lacks data"),
        (EVENTS, b'{"mpid": NaN}', "NaN"),
        (EVENTS, b"\xff", "UTF-8"),
    ],
)
def test_malformed_bodies_are_400(server: DevServer, path: str, body: bytes, fragment: str) -> None:
    response = post(server, path, body)

    assert_error(response, 400, "BAD_REQUEST", fragment)
    assert server.batches() == []
    assert server.requests()[0]["error"] == response.json()["errors"][0]["message"]


# --- historical rule --------------------------------------------------------


def test_historical_path_records_young_or_undated_batches_as_rejected(server: DevServer) -> None:
    old = batch(event(timestamp_unixtime_ms=now_ms() - 73 * HOUR_MS))
    young = batch(
        event(timestamp_unixtime_ms=now_ms() - 100 * HOUR_MS),
        event(timestamp_unixtime_ms=now_ms() - 71 * HOUR_MS),
    )
    undated = batch(event())
    empty = batch(events=[])

    response = post(server, HISTORICAL, [old, young, undated, empty])

    assert response.status_code == 202
    assert [r["batch"] for r in server.batches()] == [old]
    rejected = server.rejected()
    assert [r["batch"] for r in rejected] == [young, undated, empty]
    assert [r["seq"] for r in rejected] == [1, 2, 3]
    assert all(r["request"] == 1 and r["path"] == HISTORICAL for r in rejected)
    assert "events[1] is less than 72 hours old" in rejected[0]["reason"]
    assert rejected[1]["reason"] == "events[0] has no data.timestamp_unixtime_ms"
    assert rejected[2]["reason"] == "no events"


def test_historical_rule_applies_only_to_historical_path(server: DevServer) -> None:
    assert post(server, BULK, [batch(events=[])]).status_code == 202
    assert len(server.batches()) == 1
    assert server.rejected() == []


# --- routing ----------------------------------------------------------------


def test_unknown_path_is_404_and_wrong_method_is_405(server: DevServer) -> None:
    assert_error(post(server, "/v2/bulkevent", [batch()]), 404, "NOT_FOUND", "/v2/bulkevent")
    assert_error(requests.get(server.url + "/api/nothing", timeout=10), 404, "NOT_FOUND")

    for method, url in (("GET", EVENTS), ("DELETE", BULK), ("POST", "/api/batches")):
        response = requests.request(method, server.url + url, timeout=10)
        assert_error(response, 405, "METHOD_NOT_ALLOWED", method)
        assert response.headers["Allow"] == ("GET" if url.startswith("/api") else "POST")


# --- faults -----------------------------------------------------------------


def test_status_fault_answers_that_status_then_recovers(server: DevServer) -> None:
    server.add_fault(status=503, retry_after="2", count=2)

    responses = [post(server, BULK, [batch()]) for _ in range(3)]

    for response in responses[:2]:
        assert_error(response, 503, "SERVICE_UNAVAILABLE", "injected")
        assert response.headers["Retry-After"] == "2"
    assert responses[2].status_code == 202
    assert "Retry-After" not in responses[2].headers
    assert [r["status"] for r in server.requests()] == [503, 503, 202]
    assert server.requests()[0]["fault"] == {"status": 503, "retry_after": "2"}
    assert len(server.batches()) == 1


def test_faults_are_used_in_the_order_configured(server: DevServer) -> None:
    http_date = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.add_fault(status=500)
    server.add_fault(status=429, retry_after=http_date)

    statuses = [post(server, BULK, [batch()]) for _ in range(3)]

    assert [r.status_code for r in statuses] == [500, 429, 202]
    assert statuses[1].headers["Retry-After"] == http_date


def test_drop_before_closes_without_storing(server: DevServer) -> None:
    server.add_fault(drop="before")

    with pytest.raises(requests.ConnectionError):
        post(server, BULK, [batch()])

    assert server.batches() == []
    [record] = server.requests()
    assert record["status"] is None
    assert record["fault"] == {"drop": "before"}
    assert post(server, BULK, [batch()]).status_code == 202


def test_drop_after_stores_then_closes(server: DevServer) -> None:
    server.add_fault(drop="after")
    sent = batch(source_request_id="same-id")

    with pytest.raises(requests.ConnectionError):
        post(server, BULK, [sent])
    assert [r["batch"] for r in server.batches()] == [sent]

    # The client's retry resends the same source_request_id; both copies are kept.
    assert post(server, BULK, [sent]).status_code == 202
    assert [r["batch"]["source_request_id"] for r in server.batches()] == ["same-id"] * 2


def test_delay_fault_answers_late(server: DevServer) -> None:
    server.add_fault(delay=0.3)
    started = time.monotonic()

    response = post(server, BULK, [batch()])

    assert response.status_code == 202
    assert time.monotonic() - started >= 0.3
    assert len(server.batches()) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"status": 503, "drop": "after"},
        {"status": 200},
        {"drop": "sideways"},
        {"delay": -1.0},
        {"retry_after": "2"},
        {"status": 503, "retry_after": "2\r\nX-Injected: 1"},
        {"status": 503, "count": 0},
    ],
)
def test_add_fault_rejects_invalid_faults(server: DevServer, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        server.add_fault(**kwargs)
    assert requests.get(server.url + "/api/faults", timeout=10).json() == {"faults": []}


def test_faults_api(server: DevServer) -> None:
    faults_url = server.url + "/api/faults"
    wanted = [{"status": 503, "retry_after": "1", "count": 2}, {"drop": "after", "count": 1}]

    created = requests.post(faults_url, json=wanted, timeout=10)
    assert created.status_code == 200
    assert created.json() == {"faults": wanted}

    assert post(server, BULK, [batch()]).status_code == 503
    pending = requests.get(faults_url, timeout=10).json()["faults"]
    assert pending == [{"status": 503, "retry_after": "1", "count": 1}, wanted[1]]

    assert requests.delete(faults_url, timeout=10).json() == {"faults": []}
    assert post(server, BULK, [batch()]).status_code == 202

    for bad in ({"status": 503, "bogus": 1}, [{"status": 503}, {"count": 1}], "{", 7):
        data = bad if isinstance(bad, str) else json.dumps(bad)
        assert_error(requests.post(faults_url, data=data, timeout=10), 400, "BAD_REQUEST")
    assert requests.get(faults_url, timeout=10).json() == {"faults": []}


# --- JSON API and Python API ------------------------------------------------


def test_api_lists_and_reset(server: DevServer) -> None:
    young = batch(event(timestamp_unixtime_ms=now_ms()))
    post(server, BULK, [batch()])
    post(server, HISTORICAL, [young])
    server.add_fault(status=500)

    def get(name: str) -> Any:
        return requests.get(f"{server.url}/api/{name}", timeout=10).json()

    assert get("batches") == {"batches": server.batches()}
    assert get("requests") == {"requests": server.requests()}
    assert get("rejected") == {"rejected": server.rejected()}
    assert len(server.requests()) == 2  # /api requests are not recorded
    assert [r["batch"] for r in server.rejected()] == [young]

    assert requests.post(server.url + "/api/reset", timeout=10).status_code == 200
    assert (server.batches(), server.requests(), server.rejected()) == ([], [], [])
    assert get("faults") == {"faults": []}
    post(server, BULK, [batch()])
    assert server.batches()[0]["seq"] == 1


def test_readers_return_copies(server: DevServer) -> None:
    post(server, BULK, [batch()])
    server.batches()[0]["batch"]["events"].clear()
    assert server.batches()[0]["batch"] == batch()


def test_wait_for_times_out_with_false(server: DevServer) -> None:
    started = time.monotonic()
    assert server.wait_for(lambda s: len(s.batches()) > 0, timeout=0.05) is False
    assert time.monotonic() - started < 2


def _batches_over_http(server: DevServer) -> list[dict[str, Any]]:
    batches: list[dict[str, Any]] = requests.get(server.url + "/api/batches", timeout=5).json()["batches"]
    return batches


@pytest.mark.parametrize("read", [DevServer.batches, _batches_over_http], ids=["python", "http"])
def test_wait_for_wakes_when_a_request_is_stored(
    server: DevServer, read: Callable[[DevServer], list[dict[str, Any]]]
) -> None:
    # The "http" case proves the predicate runs without the store's lock held.
    sender = threading.Thread(target=post, args=(server, BULK, [batch(), batch()]))
    sender.start()
    try:
        assert server.wait_for(lambda s: len(read(s)) == 2, timeout=5)
    finally:
        sender.join(5)


def test_lifecycle() -> None:
    server = DevServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    server.start()
    with pytest.raises(RuntimeError):
        server.start()
    url = server.url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    server.stop()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/api/batches", timeout=2)


# --- command line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("main", "argv"),
    [(cli.main, ["--help"]), (cli.main, ["devserver", "--help"]), (devserver_main.main, ["-h"])],
)
def test_help_exits_zero(main: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [[], ["--host", "0.0.0.0", "--port", "0", "--key", "K", "--secret", "S", "-v"]]
)
def test_cli_and_module_share_the_devserver_parser(argv: list[str]) -> None:
    from_cli = cli.build_parser().parse_args(["devserver", *argv])
    from_module = configure_parser(argparse.ArgumentParser()).parse_args(argv)

    assert vars(from_cli) == vars(from_module)
    assert from_cli.func is run


def test_parser_defaults_and_port_range(capsys: pytest.CaptureFixture[str]) -> None:
    args = configure_parser(argparse.ArgumentParser()).parse_args([])
    assert (args.host, args.port, args.key, args.secret) == ("127.0.0.1", 8765, None, None)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["devserver", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "65535" in capsys.readouterr().err


@pytest.mark.skipif(os.name == "nt", reason="sends SIGINT")
def test_module_serves_until_ctrl_c() -> None:
    secret = "cli-secret-91c2"
    command = [sys.executable, "-m", "mparticle_analytics.devserver", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--key", "K", "--secret", secret],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", first_line)
        assert match, first_line
        response = requests.post(
            match.group(0) + EVENTS, data=compact(batch()), auth=("K", secret), timeout=10
        )
        assert response.status_code == 202
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, err
    assert "requests: 1, batches accepted: 1" in out
    assert "batch 1 (events) user customer_id=user-1" in err
    assert secret not in first_line + out + err
