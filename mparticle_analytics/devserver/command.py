"""The ``devserver`` command line, shared by ``python -m mparticle_analytics.devserver``
and ``mparticle-analytics devserver`` so that both take the same options."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Final

from .server import DevServer

DESCRIPTION: Final = (
    "Run a local endpoint that behaves like mParticle's Events API v2 "
    "(/v2/events, /v2/bulkevents, /v2/bulkevents/historical) and shows what it receives."
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
    parser.add_argument("-v", "--verbose", action="store_true", help="also log every HTTP request line")
    parser.set_defaults(func=run)
    return parser


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
    server = DevServer(args.host, args.port, key=args.key, secret=args.secret)
    try:
        server.start()
    except OSError as exc:
        print(f"devserver: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"mParticle devserver listening on {server.url} "
        f"(received data: {server.url}/api/batches; Ctrl-C to stop)",
        flush=True,
    )
    try:
        threading.Event().wait()  # Nothing sets it: only Ctrl-C ends the wait.
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print(summarize(server), flush=True)
    return 0


def summarize(server: DevServer) -> str:
    """One line on what the server received, for the end of a session."""
    requests = server.requests()
    refused = sum(1 for r in requests if r["status"] is None or r["status"] >= 400)
    return (
        f"devserver stopped. requests: {len(requests)}, batches accepted: "
        f"{len(server.batches())}, historical batches rejected: {len(server.rejected())}, "
        f"requests refused or dropped: {refused}"
    )
