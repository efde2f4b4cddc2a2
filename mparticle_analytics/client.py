"""``Client``: Segment's analytics-python 2.4.0 API, delivering to mParticle.

Each call checks its arguments as Segment does (same ``AssertionError``
messages), builds the Segment message it returns, and queues a snapshot of it
(``snapshot.take``: its dicts as JSON text, which the caller can no longer
change). Mapping to mParticle, batching and HTTP happen on the delivery
thread, or on the caller's thread in ``sync_mode``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import numbers
import os
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional

from .delivery import Delivery, OnError
from .errors import DeliveryError
from .ids import uuid4
from .mapping import ANONYMOUS_IDENTITIES, Mapper
from .retry import RetryPolicy
from .snapshot import EMPTY, Snapshot, bound, object_text, take
from .stats import Stats
from .transport import HTTPTransport, Transport, host_for_key
from .values import guess_timezone, now_iso, to_json
from .version import LIBRARY
from .worker import MessageQueue, Worker

log = logging.getLogger("mparticle_analytics")

ID_TYPES = (numbers.Number, str)
#: The same check, ``str`` first: ``numbers.Number`` is an ABC, slow to test.
_ID_CHECK = (str, numbers.Number)
#: Segment's per-message limit: a message whose JSON is larger raises ``RuntimeError``.
MAX_MSG_SIZE = 32 << 10
ENVIRONMENTS = ("production", "development")
_OAUTH_DEFAULTS = {"oauth_auth_server": "https://oauth2.segment.io", "oauth_scope": "tracking_api:write"}

#: The Segment message a call builds and returns.
Message = dict[str, Any]
Result = tuple[bool, Message]

#: The handler ``debug=True`` attaches when no ``log_handler`` is given; one per process.
_debug_handler = logging.StreamHandler()
#: Segment's size check, for a message whose size bound passes the limit; built once.
_JSON = json.JSONEncoder(default=to_json)


def wrong_type(name: str, field: Any, data_type: Any) -> AssertionError:
    """The error of Segment's argument check (its ``require``), with its exact message.

    Callers check with ``isinstance`` themselves: a call per check costs more
    than the check, and every ``track()`` makes six.
    """
    return AssertionError(f"{name} must have {data_type}, got: {field}")


def stringify_id(value: Any) -> Optional[str]:
    """Segment's rule: an id other than a string (or None) becomes a string."""
    return value if value is None or isinstance(value, str) else str(value)


def _wanted(integrations: dict[str, Any]) -> bool:
    """Segment's ``integrations`` switch for this destination, keys matched case-insensitively."""
    switches = {str(name).lower(): value for name, value in integrations.items()}
    ours = switches.get("mparticle")
    if ours is False:
        return False
    return not (switches.get("all") is False and ours is not True and not isinstance(ours, dict))


def _configure_logging(debug: bool, handler: Optional[logging.Handler]) -> None:
    """Attach each handler once however many clients ask, and never to the root logger."""
    if debug:
        log.setLevel(logging.DEBUG)
        handler = handler or _debug_handler
    if handler is not None and handler not in log.handlers:
        log.addHandler(handler)


class Client:
    """Sends Segment-style calls to mParticle's Events API as per-user batches.

    The positional parameters are Segment 2.4.0's, in its order; everything
    mParticle adds is keyword-only. Usage::

        client = Client("us2-key", secret="secret")
        client.track("user-1", "Signed Up", {"plan": "pro"})
        client.flush()
    """

    def __init__(
        self,
        write_key: Optional[str] = None,
        host: Optional[str] = None,
        debug: bool = False,
        max_queue_size: int = 10000,
        send: bool = True,
        on_error: Optional[OnError] = None,
        gzip: bool = False,
        max_retries: int = 10,
        sync_mode: bool = False,
        timeout: float = 15,
        proxies: Optional[Mapping[str, str]] = None,
        thread: int = 1,
        upload_size: int = 100,
        upload_interval: float = 0.5,
        log_handler: Optional[logging.Handler] = None,
        oauth_client_id: Optional[str] = None,
        oauth_client_key: Optional[str] = None,
        oauth_key_id: Optional[str] = None,
        oauth_auth_server: str = _OAUTH_DEFAULTS["oauth_auth_server"],
        oauth_scope: str = _OAUTH_DEFAULTS["oauth_scope"],
        max_total_backoff_duration: float = 43200,
        max_rate_limit_duration: float = 1800,
        *,
        secret: Optional[str] = None,
        environment: str = "production",
        anonymous_id_identity: Optional[str] = "other",
        ecommerce: bool = True,
        historical: bool = False,
        shutdown_timeout: float = 10.0,
        _transport: Optional[Transport] = None,
        _clock: Callable[[], float] = time.monotonic,
    ):
        """
        :param write_key: the mParticle API key, or ``"KEY:SECRET"``; default ``$MPARTICLE_API_KEY``.
        :param secret: the API secret; default ``$MPARTICLE_API_SECRET``. Not needed with ``send=False``.
        :param host: default: the pod named by the key's prefix (``us2-...``), else US1.
        :param timeout: seconds for each HTTP request.
        :param environment: ``"production"`` or ``"development"``.
        :param anonymous_id_identity: the identity type carrying ``anonymousId`` (None drops it).
        :param ecommerce: map Segment's e-commerce spec events to commerce events.
        :param historical: send to ``/v2/bulkevents/historical``; events under 72 hours old,
            and batches without events, are reported through ``on_error`` instead of sent.
        :param shutdown_timeout: seconds the exit hook (and ``shutdown()``'s default) may
            spend delivering what is queued.
        """
        write_key, secret = _credentials(write_key, secret)
        if not isinstance(write_key, str):
            raise wrong_type("write_key", write_key, str)
        if send and not isinstance(secret, str):
            raise wrong_type("secret", secret, str)
        for name, value in (("max_total_backoff_duration", max_total_backoff_duration),
                            ("max_rate_limit_duration", max_rate_limit_duration)):
            if value is None or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
        if environment not in ENVIRONMENTS:
            raise AssertionError(f"environment must be one of {ENVIRONMENTS}, got: {environment}")
        if anonymous_id_identity is not None and anonymous_id_identity not in ANONYMOUS_IDENTITIES:
            raise AssertionError(
                f"anonymous_id_identity must be 'other', 'other_id_2' ... 'other_id_10' or None, "
                f"got: {anonymous_id_identity}"
            )
        _configure_logging(debug, log_handler)
        if oauth_client_id or oauth_client_key or oauth_key_id or (
            (oauth_auth_server, oauth_scope) != tuple(_OAUTH_DEFAULTS.values())
        ):
            log.warning("oauth_* settings are ignored: mParticle's Events API uses Basic auth")

        self.write_key: str = write_key
        self._secret = secret or ""
        self.host = (host or host_for_key(write_key)).rstrip("/")
        self.debug = debug
        self.send = send
        self.sync_mode = sync_mode
        self.gzip = gzip
        self.timeout = timeout
        self.proxies = proxies
        self.on_error = on_error
        self.environment = environment
        self.shutdown_timeout = shutdown_timeout
        self.historical = historical
        self._stats = Stats(_clock)
        transport = _transport or HTTPTransport(
            f"{self.host}/v2/bulkevents{'/historical' if historical else ''}", write_key, self._secret,
            timeout=timeout, proxies=proxies, gzip=gzip,
        )
        self._delivery = Delivery(
            transport=transport,
            mapper=Mapper(
                anonymous_identity=anonymous_id_identity, ecommerce=ecommerce, report=self._stats.value
            ),
            environment=environment,
            policy=RetryPolicy(max_retries, max_total_backoff_duration, max_rate_limit_duration),
            stats=self._stats,
            on_error=on_error,
            sleep=lambda seconds: self._worker.sleep(seconds),
            make_way=lambda: self._worker.make_way(),
            clock=_clock,
            api_key=write_key,
            historical=historical,
        )
        self._worker: Worker[Snapshot] = Worker(
            self._delivery.send,
            on_lost=self._lost,
            on_stopped=self._delivery.stopped,
            threads=0 if sync_mode or not send else thread,
            batch_size=upload_size,
            interval=upload_interval,
            max_queue_size=max_queue_size,
            exit_timeout=shutdown_timeout,
        )

    # -- Segment's calls -------------------------------------------------------------------------

    def identify(self, user_id: Any = None, traits: Any = None, context: Any = None,
                 timestamp: Any = None, anonymous_id: Any = None, integrations: Any = None,
                 message_id: Any = None) -> Result:
        traits = traits or {}
        context = context or {}
        integrations = integrations or {}
        if not isinstance(user_id or anonymous_id, _ID_CHECK):
            raise wrong_type("user_id or anonymous_id", user_id or anonymous_id, ID_TYPES)
        if not isinstance(traits, dict):
            raise wrong_type("traits", traits, dict)
        return self._enqueue({
            "integrations": integrations, "anonymousId": anonymous_id, "timestamp": timestamp,
            "context": context, "type": "identify", "userId": user_id, "traits": traits,
            "messageId": message_id,
        })

    def track(self, user_id: Any = None, event: Any = None, properties: Any = None,
              context: Any = None, timestamp: Any = None, anonymous_id: Any = None,
              integrations: Any = None, message_id: Any = None) -> Result:
        properties = properties or {}
        context = context or {}
        integrations = integrations or {}
        if not isinstance(user_id or anonymous_id, _ID_CHECK):
            raise wrong_type("user_id or anonymous_id", user_id or anonymous_id, ID_TYPES)
        if not isinstance(properties, dict):
            raise wrong_type("properties", properties, dict)
        if not isinstance(event, str):
            raise wrong_type("event", event, str)
        if (timestamp is None and message_id is None and not context and not integrations
                and user_id.__class__ is str and event.__class__ is str
                and (anonymous_id is None or anonymous_id.__class__ is str)):
            return self._track_plainly(user_id, event, properties, context, anonymous_id, integrations)
        return self._enqueue({
            "integrations": integrations, "anonymousId": anonymous_id, "properties": properties,
            "timestamp": timestamp, "context": context, "userId": user_id, "type": "track",
            "event": event, "messageId": message_id,
        })

    def _track_plainly(self, user_id: str, event: str, properties: dict[str, Any], context: Message,
                       anonymous_id: Optional[str], integrations: dict[str, Any]) -> Result:
        """``track`` as most applications call it: string ids, no timestamp, message id,
        context or integrations. The snapshot and message ``_enqueue`` would build, written
        directly: its general steps take a tenth of such a call's time. (A test checks
        that the two paths queue the same snapshot.)"""
        timestamp, message_id = now_iso(), uuid4()
        text, size = object_text(properties)
        snapshot = {
            "integrations": EMPTY, "anonymousId": anonymous_id, "properties": text,
            "timestamp": timestamp, "context": EMPTY, "userId": user_id, "type": "track",
            "event": event, "messageId": message_id,
        }
        context["library"] = dict(LIBRARY)  # the call's own (``context or {}``)
        chars = len(user_id) + len(event) + len(timestamp) + len(message_id) + len("track")
        return self._queue(
            {**snapshot, "integrations": integrations, "properties": properties, "context": context},
            snapshot, bound(len(snapshot), size, chars + len(anonymous_id or "")),
        )

    def alias(self, previous_id: Any = None, user_id: Any = None, context: Any = None,
              timestamp: Any = None, integrations: Any = None, message_id: Any = None) -> Result:
        context = context or {}
        integrations = integrations or {}
        if not isinstance(previous_id, _ID_CHECK):
            raise wrong_type("previous_id", previous_id, ID_TYPES)
        if not isinstance(user_id, _ID_CHECK):
            raise wrong_type("user_id", user_id, ID_TYPES)
        return self._enqueue({
            "integrations": integrations, "previousId": previous_id, "timestamp": timestamp,
            "context": context, "userId": user_id, "type": "alias", "messageId": message_id,
        })

    def group(self, user_id: Any = None, group_id: Any = None, traits: Any = None,
              context: Any = None, timestamp: Any = None, anonymous_id: Any = None,
              integrations: Any = None, message_id: Any = None) -> Result:
        traits = traits or {}
        context = context or {}
        integrations = integrations or {}
        if not isinstance(user_id or anonymous_id, _ID_CHECK):
            raise wrong_type("user_id or anonymous_id", user_id or anonymous_id, ID_TYPES)
        if not isinstance(group_id, _ID_CHECK):
            raise wrong_type("group_id", group_id, ID_TYPES)
        if not isinstance(traits, dict):
            raise wrong_type("traits", traits, dict)
        return self._enqueue({
            "integrations": integrations, "anonymousId": anonymous_id, "timestamp": timestamp,
            "groupId": group_id, "context": context, "userId": user_id, "traits": traits,
            "type": "group", "messageId": message_id,
        })

    def page(self, user_id: Any = None, category: Any = None, name: Any = None,
             properties: Any = None, context: Any = None, timestamp: Any = None,
             anonymous_id: Any = None, integrations: Any = None, message_id: Any = None) -> Result:
        return self._view("page", user_id, category, name, properties, context, timestamp,
                          anonymous_id, integrations, message_id)

    def screen(self, user_id: Any = None, category: Any = None, name: Any = None,
               properties: Any = None, context: Any = None, timestamp: Any = None,
               anonymous_id: Any = None, integrations: Any = None, message_id: Any = None) -> Result:
        return self._view("screen", user_id, category, name, properties, context, timestamp,
                          anonymous_id, integrations, message_id)

    def _view(self, kind: str, user_id: Any, category: Any, name: Any, properties: Any,
              context: Any, timestamp: Any, anonymous_id: Any, integrations: Any,
              message_id: Any) -> Result:
        """``page`` and ``screen`` take the same arguments and checks; only the type differs."""
        properties = properties or {}
        context = context or {}
        integrations = integrations or {}
        if not isinstance(user_id or anonymous_id, _ID_CHECK):
            raise wrong_type("user_id or anonymous_id", user_id or anonymous_id, ID_TYPES)
        if not isinstance(properties, dict):
            raise wrong_type("properties", properties, dict)
        if name and not isinstance(name, str):
            raise wrong_type("name", name, str)
        if category and not isinstance(category, str):
            raise wrong_type("category", category, str)
        return self._enqueue({
            "integrations": integrations, "anonymousId": anonymous_id, "properties": properties,
            "timestamp": timestamp, "category": category, "context": context, "userId": user_id,
            "type": kind, "name": name, "messageId": message_id,
        })

    def _enqueue(self, msg: Message) -> Result:
        """The steps every call shares: defaults, checks, snapshot, then queue or send now."""
        if not isinstance(msg["integrations"], dict):
            raise wrong_type("integrations", msg["integrations"], dict)
        timestamp = msg["timestamp"]
        if timestamp is None:
            msg["timestamp"] = now_iso()
        else:
            if not isinstance(timestamp, dt.datetime):
                raise wrong_type("timestamp", timestamp, dt.datetime)
            msg["timestamp"] = guess_timezone(timestamp).isoformat(timespec="milliseconds")
        context = msg["context"]
        if not isinstance(context, dict):
            raise wrong_type("context", context, dict)
        message_id = msg["messageId"]
        msg["messageId"] = uuid4() if message_id is None else stringify_id(message_id)
        msg["userId"] = stringify_id(msg["userId"])
        msg["anonymousId"] = stringify_id(msg.get("anonymousId"))

        snapshot, most = take(msg)
        # The returned library dict is the caller's to change.
        if context:  # the caller's dict stays as it was
            msg["context"] = {**context, "library": dict(LIBRARY)}
        else:  # the call's own (``context or {}``)
            context["library"] = dict(LIBRARY)
        return self._queue(msg, snapshot, most)

    def _queue(self, msg: Message, snapshot: Snapshot, most: int) -> Result:
        """Segment's size check (only when ``most``, a bound on the size, passes it), then
        queue or send now."""
        if most > MAX_MSG_SIZE:
            size = len(_JSON.encode(msg))
            if size > MAX_MSG_SIZE:
                raise RuntimeError(
                    f"Message exceeds 32kb limit. ({size} bytes, messageId {msg['messageId']})"
                )
        if not self.send or (msg["integrations"] and not _wanted(msg["integrations"])):
            return True, msg
        if self.sync_mode:
            self._stats.add("queued")
            self._delivery.send([snapshot], sync=True)
            return True, msg
        if self._worker.put(snapshot):
            return True, msg
        self._stats.dropped("queue_full", detail=": mparticle-analytics queue is full")
        return False, msg

    # -- lifecycle -------------------------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Block until everything queued before this call is delivered or given up.

        :param timeout: seconds to wait at most (default: no limit beyond the retry budgets).
        :return: True when all of it settled, False when ``timeout`` passed first.
        """
        return self._worker.flush(timeout)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Deliver what is queued, then stop the delivery threads.

        Unlike Segment's ``join``, nothing still queued is left behind. A later call
        starts the threads again.
        """
        return self._worker.shutdown(timeout)

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Flush and stop the delivery threads (Segment's ``flush()`` + ``join()``).

        :param timeout: seconds to spend at most; what is still queued then is
            reported through ``on_error`` and a warning. Default: no limit.
        :return: True when everything queued was delivered or given up in time.
        """
        return self._worker.shutdown(timeout)

    def stats(self) -> dict[str, object]:
        """Counters: ``queued``, ``delivered``, ``retried``, ``dropped`` (events, by reason)
        and ``values`` (attribute values truncated or left out, by kind)."""
        return self._stats.snapshot(queued=self._worker.queued)

    @property
    def queue(self) -> MessageQueue[Snapshot]:
        return self._worker.queue

    @property
    def consumers(self) -> list[Any]:
        """The delivery threads (Segment's name); empty in sync mode."""
        return self._worker.threads

    def _lost(self, messages: list[Snapshot], error: BaseException) -> None:
        if not isinstance(error, DeliveryError):
            error = DeliveryError("internal_error", repr(error))
        self._delivery.give_up(messages, error)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<Client write_key={self.write_key!r} host={self.host!r} environment={self.environment!r}>"


def _credentials(write_key: Optional[str], secret: Optional[str]) -> tuple[Any, Optional[str]]:
    """The key and secret from the arguments, ``"KEY:SECRET"``, or the environment variables."""
    if write_key is None:
        write_key = os.environ.get("MPARTICLE_API_KEY")
    if secret is None and isinstance(write_key, str) and ":" in write_key:
        write_key, secret = write_key.split(":", 1)
    if secret is None:
        secret = os.environ.get("MPARTICLE_API_SECRET")
    return write_key, secret
