"""The main job, end to end and with no account: Segment calls in, mParticle batches out.

Starts the local mParticle-compatible endpoint, sends a few Segment-style calls
through the library exactly as migrated code would, and prints the per-user
batches that arrived. Run it with ``make demo``; ``make demo ARGS=--keep-open``
keeps the endpoint running so its inspector page can be opened in a browser.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import threading

import mparticle_analytics as analytics
from mparticle_analytics.devserver import DevServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep-open", action="store_true",
                        help="keep the endpoint (and its inspector page) running until Ctrl-C")
    parser.add_argument("--port", type=int, default=0, help="port of the local endpoint (default: any free)")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="  endpoint | %(message)s")
    with DevServer(port=options.port, key="us1-demo-key", secret="demo-secret") as server:
        print(f"Local mParticle endpoint at {server.url}\n")

        # The migration: this import and these credentials are all that change.
        analytics.write_key = "us1-demo-key"
        analytics.secret = "demo-secret"
        analytics.host = server.url

        analytics.identify("user-42", {"email": "ada@example.com", "firstName": "Ada", "plan": "pro"})
        analytics.track("user-42", "Signed Up", {"plan": "pro", "trial_days": 14})
        analytics.page("user-42", "Docs", "Quickstart", {"url": "https://example.com/docs"})
        analytics.track(
            "user-7", "Order Completed",
            {"order_id": "o-1001", "total": 27.5, "currency": "USD",
             "products": [{"product_id": "p-1", "name": "Monopoly", "price": 19, "quantity": 1}]},
            timestamp=dt.datetime.now(dt.timezone.utc),
        )
        analytics.track(anonymous_id="anon-9", event="Viewed Pricing")
        delivered = analytics.flush(timeout=10)

        print(f"\nflush() returned {delivered}; the endpoint received {len(server.batches())} batch(es):\n")
        for record in server.batches():
            print(json.dumps(record["batch"], indent=2), "\n")
        print("stats:", analytics.default_client.stats() if analytics.default_client else {})
        analytics.shutdown()
        if options.keep_open:
            print(f"\nInspector: open {server.url}/ in a browser; press Ctrl-C to stop.")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()


if __name__ == "__main__":
    main()
