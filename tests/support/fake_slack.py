"""A fake Slack on 127.0.0.1: the Web API (``/api/<method>``), ``response_url`` webhooks,
the file-upload URLs, and a Socket Mode websocket — a real HTTP server that records every
call, as bolt-python's own tests do.

Tests sign their requests to the bot with ``signed_headers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

BOT_USER = "UBOT"
TEAM = "T1"


@dataclass
class Call:
    method: str  # Web API method, "respond" for a response_url, "upload" for file bytes
    body: dict[str, Any]
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.perf_counter)  # when the call arrived


def signed_headers(secret: str, body: bytes | str, *, timestamp: int | None = None) -> dict[str, str]:
    """Slack's signature: HMAC-SHA256 over ``v0:{timestamp}:{body}``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failures: dict[str, str] = {}  # method → Slack error code to answer with
        self.socket_envelopes: list[dict[str, Any]] = []  # sent to a Socket Mode client on connect
        self.socket_acks: list[dict[str, Any]] = []
        self._ts = itertools.count(1)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/respond/{hook}", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, hook: str = "hook") -> str:
        return f"{self.base_url}/respond/{hook}"

    # --- queries --------------------------------------------------------------------------

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Callable[[FakeSlack], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; calls so far: {[(c.method, c.body) for c in self.calls]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.2))

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._changed.set()

    # --- handlers -------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _body(request)
        self._record(Call(method=method, body=body, path=request.path, headers=dict(request.headers)))
        if method in self.failures:
            return web.json_response({"ok": False, "error": self.failures[method]})
        return web.json_response({"ok": True, **self._answer(method, body)})

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        ts = f"1700000000.{next(self._ts):06d}"
        match method:
            case "auth.test":
                return {"user_id": BOT_USER, "bot_id": "BBOT", "team_id": TEAM, "team": "Test", "url": "https://t/"}
            case "chat.postMessage":
                return {"channel": body.get("channel"), "ts": ts, "message": {"ts": ts, "text": body.get("text")}}
            case "chat.postEphemeral":
                return {"message_ts": ts}
            case "views.open":
                return {"view": {"id": "V1"}}
            case "files.getUploadURLExternal":
                file_id = f"F{next(self._ts)}"
                return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}
            case "files.completeUploadExternal":
                files = json.loads(body.get("files", "[]")) if isinstance(body.get("files"), str) else body["files"]
                return {"files": [{"id": f["id"], "title": f.get("title", "")} for f in files]}
            case "files.info":
                return {"file": {"id": body.get("file"), "name": "preview.csv"}}
            case "oauth.v2.access":
                return {
                    "access_token": "xoxb-installed",
                    "token_type": "bot",
                    "scope": "commands,chat:write",
                    "bot_user_id": BOT_USER,
                    "app_id": "A1",
                    "team": {"id": "T2", "name": "Installed"},
                    "enterprise": None,
                    "is_enterprise_install": False,
                    "authed_user": {"id": "U-installer"},
                }
            case "apps.connections.open":
                return {"url": self.base_url.replace("http://", "ws://") + "/socket"}
        return {}

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record(Call(method="respond", body=body, path=request.path))
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        self._record(Call(method="upload", body={"bytes": data}, path=request.path))
        return web.Response(text=f"OK - {len(data)}")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}})
        for envelope in self.socket_envelopes:
            await ws.send_json(envelope)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(msg.data))
                self._record(Call(method="socket_ack", body=json.loads(msg.data)))
        return ws


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if request.content_type == "application/json":
        return {**request.query, **json.loads(raw or b"{}")}
    fields: dict[str, Any] = {**request.query, **dict(parse_qsl(raw.decode()))}
    for key in ("blocks", "view", "attachments"):
        if isinstance(fields.get(key), str):
            fields[key] = json.loads(fields[key])
    return fields
