"""The rules for a ``commerce_event``'s data: actions, products, impressions and the cart.

Definitions and field kinds copy the schema's ``CommerceEvent``, ``ProductAction``,
``Product``, ``ProductImpression``, ``PromotionAction``, ``Promotion`` and
``ShoppingCart``. None of them declares ``type: object``, so a non-object in
their place passes the schema (and is reported here as a warning). mParticle's
JSON reference adds one rule the schema lacks: a commerce event is exactly one
of product-based, promotion-based or impression-based.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from . import kinds
from .kinds import Check, Record, Report, enum, integer, number, scalar, string

PRODUCT: Final = Record(
    "Product",
    {
        "id": string,
        "name": string,
        "brand": scalar,
        "category": scalar,
        "variant": scalar,
        "position": integer,
        "price": number,
        "quantity": number,
        "coupon_code": scalar,
        "added_to_cart_time_ms": integer,
        "total_product_amount": number,
        # Unlike event attributes, product attributes must be strings.
        "custom_attributes": kinds.map_of(string),
    },
)

PRODUCT_ACTIONS: Final = (
    "add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click", "view_detail",
    "purchase", "refund", "add_to_wishlist", "remove_from_wish_list",
)

PRODUCT_ACTION: Final = Record(
    "ProductAction",
    {
        "action": enum(PRODUCT_ACTIONS),
        "checkout_step": integer,
        "checkout_options": scalar,
        "product_action_list": scalar,
        "product_list_source": scalar,
        "transaction_id": string,
        "affiliation": scalar,
        "total_amount": number,
        "tax_amount": number,
        "shipping_amount": number,
        "coupon_code": scalar,
        "products": kinds.array_of(PRODUCT),
    },
    required=("action",),
    closed=True,
)

PROMOTION_ACTION: Final = Record(
    "PromotionAction",
    {
        "action": enum(("view", "click")),
        "promotions": kinds.array_of(
            Record(
                "Promotion",
                {"id": string, "name": string, "creative": scalar, "position": scalar},
                closed=True,
            ),
            nullable=False,
        ),
    },
    required=("action",),
    closed=True,
)

PRODUCT_IMPRESSION: Final = Record(
    "ProductImpression",
    {"product_impression_list": string, "products": kinds.array_of(PRODUCT)},
    required=("product_impression_list", "products"),
    closed=True,
)

SHOPPING_CART: Final = Record(
    "ShoppingCart",
    {"products": kinds.array_of(PRODUCT, nullable=False)},
    required=("products",),
    closed=True,
)

#: ``custom_event_type`` on a commerce event: the custom types plus the commerce ones.
COMMERCE_EVENT_TYPES: Final = (
    "navigation", "location", "search", "transaction", "user_content", "user_preference", "social",
    "other", "media", "add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click",
    "view_detail", "purchase", "refund", "promotion_view", "promotion_click", "add_to_wishlist",
    "remove_from_wishlist", "impression", "attribution", "consent_granted", "consent_denied",
)

#: The commerce-specific fields of ``CommerceEvent`` data (names are added by :mod:`.events`).
COMMERCE_FIELDS: Final[Mapping[str, Check]] = {
    "product_action": PRODUCT_ACTION,
    "promotion_action": PROMOTION_ACTION,
    "product_impressions": kinds.array_of(PRODUCT_IMPRESSION),
    "shopping_cart": SHOPPING_CART,
    "currency_code": scalar,
    "is_non_interactive": kinds.boolean,
    "custom_event_type": enum(COMMERCE_EVENT_TYPES),
}

_VARIANTS: Final = ("product_action", "promotion_action", "product_impressions")


def check_commerce_variant(data: dict[str, Any], path: str, report: Report) -> None:
    """mParticle's JSON reference: exactly one of the three variants; the schema does not check it."""
    present = [name for name in _VARIANTS if data.get(name) is not None]
    if len(present) == 1:
        return
    found = ", ".join(present) if present else "none"
    report.warning(
        path,
        "docs.commerce_variant",
        f"a commerce event must have exactly one of {', '.join(_VARIANTS)} (found: {found}); "
        "mParticle's JSON reference calls the others disallowed",
    )
