"""Settings, redaction, messages and logging: the shared foundation."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from chat2sql import errors
from chat2sql.log import JsonFormatter, request_id
from chat2sql.messages import user_message
from chat2sql.redact import RedactingFilter, mask_url, redact
from chat2sql.settings import Settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHAT2SQL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHAT2SQL_PREVIEW_MAX_ROWS", "7")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.preview_max_rows == 7
    assert settings.effective_registry_url == f"sqlite:///{tmp_path}/registry.db"
    assert settings.uses_embedded_registry
    with pytest.raises(ValidationError):
        settings.preview_max_rows = 9  # type: ignore[misc]


def test_settings_from_dotenv(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("CHAT2SQL_REGISTRY_URL=postgresql+psycopg://u@h/db\nCHAT2SQL_SECRET_KEY=abc\n")
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert not settings.uses_embedded_registry
    assert "abc" not in repr(settings)


def test_env_example_documents_every_setting() -> None:
    text = (Path(__file__).parents[1] / ".env.example").read_text()
    for name, field in Settings.model_fields.items():
        aliases = getattr(field.validation_alias, "choices", None)
        documented = str(aliases[0]) if aliases else f"CHAT2SQL_{name.upper()}"
        assert f"\n{documented}=" in text, name


def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT2SQL_PREVIEW_TIMEOUT_S", "-1")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("postgresql://bob:hunter2@db:5432/x", "hunter2"),
        ("mysql+pymysql://root:p%40ss@h/db failed", "p%40ss"),
        ("host=db password=s3cret user=x", "s3cret"),
        ("token='abc def' more", "abc def"),
    ],
)
def test_redact(text: str, leak: str) -> None:
    assert leak not in redact(text)


def test_mask_url() -> None:
    assert mask_url("postgresql://bob:hunter2@db/sales") == "postgresql://bob:***@db/sales"
    assert mask_url("sqlite:///data/x.db") == "sqlite:///data/x.db"
    assert "hunter2" not in mask_url("weird://bob:hunter2@")


def test_logs_are_json_and_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_id.set("req-42")
    try:
        logger.info("connecting to %s", "postgresql://u:leaky@h/db", extra={"fields": {"db": "sales"}})
    finally:
        request_id.reset(token)
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["request_id"] == "req-42" and record["db"] == "sales"
    assert "leaky" not in record["msg"] and "***" in record["msg"]


@pytest.mark.parametrize(
    "err",
    [
        errors.InvalidName("X"),
        errors.UnknownDatabase("x", ("a", "b")),
        errors.UnknownDatabase("x"),
        errors.DuplicateDatabase("x"),
        errors.InvalidURL("it is empty"),
        errors.UnsupportedDialect("oracle"),
        errors.ConnectionFailed("x", "refused"),
        errors.MissingSecretKey(),
        errors.WrongSecretKey(),
        errors.GuardRejected("read_only", "no writes"),
        errors.NothingAllowedHere(),
        errors.AdminOnly(),
        errors.NeedDatabase(("a", "b")),
        errors.NotAllowedHere("x"),
        errors.RateLimited(3, "user"),
        errors.InvalidQuestion("it is empty"),
        errors.NoDatabases(),
        errors.UnknownCommand("help"),
        errors.PreviewTimeout(5),
        errors.PreviewFailed("boom"),
        RuntimeError("internal secret detail"),
    ],
)
def test_every_error_has_a_message(err: BaseException) -> None:
    text = user_message(err)
    assert (text and text[0].isupper()) or text[0] == "'"
    assert "internal secret detail" not in text
