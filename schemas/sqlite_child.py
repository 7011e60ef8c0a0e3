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
# Virtual tables and shadow tables that describe the database or the process, not its data.
_HIDDEN_TABLE_PREFIXES = ("sqlite_", "pragma_", "dbstat", "fts", "zipfile", "fsdir")
_WARM_UPS = ("SELECT * FROM json_each('[]')", "SELECT * FROM json_tree('[]')")


def _authorizer(functions: frozenset[str], tables: frozenset[str] | None) -> Any:
    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
        if action not in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if (arg2 or "").lower() in functions else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_READ and arg1:
            name = arg1.lower()
            if tables is not None and name not in tables and name not in functions:
                return sqlite3.SQLITE_DENY
            if name.startswith(_HIDDEN_TABLE_PREFIXES) and name not in (tables or ()):
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
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, int(job["max_value_bytes"]))
    conn.execute("PRAGMA query_only = ON")
    # Table functions set themselves up through the schema table on first use, which the
    # authorizer below would refuse: use them once before it is installed.
    for warm_up in _WARM_UPS:
        conn.execute(warm_up).fetchall()
    tables = job.get("tables")
    conn.set_authorizer(
        _authorizer(frozenset(job["functions"]), frozenset(t.lower() for t in tables) if tables is not None else None)
    )
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
