"""The benchmark's own self-check at a small size: every event the workloads send arrives.

Why here: ``benchmarks/run.py`` is how the issue's performance targets are
measured, and a benchmark whose counts are wrong (events lost, counted twice,
refused by a full queue) would make its timings meaningless. So CI runs the
harness end to end, through the same code path as a full run (the same
``run.py``, ``workload.py`` and ``endpoint.py`` processes), for this library only:
no network, no Segment virtual environment. Nothing here asserts a time.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("track", "identify+track", "sync")


def _run_small(tmp_path: Path, only: str = "ours") -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    output = tmp_path / "benchmark.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", only, "--small", "--repeat", "1",
         "--json", str(output)],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )
    assert output.exists(), f"run.py wrote no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done, json.loads(output.read_text())


def test_small_benchmark_receives_every_event_sent(tmp_path: Path) -> None:
    done, report = _run_small(tmp_path)
    assert done.returncode == 0, f"{report['problems']}\n{done.stdout}\n{done.stderr}"
    assert report["ok"] and report["problems"] == []

    runs = report["runs"]
    assert sorted(run["workload"] for run in runs) == sorted(WORKLOADS)
    for run in runs:
        context = f"{run['workload']}: {run['problems']} {run.get('stderr', '')}"
        assert run["library"] == "ours", context
        assert run["ok"], context
        assert run["events_sent"] == run["calls"] > 0, context
        assert run["events_received"] == run["events_sent"], context
        assert run["received"] == run["sent"], context
        assert run["endpoint"]["duplicates"] == 0, context
        assert run["rejected"] == 0 and run["errors"] == 0, context
        assert run["requests"] > 0 and run["body_bytes"] > 0, context

    by_workload = {run["workload"]: run for run in runs}
    assert by_workload["track"]["sent"] == {"track": 2_000}
    assert by_workload["identify+track"]["sent"] == {"identify": 50, "track": 50 * 20}
    assert by_workload["sync"]["sent"] == {"track": 20}
    # The figures the table is made of are all there (their values are not judged).
    for key in ("caller_us_per_call", "flush_s", "cpu_s", "peak_rss_mb"):
        assert key in by_workload["track"], key
    for key in ("p50_us", "p99_us"):
        assert key in by_workload["sync"], key
    assert "== track" in done.stdout and "self-check: events received == events sent" in done.stdout


def test_the_plain_reference_loop_delivers_every_event_too(tmp_path: Path) -> None:
    """The reference column is only a floor if it does the same delivery; it has no sync mode."""
    done, report = _run_small(tmp_path, only="plain")
    assert done.returncode == 0 and report["ok"], f"{report['problems']}\n{done.stdout}\n{done.stderr}"
    runs = {run["workload"]: run for run in report["runs"]}
    assert set(runs) == {"track", "identify+track"}
    assert runs["track"]["received"] == {"track": 2_000}
    assert runs["identify+track"]["received"] == {"identify": 50, "track": 50 * 20}
    assert "plain loop" in done.stdout


def _endpoint() -> ModuleType:
    """``benchmarks/endpoint.py`` as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_endpoint", ROOT / "benchmarks" / "endpoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_endpoint_counts_by_its_documented_rule() -> None:
    """The rule the self-check relies on: a loss or a repeat must show, on both protocols."""
    counters = _endpoint().Counters()
    segment = {"batch": [{"type": "identify", "messageId": "s1"}, {"type": "track", "messageId": "s2"}],
               "sentAt": "2024-05-01T00:00:00+00:00", "writeKey": "k"}
    counters.count("/v1/batch", json.dumps(segment).encode(), 120, "")

    def event(kind: str, message_id: str) -> dict[str, Any]:
        return {"event_type": kind, "data": {"source_message_id": message_id}}

    user_1 = {"user_identities": {"customer_id": "u1"}, "user_attributes": {"plan": "pro"}}
    mparticle = [
        {**user_1, "events": [event("custom_event", "m1")]},
        # the same user's traits again count as no second identify; the repeated event is a duplicate
        {**user_1, "events": [event("custom_event", "m1")]},
        {"user_identities": {"customer_id": "u2"}, "events": [event("commerce_event", "m2"),
                                                              event("screen_view", "m3")]},
        {"user_identities": {"customer_id": "u3"}, "user_attributes": {"age": 3}},  # an identify alone
    ]
    body = gzip.compress(json.dumps(mparticle).encode())
    counters.count("/v2/bulkevents", body, 80, "gzip")
    counters.count("/v2/bulkevents", b"not json", 10, "")

    stats = counters.snapshot()
    assert stats["received"] == {"identify": 1 + 2, "track": 1 + 3, "page": 1}
    assert stats["duplicates"] == 1
    assert stats["profile_batches"] == 3
    assert stats["requests"] == 3 and stats["batches"] == 1 + 4
    assert stats["body_bytes"] == len(json.dumps(segment)) + len(body) + len(b"not json")
    assert stats["header_bytes"] == 210
    assert stats["error_count"] == 1 and stats["pending"] == 0


def test_endpoint_parses_as_it_goes_once_it_holds_too_many_bytes() -> None:
    """Bodies wait for ``/stats``, but a very long run must not hold them all in memory."""
    counters = _endpoint().Counters(max_unparsed_bytes=200)
    batch = {"user_identities": {"customer_id": "u"},
             "events": [{"event_type": "custom_event", "data": {"source_message_id": "m1"}}]}
    body = json.dumps([batch]).encode()
    assert 100 < len(body) < 200
    counters.count("/v2/bulkevents", body, 10, "")
    assert len(counters.unparsed) == 1  # held
    counters.count("/v2/bulkevents", body.replace(b"m1", b"m2"), 10, "")
    assert counters.unparsed == [] and counters.received == {"track": 2}  # over the cap: parsed
    assert counters.snapshot()["received"] == {"track": 2}
