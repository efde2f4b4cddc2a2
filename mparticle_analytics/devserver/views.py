"""What the inspector page and ``/api/inspect`` show: batches as a person reads them.

Pure functions over stored entries (see :mod:`.store`): which user a batch
belongs to, each event's type, name, time and attributes, the counts, and
the filters by user and by event name. The page renders exactly this JSON, so
scripts and tests see what a person sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Final, Optional

#: Which identity names a user, most specific first.
_USER_KEYS: Final = (
    "customer_id", "customerid", "email", "mobile_number", "other", *(f"other_id_{n}" for n in range(2, 11)),
    "facebook", "twitter", "google", "microsoft", "yahoo", "alias", "facebook_custom_audience_id",
    "phone_number_2", "phone_number_3",
)
_DEVICE_KEYS: Final = ("ios_advertising_id", "ios_idfv", "android_advertising_id", "android_uuid")
#: Data fields that say what an event is, by event type, tried in order.
_NAME_FIELDS: Final = ("event_name", "screen_name", "label", "user_attribute_name", "url", "message")
#: Data fields shown on their own, so left out of an event's other ``fields``.
_SHOWN: Final = frozenset({"custom_attributes", "timestamp_unixtime_ms", *_NAME_FIELDS})


def user_of(batch: Any) -> dict[str, Any]:
    """The user a batch belongs to: ``{"key", "label", "identities", "mpid"}``.

    ``key`` groups batches: the most specific identity present (customer id,
    then email, ...), else the mpid, else a device id, else ``"(no identity)"``.
    """
    batch = batch if isinstance(batch, dict) else {}
    given = batch.get("user_identities")
    identities = {k: v for k, v in given.items() if v is not None} if isinstance(given, dict) else {}
    mpid = batch.get("mpid")
    key = next((f"{name}:{identities[name]}" for name in _USER_KEYS if name in identities), None)
    if key is None and isinstance(mpid, (int, str)) and not isinstance(mpid, bool):
        key = f"mpid:{mpid}"
    if key is None:
        device = batch.get("device_info")
        device = device if isinstance(device, dict) else {}
        stamp = batch.get("mp_deviceid")
        key = next((f"{name}:{device[name]}" for name in _DEVICE_KEYS if device.get(name)), None)
        if key is None and isinstance(stamp, str):
            key = f"mp_deviceid:{stamp}"
    key = key or "(no identity)"
    label = key.split(":", 1)[1] if ":" in key else key
    return {"key": key, "label": label, "identities": identities, "mpid": mpid}


def event_view(event: Any, index: int) -> dict[str, Any]:
    """One event as the page lists it: ``{"index", "type", "name", "timestamp_ms", "time",
    "attributes", "fields"}``; anything malformed shows as it is."""
    if not isinstance(event, dict):
        return {"index": index, "type": None, "name": None, "timestamp_ms": None, "time": None,
                "attributes": {}, "fields": {"(event)": event}}
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    stamp = data.get("timestamp_unixtime_ms")
    attributes = data.get("custom_attributes")
    return {
        "index": index,
        "type": event.get("event_type"),
        "name": _event_name(event.get("event_type"), data),
        "timestamp_ms": stamp,
        "time": _iso(stamp),
        "attributes": attributes if isinstance(attributes, dict) else {},
        "fields": {k: v for k, v in data.items() if k not in _SHOWN},
    }


def _event_name(event_type: Any, data: dict[str, Any]) -> Optional[str]:
    for name in _NAME_FIELDS:
        value = data.get(name)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    if event_type == "commerce_event":
        for variant in ("product_action", "promotion_action"):
            action = data.get(variant)
            if isinstance(action, dict) and isinstance(action.get("action"), str):
                return f"{variant.split('_')[0]} {action['action']}"
        if data.get("product_impressions"):
            return "impression"
    return None


def _iso(stamp: Any) -> Optional[str]:
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        return None
    try:
        moment = datetime.fromtimestamp(stamp / 1000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_view(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored entry as ``/api/inspect`` serves it: the entry plus ``user`` and ``events`` views."""
    batch = entry["batch"]
    events = batch.get("events") if isinstance(batch, dict) else None
    events = events if isinstance(events, list) else []
    attributes = batch.get("user_attributes") if isinstance(batch, dict) else None
    return {
        **{k: entry[k] for k in ("id", "status", "seq", "request", "path", "received_at", "reason", "size")},
        "user": user_of(batch),
        "environment": batch.get("environment") if isinstance(batch, dict) else None,
        "events": [event_view(event, index) for index, event in enumerate(events)],
        "events_total": len(events),
        "user_attributes": attributes if isinstance(attributes, dict) else {},
        "counts": entry["counts"],
        "problems": entry["problems"],
        "batch": batch,
    }


def matches_user(view: dict[str, Any], text: str) -> bool:
    """Whether any of the batch's identities (or its mpid) contains ``text``, ignoring case."""
    needle = text.strip().lower()
    if not needle:
        return True
    user = view["user"]
    values = [user["key"], *map(str, user["identities"].values()), str(user["mpid"] or "")]
    return any(needle in value.lower() for value in values)


def filter_view(view: dict[str, Any], user: str = "", event: str = "") -> Optional[dict[str, Any]]:
    """The view with only the events whose name or type contains ``event``; ``None`` if
    the batch does not match the user filter, or no event matches the event filter."""
    if not matches_user(view, user):
        return None
    needle = event.strip().lower()
    if not needle:
        return view
    kept = [e for e in view["events"] if needle in f"{e['name'] or ''}\n{e['type'] or ''}".lower()]
    return {**view, "events": kept} if kept else None


def summary(views: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The page's counters: events, batches, users and problems by severity."""
    totals = {"events": 0, "batches": 0, "rejected": 0, "users": 0}
    problems = {"error": 0, "warning": 0, "info": 0}
    users = set()
    for view in views:
        totals["batches"] += 1
        totals["rejected"] += view["status"] == "rejected"
        totals["events"] += len(view["events"])
        users.add(view["user"]["key"])
        for severity, number in view["counts"].items():
            problems[severity] = problems.get(severity, 0) + number
    totals["users"] = len(users)
    return {**totals, "problems": problems}


def users(views: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batches grouped by user, most recently active first."""
    grouped: dict[str, dict[str, Any]] = {}
    for view in views:
        user = view["user"]
        group = grouped.setdefault(
            user["key"],
            {"user": user["key"], "label": user["label"], "identities": {}, "batches": [], "events": 0,
             "problems": {"error": 0, "warning": 0, "info": 0}, "first_seen": view["received_at"]},
        )
        group["identities"].update(user["identities"])
        group["batches"].append(view["id"])
        group["events"] += len(view["events"])
        group["last_seen"] = view["received_at"]
        for severity, number in view["counts"].items():
            group["problems"][severity] = group["problems"].get(severity, 0) + number
    return sorted(grouped.values(), key=lambda g: max(g["batches"]), reverse=True)
