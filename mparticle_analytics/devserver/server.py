"""``DevServer``: start, inspect and script the local mParticle endpoint from Python.

Tests and the demo use this instead of an mParticle account: it serves on a
daemon thread, keeps what it received in memory, and can be told to fail the
next requests so that retry behaviour is testable end to end.

Usage::

    with DevServer() as server:
        client = Client("key", "secret", host=server.url)
        ...
        assert server.wait_for(lambda s: len(s.batches()) == 1)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Optional, Union

from .api import AppState
from .app import EndpointServer
from .faults import Fault, Plan
from .sqlite_store import SqliteStore
from .store import Store

# serve_forever checks for shutdown this often; short, so stop() is prompt.
_POLL_INTERVAL: Final = 0.05
_JOIN_TIMEOUT: Final = 5.0


class DevServer:
    """A local, mParticle-compatible Events API v2 endpoint.

    :param host: address to listen on.
    :param port: port to listen on; 0 picks a free one (see :attr:`url`).
    :param key: if set, only this API key is accepted (others get 403).
    :param secret: if set, only this API secret is accepted (others get 403).
        It is never printed, logged or stored.
    :param db: keep everything in this SQLite file too, so a later server on
        the same file starts with what this one received (default: memory only).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        key: Optional[str] = None,
        secret: Optional[str] = None,
        db: Union[str, Path, None] = None,
    ) -> None:
        self.host = host
        self.port = port
        store = Store() if db is None else SqliteStore(db)
        self._state = AppState(store=store, key=key, secret=secret)
        self._httpd: Optional[EndpointServer] = None
        self._thread: Optional[threading.Thread] = None
        self._url: Optional[str] = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``.

        Valid once :meth:`start` has run (and still readable after :meth:`stop`).
        """
        if self._url is None:
            raise RuntimeError("DevServer has no URL until start() is called")
        return self._url

    def start(self) -> DevServer:
        """Bind and serve on a daemon thread; returns ``self`` for chaining."""
        if self._httpd is not None:
            raise RuntimeError("DevServer is already running")
        self._state.stopping.clear()
        httpd = EndpointServer(self.host, self.port, self._state)
        host, port = httpd.server_address[:2]
        self._url = f"http://[{host!s}]:{port}" if ":" in str(host) else f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"mparticle-devserver:{port}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and close the socket. Safe to repeat."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        self._state.stopping.set()
        self._state.store.wake()  # Ends long polls of /api/inspect at once.
        httpd.shutdown()
        httpd.close_connections()
        thread.join(_JOIN_TIMEOUT)
        httpd.server_close()
        self._state.store.close()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    def batches(self) -> list[dict[str, Any]]:
        """Accepted batches, oldest first: ``{"seq", "request", "path", "received_at", "batch"}``.

        ``batch`` is the batch exactly as received. The list is a deep copy.
        """
        return self._state.store.batches()

    def requests(self) -> list[dict[str, Any]]:
        """Every request to a non-``/api`` path, oldest first (a deep copy).

        Each has ``seq``, ``method``, ``path``, ``status`` (``None`` if the
        connection was dropped unanswered), ``received_at``, ``user_agent``,
        ``content_encoding``, ``api_key`` (never the secret), ``body_bytes``
        (on the wire), ``decoded_bytes`` (after gzip), ``batches`` (count),
        ``error`` and ``fault`` (the injected fault, if any).
        """
        return self._state.store.requests()

    def rejected(self) -> list[dict[str, Any]]:
        """Historical batches answered 202 but not processed, each with its ``reason``."""
        return self._state.store.rejected()

    def problems(self, severity: Optional[str] = None) -> list[dict[str, Any]]:
        """Every validation problem, oldest batch first, as ``/api/problems`` lists them.

        Each is ``{"batch", "status", "seq", "user", "path", "rule", "message",
        "severity"}``: ``batch`` is the entry id shown on the page, ``seq`` the
        number in :meth:`batches` (or :meth:`rejected` when ``status`` is
        ``"rejected"``). ``severity`` keeps only ``"error"``, ``"warning"`` or ``"info"``.
        """
        return [
            {"batch": e["id"], "status": e["status"], "seq": e["seq"], "user": e["user"], **p}
            for e in self._state.store.entries()
            for p in e["problems"]
            if severity is None or p["severity"] == severity
        ]

    def reset(self) -> None:
        """Forget every request and batch and clear pending faults."""
        self._state.reset()

    def add_fault(
        self,
        *,
        status: Optional[int] = None,
        retry_after: Optional[str] = None,
        drop: Optional[str] = None,
        delay: Optional[float] = None,
        count: Optional[int] = None,
        rate: Optional[float] = None,
        seed: Optional[int] = None,
    ) -> None:
        """Make the next ``count`` ingest requests misbehave (after earlier faults),
        or, with ``rate``, each request with that probability until :meth:`reset`.

        Give exactly one of: ``status`` (answer it with an error body, store
        nothing; ``retry_after`` adds that ``Retry-After`` header), ``drop``
        (``"before"``: close unanswered, store nothing; ``"after"``: store,
        then close unanswered) or ``delay`` (seconds to wait, then answer
        normally). ``count`` defaults to 1; ``rate`` (0 < rate <= 1) replaces
        it, and ``seed`` makes the random choices repeatable:
        ``add_fault(delay=0.5, rate=1)`` slows every request,
        ``add_fault(status=503, rate=0.1, seed=42)`` fails one in ten.
        Raises ``ValueError`` for an invalid combination.
        """
        fault = Fault(status=status, retry_after=retry_after, drop=drop, delay=delay)
        self._state.faults.add([Plan.of(fault, count=count, rate=rate, seed=seed)])

    def faults(self) -> list[dict[str, Any]]:
        """The faults still configured, as ``GET /api/faults`` lists them."""
        return self._state.faults.pending()

    def wait_for(self, predicate: Callable[[DevServer], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(self)`` is true; re-checked whenever a request is stored.

        Returns ``False`` if it is still false after ``timeout`` seconds.

        Usage::

            assert server.wait_for(lambda s: len(s.batches()) >= 3)
        """
        return self._state.store.wait_for(lambda: predicate(self), timeout)
