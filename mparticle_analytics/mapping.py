"""One Segment message in, its mParticle form out (mapping.md §1-3, §5, §6). Pure: no I/O.

A message maps to three things: the batch-level facts that decide which batch
it joins (identities, mpid, ip, device and application info), at most one
event, already serialized, and the user-attribute changes it makes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from json.encoder import encode_basestring
from typing import Any, Optional

from . import commerce
from .snapshot import Snapshot, read
from .values import MAX_NAME_LENGTH, Attributes, Report, compact_encoder, remember, utf8, wire_json

#: ``custom_event_type`` values mParticle's schema accepts.
CUSTOM_EVENT_TYPES = frozenset(
    {"navigation", "location", "search", "transaction", "user_content", "user_preference",
     "social", "other", "media"}
)
#: Identity types that can carry ``anonymousId`` (the ``anonymous_id_identity`` option).
ANONYMOUS_IDENTITIES = frozenset({"other"} | {f"other_id_{n}" for n in range(2, 11)})
#: Every ``user_identities`` key mParticle's schema accepts.
IDENTITY_TYPES = ANONYMOUS_IDENTITIES | {
    "customer_id", "facebook", "twitter", "google", "microsoft", "yahoo", "email", "alias",
    "facebook_custom_audience_id", "mobile_number", "phone_number_2", "phone_number_3",
}
#: Segment traits that are mParticle reserved user attributes (after flattening).
RESERVED_TRAITS = {
    "firstName": "$firstname", "first_name": "$firstname",
    "lastName": "$lastname", "last_name": "$lastname",
    "gender": "$gender", "age": "$age", "phone": "$mobile",
    "address.city": "$city", "address.state": "$state",
    "address.postalCode": "$zip", "address.postal_code": "$zip",
    "address.country": "$country", "address.street": "$address",
}

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PLATFORMS = {"ios": "iOS", "android": "Android"}
_DEVICE_FIELDS = {"manufacturer": "device_manufacturer", "model": "device_model", "name": "device",
                  "token": "push_token"}
_APP_FIELDS = {"name": "application_name", "version": "application_version",
               "build": "application_build_number", "namespace": "package"}
_SCREEN_FIELDS = {"width": "screen_width", "height": "screen_height", "density": "screen_dpi"}


#: A message in mParticle's terms, ready for batching: ``(key, event, attributes, source)``.
#:
#: * ``key``: compact JSON of the batch-level facts; messages with equal keys share a batch;
#: * ``event``: the serialized event (compact UTF-8 JSON), or None for identify, group and alias;
#: * ``attributes``: user attribute changes, in call order; a None value deletes the attribute;
#: * ``source``: the snapshot it came from, for ``on_error``.
#:
#: A plain tuple: one is made per message, and a named tuple takes five times as long to make.
Mapped = tuple[str, Optional[bytes], dict[str, Any], Snapshot]


#: Batch keys: the facts as compact JSON with sorted keys, so equal facts give equal keys.
_FACTS_JSON = compact_encoder(None, allow_nan=False, sort_keys=True)
#: Entries each of the mapper's caches holds at most (batch keys, custom events' fields).
_CACHED = 10_000
#: Message types that carry an event.
EVENT_TYPES = frozenset({"track", "page", "screen"})
#: Context keys that feed ``device_info``; server-side calls usually carry none of them.
_DEVICE_CONTEXT = frozenset({"device", "userAgent", "os", "locale", "screen", "network"})
#: Context keys that feed any batch-level fact.
_FACT_CONTEXT = _DEVICE_CONTEXT | {"ip", "app"}


def mparticle_options(integrations: Any) -> dict[str, Any]:
    """The per-call options in ``integrations["mParticle"]``, whatever the key's case."""
    if isinstance(integrations, dict):
        for name, value in integrations.items():
            if isinstance(value, dict) and str(name).lower() == "mparticle":
                return value
    return {}


def _dict(value: Any) -> dict[str, Any]:
    """A nested object from a message, or {} when it is absent or not an object."""
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Mapper:
    """Maps Segment messages with one client's options; losses go to ``report``."""

    def __init__(self, *, anonymous_identity: Optional[str], ecommerce: bool = True, report: Report):
        self._anonymous = anonymous_identity
        self._ecommerce = ecommerce
        self._report = report
        self._attributes = Attributes(report)
        self._keys: dict[tuple[Any, Any], str] = {}
        self._custom_fields: dict[str, str] = {}  # event name -> a custom event's own fields

    def map(self, msg: Snapshot) -> Mapped:
        """Map one snapshot (``snapshot.take``).

        The snapshot travels with the result, so that one given up later can be
        reported as it was queued.
        """
        kind = msg["type"]
        context = read(msg, "context")
        integrations = read(msg, "integrations")
        options = mparticle_options(integrations) if integrations else {}
        if kind in EVENT_TYPES and not context and not options:
            return self._ids_key(msg), self._event(kind, msg, context, options), {}, msg
        traits = read(msg, "traits")  # identify and group only
        identities = self._identities(msg, traits if kind == "identify" else {}, context, options)
        event: Optional[bytes] = None
        attributes: dict[str, Any] = {}
        if kind == "identify":
            attributes = self._traits(traits, "")
        elif kind == "group":
            attributes = {"group_id": str(msg.get("groupId")), **self._traits(traits, "group")}
        elif kind == "alias":
            self._alias(msg, identities)
        else:
            event = self._event(kind, msg, context, options)
        return self._facts(identities, context, options), event, attributes, msg

    # -- batch-level facts (§2, §6) ------------------------------------------------------------

    def _identities(
        self, msg: Snapshot, traits: dict[str, Any], context: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        identities: dict[str, Any] = {}
        if msg.get("userId") is not None:
            identities["customer_id"] = msg["userId"]
        if msg.get("anonymousId") is not None and self._anonymous:
            identities[self._anonymous] = msg["anonymousId"]
        email = (_email(traits) or _email(context.get("traits"))) if traits or context else None
        if email:
            identities["email"] = email
        extra = options.get("user_identities") if options else None
        if extra is not None and not isinstance(extra, dict):
            self._report("invalid_override", "user_identities")
        elif extra is not None:
            for name, value in extra.items():
                if name in IDENTITY_TYPES and isinstance(value, str):
                    identities[name] = value
                else:
                    self._report("invalid_override", f"user_identities.{name}")
        return identities

    def _alias(self, msg: Snapshot, identities: dict[str, Any]) -> None:
        previous = msg.get("previousId")
        if self._anonymous is None:
            self._report("invalid_value", "previousId (anonymous_id_identity is None)")
        elif previous is not None:
            identities[self._anonymous] = str(previous)

    def _facts(
        self, identities: dict[str, Any], context: dict[str, Any], options: dict[str, Any]
    ) -> str:
        facts: dict[str, Any] = {}
        if identities:
            facts["user_identities"] = identities
        mpid = options.get("mpid") if options else None
        if mpid is not None:
            if isinstance(mpid, int) and not isinstance(mpid, bool):
                facts["mpid"] = mpid
            else:
                self._report("invalid_override", "mpid")
        if not _FACT_CONTEXT.isdisjoint(context):
            self._context_facts(context, facts)
        return _FACTS_JSON(facts)

    def _ids_key(self, msg: Snapshot) -> str:
        """The batch key of an event without context or options: its ids decide it.

        Most messages are such events, and the same few users recur: their keys are reused.
        """
        ids = (msg.get("userId"), msg.get("anonymousId"))
        key = self._keys.get(ids)
        if key is None:
            key = remember(self._keys, ids, self._facts(self._identities(msg, {}, {}, {}), {}, {}), _CACHED)
        return key

    def _context_facts(self, context: dict[str, Any], facts: dict[str, Any]) -> None:
        ip = context.get("ip")
        if ip is not None:
            if self._valid_ip(ip):
                facts["ip"] = ip
            else:
                self._report("invalid_value", "context.ip")
        device = self._device_info(context)
        if device:
            facts["device_info"] = device
        app = self._pick(context.get("app"), _APP_FIELDS, str)
        if app:
            facts["application_info"] = app

    @staticmethod
    def _valid_ip(value: Any) -> bool:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return isinstance(value, str)

    def _device_info(self, context: dict[str, Any]) -> dict[str, Any]:
        if _DEVICE_CONTEXT.isdisjoint(context):
            return {}
        device = _dict(context.get("device"))
        info: dict[str, Any] = self._pick(device, _DEVICE_FIELDS, str)
        if isinstance(context.get("userAgent"), str):
            info["http_header_user_agent"] = context["userAgent"]
        kind = str(device.get("type", "")).lower()
        for field, ios, android in (("advertisingId", "ios_advertising_id", "android_advertising_id"),
                                    ("id", "ios_idfv", "android_uuid")):
            value = device.get(field)
            if value is None or kind not in _PLATFORMS:
                continue
            if kind == "android" and field == "id" and isinstance(value, str):
                info[android] = value
            elif isinstance(value, str) and _UUID.match(value):
                info[ios if kind == "ios" else android] = value
            else:
                self._report("invalid_value", f"context.device.{field}")
        if isinstance(device.get("adTrackingEnabled"), bool):
            info["limit_ad_tracking"] = not device["adTrackingEnabled"]
        os_info = _dict(context.get("os"))
        platform = _PLATFORMS.get(str(os_info.get("name", "")).lower())
        if platform:
            info["platform"] = platform
        if isinstance(os_info.get("version"), str):
            info["os_version"] = os_info["version"]
        locale = context.get("locale")
        if isinstance(locale, str) and locale:
            language, _, country = locale.replace("_", "-").partition("-")
            info["locale_language"] = language
            if country:
                info["locale_country"] = country
        screen = context.get("screen")
        if isinstance(screen, dict):
            info.update({name: int(screen[field]) for field, name in _SCREEN_FIELDS.items()
                         if _number(screen.get(field))})
        network = context.get("network")
        if isinstance(network, dict) and isinstance(network.get("carrier"), str):
            info["network_carrier"] = network["carrier"]
        return info

    @staticmethod
    def _pick(source: Any, fields: dict[str, str], kind: type) -> dict[str, Any]:
        if not isinstance(source, dict):
            return {}
        return {name: source[field] for field, name in fields.items() if isinstance(source.get(field), kind)}

    # -- user attributes (§5) ------------------------------------------------------------------

    def _traits(self, traits: dict[str, Any], prefix: str) -> dict[str, Any]:
        flat = self._attributes.user(traits, prefix)
        if prefix:
            return flat
        email = flat.get("email")
        if isinstance(email, str) and "@" in email:
            del flat["email"]
        return {RESERVED_TRAITS.get(name, name): value for name, value in flat.items()}

    # -- events (§3) ---------------------------------------------------------------------------

    def _event(
        self, kind: str, msg: Snapshot, context: dict[str, Any], options: dict[str, Any]
    ) -> bytes:
        if kind == "track":
            event_type, fields, attributes = self._track(msg, options)
        else:
            event_type = "screen_view"
            fields = f'"screen_name":{_quote(self._name(_screen_name(kind, msg), "name"))}'
            category = msg.get("category")
            if category is None:
                attributes = self._attributes.event_json(msg["properties"])
            else:
                properties = {**read(msg, "properties"), "category": category}
                attributes = wire_json(self._attributes.event(properties))
        if options or context:
            fields += self._extra_fields(context, options)
        # Written from a template: an f-string, which Python assembles in a third of the time
        # ``str.format`` takes and a quarter of json's for these few fields.
        return utf8(
            f'{{"event_type":"{event_type}","data":{{"timestamp_unixtime_ms":{unix_ms(msg["timestamp"])},'
            f'"source_message_id":{_quote(msg["messageId"])},{fields},"custom_attributes":{attributes}}}}}'
        )

    def _extra_fields(self, context: dict[str, Any], options: dict[str, Any]) -> str:
        """``custom_flags`` and ``location``, as JSON members each after a comma ("" for none)."""
        extra: dict[str, Any] = {}
        flags = self._custom_flags(options) if options else None
        if flags:
            extra["custom_flags"] = flags
        location = context.get("location")
        if isinstance(location, dict) and _number(location.get("latitude")) and _number(
            location.get("longitude")
        ):
            extra["location"] = {"latitude": location["latitude"], "longitude": location["longitude"]}
        return "," + _members(extra) if extra else ""

    def _track(self, msg: Snapshot, options: dict[str, Any]) -> tuple[str, str, str]:
        """A commerce event for e-commerce spec events (§4), else a custom event.

        Returns the event type, its own ``data`` fields as JSON members, and the
        JSON of its ``custom_attributes``. The fields of a custom event without
        options depend on its name alone; the names an application uses are few,
        so they are written once per name.
        """
        event = msg["event"]
        fields = None if options else self._custom_fields.get(event)
        if fields is None:
            name = self._name(event, "event")
            fields = f'"event_name":{_quote(name)}'
            if self._ecommerce and name in commerce.EVENTS:
                data = commerce.commerce_data(name, read(msg, "properties"), self._attributes)
                attributes = data.pop("custom_attributes")
                return "commerce_event", f"{fields},{_members(data)}", wire_json(attributes)
            fields += f',"custom_event_type":"{self._custom_event_type(options, name)}"'
            if not options and name is event:  # not truncated: the same name gives the same fields
                remember(self._custom_fields, event, fields, _CACHED)
        return "custom_event", fields, self._attributes.event_json(msg["properties"])

    def _name(self, value: Any, field: str) -> str:
        name = str(value)
        if len(name) > MAX_NAME_LENGTH:
            self._report("truncated_name", field)
            name = name[:MAX_NAME_LENGTH]
        return name

    def _custom_event_type(self, options: dict[str, Any], event: str) -> str:
        value = options.get("custom_event_type") if options else None
        if value in CUSTOM_EVENT_TYPES:
            return str(value)
        if value is not None:
            self._report("invalid_override", "custom_event_type")
        return commerce.CUSTOM_EVENT_TYPES.get(event, "other") if self._ecommerce else "other"

    def _custom_flags(self, options: dict[str, Any]) -> dict[str, str]:
        flags = options.get("custom_flags")
        if flags is None:
            return {}
        if isinstance(flags, dict) and all(isinstance(v, str) for v in flags.values()):
            return {str(k): v for k, v in flags.items()}
        self._report("invalid_override", "custom_flags")
        return {}


_quote = encode_basestring


def _members(value: dict[str, Any]) -> str:
    """An object's members as JSON, without the braces."""
    return wire_json(value)[1:-1]


def _email(traits: Any) -> Optional[str]:
    """An email address in traits, which becomes the ``email`` identity."""
    email = traits.get("email") if isinstance(traits, dict) else None
    return email if isinstance(email, str) and "@" in email else None


def _screen_name(kind: str, msg: Snapshot) -> str:
    parts = [str(msg[field]) for field in ("category", "name") if msg.get(field) not in (None, "")]
    return " ".join(parts) or ("Loaded a Page" if kind == "page" else "Loaded a Screen")


def unix_ms(iso: str) -> int:
    """The client's ISO timestamp (always with an offset) as integer milliseconds since the epoch."""
    return round(dt.datetime.fromisoformat(iso).timestamp() * 1000)
