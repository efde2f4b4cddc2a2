"""Write ``docs/mapping.md``: how each Segment call becomes mParticle data, with real examples.

Usage::

    python docs/build_mapping.py          # rewrite docs/mapping.md
    python docs/build_mapping.py --check  # exit 1 if docs/mapping.md is stale

Every "after" in the document is produced by the library itself, without HTTP:
the example's Python code is evaluated against a ``Client(send=False)`` (which
returns the Segment message of each call), the message is snapshotted as the
client does (``snapshot.take``), mapped with
``Mapper`` and grouped with ``batching.build_batches``, exactly as
``Delivery.send`` wires them. Only the random ``source_request_id`` is replaced
by a placeholder. Timestamps and message ids are fixed in the example calls so
the output is stable. Tables of names (spec events, reserved traits, limits,
identity types) are read from the library's constants.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout: document this checkout's library

from mparticle_analytics import Client  # noqa: E402
from mparticle_analytics.batching import (  # noqa: E402
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    build_batches,
)
from mparticle_analytics.commerce import (  # noqa: E402
    CUSTOM_EVENT_TYPES as SPEC_CUSTOM_EVENT_TYPES,
)
from mparticle_analytics.commerce import (  # noqa: E402
    IMPRESSIONS,
    PRODUCT_ACTIONS,
    PROMOTIONS,
    SINGLE_PRODUCT,
)
from mparticle_analytics.mapping import (  # noqa: E402
    CUSTOM_EVENT_TYPES,
    IDENTITY_TYPES,
    RESERVED_TRAITS,
    Mapper,
)
from mparticle_analytics.snapshot import take  # noqa: E402
from mparticle_analytics.values import (  # noqa: E402
    MAX_ATTRIBUTES,
    MAX_LIST_ENTRIES,
    MAX_LIST_ENTRY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    Attributes,
)

OUTPUT = Path(__file__).resolve().with_name("mapping.md")
STALE = "docs/mapping.md is stale: run python docs/build_mapping.py"
REQUEST_ID = "<uuid4>"
#: The fixed time of every example call (``ts`` in the examples).
TIMESTAMP = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
SETUP = """\
from datetime import datetime, timezone
import mparticle_analytics as analytics

analytics.write_key = "us1-..."   # your mParticle API key
analytics.secret = "..."          # and secret
ts = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)  # fixed only to keep this page stable"""


class Example(NamedTuple):
    """A Segment call (Python statements, each one call) and what the library makes of it."""

    title: str
    code: str
    note: str = ""


class LossyExample(RuntimeError):
    """An example lost data while mapping: the page must not show lossy examples."""


# -- running the examples through the library -----------------------------------------------------


def segment_messages(code: str) -> list[dict[str, Any]]:
    """Evaluate each statement of ``code`` against a ``send=False`` client; return its messages."""
    client = Client("us1-docs-example", send=False)
    namespace: dict[str, Any] = {"analytics": client, "ts": TIMESTAMP}
    messages: list[dict[str, Any]] = []
    for statement in ast.parse(code).body:
        if not isinstance(statement, ast.Expr):
            raise ValueError(f"examples are calls, one per statement: {ast.unparse(statement)}")
        result = eval(compile(ast.Expression(statement.value), "<example>", "eval"), namespace)
        ok, message = result
        if not ok:
            raise ValueError(f"the client refused {ast.unparse(statement)}")
        messages.append(message)
    return messages


def mparticle_batches(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batches the library sends for these messages, as ``Delivery.send`` builds them."""
    losses: list[str] = []

    def report(reason: str, name: str) -> None:
        losses.append(f"{reason}: {name}")

    mapper = Mapper(anonymous_identity="other", ecommerce=True, report=report)
    mapped = [mapper.map(take(message)[0]) for message in messages]
    batches, rejected = build_batches(
        mapped, environment="production", limit_attributes=Attributes(report).limit_user
    )
    if rejected or losses:
        raise LossyExample(f"rejected: {rejected}, losses: {losses}")
    result: list[dict[str, Any]] = []
    for batch in batches:
        body: dict[str, Any] = json.loads(batch.body)
        body["source_request_id"] = REQUEST_ID
        result.append(body)
    return result


def render_example(example: Example) -> str:
    batches = mparticle_batches(segment_messages(example.code))
    after: Any = batches[0] if len(batches) == 1 else batches
    label = "mParticle batch" if len(batches) == 1 else f"mParticle request body ({len(batches)} batches)"
    parts = [f"#### Example: {example.title}", ""]
    if example.note:
        parts += [example.note, ""]
    parts += [
        "Segment call:", "", "```python", example.code, "```", "",
        f"{label}:", "", "```json", json.dumps(after, indent=2, ensure_ascii=False), "```", "",
    ]
    return "\n".join(parts)


# -- the examples ---------------------------------------------------------------------------------

BATCHING = Example(
    "several calls, one batch per user",
    """\
analytics.identify("user-1", {"plan": "pro", "logins": 5}, timestamp=ts, message_id="msg-1")
analytics.track("user-1", "Signed Up", {"source": "ad"}, timestamp=ts, message_id="msg-2")
analytics.track("user-2", "Signed Up", {"source": "email"}, timestamp=ts, message_id="msg-3")
analytics.identify("user-1", {"plan": "enterprise"}, timestamp=ts, message_id="msg-4")
analytics.page("user-1", "Docs", "Pricing", timestamp=ts, message_id="msg-5")""",
    "The two users' calls were queued together; each user gets one batch, with that user's "
    "events in call order and the traits merged (the later `plan` wins).",
)

IDENTIFY = Example(
    "identify",
    """\
analytics.identify("97980cfea0067", {
    "firstName": "Peter",
    "lastName": "Gibbons",
    "email": "peter@example.com",
    "plan": "premium",
    "logins": 5,
    "address": {"street": "6th St", "city": "San Francisco", "state": "CA",
                "postalCode": "94103", "country": "USA"},
    "trial_coupon": None,
}, anonymous_id="507f191e810c19729de860ea", context={"ip": "8.8.8.8"},
   timestamp=ts, message_id="msg-identify")""",
    "No event: identities and user attributes only. `email` becomes an identity, reserved traits "
    "get mParticle's `$` names, and the `None` trait is deleted.",
)

TRACK = Example(
    "track",
    """\
analytics.track("AiUGstSDIg", "Course Clicked", {
    "title": "Intro to Analytics",
    "course": {"id": 42, "level": "beginner"},
    "tags": ["analytics", "intro"],
}, context={"ip": "108.0.78.21", "userAgent": "Mozilla/5.0 (Macintosh)",
            "location": {"latitude": 40.7, "longitude": -74.0}},
   timestamp=ts, message_id="msg-track")""",
)

PAGE = Example(
    "page",
    """\
analytics.page("97980cfea0067", "Docs", "Home", {
    "title": "Welcome | Initech",
    "url": "http://www.example.com",
}, timestamp=ts, message_id="msg-page")""",
)

SCREEN = Example(
    "screen (with a mobile context)",
    """\
analytics.screen("97980cfea0067", name="Home", properties={"variation": "blue signup button"},
    context={
        "app": {"name": "InitechGlobal", "version": "545", "build": "3.0.1.545",
                "namespace": "com.production.segment"},
        "device": {"type": "ios", "id": "B5372DB0-C21E-11E4-8DFC-AA07A5B093DB",
                   "advertisingId": "7A3CBEA0-BDF5-11E4-8DFC-AA07A5B093DB",
                   "adTrackingEnabled": True, "manufacturer": "Apple", "model": "iPhone7,2"},
        "os": {"name": "iOS", "version": "17.4"},
        "locale": "en-US",
        "screen": {"width": 320, "height": 568, "density": 2},
        "network": {"carrier": "T-Mobile US"},
    }, anonymous_id="3a12eab0-bca7-11e4-8dfc-aa07a5b093db", timestamp=ts, message_id="msg-screen")""",
)

GROUP = Example(
    "group",
    """\
analytics.group("97980cfea0067", "0e8c78ea9d97a7b8185e8632", {
    "name": "Initech",
    "industry": "Technology",
    "employees": 329,
}, timestamp=ts, message_id="msg-group")""",
)

ALIAS = Example(
    "alias",
    """\
analytics.alias("507f191e810c19729de860ea", "97980cfea0067", timestamp=ts, message_id="msg-alias")""",
    "No event: one batch carrying both ids, so mParticle's identity resolution links them.",
)

PRODUCT_ACTION = Example(
    "product action (Product Added)",
    """\
analytics.track("user-1", "Product Added", {
    "cart_id": "skdjsidjsdkdj29j",
    "product_id": "507f1f77bcf86cd799439011",
    "sku": "G-32",
    "category": "Games",
    "name": "Monopoly: 3rd Edition",
    "brand": "Hasbro",
    "variant": "200 pieces",
    "price": 18.99,
    "quantity": 1,
    "coupon": "MAYDEALS",
    "position": 3,
}, timestamp=ts, message_id="msg-product-added")""",
    "A single-product event: the product's fields sit at the top of `properties`.",
)

CHECKOUT = Example(
    "checkout (Checkout Step Completed)",
    """\
analytics.track("user-1", "Checkout Step Completed", {
    "checkout_id": "50314b8e9bcf000000000000",
    "step": 2,
    "shipping_method": "Fedex",
    "payment_method": "Visa",
}, timestamp=ts, message_id="msg-checkout")""",
)

PURCHASE = Example(
    "purchase with products (Order Completed)",
    """\
analytics.track("user-1", "Order Completed", {
    "checkout_id": "fksdjfsdjfisjf9sdfjsd9f",
    "order_id": "50314b8e9bcf000000000000",
    "affiliation": "Google Store",
    "total": 27.50,
    "revenue": 22.50,
    "shipping": 3,
    "tax": 2,
    "discount": 2.50,
    "coupon": "hasbros",
    "currency": "USD",
    "products": [
        {"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "name": "Monopoly: 3rd Edition",
         "price": 19, "quantity": 1, "category": "Games"},
        {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "name": "Uno Card Game",
         "price": 3, "quantity": 2, "category": "Games"},
    ],
}, timestamp=ts, message_id="msg-order")""",
)

LIST_VIEWED = Example(
    "impressions (Product List Viewed)",
    """\
analytics.track("user-1", "Product List Viewed", {
    "list_id": "hot_deals_1",
    "category": "Deals",
    "products": [
        {"product_id": "507f1f77bcf86cd799439011", "name": "Monopoly: 3rd Edition", "price": 19,
         "position": 1},
        {"product_id": "505bd76785ebb509fc183733", "name": "Uno Card Game", "price": 3, "position": 2},
    ],
}, timestamp=ts, message_id="msg-list")""",
)

PROMOTION = Example(
    "promotion (Promotion Clicked)",
    """\
analytics.track("user-1", "Promotion Clicked", {
    "promotion_id": "promo_1",
    "creative": "top_banner_2",
    "name": "75% store-wide shoe sale",
    "position": "home_banner_top",
}, timestamp=ts, message_id="msg-promotion")""",
)

SEARCH = Example(
    "spec event that stays a custom event (Products Searched)",
    """\
analytics.track("user-1", "Products Searched", {"query": "blue roses"},
                timestamp=ts, message_id="msg-search")""",
)

OVERRIDES = Example(
    "per-call mParticle options",
    """\
analytics.track("user-1", "Video Played", {"title": "Intro"}, integrations={"mParticle": {
    "custom_event_type": "media",
    "custom_flags": {"Google.Category": "Video"},
    "user_identities": {"mobile_number": "+15555550100"},
    "mpid": 8675309,
}}, timestamp=ts, message_id="msg-overrides")""",
)

#: Every example on the page, in page order.
EXAMPLES = (BATCHING, IDENTIFY, TRACK, PAGE, SCREEN, GROUP, ALIAS, PRODUCT_ACTION, CHECKOUT, PURCHASE,
            LIST_VIEWED, PROMOTION, SEARCH, OVERRIDES)


# -- tables read from the library -----------------------------------------------------------------


def code(text: object) -> str:
    return f"`{text}`"


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Keys grouped by value, both in first-seen order."""
    groups: dict[str, list[str]] = {}
    for key, value in pairs:
        groups.setdefault(value, []).append(key)
    return groups


#: Extra rules for some spec events, beyond their product action.
CHECKOUT_NOTES = {
    "Checkout Started": "`checkout_step` = `step`, else 1",
    "Checkout Step Viewed": "`checkout_step` = `step`",
    "Checkout Step Completed": "`checkout_step` = `step`; `checkout_options` = `shipping_method`, "
                               "`payment_method`",
    "Payment Info Entered": "`checkout_step` = `step`; `checkout_options` = `shipping_method`, "
                            "`payment_method`",
}


def ecommerce_table() -> str:
    rows: dict[tuple[str, str], list[str]] = {}
    for event, action in PRODUCT_ACTIONS.items():
        outcome = f"`product_action.action` = `{action}`"
        note = CHECKOUT_NOTES.get(event, "")
        rows.setdefault((outcome, note), []).append(event)
    impressions = "`product_impressions`: one list (see below)"
    rows[(impressions, "")] = sorted(IMPRESSIONS)
    for event, action in PROMOTIONS.items():
        rows.setdefault((f"`promotion_action.action` = `{action}`", ""), []).append(event)
    for kind, names in grouped(SPEC_CUSTOM_EVENT_TYPES.items()).items():
        rows[(f"`custom_event`, `custom_event_type` = `{kind}`", "")] = names
    return table(
        ["Segment event", "mParticle event", "also"],
        ([", ".join(events), outcome, note] for (outcome, note), events in rows.items()),
    )


def reserved_traits_table() -> str:
    return table(
        ["Segment trait", "mParticle user attribute"],
        ([" / ".join(code(n) for n in names), code(target)]
         for target, names in grouped(RESERVED_TRAITS.items()).items()),
    )


def sorted_codes(names: Iterable[str]) -> str:
    return ", ".join(code(name) for name in sorted(names))


# -- the page -------------------------------------------------------------------------------------


def render() -> str:
    """The whole of ``docs/mapping.md``."""
    parts: list[str] = [
        f"""\
<!-- Generated by docs/build_mapping.py from the library's own code. Do not edit by hand:
     run `python docs/build_mapping.py` (CI runs it with --check). -->

# From Segment calls to mParticle data

`mparticle_analytics` keeps Segment's Python API (`analytics.identify`, `track`, `page`,
`screen`, `group`, `alias`, `flush`, ...) and delivers every call to mParticle's
[Events API v2](https://docs.mparticle.com/developers/apis/http/) as batches. This page is the
reference for what each call becomes in mParticle, for people migrating from Segment.

Every "mParticle batch" below was produced by this library from the Segment call above it;
only `source_request_id` (a fresh uuid4 per batch) is shown as `"{REQUEST_ID}"`. All examples
assume this setup (the fixed `timestamp` and `message_id` only keep the page stable; leave
them out in your code):

```python
{SETUP}
```

Contents: [1. Batches](#1-one-batch-per-user) · [2. Identities](#2-identities) ·
[3. Calls](#3-calls) · [4. E-commerce](#4-e-commerce-spec-events) ·
[5. Attribute values](#5-attribute-values) · [6. Context and integrations](#6-context-and-integrations) ·
[Options](#client-options-that-change-the-mapping)

## 1. One batch per user

mParticle wants each batch to describe exactly one user. Calls waiting in the queue are
grouped by the user-level facts they carry: `user_identities`, `mpid`, `ip`, `device_info` and
`application_info`. Calls whose facts are equal share a batch: their events keep call order,
and their user attributes merge (a later value wins, a later `None` deletes the attribute).
A batch with no events (identify, group, alias) is still sent when it carries identities or
attributes.
""",
        table(["batch field", "value"], [
            ["`environment`", 'the client option `environment`: `"production"` (default) or `"development"`'],
            ["`source_request_id`", "a fresh uuid4 per batch, unchanged on every retry of that batch "
                                    "(mParticle de-duplicates on it)"],
            ["`user_identities`, `mpid`", "[§2](#2-identities)"],
            ["`user_attributes`, `deleted_user_attributes`",
             "from `identify` and `group` traits ([§5](#5-attribute-values))"],
            ["`ip`, `device_info`, `application_info`", "from `context` ([§6](#6-context-and-integrations))"],
            ["`events`", "one per `track`, `page` and `screen` call ([§3](#3-calls))"],
        ]),
        f"""\
Never set: `schema_version`, the batch-level `timestamp_unixtime_ms`, `api_key`, `source_info`,
`batch_id`.

Size limits are mParticle's: a batch stays within {MAX_BATCH_BYTES // 1024} KB (a user with more
events gets several batches), a request under {MAX_REQUEST_BYTES // 1024} KB and at most
{MAX_BATCHES_PER_REQUEST} batches. A single event too large for any batch is not sent; it is
reported to `on_error` with a `DeliveryError` whose `reason` is `"oversize"`.
""",
        render_example(BATCHING),
        "## 2. Identities\n",
        table(["Segment", "mParticle"], [
            ["`userId` (stringified)", "`user_identities.customer_id`"],
            ["`anonymousId`", "`user_identities.other`; the client option `anonymous_id_identity` picks "
                              "another type (`other_id_2` ... `other_id_10`) or `None` to leave it out"],
            ["`email` in `identify` traits or in `context.traits` (a string with `@`)",
             "`user_identities.email` (and not also a user attribute)"],
            ['`integrations={"mParticle": {"user_identities": {...}}}`',
             "merged into `user_identities`, for identity types Segment has no field for"],
            ['`integrations={"mParticle": {"mpid": 123}}` (an integer)', "batch `mpid`"],
        ]),
        f"""\
Identity types mParticle accepts: {sorted_codes(IDENTITY_TYPES)}.

As in Segment, a call with neither `user_id` nor `anonymous_id` raises `AssertionError`
(`alias` takes `previous_id` and `user_id` instead).

## 3. Calls
""",
        table(["Segment call", "mParticle"], [
            ["`identify(user_id, traits)`",
             "no event; identities, and `user_attributes` from the traits ([§5](#5-attribute-values))"],
            ["`track(user_id, event, properties)`",
             '`custom_event`: `event_name` = `event`, `custom_event_type` = `"other"`, '
             "`custom_attributes` = `properties`; e-commerce spec events become `commerce_event` "
             "([§4](#4-e-commerce-spec-events))"],
            ["`page(user_id, category, name, properties)`",
             '`screen_view`: `screen_name` = `"{category} {name}"` when both are given, else whichever '
             'is, else `"Loaded a Page"`; `custom_attributes` = `properties` plus `category`'],
            ["`screen(user_id, category, name, properties)`",
             '`screen_view`, same rule; fallback `"Loaded a Screen"`'],
            ["`group(user_id, group_id, traits)`",
             "no event; `user_attributes` `group_id` (a string) and each trait as `group.<trait>`"],
            ["`alias(previous_id, user_id)`",
             "no event; one batch with `customer_id` = `user_id` and `previous_id` under the "
             "anonymous identity type (`other`)"],
        ]),
        "Every event's `data` also carries:\n",
        table(["Segment", "`data` field"], [
            ["`timestamp` (default: now; naive datetimes are read as Segment does)",
             "`timestamp_unixtime_ms`, integer milliseconds since the epoch"],
            ["`messageId` (default: a uuid4)", "`source_message_id`"],
            ["`context.location.latitude` / `longitude` (both numbers)", "`location.latitude` / `longitude`"],
        ]),
        *(render_example(example) for example in (IDENTIFY, TRACK, PAGE, SCREEN, GROUP, ALIAS)),
        """\
## 4. E-commerce spec events

mParticle's revenue reports and commerce audiences read commerce events, so `track` calls
named as in Segment's [e-commerce spec v2](https://segment.com/docs/connections/spec/ecommerce/v2/)
become `commerce_event`s (names are matched exactly, case included). `Client(ecommerce=False)`
turns this off: they stay `custom_event`s with `custom_event_type` `"other"`.
""",
        ecommerce_table(),
        "Product action properties (whatever is not listed stays in `data.custom_attributes`):\n",
        table(["Segment property", "mParticle"], [
            ["`order_id`", "`product_action.transaction_id` (a string)"],
            ["`total`, else `revenue`", "`product_action.total_amount`"],
            ["`tax`", "`product_action.tax_amount`"],
            ["`shipping`", "`product_action.shipping_amount`"],
            ["`coupon`", "`product_action.coupon_code`"],
            ["`affiliation`", "`product_action.affiliation`"],
            ["`currency`", "`data.currency_code`"],
            ["`products`", "`product_action.products`; for single-product events "
                           f"({sorted_codes(SINGLE_PRODUCT)}) the product fields at the top "
                           "of `properties`"],
        ]),
        """\
Amounts stay numbers; strings that read as numbers (`"27.50"`) are converted, other strings stay
in `custom_attributes` instead.

Each product:
""",
        table(["Segment product field", "mParticle product field"], [
            ["`product_id`, else `sku`", "`id` (a string)"],
            ["`name`, `brand`, `category`, `variant`", "same names (strings)"],
            ["`price`, `quantity`, `position`", "same names (numbers; `position` an integer)"],
            ["`coupon`", "`coupon_code`"],
            ["anything else (`sku` when there is a `product_id`, `url`, `image_url`, ...)",
             "the product's `custom_attributes`, every value a string"],
        ]),
        f"""\
Impressions ({sorted_codes(IMPRESSIONS)}): one `product_impressions` entry whose
`product_impression_list` is `list_id`, else `category`, else the event name, with the products.
Promotions ({", ".join(code(name) for name in PROMOTIONS)}): `promotion_action` with one
promotion `{{id: promotion_id, name, creative, position}}`.
""",
        *(render_example(example)
          for example in (PRODUCT_ACTION, CHECKOUT, PURCHASE, LIST_VIEWED, PROMOTION, SEARCH)),
        """\
## 5. Attribute values

mParticle's attribute maps take scalars (string, number, boolean, null); user attributes also
take lists of scalars. Properties and traits are converted on the way, for event
`custom_attributes`, product `custom_attributes` and `user_attributes` alike:
""",
        table(["Segment value", "mParticle value"], [
            ['nested dict `{"address": {"city": "X"}}`', 'flattened with `.`: `"address.city": "X"`'],
            ["list of scalars", f"in `user_attributes`: a list (at most {MAX_LIST_ENTRIES} entries of at "
                                f"most {MAX_LIST_ENTRY_LENGTH} characters); in event attributes: a JSON "
                                "string"],
            ["list holding dicts", "a JSON string"],
            ["`datetime` / `date`", "ISO-8601 string (datetimes in UTC, with milliseconds)"],
            ["`Decimal`", "number (a string if not finite)"],
            ["`Enum` / `UUID`", "its value / its string"],
            ["`bytes`", "UTF-8 text (not UTF-8: left out and counted)"],
            ["`set` / `tuple`", "list"],
            ["NaN, ±infinity", "`null`"],
            ["any other object", "left out (never `str()`), counted and logged"],
        ]),
        f"""\
Limits (mParticle would truncate or reject beyond them): attribute names over
{MAX_NAME_LENGTH} characters and string values over {MAX_VALUE_LENGTH} characters are
truncated; beyond {MAX_ATTRIBUTES} attributes on an event (or a product), or {MAX_ATTRIBUTES} user
attributes in a batch, the rest are left out. The event itself is still sent. Each loss is
counted in `client.stats()["values"]` by kind and logged as a warning at most once a minute per
kind.

Traits that are mParticle reserved user attributes are renamed (nested `address` traits after
flattening):
""",
        reserved_traits_table(),
        """\
A trait set to `None` in `identify` removes it, as in Segment: it is listed in the batch's
`deleted_user_attributes`.

## 6. Context and integrations
""",
        table(["Segment `context`", "mParticle"], [
            ["`ip` (a valid IPv4/IPv6 address; otherwise left out and counted)", "batch `ip`"],
            ["`userAgent`", "`device_info.http_header_user_agent`"],
            ["`device.advertisingId` (a UUID) with `device.type` `ios` / `android`",
             "`device_info.ios_advertising_id` / `android_advertising_id`"],
            ["`device.id` (ios: a UUID)", "`device_info.ios_idfv` (ios) / `android_uuid` (android)"],
            ["`device.adTrackingEnabled`", "`device_info.limit_ad_tracking` = its negation"],
            ["`device.manufacturer` / `model` / `name` / `token`",
             "`device_info.device_manufacturer` / `device_model` / `device` / `push_token`"],
            ["`os.name` (`ios`, `android`, any case) / `os.version`",
             "`device_info.platform` (`iOS` / `Android`; other names: unset) / `os_version`"],
            ['`locale` `"en-US"`', "`device_info.locale_language` `en`, `locale_country` `US`"],
            ["`screen.width` / `height` / `density`",
             "`device_info.screen_width` / `screen_height` / `screen_dpi` (integers)"],
            ["`network.carrier`", "`device_info.network_carrier`"],
            ["`app.name` / `version` / `build` / `namespace`",
             "`application_info.application_name` / `application_version` / "
             "`application_build_number` / `package`"],
            ["`library`, `timezone`, `campaign`, `page`, `referrer`, `groupId`", "not sent"],
        ]),
        """\
`integrations` keeps its Segment meaning, with keys matched case-insensitively (`mParticle`,
`mparticle`):

- `integrations={"mParticle": False}`, or `{"All": False}` without `"mParticle": True` (or an
  options dict): the call is not sent to mParticle (it still returns `(True, msg)`). Other
  destinations' keys are ignored.
- `integrations={"mParticle": {...}}` carries per-call mParticle options:
""",
        table(["option", "effect"], [
            ["`custom_event_type`", "the `track` event's `custom_event_type`, one of "
                                    f"{sorted_codes(CUSTOM_EVENT_TYPES)}"],
            ["`custom_flags`", "the event's `custom_flags` (string keys and string values)"],
            ["`user_identities`", "merged into the batch's `user_identities` ([§2](#2-identities))"],
            ["`mpid`", "the batch's `mpid` (an integer)"],
        ]),
        """\
Unknown option keys are ignored. An invalid value is left out and counted under
`client.stats()["values"]["invalid_override"]`; the call is still delivered.
""",
        render_example(OVERRIDES),
        "## Client options that change the mapping\n",
        table(["`Client(...)` keyword / module setting", "effect"], [
            ["`environment`",
             '`"production"` (default) or `"development"`; anything else raises `AssertionError`'],
            ["`anonymous_id_identity`",
             'identity type for `anonymousId` and for alias\'s `previous_id`: `"other"` (default), '
             '`"other_id_2"` ... `"other_id_10"`, or `None`'],
            ["`ecommerce`",
             "`True` (default): e-commerce spec events become commerce events "
             "([§4](#4-e-commerce-spec-events))"],
            ["`historical`",
             "`True`: send to `/v2/bulkevents/historical` (backfills). mParticle ignores events under 72 "
             "hours old and batches without events there, so the client reports them to `on_error` "
             'instead (a `DeliveryError` whose `reason` is `"too_recent"` or `"historical_without_events"`, '
             'also counted in `client.stats()["dropped"]`)'],
        ]),
    ]
    return "\n".join(parts)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/mapping.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
        if current != text:
            print(STALE, file=sys.stderr)
            return 1
        return 0
    with OUTPUT.open("w", encoding="utf-8", newline="\n") as out:
        out.write(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
