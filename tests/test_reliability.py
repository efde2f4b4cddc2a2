"""Nothing lost: faults injected at the local endpoint, exit, fork, threads, and failing callbacks.

Each test checks that every event was delivered or reported, and that mParticle,
which keeps one copy per ``source_request_id``, would hold each event once.
"""

from __future__ import annotations

import http.server
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from typing import Any, Callable, ClassVar

import pytest
import requests
from conftest import KEY, SECRET, events, received

from mparticle_analytics import Client, DeliveryError
from mparticle_analytics.devserver import DevServer
from mparticle_analytics.transport import HTTPTransport, Response
from mparticle_analytics.worker import Worker

MakeClient = Callable[..., Client]


class Errors:
    """An ``on_error`` that records what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[Exception, list[dict[str, Any]]]] = []

    def __call__(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        self.calls.append((error, batch))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [message for _, batch in self.calls for message in batch]


def effective_message_ids(server: DevServer) -> Counter[str]:
    """What mParticle keeps: one copy of each batch per ``source_request_id``."""
    kept = {batch["source_request_id"]: batch for batch in received(server)}
    return Counter(
        event["data"]["source_message_id"] for batch in kept.values() for event in batch.get("events") or []
    )


def assert_accounted(client: Client) -> None:
    """Every queued event ended as delivered or dropped with a reason."""
    stats = client.stats()
    dropped = {reason: n for reason, n in stats["dropped"].items() if reason != "queue_full"}
    assert stats["queued"] == stats["delivered"] + sum(dropped.values()), stats


def send(client: Client, count: int, user: str = "user") -> list[str]:
    return [client.track(f"{user}-{n % 7}", "Tested", {"n": n})[1]["messageId"] for n in range(count)]


def assert_delivered_once(server: DevServer, ids: list[str]) -> None:
    kept = effective_message_ids(server)
    assert sorted(kept) == sorted(ids) and set(kept.values()) == {1}


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_a_burst_of_transient_errors_is_retried_and_delivered_once(
    status: int, make_client: MakeClient, server: DevServer
) -> None:
    server.add_fault(status=status, count=2)
    client = make_client()
    ids = send(client, 20)
    assert client.flush(10)
    assert_delivered_once(server, ids)
    assert client.stats()["retried"] == 2
    assert_accounted(client)


@pytest.mark.parametrize("retry_after", ["1", None])
def test_429_is_retried_with_and_without_retry_after(
    retry_after: str, make_client: MakeClient, server: DevServer
) -> None:
    server.add_fault(status=429, retry_after=retry_after)
    client = make_client()
    ids = send(client, 5)
    assert client.flush(10)
    assert_delivered_once(server, ids)
    assert [r["status"] for r in server.requests()] == [429, 202]


def test_a_connection_dropped_before_the_server_counted_it_is_retried(
    make_client: MakeClient, server: DevServer
) -> None:
    server.add_fault(drop="before")
    client = make_client()
    ids = send(client, 5)
    assert client.flush(10)
    assert_delivered_once(server, ids)


def test_a_connection_dropped_after_the_server_counted_it_creates_no_duplicate(
    make_client: MakeClient, server: DevServer
) -> None:
    server.add_fault(drop="after")
    client = make_client()
    ids = send(client, 5)
    assert client.flush(10)
    assert len(received(server)) == 2 * len({b["source_request_id"] for b in received(server)})
    assert_delivered_once(server, ids)


def test_an_answer_slower_than_timeout_is_retried_without_duplicates(
    make_client: MakeClient, server: DevServer
) -> None:
    server.add_fault(delay=1.0)
    client = make_client(timeout=0.2)
    ids = send(client, 5)
    assert client.flush(10)
    assert server.wait_for(lambda s: len(s.batches()) >= 2 * len(effective_message_ids(s)) > 0, 5)
    assert_delivered_once(server, ids)
    assert client.stats()["retried"] >= 1


class Seam:
    """A transport that forwards to the real one unless ``answer`` decides otherwise."""

    def __init__(
        self, server: DevServer, answer: Callable[[bytes], Any],
        text: str = '{"errors":[{"code":"BAD_REQUEST","message":"bad"}]}',
    ):
        self.real = HTTPTransport(f"{server.url}/v2/bulkevents", KEY, SECRET, timeout=5)
        self.answer = answer
        self.text = text
        self.bodies: list[bytes] = []

    def send(self, body: bytes) -> Response:
        self.bodies.append(body)
        verdict = self.answer(body)
        if isinstance(verdict, BaseException):
            raise verdict
        return Response(verdict, {}, self.text) if verdict else self.real.send(body)

    def close(self) -> None:
        self.real.close()


def test_a_400_on_a_multi_batch_request_is_halved_down_to_the_bad_batch(
    make_client: MakeClient, server: DevServer
) -> None:
    errors = Errors()
    seam = Seam(server, lambda body: 400 if b"user-bad" in body else None)
    client = make_client(on_error=errors, upload_size=50, _transport=seam)
    for n in range(40):
        client.track("user-bad" if n == 17 else f"user-{n}", "Tested", {"n": n})
    assert client.flush(10)
    assert len(received(server)) == 39
    assert [m["userId"] for m in errors.messages] == ["user-bad"]
    assert errors.calls[0][0].status == 400
    assert client.stats()["dropped"] == {"bad_request": 1}
    assert len(seam.bodies) <= 2 * 6 + 1  # halving costs about log2(40) requests per side


def test_error_texts_with_braces_and_lone_surrogates_cost_only_their_own_events(
    make_client: MakeClient, server: DevServer
) -> None:
    """Error details quote servers and callers: never read as format strings, never a crash."""
    errors = Errors()
    seam = Seam(server, lambda body: 400 if b"user-bad" in body else None, text='{"message": "bad {field}"}')
    client = make_client(on_error=errors, upload_size=50, _transport=seam)
    for n in range(10):
        client.track("user-bad" if n == 3 else f"user-{n}", "Tested", {"n": n})
    client.track("user-odd", "Odd \ud800", {"s": "\udc00"})
    client.identify("user-odd", {"t": "\ud800 {x}"})
    assert client.flush(10)
    assert [m["userId"] for m in errors.messages] == ["user-bad"]
    assert client.stats()["dropped"] == {"bad_request": 1}
    assert client.stats()["delivered"] == 11
    odd = [e["data"] for e in events(server) if e["data"].get("event_name", "").startswith("Odd")]
    assert odd[0]["event_name"] == "Odd \ud800" and odd[0]["custom_attributes"] == {"s": "\udc00"}
    assert all(thread.is_alive() for thread in client.consumers)


def test_a_413_is_answered_by_splitting_the_request(make_client: MakeClient, server: DevServer) -> None:
    seam = Seam(server, lambda body: 413 if body.count(b"source_request_id") > 10 else None)
    client = make_client(upload_size=40, _transport=seam)
    ids = send(client, 40, user="u")
    for n in range(40):
        ids.append(client.track(f"other-{n}", "Tested")[1]["messageId"])
    assert client.flush(10)
    assert_delivered_once(server, ids)
    assert_accounted(client)


def test_wrong_credentials_are_reported_not_retried(server: DevServer, caplog: Any) -> None:
    errors = Errors()
    client = Client(KEY, secret="wrong-secret", host=server.url, on_error=errors, upload_interval=0.05)
    try:
        send(client, 3)
        assert client.flush(5)
        send(client, 3)
        assert client.flush(5)
    finally:
        client.shutdown(5)
    assert [r["status"] for r in server.requests()] == [403, 403]
    assert len(errors.messages) == 6 and errors.calls[0][0].status == 403
    refusals = [r for r in caplog.records if "refused the credentials" in r.getMessage()]
    assert len(refusals) == 1 and KEY in refusals[0].getMessage()
    assert all("wrong-secret" not in r.getMessage() for r in caplog.records)


class _Redirector(http.server.BaseHTTPRequestHandler):
    """Answers a POST with a 301 to a page that answers a GET with 200, as a misconfigured proxy might."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(301)
        self.send_header("Location", "/moved")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class _CookieSetter(http.server.BaseHTTPRequestHandler):
    """Accepts every POST and records its headers; sets a cookie as a load balancer might,
    then expires it."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(dict(self.headers))
        self.send_response(202)
        expires = "; Max-Age=0" if len(self.seen) == 2 else ""
        self.send_header("Set-Cookie", f"AWSALB=sticky; Path=/{expires}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_requests_carry_the_headers_and_cookies_a_requests_session_would() -> None:
    endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CookieSetter)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    client = Client(KEY, secret=SECRET, host=f"http://127.0.0.1:{endpoint.server_port}")
    try:
        for _ in range(3):
            send(client, 1)
            assert client.flush(5)
    finally:
        client.shutdown(5)
        endpoint.shutdown()
    first, second, third = _CookieSetter.seen
    assert "Cookie" not in first and second["Cookie"] == "AWSALB=sticky" and "Cookie" not in third
    defaults = requests.utils.default_headers()
    assert first["Accept-Encoding"] == defaults["Accept-Encoding"] and first["Accept"] == "*/*"
    assert first["User-Agent"].startswith("mparticle-analytics-python/")


class _Interrupt(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_an_exception_from_a_signal_during_a_call_never_leaves_the_queue_locked() -> None:
    """Ctrl-C or a task time limit can interrupt ``track()`` anywhere; the queue's lock must
    still be released, or every later call, the flush and the exit hook would block."""
    armed = False

    def interrupt(signum: int, frame: Any) -> None:
        nonlocal armed
        if armed:
            armed = False
            raise _Interrupt

    worker: Worker[int] = Worker(lambda items: None, on_lost=lambda items, error: None, threads=0,
                                 max_queue_size=0)
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
    interrupts = left_locked = 0
    try:
        while interrupts < 2000:
            try:
                armed = True
                for _ in range(1000):
                    worker.put(1)
                armed = False
            except _Interrupt:
                interrupts += 1
                if worker._lock.locked():
                    left_locked += 1
                    worker._lock.release()
            worker.queue.items.clear()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert left_locked == 0


def test_a_redirect_is_reported_never_followed_as_a_get_that_would_count_as_delivered() -> None:
    redirector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    errors = Errors()
    client = Client(KEY, secret=SECRET, host=f"http://127.0.0.1:{redirector.server_port}", on_error=errors)
    try:
        send(client, 3)
        assert client.flush(5)
    finally:
        client.shutdown(5)
        redirector.shutdown()
    assert len(errors.messages) == 3 and errors.calls[0][0].status == 301
    assert client.stats()["delivered"] == 0
    assert_accounted(client)


def test_an_on_error_that_raises_never_stops_delivery(make_client: MakeClient, server: DevServer) -> None:
    def explode(error: Exception, batch: list[dict[str, Any]]) -> None:
        raise RuntimeError("callback bug")

    server.add_fault(status=400)
    client = make_client(on_error=explode)
    client.track("solo", "Doomed")  # one batch, so the 400 is final
    assert client.flush(5)
    ids = send(client, 3)
    assert client.flush(5)
    assert_delivered_once(server, ids)
    assert all(thread.is_alive() for thread in client.consumers)
    assert client.stats()["dropped"] == {"bad_request": 1}


def test_flush_or_shutdown_called_from_on_error_does_not_hang(
    make_client: MakeClient, server: DevServer
) -> None:
    answers: list[bool] = []

    def flush_inside(error: Exception, batch: list[dict[str, Any]]) -> None:
        answers.append(client.flush())
        answers.append(client.shutdown())

    server.add_fault(status=400)
    client = make_client(on_error=flush_inside)
    client.track("solo", "Doomed")
    assert client.flush(5)
    assert answers == [False, False]
    ids = send(client, 3)
    assert client.flush(5)
    assert_delivered_once(server, ids)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_a_dead_delivery_thread_is_reported_and_replaced(make_client: MakeClient, server: DevServer) -> None:
    errors = Errors()
    deaths = [SystemExit()]
    seam = Seam(server, lambda body: deaths.pop() if deaths else None)
    client = make_client(on_error=errors, _transport=seam)
    lost = send(client, 3)
    assert client.flush(5)
    assert sorted(m["messageId"] for m in errors.messages) == sorted(lost)
    assert isinstance(errors.calls[0][0], DeliveryError) and errors.calls[0][0].reason == "internal_error"
    ids = send(client, 3)
    assert client.flush(5)
    assert_delivered_once(server, ids)
    assert_accounted(client)


def test_eight_producer_threads_lose_nothing(make_client: MakeClient, server: DevServer) -> None:
    client = make_client(thread=2, max_queue_size=0)
    ids: list[str] = []
    lock = threading.Lock()

    def produce(worker: int) -> None:
        mine = send(client, 250, user=f"w{worker}")
        with lock:
            ids.extend(mine)

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(8)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join(30)
    assert client.flush(20)
    assert_delivered_once(server, ids)
    assert client.stats()["delivered"] == 2000


def test_flush_with_a_timeout_returns_false_then_true(make_client: MakeClient, server: DevServer) -> None:
    server.add_fault(delay=1.5)
    client = make_client()
    ids = send(client, 3)
    assert client.flush(timeout=0.2) is False
    assert client.flush(timeout=10) is True
    assert_delivered_once(server, ids)


def test_calls_after_shutdown_are_still_delivered(make_client: MakeClient, server: DevServer) -> None:
    client = make_client()
    assert client.shutdown(5)
    assert client.flush(timeout=1)
    ids = send(client, 3)
    assert client.flush(5)
    assert_delivered_once(server, ids)


def test_shutdown_with_the_endpoint_down_is_bounded_and_reports_what_is_left(
    make_client: MakeClient, server: DevServer
) -> None:
    server.add_fault(status=503, count=1000)
    errors = Errors()
    client = make_client(on_error=errors, upload_size=10)
    ids = send(client, 50)
    started = time.monotonic()
    client.shutdown(timeout=1)
    assert time.monotonic() - started < 5
    assert sorted(m["messageId"] for m in errors.messages) == sorted(ids)
    assert {e.reason for e, _ in errors.calls if isinstance(e, DeliveryError)} == {"unsent_at_shutdown"}
    assert_accounted(client)


def test_sync_mode_retries_like_the_background_path(make_client: MakeClient, server: DevServer) -> None:
    server.add_fault(status=503, count=2)
    client = make_client(sync_mode=True)
    ok, msg = client.track("user-1", "Synced")
    assert ok and effective_message_ids(server) == Counter([msg["messageId"]])
    assert client.stats()["retried"] == 2


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import mparticle_analytics as analytics
    analytics.write_key, analytics.secret, analytics.host = sys.argv[1], sys.argv[2], sys.argv[3]
    analytics.shutdown_timeout = float(sys.argv[4])
    for n in range(2000):
        analytics.track(f"user-{n % 50}", "Exiting", {"n": n})
    print("queued", analytics.default_client.queue.qsize(), flush=True)
    """
)


def run_script(host: str, deadline: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, KEY, SECRET, host, str(deadline)],
        capture_output=True, text=True, timeout=60, check=True,
    )


def test_exit_without_flush_delivers_everything_queued(server: DevServer) -> None:
    result = run_script(server.url, 10)
    assert int(result.stdout.split()[1]) > 0  # events were still queued when the script ended
    assert sum(len(b["events"]) for b in received(server)) == 2000


def test_exit_with_the_endpoint_down_is_bounded_and_says_what_was_not_delivered() -> None:
    with DevServer() as dead:
        url = dead.url
    result = run_script(url, 1)
    lines = [line for line in result.stderr.splitlines() if "event(s) dropped" in line]
    assert sum(int(line.split(" event(s)")[0].split()[-1]) for line in lines) == 2000, result.stderr


def _child_track(client: Client, conn: Any) -> None:
    """In a forked child: the parent's queue is not inherited; the child's own events go out."""
    inherited = client.queue.qsize()
    ids = send(client, 10, user="child")
    conn.send((inherited, ids, client.flush(10), client.stats()))
    conn.close()


def test_fork_gives_the_child_a_fresh_queue_and_sends_nothing_twice(
    make_client: MakeClient, server: DevServer
) -> None:
    client = make_client(upload_interval=30, upload_size=1000)
    parent_ids = send(client, 50, user="parent")
    assert client.queue.qsize() == 50
    reader, writer = multiprocessing.Pipe(duplex=False)
    with client._stats._lock:  # as if a delivery thread were counting at the moment of the fork
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            _child_track(client, writer)
        except BaseException:
            code = 1
        os._exit(code)
    inherited, child_ids, flushed, child_stats = reader.recv()
    os.waitpid(pid, 0)
    assert inherited == 0 and flushed
    # the child counts its own events only
    assert child_stats == {"queued": 10, "delivered": 10, "retried": 0, "dropped": {}, "values": {}}
    assert client.flush(10)
    assert_delivered_once(server, parent_ids + child_ids)


_PRELOADED: list[Client] = []


def _pool_track(n: int) -> list[str]:
    """One pool task: track with the client inherited from the parent, then flush."""
    ids = send(_PRELOADED[0], 5, user=f"pool{n}")
    assert _PRELOADED[0].flush(10)
    return ids


def test_a_client_created_before_a_fork_pool_works_in_each_child(server: DevServer) -> None:
    """The gunicorn ``preload_app`` and Celery prefork pattern, with multiprocessing's fork method."""
    client = Client(KEY, secret=SECRET, host=server.url, upload_interval=0.05)
    _PRELOADED[:] = [client]
    try:
        client.track("preloaded", "Before fork")
        assert client.flush(5)
        context = multiprocessing.get_context("fork")
        with context.Pool(2) as pool:
            ids = [i for chunk in pool.map(_pool_track, range(4)) for i in chunk]
        assert len(ids) == 20
        assert Counter(effective_message_ids(server).values()) == Counter({1: 21})
    finally:
        client.shutdown(5)
        _PRELOADED.clear()


def test_a_full_queue_warns_once_a_minute_with_the_count(
    make_client: MakeClient, server: DevServer, caplog: Any
) -> None:
    client = make_client(max_queue_size=1, upload_size=1000, upload_interval=60)
    results = [client.track("user-1", "Crowded")[0] for _ in range(6)]
    assert results == [True, False, False, False, False, False]
    warnings = [r.getMessage() for r in caplog.records if "queue_full" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("1 event(s) dropped (queue_full)")
    assert client.shutdown(5)  # the held-back count is said at shutdown, not lost
    warnings = [r.getMessage() for r in caplog.records if "queue_full" in r.getMessage()]
    assert len(warnings) == 2 and warnings[1].startswith("4 event(s) dropped (queue_full)")
    assert client.stats()["dropped"] == {"queue_full": 5} and client.stats()["delivered"] == 1
