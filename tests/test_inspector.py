"""The devserver's inspector over real HTTP: the page, ``/api/inspect`` and friends,
SQLite storage across restarts, and fault injection from Python, the API and the command line.

Nothing sleeps to synchronise: tests wait on HTTP answers, ``DevServer.wait_for``
or a subprocess's output.
"""

from __future__ import annotations

import argparse
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mparticle_analytics import Client
from mparticle_analytics.devserver import DevServer
from mparticle_analytics.devserver.command import configure_parser, describe_fault, fault_plans

AUTH = ("test-key", "test-secret")
BULK = "/v2/bulkevents"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[DevServer]:
    """Replaces conftest's schema-checked server: these tests send invalid batches on purpose."""
    with DevServer() as running:
        yield running


def event(name: str = "Played", **data: Any) -> dict[str, Any]:
    return {"event_type": "custom_event", "data": {"event_name": name, "custom_event_type": "other", **data}}


def batch(user: str = "user-1", *events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "environment": "development",
        "user_identities": {"customer_id": user},
        "events": list(events) if events else [event()],
        **fields,
    }


BROKEN = {
    "environment": "development",
    "user_identities": {"email": "b@example.com"},
    "events": [{"event_type": "custom_event", "data": {"event_name": "Oops"}}],
}


def post(server: DevServer, document: Any, path: str = BULK) -> requests.Response:
    return requests.post(server.url + path, json=document, auth=AUTH, timeout=10)


def api(server: DevServer, name: str, **query: Any) -> Any:
    response = requests.get(f"{server.url}/api/{name}", params=query, timeout=40)
    assert response.status_code == 200, response.text
    return response.json()


# --- the page -----------------------------------------------------------------


def test_page_is_one_self_contained_document(server: DevServer) -> None:
    response = requests.get(server.url + "/", timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    html = response.text
    assert "<script>" in html and "<style>" in html
    # No external URL at all: no src/href to another place, no fetch of anything but /api/.
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", html)
    assert not re.search(r"https?://", html.replace("https://example.com", ""))
    assert re.findall(r"fetch\(\"([^\"]+)", html) == ["/api/inspect?"]
    assert requests.head(server.url + "/", timeout=10).content == b""
    assert requests.get(server.url + "/favicon.ico", timeout=10).status_code == 404
    assert requests.post(server.url + "/", timeout=10).status_code == 405
    assert server.requests() == []  # page requests are not ingest requests


# --- /api/inspect and the other views -----------------------------------------


def test_inspect_shows_batches_by_user_with_events_and_problems(server: DevServer) -> None:
    stamp = 1_700_000_000_000
    assert (
        post(
            server,
            [
                batch(
                    "user-1",
                    event(
                        "Signed Up",
                        timestamp_unixtime_ms=stamp,
                        custom_attributes={"plan": "pro", "source.campaign": "spring"},
                    ),
                ),
                BROKEN,
                batch("user-2", {"event_type": "screen_view", "data": {"screen_name": "Home"}}),
            ],
        ).status_code
        == 202
    )

    data = api(server, "inspect")

    assert data["latest"] == 3 and data["since"] == 0
    assert data["summary"] == {
        "events": 3,
        "batches": 3,
        "rejected": 0,
        "users": 3,
        "problems": {"error": 1, "warning": 0, "info": 0},
    }
    first, broken, third = data["batches"]
    assert first["user"] == {
        "key": "customer_id:user-1",
        "label": "user-1",
        "identities": {"customer_id": "user-1"},
        "mpid": None,
    }
    assert first["events"] == [
        {
            "index": 0,
            "type": "custom_event",
            "name": "Signed Up",
            "timestamp_ms": stamp,
            "time": "2023-11-14T22:13:20.000Z",
            "attributes": {"plan": "pro", "source.campaign": "spring"},
            "fields": {"custom_event_type": "other"},
        }
    ]
    assert (first["id"], first["seq"], first["status"], first["path"]) == (1, 1, "accepted", BULK)
    assert broken["user"]["key"] == "email:b@example.com"
    assert broken["counts"] == {"error": 1, "warning": 0, "info": 0}
    assert broken["problems"] == [
        {
            "path": "$.events[0].data",
            "rule": "schema.required",
            "message": "CustomEvent data requires 'custom_event_type'",
            "severity": "error",
        }
    ]
    assert third["events"][0]["name"] == "Home"

    assert [b["id"] for b in api(server, "inspect", since=2)["batches"]] == [3]
    assert [u["user"] for u in api(server, "users")["users"]] == [
        "customer_id:user-2",
        "email:b@example.com",
        "customer_id:user-1",
    ]
    assert api(server, "problems") == {
        "problems": [
            {
                "batch": 2,
                "status": "accepted",
                "seq": 2,
                "user": "email:b@example.com",
                **broken["problems"][0],
            }
        ]
    }
    assert server.problems() == api(server, "problems")["problems"]
    assert api(server, "summary") == data["summary"]


def test_inspect_filters_by_user_and_event_name(server: DevServer) -> None:
    post(
        server,
        [
            batch("alice", event("Signed Up"), event("Played")),
            batch("bob", event("Played")),
            {"mpid": 42, "events": [event("Signed Up")]},
        ],
    )

    def shown(**query: str) -> list[tuple[str, list[str]]]:
        return [
            (b["user"]["key"], [e["name"] for e in b["events"]])
            for b in api(server, "inspect", **query)["batches"]
        ]

    assert shown(user="ALI") == [("customer_id:alice", ["Signed Up", "Played"])]
    assert shown(user="42") == [("mpid:42", ["Signed Up"])]
    assert shown(event="signed") == [("customer_id:alice", ["Signed Up"]), ("mpid:42", ["Signed Up"])]
    assert shown(event="custom_event", user="bob") == [("customer_id:bob", ["Played"])]
    assert shown(user="nobody") == []
    assert api(server, "summary", event="played")["events"] == 2
    assert [u["user"] for u in api(server, "users", user="bob")["users"]] == ["customer_id:bob"]


def test_historical_rejections_are_shown_with_their_reason(server: DevServer) -> None:
    post(
        server,
        [batch("old", event(timestamp_unixtime_ms=int(time.time() * 1000)))],
        "/v2/bulkevents/historical",
    )

    [view] = api(server, "inspect")["batches"]

    assert (view["status"], view["seq"]) == ("rejected", 1)
    assert "less than 72 hours old" in view["reason"]
    assert server.rejected()[0]["reason"] == view["reason"]


def test_long_poll_answers_as_soon_as_a_batch_arrives(server: DevServer) -> None:
    generation = api(server, "inspect")["generation"]
    answers: list[Any] = []
    poller = threading.Thread(
        target=lambda: answers.append(api(server, "inspect", since=0, wait=20, gen=generation))
    )
    started = time.monotonic()
    poller.start()
    try:
        # The poll is parked before the batch arrives only if it is still waiting now.
        assert not server.wait_for(lambda s: bool(answers), timeout=0.2)
        post(server, [batch()])
    finally:
        poller.join(10)
    assert time.monotonic() - started < 10
    assert [b["id"] for b in answers[0]["batches"]] == [1]


def test_long_poll_returns_at_once_after_a_reset_or_when_the_server_stops() -> None:
    with DevServer() as server:
        post(server, [batch()])
        old = api(server, "inspect")["generation"]
        requests.post(server.url + "/api/reset", timeout=10)
        started = time.monotonic()
        after = api(server, "inspect", since=1, wait=20, gen=old)
        assert time.monotonic() - started < 5
        assert (after["generation"] != old, after["since"], after["batches"]) == (True, 0, [])

        answers: list[Any] = []
        poller = threading.Thread(
            target=lambda: answers.append(
                requests.get(
                    server.url + "/api/inspect",
                    params={"since": 0, "wait": 20, "gen": after["generation"]},
                    timeout=30,
                )
            )
        )
        poller.start()
        assert not server.wait_for(lambda s: bool(answers), timeout=0.2)
        started = time.monotonic()
    poller.join(10)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("query", [{"since": "x"}, {"wait": "-1"}, {"wait": "nan"}])
def test_inspect_rejects_bad_query_values(server: DevServer, query: dict[str, str]) -> None:
    response = requests.get(server.url + "/api/inspect", params=query, timeout=10)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "BAD_REQUEST"


# --- SQLite -------------------------------------------------------------------


def test_db_keeps_a_session_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "session.db"
    with DevServer(db=db) as first:
        post(first, [batch("user-1"), BROKEN])
        post(
            first,
            [batch("young", event(timestamp_unixtime_ms=int(time.time() * 1000)))],
            "/v2/bulkevents/historical",
        )
        before = (first.batches(), first.requests(), first.rejected(), first.problems())

    with DevServer(db=db) as second:
        assert (second.batches(), second.requests(), second.rejected(), second.problems()) == before
        assert [b["user"]["key"] for b in api(second, "inspect")["batches"]] == [
            "customer_id:user-1",
            "email:b@example.com",
            "customer_id:young",
        ]
        post(second, [batch("user-3")])
        assert [r["seq"] for r in second.batches()] == [1, 2, 3]
        assert [r["seq"] for r in second.requests()] == [1, 2, 3]

    # The file can be queried on its own.
    with sqlite3.connect(db) as connection:
        rules = connection.execute("SELECT rule, severity FROM problems").fetchall()
        users = [row[0] for row in connection.execute("SELECT user FROM batches ORDER BY id")]
        names = connection.execute(
            "SELECT json_extract(batch, '$.events[0].data.event_name') FROM batches WHERE id = 2"
        ).fetchone()
    assert rules == [("schema.required", "error")]
    assert users == ["customer_id:user-1", "email:b@example.com", "customer_id:young", "customer_id:user-3"]
    assert names == ("Oops",)

    with DevServer(db=db) as third:
        requests.post(third.url + "/api/reset", timeout=10)
    with DevServer(db=db) as fourth:
        assert (fourth.batches(), fourth.requests()) == ([], [])


def test_db_that_is_not_a_devserver_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(b"not a database at all" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        DevServer(db=other)
    with sqlite3.connect(tmp_path / "newer.db") as connection:
        connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        connection.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    with pytest.raises(sqlite3.DatabaseError, match="schema version 99"):
        DevServer(db=tmp_path / "newer.db")


# --- random faults and latency ------------------------------------------------


def statuses(server: DevServer, count: int) -> list[int]:
    session = requests.Session()
    return [
        session.post(server.url + BULK, json=[batch()], auth=AUTH, timeout=10).status_code
        for _ in range(count)
    ]


def test_random_failures_with_a_seed_repeat_exactly() -> None:
    runs = []
    for _ in range(2):
        with DevServer() as server:
            server.add_fault(status=503, retry_after="1", rate=0.3, seed=42)
            runs.append(statuses(server, 40))
            failed = [r for r in server.requests() if r["status"] == 503]
            assert all(r["fault"] == {"status": 503, "retry_after": "1", "random": True} for r in failed)
    assert runs[0] == runs[1]
    assert 3 <= runs[0].count(503) <= 25 and runs[0].count(202) + runs[0].count(503) == 40


def test_counted_faults_come_first_then_random_ones_and_latency_applies_to_all(server: DevServer) -> None:
    server.add_fault(delay=0.05, rate=1)
    server.add_fault(status=500, count=1)
    server.add_fault(status=429, rate=1)
    started = time.monotonic()

    assert statuses(server, 2) == [500, 429]

    assert time.monotonic() - started >= 0.1
    assert [r["fault"] for r in server.requests()] == [
        {"delay": 0.05, "status": 500, "random": True},
        {"delay": 0.05, "status": 429, "random": True},
    ]
    assert server.faults() == [{"delay": 0.05, "rate": 1.0}, {"status": 429, "rate": 1.0}]
    requests.delete(server.url + "/api/faults", timeout=10)
    assert statuses(server, 1) == [202]


def test_faults_api_takes_rates_and_seeds(server: DevServer) -> None:
    url = server.url + "/api/faults"
    wanted = [{"drop": "before", "rate": 0.5, "seed": 7}, {"delay": 0.01, "rate": 1.0}]
    assert requests.post(url, json=wanted, timeout=10).json() == {"faults": wanted}
    for bad in (
        {"status": 503, "rate": 0},
        {"status": 503, "rate": 1.5},
        {"status": 503, "seed": 1},
        {"status": 503, "rate": 0.5, "count": 2},
        {"status": 503, "rate": 0.5, "seed": "x"},
        {"status": 503, "rate": True},
    ):
        response = requests.post(url, json=bad, timeout=10)
        assert response.status_code == 400, bad
    assert requests.get(url, timeout=10).json() == {"faults": wanted}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 503, "rate": 0.0},
        {"status": 503, "seed": 3},
        {"status": 503, "rate": 0.5, "count": 1},
        {"delay": 0.1, "rate": float("nan")},
    ],
)
def test_add_fault_rejects_bad_rates(server: DevServer, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        server.add_fault(**kwargs)
    assert server.faults() == []


# --- the command line's fault options -----------------------------------------


def plans(*argv: str) -> list[dict[str, Any]]:
    return fault_plans(configure_parser(argparse.ArgumentParser()).parse_args(list(argv)))


def test_fault_options_become_faults() -> None:
    assert plans() == []
    assert plans(
        "--fail", "503", "--fail-count", "3", "--retry-after", "2", "--drop", "before", "--latency", "0.5"
    ) == [
        {"status": 503, "retry_after": "2", "count": 3},
        {"drop": "before", "count": 3},
        {"delay": 0.5, "rate": 1},
    ]
    assert plans("--failure-rate", "0.1", "--seed", "42") == [{"status": 503, "rate": 0.1, "seed": 42}]
    assert plans("--fail", "429", "--failure-rate", "0.2", "--retry-after", "5") == [
        {"status": 429, "retry_after": "5", "rate": 0.2}
    ]
    assert [
        describe_fault(p)
        for p in plans(
            "--fail", "503", "--fail-count", "3", "--retry-after", "2", "--latency", "0.5", "--drop", "after"
        )
    ] == [
        "answer 503 with Retry-After 2: the next 3 requests",
        "drop the connection after storing: the next 3 requests",
        "wait 0.5 s: every request",
    ]
    assert describe_fault({"status": 503, "rate": 0.1, "seed": 42}) == (
        "answer 503: each request with probability 0.1, seed 42"
    )
    for argv in (("--seed", "1"), ("--retry-after", "2")):
        with pytest.raises(ValueError):
            plans(*argv)


def _serve(*argv: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mparticle_analytics.devserver", "--port", "0", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", first_line)
    if match is None:
        process.kill()
        rest = process.communicate()[0]
        process.stdout.close()
        pytest.fail(f"no URL in {first_line!r}: {rest}")
    return process, match.group(0)


def _stop(process: subprocess.Popen[str], how: int = signal.SIGINT) -> str:
    """Ctrl-C (or ``how``), then everything it printed after its first line (stdout and the log)."""
    assert process.stdout is not None
    process.send_signal(how)
    try:
        # Read through the pipe's buffer: readline() may already hold the next lines.
        out = process.stdout.read()
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    assert process.returncode == 0, out
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_command_line_faults_and_db(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    process, url = _serve(
        "--fail", "503", "--fail-count", "2", "--retry-after", "1", "--latency", "0.01", "--db", str(db)
    )
    session = requests.Session()
    answers = [session.post(url + BULK, json=[batch()], auth=AUTH, timeout=10) for _ in range(3)]
    out = _stop(process)

    assert [a.status_code for a in answers] == [503, 503, 202]
    assert answers[0].headers["Retry-After"] == "1"
    assert "fault: answer 503 with Retry-After 1: the next 2 requests" in out
    assert "fault: wait 0.01 s: every request" in out
    assert "batches accepted: 1" in out and "problems: 0 errors" in out

    process, url = _serve("--db", str(db))
    inspected = requests.get(url + "/api/inspect", timeout=10).json()
    out = _stop(process, signal.SIGTERM)  # A process manager's stop ends the session cleanly too.
    assert "devserver stopped. requests: 3" in out
    assert "(1 batches from earlier)" in out
    assert [b["user"]["key"] for b in inspected["batches"]] == ["customer_id:user-1"]


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["--seed", "4"], 2, "--seed needs --failure-rate"),
        (["--fail", "200"], 2, "300-599"),
        (["--failure-rate", "2"], 2, "probability"),
        (["--db", "/nonexistent-dir/x.db"], 1, "cannot use --db"),
    ],
)
def test_command_line_refuses_bad_options(argv: list[str], status: int, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mparticle_analytics.devserver", "--port", "0", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == status, result.stderr
    assert message in result.stderr


# --- the README's demo: the library's events, as the page shows them ----------


def test_library_events_appear_in_the_inspector(server: DevServer) -> None:
    client = Client("us1-key", secret="secret", host=server.url, upload_interval=0.05)
    try:
        client.identify("user-42", {"email": "ada@example.com", "firstName": "Ada"})
        client.track("user-42", "Signed Up", {"plan": "pro", "address": {"city": "Berlin"}})
        client.track(anonymous_id="anon-9", event="Viewed Pricing")
        assert client.flush(timeout=10)
    finally:
        client.shutdown(timeout=5)

    data = api(server, "inspect")

    assert data["summary"]["problems"]["error"] == 0
    events = {e["name"]: (b["user"]["key"], e["attributes"]) for b in data["batches"] for e in b["events"]}
    assert events["Signed Up"] == ("customer_id:user-42", {"plan": "pro", "address.city": "Berlin"})
    assert events["Viewed Pricing"][0] == "other:anon-9"


def test_a_store_that_cannot_write_answers_500_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DevServer(db=tmp_path / "full.db") as server:
        store = server._state.store

        def full(*args: Any) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(store, "_persist", full)
        response = post(server, [batch()])
        assert response.status_code == 500
        assert "disk is full" in response.json()["errors"][0]["message"]
        assert (server.batches(), server.requests()) == ([], [])
        monkeypatch.undo()
        assert post(server, [batch()]).status_code == 202
        assert [r["seq"] for r in server.batches()] == [1]
