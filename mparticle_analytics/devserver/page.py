"""The inspector page: one HTML document with its CSS and JavaScript inline, served at ``/``.

It loads nothing from anywhere else (the Content-Security-Policy below
forbids it), needs no build step and works offline. It long-polls
``/api/inspect`` so new batches appear without a reload.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

PAGE_FILE: Final = "inspector.html"

PAGE_HEADERS: Final = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Inline script and style only; fetches only to this server; no other origin at all.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


@functools.lru_cache(maxsize=1)
def page() -> bytes:
    """The page's bytes, read once from the package."""
    return resources.files("mparticle_analytics.devserver").joinpath(PAGE_FILE).read_bytes()
