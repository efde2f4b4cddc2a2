"""Check one batch the way mParticle does, and say what is wrong with it and where.

:func:`validate_batch` is pure: a parsed batch in, a list of problems out, each
``{"path", "rule", "message", "severity"}`` with ``path`` a JSONPath into the
batch (``$.events[2].data.custom_event_type``) and ``rule`` a stable name:

- ``schema.*`` (**errors**): what mParticle's published JSON Schema rejects
  (``schema.type``, ``schema.required``, ``schema.enum``, ``schema.pattern``,
  ``schema.format``, ``schema.one_of``, ``schema.additional_property``). An
  error-free batch is exactly a batch that schema accepts, apart from the
  ``compat.*`` cases below; the test suite checks this on a corpus.
- ``compat.*`` (warnings): what the schema rejects but mParticle evidently
  accepts, because its own SDKs send it: ``compat.customerid`` (the Python,
  Node and Ruby SDKs' spelling of ``customer_id``), ``compat.schema_version``
  (the same SDKs and mParticle's HTTP examples send it) and
  ``compat.attribution`` (``custom_event_type: attribution``, documented and
  sent by the Python SDK).
- ``docs.*`` (warnings): what the schema lets through but mParticle's docs say
  otherwise (no identity, unknown fields, documented enums the schema does not
  enforce, a non-object where an object belongs, ...).
- ``limit.*``: mParticle's documented limits (:mod:`.limits`); warnings, or
  ``info`` for a value exactly at a limit.

The rules are the devserver's own code (no JSON Schema library at run time):
:mod:`.kinds` has the value kinds, :mod:`.events` the per-type event rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from . import kinds, limits
from .events import GEO_LOCATION, check_event
from .kinds import (
    ERROR,
    Check,
    Problem,
    Record,
    Report,
    child,
    enum,
    integer,
    json_type,
    scalar,
    string,
    uuid,
)

__all__ = ["IDENTITY_TYPES", "Problem", "count", "has_errors", "validate_batch"]

#: ``user_identities`` keys the schema accepts.
IDENTITY_TYPES: Final = (
    "other", "customer_id", "facebook", "twitter", "google", "microsoft", "yahoo", "email", "alias",
    "facebook_custom_audience_id", *(f"other_id_{n}" for n in range(2, 11)), "mobile_number",
    "phone_number_2", "phone_number_3",
)
#: Device fields that identify a device, for the "no identity at all" warning.
DEVICE_IDENTITIES: Final = (
    "ios_advertising_id", "ios_idfv", "android_advertising_id", "android_uuid", "push_token",
    "roku_advertising_id", "roku_publisher_id", "microsoft_advertising_id", "microsoft_publisher_id",
    "fire_advertising_id", "amp_id",
)
_PLATFORMS: Final = (
    "iOS", "Android", "web", "tvOS", "roku", "out_of_band", "alexa", "smart_tv", "fire_tv", "xbox",
)
_APP_OS: Final = (
    "Unknown", "IOS", "Android", "WindowsPhone", "MobileWeb", "UnityIOS", "UnityAndroid", "Desktop", "TVOS",
    "Roku", "OutOfBand", "Alexa", "SmartTV", "FireTV", "Xbox",
)
_UUID_DEVICE_FIELDS: Final = (
    "ios_advertising_id", "ios_idfv", "android_advertising_id", "roku_advertising_id", "roku_publisher_id",
    "fire_advertising_id",
)
_INTEGER_DEVICE_FIELDS: Final = ("screen_height", "screen_width", "screen_dpi", "timezone_offset",
                                 "att_timestamp_unixtime_ms")
_BOOLEAN_DEVICE_FIELDS: Final = (
    "is_tablet", "push_notification_sound_enabled", "push_notification_vibrate_enabled", "supports_telephony",
    "has_nfc", "bluetooth_enabled", "limit_ad_tracking", "is_dst",
)
_SCALAR_DEVICE_FIELDS: Final = (
    "brand", "product", "device", "android_uuid", "device_manufacturer", "os_version", "device_model",
    "device_country", "locale_language", "locale_country", "network_country", "network_carrier",
    "network_code", "network_mobile_country_code", "build_identifier", "http_header_user_agent",
    "push_token", "cpu_architecture", "radio_access_technology", "bluetooth_version", "build_version_release",
    "amp_id", "microsoft_advertising_id", "microsoft_publisher_id",
)

DEVICE_INFO: Final = Record(
    "DeviceInformation",
    {
        **dict.fromkeys(_SCALAR_DEVICE_FIELDS, scalar),
        **dict.fromkeys(_INTEGER_DEVICE_FIELDS, integer),
        **dict.fromkeys(_BOOLEAN_DEVICE_FIELDS, kinds.boolean),
        **dict.fromkeys(_UUID_DEVICE_FIELDS, uuid),
        "platform": enum(_PLATFORMS),
        "att_authorization_status": enum(("authorized", "denied", "not_determined", "restricted")),
    },
    closed=True,
)

_MAP_OF_MAPS: Final = kinds.map_of(kinds.map_of(scalar, nullable=False))

APPLICATION_INFO: Final = Record(
    "ApplicationInformation",
    {
        **dict.fromkeys(
            (
                "application_name", "application_version", "application_build_number", "install_referrer",
                "package",
            ),
            scalar,
        ),
        "os": kinds.documented_enum(_APP_OS, "the schema (an enum beside a $ref, which draft 7 ignores)"),
        "apple_search_ads_attributes": _MAP_OF_MAPS,
    },
    closed=True,
)


def _consent_purposes(name: str, regulation: str) -> Check:
    purpose = Record(
        name,
        {
            **dict.fromkeys(("regulation", "document", "location", "hardware_id"), scalar),
            "consented": kinds.boolean,
            "timestamp_unixtime_ms": integer,
        },
        required=("consented", "timestamp_unixtime_ms"),
        closed=True,
    )

    def check(value: Any, path: str, report: Report) -> None:
        kinds.map_of(purpose, nullable=False)(value, path, report)
        if regulation == "ccpa" and isinstance(value, dict):
            for key in value:
                if key != "data_sale_opt_out":
                    report.warning(
                        child(path, key),
                        "docs.ccpa_purpose",
                        f"CCPA consent has one purpose, 'data_sale_opt_out'; {key!r} is not it",
                    )

    return check


CONSENT_STATE: Final = Record(
    "ConsentState",
    {
        "gdpr": _consent_purposes("GDPRConsentPurpose", "gdpr"),
        "ccpa": _consent_purposes("CCPAConsentPurpose", "ccpa"),
    },
    closed=True,
)

BATCH_CONTEXT: Final = Record(
    "BatchContext",
    {
        "data_plan": Record(
            "DataPlanContext",
            {"plan_id": string, "plan_version": integer},
            required=("plan_id",),
            closed=True,
        ),
        "location": GEO_LOCATION,
    },
)


def _user_identities(value: Any, path: str, report: Report) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        report.error(path, "schema.type", f"must be an object or null, not {json_type(value)}")
        return
    for key, identity in value.items():
        where = child(path, key)
        if key == "customerid":
            report.warning(
                where,
                "compat.customerid",
                "'customerid' is not in the schema (which spells it 'customer_id'), but mParticle's own "
                "Python, Node and Ruby SDKs send it; accepted",
            )
        elif key not in IDENTITY_TYPES:
            report.error(
                where,
                "schema.additional_property",
                f"{key!r} is not an identity type; use one of: {', '.join(IDENTITY_TYPES)}",
            )
            continue
        scalar(identity, where, report)


def _user_attributes(value: Any, path: str, report: Report) -> None:
    kinds.map_of(kinds.string_or_array)(value, path, report)
    limits.check_attributes(value, path, report, "user attributes", lists=True)


def _events(value: Any, path: str, report: Report) -> None:
    kinds.array_of(check_event)(value, path, report)


def _schema_version(value: Any, path: str, report: Report) -> None:
    report.warning(
        path,
        "compat.schema_version",
        "'schema_version' is not in the schema, but mParticle's HTTP examples and its Python, Node and "
        "Ruby SDKs send it; accepted (mParticle calls it output only)",
    )
    integer(value, path, report)


def _output_only(why: str, check: Check) -> Check:
    def checked(value: Any, path: str, report: Report) -> None:
        check(value, path, report)
        report.warning(path, "docs.output_only", why)

    return checked


BATCH_FIELDS: Final[Mapping[str, Check]] = {
    "source_request_id": scalar,
    "events": _events,
    "device_info": DEVICE_INFO,
    "application_info": APPLICATION_INFO,
    "user_attributes": _user_attributes,
    "deleted_user_attributes": kinds.array_of(string),
    "user_identities": _user_identities,
    "environment": enum(("development", "production")),
    "api_key": scalar,
    "api_keys": kinds.array_of(string),
    "ip": kinds.ip_address,
    "integration_attributes": _MAP_OF_MAPS,
    "context": BATCH_CONTEXT,
    "partner_identity": scalar,
    "partner_identities": kinds.map_of(scalar),
    "source_info": _output_only(
        "mParticle fills in source_info itself; its docs say you do not need to send it",
        Record(
            "SourceInformation",
            {
                "channel": enum(("native", "javascript", "pixel", "desktop", "partner", "server_to_server")),
                **dict.fromkeys(("partner", "replay_request_id", "replay_job_id"), scalar),
                "is_historical": kinds.boolean,
            },
            required=("channel",),
            closed=True,
        ),
    ),
    "mp_deviceid": uuid,
    "attribution_info": Record(
        "AttributionInfo",
        dict.fromkeys(("service_provider", "publisher", "campaign"), scalar),
        required=("service_provider", "publisher", "campaign"),
        closed=True,
    ),
    "timestamp_unixtime_ms": _output_only(
        "the batch timestamp is set by mParticle on receipt and 'should not be set manually'", integer
    ),
    "batch_id": _output_only("batch_id is added by mParticle on output", integer),
    "mpid": integer,
    "origin_mpid": integer,
    "sdk_version": scalar,
    "consent_state": CONSENT_STATE,
    "job_id": scalar,
    "schema_version": _schema_version,
}

_BATCH: Final = Record("Batch", BATCH_FIELDS, closed=True)


def validate_batch(batch: Any) -> list[Problem]:
    """Every problem mParticle would have with ``batch`` (a parsed JSON value), in document order."""
    report = Report()
    if not isinstance(batch, dict):
        report.warning("$", "docs.object", f"a batch is an object, not {json_type(batch)}")
        return report.problems
    _BATCH(batch, "$", report)
    _check_identity(batch, report)
    if "environment" not in batch:
        report.info("$", "docs.environment", "no environment: mParticle treats the batch as production data")
    return report.problems


def _check_identity(batch: dict[str, Any], report: Report) -> None:
    identities = batch.get("user_identities")
    if isinstance(identities, dict) and any(v not in (None, "") for v in identities.values()):
        return
    if batch.get("mpid") is not None or batch.get("mp_deviceid") is not None:
        return
    device = batch.get("device_info")
    if isinstance(device, dict) and any(device.get(name) not in (None, "") for name in DEVICE_IDENTITIES):
        return
    report.warning(
        "$",
        "docs.identity",
        "no user or device identity (user_identities, mpid, mp_deviceid or a device ID): mParticle "
        "cannot tie these events to a user",
    )


def has_errors(problems: Iterable[Problem]) -> bool:
    """Whether any problem is an error (what mParticle's schema rejects)."""
    return any(problem["severity"] == ERROR for problem in problems)


def count(problems: Iterable[Problem]) -> dict[str, int]:
    """``{"error": n, "warning": n, "info": n}``."""
    counts = {"error": 0, "warning": 0, "info": 0}
    for problem in problems:
        counts[problem["severity"]] = counts.get(problem["severity"], 0) + 1
    return counts
