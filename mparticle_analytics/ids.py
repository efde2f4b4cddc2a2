"""Random identifiers, made where they are needed most often: once per call and per batch."""

from __future__ import annotations

from random import getrandbits

_VERSION_4 = 4 << 76
_VARIANT_RFC_4122 = 2 << 62
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def uuid4() -> str:
    """A random (version 4, RFC 4122) UUID string, like ``str(uuid.uuid4())``, about 4x faster.

    Drawn from ``random`` rather than ``os.urandom``: these ids must be unique,
    not secret, and the system call would hand the GIL to another thread on
    every call. ``random`` is reseeded in a forked child, so children never
    repeat their parent's ids (a repeated ``source_request_id`` would make
    mParticle drop the batch as a duplicate).
    """
    h = ((getrandbits(128) & _CLEAR) | _VERSION_4 | _VARIANT_RFC_4122).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
