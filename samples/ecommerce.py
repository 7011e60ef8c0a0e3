"""``ecommerce_db``: an online shop's catalogue, customers, orders and order lines over two years."""

from __future__ import annotations

import itertools
import random
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

from samples.common import COUNTRIES, DAYS_PER_YEAR, Row, day_in, email_address, insert, month_start, person, quotas

_SHOP_MONTHS = 24
_SHOP_CUSTOMERS = 2_000
_SHOP_REVENUE_OLDEST_MONTH = 40_000.0
_SHOP_GROWTH = 1.025  # per month: the shop is growing
_MONTH_NOISE = 0.08  # a product's units vary by up to ±8% from plan
_BESTSELLER_SHARES = (0.12, 0.095, 0.075, 0.06, 0.048)
_BESTSELLER_MIN_PRICE = 25.0
_TAIL_TOP_SHARE, _TAIL_DECAY, _TAIL_FULL_SHARE_PRICE = 0.036, 0.95, 60.0
_ITEMS_PER_ORDER = {1: 45, 2: 30, 3: 17, 4: 8}
_QUANTITIES = {1: 62, 2: 22, 3: 9, 4: 4, 5: 3}
_DISCOUNTS = {0.0: 80, 0.1: 15, 0.2: 5}
# category: (price range, products)
_CATALOG: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "Electronics": ((25, 900), (
        "Wireless Earbuds", "Noise-Cancelling Headphones", "27-inch 4K Monitor", "Mechanical Keyboard",
        "Portable SSD 1TB", "Smart Watch", "Bluetooth Speaker", "USB-C Docking Station",
    )),
    "Home & Kitchen": ((15, 450), (
        "Espresso Machine", "Air Fryer", "Chef's Knife", "Cast Iron Skillet", "Robot Vacuum",
        "High-Speed Blender", "Linen Bedding Set", "LED Desk Lamp",
    )),
    "Books": ((8, 60), (
        "SQL for Analysts", "Data Pipelines in Practice", "The Quiet Garden", "A History of Maps",
        "Cooking with Five Ingredients", "Mystery at Harbor Lane", "The Space Between Stars",
        "Statistics Made Simple",
    )),
    "Clothing": ((12, 220), (
        "Merino Wool Sweater", "Rain Jacket", "Running Shoes", "Slim Fit Jeans", "Organic Cotton T-Shirt",
        "Leather Belt", "Down Winter Parka", "Hiking Socks (3-pack)",
    )),
    "Sports & Outdoors": ((10, 500), (
        "Yoga Mat", "Two-Person Camping Tent", "Cycling Helmet", "Adjustable Dumbbells",
        "Insulated Water Bottle", "Trekking Poles", "Down Sleeping Bag", "Fitness Tracker",
    )),
    "Beauty": ((6, 120), (
        "Vitamin C Serum", "Sunscreen SPF 50", "Ionic Hair Dryer", "Electric Toothbrush",
        "Daily Moisturizer", "Eau de Parfum", "Shampoo Bar", "Makeup Brush Set",
    )),
    "Toys & Games": ((10, 160), (
        "Building Blocks Set", "Strategy Board Game", "1000-Piece Jigsaw Puzzle", "Remote Control Car",
        "Plush Bear", "Party Card Game", "Mini Camera Drone", "Wooden Chess Set",
    )),
    "Grocery": ((3, 40), (
        "Organic Coffee Beans", "Sencha Green Tea", "Dark Chocolate Bar", "Extra Virgin Olive Oil",
        "Maple Syrup", "Honey Almond Granola", "Almond Butter", "Sparkling Water (12-pack)",
    )),
}  # fmt: skip

_SHOP_DDL = """
CREATE TABLE categories (
    category_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    category_id INTEGER NOT NULL REFERENCES categories (category_id),
    price REAL NOT NULL CHECK (price > 0)
);
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    country TEXT NOT NULL,
    city TEXT NOT NULL,
    signup_date TEXT NOT NULL
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    order_date TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled', 'returned'))
);
CREATE TABLE order_items (
    order_item_id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    product_id INTEGER NOT NULL REFERENCES products (product_id),
    order_date TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price REAL NOT NULL CHECK (unit_price > 0),
    revenue REAL NOT NULL
);
CREATE INDEX idx_products_category ON products (category_id);
CREATE INDEX idx_orders_customer ON orders (customer_id);
CREATE INDEX idx_orders_date ON orders (order_date);
CREATE INDEX idx_order_items_order ON order_items (order_id);
CREATE INDEX idx_order_items_product ON order_items (product_id);
CREATE INDEX idx_order_items_date ON order_items (order_date);
"""


@dataclass(frozen=True)
class _Order:
    day: date
    customer_id: int
    status: str
    items: tuple[tuple[int, int, float], ...]  # product_id, quantity, unit_price


def build(conn: sqlite3.Connection, rng: random.Random, today: date) -> None:
    conn.executescript(_SHOP_DDL)
    insert(conn, "categories", [(i, name) for i, name in enumerate(_CATALOG, 1)])
    products = _shop_products(rng)
    insert(conn, "products", products)
    prices = {p.product_id: p.price for p in products}
    orders = _shop_orders(rng, today, prices)
    insert(conn, "customers", _shop_customers(rng, today, orders))
    insert(conn, "orders", [(i, o.customer_id, o.day.isoformat(), o.status) for i, o in enumerate(orders, 1)])
    # Order lines carry their date and revenue, as in most analytics schemas (denormalized
    # from orders and quantity × unit_price), so line-level questions need no join.
    items = [
        (order_id, product_id, o.day.isoformat(), quantity, price, round(quantity * price, 2))
        for order_id, o in enumerate(orders, 1)
        for product_id, quantity, price in o.items
    ]
    insert(conn, "order_items", [(i, *item) for i, item in enumerate(items, 1)])


class _Product(NamedTuple):
    product_id: int
    name: str
    category_id: int
    price: float


def _shop_products(rng: random.Random) -> list[_Product]:
    products: list[_Product] = []
    for category_id, ((low, high), names) in enumerate(_CATALOG.values(), 1):
        for name in names:
            price = int(low + (high - low) * rng.random() ** 2) + 0.99  # most items are cheap
            products.append(_Product(len(products) + 1, name, category_id, price))
    return products


def _shop_orders(rng: random.Random, today: date, prices: dict[int, float]) -> list[_Order]:
    """Orders month by month, oldest first, each month filled from that month's demand plan."""
    shares = _revenue_shares(rng, prices)
    loyalty = list(itertools.accumulate(rng.paretovariate(1.5) for _ in range(_SHOP_CUSTOMERS)))
    customer_ids = range(1, _SHOP_CUSTOMERS + 1)
    orders: list[_Order] = []
    for months_ago in range(_SHOP_MONTHS - 1, -1, -1):
        first = month_start(today, months_ago)
        last = today if months_ago == 0 else month_start(today, months_ago - 1) - timedelta(days=1)
        revenue = _SHOP_REVENUE_OLDEST_MONTH * _SHOP_GROWTH ** (_SHOP_MONTHS - 1 - months_ago)
        if months_ago == 0:  # the month so far
            revenue *= today.day / 30
        for basket in _baskets(rng, _month_items(rng, shares, prices, revenue)):
            day = day_in(first, last, rng.random())
            customer_id = rng.choices(customer_ids, cum_weights=loyalty)[0]
            status = _order_status(rng.random(), (today - day).days)
            items = tuple((pid, qty, _discounted(rng, prices[pid])) for pid, qty in basket)
            orders.append(_Order(day=day, customer_id=customer_id, status=status, items=items))
    orders.sort(key=lambda o: o.day)
    return orders


def _revenue_shares(rng: random.Random, prices: dict[int, float]) -> dict[int, float]:
    """Each product's share of a month's revenue: five clear bestsellers, then a long tail.

    The bestsellers' shares are about 25% apart and the month's noise is smaller, so
    "the top 5 products by revenue last month" has one answer, whatever ``today`` is.
    Cheap products earn less (nobody sells $40,000 of granola a month).
    """
    ranking = [p for p, price in prices.items() if price >= _BESTSELLER_MIN_PRICE]
    rng.shuffle(ranking)
    bestsellers = ranking[: len(_BESTSELLER_SHARES)]
    tail = [p for p in prices if p not in bestsellers]
    rng.shuffle(tail)
    shares = dict(zip(bestsellers, _BESTSELLER_SHARES, strict=True))
    for rank, product_id in enumerate(tail):
        scale = min(1.0, prices[product_id] / _TAIL_FULL_SHARE_PRICE)
        shares[product_id] = _TAIL_TOP_SHARE * _TAIL_DECAY**rank * scale
    return shares


def _month_items(
    rng: random.Random, shares: dict[int, float], prices: dict[int, float], revenue: float
) -> list[tuple[int, int]]:
    """The month's sold units as (product_id, quantity) lines, in random order."""
    quantities, weights = list(_QUANTITIES), list(_QUANTITIES.values())
    lines: list[tuple[int, int]] = []
    for product_id, share in shares.items():
        noise = 1 + _MONTH_NOISE * (2 * rng.random() - 1)
        units = round(share * revenue * noise / prices[product_id])
        while units > 0:
            quantity = min(units, rng.choices(quantities, weights=weights)[0])
            lines.append((product_id, quantity))
            units -= quantity
    rng.shuffle(lines)
    return lines


def _baskets(rng: random.Random, lines: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Cut the month's lines into orders of 1–4 lines; one line per product in an order."""
    sizes, weights = list(_ITEMS_PER_ORDER), list(_ITEMS_PER_ORDER.values())
    baskets: list[list[tuple[int, int]]] = []
    position = 0
    while position < len(lines):
        size = rng.choices(sizes, weights=weights)[0]
        merged: dict[int, int] = {}
        for product_id, quantity in lines[position : position + size]:
            merged[product_id] = merged.get(product_id, 0) + quantity
        baskets.append(list(merged.items()))
        position += size
    return baskets


def _discounted(rng: random.Random, price: float) -> float:
    discount = rng.choices(list(_DISCOUNTS), weights=list(_DISCOUNTS.values()))[0]
    return round(price * (1 - discount), 2)


def _order_status(draw: float, age_days: int) -> str:
    if draw < 0.04:
        return "cancelled"
    if age_days <= 2:
        return "processing"
    if age_days <= 7:
        return "shipped"
    return "returned" if draw > 0.95 else "delivered"


def _shop_customers(rng: random.Random, today: date, orders: list[_Order]) -> list[Row]:
    """Each customer signed up before their first order (or at some point, if they never ordered)."""
    first_order: dict[int, date] = {}
    for order in orders:
        first_order.setdefault(order.customer_id, order.day)
    counts = quotas([c.weight for c in COUNTRIES], _SHOP_CUSTOMERS)
    countries = [c for c, n in zip(COUNTRIES, counts, strict=True) for _ in range(n)]
    rng.shuffle(countries)
    start = month_start(today, _SHOP_MONTHS + 12)
    seen: dict[str, int] = {}
    rows: list[Row] = []
    for customer_id, country in enumerate(countries, 1):
        first, last = person(rng)
        until = first_order.get(customer_id, today)
        signup = day_in(max(start, until - timedelta(days=DAYS_PER_YEAR)), until, rng.random())
        email = email_address(first, last, "mail.example.com", seen)
        rows.append((customer_id, first, last, email, country.name, rng.choice(country.cities), signup.isoformat()))
    return rows
