"""The inference clients against real local HTTP servers.

A scripted Starlette app served by uvicorn on 127.0.0.1 stands in for the worker or an
OpenAI-compatible server and records what it received (after bolt-python's
``mock_web_api_server``). Connection resets come from a bare asyncio TCP server that reads the
request and answers with an RST; "refused" is a port that is bound but not listening.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from inference.client import (
    OpenAICompatibleClient,
    RetryPolicy,
    WorkerClient,
    WorkerColdStarting,
    WorkerError,
    WorkerOverloaded,
    WorkerRejected,
    WorkerTimeout,
    WorkerUnavailable,
    make_client,
)
from inference.prompts import build_prompt
from inference.protocol import DatabaseInfo, GenerateRequest, GenerateResponse

API_KEY = "sk-test-0123456789abcdef"
SCHEMA_TEXT = "CREATE TABLE singer (\n  singer_id INTEGER PRIMARY KEY,\n  name TEXT,\n  country TEXT\n)"
REQUEST = GenerateRequest(
    question="How many singers are from France?",
    database=DatabaseInfo(name="concert_singer", dialect="sqlite", schema_text=SCHEMA_TEXT),
)
WORKER_ANSWER: dict[str, Any] = {
    "sql": "SELECT COUNT(*) FROM singer WHERE country = 'France'",
    "raw_output": "SELECT COUNT(*) FROM singer WHERE country = 'France';<|im_end|>",
    "adapter": None,
    "prompt_format": "schema@1",
    "prompt_tokens": 96,
    "completion_tokens": 14,
    "latency_ms": 812.5,
    "queue_ms": 3.0,
    "cold_start": False,
}
MODEL_LOADING = {"error": {"code": "model_loading", "message": "The model is loading."}}
SERVER_ERROR = {"error": {"code": "internal", "message": "CUDA error: out of memory"}}


# --- the scripted server ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Reply:
    status: int = 200
    body: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Received:
    path: str
    headers: dict[str, str]
    raw_body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw_body)


class ScriptedServer:
    """Answers each request with the next scripted reply (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self.url = ""
        self.stopping = False
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def _handle(self, request: Request) -> Response:
        self.received.append(
            Received(path=request.url.path, headers=dict(request.headers), raw_body=await request.body())
        )
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        deadline = time.monotonic() + reply.delay_s
        while time.monotonic() < deadline and not self.stopping:
            await asyncio.sleep(0.01)
        if reply.text is not None:
            return PlainTextResponse(reply.text, status_code=reply.status, headers=reply.headers)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    scripted.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(scripted.app, log_level="warning", access_log=False, lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield scripted
    scripted.stopping = True
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def refused_url() -> Iterator[str]:
    """Bound but not listening: connecting is refused, and nothing else can take the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def http_200(body: Any) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + data


@asynccontextmanager
async def resetting_server(answers: list[bytes | None]) -> AsyncIterator[str]:
    """Per connection: read one request, then send the next answer, or for None reset the
    connection (SO_LINGER 0 makes close() send an RST)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        await reader.readexactly(int(length[1]) if length else 0)
        answer = answers.pop(0)
        if answer is None:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            writer.write(answer)
            await writer.drain()
        writer.close()

    tcp = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{tcp.sockets[0].getsockname()[1]}"
    finally:
        tcp.close()
        await tcp.wait_closed()


# --- clients with a recorded sleep and a clock the test moves -----------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Clients:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.clock = FakeClock()
        self._made: list[WorkerClient | OpenAICompatibleClient] = []

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def _retry(self, max_attempts: int, grace_s: float) -> RetryPolicy:
        return RetryPolicy(max_attempts=max_attempts, backoff_base_s=0.5, backoff_max_s=8.0, cold_start_grace_s=grace_s)

    def worker(
        self,
        base_url: str,
        *,
        max_attempts: int = 3,
        grace_s: float = 30.0,
        timeout_s: float = 5.0,
        default_adapter: str | None = None,
    ) -> WorkerClient:
        client = WorkerClient(
            base_url=base_url,
            api_key=API_KEY,
            default_adapter=default_adapter,
            timeout_s=timeout_s,
            retry=self._retry(max_attempts, grace_s),
            sleep=self._sleep,
            clock=self.clock,
        )
        self._made.append(client)
        return client

    def openai(self, base_url: str, *, api_key: str | None = API_KEY) -> OpenAICompatibleClient:
        client = OpenAICompatibleClient(
            base_url=base_url,
            api_key=api_key,
            model="qwen-sql",
            timeout_s=5.0,
            retry=self._retry(3, 30.0),
            sleep=self._sleep,
            clock=self.clock,
        )
        self._made.append(client)
        return client

    async def close(self) -> None:
        for client in self._made:
            await client.close()


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close()


def assert_user_safe(err: WorkerError, *urls: str) -> None:
    text = err.message
    assert text and text.endswith(".")
    for secret in (API_KEY, "127.0.0.1", "http", "Error", *urls):
        assert secret not in text


# --- WorkerClient -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_worker_success_sends_the_key_only_in_the_header(server: ScriptedServer, clients: Clients) -> None:
    server.script(Reply(body=WORKER_ANSWER))
    answer = await clients.worker(server.url).generate(REQUEST)

    assert answer == GenerateResponse.model_validate(WORKER_ANSWER)
    [received] = server.received
    assert received.path == "/v1/generate"
    assert received.headers["authorization"] == f"Bearer {API_KEY}"
    assert received.json == REQUEST.model_dump(exclude_none=True)
    assert API_KEY.encode() not in received.raw_body
    assert "adapter" not in received.json  # None fields stay out of the body
    assert clients.sleeps == []


@pytest.mark.asyncio
async def test_worker_sends_the_default_adapter_only_when_the_request_names_none(
    server: ScriptedServer, clients: Clients
) -> None:
    server.script(Reply(body=WORKER_ANSWER))
    client = clients.worker(server.url, default_adapter="spider-v1")
    await client.generate(REQUEST)
    await client.generate(REQUEST.model_copy(update={"adapter": "sales-v2"}))

    assert [r.json["adapter"] for r in server.received] == ["spider-v1", "sales-v2"]


@pytest.mark.asyncio
async def test_5xx_is_retried_with_jittered_backoff_until_success(server: ScriptedServer, clients: Clients) -> None:
    server.script(
        Reply(status=500, body=SERVER_ERROR),
        Reply(status=503, body={"error": {"code": "overloaded", "message": "busy"}}),
        Reply(body=WORKER_ANSWER),
    )
    answer = await clients.worker(server.url, max_attempts=3).generate(REQUEST)

    assert answer.sql == WORKER_ANSWER["sql"]
    assert len(server.received) == 3
    assert len(clients.sleeps) == 2
    assert 0.0 <= clients.sleeps[0] <= 0.5 and 0.0 <= clients.sleeps[1] <= 1.0


@pytest.mark.asyncio
async def test_5xx_until_retries_are_spent_is_unavailable(server: ScriptedServer, clients: Clients) -> None:
    server.script(Reply(status=500, body=SERVER_ERROR))
    with pytest.raises(WorkerUnavailable) as caught:
        await clients.worker(server.url, max_attempts=4).generate(REQUEST)

    assert len(server.received) == 4
    assert len(clients.sleeps) == 3
    assert (caught.value.reason, caught.value.attempts) == ("http_500", 4)
    assert "CUDA" not in caught.value.message
    assert_user_safe(caught.value, server.url)


@pytest.mark.asyncio
async def test_503_model_loading_is_a_cold_start_at_once(server: ScriptedServer, clients: Clients) -> None:
    server.script(Reply(status=503, body=MODEL_LOADING, headers={"Retry-After": "20"}), Reply(body=WORKER_ANSWER))
    client = clients.worker(server.url)
    with pytest.raises(WorkerColdStarting) as caught:
        await client.generate(REQUEST)

    assert len(server.received) == 1 and clients.sleeps == []
    assert caught.value.retry_after_s == 20
    assert "warming up" in caught.value.message
    assert_user_safe(caught.value, server.url)

    assert (await client.generate(REQUEST)).sql == WORKER_ANSWER["sql"]


@pytest.mark.asyncio
async def test_429_is_overloaded_with_retry_after_and_not_retried(server: ScriptedServer, clients: Clients) -> None:
    server.script(
        Reply(
            status=429,
            body={"error": {"code": "rate_limited", "message": "Slow down."}},
            headers={"Retry-After": "7"},
        )
    )
    with pytest.raises(WorkerOverloaded) as caught:
        await clients.worker(server.url).generate(REQUEST)

    assert caught.value.retry_after_s == 7
    assert "7 s" in caught.value.message
    assert len(server.received) == 1 and clients.sleeps == []
    assert_user_safe(caught.value, server.url)


@pytest.mark.asyncio
async def test_retry_after_as_an_http_date(server: ScriptedServer, clients: Clients) -> None:
    in_a_minute = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    server.script(Reply(status=429, body={}, headers={"Retry-After": in_a_minute}))
    with pytest.raises(WorkerOverloaded) as caught:
        await clients.worker(server.url).generate(REQUEST)

    assert caught.value.retry_after_s is not None and 50 <= caught.value.retry_after_s <= 61


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "code", "detail"),
    [
        (401, "unauthorized", "Missing or invalid API key."),
        (422, "invalid_request", "question: must not contain the control token <|im_end|>"),
    ],
)
async def test_other_4xx_is_rejected_with_the_workers_message_and_not_retried(
    server: ScriptedServer, clients: Clients, status: int, code: str, detail: str
) -> None:
    server.script(Reply(status=status, body={"error": {"code": code, "message": detail}}))
    with pytest.raises(WorkerRejected) as caught:
        await clients.worker(server.url).generate(REQUEST)

    assert (caught.value.status, caught.value.code, caught.value.detail) == (status, code, detail)
    assert caught.value.message == f"The model service refused the request: {detail}"
    assert len(server.received) == 1 and clients.sleeps == []


@pytest.mark.asyncio
async def test_4xx_without_an_error_body_gets_a_generic_message(server: ScriptedServer, clients: Clients) -> None:
    server.script(Reply(status=404, text=f"<html>no route {server.url}/v1/generate</html>"))
    with pytest.raises(WorkerRejected) as caught:
        await clients.worker(server.url).generate(REQUEST)

    assert (caught.value.code, caught.value.detail) == ("http_404", None)
    assert_user_safe(caught.value, server.url)


@pytest.mark.asyncio
async def test_an_answer_that_is_not_a_generate_response_is_unavailable(
    server: ScriptedServer, clients: Clients
) -> None:
    server.script(Reply(text="<html>proxy login</html>"))
    with pytest.raises(WorkerUnavailable) as caught:
        await clients.worker(server.url).generate(REQUEST)
    assert caught.value.reason == "bad_response"

    server.script(Reply(body={"sql": "SELECT 1"}))
    with pytest.raises(WorkerUnavailable):
        await clients.worker(server.url).generate(REQUEST)


@pytest.mark.asyncio
async def test_a_slow_generation_times_out_and_is_not_retried(server: ScriptedServer, clients: Clients) -> None:
    server.script(Reply(body=WORKER_ANSWER, delay_s=5.0))
    with pytest.raises(WorkerTimeout) as caught:
        await clients.worker(server.url, timeout_s=0.2).generate(REQUEST)

    assert caught.value.timeout_s == 0.2
    assert "0.2 s" in caught.value.message
    assert len(server.received) == 1 and clients.sleeps == []
    assert_user_safe(caught.value, server.url)


@pytest.mark.asyncio
async def test_connection_refused_is_a_cold_start_within_grace_then_unavailable(
    refused_url: str, clients: Clients
) -> None:
    client = clients.worker(refused_url, max_attempts=3, grace_s=30.0)
    with pytest.raises(WorkerColdStarting) as cold:
        await client.generate(REQUEST)
    assert len(clients.sleeps) == 2  # retried before reporting
    assert_user_safe(cold.value, refused_url)

    clients.clock.now += 29.0
    with pytest.raises(WorkerColdStarting):
        await client.generate(REQUEST)

    clients.clock.now += 2.0  # 31 s since the first failure
    with pytest.raises(WorkerUnavailable) as down:
        await client.generate(REQUEST)
    assert down.value.reason == "connection:ConnectError"
    assert_user_safe(down.value, refused_url)


@pytest.mark.asyncio
async def test_connection_reset_counts_as_a_cold_start_and_any_answer_restarts_the_grace(
    clients: Clients,
) -> None:
    answers: list[bytes | None] = [None, http_200(WORKER_ANSWER), None, None]
    async with resetting_server(answers) as url:
        client = clients.worker(url, max_attempts=1, grace_s=30.0)
        with pytest.raises(WorkerColdStarting):
            await client.generate(REQUEST)

        clients.clock.now += 100.0
        assert (await client.generate(REQUEST)).sql == WORKER_ANSWER["sql"]
        with pytest.raises(WorkerColdStarting):  # 100 s after the first failure, but it answered since
            await client.generate(REQUEST)

        clients.clock.now += 30.0
        with pytest.raises(WorkerUnavailable) as down:
            await client.generate(REQUEST)
    assert down.value.reason.startswith("connection:")
    assert answers == []


# --- OpenAICompatibleClient -------------------------------------------------------------

COMPLETION = {
    "id": "cmpl-1",
    "object": "text_completion",
    "model": "qwen-sql",
    "choices": [{"index": 0, "text": "```sql\nSELECT 1;\n```", "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 57, "completion_tokens": 8, "total_tokens": 65},
}


@pytest.mark.asyncio
async def test_openai_client_builds_the_prompt_and_cleans_the_answer(server: ScriptedServer, clients: Clients) -> None:
    server.script(Reply(body=COMPLETION))
    answer = await clients.openai(server.url).generate(REQUEST)

    [received] = server.received
    assert received.path == "/v1/completions"
    assert received.headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY.encode() not in received.raw_body
    assert received.json == {
        "model": "qwen-sql",
        "prompt": build_prompt(
            "schema",
            question=REQUEST.question,
            database_name="concert_singer",
            dialect="sqlite",
            schema_text=SCHEMA_TEXT,
        ),
        "max_tokens": 128,
        "temperature": 0,
        "stop": ["<|im_end|>", "<|endoftext|>"],
    }
    assert answer.sql == "SELECT 1"
    assert answer.raw_output == "```sql\nSELECT 1;\n```"
    assert (answer.prompt_tokens, answer.completion_tokens) == (57, 8)
    assert (answer.adapter, answer.prompt_format) == (None, "schema@1")
    assert (answer.queue_ms, answer.cold_start) == (0.0, False)
    assert answer.latency_ms > 0


@pytest.mark.asyncio
async def test_openai_client_asks_for_the_adapter_and_the_requested_format(
    server: ScriptedServer, clients: Clients
) -> None:
    server.script(Reply(body={"choices": [{"text": "SELECT count(*) FROM singer<|im_end|>"}]}))
    request = REQUEST.model_copy(update={"adapter": "spider-v1", "prompt_format": "seed", "max_new_tokens": 64})
    answer = await clients.openai(server.url, api_key=None).generate(request)

    [received] = server.received
    assert "authorization" not in received.headers
    assert received.json["model"] == "spider-v1"
    assert received.json["max_tokens"] == 64
    assert received.json["prompt"] == build_prompt("seed", question=REQUEST.question, database_name="concert_singer")
    assert answer.sql == "SELECT count(*) FROM singer"
    assert (answer.adapter, answer.prompt_format) == ("spider-v1", "seed@1")
    assert (answer.prompt_tokens, answer.completion_tokens) == (0, 0)  # no usage block


@pytest.mark.asyncio
async def test_openai_client_shares_the_retry_loop(server: ScriptedServer, clients: Clients) -> None:
    server.script(Reply(status=502, text="bad gateway"), Reply(body=COMPLETION))
    answer = await clients.openai(server.url).generate(REQUEST)

    assert answer.sql == "SELECT 1"
    assert len(server.received) == 2 and len(clients.sleeps) == 1


@pytest.mark.asyncio
async def test_openai_client_never_passes_on_the_servers_error_text(server: ScriptedServer, clients: Clients) -> None:
    leaky = f"Incorrect API key provided: {API_KEY}"
    server.script(Reply(status=401, body={"error": {"message": leaky, "type": "authentication_error", "code": 401}}))
    with pytest.raises(WorkerRejected) as caught:
        await clients.openai(server.url).generate(REQUEST)

    assert (caught.value.status, caught.value.code, caught.value.detail) == (
        401,
        "authentication_error",
        None,
    )
    assert "credentials" in caught.value.message
    assert_user_safe(caught.value, server.url)
    assert len(server.received) == 1


# --- wiring -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_make_client_picks_the_implementation() -> None:
    worker = make_client(kind="worker", base_url="http://127.0.0.1:9", api_key=API_KEY)
    openai = make_client(kind="openai", base_url="http://127.0.0.1:9", api_key=None, model="qwen-sql")
    try:
        assert isinstance(worker, WorkerClient)
        assert isinstance(openai, OpenAICompatibleClient)
    finally:
        await worker.close()
        await openai.close()

    with pytest.raises(ValueError, match="API key"):
        make_client(kind="worker", base_url="http://127.0.0.1:9", api_key=None)
    with pytest.raises(ValueError, match="model name"):
        make_client(kind="openai", base_url="http://127.0.0.1:9", api_key=API_KEY)


def test_backoff_is_full_jitter_capped() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4.0)
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0)]:
        delays = [policy.backoff_s(failures) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the range, not pinned at zero
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
