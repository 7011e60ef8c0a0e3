"""chat2sql as tools for any assistant that speaks the Model Context Protocol.

``python -m bot mcp`` serves them over stdio for a local user (Claude Desktop, VS Code,
Cursor start it as a subprocess); ``python -m bot serve`` mounts them at ``/mcp`` (streamable
HTTP, stateless, JSON responses) behind the worker's API keys. Built on the official SDK
(``mcp.server.mcpserver.MCPServer``). The tools are the chat's own operations, through the
same core:

- ``list_databases``: the databases the caller may use, with their descriptions;
- ``describe_schema(database, question?)``: the schema as the model sees it (hidden columns
  left out); with a question, the tables its prompt would keep within the budget;
- ``ask(database, question)``: checked SQL and its warnings, by the same path as a chat
  question (rate limits, cache, guard, the audit row with platform ``mcp``); nothing is run;
- ``run_preview(database, sql)``: the guard, then the read-only preview, a few rows at most,
  as a table (the audit row is written first);
- ``explain(database, sql)``: what the SQL does, in plain English.

Each registered database's schema is a resource, ``schema://NAME``. Nothing returned names a
connection URL or a password: the core's replies never do.

Who calls: over stdio, the local user (``platform=mcp``, ``workspace=local``), with the access
the registry gives that user, as the console has. Over HTTP, an API key
(``Authorization: Bearer c2s_…``; ``python -m inference keys create``): its tier's token bucket
(429 with ``Retry-After``), and the databases it was created for
(``--databases sales,hr``; without it, every database the ``mcp`` platform may use). A key's
name is its user and its workspace (``key:NAME``): its own budget in the core's rate limits,
and its own access rows and defaults.
"""

from __future__ import annotations

import asyncio
import getpass
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ListResourcesResult, PaginatedRequestParams
from mcp.types import Resource as MCPResource
from pydantic import Field
from starlette.responses import JSONResponse

from bot.cells import format_table
from bot.core.assistant import Assistant
from bot.core.explain import explain_sql
from bot.core.text import one_line
from bot.core.types import Where
from chat2sql import errors, messages
from chat2sql.ratelimit import RateLimiter
from inference.keys import Authenticator, KeyInfoLike, Refusal, admit
from schemas.registry import RegisteredDatabase

PLATFORM = "mcp"
HTTP_PATH = "/mcp"
SCHEMA_URI = "schema://{database}"
CALLER_STATE = "chat2sql_mcp_caller"  # request.state key the HTTP gate sets

# The tools' arguments (module level: the SDK reads the annotations from the module's names).
Database = Annotated[str, Field(description="A database name, as list_databases gives it.", max_length=63)]
Question = Annotated[str, Field(description="The question, in plain words.", min_length=1, max_length=2000)]
Sql = Annotated[str, Field(description="One read-only SQL statement.", min_length=1, max_length=20000)]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Caller:
    """Who calls a tool: where the core sees them, and the databases their key is limited to."""

    where: Where
    databases: tuple[str, ...] | None = None  # None: whatever ``where`` may use

    def may_use(self, database: str) -> bool:
        return self.databases is None or database in self.databases


class McpKey(KeyInfoLike, Protocol):
    @property
    def databases(self) -> tuple[str, ...] | None: ...


def local_caller(user: str | None = None) -> Caller:
    """The stdio caller: the local user, as the console sees them."""
    return Caller(Where(platform=PLATFORM, workspace="local", channel="stdio", user_id=user or getpass.getuser()))


def key_caller(key: McpKey) -> Caller:
    """An API key's caller: a workspace of its own (``key:NAME``), so that one key's questions
    never spend another's workspace budget in the core's rate limits."""
    return Caller(
        Where(platform=PLATFORM, workspace=f"key:{key.name}", channel="http", user_id=key.name), databases=key.databases
    )


class Chat2SQLServer(MCPServer):
    """The MCP server over one ``Assistant``. ``caller`` answers for stdio and in-process
    sessions; an HTTP request's caller is the one its key gate put on the request."""

    def __init__(self, assistant: Assistant, *, caller: Caller | None = None) -> None:
        super().__init__("chat2sql", instructions=messages.MCP_INSTRUCTIONS, log_level="WARNING")
        self.assistant = assistant
        self._caller = caller
        self._register()

    # --- who calls ------------------------------------------------------------------------

    def caller_of(self, request: Any) -> Caller:
        """The caller of a request: the HTTP gate's, else the server's own (stdio)."""
        found = getattr(getattr(request, "state", None), CALLER_STATE, None)
        if isinstance(found, Caller):
            return found
        if self._caller is None:  # an HTTP request that did not pass the gate: never served
            raise ToolError(messages.MCP_NO_KEY)
        return self._caller

    def _context_caller(self, ctx: Context) -> Caller:
        return self.caller_of(ctx.request_context.request)

    async def usable(self, caller: Caller) -> list[RegisteredDatabase]:
        entries = await self.assistant.usable_databases(caller.where)
        return [e for e in entries if caller.may_use(e.name)]

    async def entry(self, caller: Caller, database: str) -> RegisteredDatabase:
        """A database the caller may use, or a ToolError that lists only those it may."""
        name = one_line(database)
        try:
            if not caller.may_use(name):
                raise errors.UnknownDatabase(name)
            return await self.assistant.allowed_entry(name, caller.where)
        except errors.UnknownDatabase:
            usable = tuple(e.name for e in await self.usable(caller))
            raise ToolError(messages.user_message(errors.UnknownDatabase(name, usable, here=True))) from None
        except errors.Chat2SQLError as err:
            raise ToolError(messages.user_message(err)) from None

    # --- the tools ------------------------------------------------------------------------

    def _register(self) -> None:
        @self.tool(name="list_databases")
        async def list_databases(ctx: Context) -> dict[str, Any]:
            """The databases you may ask about: name, SQL dialect, table count, description."""
            entries = await self.usable(self._context_caller(ctx))
            return {
                "databases": [
                    {"name": e.name, "dialect": e.dialect, "tables": len(e.schema.tables), "description": e.description}
                    for e in entries
                ]
            }

        @self.tool(name="describe_schema")
        async def describe_schema(database: Database, ctx: Context, question: Question | None = None) -> str:
            """The schema of a database as the model sees it (columns an admin hid are left
            out). With a question: only the tables that question's prompt would keep, and the
            notes the model would get (glossary terms, which columns hold the values it names)."""
            caller = self._context_caller(ctx)
            entry = await self.entry(caller, database)
            try:
                return await self.assistant.schema_text(entry.name, caller.where, question=question)
            except errors.Chat2SQLError as err:
                raise ToolError(messages.user_message(err)) from None

        @self.tool(name="ask")
        async def ask(database: Database, question: Question, ctx: Context) -> dict[str, Any]:
            """Checked, read-only SQL that answers a question, with any warnings. The SQL is
            not run: call run_preview for rows."""
            caller = self._context_caller(ctx)
            entry = await self.entry(caller, database)
            reply = await self.assistant.ask(question, caller.where, database=entry.name)
            if reply.answer is None:
                raise ToolError(reply.text)
            answer = reply.answer
            return {
                "sql": answer.sql,
                "database": answer.database,
                "warnings": list(answer.warnings),
                "cached": answer.cache_hit,
                "answer_id": answer.audit_id,
            }

        @self.tool(name="run_preview")
        async def run_preview(database: Database, sql: Sql, ctx: Context) -> dict[str, Any]:
            """Run one read-only SQL statement through chat2sql's guard and its read-only
            preview (a few rows at most, a time limit): the rows as a table. SQL the guard
            refuses is not run, and the reason is given."""
            caller = self._context_caller(ctx)
            entry = await self.entry(caller, database)
            try:
                preview = await self.assistant.preview_sql(entry.name, sql, caller.where)
            except errors.Chat2SQLError as err:
                raise ToolError(messages.user_message(err)) from None
            if not preview.ok:
                raise ToolError(preview.text)
            return {
                "sql": preview.sql,
                "columns": list(preview.columns),
                "rows": [[_finite(v) for v in row] for row in preview.rows],  # the preview's JSON values
                "truncated": preview.truncated,
                "table": format_table(preview.columns, preview.rows)
                + "\n"
                + messages.mcp_preview_note(len(preview.rows), more_rows=preview.truncated),
            }

        @self.tool(name="explain")
        async def explain(database: Database, sql: Sql, ctx: Context) -> str:
            """What a SQL statement does, in plain English (after the guard has read it)."""
            caller = self._context_caller(ctx)
            entry = await self.entry(caller, database)
            try:
                entry, verdict = await self.assistant.check_sql(entry.name, sql, caller.where)
            except errors.Chat2SQLError as err:
                raise ToolError(messages.user_message(err)) from None
            if not verdict.ok or verdict.normalized is None:
                raise ToolError(messages.user_message(errors.GuardRejected(verdict.rule or "", verdict.reason or "")))
            text = await asyncio.to_thread(explain_sql, verdict.normalized, dialect=entry.schema.dialect)
            return "\n".join([messages.explain_title(entry.name), text])

        @self.resource(SCHEMA_URI, name="schema", mime_type="text/plain")
        async def schema(database: str, ctx: Context) -> str:
            """A registered database's schema, as the model sees it."""
            caller = self._context_caller(ctx)
            try:
                entry = await self.entry(caller, database)
                return await self.assistant.schema_text(entry.name, caller.where)
            except ToolError as err:
                raise ResourceNotFoundError(str(err)) from None

    # --- resources: one per database the caller may use ----------------------------------------

    async def _handle_list_resources(self, ctx: Any, params: PaginatedRequestParams | None) -> ListResourcesResult:
        """The SDK lists registered resources only; ours depend on the caller (the request)."""
        caller = self.caller_of(ctx.request)
        return ListResourcesResult(
            resources=[
                MCPResource(
                    uri=SCHEMA_URI.format(database=e.name),
                    name=messages.mcp_schema_name(e.name),
                    description=e.description or messages.mcp_schema_description(e.name, e.dialect),
                    mime_type="text/plain",
                )
                for e in await self.usable(caller)
            ]
        )


def _finite(value: Any) -> Any:
    """A preview cell (already a JSON value, ``schemas.preview``), infinities and NaN as text:
    strict JSON has no such numbers."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


# --- HTTP: the key gate ----------------------------------------------------------------------------


class KeyGate:
    """ASGI middleware in front of the streamable HTTP app: the worker's key check
    (``inference.keys.admit``: 401, its tier's token bucket with 429 and ``Retry-After``),
    then the request goes on with its caller."""

    def __init__(self, app: ASGIApp, *, keys: Authenticator, limiter: RateLimiter) -> None:
        self.app, self.keys, self.limiter = app, keys, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        admitted = await admit(headers.get("authorization", ""), self.keys, self.limiter, bucket="mcp-key:")
        if isinstance(admitted, Refusal):
            await _refuse(admitted.status, admitted.message, admitted.headers)(scope, receive, send)
            return
        scope.setdefault("state", {})[CALLER_STATE] = key_caller(cast(McpKey, admitted))
        await self.app(scope, receive, send)


def _refuse(status: int, message: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def http_app(server: Chat2SQLServer, *, keys: Authenticator, limiter: RateLimiter) -> ASGIApp:
    """The ``/mcp`` endpoint: stateless streamable HTTP with JSON responses (any replica can
    answer any request; every request carries its key), behind the key gate. The caller
    must run ``server.session_manager.run()`` for the app's lifetime. Host-header checks are
    off: the endpoint is reached through whatever name the deployment gives it, and a
    browser cannot send the bearer key across origins."""
    starlette = server.streamable_http_app(
        streamable_http_path=HTTP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return KeyGate(starlette, keys=keys, limiter=limiter)


async def serve_stdio(assistant: Assistant, caller: Caller | None = None) -> int:
    """``python -m bot mcp``: until the client closes stdin."""
    server = Chat2SQLServer(assistant, caller=caller or local_caller())
    await server.run_stdio_async()
    return 0
