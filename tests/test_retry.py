"""The retry policy of wire.md, through the transport seam with a fake clock: instant and exact."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Optional, Union

import pytest
import requests

from mparticle_analytics.errors import APIError
from mparticle_analytics.retry import (
    MAX_RETRY_AFTER,
    Outcome,
    RetryPolicy,
    Verdict,
    backoff_delays,
    classify,
    parse_retry_after,
    send_with_retries,
)
from mparticle_analytics.transport import Response

Answer = Union[int, tuple[int, dict[str, str]], Exception]


class FakeClock:
    """Time that moves only when the code under test waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self.interrupt = False

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        if self.interrupt:
            return False
        self.waits.append(seconds)
        self.now += seconds
        return True


class Script:
    """A transport that answers from a script; the last answer repeats."""

    def __init__(self, *answers: Answer):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> Response:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        body = '{"errors":[{"code":"X","message":"m"}]}' if status >= 300 else ""
        return Response(status, headers, body)


DEFAULTS = RetryPolicy()


def run(
    script: Script, policy: RetryPolicy = DEFAULTS, clock: Optional[FakeClock] = None,
    delays: Optional[Iterator[float]] = None,
) -> tuple[Outcome, FakeClock]:
    clock = clock or FakeClock()
    return send_with_retries(script, policy, sleep=clock.sleep, clock=clock, delays=delays), clock


def fixed(seconds: float) -> Iterator[float]:
    while True:
        yield seconds


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED), (202, Verdict.DELIVERED), (204, Verdict.DELIVERED),
        (400, Verdict.BAD_REQUEST), (401, Verdict.UNAUTHORIZED), (403, Verdict.UNAUTHORIZED),
        (413, Verdict.TOO_LARGE), (429, Verdict.RATE_LIMITED), (408, Verdict.RETRY),
        (500, Verdict.RETRY), (502, Verdict.RETRY), (503, Verdict.RETRY), (504, Verdict.RETRY),
        (501, Verdict.FATAL), (505, Verdict.FATAL), (301, Verdict.FATAL), (404, Verdict.FATAL),
        (410, Verdict.FATAL), (422, Verdict.FATAL),
    ],
)
def test_status_classification_follows_wire_md(status: int, verdict: Verdict) -> None:
    assert classify(status) is verdict


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("30", 30.0), ("0", 0.0), ("1.5", 1.5), ("600", MAX_RETRY_AFTER), (None, None), ("", None),
     ("soon", None), ("-3", None)],
)
def test_retry_after_seconds_are_read_and_capped_at_300(
    header: Optional[str], seconds: Optional[float]
) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_http_date_is_seconds_from_now() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:05 GMT", now) == 5.0
    assert parse_retry_after("Thu, 01 Jan 2026 13:00:00 GMT", now) == MAX_RETRY_AFTER
    assert parse_retry_after("Thu, 01 Jan 2026 11:59:00 GMT", now) is None


def test_backoff_is_exponential_from_half_a_second_capped_at_60() -> None:
    delays = backoff_delays(jitter=lambda ceiling: ceiling)
    assert [next(delays) for _ in range(10)] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_jitter_stays_within_the_ceiling() -> None:
    delays = backoff_delays()
    for ceiling in [0.5, 1, 2, 4, 8]:
        assert 0 <= next(delays) <= ceiling


def test_transient_errors_are_retried_until_delivered() -> None:
    script = Script(503, 500, requests.ConnectionError("reset"), 408, 202)
    outcome, clock = run(script, delays=fixed(1))
    assert outcome.verdict is Verdict.DELIVERED and outcome.retries == 4
    assert script.calls == 5 and clock.waits == [1, 1, 1, 1]


def test_max_retries_counts_retries_not_attempts() -> None:
    script = Script(503)
    outcome, _ = run(script, RetryPolicy(max_retries=3), delays=fixed(0.1))
    assert outcome.verdict is Verdict.GAVE_UP and script.calls == 4
    assert isinstance(outcome.error, APIError) and outcome.error.status == 503


def test_network_errors_are_given_up_with_the_original_exception() -> None:
    error = requests.ConnectTimeout("slow")
    outcome, _ = run(Script(error), RetryPolicy(max_retries=1), delays=fixed(0))
    assert outcome.verdict is Verdict.GAVE_UP and outcome.error is error


def test_max_total_backoff_duration_bounds_the_time_spent_failing() -> None:
    script = Script(503)
    outcome, clock = run(script, RetryPolicy(max_total_backoff=25), delays=fixed(10))
    assert outcome.verdict is Verdict.GAVE_UP
    assert clock.waits == [10, 10] and script.calls == 3


def test_429_waits_for_retry_after_exactly() -> None:
    script = Script((429, {"Retry-After": "5"}), 202)
    outcome, clock = run(script, delays=fixed(99))
    assert outcome.verdict is Verdict.DELIVERED and clock.waits == [5.0]


def test_429_without_retry_after_backs_off() -> None:
    outcome, clock = run(Script(429, 202), delays=fixed(0.7))
    assert outcome.verdict is Verdict.DELIVERED and clock.waits == [0.7]


def test_429_does_not_use_up_max_retries() -> None:
    script = Script((429, {"Retry-After": "1"}), (429, {"Retry-After": "1"}), 202)
    outcome, _ = run(script, RetryPolicy(max_retries=0))
    assert outcome.verdict is Verdict.DELIVERED and script.calls == 3


def test_429_waits_are_bounded_by_max_rate_limit_duration() -> None:
    script = Script((429, {"Retry-After": "300"}))
    outcome, clock = run(script, RetryPolicy(max_rate_limit=700))
    assert outcome.verdict is Verdict.GAVE_UP and clock.waits == [300, 300]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(400, Verdict.BAD_REQUEST), (401, Verdict.UNAUTHORIZED), (403, Verdict.UNAUTHORIZED),
     (413, Verdict.TOO_LARGE), (404, Verdict.FATAL), (501, Verdict.FATAL), (302, Verdict.FATAL)],
)
def test_final_statuses_are_not_retried(status: int, verdict: Verdict) -> None:
    script = Script(status, 202)
    outcome, clock = run(script)
    assert outcome.verdict is verdict and script.calls == 1 and clock.waits == []
    assert isinstance(outcome.error, APIError) and outcome.error.status == status


def test_a_shutdown_interrupts_the_wait_and_gives_up() -> None:
    clock = FakeClock()
    clock.interrupt = True
    script = Script(503, 202)
    outcome, _ = run(script, clock=clock)
    assert outcome.verdict is Verdict.INTERRUPTED and script.calls == 1
