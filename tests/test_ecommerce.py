"""Segment's e-commerce spec events as mParticle commerce events (mapping.md §4), over real HTTP.

Every call goes through a real client to the local endpoint (``server``), so every
batch asserted on here has also passed mParticle's JSON Schema at teardown. Tests
synchronise on ``client.flush(timeout)`` returning True; nothing sleeps.
Also covered: the historical endpoint and the per-call ``integrations["mParticle"]``
overrides (mapping.md §6).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import KEY, SECRET, events, received

from mparticle_analytics import Client, DeliveryError
from mparticle_analytics.devserver import DevServer

SPEC_EXAMPLES = json.loads(
    (Path(__file__).resolve().parents[2] / "shared" / "segment" / "spec-examples.json").read_text()
)
ECOMMERCE_EXAMPLES: dict[str, dict[str, Any]] = SPEC_EXAMPLES["ecommerce"]

USER = "user-1"
#: Events about one product: its fields sit at the top of ``properties`` (Segment's spec v2).
SINGLE_PRODUCT = {
    "Product Clicked", "Product Viewed", "Product Added", "Wishlist Product Added to Cart",
    "Product Removed", "Product Added to Wishlist", "Product Removed from Wishlist",
}

#: mapping.md §4's table, one row per Segment event: (kind, value).
#: kind: "action" (product_action.action), "impressions", "promotion" (promotion_action.action)
#: or "custom" (a custom_event with that custom_event_type).
TABLE: dict[str, tuple[str, str]] = {
    "Product Clicked": ("action", "click"),
    "Product Viewed": ("action", "view_detail"),
    "Product Added": ("action", "add_to_cart"),
    "Wishlist Product Added to Cart": ("action", "add_to_cart"),
    "Product Removed": ("action", "remove_from_cart"),
    "Checkout Started": ("action", "checkout"),
    "Checkout Step Viewed": ("action", "checkout"),
    "Checkout Step Completed": ("action", "checkout_option"),
    "Payment Info Entered": ("action", "checkout_option"),
    "Order Completed": ("action", "purchase"),
    "Order Refunded": ("action", "refund"),
    "Product Added to Wishlist": ("action", "add_to_wishlist"),
    "Product Removed from Wishlist": ("action", "remove_from_wish_list"),
    "Product List Viewed": ("impressions", ""),
    "Product List Filtered": ("impressions", ""),
    "Promotion Viewed": ("promotion", "view"),
    "Promotion Clicked": ("promotion", "click"),
    "Products Searched": ("custom", "search"),
    "Cart Viewed": ("custom", "transaction"),
    "Order Updated": ("custom", "transaction"),
    "Order Cancelled": ("custom", "transaction"),
    "Coupon Entered": ("custom", "transaction"),
    "Coupon Applied": ("custom", "transaction"),
    "Coupon Denied": ("custom", "transaction"),
    "Coupon Removed": ("custom", "transaction"),
    "Product Shared": ("custom", "social"),
    "Cart Shared": ("custom", "social"),
    "Product Reviewed": ("custom", "user_content"),
}
PRODUCT_ACTION_EVENTS = sorted(name for name, (kind, _) in TABLE.items() if kind == "action")


def send(
    client: Client, server: DevServer, event: str, properties: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """Track one event, wait for it, and return the one event the server accepted."""
    client.track(USER, event, properties, **kwargs)
    assert client.flush(5), "flush timed out"
    delivered = events(server)
    assert len(delivered) == 1, f"expected one delivered event, got {delivered}"
    return delivered[0]


def action_of(event: dict[str, Any]) -> dict[str, Any]:
    assert event["event_type"] == "commerce_event", event
    return event["data"]["product_action"]


def only_product(event: dict[str, Any]) -> dict[str, Any]:
    products = action_of(event)["products"]
    assert len(products) == 1, products
    return products[0]


def assert_table_row(event: dict[str, Any], name: str) -> None:
    """``event`` is what mapping.md §4's table prescribes for the Segment event ``name``."""
    kind, value = TABLE[name]
    data = event["data"]
    assert data["event_name"] == name
    if kind == "custom":
        assert event["event_type"] == "custom_event", event
        assert data["custom_event_type"] == value
        return
    assert event["event_type"] == "commerce_event", event
    if kind == "action":
        assert data["product_action"]["action"] == value
    elif kind == "impressions":
        assert len(data["product_impressions"]) == 1, data
        assert "product_action" not in data
    else:
        assert data["promotion_action"]["action"] == value
        assert "product_action" not in data


def table_properties(name: str) -> dict[str, Any]:
    """Small, plausible properties for a table row."""
    if name in SINGLE_PRODUCT:
        return {"product_id": "p-1", "name": "Monopoly", "price": 18.99, "quantity": 1}
    if name.startswith("Promotion"):
        return {"promotion_id": "promo-1", "name": "Sale"}
    return {"order_id": "o-1", "products": [{"product_id": "p-1", "price": 19, "quantity": 1}]}


# -- mapping.md §4's table ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TABLE))
def test_spec_event_maps_as_the_table_prescribes(client: Client, server: DevServer, name: str) -> None:
    assert_table_row(send(client, server, name, table_properties(name)), name)


@pytest.mark.parametrize("name", ["product added", "Product added", "product_added", "Order Completed ",
                                  "Products searched"])
def test_matching_is_on_the_exact_event_name(client: Client, server: DevServer, name: str) -> None:
    event = send(client, server, name, {"product_id": "p-1", "price": 1})
    assert event["event_type"] == "custom_event"
    assert event["data"]["custom_event_type"] == "other"
    assert event["data"]["custom_attributes"] == {"product_id": "p-1", "price": 1}


# -- checkout ------------------------------------------------------------------------------------


def test_checkout_started_is_step_1_by_default(client: Client, server: DevServer) -> None:
    action = action_of(send(client, server, "Checkout Started", {"order_id": "o-1"}))
    assert action["action"] == "checkout"
    assert action["checkout_step"] == 1


@pytest.mark.parametrize("step", [3, "3"])
def test_checkout_started_takes_a_given_step(client: Client, server: DevServer, step: Any) -> None:
    event = send(client, server, "Checkout Started", {"order_id": "o-1", "step": step})
    assert action_of(event)["checkout_step"] == 3
    assert "step" not in event["data"]["custom_attributes"]


def test_checkout_step_viewed_carries_the_step(client: Client, server: DevServer) -> None:
    event = send(client, server, "Checkout Step Viewed", {"checkout_id": "c-1", "step": 2})
    action = action_of(event)
    assert action["action"] == "checkout"
    assert action["checkout_step"] == 2
    assert event["data"]["custom_attributes"] == {"checkout_id": "c-1"}


@pytest.mark.parametrize("step", ["two", "NaN", "inf"])
def test_non_numeric_step_stays_a_custom_attribute(client: Client, server: DevServer, step: str) -> None:
    event = send(client, server, "Checkout Step Viewed", {"checkout_id": "c-1", "step": step})
    assert "checkout_step" not in action_of(event)
    assert event["data"]["custom_attributes"] == {"checkout_id": "c-1", "step": step}


@pytest.mark.parametrize("name", ["Checkout Step Completed", "Payment Info Entered"])
@pytest.mark.parametrize(
    ("options", "expected"),
    [({"shipping_method": "Fedex"}, "Fedex"), ({"payment_method": "Visa"}, "Visa")],
)
def test_checkout_option_carries_step_and_option(
    client: Client, server: DevServer, name: str, options: dict[str, str], expected: str
) -> None:
    event = send(client, server, name, {"checkout_id": "c-1", "step": 2, **options})
    action = action_of(event)
    assert action["action"] == "checkout_option"
    assert action["checkout_step"] == 2
    assert action["checkout_options"] == expected
    assert event["data"]["custom_attributes"] == {"checkout_id": "c-1"}


@pytest.mark.parametrize("name", ["Checkout Step Completed", "Payment Info Entered"])
def test_checkout_option_with_shipping_and_payment_method(
    client: Client, server: DevServer, name: str
) -> None:
    properties = {"step": 2, "shipping_method": "Fedex", "payment_method": "Visa"}
    action = action_of(send(client, server, name, properties))
    assert action["checkout_step"] == 2
    assert "Fedex" in action["checkout_options"]
    assert "Visa" in action["checkout_options"]


# -- product_action properties -------------------------------------------------------------------


def test_order_id_becomes_transaction_id(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Completed", {"order_id": "o-42"})
    assert action_of(event)["transaction_id"] == "o-42"
    assert "order_id" not in event["data"]["custom_attributes"]


def test_numeric_order_id_becomes_a_string_transaction_id(client: Client, server: DevServer) -> None:
    assert action_of(send(client, server, "Order Completed", {"order_id": 42}))["transaction_id"] == "42"


def test_total_becomes_total_amount_before_revenue(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Completed", {"total": 27.5, "revenue": 22.5})
    assert action_of(event)["total_amount"] == 27.5
    assert "total" not in event["data"]["custom_attributes"]
    assert event["data"]["custom_attributes"]["revenue"] == 22.5


def test_revenue_becomes_total_amount_without_total(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Refunded", {"revenue": 25})
    assert action_of(event)["total_amount"] == 25
    assert "revenue" not in event["data"]["custom_attributes"]


def test_tax_becomes_tax_amount(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Completed", {"tax": 2})
    assert action_of(event)["tax_amount"] == 2
    assert "tax" not in event["data"]["custom_attributes"]


def test_shipping_becomes_shipping_amount(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Completed", {"shipping": 3.5})
    assert action_of(event)["shipping_amount"] == 3.5
    assert "shipping" not in event["data"]["custom_attributes"]


def test_coupon_becomes_coupon_code(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Completed", {"coupon": "hasbros"})
    assert action_of(event)["coupon_code"] == "hasbros"
    assert "coupon" not in event["data"]["custom_attributes"]


def test_affiliation_is_kept_as_affiliation(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Completed", {"affiliation": "Google Store"})
    assert action_of(event)["affiliation"] == "Google Store"
    assert "affiliation" not in event["data"]["custom_attributes"]


def test_currency_becomes_the_events_currency_code(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Completed", {"currency": "EUR", "total": 10})
    assert event["data"]["currency_code"] == "EUR"
    assert "currency_code" not in action_of(event)
    assert "currency" not in event["data"]["custom_attributes"]


def test_numeric_strings_become_numbers(client: Client, server: DevServer) -> None:
    properties = {"total": "27.50", "tax": "2", "shipping": "3.0"}
    action = action_of(send(client, server, "Order Completed", properties))
    assert action["total_amount"] == 27.5
    assert action["tax_amount"] == 2
    assert action["shipping_amount"] == 3
    for field in ("total_amount", "tax_amount", "shipping_amount"):
        assert isinstance(action[field], (int, float)) and not isinstance(action[field], bool), action


def test_non_numeric_strings_stay_custom_attributes(client: Client, server: DevServer) -> None:
    properties = {"total": "about thirty", "tax": "included", "shipping": "free"}
    event = send(client, server, "Order Completed", properties)
    action = action_of(event)
    for field in ("total_amount", "tax_amount", "shipping_amount"):
        assert field not in action
    assert event["data"]["custom_attributes"] == properties


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-inf", "1e400"])
def test_non_finite_numeric_strings_stay_custom_attributes(
    client: Client, server: DevServer, text: str
) -> None:
    """Python's float() reads these, but they are not numbers JSON (or mParticle) can carry."""
    event = send(client, server, "Order Completed", {"order_id": "o-1", "total": text, "tax": text})
    action = action_of(event)
    assert "total_amount" not in action
    assert "tax_amount" not in action
    assert event["data"]["custom_attributes"] == {"total": text, "tax": text}


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_not_amounts(client: Client, server: DevServer, value: float) -> None:
    event = send(client, server, "Order Completed", {"order_id": "o-1", "total": value, "tax": 2})
    action = action_of(event)
    assert "total_amount" not in action
    assert action["tax_amount"] == 2


def test_unmapped_properties_are_custom_attributes(client: Client, server: DevServer) -> None:
    properties = {
        "order_id": "o-1", "checkout_id": "c-1", "discount": 2.5, "gift": True,
        "meta": {"source": "app"}, "tags": ["a", "b"],
    }
    attributes = send(client, server, "Order Completed", properties)["data"]["custom_attributes"]
    assert {k: v for k, v in attributes.items() if k != "tags"} == {
        "checkout_id": "c-1", "discount": 2.5, "gift": True, "meta.source": "app",
    }
    assert isinstance(attributes["tags"], str) and json.loads(attributes["tags"]) == ["a", "b"]


# -- products ------------------------------------------------------------------------------------


def test_products_come_from_the_products_list_in_order(client: Client, server: DevServer) -> None:
    products = [{"product_id": "p-1", "price": 19, "quantity": 1},
                {"product_id": "p-2", "price": 3, "quantity": 2}]
    event = send(client, server, "Order Completed", {"order_id": "o-1", "products": products})
    assert action_of(event)["products"] == [
        {"id": "p-1", "price": 19, "quantity": 1}, {"id": "p-2", "price": 3, "quantity": 2},
    ]
    assert "products" not in event["data"]["custom_attributes"]


@pytest.mark.parametrize("name", sorted(SINGLE_PRODUCT))
def test_single_product_events_read_the_product_from_properties(
    client: Client, server: DevServer, name: str
) -> None:
    properties = {"cart_id": "cart-1", "product_id": "p-1", "name": "Monopoly", "price": 18.99, "quantity": 1}
    event = send(client, server, name, properties)
    assert only_product(event) == {"id": "p-1", "name": "Monopoly", "price": 18.99, "quantity": 1}
    assert event["data"]["custom_attributes"] == {"cart_id": "cart-1"}


def test_product_id_becomes_id_and_sku_an_attribute(client: Client, server: DevServer) -> None:
    product = only_product(send(client, server, "Product Viewed", {"product_id": "p-1", "sku": "G-32"}))
    assert product["id"] == "p-1"
    assert product["custom_attributes"] == {"sku": "G-32"}


def test_sku_becomes_id_without_product_id(client: Client, server: DevServer) -> None:
    event = send(client, server, "Order Completed", {"products": [{"sku": "G-32", "name": "Monopoly"}]})
    assert only_product(event) == {"id": "G-32", "name": "Monopoly"}


def test_numeric_product_id_becomes_a_string(client: Client, server: DevServer) -> None:
    assert only_product(send(client, server, "Product Added", {"product_id": 1234}))["id"] == "1234"


def test_product_name_brand_category_variant_are_strings(client: Client, server: DevServer) -> None:
    properties = {"product_id": "p-1", "name": "Monopoly", "brand": "Hasbro", "category": "Games",
                  "variant": 200}
    product = only_product(send(client, server, "Product Added", properties))
    assert product == {"id": "p-1", "name": "Monopoly", "brand": "Hasbro", "category": "Games",
                       "variant": "200"}


def test_product_price_quantity_position_are_numbers(client: Client, server: DevServer) -> None:
    product = {"product_id": "p-1", "price": "18.99", "quantity": "2", "position": "3"}
    delivered = only_product(send(client, server, "Order Completed", {"products": [product]}))
    assert delivered == {"id": "p-1", "price": 18.99, "quantity": 2, "position": 3}


def test_non_numeric_product_numbers_become_attributes(client: Client, server: DevServer) -> None:
    product = {"product_id": "p-1", "price": "free", "quantity": "a few"}
    delivered = only_product(send(client, server, "Order Completed", {"products": [product]}))
    assert delivered == {"id": "p-1", "custom_attributes": {"price": "free", "quantity": "a few"}}


@pytest.mark.parametrize("field", ["price", "quantity", "position"])
def test_non_finite_product_numbers_become_attributes(client: Client, server: DevServer, field: str) -> None:
    properties = {"products": [{"product_id": "p-1", field: "NaN"}]}
    delivered = only_product(send(client, server, "Order Completed", properties))
    assert delivered == {"id": "p-1", "custom_attributes": {field: "NaN"}}


def test_product_coupon_becomes_its_coupon_code(client: Client, server: DevServer) -> None:
    products = [{"product_id": "p-1", "coupon": "MAYDEALS"}, {"product_id": "p-2"}]
    delivered = action_of(send(client, server, "Order Completed", {"products": products}))["products"]
    assert delivered == [{"id": "p-1", "coupon_code": "MAYDEALS"}, {"id": "p-2"}]


def test_other_product_fields_are_string_custom_attributes(client: Client, server: DevServer) -> None:
    product = {"product_id": "p-1", "url": "https://example.com/p-1", "size": 10, "in_stock": True,
               "dims": {"w": 2}, "tags": ["x", "y"]}
    delivered = only_product(send(client, server, "Order Completed", {"products": [product]}))
    custom = delivered["custom_attributes"]
    assert all(isinstance(value, str) for value in custom.values()), custom
    assert set(custom) == {"url", "size", "in_stock", "dims.w", "tags"}
    assert custom["url"] == "https://example.com/p-1"
    assert custom["size"] == "10"
    assert custom["dims.w"] == "2"
    assert custom["in_stock"].lower() == "true"
    assert json.loads(custom["tags"]) == ["x", "y"]


#: One single-product event sent from a fresh interpreter (argv: host, message id).
FRESH_PRODUCT_ADDED = f"""
import sys
from mparticle_analytics import Client
client = Client({KEY!r}, secret={SECRET!r}, host=sys.argv[1], upload_interval=0.05)
client.track("user-1", "Product Added", {{"product_id": "p-1", "sku": "G-32", "url": "https://example.com/p",
             "image_url": "https://example.com/p.jpg"}}, message_id=sys.argv[2])
sys.exit(0 if client.flush(10) else 1)
"""


def test_product_attributes_do_not_depend_on_the_hash_seed(server: DevServer) -> None:
    """The same call must give the same batch in every process (stable output, reproducible docs)."""
    seeds = ["0", "1", "2", "3", "4", "5"]
    processes = [
        subprocess.Popen([sys.executable, "-c", FRESH_PRODUCT_ADDED, server.url, f"m-{seed}"],
                         env={**os.environ, "PYTHONHASHSEED": seed}, stderr=subprocess.PIPE, text=True)
        for seed in seeds
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
    orders = {
        event["data"]["source_message_id"]: tuple(only_product(event)["custom_attributes"])
        for event in events(server)
    }
    assert len(orders) == len(seeds), orders
    assert len(set(orders.values())) == 1, f"the order varies with PYTHONHASHSEED: {orders}"


# -- impressions and promotions ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Product List Viewed", "Product List Filtered"])
@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"list_id": "hot_deals_1", "category": "Deals"}, "hot_deals_1"),
        ({"category": "Deals"}, "Deals"),
        ({}, None),
    ],
)
def test_impression_list_is_list_id_else_category_else_event_name(
    client: Client, server: DevServer, name: str, properties: dict[str, Any], expected: Any
) -> None:
    products = [{"product_id": "p-1", "position": 1}, {"product_id": "p-2", "position": 2}]
    event = send(client, server, name, {**properties, "products": products})
    assert event["event_type"] == "commerce_event"
    assert event["data"]["product_impressions"] == [{
        "product_impression_list": expected or name,
        "products": [{"id": "p-1", "position": 1}, {"id": "p-2", "position": 2}],
    }]


@pytest.mark.parametrize(("name", "action"), [("Promotion Viewed", "view"), ("Promotion Clicked", "click")])
def test_promotion_action(client: Client, server: DevServer, name: str, action: str) -> None:
    properties = {"promotion_id": "promo_1", "name": "Shoe sale", "creative": "top_banner_2",
                  "position": "home_banner_top", "campaign": "spring"}
    event = send(client, server, name, properties)
    assert event["event_type"] == "commerce_event"
    assert event["data"]["promotion_action"] == {
        "action": action,
        "promotions": [{"id": "promo_1", "name": "Shoe sale", "creative": "top_banner_2",
                        "position": "home_banner_top"}],
    }
    assert event["data"]["custom_attributes"] == {"campaign": "spring"}


# -- ecommerce=False -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Order Completed", "Product Added", "Product List Viewed",
                                  "Promotion Viewed", "Products Searched", "Cart Shared", "Product Reviewed"])
def test_without_ecommerce_spec_events_are_plain_custom_events(
    make_client: Callable[..., Client], server: DevServer, name: str
) -> None:
    client = make_client(ecommerce=False)
    event = send(client, server, name, {"order_id": "o-1", "product_id": "p-1", "total": 27.5})
    assert event["event_type"] == "custom_event"
    assert event["data"]["event_name"] == name
    assert event["data"]["custom_event_type"] == "other"
    assert event["data"]["custom_attributes"] == {"order_id": "o-1", "product_id": "p-1", "total": 27.5}


# -- Segment's own examples ----------------------------------------------------------------------


def send_example(client: Client, server: DevServer, name: str) -> dict[str, Any]:
    example = ECOMMERCE_EXAMPLES[name]
    return send(client, server, example["event"], example["properties"])


def test_segment_examples_cover_the_table() -> None:
    assert set(ECOMMERCE_EXAMPLES) == set(TABLE)


@pytest.mark.parametrize("name", list(ECOMMERCE_EXAMPLES))
def test_every_segment_example_is_delivered_as_the_table_prescribes(
    client: Client, server: DevServer, name: str
) -> None:
    """Also validated against mParticle's schema by the ``server`` fixture."""
    assert_table_row(send_example(client, server, name), name)


def test_segment_order_completed_example(client: Client, server: DevServer) -> None:
    event = send_example(client, server, "Order Completed")
    data = event["data"]
    assert data["product_action"] == {
        "action": "purchase",
        "transaction_id": "50314b8e9bcf000000000000",
        "affiliation": "Google Store",
        "total_amount": 27.5,
        "tax_amount": 2,
        "shipping_amount": 3,
        "coupon_code": "hasbros",
        "products": [
            {"id": "507f1f77bcf86cd799439011", "name": "Monopoly: 3rd Edition", "category": "Games",
             "price": 19, "quantity": 1,
             "custom_attributes": {"sku": "45790-32", "url": "https://www.example.com/product/path",
                                   "image_url": "https://www.example.com/product/path.jpg"}},
            {"id": "505bd76785ebb509fc183733", "name": "Uno Card Game", "category": "Games",
             "price": 3, "quantity": 2, "custom_attributes": {"sku": "46493-32"}},
        ],
    }
    assert data["currency_code"] == "USD"
    assert data["custom_attributes"] == {
        "checkout_id": "fksdjfsdjfisjf9sdfjsd9f", "subtotal": 22.5, "revenue": 22.5, "discount": 2.5,
    }


def test_segment_product_added_example(client: Client, server: DevServer) -> None:
    event = send_example(client, server, "Product Added")
    action = action_of(event)
    assert action["action"] == "add_to_cart"
    assert action["products"] == [{
        "id": "507f1f77bcf86cd799439011", "name": "Monopoly: 3rd Edition", "brand": "Hasbro",
        "category": "Games", "variant": "200 pieces", "price": 18.99, "quantity": 1, "position": 3,
        "coupon_code": "MAYDEALS",
        "custom_attributes": {"sku": "G-32", "url": "https://www.example.com/product/path",
                              "image_url": "https://www.example.com/product/path.jpg"},
    }]
    assert event["data"]["custom_attributes"] == {"cart_id": "skdjsidjsdkdj29j"}


def test_segment_product_list_viewed_example(client: Client, server: DevServer) -> None:
    event = send_example(client, server, "Product List Viewed")
    (impression,) = event["data"]["product_impressions"]
    assert impression["product_impression_list"] == "hot_deals_1"
    fields = [(p["id"], p["name"], p["price"], p["position"], p["category"]) for p in impression["products"]]
    assert fields == [
        ("507f1f77bcf86cd799439011", "Monopoly: 3rd Edition", 19, 1, "Games"),
        ("505bd76785ebb509fc183733", "Uno Card Game", 3, 2, "Games"),
    ]
    assert impression["products"][0]["custom_attributes"] == {
        "sku": "45790-32", "url": "https://www.example.com/product/path",
        "image_url": "https://www.example.com/product/path.jpg",
    }


def test_segment_promotion_viewed_example(client: Client, server: DevServer) -> None:
    event = send_example(client, server, "Promotion Viewed")
    assert event["event_type"] == "commerce_event"
    assert event["data"]["promotion_action"] == {
        "action": "view",
        "promotions": [{"id": "promo_1", "name": "75% store-wide shoe sale", "creative": "top_banner_2",
                        "position": "home_banner_top"}],
    }


def test_segment_checkout_step_completed_example(client: Client, server: DevServer) -> None:
    event = send_example(client, server, "Checkout Step Completed")
    action = action_of(event)
    assert action["action"] == "checkout_option"
    assert action["checkout_step"] == 2
    assert "Fedex" in action["checkout_options"]
    assert "Visa" in action["checkout_options"]
    assert event["data"]["custom_attributes"] == {"checkout_id": "50314b8e9bcf000000000000"}


# -- historical ----------------------------------------------------------------------------------


class Errors:
    """An ``on_error`` that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[Exception, list[dict[str, Any]]]] = []
        self._lock = threading.Lock()

    def __call__(self, error: Exception, messages: list[dict[str, Any]]) -> None:
        with self._lock:
            self.calls.append((error, messages))


def hours_ago(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)


def test_historical_client_sends_old_events_to_the_historical_path(
    make_client: Callable[..., Client], server: DevServer
) -> None:
    errors = Errors()
    client = make_client(historical=True, on_error=errors)
    old = hours_ago(100)
    client.track(USER, "Order Completed", {"order_id": "o-1", "total": 10}, timestamp=old, message_id="m-old")
    client.track(USER, "Signed Up", {"plan": "pro"}, timestamp=hours_ago(80), message_id="m-older")
    assert client.flush(5)
    assert [request["path"] for request in server.requests()] == ["/v2/bulkevents/historical"]
    assert [event["data"]["source_message_id"] for event in events(server)] == ["m-old", "m-older"]
    assert events(server)[0]["data"]["timestamp_unixtime_ms"] == int(old.timestamp() * 1000)
    assert server.rejected() == []
    assert errors.calls == []


def test_historical_client_reports_events_under_72_hours_old(
    make_client: Callable[..., Client], server: DevServer
) -> None:
    errors = Errors()
    client = make_client(historical=True, on_error=errors)
    client.track(USER, "Order Completed", {"order_id": "o-old"}, timestamp=hours_ago(73), message_id="m-old")
    client.track(USER, "Order Completed", {"order_id": "o-new"}, timestamp=hours_ago(71), message_id="m-new")
    assert client.flush(5)
    assert [event["data"]["source_message_id"] for event in events(server)] == ["m-old"]
    assert server.rejected() == []
    assert len(errors.calls) == 1, errors.calls
    error, messages = errors.calls[0]
    assert isinstance(error, DeliveryError)
    assert error.reason == "too_recent"
    assert [message["messageId"] for message in messages] == ["m-new"]
    assert client.stats()["dropped"] == {"too_recent": 1}


def test_historical_client_reports_an_identify_only_batch(
    make_client: Callable[..., Client], server: DevServer
) -> None:
    errors = Errors()
    client = make_client(historical=True, on_error=errors)
    client.identify(USER, {"plan": "pro"}, timestamp=hours_ago(100), message_id="m-identify")
    assert client.flush(5)
    assert server.requests() == []
    assert len(errors.calls) == 1, errors.calls
    error, messages = errors.calls[0]
    assert isinstance(error, DeliveryError)
    assert error.reason == "historical_without_events"
    assert [message["messageId"] for message in messages] == ["m-identify"]
    assert client.stats()["dropped"] == {"historical_without_events": 1}


def test_live_client_sends_to_the_bulk_path(client: Client, server: DevServer) -> None:
    send(client, server, "Order Completed", {"order_id": "o-1"}, timestamp=hours_ago(1))
    assert [request["path"] for request in server.requests()] == ["/v2/bulkevents"]


# -- per-call overrides (mapping.md §6) ----------------------------------------------------------


def overrides(**options: Any) -> dict[str, Any]:
    return {"integrations": {"mParticle": options}}


@pytest.mark.parametrize("event_type", ["navigation", "search", "transaction", "user_preference", "media"])
def test_custom_event_type_override(client: Client, server: DevServer, event_type: str) -> None:
    event = send(client, server, "Signed Up", {}, **overrides(custom_event_type=event_type))
    assert event["data"]["custom_event_type"] == event_type
    assert client.stats()["values"] == {}


def test_custom_event_type_override_on_a_custom_typed_spec_event(client: Client, server: DevServer) -> None:
    options = overrides(custom_event_type="navigation")
    event = send(client, server, "Products Searched", {"query": "roses"}, **options)
    assert event["data"]["custom_event_type"] == "navigation"


@pytest.mark.parametrize("name", ["Signed Up", "Order Completed"])
def test_custom_flags_override(client: Client, server: DevServer, name: str) -> None:
    flags = {"Google.Category": "shop", "Forwarder.Label": "x"}
    event = send(client, server, name, {"order_id": "o-1"}, **overrides(custom_flags=flags))
    assert event["data"]["custom_flags"] == flags


def test_user_identities_override(client: Client, server: DevServer) -> None:
    identities = {"mobile_number": "+15555550100", "other_id_3": "crm-7"}
    send(client, server, "Order Completed", {"order_id": "o-1"}, **overrides(user_identities=identities))
    (batch,) = received(server)
    assert batch["user_identities"] == {"customer_id": USER, **identities}


def test_mpid_override(client: Client, server: DevServer) -> None:
    send(client, server, "Order Completed", {"order_id": "o-1"}, **overrides(mpid=1234567890123))
    (batch,) = received(server)
    assert batch["mpid"] == 1234567890123


def test_override_keys_match_case_insensitively(client: Client, server: DevServer) -> None:
    event = send(client, server, "Signed Up", {}, integrations={"mparticle": {"custom_event_type": "media"}})
    assert event["data"]["custom_event_type"] == "media"


def only_user_id(event: dict[str, Any], batch: dict[str, Any]) -> bool:
    return bool(batch["user_identities"] == {"customer_id": USER})


INVALID_OVERRIDES: list[tuple[dict[str, Any], Callable[[dict[str, Any], dict[str, Any]], bool]]] = [
    ({"custom_event_type": "bogus"}, lambda event, batch: event["data"]["custom_event_type"] == "other"),
    ({"custom_event_type": 3}, lambda event, batch: event["data"]["custom_event_type"] == "other"),
    ({"custom_flags": {"a": 1}}, lambda event, batch: "custom_flags" not in event["data"]),
    ({"custom_flags": "a=b"}, lambda event, batch: "custom_flags" not in event["data"]),
    ({"user_identities": {"not_a_type": "x"}}, only_user_id),
    ({"user_identities": {"email": 5}}, only_user_id),
    ({"user_identities": "x"}, only_user_id),
    ({"mpid": "12"}, lambda event, batch: "mpid" not in batch),
    ({"mpid": True}, lambda event, batch: "mpid" not in batch),
    ({"mpid": 1.5}, lambda event, batch: "mpid" not in batch),
]


@pytest.mark.parametrize(
    ("options", "check"),
    [pytest.param(options, check, id=json.dumps(options)) for options, check in INVALID_OVERRIDES],
)
def test_invalid_override_is_dropped_counted_and_the_event_delivered(
    client: Client, server: DevServer, options: dict[str, Any], check: Callable[..., bool]
) -> None:
    event = send(client, server, "Signed Up", {"plan": "pro"}, **overrides(**options))
    (batch,) = received(server)
    assert check(event, batch), (event, batch)
    assert event["data"]["custom_attributes"] == {"plan": "pro"}
    assert [request["status"] for request in server.requests()] == [202]
    stats = client.stats()
    assert stats["values"] == {"invalid_override": 1}
    assert stats["delivered"] == 1
    assert stats["dropped"] == {}


def test_invalid_custom_event_type_leaves_the_spec_events_own_type(client: Client, server: DevServer) -> None:
    """Dropping an invalid override means the event is typed as without it: search, not other."""
    options = overrides(custom_event_type="bogus")
    event = send(client, server, "Products Searched", {"query": "roses"}, **options)
    assert event["data"]["custom_event_type"] == "search"
    assert client.stats()["values"] == {"invalid_override": 1}


def test_invalid_override_on_a_commerce_event_is_still_delivered(client: Client, server: DevServer) -> None:
    options = {"custom_flags": {"a": 1}, "user_identities": {"not_a_type": "x"}, "mpid": "12"}
    event = send(client, server, "Order Completed", {"order_id": "o-1"}, **overrides(**options))
    assert action_of(event)["transaction_id"] == "o-1"
    assert "custom_flags" not in event["data"]
    (batch,) = received(server)
    assert "mpid" not in batch
    assert batch["user_identities"] == {"customer_id": USER}
    assert client.stats()["values"] == {"invalid_override": 3}
