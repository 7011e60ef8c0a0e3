"""The MCP server: the chat's operations as tools, in-process, over streamable HTTP behind
API keys, and over stdio (``python -m bot mcp``)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from bot.console import console_where, render_reply
from bot.core.access import Admins
from bot.core.assistant import Assistant, AssistantConfig
from bot.mcp_server import Chat2SQLServer, local_caller
from bot.server import build_app
from bot.state import assistant_over
from bot.store import BotStore
from chat2sql.cache import InMemoryCache
from chat2sql.ratelimit import InMemoryRateLimiter, Limit
from chat2sql.settings import Settings
from inference.keys import KeyStore
from schemas import guard
from schemas.registry import Registry
from tests.support.clients import SampledClient

SQL = "SELECT name FROM employees WHERE salary > 100000"


def _names(result: CallToolResult) -> list[str]:
    assert not result.is_error and result.structured_content is not None, _text(result)
    return [d["name"] for d in result.structured_content["databases"]]


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def _assistant(settings: Settings, sqlite_url: str, **config: Any) -> Assistant:
    registry = Registry.open(settings)
    registry.add("hr", sqlite_url, description="People and pay", registered_by="cli")
    registry.add("hr_copy", sqlite_url, description="A second copy", registered_by="cli")
    return assistant_over(
        registry=registry,
        store=BotStore.open(settings),
        client=SampledClient(lambda _: [SQL]),
        limiter=InMemoryRateLimiter(),
        cache=InMemoryCache(),
        admins=Admins.parse(""),
        config=AssistantConfig(user_limit=Limit(600, 100), workspace_limit=Limit(6000, 1000), cache_ttl_s=0, **config),
    )


@pytest_asyncio.fixture
async def assistant(settings: Settings, sqlite_url: str) -> AsyncIterator[Assistant]:
    made = await _assistant(settings, sqlite_url)
    yield made
    await made.close()


@pytest.mark.asyncio
async def test_every_tool_in_process_gives_what_the_console_gives(assistant: Assistant) -> None:
    server = Chat2SQLServer(assistant, caller=local_caller("ada"))
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"list_databases", "describe_schema", "ask", "run_preview", "explain"}
        assert tools["ask"].input_schema["required"] == ["database", "question"]
        assert "question" in tools["describe_schema"].input_schema["properties"]

        listed = await client.call_tool("list_databases", {})
        assert not listed.is_error
        assert _names(listed) == ["hr", "hr_copy"]
        databases = listed.structured_content["databases"]  # type: ignore[index]
        assert databases[0]["description"] == "People and pay" and databases[0]["dialect"] == "sqlite"
        assert "sqlite:///" not in _text(listed)  # never a connection URL

        schema = await client.call_tool("describe_schema", {"database": "hr"})
        assert not schema.is_error and "employees" in _text(schema) and "departments" in _text(schema)
        assert _text(schema) == await assistant.schema_text("hr", console_where())
        budgeted = await client.call_tool("describe_schema", {"database": "hr", "question": "who earns most?"})
        assert "employees" in _text(budgeted)

        asked = await client.call_tool("ask", {"database": "hr", "question": "who earns over 100k?"})
        assert not asked.is_error, _text(asked)
        answer = asked.structured_content
        assert answer is not None and answer["database"] == "hr"
        console = await assistant.ask("who earns over 100k?", console_where(), database="hr")
        assert answer["sql"] == console.answer.sql if console.answer else False  # the console's SQL
        assert render_reply(console).startswith(answer["sql"])
        audit = assistant.store.audit(limit=2)[1]  # the MCP question, before the console's
        assert audit.platform == "mcp" and audit.user_id == "ada" and audit.sql == answer["sql"]

        preview = await client.call_tool("run_preview", {"database": "hr", "sql": answer["sql"]})
        assert not preview.is_error, _text(preview)
        rows = preview.structured_content
        assert rows is not None and rows["columns"] == ["name"] and rows["rows"] == [["Ada"], ["Bo"]]
        assert "Ada" in rows["table"] and "(2 rows)" in rows["table"]
        ran = assistant.store.audit(limit=1)[0]
        assert ran.platform == "mcp" and ran.sql == answer["sql"] and ran.preview_rows == 2  # audited

        explained = await client.call_tool("explain", {"database": "hr", "sql": answer["sql"]})
        assert not explained.is_error and "employees" in _text(explained).lower()

        resources = (await client.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["schema://hr", "schema://hr_copy"]
        read = await client.read_resource("schema://hr")
        assert "employees" in read.contents[0].text  # type: ignore[union-attr]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM employees",
        "SELECT name FROM employees; DROP TABLE employees",
        "SELECT pg_sleep(10)",
        "WITH x AS (DELETE FROM employees RETURNING *) SELECT * FROM x",
        "SELECT * FROM audit_log_not_here",
    ],
)
async def test_hostile_sql_is_refused_with_the_guards_reason(assistant: Assistant, sql: str) -> None:
    schema = assistant.registry.get("hr").schema
    verdict = guard.check(sql, schema)
    assert not verdict.ok and verdict.reason
    server = Chat2SQLServer(assistant, caller=local_caller("mallory"))
    async with Client(server) as client:
        for tool in ("run_preview", "explain"):
            result = await client.call_tool(tool, {"database": "hr", "sql": sql})
            assert result.is_error and verdict.reason in _text(result), (tool, _text(result))
    ran = assistant.store.audit(limit=1)[0]
    assert ran.platform == "mcp" and ran.sql == sql and ran.preview_rows is None  # audited, never run
    still = await assistant.preview_sql("hr", "SELECT COUNT(*) FROM employees", local_caller("x").where)
    assert still.ok and still.rows == ((7,),)  # nothing was changed


@pytest.mark.asyncio
async def test_bad_input_gets_a_clear_message(assistant: Assistant) -> None:
    server = Chat2SQLServer(assistant, caller=local_caller("ada"))
    async with Client(server) as client:
        unknown = await client.call_tool("ask", {"database": "nope", "question": "how many?"})
        assert unknown.is_error and "nope" in _text(unknown) and "hr" in _text(unknown)
        empty = await client.call_tool("ask", {"database": "hr", "question": ""})
        assert empty.is_error
        missing = await client.call_tool("describe_schema", {})
        assert missing.is_error and "database" in _text(missing)


# --- HTTP: /mcp in python -m bot serve, behind the API keys ------------------------------------


@asynccontextmanager
async def served(settings: Settings, sqlite_url: str) -> AsyncIterator[tuple[Any, dict[str, str]]]:
    """The bot's app with three keys; its lifespan (the MCP session manager) runs in the test's own task."""
    assistant = await _assistant(settings, sqlite_url)
    keys = KeyStore.open(settings)
    made = {
        "all": keys.create("all-dbs", "standard"),
        "hr": keys.create("hr-only", "standard", databases=["hr"]),
        "revoked": keys.create("gone", "standard"),
    }
    keys.revoke("gone")
    keys.close()
    app = build_app(settings, assistant=assistant, platforms=[])
    async with app.router.lifespan_context(app):
        yield app, made


def _http(app: Any, key: str | None) -> httpx2.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://bot.example", headers=headers)


@pytest.mark.asyncio
async def test_http_tools_behind_a_key(settings: Settings, sqlite_url: str) -> None:
    async with (
        served(settings, sqlite_url) as (app, keys),
        _http(app, keys["all"]) as http,
        Client(streamable_http_client("http://bot.example/mcp", http_client=http)) as c,
    ):
        names = _names(await c.call_tool("list_databases", {}))
        assert names == ["hr", "hr_copy"]
        asked = await c.call_tool("ask", {"database": "hr_copy", "question": "who earns over 100k?"})
        assert not asked.is_error and asked.structured_content is not None
        assert asked.structured_content["sql"].startswith(SQL)
        preview = await c.call_tool("run_preview", {"database": "hr", "sql": SQL})
        assert preview.structured_content is not None and preview.structured_content["rows"] == [["Ada"], ["Bo"]]
    audit = app.state.context.assistant.store.audit(limit=2)
    assert {(a.platform, a.user_id, a.workspace) for a in audit} == {("mcp", "all-dbs", "key:all-dbs")}


@pytest.mark.asyncio
async def test_a_key_limited_to_one_database_cannot_see_another(settings: Settings, sqlite_url: str) -> None:
    async with (
        served(settings, sqlite_url) as (app, keys),
        _http(app, keys["hr"]) as http,
        Client(streamable_http_client("http://bot.example/mcp", http_client=http)) as c,
    ):
        assert _names(await c.call_tool("list_databases", {})) == ["hr"]
        for tool, args in (
            ("ask", {"database": "hr_copy", "question": "how many employees?"}),
            ("describe_schema", {"database": "hr_copy"}),
            ("run_preview", {"database": "hr_copy", "sql": "SELECT 1"}),
            ("explain", {"database": "hr_copy", "sql": "SELECT 1"}),
        ):
            result = await c.call_tool(tool, args)
            assert result.is_error, tool
            assert _text(result).endswith("No database named 'hr_copy' is registered. Available here: hr.")
        assert [str(r.uri) for r in (await c.list_resources()).resources] == ["schema://hr"]
        with pytest.raises(Exception, match="hr_copy"):
            await c.read_resource("schema://hr_copy")


@pytest.mark.asyncio
@pytest.mark.parametrize("which", [None, "garbage", "revoked"])
async def test_http_without_a_valid_key_is_refused(settings: Settings, sqlite_url: str, which: str | None) -> None:
    async with served(settings, sqlite_url) as (app, keys), _http(app, keys.get(which or "", which)) as http:
        response = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "c2s_" not in response.text and "key" in response.json()["error"].lower()


@pytest.mark.asyncio
async def test_http_rate_limit_by_tier_says_when_to_retry(
    settings: Settings, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chat2sql.ratelimit

    monkeypatch.setitem(chat2sql.ratelimit.TIERS, "standard", Limit(60, 2))  # two requests, then a minute
    assistant = await _assistant(settings, sqlite_url)
    keys = KeyStore.open(settings)
    key = keys.create("busy", "standard")
    keys.close()
    app = build_app(settings, assistant=assistant, platforms=[])
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with app.router.lifespan_context(app), _http(app, key) as http:
        statuses = [(await http.post("/mcp", json=body)).status_code for _ in range(2)]
        limited = await http.post("/mcp", json=body)
    assert 429 not in statuses
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


# --- stdio: python -m bot mcp -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stdio_server_for_the_local_user(tmp_path: Path, sqlite_url: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CHAT2SQL_DATA_DIR": str(tmp_path / "state"),
        "CHAT2SQL_INFERENCE": "worker",  # no model is loaded for these tools
        "CHAT2SQL_WORKER_URL": "http://127.0.0.1:9",
        "CHAT2SQL_WORKER_API_KEY": "c2s_unused",
    }
    settings = Settings(data_dir=tmp_path / "state", _env_file=None)  # type: ignore[call-arg]
    registry = Registry.open(settings)
    registry.add("hr", sqlite_url, registered_by="cli")
    registry.close()
    params = StdioServerParameters(command=sys.executable, args=["-m", "bot", "mcp"], env=env, cwd=os.getcwd())
    async with Client(params) as client:
        assert {t.name for t in (await client.list_tools()).tools} >= {"ask", "run_preview"}
        assert _names(await client.call_tool("list_databases", {})) == ["hr"]
        preview = await client.call_tool(
            "run_preview", {"database": "hr", "sql": "SELECT COUNT(*) AS n FROM employees"}
        )
        assert not preview.is_error and preview.structured_content is not None
        assert preview.structured_content["rows"] == [[7]]
        refused = await client.call_tool("run_preview", {"database": "hr", "sql": "DROP TABLE employees"})
        assert refused.is_error
    store = BotStore.open(settings)
    try:
        rows = store.audit(limit=5)
        assert {r.platform for r in rows} == {"mcp"} and all(r.workspace == "local" for r in rows)
    finally:
        store.close()


@pytest.mark.asyncio
async def test_a_hidden_column_is_unknown_to_every_tool(assistant: Assistant) -> None:
    assistant.registry.glossary.define("hr", "hidden", "employees.email", "", by="admin")
    server = Chat2SQLServer(assistant, caller=local_caller("ada"))
    async with Client(server) as client:
        schema = _text(await client.call_tool("describe_schema", {"database": "hr"}))
        assert "employees" in schema and "email" not in schema
        for tool in ("explain", "run_preview"):
            result = await client.call_tool(tool, {"database": "hr", "sql": "SELECT email FROM employees"})
            assert result.is_error and "unknown column" in _text(result), (tool, _text(result))
