"""One HTTP request to mParticle, and nothing more: no retries, no batching.

``Transport`` is the seam tests use (``Client(_transport=...)``); ``HTTPTransport``
is the real one: one ``requests.Session`` per client, replaced in a forked child
because a pooled connection must never be shared across processes.

The environment ``requests`` would read on every request (``HTTP(S)_PROXY``,
``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) is read once per
session, when its first request is made: reading it per request cost about
140 µs a request, a quarter of a ``sync_mode`` call. Sessions are made lazily,
so creating a client, or forking, never touches the environment or the
network configuration (on macOS that can crash a forked child). ``~/.netrc``
is never read: the client's own credentials must not be replaced by an entry
for the same host.

Each request goes straight to the session's connection adapter, prepared from
a template made once: ``Session.post`` spent 0.37 ms of CPU a request merging
settings the transport never changes, where this takes 0.26 ms. The headers
and cookies are those ``Session.post`` sent. Redirects are therefore not
followed, which wire.md asks for anyway: a 3xx is a failed request, reported
through ``on_error``. (Following one, ``requests`` turns a POST answered with
301 or 302 into a GET, whose 200 would count the events as delivered.)
"""

from __future__ import annotations

import base64
import gzip as gzip_module
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, NamedTuple, Optional, Protocol, Union

import requests
from requests.adapters import BaseAdapter
from requests.cookies import extract_cookies_to_jar

from .hooks import after_fork_in_child
from .version import VERSION

USER_AGENT = f"mparticle-analytics-python/{VERSION}"

#: Data-centre pods by API-key prefix (wire.md "Endpoints and hosts").
PODS = ("us1", "us2", "eu1", "au1")
DEFAULT_HOST = "https://s2s.mparticle.com"


def host_for_key(api_key: str) -> str:
    """The pod that owns a key: ``us2-...`` is ``https://s2s.us2.mparticle.com``; no prefix is US1."""
    prefix = api_key.split("-", 1)[0].lower()
    return f"https://s2s.{prefix}.mparticle.com" if prefix in PODS else DEFAULT_HOST


class Response(NamedTuple):
    """What the delivery logic needs from an HTTP answer."""

    status: int
    headers: Mapping[str, str]
    text: str
    #: The underlying response object (``requests.Response`` for the real transport).
    raw: Any = None


class Transport(Protocol):
    """Sends one request body. Network failures raise ``OSError`` or ``requests.RequestException``."""

    def send(self, body: bytes) -> Response: ...

    def close(self) -> None: ...


class _Session(NamedTuple):
    """A ``requests.Session``, the adapter that sends to the URL, the settings it sends with,
    and the request every send copies (all but its body)."""

    http: requests.Session
    adapter: BaseAdapter
    proxies: MutableMapping[str, str]
    verify: Union[bool, str]
    template: requests.PreparedRequest


class HTTPTransport:
    """POSTs bodies to one mParticle URL with Basic auth, a timeout and optional gzip."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float,
        proxies: Optional[Mapping[str, str]] = None,
        gzip: bool = False,
    ):
        self.url = url
        self._timeout = timeout
        self._proxies = dict(proxies) if proxies else None
        self._gzip = gzip
        token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {token}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        if gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._session: Optional[_Session] = None
        self._lock = threading.Lock()
        after_fork_in_child(self._forget_session)

    def send(self, body: bytes) -> Response:
        data = gzip_module.compress(body) if self._gzip else body
        session = self._session or self._open()
        request = session.template.copy()
        request.prepare_body(data, None)
        cookies = session.http.cookies  # kept as Session.post kept them (a load balancer's, say)
        if cookies:
            request.prepare_cookies(cookies)
        answer = session.adapter.send(
            request, timeout=self._timeout, verify=session.verify, proxies=session.proxies
        )
        # As Session.send does: new cookies are kept, expired ones dropped. (Untyped in the stubs.)
        extract_cookies_to_jar(cookies, request, answer.raw)  # type: ignore[no-untyped-call]
        return Response(answer.status_code, answer.headers, answer.text, answer)

    def close(self) -> None:
        """Release the pooled connections; the next request opens a new session."""
        session, self._session = self._session, None
        if session is not None:
            session.http.close()

    def _open(self) -> _Session:
        """The session, made on first use with the environment's proxies and CA bundle applied."""
        with self._lock:
            if self._session is None:
                session = requests.Session()
                proxies = dict(self._proxies or {})
                settings = session.merge_environment_settings(self.url, proxies, None, None, None)
                verify = settings["verify"]
                template = requests.PreparedRequest()
                headers = {**session.headers, **self._headers}  # requests' defaults, as Session.post sent
                template.prepare(method="POST", url=self.url, headers=headers, data=b"")
                self._session = _Session(session, session.get_adapter(self.url), settings["proxies"],
                                         True if verify is None else verify, template)
            return self._session

    def _forget_session(self) -> None:
        """In a forked child: the parent's pooled connections and lock are not the child's."""
        self._session = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HTTPTransport({self.url!r})"
