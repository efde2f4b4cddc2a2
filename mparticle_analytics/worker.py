"""The queue, the delivery threads, and their whole lifecycle: flush, shutdown, exit and fork.

All thread state lives here, behind one lock and one condition; the rest of the
library is plain functions. The worker does not know what it delivers: it hands
lists of queued items to ``process`` and counts them settled when it returns.

Flush is exact: items are numbered in queue order, and ``flush`` waits until
every item numbered up to the last one queued before the call has settled,
whatever else is queued meanwhile. Every wait has a deadline or is woken by a
state change; nothing polls.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from os import getpid
from typing import Callable, Generic, Optional, TypeVar

from .errors import DeliveryError
from .hooks import after_fork_in_child, weak_hook

log = logging.getLogger("mparticle_analytics")

#: A delivery round takes at most this many times ``batch_size`` items.
ROUND_FACTOR = 100
#: How long a delivery thread steps aside for the application's calls (``make_way``).
MAKE_WAY_SECONDS = 0.02
#: ... unless the queue is at least 1/MAKE_WAY_UNTIL full: then calls are outpacing delivery.
MAKE_WAY_UNTIL = 10
#: Seconds a shutdown waits past its deadline for threads whose waits it just interrupted.
SHUTDOWN_GRACE = 0.2


#: What the worker queues and hands to ``process``; it never looks inside.
Item = TypeVar("Item")


class MessageQueue(Generic[Item]):
    """The queued items; Segment's code reads ``qsize()``, ``empty()`` and ``maxsize``."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize  #: 0 means unbounded, as for ``queue.Queue``
        self.items: deque[Item] = deque()

    def qsize(self) -> int:
        return len(self.items)

    def empty(self) -> bool:
        return not self.items


class Worker(Generic[Item]):
    """Delivery threads draining one bounded queue.

    ``process(items)`` delivers a chunk of queued items. It is run when
    ``batch_size`` items are queued, ``interval`` seconds after the first of them
    was, or at once when a flush or shutdown asks. A chunk takes what is queued,
    up to ``ROUND_FACTOR * batch_size`` items: a backlog then goes out as fewer,
    fuller per-user batches and requests. ``on_lost(items, error)`` is told
    about items that will not be delivered: still queued when a shutdown deadline
    passes, or in a chunk whose ``process`` raised. ``on_stopped()`` runs at the
    end of every shutdown.
    """

    def __init__(
        self,
        process: Callable[[list[Item]], None],
        *,
        on_lost: Callable[[list[Item], BaseException], None],
        on_stopped: Callable[[], None] = lambda: None,
        threads: int = 1,
        batch_size: int = 100,
        interval: float = 0.5,
        max_queue_size: int = 10000,
        exit_timeout: float = 10.0,
    ):
        self._process = process
        self._on_lost = on_lost
        self._on_stopped = on_stopped
        self._thread_count = threads
        self._batch_size = max(1, batch_size)
        self._interval = interval
        self._max_queue_size = max_queue_size
        self._exit_timeout = exit_timeout
        self._exit_hook: Optional[Callable[[], None]] = None
        self._reset()
        after_fork_in_child(self._reset)

    def _reset(self) -> None:
        """Fresh state: at construction, and in a forked child (whose parent's items are not its own)."""
        self._pid = getpid()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.queue: MessageQueue[Item] = MessageQueue(self._max_queue_size)
        self._threads: list[threading.Thread] = []  # the running ones; each removes itself
        self._enqueued = 0  # items ever queued; item n is the n-th
        self._taken = 0  # items handed to ``process`` (or reported unsent)
        self._seen = 0  # ``_enqueued`` when a delivery thread last made way
        self._in_flight: dict[int, int] = {}  # first item number -> size, of each chunk in process
        self._flush_upto = 0  # deliver without waiting until this item
        self._closing = False  # a shutdown is draining the queue
        self._stop = False  # threads must exit
        self._deadline: Optional[float] = None  # waits must not last past this (shutdown)

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    @property
    def queued(self) -> int:
        """Items ``put`` accepted (since the fork, in a forked child)."""
        return self._enqueued

    # -- the caller's side -----------------------------------------------------------------------

    def put(self, item: Item) -> bool:
        """Queue an item without blocking; False when the queue is full."""
        if self._pid != getpid():  # forked by C code that skips os.register_at_fork hooks
            self._reset()
        # ``with``, never acquire() then try: a signal's exception (Ctrl-C, a task time limit)
        # raised between the two would leave the lock held and every later call blocked.
        with self._lock:
            items = self.queue.items
            if self._max_queue_size and len(items) >= self._max_queue_size:
                return False
            items.append(item)
            self._enqueued += 1
            if len(items) == 1 or len(items) == self._batch_size:
                self._changed.notify_all()  # not only a thread pausing in make_way
        if len(self._threads) < self._thread_count:
            self._start()
        return True

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until everything queued before this call has settled; False if ``timeout`` passed first.

        On a delivery thread (from ``on_error``) it returns False at once: that
        thread cannot wait for the chunk it is delivering.
        """
        if self._pid != getpid():
            self._reset()
        if threading.current_thread() in self._threads:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._enqueued
            if self._settled() >= target:
                return True
            self._flush_upto = max(self._flush_upto, target)
            self._changed.notify_all()
        if not self._start():
            self._drain_here(target, deadline)
        with self._lock:
            while self._settled() < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def shutdown(self, timeout: Optional[float] = None) -> bool:
        """Deliver what is queued within ``timeout``, report what is left, stop the threads.

        True when everything was delivered or given up in time. The worker can be
        used again afterwards: the next ``put`` starts fresh threads. On a delivery
        thread (from ``on_error``) it does nothing and returns False.
        """
        if threading.current_thread() in self._threads:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._closing, self._deadline = True, deadline
            self._changed.notify_all()
        drained = self.flush(timeout)
        with self._lock:
            self._stop = True
            unsent = list(self.queue.items)
            self.queue.items.clear()
            self._taken += len(unsent)
            self._changed.notify_all()
        if unsent:
            self._on_lost(unsent, DeliveryError(
                "unsent_at_shutdown", "still queued when the shutdown deadline passed"
            ))
        for thread in self.threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic()) + SHUTDOWN_GRACE
            thread.join(left)
        with self._lock:
            if self._in_flight:
                log.warning(
                    "%d event(s) were still being sent when the shutdown deadline passed",
                    sum(self._in_flight.values()),
                )
            self._closing = self._stop = False
            self._deadline = None
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook = None
        self._on_stopped()
        return drained and not unsent

    def make_way(self) -> None:
        """Step aside briefly if the application queued events since the last call.

        Delivery threads call this between small steps of a round. Python runs one
        thread at a time, so a delivery thread mapping a backlog slows every
        ``track()`` made meanwhile; stepping aside lets a burst of calls run at
        full speed, and the backlog is delivered as soon as the calls pause. Not
        while a flush or shutdown waits, nor once a tenth of the queue is filled
        (calls arriving faster than the pauses let the thread deliver); a flush or
        shutdown that starts meanwhile ends the pause.
        """
        enqueued = self._enqueued
        if enqueued == self._seen:
            return
        self._seen = enqueued
        room = not self._max_queue_size or len(self.queue.items) * MAKE_WAY_UNTIL < self._max_queue_size
        with self._lock:
            if room and not self._closing and self._flush_upto <= self._settled():
                self._changed.wait(MAKE_WAY_SECONDS)

    def sleep(self, seconds: float) -> bool:
        """Wait before a retry; False, at once, if a shutdown needs the thread back sooner."""
        end = time.monotonic() + seconds
        with self._lock:
            while not self._stop and (self._deadline is None or end <= self._deadline):
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return True
                self._changed.wait(remaining)
        return False

    # -- the threads' side -----------------------------------------------------------------------

    def _start(self) -> bool:
        """Start missing threads (lazily, also after fork or a crash); False if none can run."""
        with self._lock:
            while len(self._threads) < self._thread_count:
                thread = threading.Thread(
                    target=self._run, name=f"mparticle-analytics-{len(self._threads) + 1}", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError:  # the interpreter is shutting down
                    break
                self._threads.append(thread)
            started = bool(self._threads)
        if started and self._exit_hook is None:
            self._exit_hook = weak_hook(self._at_exit)
            atexit.register(self._exit_hook)
        return started

    def _run(self) -> None:
        try:
            while True:
                chunk = self._take(wait=True)
                if chunk is None:
                    return
                self._handle(*chunk)
        finally:
            with self._lock:
                self._threads.remove(threading.current_thread())
                hand_over = bool(self.queue.items) and not self._stop
            if hand_over:  # died with work queued: a successor takes it
                self._start()

    def _drain_here(self, target: int, deadline: Optional[float]) -> None:
        """Deliver on the calling thread when no delivery thread can run (e.g. at interpreter exit)."""
        while deadline is None or time.monotonic() < deadline:
            with self._lock:
                if self._settled() >= target:
                    return
            chunk = self._take(wait=False)
            if chunk is None:
                return
            self._handle(*chunk)

    def _take(self, *, wait: bool) -> Optional[tuple[int, list[Item]]]:
        """The next chunk and the number of its first item, or None when the thread must exit."""
        with self._lock:
            due: Optional[float] = None
            while True:
                if self._stop:
                    return None
                items = self.queue.items
                if not items:
                    if not wait:
                        return None
                    due = None
                    self._changed.wait()
                    continue
                urgent = self._closing or self._flush_upto > self._taken
                if not wait or urgent or len(items) >= self._batch_size:
                    break
                if due is None:
                    due = time.monotonic() + self._interval
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            size = self._batch_size * ROUND_FACTOR
            if len(items) <= size:  # the usual case: all of it, without a step per item under the lock
                chunk = list(items)
                items.clear()
            else:
                chunk = [items.popleft() for _ in range(size)]
            first = self._taken + 1
            self._taken += len(chunk)
            self._in_flight[first] = len(chunk)
            return first, chunk

    def _handle(self, first: int, chunk: list[Item]) -> None:
        try:
            self._process(chunk)
        except BaseException as exc:  # process reports its own failures; this is the last defence
            log.exception("delivery failed unexpectedly; %d event(s) not sent", len(chunk))
            try:
                self._on_lost(chunk, exc)
            except Exception:  # the last defence must not fail in turn and take the thread
                log.exception("could not report %d lost event(s)", len(chunk))
            if not isinstance(exc, Exception):
                raise  # the thread ends; the next put starts a new one
        finally:
            with self._lock:
                del self._in_flight[first]
                self._changed.notify_all()

    def _settled(self) -> int:
        """The highest item number up to which every item has settled (lock held)."""
        return min(self._in_flight) - 1 if self._in_flight else self._taken

    def _at_exit(self) -> None:
        if self.queue.items:
            log.info("delivering %d queued event(s) before exit", len(self.queue.items))
        self.shutdown(self._exit_timeout)
