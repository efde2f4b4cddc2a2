"""The devserver's own JSON API under ``/api/``: what it received, the inspector's data, faults.

Each action takes the shared state, the request body and the parsed query
string, and returns the JSON document to answer with (or raises
:class:`.rules.RequestError`). No auth: it is a local tool.

- ``GET /api/batches``, ``/api/requests``, ``/api/rejected``: the raw records.
- ``GET /api/inspect?since=ID&wait=S&gen=G&user=U&event=E``: batches as the
  page shows them (user, events, problems), newer than ``since``; ``wait``
  holds the answer up to S seconds until there is something new (long poll).
- ``GET /api/users``, ``/api/problems``, ``/api/summary``: grouped and counted.
- ``GET|POST|DELETE /api/faults``; ``POST /api/reset``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Final, Optional

from . import views
from .faults import Fault, FaultQueue
from .rules import RequestError
from .store import Store

#: The longest a ``/api/inspect`` long poll may wait, in seconds.
MAX_WAIT: Final = 30.0

Query = Mapping[str, list[str]]


@dataclass
class AppState:
    """Everything the handler threads share; owned by one ``DevServer``."""

    store: Store = field(default_factory=Store)
    faults: FaultQueue = field(default_factory=FaultQueue)
    key: Optional[str] = None
    secret: Optional[str] = field(default=None, repr=False)
    #: Set on stop, so injected delays and long polls end at once instead of holding a thread.
    stopping: threading.Event = field(default_factory=threading.Event)

    def reset(self) -> None:
        """Forget every request and batch and clear pending faults."""
        self.store.reset()
        self.faults.clear()


def _one(query: Query, name: str, default: str = "") -> str:
    values = query.get(name)
    return values[-1] if values else default


def _number(query: Query, name: str, default: float) -> float:
    text = _one(query, name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise RequestError(400, f"query parameter {name} must be a number, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise RequestError(400, f"query parameter {name} must be a number >= 0, not {text!r}")
    return value


def _views(state: AppState, query: Query, since: int = 0) -> list[dict[str, Any]]:
    user, event = _one(query, "user"), _one(query, "event")
    shown = (views.filter_view(views.entry_view(e), user, event) for e in state.store.snapshot(since))
    return [view for view in shown if view is not None]


def inspect(state: AppState, body: bytes, query: Query) -> Any:
    """Batches newer than ``since`` as the page shows them, after waiting up to ``wait`` seconds."""
    since = int(_number(query, "since", 0))
    wait = min(_number(query, "wait", 0), MAX_WAIT)
    generation = _one(query, "gen")
    store = state.store

    def news() -> bool:
        stale = bool(generation) and store.generation() != generation
        return state.stopping.is_set() or stale or store.latest() > since

    if wait > 0:
        store.wait_for(news, wait)
    if generation and store.generation() != generation:
        since = 0  # The ids the caller has are from before a reset or restart: start over.
    everything = _views(state, {})
    return {
        "generation": store.generation(),
        "latest": store.latest(),
        "since": since,
        "summary": views.summary(everything),
        "batches": _views(state, query, since),
    }


def _problems(state: AppState, body: bytes, query: Query) -> Any:
    severity = _one(query, "severity")
    found = [
        {"batch": view["id"], "status": view["status"], "seq": view["seq"], "user": view["user"]["key"], **p}
        for view in _views(state, query)
        for p in view["problems"]
        if not severity or p["severity"] == severity
    ]
    return {"problems": found}


def _add_faults(state: AppState, body: bytes, query: Query) -> Any:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    items = document if isinstance(document, list) else [document]
    try:
        state.faults.add([Fault.from_json(item) for item in items])
    except (ValueError, TypeError) as exc:
        raise RequestError(400, str(exc)) from None
    return {"faults": state.faults.pending()}


def _reset(state: AppState, body: bytes, query: Query) -> Any:
    state.reset()
    return {}


def _clear_faults(state: AppState, body: bytes, query: Query) -> Any:
    state.faults.clear()
    return {"faults": []}


Action = Callable[[AppState, bytes, Query], Any]

ROUTES: Final[Mapping[str, Mapping[str, Action]]] = {
    "/api/batches": {"GET": lambda state, body, query: {"batches": state.store.batches()}},
    "/api/requests": {"GET": lambda state, body, query: {"requests": state.store.requests()}},
    "/api/rejected": {"GET": lambda state, body, query: {"rejected": state.store.rejected()}},
    "/api/inspect": {"GET": inspect},
    "/api/users": {"GET": lambda state, body, query: {"users": views.users(_views(state, query))}},
    "/api/problems": {"GET": _problems},
    "/api/summary": {"GET": lambda state, body, query: views.summary(_views(state, query))},
    "/api/reset": {"POST": _reset},
    "/api/faults": {
        "GET": lambda state, body, query: {"faults": state.faults.pending()},
        "POST": _add_faults,
        "DELETE": _clear_faults,
    },
}
