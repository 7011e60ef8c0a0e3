"""``python -m schemas`` end to end, in a subprocess, with a fresh data dir each test."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.databases import with_password

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _names(cli: Cli) -> list[str]:
    proc = cli("list", "--json")
    assert proc.returncode == 0, proc.stderr
    return [e["name"] for e in json.loads(proc.stdout)]


def test_full_cycle(cli: Cli, sqlite_url: str) -> None:
    proc = cli("add", "hr", sqlite_url, "--description", "people data")
    assert proc.returncode == 0, proc.stderr
    assert "5 tables" in proc.stdout
    listing = json.loads(cli("list", "--json").stdout)
    assert listing[0]["name"] == "hr" and listing[0]["dialect"] == "sqlite" and listing[0]["url"] == sqlite_url
    show = cli("show", "hr")
    assert (
        'CREATE TABLE "Order Details"' in show.stdout
        and "FOREIGN KEY (department_id) REFERENCES departments(id)" in show.stdout
    )
    assert "refreshed hr" in cli("refresh", "hr").stdout
    assert cli("remove", "hr").returncode == 0
    assert _names(cli) == []


def test_list_json_masks_passwords(cli: Cli, pg_url: str) -> None:
    secret_url = with_password(pg_url, "S3cretPass")
    assert cli("add", "pg", secret_url).returncode == 0
    for args in (("list",), ("list", "--json"), ("show", "pg")):
        proc = cli(*args)
        assert "S3cretPass" not in proc.stdout + proc.stderr
    assert json.loads(cli("list", "--json").stdout)[0]["url"].startswith("postgresql://c2s_reader:***@")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("add", "Bad Name", "sqlite:////tmp/x.db"), "not a valid database name"),
        (("add", "x", "nonsense"), "not valid"),
        (("add", "x", "sqlite:////definitely/missing.db"), "no SQLite database file"),
        (("add", "x", "postgresql://u:PwLeak42@127.0.0.1:1/db"), "Could not connect to 'x'"),
        (("add", "x", "mssql://u:p@h/db"), "not supported"),
        (("show", "nope"), "No database named 'nope'"),
        (("refresh", "nope"), "No database named 'nope'"),
        (("remove", "nope"), "No database named 'nope'"),
        (("check", "--db", "nope", "select 1"), "No database named 'nope'"),
        (("run", "--db", "nope", "select 1"), "No database named 'nope'"),
        (("check", "--db", "hr", "--file", "/no/such/file.sql"), "could not read input"),
    ],
)
def test_errors_are_one_line_and_change_nothing(cli: Cli, sqlite_url: str, args: tuple[str, ...], needle: str) -> None:
    assert cli("add", "hr", sqlite_url).returncode == 0
    proc = cli(*args)
    assert proc.returncode == 1
    line = _error_line(proc)
    assert needle in line and "PwLeak42" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert _names(cli) == ["hr"]


def test_duplicate_name(cli: Cli, sqlite_url: str) -> None:
    assert cli("add", "hr", sqlite_url).returncode == 0
    proc = cli("add", "hr", sqlite_url)
    assert proc.returncode == 1 and "already registered" in _error_line(proc)
    assert _names(cli) == ["hr"]


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert cli().returncode == 2
    assert cli("check", "--db", "x").returncode == 2  # neither SQL nor --file
    assert cli("run", "--db", "x", "--max-rows", "0", "select 1").returncode == 2


def test_check_single(cli: Cli, sqlite_url: str) -> None:
    cli("add", "hr", sqlite_url)
    ok = cli("check", "--db", "hr", "select name from employees")
    assert (ok.returncode, ok.stdout.strip()) == (0, "SELECT name FROM employees LIMIT 50")
    bad = cli("check", "--db", "hr", "drop table employees")
    assert bad.returncode == 1 and bad.stdout.startswith("rejected by read_only:")
    as_json = cli("check", "--db", "hr", "--json", "select nope from employees")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {
        "sql": "select nope from employees",
        "ok": False,
        "rule": "known_columns",
        "reason": "unknown column 'nope'",
    }


def test_check_file_json_one_object_per_line(cli: Cli, sqlite_url: str, tmp_path: Path) -> None:
    cli("add", "hr", sqlite_url)
    lines = ["select id from employees", "", "-- only a comment", "delete from employees", "select 'é' as x"]
    path = tmp_path / "q.sql"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for source, stdin in (("-", "\n".join(lines) + "\n"), (str(path), None)):
        proc = cli("check", "--db", "hr", "--json", "--file", source, stdin=stdin)
        assert proc.returncode == 0, proc.stderr
        objects = [json.loads(ln) for ln in proc.stdout.splitlines()]
        assert [o["sql"] for o in objects] == lines
        assert [o["ok"] for o in objects] == [True, False, False, False, True]
        assert objects[0]["normalized"] == "SELECT id FROM employees LIMIT 50"
        assert objects[1]["rule"] == "single_statement" and objects[3]["rule"] == "read_only"


def test_run_outputs(cli: Cli, sqlite_url: str) -> None:
    cli("add", "hr", sqlite_url)
    proc = cli("run", "--db", "hr", "--json", "--max-rows", "3", "select id, name from employees order by id")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["columns"] == ["id", "name"] and out["rows"] == [[1, "Ada"], [2, "Bo"], [3, "Chen"]]
    assert out["truncated"] is True and out["ok"] is True and isinstance(out["elapsed_ms"], float)
    table = cli("run", "--db", "hr", "select name from departments where name like 'L%'")
    assert table.returncode == 0 and "Légal" in table.stdout and "(1 rows" in table.stdout
    refused = cli("run", "--db", "hr", "--json", "update employees set salary = 0")
    assert refused.returncode == 1 and json.loads(refused.stdout)["rule"] == "read_only"


def test_run_timeout_is_reported(cli: Cli, sqlite_url: str) -> None:
    cli("add", "hr", sqlite_url)
    slow = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"
    proc = cli("run", "--db", "hr", "--json", "--timeout", "0.5", slow)
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["rule"] == "preview" and "stopped after 0.5 s" in out["reason"]
