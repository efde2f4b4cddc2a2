"""What mParticle's Events API v2 accepts, as pure functions over one request.

Kept apart from the HTTP code so that every rule the devserver enforces (auth,
size limits, body shape, the historical-endpoint rule) reads in one place and
can be checked without a socket. Limits and paths follow
``shared/spec/wire.md``; every refusal is a :class:`RequestError`, which the
HTTP layer turns into mParticle's error body.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import io
import json
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final, NamedTuple, Optional

from ..values import utf8
from .kinds import Problem, json_type

EVENTS_PATH: Final = "/v2/events"
BULK_PATH: Final = "/v2/bulkevents"
HISTORICAL_PATH: Final = "/v2/bulkevents/historical"
INGEST_PATHS: Final = frozenset({EVENTS_PATH, BULK_PATH, HISTORICAL_PATH})

#: A request body must be *under* this many bytes (after gzip decompression).
MAX_REQUEST_BYTES: Final = 262_144
#: At most this many batches in one bulk request.
MAX_BATCHES_PER_REQUEST: Final = 100
#: One batch, as compact UTF-8 JSON, may be at most this many bytes.
MAX_BATCH_BYTES: Final = 131_072
#: Historical events must be at least this old when they arrive.
HISTORICAL_MIN_AGE_MS: Final = 72 * 60 * 60 * 1000

# mParticle-style codes where the HTTP status name would read differently.
_CODES: Final[Mapping[int, str]] = {413: "REQUEST_TOO_LARGE"}


def error_code(status: int) -> str:
    """The ``code`` of mParticle's error body for an HTTP status."""
    if status in _CODES:
        return _CODES[status]
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "ERROR"


class RequestError(Exception):
    """A request the server refuses; the HTTP layer answers it with :meth:`body`.

    ``headers`` are extra response headers (``Allow`` on a 405,
    ``Retry-After`` on an injected fault).
    """

    def __init__(self, status: int, message: str, headers: Optional[Mapping[str, str]] = None):
        super().__init__(status, message)
        self.status = status
        self.code = error_code(status)
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """mParticle's error body: ``{"errors": [{"code": ..., "message": ...}]}``."""
        return {"errors": [{"code": self.code, "message": self.message}]}


class SizedBatch(NamedTuple):
    """A batch that passed the request checks, with its size as mParticle measures it
    and, once :mod:`.validation` has looked at it, its problems."""

    batch: dict[str, Any]
    size: int
    problems: Sequence[Problem] = ()


def parse_basic_auth(header: Optional[str]) -> tuple[str, str]:
    """Return ``(key, secret)`` from an ``Authorization: Basic`` header, else 401."""
    if not header:
        raise RequestError(401, "missing Authorization header: send HTTP Basic key:secret")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise RequestError(401, f"Authorization scheme is {scheme!r}, not HTTP Basic")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise RequestError(401, "Authorization is not Base64 of UTF-8 key:secret") from None
    key, colon, secret = decoded.partition(":")
    if not colon or not key:
        raise RequestError(401, "Authorization does not hold a non-empty key, ':' and a secret")
    return key, secret


def check_credentials(
    key: str, secret: str, expected_key: Optional[str], expected_secret: Optional[str]
) -> None:
    """403 unless the credentials match the configured ones (``None`` accepts any).

    Messages name the key but never a secret, because they end up in logs.
    """
    if expected_key is not None and not _same(key, expected_key):
        raise RequestError(403, f"API key {key!r} is not the key this server accepts")
    if expected_secret is not None and not _same(secret, expected_secret):
        raise RequestError(403, f"API secret does not match for key {key!r}")


def _same(given: str, expected: str) -> bool:
    # Constant-time, so the devserver does not teach a timing-leaky comparison.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def decode_body(raw: bytes, content_encoding: Optional[str]) -> bytes:
    """The body as JSON bytes: gunzipped if needed, and under the request limit.

    The limit applies after decompression, and decompression stops at the limit,
    so a small gzip bomb cannot make the server allocate more than that.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "gzip":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
                body = stream.read(MAX_REQUEST_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            raise RequestError(400, f"body is not valid gzip: {exc}") from None
        if len(body) >= MAX_REQUEST_BYTES:
            raise RequestError(
                413,
                f"request body is at least {MAX_REQUEST_BYTES:,} bytes after gzip "
                f"decompression; it must be under {MAX_REQUEST_BYTES:,}",
            )
        return body
    if encoding != "identity":
        raise RequestError(415, f"unsupported Content-Encoding {content_encoding!r}; use gzip")
    if len(raw) >= MAX_REQUEST_BYTES:
        raise RequestError(413, f"request body is {len(raw):,} bytes; it must be under {MAX_REQUEST_BYTES:,}")
    return raw


def load_batches(body: bytes, path: str) -> list[dict[str, Any]]:
    """Parse the body and check its top-level shape for ``path``; 400 if wrong.

    ``/v2/events`` takes one batch object, the bulk paths an array of objects.
    The result is always a list so that later steps need not care which.
    """
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"body is not UTF-8: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    if path == EVENTS_PATH:
        if not isinstance(document, dict):
            raise RequestError(
                400,
                f"{EVENTS_PATH} takes one batch object, got {json_type(document)}"
                f" (arrays of batches go to {BULK_PATH})",
            )
        return [document]
    if not isinstance(document, list):
        raise RequestError(400, f"{path} takes an array of batches, got {json_type(document)}")
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise RequestError(400, f"batches[{index}] is {json_type(item)}, not an object")
    return document


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told not to.
    raise ValueError(f"{name} is not valid JSON")


def check_batches(batches: list[dict[str, Any]], path: str) -> list[SizedBatch]:
    """Apply the per-request count and the per-batch size and event checks; 400 if broken.

    Only what makes a request unreadable is refused here; everything else mParticle's
    schema says about a batch is reported by :mod:`.validation` on the stored batch.
    """
    if len(batches) > MAX_BATCHES_PER_REQUEST:
        raise RequestError(
            400,
            f"{len(batches)} batches in one request; at most {MAX_BATCHES_PER_REQUEST} allowed",
        )
    checked = []
    for index, batch in enumerate(batches):
        label = "batch" if path == EVENTS_PATH else f"batches[{index}]"
        size = batch_size(batch)
        if size > MAX_BATCH_BYTES:
            raise RequestError(400, f"{label} is {size:,} bytes; a batch may be at most {MAX_BATCH_BYTES:,}")
        _check_events(batch, label)
        checked.append(SizedBatch(batch, size))
    return checked


def batch_size(batch: dict[str, Any]) -> int:
    """A batch's size as mParticle's limit counts it: compact UTF-8 JSON bytes."""
    return len(utf8(json.dumps(batch, separators=(",", ":"), ensure_ascii=False)))


def _check_events(batch: dict[str, Any], label: str) -> None:
    # Like mParticle's 400 for "malformed JSON or missing fields": an event list
    # the server cannot walk. Each of these the schema rejects as well. A ``data``
    # that is not an object is left to the validator: the schema's event
    # definitions do not declare its type, so it passes them.
    # A missing or null ``events`` is allowed: the schema says ``array|null``.
    events = batch.get("events")
    if events is None:
        return
    if not isinstance(events, list):
        raise RequestError(400, f"{label}.events is {json_type(events)}, not an array")
    for index, event in enumerate(events):
        where = f"{label}.events[{index}]"
        if not isinstance(event, dict):
            raise RequestError(400, f"{where} is {json_type(event)}, not an object")
        for field in ("event_type", "data"):
            if field not in event:
                raise RequestError(400, f"{where} lacks {field}")
        if not isinstance(event["event_type"], str):
            raise RequestError(400, f"{where}.event_type is {json_type(event['event_type'])}")


def historical_rejection(batch: dict[str, Any], now_ms: float) -> Optional[str]:
    """Why mParticle would silently drop this batch on the historical path, or ``None``.

    mParticle answers 202 anyway, so the reason is only visible in the devserver.
    """
    events: list[dict[str, Any]] = batch.get("events") or []
    if not events:
        return "no events"
    cutoff = now_ms - HISTORICAL_MIN_AGE_MS
    for index, event in enumerate(events):
        data = event["data"]
        stamp = data.get("timestamp_unixtime_ms") if isinstance(data, dict) else None
        if stamp is None:
            return f"events[{index}] has no data.timestamp_unixtime_ms"
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
            return f"events[{index}].data.timestamp_unixtime_ms is {json_type(stamp)}"
        if stamp > cutoff:
            return (
                f"events[{index}] is less than 72 hours old (timestamp_unixtime_ms "
                f"{stamp}, server time {int(now_ms)})"
            )
    return None


def describe_batch(seq: int, path: str, batch: SizedBatch) -> str:
    """One log line that lets a reader see what arrived without opening the JSON.

    Example: ``batch 12 (bulkevents) user customer_id=user-1 other=anon-9:
    3 events [custom_event x2, screen_view], 4 user attributes, 1,203 bytes``.
    """
    data = batch.batch
    identities = data.get("user_identities")
    user = [f"{k}={v}" for k, v in identities.items()] if isinstance(identities, dict) else []
    if "mpid" in data:
        user.append(f"mpid={data['mpid']}")
    events = data.get("events") or []
    types = Counter(str(event["event_type"]) for event in events)
    listed = ", ".join(name if n == 1 else f"{name} x{n}" for name, n in types.items())
    listed = f" [{listed}]" if listed else ""
    attributes = data.get("user_attributes")
    return (
        f"batch {seq} ({path.removeprefix('/v2/')}) user {' '.join(user) or 'unknown'}: "
        f"{_plural(len(events), 'event')}{listed}, "
        f"{_plural(len(attributes) if isinstance(attributes, dict) else 0, 'user attribute')}, "
        f"{batch.size:,} bytes"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"
