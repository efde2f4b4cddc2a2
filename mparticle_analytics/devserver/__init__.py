"""A local stand-in for mParticle's Events API v2, for tests and demos.

Start it from Python with :class:`DevServer`, or from a shell with
``mparticle-analytics devserver`` / ``python -m mparticle_analytics.devserver``,
then open its address in a browser: the inspector page shows every batch as
it arrives, grouped by user, with what mParticle's rules say about it
(:mod:`.validation`). ``/api/...`` serves the same as JSON.
"""

from __future__ import annotations

from .server import DevServer

__all__ = ["DevServer"]
