"""Random identifiers, made where they are needed most often: once per call and per batch."""

from __future__ import annotations

import os


def uuid4() -> str:
    """A random (version 4, RFC 4122) UUID string, as ``str(uuid.uuid4())`` but about 2x faster.

    ``uuid.UUID`` validates and converts its input on construction; building
    the canonical text straight from 16 random bytes skips that work.
    """
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"
