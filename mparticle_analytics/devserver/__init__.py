"""A local stand-in for mParticle's Events API v2, for tests and demos.

Start it from Python with :class:`DevServer`, or from a shell with
``mparticle-analytics devserver`` / ``python -m mparticle_analytics.devserver``.
"""

from __future__ import annotations

from .server import DevServer

__all__ = ["DevServer"]
