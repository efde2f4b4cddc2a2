"""A minimal local endpoint that speaks both Segment's and mParticle's ingestion APIs and only counts.

Why not the library's own devserver: it does not serve Segment's path, and it
keeps every batch it receives (memory, validation), which would make the
endpoint, not the libraries, the thing being measured. This server answers
each request as soon as it has read it, and parses the bodies only when the
counts are asked for (``GET /stats``, after each run): Python runs one thread
at a time, so a body parsed while the next request arrives makes that request
wait for the parse, 1 to 2 ms for a 256 KB body, a wait mParticle's servers
do not impose. It runs in its own process (started by ``run.py``) so its CPU
time counts for neither library.

Paths:

* ``POST /v1/batch`` (Segment): body ``{"batch": [...], "sentAt": ..., "writeKey": ...}``; answers 200.
* ``POST /v2/bulkevents`` and ``/v2/bulkevents/historical`` (mParticle): a JSON array of
  batches; answers 202.
* ``GET /stats``: the counters since the last reset, as JSON. It waits until every
  request already answered has also been counted.
* ``POST /reset``: zero the counters.

What "events received" means (``stats()["received"]``), by message type:

* Segment: each message in ``batch`` counts once under its ``type``.
* mParticle: each event in a batch's ``events`` counts once, ``custom_event`` and
  ``commerce_event`` as ``track`` and ``screen_view`` as ``page``. An identify has no
  event in mParticle: it becomes ``user_attributes`` on that user's batch. So an
  ``identify`` is counted once per distinct user (``user_identities``) whose batch
  carried user attributes. In the benchmark each user is identified exactly once,
  which makes this equal to the identify calls that arrived; a library that lost a
  user's traits would come up short, and one that repeated them would not be
  counted twice (repeats show in ``profile_batches``).

Duplicates are counted by message id (Segment ``messageId``, mParticle
``source_message_id``), so a message delivered twice shows in ``duplicates``
rather than making up for one that was lost.

Run: ``python benchmarks/endpoint.py [--port 0]``; the first line printed is the URL.
Standard library only, Python 3.9+.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Request bodies held unparsed at most; a longer run parses them as it goes, in the handlers.
MAX_UNPARSED_BYTES = 256 << 20
#: mParticle event types and the Segment call that produces them in the benchmark.
_MPARTICLE_TYPES = {"custom_event": "track", "commerce_event": "track", "screen_view": "page"}


class Counters:
    """Everything the endpoint counts, behind one lock.

    ``pending`` is the number of requests answered but not yet recorded; ``snapshot``
    waits for it to reach zero so that a client whose ``flush()`` has returned
    never races the count of its last request, then parses what was recorded.
    """

    def __init__(self, max_unparsed_bytes: int = MAX_UNPARSED_BYTES) -> None:
        self._max_unparsed_bytes = max_unparsed_bytes
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.pending = 0
            self.unparsed: list[tuple[str, bytes, str]] = []
            self.unparsed_bytes = 0
            self.requests: Counter[str] = Counter()
            self.body_bytes = 0
            self.header_bytes = 0
            self.received: Counter[str] = Counter()
            self.ids: set[str] = set()
            self.id_count = 0
            self.profiles: set[str] = set()
            self.profile_batches = 0
            self.batches = 0
            self.errors: list[str] = []

    def begin(self) -> None:
        with self._lock:
            self.pending += 1

    def end(self) -> None:
        with self._lock:
            self.pending -= 1
            if self.pending == 0:
                self._idle.notify_all()

    def snapshot(self, wait: float = 30.0) -> dict[str, Any]:
        with self._lock:
            self._idle.wait_for(lambda: self.pending == 0, timeout=wait)
            unparsed = self._take_unparsed()
        self._parse_all(unparsed)
        with self._lock:
            return {
                "pending": self.pending,
                "requests": sum(self.requests.values()),
                "requests_by_path": dict(self.requests),
                "body_bytes": self.body_bytes,
                "header_bytes": self.header_bytes,
                "batches": self.batches,
                "received": dict(self.received),
                "received_total": sum(self.received.values()),
                "message_ids": self.id_count,
                "duplicates": self.id_count - len(self.ids),
                "profile_batches": self.profile_batches,
                "errors": self.errors[:20],
                "error_count": len(self.errors),
            }

    def count(self, path: str, body: bytes, header_bytes: int, encoding: str) -> None:
        """Record one request (after the answer was sent); its body is parsed by ``snapshot``,
        or here once more than ``max_unparsed_bytes`` are held (a very long run)."""
        with self._lock:
            self.requests[path] += 1
            self.body_bytes += len(body)
            self.header_bytes += header_bytes
            self.unparsed.append((path, body, encoding))
            self.unparsed_bytes += len(body)
            if self.unparsed_bytes <= self._max_unparsed_bytes:
                return
            unparsed = self._take_unparsed()
        self._parse_all(unparsed)

    def _take_unparsed(self) -> list[tuple[str, bytes, str]]:
        """The recorded bodies, handed over to be parsed (lock held)."""
        unparsed, self.unparsed, self.unparsed_bytes = self.unparsed, [], 0
        return unparsed

    def _parse_all(self, unparsed: list[tuple[str, bytes, str]]) -> None:
        for path, body, encoding in unparsed:
            self._parse(path, body, encoding)

    def _parse(self, path: str, body: bytes, encoding: str) -> None:
        """Add what one request body carries."""
        received: Counter[str] = Counter()
        ids: list[str] = []
        profiles: list[str] = []
        batches = 0
        error = ""
        try:
            raw = gzip.decompress(body) if encoding == "gzip" else body
            payload = json.loads(raw)
            if path == "/v1/batch":
                batches = 1
                for message in payload["batch"]:
                    received[str(message.get("type"))] += 1
                    ids.append(str(message.get("messageId")))
            else:
                for batch in payload:
                    batches += 1
                    for event in batch.get("events") or ():
                        kind = event.get("event_type")
                        received[_MPARTICLE_TYPES.get(kind, str(kind))] += 1
                        ids.append(str((event.get("data") or {}).get("source_message_id")))
                    if batch.get("user_attributes") or batch.get("deleted_user_attributes"):
                        profiles.append(json.dumps(batch.get("user_identities"), sort_keys=True))
        except Exception as exc:  # a malformed body is a finding to report, not a crash
            error = f"{path}: {exc!r}"
        with self._lock:
            self.batches += batches
            self.received.update(received)
            self.id_count += len(ids)
            self.ids.update(ids)
            self.profile_batches += len(profiles)
            before = len(self.profiles)
            self.profiles.update(profiles)
            new_profiles = len(self.profiles) - before
            if new_profiles:
                self.received["identify"] += new_profiles
            if error:
                self.errors.append(error)


COUNTERS = Counters()


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, every answer with Content-Length and written in one send."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # header and body go in one write anyway; no 40 ms stalls
    server_version = "bench-endpoint"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a line per request would cost more than the request."""

    def _answer(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        head = (
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.wfile.write(head.encode("latin-1") + body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        if self.path == "/stats":
            self._answer(200, json.dumps(COUNTERS.snapshot()).encode())
        elif self.path == "/health":
            self._answer(200, b'{"ok":true}')
        else:
            self._answer(404, b'{"error":"not found"}')

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if self.headers.get("Transfer-Encoding"):
            self._answer(411, b'{"error":"send Content-Length"}')
            self.close_connection = True
            return
        body = self._body()
        if path == "/reset":
            COUNTERS.reset()
            self._answer(200, b'{"ok":true}')
            return
        if path == "/v1/batch":
            status, answer = 200, b'{"success":true}'
        elif path in ("/v2/bulkevents", "/v2/bulkevents/historical"):
            status, answer = 202, b""
        else:
            self._answer(404, b'{"error":"not found"}')
            return
        request_line: bytes = getattr(self, "raw_requestline", b"")
        header_bytes = len(request_line) + len(self.headers.as_bytes())
        COUNTERS.begin()
        try:
            self._answer(status, answer)
            COUNTERS.count(path, body, header_bytes, (self.headers.get("Content-Encoding") or "").lower())
        finally:
            COUNTERS.end()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    server = Server((args.host, args.port), Handler)
    print(f"http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
