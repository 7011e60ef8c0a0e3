"""The console channel: ``python -m bot ask|chat|audit|demo``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.console import ask, chat
from chat2sql.settings import Settings
from tests.support.assistant import console_assistant

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.asyncio
async def test_ask_json_with_preview(settings: Settings, sqlite_url: str) -> None:
    bot = console_assistant(settings, ["SELECT name FROM departments ORDER BY id"])
    bot.registry.add("hr", sqlite_url, registered_by="t")
    out = io.StringIO()
    assert await ask(bot, "departments?", database="hr", run=True, as_json=True, out=out) == 0
    body = json.loads(out.getvalue())
    assert body["sql"] == "SELECT name FROM departments ORDER BY id LIMIT 50" and body["database"] == "hr"
    assert body["preview"]["columns"] == ["name"] and body["preview"]["rows"][0] == ["Engineering"]
    assert isinstance(body["latency_ms"], float)
    out = io.StringIO()
    assert await ask(bot, "x", database="nope", run=True, as_json=True, out=out) == 1
    assert "No database named 'nope'" in json.loads(out.getvalue())["error"]
    await bot.close()


@pytest.mark.asyncio
async def test_chat_session(settings: Settings, sqlite_url: str) -> None:
    bot = console_assistant(settings, ["SELECT name FROM departments ORDER BY id"])
    script = (
        "\n".join(
            [
                f"admin register hr {sqlite_url} people",
                "databases",
                "how many departments?",
                "run",
                "bad SELECT count(*) FROM departments",
                "help",
                "quit",
            ]
        )
        + "\n"
    )
    out = io.StringIO()
    assert await chat(bot, stdin=io.StringIO(script), out=out) == 0
    text = out.getvalue()
    assert "Registered `hr`" in text and "`hr` (sqlite, 5 tables)" in text
    assert "SELECT name FROM departments ORDER BY id LIMIT 50" in text and "Engineering" in text and "(4 rows" in text
    assert "stored your correction" in text and "[db:NAME]" in text
    [entry] = [e for e in bot.store.audit() if e.sql]
    assert bot.store.feedback_for(entry.id)[0].corrected_sql == "SELECT count(*) FROM departments"
    await bot.close()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT2SQL_")}
    env.update(CHAT2SQL_DATA_DIR=str(tmp_path / "data"), CHAT2SQL_LOG_LEVEL="WARNING", **extra)
    return env


def test_ask_reports_a_down_worker(tmp_path: Path, sqlite_url: str) -> None:
    env = _env(
        tmp_path,
        CHAT2SQL_INFERENCE="worker",
        CHAT2SQL_WORKER_URL="http://127.0.0.1:9",
        CHAT2SQL_WORKER_API_KEY="c2s_x",
        CHAT2SQL_INFERENCE_TIMEOUT_S="2",
    )
    subprocess.run(
        [sys.executable, "-m", "schemas", "add", "hr", sqlite_url], cwd=ROOT, env=env, check=True, capture_output=True
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--json", "how many employees?"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    body = json.loads(proc.stdout)
    assert body["error"] and "127.0.0.1" not in body["error"] and "c2s_x" not in proc.stdout + proc.stderr
    audit = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(audit.stdout)[0]["question"] == "how many employees?"


def test_demo_answers_the_seed_questions(tmp_path: Path, embedded_model: Path) -> None:
    """`make demo`'s job with the offline model: three questions, SQL that runs, twice."""
    env = _env(tmp_path, CHAT2SQL_MODEL=str(embedded_model))
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "bot", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.count(" rows") == 3 and "I could not" not in proc.stdout


@pytest.mark.asyncio
async def test_chat_explain_chart_and_choices(settings: Settings, sqlite_url: str, tmp_path: Path) -> None:
    payroll = "SELECT d.name, SUM(e.salary) AS payroll FROM employees e JOIN departments d ON e.department_id = d.id GROUP BY d.name"
    bot = console_assistant(settings, [payroll])
    bot.registry.add("hr", sqlite_url, registered_by="t")
    bot.registry.add("shop", sqlite_url, registered_by="t")
    script = "\n".join(["explain", "payroll per department?", "2", "explain", "chart", "quit"]) + "\n"
    out = io.StringIO()
    assert await chat(bot, stdin=io.StringIO(script), out=out, chart_dir=tmp_path / "charts") == 0
    text = out.getvalue()
    assert "Which database?" in text and "  1. hr\n  2. shop\n(type a number to choose)" in text
    assert "> [db:shop] payroll per department?" in text and "database: shop" in text
    assert "What this query on shop does:" in text and "Groups the rows by d.name" in text
    png = tmp_path / "charts" / f"chart-{bot.store.audit(limit=1)[0].id}.png"
    assert f"payroll by name: {png}" in text and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    await bot.close()
