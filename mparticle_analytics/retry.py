"""The retry policy of wire.md as data and one flat loop. Pure: the clock and the waits are passed in.

Transient failures (408, most 5xx, network errors, timeouts) are retried with
exponential backoff and full jitter from the ``backoff`` library, up to
``max_retries`` retries and ``max_total_backoff`` seconds. A 429 waits for its
``Retry-After`` (capped at 300 s), else backs off, for at most ``max_rate_limit``
seconds, without using up ``max_retries``. Everything else is final. The caller
resends the same body every time, so the same ``source_request_id`` goes out and
mParticle keeps each batch once however often it arrives.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Callable, NamedTuple, Optional

import backoff
import requests

from .errors import APIError
from .transport import Response

log = logging.getLogger("mparticle_analytics")

#: The longest ``Retry-After`` honoured, in seconds (as Segment 2.4.0).
MAX_RETRY_AFTER = 300.0
#: Backoff before retry n is uniform(0, min(0.5 * 2**(n-1), 60)) seconds.
BACKOFF_FACTOR = 0.5
BACKOFF_MAX = 60.0


class Verdict(enum.Enum):
    """What one answer means for the request that got it."""

    DELIVERED = "delivered"
    RETRY = "retry"  # transient: back off and resend
    RATE_LIMITED = "rate_limited"  # 429: wait as told and resend
    TOO_LARGE = "too_large"  # 413: split the request
    BAD_REQUEST = "bad_request"  # 400: split down to the bad batch
    UNAUTHORIZED = "unauthorized"  # 401/403: a configuration problem
    FATAL = "fatal"  # anything else: give up
    GAVE_UP = "gave_up"  # retries or time budget used up
    INTERRUPTED = "interrupted"  # shutdown deadline reached while waiting to retry


def classify(status: int) -> Verdict:
    """wire.md "Responses": what a status code means."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 429:
        return Verdict.RATE_LIMITED
    if status == 408 or (500 <= status < 600 and status not in (501, 505)):
        return Verdict.RETRY
    return {400: Verdict.BAD_REQUEST, 401: Verdict.UNAUTHORIZED, 403: Verdict.UNAUTHORIZED,
            413: Verdict.TOO_LARGE}.get(status, Verdict.FATAL)


def parse_retry_after(value: Optional[str], now: Optional[dt.datetime] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), capped at 300.

    None when the header is absent, unreadable, or a date already past: then the
    caller backs off as for any transient error.
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            log.warning("Unrecognized Retry-After header %r; backing off instead", value)
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        seconds = (when - (now or dt.datetime.now(dt.timezone.utc))).total_seconds()
        if seconds <= 0:
            return None
    if seconds != seconds or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


class RetryPolicy(NamedTuple):
    """Segment 2.4.0's budgets, with its defaults."""

    max_retries: int = 10
    max_total_backoff: float = 43200.0
    max_rate_limit: float = 1800.0


class Outcome(NamedTuple):
    """How a request ended: the final verdict, the last error, and how many retries it took."""

    verdict: Verdict
    error: Optional[Exception]
    retries: int


def backoff_delays(jitter: Callable[[float], float] = backoff.full_jitter) -> Iterator[float]:
    """The waits between retries: exponential, capped, jittered (``backoff``'s generators)."""
    ceilings = backoff.expo(factor=BACKOFF_FACTOR, max_value=BACKOFF_MAX)
    next(ceilings)  # backoff's generators are primed with one next()
    return (jitter(ceiling) for ceiling in ceilings)


def send_with_retries(
    send: Callable[[], Response],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], bool],
    clock: Callable[[], float],
    delays: Optional[Iterator[float]] = None,
) -> Outcome:
    """Send until delivered or final. ``sleep(seconds)`` returns False when waiting must stop."""
    delays = delays if delays is not None else backoff_delays()
    retries = 0
    failing_since: Optional[float] = None
    limited_since: Optional[float] = None
    while True:
        retry_after: Optional[float] = None
        error: Exception
        try:
            response = send()
        except (OSError, requests.RequestException) as exc:
            verdict, error = Verdict.RETRY, exc
        else:
            verdict = classify(response.status)
            if verdict is Verdict.DELIVERED:
                return Outcome(verdict, None, retries)
            error = APIError.from_body(response.status, response.text, response.raw)
            if verdict is Verdict.RATE_LIMITED:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        now = clock()
        if verdict is Verdict.RETRY:
            failing_since = now if failing_since is None else failing_since
            delay = next(delays)
            if retries >= policy.max_retries or now - failing_since + delay > policy.max_total_backoff:
                return Outcome(Verdict.GAVE_UP, error, retries)
        elif verdict is Verdict.RATE_LIMITED:
            limited_since = now if limited_since is None else limited_since
            delay = retry_after if retry_after is not None else next(delays)
            if now - limited_since + delay > policy.max_rate_limit:
                return Outcome(Verdict.GAVE_UP, error, retries)
        else:
            return Outcome(verdict, error, retries)
        log.debug("retrying in %.2f s after %s", delay, error)
        if not sleep(delay):
            return Outcome(Verdict.INTERRUPTED, error, retries)
        retries += 1
