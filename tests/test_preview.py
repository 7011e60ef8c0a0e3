"""The read-only preview on each engine: row cap, truncation, time limit, values, errors."""

from __future__ import annotations

import pytest

from chat2sql.errors import PreviewFailed, PreviewTimeout
from schemas.preview import ReadOnlyRunner
from tests.support.databases import with_password

SLOW = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    "postgres": "SELECT count(*) FROM generate_series(1, 1000000000)",
    "mysql": "SELECT SLEEP(3)",
}


def _dialect(url: str) -> str:
    return "postgres" if url.startswith("postgresql") else url.split(":")[0]


def test_row_cap_and_truncation(sample_url: str) -> None:
    runner = ReadOnlyRunner(url=sample_url)
    full = runner.run("SELECT id, name FROM employees ORDER BY id", max_rows=50)
    assert len(full.rows) == 7 and not full.truncated and full.columns == ("id", "name")
    capped = runner.run("SELECT id FROM employees ORDER BY id", max_rows=3)
    assert [r[0] for r in capped.rows] == [1, 2, 3] and capped.truncated
    runner.close()


def test_values_are_json_friendly(sample_url: str) -> None:
    runner = ReadOnlyRunner(url=sample_url)
    result = runner.run("SELECT salary, hired_on, email FROM employees WHERE id = 3", max_rows=5)
    salary, hired_on, email = result.rows[0]
    assert salary == 90000 and str(hired_on).startswith("2020-01-10") and email is None
    runner.close()


def test_time_limit(sample_url: str) -> None:
    runner = ReadOnlyRunner(url=sample_url)
    with pytest.raises(PreviewTimeout):
        runner.run(SLOW[_dialect(sample_url)], max_rows=5, timeout_s=0.5)
    # the runner is still usable afterwards
    assert runner.run("SELECT count(*) FROM employees", max_rows=5).rows == ((7,),)
    runner.close()


def test_database_errors_are_redacted(pg_url: str) -> None:
    url = with_password(pg_url, "RedactMe77")
    assert "RedactMe77" in url  # the test sends a real password (trust auth ignores it)
    runner = ReadOnlyRunner(url=url, secrets=("RedactMe77",))
    with pytest.raises(PreviewFailed) as info:
        runner.run("SELECT nope FROM employees", max_rows=5)
    assert "RedactMe77" not in info.value.detail and "nope" in info.value.detail
    runner.close()


def test_writes_fail_even_when_sent_directly(sample_url: str) -> None:
    runner = ReadOnlyRunner(url=sample_url)
    for sql in ("DELETE FROM audit_log", "UPDATE employees SET salary = 0", "DROP TABLE audit_log"):
        with pytest.raises(PreviewFailed):
            runner.run(sql, max_rows=5)
    assert runner.run("SELECT count(*) FROM audit_log", max_rows=5).rows == ((3,),)
    runner.close()
