"""Logs: short lines for a person at a terminal, JSON lines for servers and files; libraries
log warnings only, so that their chatter does not bury the console's answers."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from chat2sql import log as chat2sql_log
from chat2sql.log import JsonFormatter, TextFormatter, configure, request_id, resolve_format
from chat2sql.messages import CONSOLE_NO_DATABASES
from chat2sql.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TOUCHED = ("", *chat2sql_log.OWN_LOGGERS, "sqlglot", "alembic")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``configure`` sets the process's logging; put it back for the other tests."""
    loggers = [logging.getLogger(name) for name in TOUCHED]
    saved = [(lg, lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, level, handlers in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers


def _record(**extra: object) -> logging.LogRecord:
    fields = {"name": "inference.engine", "levelname": "INFO", "levelno": logging.INFO, "msg": "model loaded"}
    return logging.makeLogRecord({**fields, "created": 1_700_000_000.0, **extra})


def test_a_text_line_has_the_time_level_logger_message_and_fields() -> None:
    line = TextFormatter().format(_record(fields={"device": "cpu", "load_s": 1.2, "ok": True}))
    clock, rest = line.split(" ", 1)
    assert len(clock) == 8 and clock.count(":") == 2
    assert rest == "INFO  inference.engine: model loaded (device=cpu, load_s=1.2, ok=true)"
    assert TextFormatter().format(_record()).endswith(" INFO  inference.engine: model loaded")


def test_text_and_json_carry_the_same_facts() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(levelname="ERROR", msg="load failed", fields={"db": "sales"}, exc_info=sys.exc_info())
    token = request_id.set("req-7")
    try:
        text, payload = TextFormatter().format(record), json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert text.endswith(" ERROR inference.engine: load failed (request_id=req-7, db=sales, exc_type=ValueError)")
    assert payload["request_id"] == "req-7" and payload["db"] == "sales" and payload["exc_type"] == "ValueError"
    assert "Traceback" not in text and "boom" not in text  # as in JSON: the error's type, never its text


def test_auto_is_text_on_a_terminal_and_json_anywhere_else() -> None:
    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", Terminal()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"


@pytest.mark.usefixtures("restore_logging")
def test_on_a_terminal_our_info_is_a_short_line_and_library_info_is_dropped() -> None:
    out = Terminal()
    configure("INFO", "auto", stream=out)
    logging.getLogger("inference.engine").info("model loaded", extra={"fields": {"device": "cpu"}})
    logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1:8001/v1/generate")
    # (not transformers': once imported, it keeps its own handler and does not propagate)
    logging.getLogger("sqlalchemy.pool").warning("connection invalidated")
    logging.getLogger("bot.core.assistant").debug("not at INFO")
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "INFO  inference.engine: model loaded (device=cpu)",
        "WARNING sqlalchemy.pool: connection invalidated",
    ]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_stay_for_files_and_debug_reaches_our_loggers_only() -> None:
    out = io.StringIO()
    configure("debug", "auto", stream=out)
    logging.getLogger("schemas.registry").debug("connecting to %s", "postgresql://u:leaky@h/db")
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTPS connection")
    [record] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert record["logger"] == "schemas.registry" and record["level"] == "debug"
    assert "leaky" not in record["msg"]


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_are_redacted_too() -> None:
    out = io.StringIO()
    configure("INFO", "text", stream=out)
    logging.getLogger("schemas.cli").warning("could not reach %s", "postgresql://u:leaky@h/db")
    assert "leaky" not in out.getvalue() and "postgresql://u:***@h/db" in out.getvalue()


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="LOUD"):
        configure("LOUD", stream=io.StringIO())


def test_the_format_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).log_format == "auto"  # type: ignore[call-arg]
    monkeypatch.setenv("CHAT2SQL_LOG_FORMAT", "json")
    assert Settings(_env_file=None).log_format == "json"  # type: ignore[call-arg]
    monkeypatch.setenv("CHAT2SQL_LOG_FORMAT", "yaml")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def _ask_on_a_fresh_dir(tmp_path: Path, *, terminal: bool, **env: str) -> tuple[int, str, str]:
    """``python -m bot ask`` on a fresh data dir (its first run logs a warning: a key was made),
    stderr on a pseudo-terminal or a pipe."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHAT2SQL_")}
    environ |= {"CHAT2SQL_DATA_DIR": str(tmp_path / "data"), **env}
    command = [sys.executable, "-m", "bot", "ask", "how many customers?"]
    if not terminal:
        done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr
    main, child = pty.openpty()
    proc = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=child)
    os.close(child)  # read while it runs: a full terminal buffer would block the child
    chunks = []
    deadline = time.monotonic() + 120
    while True:
        if not select.select([main], [], [], max(0.0, deadline - time.monotonic()))[0]:
            proc.kill()  # hung: fail below instead of waiting forever
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal's other end, all read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), b"".join(chunks).decode()


def test_console_logs_on_a_terminal_are_short_lines_not_json(tmp_path: Path) -> None:
    code, out, err = _ask_on_a_fresh_dir(tmp_path, terminal=True)
    assert code == 1 and out.strip() == CONSOLE_NO_DATABASES
    assert " WARNING schemas.crypto: generated an encryption key" in err and '{"ts"' not in err


def test_console_logs_into_a_pipe_are_json_lines_and_the_setting_wins_on_a_terminal(tmp_path: Path) -> None:
    code, out, err = _ask_on_a_fresh_dir(tmp_path / "pipe", terminal=False)
    assert code == 1 and out.strip() == CONSOLE_NO_DATABASES
    [record] = [json.loads(line) for line in err.splitlines()]
    assert record["logger"] == "schemas.crypto" and record["level"] == "warning"
    _, _, err = _ask_on_a_fresh_dir(tmp_path / "tty", terminal=True, CHAT2SQL_LOG_FORMAT="json")
    assert json.loads(err.splitlines()[0])["logger"] == "schemas.crypto"
