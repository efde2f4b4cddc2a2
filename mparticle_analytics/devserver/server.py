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
from types import TracebackType
from typing import Any, Final, Optional

from .app import AppState, EndpointServer
from .faults import Fault

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
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        key: Optional[str] = None,
        secret: Optional[str] = None,
    ) -> None:
        self.host = host
        self.port = port
        self._state = AppState(key=key, secret=secret)
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
        httpd.shutdown()
        httpd.close_connections()
        thread.join(_JOIN_TIMEOUT)
        httpd.server_close()

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
        count: int = 1,
    ) -> None:
        """Make the next ``count`` ingest requests misbehave (after earlier faults).

        Give exactly one of: ``status`` (answer it with an error body, store
        nothing; ``retry_after`` adds that ``Retry-After`` header), ``drop``
        (``"before"``: close unanswered, store nothing; ``"after"``: store,
        then close unanswered) or ``delay`` (seconds to wait, then answer
        normally). Raises ``ValueError`` for an invalid combination.
        """
        fault = Fault(status=status, retry_after=retry_after, drop=drop, delay=delay)
        self._state.faults.add([(fault, count)])

    def wait_for(self, predicate: Callable[[DevServer], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(self)`` is true; re-checked whenever a request is stored.

        Returns ``False`` if it is still false after ``timeout`` seconds.

        Usage::

            assert server.wait_for(lambda s: len(s.batches()) >= 3)
        """
        return self._state.store.wait_for(lambda: predicate(self), timeout)
