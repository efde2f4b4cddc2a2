"""Benchmark: this library against segment-analytics-python 2.4.0, same workloads, same local endpoint.

    python benchmarks/run.py                  # 3 rounds, 100,000 events / 1,000 users, both libraries
    python benchmarks/run.py --small --only ours --json /tmp/check.json   # the CI self-check size

Any Python 3.9+ can run this file; it sets up what it needs itself:

* Segment's library goes into ``benchmarks/.venv-segment`` (created with the same
  Python as ours, so both run on one interpreter version), installed from PyPI
  the first time.
* Ours runs on the interpreter running this script when it can import the
  library, else on the project's ``.venv``, else on ``benchmarks/.venv-ours`` built
  from ``setup.cfg``'s requirements; in every case with the working tree first on
  ``PYTHONPATH``, so what is measured is the code in this checkout.
* One endpoint process (``benchmarks/endpoint.py``) on 127.0.0.1 serves both
  libraries and counts what arrives; its CPU counts for neither.
* A third column, ``plain``, is the issue's reference point rather than a library:
  a loop of dicts, ``json.dumps`` and one ``requests.Session`` posting per-user
  batches (``workload.PlainLoop``, on ours' interpreter; not for ``sync``). It
  shows what the work itself costs on this machine, and so how much of a
  library's figures is the library.

Each measurement is a fresh process (``benchmarks/workload.py``), run in the
order ours, segment, ours, segment, ... so both libraries see the same machine
conditions. Every run is checked: the endpoint must have received exactly the
events the workload sent (by type, no duplicates), with nothing refused by a
full queue and nothing reported through ``on_error``; the exit status is 1
otherwise. Medians (min-max) of the rounds are printed with the ratio
ours / Segment against the issue's targets, and every raw run goes to the JSON
file with the machine's description.
"""

from __future__ import annotations

import argparse
import configparser
import datetime as dt
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOAD = HERE / "workload.py"
ENDPOINT = HERE / "endpoint.py"
DEFAULT_JSON = HERE / "results" / "latest.json"
SEGMENT_VENV = HERE / ".venv-segment"
OURS_VENV = HERE / ".venv-ours"
SEGMENT_REQUIREMENT = "segment-analytics-python==2.4.0"
SEGMENT_VERSION = "2.4.0"

LIBRARIES = ("ours", "segment", "plain")
WORKLOADS = ("track", "identify+track", "sync")
ASYNC = ("track", "identify+track")
#: What the ``plain`` reference column can be measured on (it has no sync mode).
PLAIN_WORKLOADS = ASYNC
SMALL = {"events": 2_000, "users": 50, "sync_calls": 20}

DEFINITIONS = {
    "caller_us_per_call": "wall time of the call loop / calls (what a call costs the application's thread)",
    "harness_us_per_call": "the same loop calling a no-op, not the library (part of caller_us_per_call)",
    "flush_s": "wall time from the first call until flush() returns (loop + delivery of the rest)",
    "loop_s": "wall time of the call loop alone",
    "cpu_s": "time.process_time() from the first call until flush() returns: every thread of the process",
    "caller_cpu_s": "time.thread_time() of the calling thread over the same span",
    "delivery_cpu_s": "cpu_s - caller_cpu_s: the library's delivery threads (and any other thread)",
    "peak_rss_mb": "getrusage(RUSAGE_SELF).ru_maxrss after flush(): whole process, interpreter included",
    "rss_growth_mb": "peak RSS after flush() minus peak RSS just before the first call",
    "body_mb": "sum of the Content-Length of the request bodies the endpoint received, 10**6 bytes",
    "header_kb": "request lines and headers the endpoint received, 10**3 bytes",
    "requests": "HTTP requests the endpoint received",
    "p50_us": "sync_mode: median latency of one call (each call delivers before it returns)",
    "p99_us": "sync_mode: 99th percentile latency of one call (nearest rank)",
    "events_received": "Segment: messages in batch. mParticle: events in batches, plus one identify per "
                       "distinct user whose batch carried user_attributes (see endpoint.py)",
}


class Metric(NamedTuple):
    """A row of the table: which figure, how it reads, and the issue's target (a ratio) if any."""

    key: str
    label: str
    fmt: str
    target: Optional[float]
    workloads: tuple[str, ...]
    #: Whether ours / Segment means anything (not for counts that must simply be equal).
    compare: bool = True


METRICS = (
    Metric("caller_us_per_call", "caller µs per call", "{:.1f}", 0.25, ASYNC),
    Metric("harness_us_per_call", "  of which the benchmark loop", "{:.2f}", None, ASYNC, compare=False),
    Metric("flush_s", "s until flush() returns", "{:.2f}", 0.30, ASYNC),
    Metric("loop_s", "  of which the call loop, s", "{:.2f}", None, ASYNC),
    Metric("cpu_s", "CPU s (all threads)", "{:.2f}", 0.30, ASYNC),
    Metric("cpu_s", "CPU s (all threads)", "{:.3f}", None, ("sync",)),
    Metric("caller_cpu_s", "  caller thread CPU s", "{:.2f}", None, ASYNC),
    Metric("delivery_cpu_s", "  delivery thread CPU s", "{:.2f}", None, ASYNC),
    Metric("p50_us", "p50 µs per call", "{:.0f}", 1.0, ("sync",)),
    Metric("p99_us", "p99 µs per call", "{:.0f}", None, ("sync",)),
    Metric("peak_rss_mb", "peak RSS MB", "{:.1f}", 1.0, WORKLOADS),
    Metric("rss_growth_mb", "  RSS growth during the run, MB", "{:.1f}", None, WORKLOADS),
    Metric("body_mb", "MB on the wire (request bodies)", "{:.2f}", 1.0, WORKLOADS),
    Metric("header_kb", "  KB of request lines + headers", "{:.1f}", None, WORKLOADS),
    Metric("requests", "requests", "{:,.0f}", None, WORKLOADS),
    Metric("events_sent", "events sent", "{:,.0f}", None, WORKLOADS, compare=False),
    Metric("events_received", "events received", "{:,.0f}", None, WORKLOADS, compare=False),
)


# -- set-up: interpreters and the endpoint -------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _probe(python: str, code: str, env: Optional[dict[str, str]] = None) -> Optional[str]:
    """Run a one-liner under ``python``; its stdout, or None if it failed."""
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ours_env() -> dict[str, str]:
    """Like ``workload_env``, with this checkout first on the path: the working tree is measured."""
    env = workload_env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


_OURS_PROBE = "import mparticle_analytics, requests, backoff, dateutil; print(mparticle_analytics.__file__)"


def find_ours_python(explicit: Optional[str]) -> str:
    """The interpreter for ours: explicit, this one, the project's .venv, or a venv made here."""
    candidates = [explicit] if explicit else [sys.executable, str(venv_python(ROOT / ".venv")),
                                              str(venv_python(OURS_VENV))]
    for python in candidates:
        if python and Path(python).exists() and _probe(python, _OURS_PROBE, _ours_env()):
            return python
    if explicit:
        raise SystemExit(f"--ours-python {explicit} cannot import mparticle_analytics and its requirements")
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    requirements = [line.strip() for line in parser.get("options", "install_requires").splitlines()
                    if line.strip()]
    _say(f"setting up {OURS_VENV} for this library's requirements: {', '.join(requirements)}")
    make_venv(sys.executable, OURS_VENV, requirements)
    python = str(venv_python(OURS_VENV))
    if not _probe(python, _OURS_PROBE, _ours_env()):
        raise SystemExit(f"{python} still cannot import mparticle_analytics")
    return python


def make_venv(base_python: str, venv: Path, requirements: list[str]) -> None:
    """A fresh virtual environment at ``venv`` with ``requirements`` installed from the package index."""
    if venv.exists():
        shutil.rmtree(venv)
    try:
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    except subprocess.CalledProcessError as exc:
        hint = "on Debian/Ubuntu: apt-get install python3-venv"
        raise SystemExit(f"{base_python} -m venv failed ({exc}); {hint}") from exc
    try:
        subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *requirements], check=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(venv, ignore_errors=True)  # half-installed: the next run starts over
        raise SystemExit(f"pip could not install {' '.join(requirements)} into {venv} ({exc})") from exc


def _version_of(python: str) -> Optional[str]:
    return _probe(python, "import platform; print(platform.python_version())")


def find_segment_python(explicit: Optional[str], ours_python: Optional[str]) -> str:
    """``benchmarks/.venv-segment`` with Segment 2.4.0, made with the same Python version as ours."""
    probe = "from importlib.metadata import version; import segment.analytics; " \
            "print(version('segment-analytics-python'))"
    if explicit:
        if _probe(explicit, probe) != SEGMENT_VERSION:
            raise SystemExit(f"--segment-python {explicit} does not have {SEGMENT_REQUIREMENT}")
        return explicit
    base = ours_python or sys.executable
    python = str(venv_python(SEGMENT_VENV))
    wanted = _version_of(base)
    if Path(python).exists() and _probe(python, probe) == SEGMENT_VERSION:
        have = _version_of(python)
        if wanted is None or have == wanted:
            return python
        _say(f"{SEGMENT_VENV} runs Python {have}, ours runs {wanted}: rebuilding it")
    _say(f"setting up {SEGMENT_VENV} with {SEGMENT_REQUIREMENT} (Python {wanted or '?'})")
    make_venv(base, SEGMENT_VENV, [SEGMENT_REQUIREMENT])
    if _probe(python, probe) != SEGMENT_VERSION:
        raise SystemExit(f"could not install {SEGMENT_REQUIREMENT} into {SEGMENT_VENV}")
    return python


def workload_env() -> dict[str, str]:
    """The environment for workload processes: nothing between them and 127.0.0.1."""
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(filter(None, [env.get(name), "127.0.0.1", "localhost"]))
    env.pop("PYTHONPATH", None)
    return env


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, timeout: float = 60) -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with _NO_PROXY.open(request, timeout=timeout) as answer:
        return json.loads(answer.read() or b"null")


class Endpoint:
    """``benchmarks/endpoint.py`` in its own process, for the whole run."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(ENDPOINT), "--port", "0"], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.close()
            raise SystemExit("the benchmark endpoint did not start")

    def reset(self) -> None:
        http("POST", f"{self.url}/reset")

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = http("GET", f"{self.url}/stats")
        return stats

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


# -- running ------------------------------------------------------------------------------------


def run_one(
    library: str, workload: str, python: str, endpoint: Endpoint, args: argparse.Namespace,
    profile_dir: Optional[Path],
) -> dict[str, Any]:
    """One measurement in a fresh process, with the endpoint's count and the self-check."""
    command = [python, str(WORKLOAD), library, workload, "--endpoint", endpoint.url,
               "--events", str(args.events), "--users", str(args.users),
               "--tracks-per-user", str(args.tracks_per_user), "--sync-calls", str(args.sync_calls)]
    if profile_dir is not None:
        command += ["--profile", str(profile_dir)]
    env = _ours_env() if library == "ours" else workload_env()
    endpoint.reset()
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, env=env)
        output, stderr, returncode = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output, stderr, returncode = "", f"timed out after {args.timeout} s: {exc.stderr!r}", -1
    wall = time.perf_counter() - started
    stats = endpoint.stats()
    run: dict[str, Any] = {"library": library, "workload": workload, "process_wall_s": wall}
    problems: list[str] = []
    try:
        run.update(json.loads(output.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        problems.append(f"the workload process failed (exit {returncode})")
    run["stderr"] = stderr[-4000:]
    run["endpoint"] = stats
    run.update({
        "requests": stats["requests"],
        "body_bytes": stats["body_bytes"],
        "header_bytes": stats["header_bytes"],
        "events_received": stats["received_total"],
        "body_mb": stats["body_bytes"] / 1e6,
        "header_kb": stats["header_bytes"] / 1e3,
        "received": stats["received"],
    })
    if "peak_rss_kb" in run:
        run["peak_rss_mb"] = run["peak_rss_kb"] / 1024
        run["rss_growth_mb"] = (run["peak_rss_kb"] - run["rss_before_kb"]) / 1024
    if "sent" in run:
        run["events_sent"] = sum(run["sent"].values())
        if run["sent"] != stats["received"]:
            problems.append(f"events received {stats['received']} != events sent {run['sent']}")
    if returncode != 0 and not problems:
        problems.append(f"the workload process exited {returncode}")
    for name, what in (("rejected", "refused by a full queue"), ("errors", "reported through on_error")):
        if run.get(name):
            problems.append(f"{run[name]} call(s) {what}")
    if stats["duplicates"]:
        problems.append(f"{stats['duplicates']} message id(s) received more than once")
    if stats["error_count"]:
        unread = stats["errors"][:3]
        problems.append(f"the endpoint could not read {stats['error_count']} body(ies): {unread}")
    if stats["pending"]:
        problems.append("the endpoint was still counting when asked for its figures")
    file = run.get("library_file")
    if library == "ours" and file and ROOT not in Path(file).resolve().parents:
        problems.append(f"ours was imported from {file}, not from this checkout")
    run["problems"] = problems
    run["ok"] = not problems
    return run


def _progress(index: int, total: int, run: dict[str, Any]) -> None:
    if not run["ok"]:
        detail = "; ".join(run["problems"])
        tail = run.get("stderr", "").strip().splitlines()[-5:]
        _say(f"[{index}/{total}] {run['workload']:<15} {run['library']:<8} FAILED: {detail}")
        for line in tail:
            _say(f"      {line}")
        return
    if run["workload"] == "sync":
        figures = f"p50 {run['p50_us']:.0f} µs, p99 {run['p99_us']:.0f} µs"
    else:
        figures = f"{run['caller_us_per_call']:.1f} µs/call, flush() after {run['flush_s']:.2f} s"
    _say(f"[{index}/{total}] {run['workload']:<15} {run['library']:<8} {figures}, CPU {run['cpu_s']:.2f} s, "
         f"{run['events_received']}/{run['events_sent']} events ok")


# -- summarising --------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]], workloads: list[str], libraries: list[str]) -> dict[str, Any]:
    """Per workload and metric: each library's median, min, max and values; the ratio and verdict."""
    summary: dict[str, Any] = {}
    for workload in workloads:
        rows: dict[str, Any] = {}
        for metric in METRICS:
            if workload not in metric.workloads:
                continue
            row: dict[str, Any] = {"label": metric.label.strip(), "target_ratio": metric.target}
            for library in libraries:
                values = [r[metric.key] for r in runs
                          if r["workload"] == workload and r["library"] == library and metric.key in r]
                if values:
                    row[library] = {"median": statistics.median(values), "min": min(values),
                                    "max": max(values), "values": values}
            ours, segment = row.get("ours"), row.get("segment")
            if ours and segment and segment["median"] and metric.compare:
                row["ratio"] = ours["median"] / segment["median"]
                if metric.target is not None:
                    row["met"] = row["ratio"] <= metric.target
            rows[metric.key] = row
        summary[workload] = rows
    return summary


def _cell(fmt: str, stats: Optional[dict[str, Any]]) -> str:
    if not stats:
        return "—"
    median, low, high = (fmt.format(stats[k]) for k in ("median", "min", "max"))
    return median if len(stats["values"]) == 1 else f"{median} ({low}-{high})"


def format_tables(summary: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    for workload, rows in summary.items():
        done = [r for r in runs if r["workload"] == workload]
        sizes = sorted({r.get("calls", 0) for r in done})
        out.write(f"\n== {workload} ({', '.join(f'{s:,}' for s in sizes)} calls per run) ==\n")
        plain = any(r["library"] == "plain" for r in done)
        table = [("metric", "ours median (min-max)", "segment median (min-max)", "ratio", "target", "met?")
                 + (("plain loop",) if plain else ())]
        for metric in METRICS:
            if workload not in metric.workloads:
                continue
            row = rows[metric.key]
            ratio = f"{row['ratio']:.2f}x" if "ratio" in row else "—"
            target = f"≤ {metric.target:.2f}x" if metric.target is not None else ""
            met = {True: "yes", False: "NO"}.get(row.get("met"), "") if metric.target is not None else ""
            if metric.target is not None and "met" not in row:
                met = "—"
            ours, segment = _cell(metric.fmt, row.get("ours")), _cell(metric.fmt, row.get("segment"))
            table.append((metric.label, ours, segment, ratio, target, met)
                         + ((_cell(metric.fmt, row.get("plain")),) if plain else ()))
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        for n, line in enumerate(table):
            cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
            out.write("  " + " | ".join(cells).rstrip() + "\n")
            if n == 0:
                out.write("  " + "-+-".join("-" * w for w in widths) + "\n")
    return out.getvalue()


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = os.getloadavg()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["ours_source_sha256"] = source_fingerprint()
    commit = _git("rev-parse", "HEAD")
    if commit:
        info["git_commit"] = commit
        info["git_dirty"] = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return info


def source_fingerprint() -> str:
    """A hash of the library's source as measured, so a result can be tied to the exact code.

    Why: the working tree is what runs (it may hold uncommitted changes), so the
    commit alone does not say what was measured.
    """
    digest = hashlib.sha256()
    for path in sorted((ROOT / "mparticle_analytics").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def profile_report(paths: list[str], top: int = 15) -> str:
    """The top functions of each saved profile, by cumulative and by own time."""
    import pstats

    out = io.StringIO()
    for path in paths:
        for order in ("cumulative", "tottime"):
            out.write(f"\n--- {path}: top {top} by {order} ---\n")
            stats = pstats.Stats(path, stream=out)
            stats.strip_dirs().sort_stats(order).print_stats(top)
    return out.getvalue()


# -- the command --------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark mparticle_analytics against segment-analytics-python 2.4.0.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=None, help="rounds of A B (default 3; 1 with --small)")
    parser.add_argument("--events", type=int, default=None, help="track calls in the track workload "
                        "(default 100,000)")
    parser.add_argument("--users", type=int, default=None, help="users (default 1,000)")
    parser.add_argument("--tracks-per-user", type=int, default=20, help="identify+track: tracks per user")
    parser.add_argument("--sync-calls", type=int, default=None, help="sync workload calls (default 500)")
    parser.add_argument("--small", action="store_true",
                        help=f"CI size: {SMALL['events']} events, {SMALL['users']} users, "
                             f"{SMALL['sync_calls']} sync calls, 1 round")
    parser.add_argument("--only", choices=LIBRARIES, help="measure one library only")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write every run as JSON")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one measurement may take")
    parser.add_argument("--ours-python", help="interpreter for ours (default: found automatically)")
    parser.add_argument("--segment-python", help=f"interpreter with {SEGMENT_REQUIREMENT} "
                        f"(default: {SEGMENT_VENV.relative_to(ROOT)}, created if missing)")
    parser.add_argument("--profile", metavar="DIR",
                        help="also write cProfile data per run and thread into DIR and print the top "
                             "functions (profiling slows the runs: their timings are not comparable)")
    args = parser.parse_args(argv)
    defaults = SMALL if args.small else {"events": 100_000, "users": 1_000, "sync_calls": 500}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.repeat is None:
        args.repeat = 1 if args.small else 3
    args.workload_list = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workload_list) - set(WORKLOADS)
    if unknown or not args.workload_list:
        parser.error(f"--workloads: unknown {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    if args.repeat < 1 or args.events < 1 or args.users < 1 or args.sync_calls < 1:
        parser.error("--repeat, --events, --users and --sync-calls must be positive")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")  # µ and ≤ on a terminal that cannot show them
    args = parse_args(argv)
    started = time.perf_counter()
    libraries = [args.only] if args.only else list(LIBRARIES)
    pythons: dict[str, str] = {}
    if "ours" in libraries:
        pythons["ours"] = find_ours_python(args.ours_python)
    if "segment" in libraries:
        pythons["segment"] = find_segment_python(args.segment_python, pythons.get("ours"))
    if "plain" in libraries:
        pythons["plain"] = pythons.get("ours") or find_ours_python(args.ours_python)
    for library, python in pythons.items():
        _say(f"{library}: {python} (Python {_version_of(python)})")

    machine = machine_info()  # before the runs: the load average is the one they started with
    plan = [(r, w, lib) for r in range(args.repeat) for w in args.workload_list for lib in libraries
            if lib != "plain" or w in PLAIN_WORKLOADS]
    runs: list[dict[str, Any]] = []
    profiles: list[str] = []
    endpoint = Endpoint()
    _say(f"endpoint: {endpoint.url}; {len(plan)} measurements")
    try:
        for index, (round_, workload, library) in enumerate(plan, 1):
            profile_dir = Path(args.profile, f"{library}-{workload}-{round_ + 1}") if args.profile else None
            run = run_one(library, workload, pythons[library], endpoint, args, profile_dir)
            run["round"] = round_ + 1
            runs.append(run)
            profiles += run.get("profiles", [])
            _progress(index, len(plan), run)
    finally:
        endpoint.close()
    total = time.perf_counter() - started
    load_at_end = os.getloadavg() if hasattr(os, "getloadavg") else None

    summary = summarise(runs, args.workload_list, libraries)
    problems = [f"{r['workload']} {r['library']} round {r['round']}: {problem}"
                for r in runs for problem in r["problems"]]
    machine["load_average_at_end"] = load_at_end
    report = io.StringIO()
    report.write(f"mparticle_analytics vs {SEGMENT_REQUIREMENT}: {args.repeat} round(s), alternating "
                 f"{' '.join(libraries)}; endpoint on 127.0.0.1\n")
    report.write(f"machine: {machine['platform']}, {machine['cpu_count']} CPU(s)"
                 f"{', ' + machine['cpu_model'] if 'cpu_model' in machine else ''}; Python "
                 + ", ".join(f"{lib} {_first(runs, lib, 'python')}" for lib in libraries) + "\n")
    code = f"git {machine['git_commit'][:10]}{' + uncommitted changes' if machine['git_dirty'] else ''}, " \
        if "git_commit" in machine else ""
    report.write(f"library code: {code}source hash {machine['ours_source_sha256']}\n")
    report.write(f"sizes: track {args.events:,} calls over {args.users:,} users; identify+track "
                 f"{args.users:,} users x (1 identify + {args.tracks_per_user} tracks); "
                 f"sync {args.sync_calls} calls\n")
    report.write("caller µs per call = wall time of the call loop / calls;\n"
                 "s until flush() returns = wall time from the first call until flush() returns;\n"
                 "CPU s = process CPU time (all threads) over that span;\n"
                 "ratio = ours median / segment median; medians over rounds, (min-max) shown;\n"
                 "plain loop = the reference loop of dicts, json.dumps and requests (median), no library\n")
    report.write(format_tables(summary, runs))
    met = [row["met"] for rows in summary.values() for row in rows.values() if "met" in row]
    if met:
        report.write(f"\ntargets met: {sum(met)} of {len(met)}\n")
    checked = sum(1 for r in runs if "events_sent" in r)
    if problems:
        report.write(f"\nSELF-CHECK FAILED ({len(problems)} problem(s)):\n")
        report.write("".join(f"  - {p}\n" for p in problems))
    else:
        report.write(f"self-check: events received == events sent (by type, no duplicates, none refused, "
                     f"no on_error) in all {checked} runs\n")
    report.write(f"total wall time: {total:.1f} s\n")
    if profiles:
        report.write(profile_report(profiles))
    print(report.getvalue(), end="", flush=True)

    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "schema": 1,
        "command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
        "machine": machine,
        "interpreters": pythons,
        "config": {k: getattr(args, k) for k in ("repeat", "events", "users", "tracks_per_user", "sync_calls",
                                                 "small", "only", "workload_list")},
        "definitions": DEFINITIONS,
        "targets": {f"{w}.{m.key}": m.target for m in METRICS for w in m.workloads if m.target is not None},
        "summary": summary,
        "ok": not problems,
        "problems": problems,
        "total_wall_s": total,
        "runs": runs,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    _say(f"wrote {path}")
    return 1 if problems else 0


def _first(runs: list[dict[str, Any]], library: str, key: str) -> str:
    return next((str(r[key]) for r in runs if r["library"] == library and key in r), "?")


if __name__ == "__main__":
    sys.exit(main())
