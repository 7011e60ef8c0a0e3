"""Three sample SQLite databases for ``make demo`` and the tests: sales, e-commerce and HR.

They are generated, not shipped: a fixed ``random.Random`` seed per database and dates
anchored on a ``today`` argument make the content reproducible (same ``today``, same
rows) while "last month" always has data. Random draws never depend on ``today``: dates
are fractions of a span or days within a month counted back from ``today``, so the
e-commerce orders of last month are the same rows whatever the date, only shifted, and
the seed questions keep their clear answers.

Money is REAL rounded to cents (SQLite's NUMERIC affinity would turn 100.00 into the
integer 100); dates are ISO text, which SQLite's date functions read.

One module per database (``sales``, ``ecommerce``, ``hr``: a ``build(conn, rng, today)`` each)
on what they share (``common``); this module builds files and registers them.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

from chat2sql.errors import DuplicateDatabase
from samples import ecommerce, hr, sales
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

_Builder = Callable[[sqlite3.Connection, random.Random, date], None]
_BUILDERS: dict[str, _Builder] = {
    "sales_db": sales.build,
    "ecommerce_db": ecommerce.build,
    "hr_db": hr.build,
}


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
