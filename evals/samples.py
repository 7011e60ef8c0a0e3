"""The shipped evaluation set: hand-checked questions on the three sample databases, in
Spider's layout.

``evals/sets/samples`` holds ``dev.json`` (questions, gold SQL, difficulty) and
``tables.json``; the SQLite files are not committed but built here from ``samples``
with a pinned ``today``, so the rows, and therefore the gold answers, never change with
the date the set is built on.

``python -m inference.eval_samples DIR`` writes a complete Spider folder to DIR (dev.json,
tables.json, database/<db_id>/<db_id>.sqlite) that ``python -m inference.eval --data DIR``
reads. ``--set glossary`` writes ``evals/sets/glossary`` instead: questions that need
the business glossary in its ``glossary.json`` (terms, metrics, a column description), on the
same databases, to compare ``glossary=on`` with ``glossary=off``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from samples import SAMPLES, build_sample

SHIPPED = Path(__file__).parent / "sets" / "samples"
SETS = {"samples": SHIPPED, "glossary": Path(__file__).parent / "sets" / "glossary"}
OPTIONAL_FILES = ("glossary.json",)  # copied when the set has them
# The samples anchor "last month" on this day; the gold SQL uses no date-relative function.
TODAY = date(2025, 6, 15)


def build(target: Path, *, source: Path = SHIPPED, today: date = TODAY) -> Path:
    """Copy the questions (and the glossary, if the set has one) and build the databases into
    ``target``; returns ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("dev.json", "tables.json"):
        shutil.copyfile(source / name, target / name)
    for name in OPTIONAL_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    for db_id in SAMPLES:
        build_sample(db_id, target / "database" / db_id / f"{db_id}.sqlite", today=today)
    return target


def spider_tables(db_path: Path, db_id: str) -> dict[str, Any]:
    """Spider's ``tables.json`` entry for one SQLite file (original names used as the readable ones)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        columns: list[list[Any]] = [[-1, "*"]]
        types, primary_keys, foreign_keys = ["text"], [], []
        index: dict[tuple[str, str], int] = {}
        for t, table in enumerate(tables):
            for _cid, name, ctype, _notnull, _default, pk in conn.execute(f'PRAGMA table_info("{table}")'):
                index[(table, name)] = len(columns)
                columns.append([t, name])
                types.append("number" if ctype.upper() in ("INTEGER", "REAL", "NUMERIC") else "text")
                if pk:
                    primary_keys.append(index[(table, name)])
        for table in tables:
            for row in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
                ref_table, src, dst = row[2], row[3], row[4]
                foreign_keys.append([index[(table, src)], index[(ref_table, dst)]])
    finally:
        conn.close()
    readable = [[t, name.replace("_", " ")] if t >= 0 else [t, name] for t, name in columns]
    return {
        "db_id": db_id,
        "table_names_original": tables,
        "table_names": [t.replace("_", " ") for t in tables],
        "column_names_original": columns,
        "column_names": readable,
        "column_types": types,
        "primary_keys": primary_keys,
        "foreign_keys": foreign_keys,
    }


def write_tables(folder: Path) -> None:
    """Regenerate ``tables.json`` from the databases under ``folder`` (run after a schema change)."""
    entries = [spider_tables(folder / "database" / db / f"{db}.sqlite", db) for db in SAMPLES]
    (folder / "tables.json").write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.eval_samples", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path, help="folder to write the Spider-format set to")
    parser.add_argument("--set", choices=tuple(SETS), default="samples", help="which shipped set (default samples)")
    args = parser.parse_args(argv)
    build(args.target, source=SETS[args.set])
    print(f"built {args.target} ({args.set}: {', '.join(SAMPLES)}, today={TODAY.isoformat()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
