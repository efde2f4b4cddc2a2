"""One measurement: one library, one workload, in a process of its own. Prints one JSON object.

    python benchmarks/workload.py {ours|segment|plain} {track|identify+track|sync} --endpoint URL [options]

Why a process per measurement: peak RSS (``ru_maxrss``) and CPU time are
process-wide figures, so the only way to attribute them to one library and one
run is to give each run a fresh interpreter. The same file runs under both
libraries' interpreters (this project's for ``ours``, a virtual environment
holding ``segment-analytics-python==2.4.0`` for ``segment``), so it uses the
standard library only, and the two libraries are driven by exactly the same
loop with exactly the same arguments.

Everything a call needs (users, event names, property dicts) is generated from
a seeded ``random.Random`` *before* the clock starts, and each call passes a
fresh shallow copy of a pooled property dict, as an application building a
new dict per call would. Both libraries are created with their defaults except
the endpoint and a queue large enough that nothing is dropped.

Figures (all for the call loop and the flush, not for imports or set-up):

* ``caller_us_per_call``: wall time of the call loop / calls.
* ``flush_s``: wall time from the first call until ``flush()`` returns
  ("seconds until flush() returns"); ``loop_s`` is the loop alone.
* ``cpu_s``: ``time.process_time()`` over the same span: every thread of the process.
  ``caller_cpu_s`` is the calling thread's share (``time.thread_time()``), the rest is
  the delivery threads' (``delivery_cpu_s``).
* ``peak_rss_kb``: ``getrusage(RUSAGE_SELF).ru_maxrss`` after the flush (whole process,
  interpreter included; ``rss_before_kb`` is the same figure just before the loop).
* ``sync``: per-call latency (``time.perf_counter_ns`` around each call), p50/p99.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import threading
import time
from typing import Any, Callable, Optional

try:
    import resource
except ImportError:  # not on Windows: RSS is then reported as 0
    resource = None  # type: ignore[assignment]

LIBRARIES = ("ours", "segment", "plain")
WORKLOADS = ("track", "identify+track", "sync")
#: Distinct property dicts generated up front; calls cycle through them (copied per call).
POOL_SIZE = 1024
EVENT_NAMES = ("Button Clicked", "Search Performed", "Video Played", "Article Read", "Settings Changed")
PLANS = ("free", "starter", "pro", "enterprise")
OUR_KEY, OUR_SECRET = "us1-bench", "s"
SEGMENT_KEY = "bench-write-key"


def user_id(index: int) -> str:
    return f"user-{index:05d}"


def make_properties(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """``count`` property dicts of 8 values: 2 strings, 2 ints, 2 floats, a bool, an aware datetime."""
    base = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    zones = [dt.timezone(dt.timedelta(minutes=m)) for m in (0, 60, -300, 330)]
    pool = []
    for _ in range(count):
        pool.append({
            "plan": rng.choice(PLANS),
            "path": f"/docs/{rng.choice(('start', 'api', 'sdk', 'pricing'))}/{rng.randrange(1000)}",
            "count": rng.randrange(1, 50),
            "duration_ms": rng.randrange(10, 600_000),
            "score": round(rng.uniform(0, 100), 3),
            "ratio": rng.random(),
            "is_trial": rng.random() < 0.3,
            "occurred_at": (base + dt.timedelta(seconds=rng.randrange(86_400 * 30))).astimezone(
                rng.choice(zones)
            ),
        })
    return pool


def make_traits(rng: random.Random, index: int) -> dict[str, Any]:
    """Six traits: strings, an int, a float and an aware datetime."""
    uid = user_id(index)
    return {
        "email": f"{uid}@example.com",
        "name": f"User {index}",
        "plan": rng.choice(PLANS),
        "age": rng.randrange(18, 90),
        "ltv": round(rng.uniform(0, 5000), 2),
        "created_at": dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
        + dt.timedelta(hours=rng.randrange(10_000)),
    }


class PlainLoop:
    """The issue's reference point, not a library: dicts, ``json.dumps`` and one
    ``requests.Session`` posting per-user batches.

    It does none of a library's work: no argument checks, no copy of what the
    caller passes (it keeps the caller's dicts), no queue or thread, no limits
    or retries, one timestamp per call. ``track`` and ``identify`` only file the
    event under its user; ``flush`` serializes each user's batch once and posts
    them in requests of at most 100 batches and under 256 KB. How far a library's
    figures are above this loop's is what its work costs.
    """

    def __init__(self, endpoint: str):
        import requests

        self._session = requests.Session()
        self._url = f"{endpoint}/v2/bulkevents"
        self._users: dict[str, dict[str, Any]] = {}
        self._count = 0

    def _batch(self, user: str) -> dict[str, Any]:
        batch = self._users.get(user)
        if batch is None:
            batch = self._users[user] = {
                "environment": "production", "user_identities": {"customer_id": user}, "events": [],
            }
        return batch

    def track(self, user: str, event: str, properties: dict[str, Any]) -> tuple[bool, None]:
        self._count += 1
        self._batch(user)["events"].append({"event_type": "custom_event", "data": {
            "event_name": event, "custom_event_type": "other", "source_message_id": str(self._count),
            "timestamp_unixtime_ms": int(time.time() * 1000), "custom_attributes": properties,
        }})
        return True, None

    def identify(self, user: str, traits: dict[str, Any]) -> tuple[bool, None]:
        self._batch(user)["user_attributes"] = traits
        return True, None

    def flush(self) -> None:
        request: list[str] = []
        size = 2
        for batch in self._users.values():
            body = json.dumps(batch, separators=(",", ":"), default=dt.datetime.isoformat)
            if request and (len(request) == 100 or size + len(body) + 1 >= 262_144):
                self._post(request)
                request, size = [], 2
            request.append(body)
            size += len(body) + 1
        if request:
            self._post(request)
        self._users.clear()

    def _post(self, bodies: list[str]) -> None:
        answer = self._session.post(
            self._url, data=f"[{','.join(bodies)}]".encode(), headers={"Content-Type": "application/json"}
        )
        answer.raise_for_status()

    def close(self) -> None:
        self._session.close()


class Bench:
    """A library's client behind the two calls and the two lifecycle steps the workloads use."""

    def __init__(self, library: str, endpoint: str, *, sync_mode: bool, max_queue_size: int):
        self.errors = 0  # messages reported through on_error
        self.library = library
        started = time.perf_counter()
        if library == "ours":
            import mparticle_analytics

            self.client: Any = mparticle_analytics.Client(
                OUR_KEY, secret=OUR_SECRET, host=endpoint, max_queue_size=max_queue_size,
                sync_mode=sync_mode, on_error=self._on_error,
            )
            self.version = mparticle_analytics.VERSION
            self.module_file = mparticle_analytics.__file__
            self._close: Callable[[], Any] = self.client.shutdown
        elif library == "segment":
            from importlib.metadata import version

            import segment.analytics  # type: ignore[import-not-found]

            self.client = segment.analytics.Client(
                SEGMENT_KEY, host=endpoint, max_queue_size=max_queue_size,
                sync_mode=sync_mode, on_error=self._on_error,
            )
            self.version = version("segment-analytics-python")
            self.module_file = segment.analytics.__file__
            # Segment's join() stops its consumer threads; in sync mode there are none.
            self._close = (lambda: None) if sync_mode else self.client.join
        elif library == "plain" and not sync_mode:
            self.client = PlainLoop(endpoint)
            self.version = "reference"
            self.module_file = __file__
            self._close = self.client.close
        else:
            raise SystemExit(f"unknown library {library!r} (or sync mode for plain); one of {LIBRARIES}")
        self.setup_s = time.perf_counter() - started

    def _on_error(self, error: Exception, messages: list[Any]) -> None:
        self.errors += len(messages)
        print(f"on_error: {error!r} ({len(messages)} message(s))", file=sys.stderr)

    def flush(self) -> None:
        self.client.flush()

    def close(self) -> None:
        self._close()


def _rss_kb() -> int:
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: a p99 of 500 samples is the 495th)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5 - 1e-9)))
    return sorted_values[rank - 1]


def run_async(bench: Bench, workload: str, args: argparse.Namespace) -> dict[str, Any]:
    """``track`` or ``identify+track``: the call loop, then ``flush()``; caller-side and flush figures."""
    rng = random.Random(args.seed)
    pool = make_properties(rng, POOL_SIZE)
    users = [user_id(i) for i in range(args.users)]
    mask = POOL_SIZE - 1
    if workload == "track":
        who = [users[rng.randrange(args.users)] for _ in range(args.events)]
        what = [EVENT_NAMES[rng.randrange(len(EVENT_NAMES))] for _ in range(args.events)]
        traits: list[Optional[dict[str, Any]]] = [None] * args.events
    else:
        # Each user: one identify, then its tracks; users interleave at random
        # (a shuffled multiset whose first occurrence of a user is its identify).
        order = [u for u in range(args.users) for _ in range(1 + args.tracks_per_user)]
        rng.shuffle(order)
        user_traits = [make_traits(rng, u) for u in range(args.users)]
        seen: set[int] = set()
        who, what, traits = [], [], []
        for u in order:
            who.append(users[u])
            what.append(EVENT_NAMES[rng.randrange(len(EVENT_NAMES))])
            traits.append(None if u in seen else user_traits[u])
            seen.add(u)
    calls = len(who)
    harness_us = _harness_us_per_call(who, what, pool)
    track, identify = bench.client.track, bench.client.identify
    sent = {"track": 0, "identify": 0}
    rejected = 0

    rss_before = _rss_kb()
    cpu0, caller_cpu0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    if workload == "track":
        for i in range(calls):
            ok, _ = track(who[i], what[i], dict(pool[i & mask]))
            if not ok:
                rejected += 1
    else:
        for i in range(calls):
            user_traits_i = traits[i]
            if user_traits_i is None:
                ok, _ = track(who[i], what[i], dict(pool[i & mask]))
            else:
                ok, _ = identify(who[i], dict(user_traits_i))
            if not ok:
                rejected += 1
    t1 = time.perf_counter()
    bench.flush()
    t2 = time.perf_counter()
    cpu2, caller_cpu2 = time.process_time(), time.thread_time()
    peak_rss = _rss_kb()

    identifies = sum(1 for t in traits if t is not None)
    sent["identify"] = identifies
    sent["track"] = calls - identifies
    return {
        "calls": calls,
        "sent": {k: v for k, v in sent.items() if v},
        "rejected": rejected,
        "loop_s": t1 - t0,
        "flush_s": t2 - t0,
        "flush_wait_s": t2 - t1,
        "caller_us_per_call": (t1 - t0) / calls * 1e6 if calls else 0.0,
        "cpu_s": cpu2 - cpu0,
        "caller_cpu_s": caller_cpu2 - caller_cpu0,
        "delivery_cpu_s": (cpu2 - cpu0) - (caller_cpu2 - caller_cpu0),
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak_rss,
        "harness_us_per_call": harness_us,
    }


def _noop(*args: Any) -> tuple[bool, None]:
    return True, None


def _harness_us_per_call(who: list[str], what: list[str], pool: list[dict[str, Any]]) -> float:
    """What the loop itself costs per call (indexing, the dict copy, a call), with a no-op for the library.

    Why: it is included in both libraries' caller µs per call; this says how much.
    """
    calls, mask = min(len(who), 20_000), POOL_SIZE - 1
    started = time.perf_counter()
    for i in range(calls):
        _ok, _ = _noop(who[i], what[i], dict(pool[i & mask]))
    return (time.perf_counter() - started) / max(calls, 1) * 1e6


def run_sync(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """``sync``: ``sync_mode=True``, each call delivers before it returns; per-call latency."""
    rng = random.Random(args.seed)
    pool = make_properties(rng, POOL_SIZE)
    calls = args.sync_calls
    who = [user_id(i % args.users) for i in range(calls)]
    what = [EVENT_NAMES[rng.randrange(len(EVENT_NAMES))] for _ in range(calls)]
    track = bench.client.track
    latencies_ns: list[int] = []
    clock = time.perf_counter_ns
    rejected = 0

    rss_before = _rss_kb()
    cpu0, caller_cpu0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    for i in range(calls):
        start = clock()
        ok, _ = track(who[i], what[i], dict(pool[i % POOL_SIZE]))
        latencies_ns.append(clock() - start)
        if not ok:
            rejected += 1
    t1 = time.perf_counter()
    cpu1, caller_cpu1 = time.process_time(), time.thread_time()
    peak_rss = _rss_kb()

    ordered = sorted(ns / 1000 for ns in latencies_ns)
    return {
        "calls": calls,
        "sent": {"track": calls} if calls else {},
        "rejected": rejected,
        "loop_s": t1 - t0,
        "caller_us_per_call": (t1 - t0) / calls * 1e6 if calls else 0.0,
        "p50_us": _percentile(ordered, 0.50),
        "p99_us": _percentile(ordered, 0.99),
        "mean_us": sum(ordered) / len(ordered) if ordered else float("nan"),
        "max_us": ordered[-1] if ordered else float("nan"),
        "cpu_s": cpu1 - cpu0,
        "caller_cpu_s": caller_cpu1 - caller_cpu0,
        "delivery_cpu_s": (cpu1 - cpu0) - (caller_cpu1 - caller_cpu0),
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak_rss,
    }


class Profiler:
    """cProfile for the calling thread and, separately, for the threads the library starts.

    Why per thread: the caller's cost (what ``track()`` costs the application) and
    the delivery thread's cost (what ``flush()`` waits for) are optimised apart.
    Up to Python 3.11 ``threading.setprofile`` gives every new thread a profiler of
    its own; from 3.12 cProfile is process-wide (``sys.monitoring``), so one
    profile holds every thread (``all-threads.pstats``).
    """

    def __init__(self, directory: str):
        import cProfile

        self._cprofile = cProfile
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.per_thread = sys.version_info < (3, 12)
        self.main = cProfile.Profile()
        self.threads: dict[str, Any] = {}
        self._lock = threading.Lock()
        if self.per_thread:
            threading.setprofile(self._start_thread)

    def _start_thread(self, frame: Any, event: str, arg: Any) -> None:
        profile = self._cprofile.Profile()
        with self._lock:
            self.threads[threading.current_thread().name] = profile
        profile.enable()  # replaces this hook for the rest of the thread's life

    def start(self) -> None:
        self.main.enable()

    def stop(self) -> None:
        self.main.disable()

    def save(self) -> list[str]:
        """Write the profiles (after the library's threads ended); the paths written."""
        threading.setprofile(None)
        written = []
        name = "caller.pstats" if self.per_thread else "all-threads.pstats"
        self.main.dump_stats(os.path.join(self.directory, name))
        written.append(name)
        for thread, profile in sorted(self.threads.items()):
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in thread)
            profile.dump_stats(os.path.join(self.directory, f"thread-{safe}.pstats"))
            written.append(f"thread-{safe}.pstats")
        return [os.path.join(self.directory, w) for w in written]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="One benchmark measurement; prints one JSON object.")
    parser.add_argument("library", choices=LIBRARIES)
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--endpoint", required=True, help="base URL of benchmarks/endpoint.py")
    parser.add_argument("--events", type=int, default=100_000, help="track calls in the track workload")
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--tracks-per-user", type=int, default=20, help="identify+track: tracks per user")
    parser.add_argument("--sync-calls", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--queue-size", type=int, default=0, help="default: max(10**6, calls)")
    parser.add_argument("--profile", metavar="DIR", help="write cProfile .pstats per thread into DIR")
    args = parser.parse_args(argv)

    calls = {"track": args.events, "identify+track": args.users * (1 + args.tracks_per_user),
             "sync": args.sync_calls}[args.workload]
    queue_size = args.queue_size or max(10**6, calls + 1)
    profiler = Profiler(args.profile) if args.profile else None
    bench = Bench(args.library, args.endpoint, sync_mode=args.workload == "sync", max_queue_size=queue_size)
    if profiler:
        profiler.start()
    result = run_sync(bench, args) if args.workload == "sync" else run_async(bench, args.workload, args)
    if profiler:
        profiler.stop()
    close_started = time.perf_counter()
    bench.close()
    result.update({
        "library": args.library,
        "library_version": bench.version,
        "library_file": bench.module_file,
        "workload": args.workload,
        "errors": bench.errors,
        "setup_s": bench.setup_s,
        "close_s": time.perf_counter() - close_started,
        "cpu_total_s": time.process_time(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "queue_size": queue_size,
        "profiles": profiler.save() if profiler else [],
    })
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
