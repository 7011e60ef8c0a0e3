"""Load defog-data's seven real PostgreSQL dumps into PostgreSQL and into SQLite copies.

The dumps are plain ``pg_dump`` output: statements, and ``COPY … FROM stdin`` blocks of
tab-separated rows. The package's JSON files carry column descriptions.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlglot
from sqlglot import exp

DEFOG_DATABASES = ("academic", "advising", "atis", "geography", "restaurants", "scholar", "yelp")
_COPY = re.compile(r"^COPY (?P<table>[\w.\"]+) \((?P<cols>[^)]*)\) FROM stdin;$")
_SKIP = re.compile(r"^(ALTER .* OWNER TO|GRANT |REVOKE |SELECT pg_catalog\.set_config|ALTER SCHEMA)")


def defog_dir() -> Path:
    spec = importlib.util.find_spec("defog_data")
    assert spec is not None and spec.submodule_search_locations, "defog-data is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class Copy:
    table: str
    columns: list[str]
    lines: list[str]  # raw tab-separated rows


@dataclass
class Dump:
    items: list[str | Copy]  # statements and COPY blocks, in dump order

    @property
    def statements(self) -> list[str]:
        return [i for i in self.items if isinstance(i, str)]

    @property
    def copies(self) -> list[Copy]:
        return [i for i in self.items if isinstance(i, Copy)]


def read_dump(name: str) -> Dump:
    lines = (defog_dir() / name / f"{name}.sql").read_text(encoding="utf-8").splitlines()
    items: list[str | Copy] = []
    buffer: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _COPY.match(line)
        if match:
            data = []
            i += 1
            while lines[i] != "\\.":
                data.append(lines[i])
                i += 1
            cols = [c.strip().strip('"') for c in match["cols"].split(",")]
            items.append(Copy(match["table"], cols, data))
        elif not line.startswith("--") and line.strip():
            buffer.append(line)
            if line.rstrip().endswith(";"):
                statement = "\n".join(buffer)
                buffer = []
                if not _SKIP.match(statement):
                    items.append(statement)
        i += 1
    return Dump(items=items)


def column_descriptions(name: str) -> dict[str, dict[str, str]]:
    meta = json.loads((defog_dir() / name / f"{name}.json").read_text(encoding="utf-8"))
    return {
        table: {c["column_name"]: c.get("column_description", "") for c in cols}
        for table, cols in meta["table_metadata"].items()
    }


def load_postgres(conninfo: dict[str, object], name: str) -> None:
    dump = read_dump(name)
    with psycopg.connect(**conninfo, autocommit=False) as conn:  # type: ignore[arg-type]
        for item in dump.items:
            if isinstance(item, str):
                conn.execute(item)  # type: ignore[call-overload]
                continue
            quoted = ", ".join(f'"{c}"' for c in item.columns)
            with conn.cursor().copy(f"COPY {item.table} ({quoted}) FROM STDIN") as copy:  # type: ignore[arg-type]
                for line in item.lines:
                    copy.write(line + "\n")
        conn.commit()


def load_sqlite(path: Path, name: str) -> str:
    dump = read_dump(name)
    conn = sqlite3.connect(path)
    for statement in dump.statements:
        if statement.startswith("CREATE TABLE"):
            tree = sqlglot.parse_one(statement.replace("public.", ""), read="postgres")
            for default in list(tree.find_all(exp.DefaultColumnConstraint)):
                default.parent.pop()  # SQLite wants DEFAULT (expr); the copy needs no defaults
            conn.execute(tree.sql("sqlite"))
    for copy in dump.copies:
        marks = ", ".join("?" for _ in copy.columns)
        quoted = ", ".join(f'"{c}"' for c in copy.columns)
        rows = [[_copy_value(v) for v in line.split("\t")] for line in copy.lines]
        table = copy.table.replace("public.", "")
        conn.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', rows)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "b": "\b", "f": "\f", "v": "\v"}


def _copy_value(raw: str) -> str | None:
    if raw == "\\N":
        return None
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), raw)


def dump_columns(name: str) -> dict[str, set[str]]:
    """Table -> column names, from the dump's own CREATE TABLE statements."""
    out: dict[str, set[str]] = {}
    for statement in read_dump(name).statements:
        if statement.startswith("CREATE TABLE"):
            tree = sqlglot.parse_one(statement, read="postgres")
            table = tree.find(exp.Table)
            assert table is not None
            out[table.name] = {c.name for c in tree.find_all(exp.ColumnDef)}
    return out
