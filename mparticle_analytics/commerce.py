"""Segment's e-commerce spec v2 events as mParticle commerce events (mapping.md §4). Pure.

Revenue reports and commerce audiences in mParticle read ``commerce_event``
data, not custom events, so spec events are matched by their exact Segment
name and their properties moved into product actions, impressions or
promotions. Whatever has no commerce field stays in ``custom_attributes``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .values import Attributes

PRODUCT_ACTIONS = {
    "Product Clicked": "click",
    "Product Viewed": "view_detail",
    "Product Added": "add_to_cart",
    "Wishlist Product Added to Cart": "add_to_cart",
    "Product Removed": "remove_from_cart",
    "Checkout Started": "checkout",
    "Checkout Step Viewed": "checkout",
    "Checkout Step Completed": "checkout_option",
    "Payment Info Entered": "checkout_option",
    "Order Completed": "purchase",
    "Order Refunded": "refund",
    "Product Added to Wishlist": "add_to_wishlist",
    "Product Removed from Wishlist": "remove_from_wish_list",  # the only spelling the enum has
}
#: Events about one product, whose fields sit at the top of ``properties``.
SINGLE_PRODUCT = frozenset({
    "Product Clicked", "Product Viewed", "Product Added", "Wishlist Product Added to Cart",
    "Product Removed", "Product Added to Wishlist", "Product Removed from Wishlist",
})
IMPRESSIONS = frozenset({"Product List Viewed", "Product List Filtered"})
PROMOTIONS = {"Promotion Viewed": "view", "Promotion Clicked": "click"}
#: Spec events that stay custom events, with a specific ``custom_event_type``.
CUSTOM_EVENT_TYPES = {
    "Products Searched": "search",
    **dict.fromkeys(
        ["Cart Viewed", "Order Updated", "Order Cancelled", "Coupon Entered", "Coupon Applied",
         "Coupon Denied", "Coupon Removed"],
        "transaction",
    ),
    "Product Shared": "social",
    "Cart Shared": "social",
    "Product Reviewed": "user_content",
}

#: Segment product fields; for single-product events these are read from the top of ``properties``.
PRODUCT_FIELDS = frozenset({
    "product_id", "sku", "name", "brand", "category", "variant", "price", "quantity", "position",
    "coupon", "url", "image_url",
})
_ACTION_AMOUNTS = {"tax": "tax_amount", "shipping": "shipping_amount"}
_ACTION_STRINGS = {"order_id": "transaction_id", "coupon": "coupon_code", "affiliation": "affiliation"}
_PRODUCT_STRINGS = ("brand", "category", "variant")


#: The spec events that become commerce events.
EVENTS = frozenset(PRODUCT_ACTIONS) | IMPRESSIONS | frozenset(PROMOTIONS)


def commerce_data(event: str, properties: dict[str, Any], attributes: Attributes) -> dict[str, Any]:
    """The ``data`` fields of the commerce event for one of ``EVENTS``, ``custom_attributes`` last."""
    if event in PRODUCT_ACTIONS:
        return _product_action(event, properties, attributes)
    if event in IMPRESSIONS:
        rest = dict(properties)
        products = _products(rest.pop("products", None), attributes)
        list_name = rest.pop("list_id", None) or properties.get("category") or event
        impression = {"product_impression_list": str(list_name), "products": products}
        return {"product_impressions": [impression], "custom_attributes": attributes.event(rest)}
    rest = dict(properties)
    promotion = {
        name: str(rest.pop(field))
        for field, name in (("promotion_id", "id"), ("name", "name"), ("creative", "creative"),
                            ("position", "position"))
        if rest.get(field) is not None
    }
    action = {"action": PROMOTIONS[event], "promotions": [promotion]}
    return {"promotion_action": action, "custom_attributes": attributes.event(rest)}


def _product_action(event: str, properties: dict[str, Any], attributes: Attributes) -> dict[str, Any]:
    rest = dict(properties)
    action: dict[str, Any] = {"action": PRODUCT_ACTIONS[event]}
    if event in SINGLE_PRODUCT and not isinstance(rest.get("products"), list):
        fields = {name: value for name, value in rest.items() if name in PRODUCT_FIELDS}
        products = [_product(fields, attributes)] if fields else []
        for name in fields:
            if name != "coupon":  # the coupon also applies to the action
                del rest[name]
    else:
        products = _products(rest.pop("products", None), attributes)
    total_key = "total" if "total" in rest else "revenue"
    amounts = {total_key: "total_amount", **_ACTION_AMOUNTS}
    for field, name in amounts.items():
        value = _as_number(rest.get(field))
        if value is not None:
            action[name] = value
            del rest[field]
    for field, name in _ACTION_STRINGS.items():
        if rest.get(field) is not None:
            action[name] = str(rest.pop(field))
    if action["action"] in ("checkout", "checkout_option"):
        step = _as_number(rest.get("step"))
        if step is not None:
            action["checkout_step"] = int(step)
            del rest["step"]
        elif event == "Checkout Started":
            action["checkout_step"] = 1
    if action["action"] == "checkout_option":
        options = [str(rest.pop(f)) for f in ("shipping_method", "payment_method") if rest.get(f) is not None]
        if options:
            action["checkout_options"] = ", ".join(options)
    if products:
        action["products"] = products
    data: dict[str, Any] = {"product_action": action}
    if rest.get("currency") is not None:
        data["currency_code"] = str(rest.pop("currency"))
    data["custom_attributes"] = attributes.event(rest)
    return data


def _products(value: Any, attributes: Attributes) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [_product(item, attributes) for item in value if isinstance(item, dict)]


def _product(fields: dict[str, Any], attributes: Attributes) -> dict[str, Any]:
    """A Segment product as an mParticle product; unmapped fields become string attributes."""
    rest = dict(fields)
    product: dict[str, Any] = {}
    identifier = rest.pop("product_id", None)
    if identifier is None:
        identifier = rest.pop("sku", None)
    if identifier is not None:
        product["id"] = str(identifier)
    if rest.get("name") is not None:
        product["name"] = str(rest.pop("name"))
    for name in _PRODUCT_STRINGS:
        if rest.get(name) is not None:
            product[name] = str(rest.pop(name))
    for field in ("price", "quantity", "position"):
        value = _as_number(rest.get(field))
        if value is not None:
            product[field] = int(value) if field == "position" else value
            del rest[field]
    if rest.get("coupon") is not None:
        product["coupon_code"] = str(rest.pop("coupon"))
    custom = attributes.strings(rest)
    if custom:
        product["custom_attributes"] = custom
    return product


def _as_number(value: Any) -> Optional[float]:
    """A number, or a string that reads as one; None for anything else (it stays an attribute)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        return int(number) if number.is_integer() and "." not in value else number
    return None
