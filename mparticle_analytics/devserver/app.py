"""The HTTP side of the devserver: routing, fault injection and answers.

``/v2/...`` behaves like mParticle's Events API (the rules live in
:mod:`.rules`, the per-batch validation in :mod:`.validation`); ``/`` is the
inspector page; ``/api/...`` is the devserver's own JSON API (:mod:`.api`)
for the page, tests and scripts, and needs no auth. Every error answer,
including the ones the standard library's parser produces, uses mParticle's
error body.

What happens to a batch: a request that cannot be read (bad auth, bad JSON,
wrong shape, over mParticle's size or count limits) is refused with 400/401/
403/413 and nothing is stored. Otherwise the answer is 202, as mParticle's is
for bulk uploads even when it drops batches later, and every batch is stored
with the problems the validator found in it, for the page and the API.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Collection, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Optional
from urllib.parse import parse_qs, urlsplit

from ..values import utf8
from .api import ROUTES, AppState
from .faults import Applied
from .page import PAGE_HEADERS, page
from .rules import (
    HISTORICAL_PATH,
    INGEST_PATHS,
    MAX_REQUEST_BYTES,
    RequestError,
    SizedBatch,
    check_batches,
    check_credentials,
    decode_body,
    describe_batch,
    historical_rejection,
    load_batches,
    parse_basic_auth,
)
from .store import Received
from .validation import validate_batch

logger = logging.getLogger("mparticle_analytics.devserver")

# Bodies are read in full to keep keep-alive connections in sync; past this
# size the server refuses without reading and closes the connection instead.
_MAX_READ_BYTES: Final = 4 * 1024 * 1024

#: Paths the browser asks for that are not ingest requests (so are not recorded).
_PAGE_PATHS: Final = frozenset({"/", "/index.html", "/favicon.ico"})


class EndpointServer(ThreadingHTTPServer):
    """A threading HTTP server that can also close its open keep-alive connections.

    Without that, a stopped server would leave handler threads blocked on idle
    client connections until the client hangs up.
    """

    daemon_threads = True

    def __init__(self, host: str, port: int, state: AppState) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), Handler)

    def server_bind(self) -> None:
        # http.server.HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup that can
        # take seconds; the name is only used for CGI variables, so skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket, is_open: bool) -> None:
        """Remember (or forget) a client connection, for :meth:`close_connections`."""
        with self._connections_lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down every open client connection, ending its handler thread."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # OSError: the client already closed it, so there is nothing left to end.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal here (retry tests, stop());
        # the default prints a traceback to stderr for it.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    """One client connection; HTTP/1.1 keep-alive, so possibly many requests."""

    server: EndpointServer
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately; without this, Nagle's algorithm
    # and delayed ACKs add about 40 ms to every answer on a reused connection.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch()

    # Every common method is routed, so a wrong one on a known path gets a 405
    # with mParticle's error body instead of the standard library's 501 page.
    do_HEAD = do_OPTIONS = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        # The access log is noise next to the per-batch lines; keep it for -v.
        logger.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        # Only the standard library's request parser calls this (bad request
        # line, unknown method, ...); the stream may be out of sync, so close.
        self.close_connection = True
        error = RequestError(code, message or HTTPStatus(code).phrase, {"Connection": "close"})
        self._send_json(code, error.body(), error.headers)

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/api" or parts.path.startswith("/api/"):
            self._serve_api(parts.path, parse_qs(parts.query))
        elif parts.path in _PAGE_PATHS:
            self._serve_page(parts.path)
        else:
            self._serve_ingest(parts.path)

    def _serve_api(self, path: str, query: Mapping[str, list[str]]) -> None:
        try:
            body = self._read_body()
            routes = ROUTES.get(path)
            if routes is None:
                raise RequestError(404, f"no API path {path}; try {', '.join(ROUTES)}")
            _check_method(self.command, routes)
            self._send_json(200, routes[self.command](self.server.state, body, query))
        except RequestError as error:
            self._send_json(error.status, error.body(), error.headers)

    def _serve_page(self, path: str) -> None:
        try:
            self._read_body()
            _check_method(self.command, ("GET", "HEAD"))
            if path == "/favicon.ico":
                raise RequestError(404, "no favicon")
        except RequestError as error:
            self._send_json(error.status, error.body(), error.headers)
            return
        document = page()
        self.send_response(200)
        for name, value in PAGE_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(document)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(document)

    def _serve_ingest(self, path: str) -> None:
        state = self.server.state
        received = Received(
            method=self.command,
            path=path,
            user_agent=self.headers.get("User-Agent"),
            content_encoding=self.headers.get("Content-Encoding"),
        )
        applied = Applied(0.0, None, None)
        error: Optional[RequestError] = None
        try:
            raw = self._read_body()
            received.body_bytes = len(raw)
            if path not in INGEST_PATHS:
                paths = ", ".join(sorted(INGEST_PATHS))
                raise RequestError(404, f"no such path {path}; use {paths}")
            _check_method(self.command, ("POST",))
            applied = state.faults.take()
            received.fault = applied.record
            self._ingest(received, raw, applied)
        except RequestError as exc:
            error = exc
            received.status, received.error = exc.status, exc.message
        try:
            _log_outcome(received, *state.store.add(received))
        except Exception as exc:  # A store that cannot write (a full disk under --db) must still answer.
            logger.exception("could not store %s %s", received.method, path)
            error = RequestError(500, f"the devserver could not store the request: {exc}")
        fault = applied.outcome
        if fault is not None and fault.drop is not None:
            self.close_connection = True  # Say nothing: the client sees a dropped connection.
        elif error is not None:
            self._send_json(error.status, error.body(), error.headers)
        else:
            self.send_response(202)
            self.send_header("X-mp-rate-limit-percentage-used", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _ingest(self, received: Received, raw: bytes, applied: Applied) -> None:
        """Process one ingest request into ``received``, or raise the refusal."""
        state = self.server.state
        fault = applied.outcome
        if applied.delay > 0:
            state.stopping.wait(applied.delay)
        if fault is not None and fault.drop == "before":
            received.error = "connection dropped before processing (injected fault)"
            return
        if fault is not None and fault.status is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            raise RequestError(fault.status, f"injected fault: status {fault.status}", headers)
        key, secret = parse_basic_auth(self.headers.get("Authorization"))
        received.api_key = key
        check_credentials(key, secret, state.key, state.secret)
        body = decode_body(raw, received.content_encoding)
        received.decoded_bytes = len(body)
        batches = load_batches(body, received.path)
        received.batch_count = len(batches)
        now_ms = received.arrived * 1000
        historical = received.path == HISTORICAL_PATH
        for checked in check_batches(batches, received.path):
            sized = checked._replace(problems=validate_batch(checked.batch))
            reason = historical_rejection(sized.batch, now_ms) if historical else None
            if reason is None:
                received.accepted.append(sized)
            else:
                received.rejected.append((sized, reason))
        received.status = 202

    def _read_body(self) -> bytes:
        """Read the whole body, so the next request on this connection parses cleanly."""
        if "Transfer-Encoding" in self.headers:
            self.close_connection = True
            raise RequestError(411, "chunked bodies are not supported; send Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise RequestError(400, "Content-Length is not a non-negative integer")
        if length > _MAX_READ_BYTES:
            self.close_connection = True
            raise RequestError(
                413, f"request body is {length:,} bytes; it must be under {MAX_REQUEST_BYTES:,}"
            )
        return self.rfile.read(length)

    def _send_json(self, status: int, document: Any, headers: Optional[Mapping[str, str]] = None) -> None:
        data = utf8(json.dumps(document, ensure_ascii=False))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _check_method(method: str, allowed: Collection[str]) -> None:
    if method not in allowed:
        names = ", ".join(allowed)
        raise RequestError(405, f"{method} is not allowed here; use {names}", {"Allow": names})


def _log_outcome(received: Received, accepted: list[int], rejected: list[int]) -> None:
    where = f"{received.method} {received.path}"
    for seq, sized in zip(accepted, received.accepted):
        logger.info("%s", describe_batch(seq, received.path, sized))
        _log_problems(f"batch {seq}", sized)
    for seq, (sized, reason) in zip(rejected, received.rejected):
        logger.warning("rejected historical batch %d (not processed, still 202): %s", seq, reason)
        _log_problems(f"rejected batch {seq}", sized)
    if received.status is None:
        logger.info("%s: dropped the connection before processing (injected fault)", where)
    elif received.error is not None:
        logger.warning("%s -> %d: %s", where, received.status, received.error)
    if received.fault is not None and received.fault.get("drop") == "after":
        logger.info("%s: dropped the connection instead of answering (injected fault)", where)



def _log_problems(label: str, sized: SizedBatch) -> None:
    """One line per error and warning, so a terminal shows what the page highlights."""
    for problem in sized.problems:
        if problem["severity"] == "info":
            continue
        log = logger.warning if problem["severity"] == "error" else logger.info
        log("  %s %s at %s [%s]: %s", problem["severity"], label, problem["path"], problem["rule"],
            problem["message"])
