"""Three sample SQLite databases for ``make demo`` and the tests: sales, e-commerce and HR.

They are generated, not shipped: a fixed ``random.Random`` seed per database and dates
anchored on a ``today`` argument make the content reproducible (same ``today``, same
rows) while "last month" always has data. Random draws never depend on ``today``: dates
are fractions of a span or days within a month counted back from ``today``, so the
e-commerce orders of last month are the same rows whatever the date, only shifted, and
the seed questions keep their clear answers.

Money is REAL rounded to cents (SQLite's NUMERIC affinity would turn 100.00 into the
integer 100); dates are ISO text, which SQLite's date functions read.
"""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

from chat2sql.errors import DuplicateDatabase
from schemas.registry import Registry

SAMPLES: tuple[str, ...] = ("sales_db", "ecommerce_db", "hr_db")
SAMPLE_SEEDS: dict[str, int] = {"sales_db": 1_001, "ecommerce_db": 2_002, "hr_db": 3_003}
SAMPLE_DESCRIPTIONS: dict[str, str] = {
    "sales_db": "Sample B2B sales: regions, sales reps, customers by country and segment, sales amounts.",
    "ecommerce_db": "Sample online shop: product categories, products, customers, orders and order items.",
    "hr_db": "Sample HR: departments, employees with titles, hire dates, salaries, managers; salary history.",
}
SAMPLES_DIR = "samples"
FILE_SUFFIX = ".sqlite"
DAYS_PER_YEAR = 365

_Builder = Callable[[sqlite3.Connection, random.Random, date], None]
_Row = tuple[object, ...]


def build_sample(name: str, path: Path, *, today: date) -> Path:
    """Write sample ``name`` to ``path`` so that no reader ever sees a half-built file.

    The database is built in a temporary file beside ``path`` and moved into place with
    ``os.replace``: a crash or a concurrent reader finds the old file or the new one.
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown sample database {name!r}; expected one of: {', '.join(SAMPLES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _write(tmp, builder, random.Random(SAMPLE_SEEDS[name]), today)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def ensure_samples(
    registry: Registry, data_dir: Path, *, today: date | None = None, registered_by: str = "demo"
) -> list[str]:
    """Build the sample files that are missing and register the samples that are not.

    Returns the names built or registered, so a second call returns ``[]`` and changes
    nothing. A name already registered is left alone (an admin may have pointed it
    elsewhere), unless its file was just rebuilt: then its schema snapshot is refreshed.
    """
    anchor = today or date.today()
    folder = (data_dir / SAMPLES_DIR).resolve()
    registered = set(registry.names())
    done: list[str] = []
    for name in SAMPLES:
        path = folder / f"{name}{FILE_SUFFIX}"
        url = f"sqlite:///{path}"
        built = not path.is_file()
        if built:
            build_sample(name, path, today=anchor)
        if name not in registered:
            added = _register(registry, name, url, registered_by)
        else:
            added = False
            if built and registry.connection_url(name) == url:
                registry.refresh(name)
        if built or added:
            done.append(name)
    return done


def _register(registry: Registry, name: str, url: str, registered_by: str) -> bool:
    try:
        registry.add(name, url, description=SAMPLE_DESCRIPTIONS[name], registered_by=registered_by)
    except DuplicateDatabase:
        return False  # another process registered it in the meantime
    return True


def _write(path: Path, builder: _Builder, rng: random.Random, today: date) -> None:
    conn = sqlite3.connect(path)
    try:
        # Foreign keys are enforced while inserting, so the generators cannot break them.
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            builder(conn, rng, today)
    finally:
        conn.close()


# --- shared helpers ---------------------------------------------------------------------


def _month_start(today: date, months_ago: int) -> date:
    index = today.year * 12 + today.month - 1 - months_ago
    return date(index // 12, index % 12 + 1, 1)


def _day_in(start: date, end: date, fraction: float) -> date:
    """The day ``fraction`` (0 ≤ fraction < 1) of the way from ``start`` to ``end``, both included."""
    days = (end - start).days + 1
    return start + timedelta(days=min(int(fraction * days), days - 1))


def _anniversary(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _quotas(weights: Sequence[float], total: int) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder), so every share shows."""
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _email(first: str, last: str, domain: str, seen: dict[str, int]) -> str:
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    seen[local] = seen.get(local, 0) + 1
    suffix = "" if seen[local] == 1 else str(seen[local])
    return f"{local}{suffix}@{domain}"


def _insert(conn: sqlite3.Connection, table: str, rows: Sequence[_Row]) -> None:
    marks = ", ".join("?" * len(rows[0]))
    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


_FIRST_NAMES = (
    "Aisha", "Alejandro", "Amara", "Andrei", "Anna", "Arjun", "Ben", "Camille", "Carlos", "Chen",
    "Chloe", "Daniel", "David", "Elena", "Emily", "Emma", "Fatima", "Felix", "Gabriel", "Grace",
    "Hannah", "Hiroshi", "Ibrahim", "Isabella", "James", "Jin", "Julia", "Kai", "Kenji", "Laura",
    "Leila", "Liam", "Lucas", "Maria", "Mateo", "Maya", "Mei", "Michael", "Mohammed", "Nadia",
    "Noah", "Olivia", "Omar", "Priya", "Rafael", "Ravi", "Rosa", "Samuel", "Sara", "Sofia",
    "Tariq", "Thomas", "Valentina", "Victor", "Wei", "William", "Yara", "Yuki", "Zara", "Zoe",
)  # fmt: skip
_LAST_NAMES = (
    "Adams", "Ahmed", "Alvarez", "Andersen", "Bauer", "Becker", "Brown", "Chen", "Costa", "Das",
    "Dubois", "Evans", "Fischer", "Garcia", "Gupta", "Hansen", "Hughes", "Ito", "Jensen", "Johnson",
    "Kaur", "Khan", "Kim", "Kowalski", "Kumar", "Lee", "Lopez", "Martin", "Meyer", "Moreau",
    "Murphy", "Nakamura", "Nguyen", "Novak", "O'Brien", "Okafor", "Patel", "Perez", "Petrov", "Rossi",
    "Sanchez", "Santos", "Sato", "Schmidt", "Silva", "Singh", "Smith", "Suzuki", "Tanaka", "Taylor",
    "Thompson", "Wagner", "Walker", "Wang", "Weber", "Williams", "Wilson", "Wong", "Yilmaz", "Zhang",
)  # fmt: skip


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)


@dataclass(frozen=True)
class _Country:
    name: str
    region: str
    weight: float
    cities: tuple[str, ...]


_NA, _LATAM, _EUROPE, _MEA, _APAC = (
    "North America", "Latin America", "Europe", "Middle East & Africa", "Asia Pacific",
)  # fmt: skip
_REGIONS = (_NA, _LATAM, _EUROPE, _MEA, _APAC)
_COUNTRIES = (
    _Country("United States", _NA, 26.0, ("New York", "San Francisco", "Chicago", "Austin", "Seattle")),
    _Country("United Kingdom", _EUROPE, 11.0, ("London", "Manchester", "Edinburgh")),
    _Country("Germany", _EUROPE, 9.0, ("Berlin", "Munich", "Hamburg")),
    _Country("Canada", _NA, 7.0, ("Toronto", "Vancouver", "Montreal")),
    _Country("France", _EUROPE, 6.5, ("Paris", "Lyon", "Toulouse")),
    _Country("India", _APAC, 5.0, ("Bangalore", "Mumbai", "Pune")),
    _Country("Australia", _APAC, 4.6, ("Sydney", "Melbourne", "Brisbane")),
    _Country("Netherlands", _EUROPE, 4.0, ("Amsterdam", "Rotterdam")),
    _Country("Brazil", _LATAM, 3.8, ("São Paulo", "Rio de Janeiro", "Belo Horizonte")),
    _Country("Japan", _APAC, 3.5, ("Tokyo", "Osaka")),
    _Country("Spain", _EUROPE, 3.2, ("Madrid", "Barcelona", "Valencia")),
    _Country("Mexico", _NA, 2.8, ("Mexico City", "Guadalajara", "Monterrey")),
    _Country("Italy", _EUROPE, 2.5, ("Milan", "Rome", "Turin")),
    _Country("Sweden", _EUROPE, 2.2, ("Stockholm", "Gothenburg")),
    _Country("Singapore", _APAC, 2.0, ("Singapore",)),
    _Country("Ireland", _EUROPE, 1.8, ("Dublin", "Cork")),
    _Country("United Arab Emirates", _MEA, 1.5, ("Dubai", "Abu Dhabi")),
    _Country("Poland", _EUROPE, 1.3, ("Warsaw", "Kraków")),
    _Country("Argentina", _LATAM, 1.1, ("Buenos Aires", "Córdoba")),
    _Country("South Africa", _MEA, 0.9, ("Johannesburg", "Cape Town")),
    _Country("Chile", _LATAM, 0.7, ("Santiago", "Valparaíso")),
)

# --- sales_db ---------------------------------------------------------------------------

_SALES_CUSTOMERS = 1_200
_SALES_ROWS = 5_000
_SALES_YEARS = 5
_REPS_PER_REGION = {_NA: 8, _LATAM: 3, _EUROPE: 10, _MEA: 2, _APAC: 5}
# segment: (share of customers, relative number of purchases, lognormal mu and sigma of an amount)
_SEGMENTS = {
    "SMB": (0.55, 1.0, 7.0, 0.6),
    "Mid-Market": (0.30, 2.5, 8.6, 0.6),
    "Enterprise": (0.15, 5.0, 10.0, 0.7),
}
_PRODUCT_LINES = {
    "Software Licenses": 40,
    "Support Plans": 25,
    "Consulting": 15,
    "Training": 12,
    "Hardware": 8,
}
_COMPANY_FIRST = (
    "Acme", "Apex", "Blue River", "Brightline", "Cedar", "Cobalt", "Crescent", "Evergreen",
    "Falcon", "Granite", "Harbor", "Horizon", "Ironwood", "Juniper", "Keystone", "Lakeside",
    "Maple", "Meridian", "Northwind", "Oakridge", "Orion", "Pinnacle", "Quantum", "Redwood",
    "Sierra", "Silverline", "Summit", "Trident", "Vertex", "Willow",
)  # fmt: skip
_COMPANY_SECOND = (
    "Analytics", "Foods", "Logistics", "Systems", "Health", "Energy", "Retail", "Media", "Labs",
    "Manufacturing", "Consulting", "Software", "Motors", "Pharma", "Capital", "Textiles",
    "Robotics", "Networks", "Brewing", "Studios",
)  # fmt: skip
_COMPANY_SUFFIX = ("", " Group", " Holdings", " & Co.")

_SALES_DDL = """
CREATE TABLE regions (
    region_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE sales_reps (
    sales_rep_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    region_id INTEGER NOT NULL REFERENCES regions (region_id),
    hire_date TEXT NOT NULL
);
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    country TEXT NOT NULL,
    city TEXT NOT NULL,
    segment TEXT NOT NULL CHECK (segment IN ('SMB', 'Mid-Market', 'Enterprise')),
    signup_date TEXT NOT NULL,
    sales_rep_id INTEGER NOT NULL REFERENCES sales_reps (sales_rep_id)
);
CREATE TABLE sales (
    sale_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
    sales_rep_id INTEGER NOT NULL REFERENCES sales_reps (sales_rep_id),
    sale_date TEXT NOT NULL,
    product_line TEXT NOT NULL,
    amount REAL NOT NULL CHECK (amount > 0)
);
CREATE INDEX idx_sales_reps_region ON sales_reps (region_id);
CREATE INDEX idx_customers_country ON customers (country);
CREATE INDEX idx_customers_sales_rep ON customers (sales_rep_id);
CREATE INDEX idx_sales_customer ON sales (customer_id);
CREATE INDEX idx_sales_sales_rep ON sales (sales_rep_id);
CREATE INDEX idx_sales_date ON sales (sale_date);
"""


class _Rep(NamedTuple):
    sales_rep_id: int
    first_name: str
    last_name: str
    email: str
    region_id: int
    hire_date: str


class _SalesCustomer(NamedTuple):
    customer_id: int
    name: str
    country: str
    city: str
    segment: str
    signup_date: str
    sales_rep_id: int


def _build_sales(conn: sqlite3.Connection, rng: random.Random, today: date) -> None:
    conn.executescript(_SALES_DDL)
    _insert(conn, "regions", [(i, name) for i, name in enumerate(_REGIONS, 1)])
    reps = _sales_reps(rng, today)
    _insert(conn, "sales_reps", reps)
    customers = _sales_customers(rng, today, reps)
    _insert(conn, "customers", customers)
    _insert(conn, "sales", _sales_rows(rng, today, customers))


def _sales_reps(rng: random.Random, today: date) -> list[_Rep]:
    seen: dict[str, int] = {}
    reps: list[_Rep] = []
    for region_id, region in enumerate(_REGIONS, 1):
        for _ in range(_REPS_PER_REGION[region]):
            first, last = _person(rng)
            hired = _day_in(_month_start(today, 12 * 8), _month_start(today, 6), rng.random())
            email = _email(first, last, "sales.example.com", seen)
            reps.append(_Rep(len(reps) + 1, first, last, email, region_id, hired.isoformat()))
    return reps


def _sales_customers(rng: random.Random, today: date, reps: list[_Rep]) -> list[_SalesCustomer]:
    """Countries in fixed, uneven proportions; each customer served by a rep of its region."""
    reps_by_region: dict[int, list[int]] = {}
    for rep in reps:
        reps_by_region.setdefault(rep.region_id, []).append(rep.sales_rep_id)
    counts = _quotas([c.weight for c in _COUNTRIES], _SALES_CUSTOMERS)
    countries = [c for c, n in zip(_COUNTRIES, counts, strict=True) for _ in range(n)]
    rng.shuffle(countries)
    segments, shares = list(_SEGMENTS), [s[0] for s in _SEGMENTS.values()]
    start = _month_start(today, 12 * _SALES_YEARS)
    names: set[str] = set()
    customers: list[_SalesCustomer] = []
    for customer_id, country in enumerate(countries, 1):
        name = _company_name(rng, names)
        segment = rng.choices(segments, weights=shares)[0]
        signup = _day_in(start, today, rng.random())
        rep_id = rng.choice(reps_by_region[_REGIONS.index(country.region) + 1])
        city = rng.choice(country.cities)
        customers.append(_SalesCustomer(customer_id, name, country.name, city, segment, signup.isoformat(), rep_id))
    return customers


def _company_name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = f"{rng.choice(_COMPANY_FIRST)} {rng.choice(_COMPANY_SECOND)}{rng.choice(_COMPANY_SUFFIX)}"
        if name not in taken:
            taken.add(name)
            return name


def _sales_rows(rng: random.Random, today: date, customers: list[_SalesCustomer]) -> list[_Row]:
    """Bigger customers buy more often and spend more; a sale never precedes the signup."""
    weights = [_SEGMENTS[c.segment][1] for c in customers]
    lines, line_weights = list(_PRODUCT_LINES), list(_PRODUCT_LINES.values())
    drafts: list[tuple[str, int, int, str, float]] = []
    for customer in rng.choices(customers, weights=weights, k=_SALES_ROWS):
        _, _, mu, sigma = _SEGMENTS[customer.segment]
        day = _day_in(date.fromisoformat(customer.signup_date), today, rng.random())
        line = rng.choices(lines, weights=line_weights)[0]
        amount = round(min(rng.lognormvariate(mu, sigma), 250_000.0), 2)
        drafts.append((day.isoformat(), customer.customer_id, customer.sales_rep_id, line, amount))
    drafts.sort(key=lambda d: d[0])
    return [(i, cust, rep, day, line, amount) for i, (day, cust, rep, line, amount) in enumerate(drafts, 1)]


# --- ecommerce_db -----------------------------------------------------------------------

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


def _build_ecommerce(conn: sqlite3.Connection, rng: random.Random, today: date) -> None:
    conn.executescript(_SHOP_DDL)
    _insert(conn, "categories", [(i, name) for i, name in enumerate(_CATALOG, 1)])
    products = _shop_products(rng)
    _insert(conn, "products", products)
    prices = {p.product_id: p.price for p in products}
    orders = _shop_orders(rng, today, prices)
    _insert(conn, "customers", _shop_customers(rng, today, orders))
    _insert(conn, "orders", [(i, o.customer_id, o.day.isoformat(), o.status) for i, o in enumerate(orders, 1)])
    # Order lines carry their date and revenue, as in most analytics schemas (denormalized
    # from orders and quantity × unit_price), so line-level questions need no join.
    items = [
        (order_id, product_id, o.day.isoformat(), quantity, price, round(quantity * price, 2))
        for order_id, o in enumerate(orders, 1)
        for product_id, quantity, price in o.items
    ]
    _insert(conn, "order_items", [(i, *item) for i, item in enumerate(items, 1)])


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
        first = _month_start(today, months_ago)
        last = today if months_ago == 0 else _month_start(today, months_ago - 1) - timedelta(days=1)
        revenue = _SHOP_REVENUE_OLDEST_MONTH * _SHOP_GROWTH ** (_SHOP_MONTHS - 1 - months_ago)
        if months_ago == 0:  # the month so far
            revenue *= today.day / 30
        for basket in _baskets(rng, _month_items(rng, shares, prices, revenue)):
            day = _day_in(first, last, rng.random())
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


def _shop_customers(rng: random.Random, today: date, orders: list[_Order]) -> list[_Row]:
    """Each customer signed up before their first order (or at some point, if they never ordered)."""
    first_order: dict[int, date] = {}
    for order in orders:
        first_order.setdefault(order.customer_id, order.day)
    counts = _quotas([c.weight for c in _COUNTRIES], _SHOP_CUSTOMERS)
    countries = [c for c, n in zip(_COUNTRIES, counts, strict=True) for _ in range(n)]
    rng.shuffle(countries)
    start = _month_start(today, _SHOP_MONTHS + 12)
    seen: dict[str, int] = {}
    rows: list[_Row] = []
    for customer_id, country in enumerate(countries, 1):
        first, last = _person(rng)
        until = first_order.get(customer_id, today)
        signup = _day_in(max(start, until - timedelta(days=DAYS_PER_YEAR)), until, rng.random())
        email = _email(first, last, "mail.example.com", seen)
        rows.append((customer_id, first, last, email, country.name, rng.choice(country.cities), signup.isoformat()))
    return rows


# --- hr_db ------------------------------------------------------------------------------

_HR_EMPLOYEES = 1_800
_FOUNDED = date(2010, 1, 4)
_TEAM_SIZE = 9  # individual contributors per manager
_RAISE_PER_YEAR = 1.035


@dataclass(frozen=True)
class _Department:
    name: str
    location: str
    weight: float
    head: str
    manager: str
    # title, salary low, salary high, relative frequency
    titles: tuple[tuple[str, int, int, int], ...]


_DEPARTMENTS = (
    _Department("Engineering", "San Francisco", 30, "VP of Engineering", "Engineering Manager", (
        ("Software Engineer", 95_000, 140_000, 40), ("Senior Software Engineer", 130_000, 185_000, 30),
        ("Staff Software Engineer", 170_000, 230_000, 8), ("QA Engineer", 75_000, 115_000, 10),
        ("Site Reliability Engineer", 115_000, 170_000, 12),
    )),
    _Department("Sales", "New York", 18, "VP of Sales", "Sales Manager", (
        ("Account Executive", 70_000, 120_000, 45), ("Sales Development Representative", 50_000, 70_000, 35),
        ("Enterprise Account Executive", 110_000, 160_000, 20),
    )),
    _Department("Support", "Austin", 14, "Director of Support", "Support Team Lead", (
        ("Support Specialist", 45_000, 65_000, 60), ("Senior Support Specialist", 60_000, 80_000, 30),
        ("Support Engineer", 75_000, 100_000, 10),
    )),
    _Department("Marketing", "New York", 8, "VP of Marketing", "Marketing Manager", (
        ("Marketing Specialist", 60_000, 85_000, 40), ("Content Strategist", 65_000, 90_000, 25),
        ("Product Marketing Manager", 100_000, 140_000, 20), ("Growth Analyst", 75_000, 105_000, 15),
    )),
    _Department("Operations", "Chicago", 7, "Director of Operations", "Operations Manager", (
        ("Operations Analyst", 60_000, 85_000, 50), ("Facilities Coordinator", 45_000, 60_000, 25),
        ("IT Specialist", 60_000, 90_000, 25),
    )),
    _Department("Product", "San Francisco", 6, "VP of Product", "Group Product Manager", (
        ("Product Manager", 120_000, 165_000, 50), ("Senior Product Manager", 150_000, 195_000, 25),
        ("Product Designer", 100_000, 150_000, 25),
    )),
    _Department("Data", "San Francisco", 5, "Head of Data", "Data Science Manager", (
        ("Data Analyst", 75_000, 110_000, 45), ("Data Scientist", 115_000, 165_000, 35),
        ("Analytics Engineer", 110_000, 160_000, 20),
    )),
    _Department("Finance", "Chicago", 5, "Chief Financial Officer", "Finance Manager", (
        ("Financial Analyst", 70_000, 100_000, 50), ("Accountant", 60_000, 85_000, 35),
        ("Controller", 110_000, 150_000, 15),
    )),
    _Department("HR", "Austin", 4, "VP of People", "HR Manager", (
        ("HR Generalist", 55_000, 80_000, 45), ("Recruiter", 60_000, 90_000, 40),
        ("HR Business Partner", 85_000, 120_000, 15),
    )),
    _Department("Legal", "New York", 2, "General Counsel", "Legal Manager", (
        ("Corporate Counsel", 140_000, 200_000, 50), ("Paralegal", 55_000, 80_000, 50),
    )),
)  # fmt: skip
_EXECUTIVE = _Department("Executive", "San Francisco", 0, "Chief Executive Officer", "", ())
_CEO, _HEAD, _MANAGER, _STAFF = range(4)  # levels, highest first

_HR_DDL = """
CREATE TABLE departments (
    department_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    location TEXT NOT NULL
);
CREATE TABLE employees (
    employee_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    department_id INTEGER NOT NULL REFERENCES departments (department_id),
    title TEXT NOT NULL,
    hire_date TEXT NOT NULL,
    salary REAL NOT NULL CHECK (salary > 0),
    manager_id INTEGER REFERENCES employees (employee_id)
);
CREATE TABLE salary_history (
    salary_history_id INTEGER PRIMARY KEY,
    employee_id INTEGER NOT NULL REFERENCES employees (employee_id),
    effective_date TEXT NOT NULL,
    salary REAL NOT NULL CHECK (salary > 0),
    UNIQUE (employee_id, effective_date)
);
CREATE INDEX idx_employees_department ON employees (department_id);
CREATE INDEX idx_employees_manager ON employees (manager_id);
CREATE INDEX idx_employees_hire_date ON employees (hire_date);
"""


@dataclass(frozen=True)
class _Hire:
    department_id: int
    level: int
    title: str
    hired: date
    salary: float


def _build_hr(conn: sqlite3.Connection, rng: random.Random, today: date) -> None:
    conn.executescript(_HR_DDL)
    departments = (_EXECUTIVE, *_DEPARTMENTS)
    _insert(conn, "departments", [(i, d.name, d.location) for i, d in enumerate(departments, 1)])
    hires = sorted(_hr_hires(rng, today), key=lambda h: (h.hired, h.level))
    managers = _hr_managers(rng, hires)
    seen: dict[str, int] = {}
    employees: list[_Row] = []
    for employee_id, (hire, manager_id) in enumerate(zip(hires, managers, strict=True), 1):
        first, last = _person(rng)
        email = _email(first, last, "corp.example.com", seen)
        row = (first, last, email, hire.department_id, hire.title, hire.hired.isoformat(), hire.salary)
        employees.append((employee_id, *row, manager_id))
    _insert(conn, "employees", employees)
    history = [
        (employee_id, day.isoformat(), salary)
        for employee_id, hire in enumerate(hires, 1)
        for day, salary in _salary_steps(hire, today)
    ]
    _insert(conn, "salary_history", [(i, *entry) for i, entry in enumerate(history, 1)])


def _hr_hires(rng: random.Random, today: date) -> list[_Hire]:
    """The CEO, then per department a head, managers and staff; hiring speeds up over the years."""
    hires = [_Hire(department_id=1, level=_CEO, title=_EXECUTIVE.head, hired=_FOUNDED, salary=350_000.0)]
    counts = _quotas([d.weight for d in _DEPARTMENTS], _HR_EMPLOYEES - 1)
    for department_id, (dept, count) in enumerate(zip(_DEPARTMENTS, counts, strict=True), 2):
        early = _day_in(_FOUNDED, _anniversary(_FOUNDED, 2), rng.random())
        hires.append(_Hire(department_id, _HEAD, dept.head, early, _salary(rng, 190_000, 280_000)))
        managers = max(1, (count - 1) // (_TEAM_SIZE + 1))
        for _ in range(managers):
            hired = _day_in(early, today, rng.random() ** 1.5)  # most joined early, after the head
            hires.append(_Hire(department_id, _MANAGER, dept.manager, hired, _salary(rng, 120_000, 190_000)))
        titles, weights = list(dept.titles), [t[3] for t in dept.titles]
        for _ in range(count - 1 - managers):
            title, low, high, _ = rng.choices(titles, weights=weights)[0]
            hired = _day_in(_FOUNDED, today, rng.random() ** 0.75)
            hires.append(_Hire(department_id, _STAFF, title, hired, _salary(rng, low, high)))
    return hires


def _salary(rng: random.Random, low: int, high: int) -> float:
    return float(round((low + (high - low) * rng.random()) / 500) * 500)


def _hr_managers(rng: random.Random, hires: list[_Hire]) -> list[int | None]:
    """Staff report to a manager of their department who was there first, else to its head, else the CEO."""
    result: list[int | None] = []
    heads: dict[int, int] = {}
    managers: dict[int, list[int]] = {}
    for employee_id, hire in enumerate(hires, 1):
        boss: int | None = None
        if hire.level == _HEAD:
            boss = 1
            heads[hire.department_id] = employee_id
        elif hire.level == _MANAGER:
            boss = heads.get(hire.department_id, 1)
            managers.setdefault(hire.department_id, []).append(employee_id)
        elif hire.level == _STAFF:
            bosses = managers.get(hire.department_id) or [heads.get(hire.department_id, 1)]
            boss = rng.choice(bosses)
        result.append(boss)
    return result


def _salary_steps(hire: _Hire, today: date) -> list[tuple[date, float]]:
    """A raise on every work anniversary, ending at today's salary."""
    days = [hire.hired]
    while (next_day := _anniversary(hire.hired, len(days))) <= today:
        days.append(next_day)
    raises = len(days) - 1
    return [(day, round(hire.salary / _RAISE_PER_YEAR ** (raises - k), 2)) for k, day in enumerate(days)]


_BUILDERS: dict[str, _Builder] = {
    "sales_db": _build_sales,
    "ecommerce_db": _build_ecommerce,
    "hr_db": _build_hr,
}
