"""The rules for one event, per ``event_type``, as mParticle's batch schema and docs state them.

The schema's ``events.items`` is a ``oneOf`` of 17 event definitions, each
pinning ``event_type`` to one value, so it amounts to a dispatch on
``event_type``; every definition's ``data`` is ``allOf`` the common
``EventData`` fields and the type's own. The tables below copy those fields
one for one (definition names in the messages are the schema's); commerce
products and actions live in :mod:`.commerce_rules`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, NamedTuple, Optional

from . import kinds, limits
from .commerce_rules import COMMERCE_FIELDS, check_commerce_variant
from .kinds import Check, Record, Report, both, child, enum, integer, json_type, scalar, string

#: ``custom_event_type`` values the schema's ``CustomEvent`` accepts.
CUSTOM_EVENT_TYPES: Final = (
    "navigation", "location", "search", "transaction", "user_content", "user_preference",
    "social", "other", "media",
)
#: Documented by mParticle and sent by its own Python SDK, but not in the schema's enum.
ATTRIBUTION: Final = "attribution"
#: Listed in the schema's ``EventType`` enum, yet no event definition accepts them.
_ORPHAN_TYPES: Final = ("pre_attribution", "push_reaction")
_JSON_REFERENCE: Final = "mParticle's JSON reference"
_IGNORED_ENUM: Final = "the schema (an enum beside a $ref, which draft 7 ignores)"

GEO_LOCATION: Final = Record(
    "GeoLocation",
    {
        "latitude": kinds.number,
        "longitude": kinds.number,
        "accuracy": kinds.number,
        "dma_code": integer,
        "country_code": scalar,
        "region_code": scalar,
        "postal_code": scalar,
        "location_source": kinds.documented_enum(("unknown", "ip_lookup", "lat_long"), _JSON_REFERENCE),
        "city_name": scalar,
    },
    required=("latitude", "longitude"),
    closed=True,
)

DEVICE_CURRENT_STATE: Final = Record(
    "DeviceCurrentState",
    {
        "time_since_start_ms": integer,
        "battery_level": kinds.number,
        "data_connection_type": scalar,
        "data_connection_type_detail": scalar,
        "gps_state": kinds.boolean,
        "total_system_memory_usage_bytes": integer,
        "disk_space_free_bytes": integer,
        "external_disk_space_free_bytes": integer,
        "cpu": scalar,
        "system_memory_available_bytes": kinds.number,
        "system_memory_low": kinds.boolean,
        "system_memory_threshold_bytes": kinds.number,
        "application_memory_available_bytes": kinds.number,
        "application_memory_max_bytes": kinds.number,
        "application_memory_total_bytes": kinds.number,
        # The schema lists orientations beside a $ref (so ignores them); mParticle's own sample
        # batch sends "unknown", which is not among them, so no value is flagged here.
        "device_orientation": scalar,
        "status_bar_orientation": scalar,
    },
    closed=True,
)


def _custom_attributes(value: Any, path: str, report: Report) -> None:
    kinds.map_of(scalar)(value, path, report)
    limits.check_attributes(value, path, report, "custom attributes")


#: ``EventData``: the fields every event's ``data`` may carry.
EVENT_DATA: Final[Mapping[str, Check]] = {
    "timestamp_unixtime_ms": integer,
    "event_id": integer,
    "source_message_id": string,
    "session_id": integer,
    "session_uuid": kinds.uuid,
    "session_start_unixtime_ms": integer,
    "event_start_unixtime_ms": integer,
    "custom_attributes": _custom_attributes,
    "location": GEO_LOCATION,
    "device_current_state": DEVICE_CURRENT_STATE,
    "is_goal_defined": kinds.boolean,
    "lifetime_value_change": kinds.number,
    "lifetime_value_attribute_name": scalar,
    "data_connection_type": scalar,
    "event_num": integer,
    "view_controller": scalar,
    "is_main_thread": kinds.boolean,
    "canonical_name": scalar,
    "event_system_notification_info": Record(
        "EventSystemNotificationInfo", {"type": enum(("gdpr_change",))}, required=("type",)
    ),
}


def _name(what: str = "event name") -> Check:
    def check(value: Any, path: str, report: Report) -> None:
        string(value, path, report)
        limits.check_name(value, path, report, what)

    return check


def _custom_event_type(value: Any, path: str, report: Report) -> None:
    if value == ATTRIBUTION:
        report.warning(
            path,
            "compat.attribution",
            "custom_event_type 'attribution' is not in the schema's enum, but mParticle documents "
            "attribution events and its own Python SDK sends them; accepted",
        )
    else:
        enum(CUSTOM_EVENT_TYPES)(value, path, report)


_FLAGS: Final = kinds.map_of(scalar)

_USER_IDENTITY: Final = Record(
    "UserIdentity",
    {
        "identity_type": enum(
            (
                "other", "customer_id", "facebook", "twitter", "google", "microsoft", "yahoo", "email",
                "alias", "facebook_custom_audience_id", *(f"other_id_{n}" for n in range(2, 11)),
                "mobile_number", "phone_number_2", "phone_number_3",
            )
        ),
        "identity": scalar,
        "timestamp_unixtime_ms": integer,
        "created_this_batch": kinds.boolean,
    },
    required=("identity_type", "identity", "timestamp_unixtime_ms"),
    closed=True,
)


class EventSpec(NamedTuple):
    """One event definition: its ``data`` rules and whether the envelope allows other keys."""

    data: Record
    #: ``additionalProperties: false`` on the event object itself.
    closed: bool


def _spec(
    event_type: str,
    definition: str,
    fields: Mapping[str, Check],
    required: tuple[str, ...] = (),
    *,
    closed: bool = False,
    typed: Optional[str] = None,
    extra: tuple[kinds.Extra, ...] = (),
) -> tuple[str, EventSpec]:
    merged = {**EVENT_DATA, **fields}
    data = Record(f"{definition} data", merged, required=required, typed=typed, extra=extra)
    return event_type, EventSpec(data, closed)


def _breadcrumb(value: Any, path: str, report: Report) -> None:
    check_event(value, path, report, only="breadcrumb")


_SPECS: Final[Mapping[str, EventSpec]] = dict(
    [
        _spec(
            "custom_event",
            "CustomEvent",
            {"custom_event_type": _custom_event_type, "event_name": _name(), "custom_flags": _FLAGS},
            ("custom_event_type", "event_name"),
            closed=True,
        ),
        _spec(
            "commerce_event",
            "CommerceEvent",
            {
                **COMMERCE_FIELDS,
                "event_name": _name(),
                "screen_name": _name("screen name"),
                "custom_flags": _FLAGS,
            },
            closed=True,
            extra=(check_commerce_variant,),
        ),
        _spec("session_start", "SessionStartEvent", {"session_id": integer}),
        _spec("session_end", "SessionEndEvent", {"session_duration_ms": integer}, ("session_duration_ms",)),
        _spec(
            "screen_view",
            "ScreenViewEvent",
            {"screen_name": _name("screen name"), "activity_type": scalar, "custom_flags": _FLAGS},
            ("screen_name",),
        ),
        _spec(
            "crash_report",
            "CrashReportEvent",
            {
                "breadcrumbs": kinds.array_of(_breadcrumb),
                **dict.fromkeys(
                    ("class_name", "severity", "message", "stack_trace", "topmost_context",
                     "pl_crash_report_file_base64"),
                    scalar,
                ),
                "exception_handled": kinds.boolean,
                "ios_image_base_address": integer,
                "ios_image_size": integer,
                "session_number": integer,
            },
            ("severity", "message"),
        ),
        _spec("opt_out", "OptOutEvent", {"is_opted_out": kinds.boolean}, ("is_opted_out",)),
        _spec("first_run", "FirstRunEvent", {}, closed=True),
        _spec(
            "push_registration",
            "PushRegistrationEvent",
            {"register": kinds.boolean, "registration_token": string},
            ("register", "registration_token"),
        ),
        _spec(
            "application_state_transition",
            "ApplicationStateTransitionEvent",
            {
                "successfully_closed": kinds.boolean,
                "is_first_run": kinds.boolean,
                "is_upgrade": kinds.boolean,
                "push_notification_payload": scalar,
                "launch_referral": scalar,
                "application_transition_type": enum(
                    ("application_initialized", "application_exit", "application_background",
                     "application_foreground")
                ),
            },
            ("application_transition_type",),
            closed=True,
        ),
        _spec(
            "push_message",
            "PushMessageEvent",
            {
                "push_message_token": scalar,
                "push_message_type": enum(("sent", "received", "action")),
                "message": scalar,
                "network": kinds.documented_enum(("apn", "gcm"), _JSON_REFERENCE),
                "push_notification_payload": scalar,
                "application_state": kinds.documented_enum(
                    ("not_running", "background", "foreground"), _IGNORED_ENUM
                ),
                "action_identifier": both(scalar, limits.check_action_identifier),
                "push_message_behavior": kinds.documented_enum(
                    ("Received", "DirectOpen", "Read", "InfluencedOpen", "Displayed"), _IGNORED_ENUM
                ),
            },
            ("push_message_token", "push_message_type", "push_notification_payload"),
        ),
        _spec(
            "network_performance",
            "NetworkPerformanceEvent",
            {
                "http_verb": string,
                "url": string,
                "time_elapsed": integer,
                "bytes_in": integer,
                "bytes_out": integer,
                "response_code": integer,
                "data": scalar,
            },
            ("url", "response_code"),
        ),
        _spec(
            "breadcrumb",
            "BreadcrumbEvent",
            {"session_number": integer, "label": string},
            ("label",),
            closed=True,
        ),
        _spec(
            "profile",
            "ProfileEvent",
            {
                "previous_mpid": integer,
                "current_mpid": integer,
                "profile_event_type": enum(("signup", "login", "logout", "update", "delete")),
            },
            ("previous_mpid", "current_mpid", "profile_event_type"),
        ),
        _spec(
            "user_attribute_change",
            "UserAttributeChangeEvent",
            {
                "user_attribute_name": string,
                "new": kinds.string_or_array,
                "old": kinds.string_or_array,
                "deleted": kinds.boolean,
                "is_new_attribute": kinds.boolean,
            },
            ("user_attribute_name",),
            typed="object",
        ),
        _spec(
            "user_identity_change",
            "UserIdentityChangeEvent",
            {"new": _USER_IDENTITY, "old": _USER_IDENTITY},
            ("new", "old"),
        ),
        _spec("uninstall", "UninstallEvent", {}),
    ]
)

#: Every ``event_type`` the schema accepts, in its ``oneOf`` order.
EVENT_TYPES: Final = tuple(_SPECS)


def check_event(value: Any, path: str, report: Report, *, only: Optional[str] = None) -> None:
    """One event object: its ``event_type``, then its ``data`` by that type's definition.

    ``only`` restricts the type, for a crash report's ``breadcrumbs``.
    """
    if not isinstance(value, dict):
        report.error(path, "schema.type", f"an event must be an object, not {json_type(value)}")
        return
    allowed = (only,) if only else EVENT_TYPES
    event_type = value.get("event_type")
    spec: Optional[EventSpec] = None
    if "event_type" not in value:
        report.error(path, "schema.required", "every event needs 'event_type'")
    elif not isinstance(event_type, str) or event_type not in allowed:
        scalar_type = kinds.is_scalar(event_type)
        shown = json.dumps(event_type, ensure_ascii=False) if scalar_type else json_type(event_type)
        why = (
            " (the schema lists it as an EventType but has no event definition for it)"
            if event_type in _ORPHAN_TYPES and not only
            else ""
        )
        report.error(
            child(path, "event_type"),
            "schema.enum",
            f"{shown} is not an event type mParticle accepts{why}; use one of: {', '.join(allowed)}",
        )
    else:
        spec = _SPECS[event_type]
    if "data" not in value:
        report.error(path, "schema.required", "every event needs 'data'")
    if spec is None:
        return
    for key in value:
        if key in ("event_type", "data"):
            continue
        if spec.closed:
            report.error(
                child(path, key),
                "schema.additional_property",
                f"{key!r} is not allowed beside event_type and data in a {event_type} event",
            )
        else:
            report.warning(
                child(path, key),
                "docs.unknown_field",
                f"{key!r} beside event_type and data is ignored; mParticle documents no such field",
            )
    if "data" in value:
        spec.data(value["data"], child(path, "data"), report)
