"""Segment's ``analytics`` module face, delivering to mParticle.

Migrating is one changed import and new credentials::

    import mparticle_analytics as analytics
    analytics.write_key = "us2-..."
    analytics.secret = "..."
    analytics.track("user-1", "Signed Up", {"plan": "pro"})

The settings below are read when the default client is first created (on the
first call), as Segment does; set ``default_client = None`` to re-read them.
Unlike Segment, ``upload_size``, ``upload_interval``, ``thread``, ``proxies`` and
``log_handler`` are honoured here too.

Logging goes to the ``mparticle_analytics`` logger, to which the library adds no
handler (not even a ``NullHandler``) unless ``debug`` or ``log_handler`` is set:
so in an application that configures no logging, Python's last-resort handler
still prints the library's warnings about lost events to stderr.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from .client import Client
from .errors import APIError, DeliveryError
from .version import VERSION

__version__ = VERSION
__all__ = [
    "VERSION", "APIError", "Client", "DeliveryError", "alias", "flush", "group", "identify",
    "join", "page", "screen", "shutdown", "track",
]

#: mParticle API key (or ``"KEY:SECRET"``); default ``$MPARTICLE_API_KEY``.
write_key: Optional[str] = None
#: mParticle API secret; default ``$MPARTICLE_API_SECRET``.
secret: Optional[str] = None
#: ``"production"`` or ``"development"``.
environment = "production"
#: Base URL; default: the pod named by the key's prefix.
host: Optional[str] = None
on_error: Optional[Callable[[Exception, list[dict[str, Any]]], Any]] = None
debug = False
log_handler: Optional[logging.Handler] = None
send = True
sync_mode = False
max_queue_size = 10000
gzip = False
#: Seconds for each HTTP request.
timeout: float = 15
max_retries = 10
proxies: Optional[dict[str, str]] = None
thread = 1
upload_size = 100
#: Seconds a partial batch waits for more events.
upload_interval = 0.5
max_total_backoff_duration: float = 43200
max_rate_limit_duration: float = 1800
anonymous_id_identity: Optional[str] = "other"
#: Map Segment's e-commerce spec events to mParticle commerce events.
ecommerce = True
#: Send to ``/v2/bulkevents/historical`` (events must be at least 72 hours old).
historical = False
#: Seconds the exit hook may spend delivering what is still queued.
shutdown_timeout: float = 10.0
#: Accepted for compatibility and ignored (with a warning): mParticle uses Basic auth.
oauth_client_id: Optional[str] = None
oauth_client_key: Optional[str] = None
oauth_key_id: Optional[str] = None
oauth_auth_server = "https://oauth2.segment.io"
oauth_scope = "tracking_api:write"

#: The module's client, created from the settings above on first use.
default_client: Optional[Client] = None


def track(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send a track call; see ``Client.track``."""
    return _client().track(*args, **kwargs)


def identify(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send an identify call; see ``Client.identify``."""
    return _client().identify(*args, **kwargs)


def group(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send a group call; see ``Client.group``."""
    return _client().group(*args, **kwargs)


def alias(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send an alias call; see ``Client.alias``."""
    return _client().alias(*args, **kwargs)


def page(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send a page call; see ``Client.page``."""
    return _client().page(*args, **kwargs)


def screen(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send a screen call; see ``Client.screen``."""
    return _client().screen(*args, **kwargs)


def flush(timeout: Optional[float] = None) -> bool:
    """Block until everything queued is delivered or given up; see ``Client.flush``."""
    return _client().flush(timeout)


def join(timeout: Optional[float] = None) -> bool:
    """Deliver what is queued and stop the delivery threads; see ``Client.join``."""
    return _client().join(timeout)


def shutdown(timeout: Optional[float] = None) -> bool:
    """Flush, then stop the delivery threads; see ``Client.shutdown``."""
    return _client().shutdown(timeout)


def _client() -> Client:
    """The default client, built from the module settings on first use."""
    global default_client
    if not default_client:
        default_client = Client(
            write_key, host=host, debug=debug, max_queue_size=max_queue_size, send=send,
            on_error=on_error, gzip=gzip, max_retries=max_retries, sync_mode=sync_mode,
            timeout=timeout, proxies=proxies, thread=thread, upload_size=upload_size,
            upload_interval=upload_interval, log_handler=log_handler,
            oauth_client_id=oauth_client_id, oauth_client_key=oauth_client_key,
            oauth_key_id=oauth_key_id, oauth_auth_server=oauth_auth_server, oauth_scope=oauth_scope,
            max_total_backoff_duration=max_total_backoff_duration,
            max_rate_limit_duration=max_rate_limit_duration,
            secret=secret, environment=environment, anonymous_id_identity=anonymous_id_identity,
            ecommerce=ecommerce, historical=historical, shutdown_timeout=shutdown_timeout,
        )
    return default_client
