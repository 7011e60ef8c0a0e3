"""Run one read-only SQLite query in a process of its own (``python -I -S sqlite_child.py``).

SQLite checks its time limit between VM steps, and a single step can run for minutes and
allocate gigabytes (``printf('%.*c', 2147483647, 'x')``). So the preview runs here, under
an address-space cap (``RLIMIT_AS``) and SQLite's own length limit, and the parent kills
this process at the deadline whatever it is doing.

Standard library only, so that it starts in a few tens of milliseconds. Reads one JSON job
on stdin, writes one JSON reply on stdout.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import sys
import time
from typing import Any
from urllib.parse import quote

_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
# Tables and eponymous virtual tables that describe the database file, the build or the
# file system, not the data (no user table may start with sqlite_).
_HIDDEN_TABLE_PREFIXES = ("sqlite_", "pragma_")
_HIDDEN_TABLES = frozenset({"dbstat", "fsdir", "zipfile"})
_WARM_UPS = ("SELECT * FROM json_each('[]')", "SELECT * FROM json_tree('[]')")


def _authorizer(functions: frozenset[str]) -> Any:
    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
        if action not in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if (arg2 or "").lower() in functions else sqlite3.SQLITE_DENY
        table = (arg1 or "").lower()
        if action == sqlite3.SQLITE_READ and (table.startswith(_HIDDEN_TABLE_PREFIXES) or table in _HIDDEN_TABLES):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    return authorize


def _value(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": len(bytes(value))}
    return value


def run(job: dict[str, Any]) -> dict[str, Any]:
    memory = int(job["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    uri = f"file:{quote(job['path'])}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=1.0)
    # No one value may outgrow the whole result.
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, int(job["max_result_bytes"]))
    conn.execute("PRAGMA query_only = ON")
    # Table functions set themselves up through the schema table on first use, which the
    # authorizer below would refuse: use them once before it is installed.
    for warm_up in _WARM_UPS:
        conn.execute(warm_up).fetchall()
    conn.set_authorizer(_authorizer(frozenset(job["functions"])))
    deadline = time.monotonic() + float(job["timeout_s"])
    conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1_000)
    max_rows, budget = int(job["max_rows"]), int(job["max_result_bytes"])
    try:
        cursor = conn.execute(job["sql"])
        columns = [d[0] for d in cursor.description or ()]
        rows: list[list[Any]] = []
        size = 0
        while len(rows) <= max_rows:
            row = cursor.fetchone()
            if row is None:
                break
            rows.append([_value(v) for v in row])
            size += sum(len(v) if isinstance(v, str) else 8 for v in row)
            if size > budget:
                return {"ok": True, "columns": columns, "rows": rows, "over_budget": True}
        return {"ok": True, "columns": columns, "rows": rows, "over_budget": False}
    except sqlite3.OperationalError as exc:
        if time.monotonic() > deadline:
            return {"ok": False, "kind": "timeout"}
        return {"ok": False, "kind": "error", "message": str(exc)}
    except (sqlite3.Error, MemoryError) as exc:
        if isinstance(exc, MemoryError) or "too big" in str(exc) or "out of memory" in str(exc):
            return {"ok": False, "kind": "memory"}
        return {"ok": False, "kind": "error", "message": str(exc)}


def main() -> None:
    try:
        reply = run(json.loads(sys.stdin.read()))
    except MemoryError:
        reply = {"ok": False, "kind": "memory"}
    sys.stdout.write(json.dumps(reply))


if __name__ == "__main__":
    main()
