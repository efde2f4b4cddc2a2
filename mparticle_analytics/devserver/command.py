"""The ``devserver`` command line, shared by ``python -m mparticle_analytics.devserver``
and ``mparticle-analytics devserver`` so that both take the same options."""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading
from typing import Any, Final

from .server import DevServer

DESCRIPTION: Final = (
    "Run a local endpoint that behaves like mParticle's Events API v2 "
    "(/v2/events, /v2/bulkevents, /v2/bulkevents/historical), checks each batch against "
    "mParticle's rules and shows what it receives in a browser page at its address."
)
_FAULTS_HELP: Final = (
    "Misbehave on purpose, to try an application's error handling. Counted faults apply to the "
    "first requests (--fail, then --drop, each --fail-count times); --latency and --failure-rate "
    "apply to every request. The same can be set while running with POST /api/faults."
)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the devserver's options to ``parser`` and make :func:`run` its action."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port",
        type=_port,
        default=8765,
        help="port to listen on; 0 picks a free one (%(default)s)",
    )
    parser.add_argument("--key", help="accept only this API key (default: any key)")
    parser.add_argument("--secret", help="accept only this API secret (default: any); it is never printed")
    parser.add_argument(
        "--db",
        metavar="FILE",
        help="keep everything in this SQLite file, so a session survives restarts (default: memory)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also log every HTTP request line")
    faults = parser.add_argument_group("fault injection", _FAULTS_HELP)
    faults.add_argument("--fail", type=int, metavar="STATUS", help="answer this HTTP status (300-599)")
    faults.add_argument(
        "--fail-count", type=int, default=1, metavar="N", help="requests --fail and --drop apply to (1)"
    )
    faults.add_argument(
        "--retry-after", metavar="VALUE", help="send this Retry-After with --fail or --failure-rate"
    )
    faults.add_argument(
        "--drop",
        choices=("before", "after"),
        help="close the connection unanswered, before storing the batches or after",
    )
    faults.add_argument("--latency", type=float, metavar="SECONDS", help="delay every answer this long")
    faults.add_argument(
        "--failure-rate",
        type=float,
        metavar="P",
        help="fail each request with probability P (0-1), with --fail's status or 503",
    )
    faults.add_argument("--seed", type=int, metavar="N", help="seed --failure-rate, for a repeatable run")
    parser.set_defaults(func=run)
    return parser


def fault_plans(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The faults the options ask for, as ``POST /api/faults`` items (validated by the server)."""
    if args.seed is not None and args.failure_rate is None:
        raise ValueError("--seed needs --failure-rate")
    if args.retry_after is not None and args.fail is None and args.failure_rate is None:
        raise ValueError("--retry-after needs --fail or --failure-rate")
    status: dict[str, Any] = {"status": 503 if args.fail is None else args.fail}
    if args.retry_after is not None:
        status["retry_after"] = args.retry_after
    plans: list[dict[str, Any]] = []
    if args.fail is not None and args.failure_rate is None:
        plans.append({**status, "count": args.fail_count})
    if args.drop is not None:
        plans.append({"drop": args.drop, "count": args.fail_count})
    if args.latency is not None:
        plans.append({"delay": args.latency, "rate": 1})
    if args.failure_rate is not None:
        seed = {} if args.seed is None else {"seed": args.seed}
        plans.append({**status, "rate": args.failure_rate, **seed})
    return plans


def describe_fault(plan: dict[str, Any]) -> str:
    """One line for the start-up banner, e.g. ``the next 3 requests: status 503, Retry-After 2``."""
    if "status" in plan:
        after = f" with Retry-After {plan['retry_after']}" if "retry_after" in plan else ""
        what = f"answer {plan['status']}{after}"
    elif "drop" in plan:
        what = f"drop the connection {plan['drop']} storing"
    else:
        what = f"wait {plan['delay']:g} s"
    if "rate" not in plan:
        count = plan["count"]
        return f"{what}: the next {count} request{'s' if count != 1 else ''}"
    if plan["rate"] == 1:
        return f"{what}: every request"
    seed = f", seed {plan['seed']}" if "seed" in plan else ""
    return f"{what}: each request with probability {plan['rate']:g}{seed}"


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 0 to 65535, not {port}")
    return port


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C, then print a one-line summary; returns the exit status."""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        plans = fault_plans(args)
        server = DevServer(args.host, args.port, key=args.key, secret=args.secret, db=args.db)
        for plan in plans:
            server.add_fault(**plan)
    except ValueError as exc:
        print(f"devserver: {exc}", file=sys.stderr)
        return 2
    except (sqlite3.Error, OSError) as exc:
        print(f"devserver: cannot use --db {args.db}: {exc}", file=sys.stderr)
        return 1
    try:
        server.start()
    except OSError as exc:
        print(f"devserver: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"mParticle devserver listening on {server.url} "
        f"(open it in a browser to see what arrives; JSON: {server.url}/api/inspect; Ctrl-C to stop)",
        flush=True,
    )
    if args.db:
        print(f"keeping everything in {args.db} ({len(server.batches())} batches from earlier)", flush=True)
    for plan in plans:
        print(f"fault: {describe_fault(plan)}", flush=True)
    previous = _stop_on_sigterm()
    try:
        threading.Event().wait()  # Nothing sets it: only Ctrl-C (or SIGTERM) ends the wait.
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(summarize(server), flush=True)
    return 0


def _stop_on_sigterm() -> Any:
    """Make SIGTERM (a process manager's stop, ``kill``) end the session like Ctrl-C does;
    returns the handler it replaced, or ``None`` when not on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def summarize(server: DevServer) -> str:
    """One line on what the server received, for the end of a session."""
    requests = server.requests()
    refused = sum(1 for r in requests if r["status"] is None or r["status"] >= 400)
    errors = sum(1 for p in server.problems("error"))
    return (
        f"devserver stopped. requests: {len(requests)}, batches accepted: "
        f"{len(server.batches())}, historical batches rejected: {len(server.rejected())}, "
        f"requests refused or dropped: {refused}, problems: {errors} errors, "
        f"{len(server.problems('warning'))} warnings"
    )
