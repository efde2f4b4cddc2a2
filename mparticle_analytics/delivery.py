"""From queued messages to delivered requests: map, batch, send with retries, report.

The same ``Delivery.send`` runs on a delivery thread and, in ``sync_mode``, on
the caller's thread. Every message handed to it ends exactly once: counted as
delivered, or given up, counted by reason and passed to ``on_error`` (in sync
mode the error is raised instead, as Segment does).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

from .batching import Batch, build_batches, pack_requests, request_body
from .errors import DeliveryError
from .mapping import EVENT_TYPES, Mapped, Mapper, unix_ms
from .retry import RetryPolicy, Verdict, send_with_retries
from .snapshot import Snapshot, restore
from .stats import Stats
from .transport import Transport
from .values import Attributes

log = logging.getLogger("mparticle_analytics")

OnError = Callable[[Exception, list[dict[str, Any]]], Any]

#: The ``stats()`` drop reason for each final verdict.
_REASONS = {
    Verdict.BAD_REQUEST: "bad_request",
    Verdict.UNAUTHORIZED: "unauthorized",
    Verdict.TOO_LARGE: "too_large",
    Verdict.FATAL: "gave_up",
    Verdict.GAVE_UP: "gave_up",
    Verdict.INTERRUPTED: "unsent_at_shutdown",
}
#: Snapshots mapped between two chances for the application's threads to go first.
STEP = 50

#: mParticle drops historical batches holding an event younger than this (wire.md).
HISTORICAL_MIN_AGE_MS = 72 * 3600 * 1000


class Delivery:
    """Turns a list of snapshots (``snapshot.take``) into delivered mParticle requests."""

    def __init__(
        self,
        *,
        transport: Transport,
        mapper: Mapper,
        environment: str,
        policy: RetryPolicy,
        stats: Stats,
        on_error: Optional[OnError],
        sleep: Callable[[float], bool],
        make_way: Callable[[], None],
        clock: Callable[[], float],
        api_key: str,
        historical: bool = False,
    ):
        self._transport = transport
        self._mapper = mapper
        self._environment = environment
        self._policy = policy
        self._stats = stats
        self._on_error = on_error
        self._sleep = sleep
        self._make_way = make_way
        self._clock = clock
        self._api_key = api_key
        self._historical = historical
        self._limit_attributes = Attributes(stats.value).limit_user
        self._auth_reported = threading.Event()

    def send(self, messages: Sequence[Snapshot], *, sync: bool = False) -> None:
        """Deliver these messages.

        ``sync``: running on the caller's thread (``sync_mode``), so raise the first
        give-up's error as Segment does, and never step aside for other threads.
        """
        too_recent: list[Snapshot] = []
        # Mapped one by one as batching asks: nothing per message outlives its turn.
        batches, rejected = build_batches(
            self._map(messages, sync, too_recent),
            environment=self._environment,
            limit_attributes=self._limit_attributes,
        )
        if too_recent:
            error = DeliveryError("too_recent", "the historical endpoint drops events under 72 hours old")
            self.give_up(too_recent, error, sync)
        for sources, reason in rejected:
            self.give_up(sources, DeliveryError("oversize", reason), sync)
        if self._historical:
            for batch in batches:
                if not batch.events:
                    error = DeliveryError("historical_without_events", "mParticle drops historical "
                                          "batches without events; send profile changes live")
                    self.give_up(batch.sources, error, sync)
            batches = [batch for batch in batches if batch.events]
        for request in pack_requests(batches):
            self._deliver(request, sync)
            if not sync:
                self._make_way()

    def _map(self, messages: Sequence[Snapshot], sync: bool, too_recent: list[Snapshot]) -> Iterator[Mapped]:
        """The messages mapped; those the historical endpoint would drop go to ``too_recent``."""
        cutoff = time.time() * 1000 - HISTORICAL_MIN_AGE_MS if self._historical else None
        for count, message in enumerate(messages, 1):
            if count % STEP == 0 and not sync:
                self._make_way()
            try:
                item = self._mapper.map(message)
            except Exception as exc:  # a mapping bug must cost one message, never the thread
                log.exception("could not map a %s message", message.get("type"))
                self.give_up([message], DeliveryError("mapping_error", repr(exc)), sync)
                continue
            if (cutoff is not None and message["type"] in EVENT_TYPES
                    and unix_ms(message["timestamp"]) > cutoff):
                too_recent.append(message)
            else:
                yield item

    def stopped(self) -> None:
        """After a shutdown: say the held-back loss counts, release the pooled connections.

        The transport stays usable; a later delivery opens new connections.
        """
        self._stats.flush_warnings()
        self._transport.close()

    def give_up(
        self,
        messages: list[Snapshot],
        error: Exception,
        sync: bool = False,
        reason: Optional[str] = None,
    ) -> None:
        """Count messages as lost, then raise (sync mode) or tell ``on_error``.

        ``on_error`` gets the messages as the calls returned them, read back from their snapshots.
        """
        if reason is None:
            reason = error.reason if isinstance(error, DeliveryError) else "gave_up"
        self._stats.dropped(reason, len(messages), f": {error}")
        if sync:
            raise error
        if self._on_error is None:
            return
        try:
            self._on_error(error, [restore(message) for message in messages])
        except Exception:
            log.exception("on_error raised; delivery goes on")

    def _deliver(self, batches: list[Batch], sync: bool) -> None:
        body = request_body(batches)
        outcome = send_with_retries(
            lambda: self._transport.send(body), self._policy, sleep=self._sleep, clock=self._clock
        )
        self._stats.add("retried", outcome.retries)
        if outcome.verdict is Verdict.DELIVERED:
            delivered = sum(len(batch.sources) for batch in batches)
            self._stats.add("delivered", delivered)
            log.debug("delivered %d message(s) in %d batch(es), %d bytes", delivered, len(batches), len(body))
            return
        if outcome.verdict in (Verdict.TOO_LARGE, Verdict.BAD_REQUEST) and len(batches) > 1:
            # One bad batch must not take the good ones with it: halve down to it.
            half = len(batches) // 2
            self._deliver(batches[:half], sync)
            self._deliver(batches[half:], sync)
            return
        if outcome.verdict is Verdict.UNAUTHORIZED and not self._auth_reported.is_set():
            self._auth_reported.set()
            log.error(
                "mParticle refused the credentials for API key %r (%s); check write_key and secret",
                self._api_key, outcome.error,
            )
        error = outcome.error
        assert error is not None
        if outcome.verdict is Verdict.INTERRUPTED:
            error = DeliveryError("unsent_at_shutdown", f"shutdown deadline passed while retrying ({error})")
            error.__cause__ = outcome.error
        sources = [source for batch in batches for source in batch.sources]
        self.give_up(sources, error, sync, _REASONS[outcome.verdict])
