"""One valid request must not freeze the worker: the body limit, the key checked before the
body is read, and prompt building linear in the schema and off the event loop.

Order on ``/v1/generate``: key (401) → rate limit (429) → body size (413) → JSON (422).
The freeze test runs the real app under uvicorn in this process, with the tiny model's real
Qwen tokenizer, and asks ``/healthz`` while the big request is being tokenized.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from bench.worker_limits_bench import build_prompt_after, build_prompt_before, schema_of
from chat2sql.ratelimit import InMemoryRateLimiter
from chat2sql.settings import Settings
from inference.engine import Engine, EngineConfig
from inference.keys import KeyStore
from inference.protocol import MAX_SCHEMA_CHARS, GenerateRequest
from inference.server import BodyLimit, build_app
from inference.service import Worker, WorkerOptions

DEFAULT_LIMIT = Settings.model_fields["worker_max_body_bytes"].default
SMALL_LIMIT = 64 * 1024  # the smallest the setting allows
BIG_SCHEMA = "t\n\n" * 66_000  # 198,000 characters, 66,000 one-token tables
BODY: dict[str, Any] = {"question": "How many employees?", "database": {"name": "hr"}, "max_new_tokens": 2}


class _CountingEngine:
    """The real engine, counting tokenizer calls; with ``hold`` set, the first count waits
    until the test releases it (so the test can ask /healthz while a prompt is being built)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.calls = 0
        self.hold = False
        self.entered, self.release = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def count_tokens(self, text: str) -> int:
        self.calls += 1
        if self.hold and not self.entered.is_set():
            self.entered.set()
            self.release.wait(10)
        return self._engine.count_tokens(text)


class _Reads:
    """Outermost ASGI wrapper: how many body messages the app pulled from the server."""

    def __init__(self, app: FastAPI) -> None:
        self.app, self.count = app, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            self.count += message["type"] == "http.request"
            return message

        await self.app(scope, counted if scope["type"] == "http" else receive, send)


@pytest.fixture(scope="module")
def tiny_engine(tiny_model: Path) -> Engine:
    return Engine.load(EngineConfig(model_path=tiny_model, device="cpu", dtype="float32"))


@pytest.fixture
def engine(tiny_engine: Engine) -> _CountingEngine:
    return _CountingEngine(tiny_engine)


@pytest.fixture
def keys(settings: Settings) -> Iterator[KeyStore]:
    store = KeyStore.open(settings)
    yield store
    store.close()


def _app(engine: _CountingEngine, keys: KeyStore, *, max_body_bytes: int = DEFAULT_LIMIT) -> FastAPI:
    worker = Worker(load_engine=lambda: engine, options=WorkerOptions())  # type: ignore[arg-type,return-value]
    return build_app(worker=worker, keys=keys, limiter=InMemoryRateLimiter(), max_body_bytes=max_body_bytes)


def _wait_ready(get: Callable[[str], httpx.Response]) -> None:
    for _ in range(400):
        if get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    pytest.fail("the worker did not become ready")


@contextmanager
def _served(app: FastAPI) -> Iterator[httpx.Client]:
    """The app under a real uvicorn server on a real port, in a thread of this process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=30) as client:
            _wait_ready(client.get)
            yield client
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


@contextmanager
def _in_process(app: FastAPI) -> Iterator[tuple[TestClient, _Reads]]:
    reads = _Reads(app)
    with TestClient(reads) as client:  # type: ignore[arg-type]
        _wait_ready(client.get)
        reads.count = 0
        yield client, reads


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _big_body() -> dict[str, Any]:
    return {**BODY, "database": {"name": "hr", "schema_text": BIG_SCHEMA}}


# --- the freeze: a 198,000-character schema ------------------------------------------------


def test_big_schema_is_valid_and_cut_linearly() -> None:
    """The attack passes validation; the cut tokenizes each block at most once, up to the budget."""
    assert len(BIG_SCHEMA) == 198_000 <= MAX_SCHEMA_CHARS
    GenerateRequest.model_validate(_big_body())
    calls: list[int] = []

    def count(text: str) -> int:
        calls.append(len(text))
        return len(text.split())

    prompt = build_prompt_after(BIG_SCHEMA, max_tokens=2048, count_tokens=count)
    assert count(prompt) <= 2048 and prompt.count("\nt\n") > 1000
    assert len(calls) <= 2048 + 32 and sum(calls) < len(BIG_SCHEMA)  # the old loop: 64,000+ calls, ~6e9 characters


def test_healthz_answers_while_a_big_schema_is_tokenized(engine: _CountingEngine, keys: KeyStore) -> None:
    key = keys.create("big", "standard")
    with _served(_app(engine, keys)) as client:
        engine.hold, engine.calls = True, 0
        outcome: dict[str, Any] = {}

        def send() -> None:
            outcome["response"] = client.post("/v1/generate", json=_big_body(), headers=_auth(key))

        sender = threading.Thread(target=send)
        sender.start()
        try:
            assert engine.entered.wait(10), "prompt building never started"
            health = client.get("/healthz", timeout=2)  # the prompt is being built at this moment
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert not engine.release.is_set() and "response" not in outcome  # answered while held
        finally:
            engine.release.set()
            sender.join(30)
        response = outcome["response"]
        assert response.status_code == 200, response.text
        assert 0 < response.json()["prompt_tokens"] <= WorkerOptions().max_input_tokens
        assert engine.calls < 3000  # linear: the old loop made 64,000 calls here

        # The same request without the hold: linear again, and /healthz answers meanwhile
        # (how long it takes: bench/worker_limits_bench.py).
        engine.hold, engine.calls = False, 0
        answered_meanwhile = 0
        done = threading.Event()

        def send_then_signal() -> None:
            try:
                send()
            finally:
                done.set()

        sender = threading.Thread(target=send_then_signal)
        sender.start()
        while not done.is_set():
            assert client.get("/healthz", timeout=2).status_code == 200
            answered_meanwhile += not done.is_set()  # back before the big request was answered
        sender.join(30)
        assert outcome["response"].status_code == 200
        assert 0 < engine.calls < 3000  # linear without the hold too
        assert answered_meanwhile >= 1


def test_cut_is_the_old_cut_with_the_real_tokenizer(tiny_engine: Engine) -> None:
    """Byte for byte what the drop-one-block-and-recount loop produced, across budgets."""
    cut = 0
    for shape, chars in (("tables", 3_000), ("tables", 8_000), ("tiny blocks", 1_500)):
        schema = schema_of(shape, chars)
        for budget in (128, 300, 700, 1500, 2048, 8192):
            expected = build_prompt_before(schema, max_tokens=budget, count_tokens=tiny_engine.count_tokens)
            actual = build_prompt_after(schema, max_tokens=budget, count_tokens=tiny_engine.count_tokens)
            assert actual == expected, (shape, chars, budget)
            cut += schema not in actual
    assert cut >= 10  # most of these budgets do drop tables


# --- the key before the body, the size before parsing ------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer c2s_wrong"}, {"Authorization": "Basic abc"}], ids=str
)
@pytest.mark.parametrize("body", [b"{not json", b"x" * (DEFAULT_LIMIT * 3)], ids=["invalid", "oversize"])
def test_bad_key_is_401_without_reading_the_body(
    engine: _CountingEngine, keys: KeyStore, headers: dict[str, str], body: bytes
) -> None:
    with _in_process(_app(engine, keys)) as (client, reads):
        response = client.post("/v1/generate", content=body, headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
        assert reads.count == 0 and engine.calls == 0


def test_oversize_body_is_413_by_content_length_before_a_byte_is_read(engine: _CountingEngine, keys: KeyStore) -> None:
    key = keys.create("large", "standard")
    with _in_process(_app(engine, keys, max_body_bytes=SMALL_LIMIT)) as (client, reads):
        body = b"x" * (SMALL_LIMIT + 1)  # not even JSON: the size is checked first
        response = client.post("/v1/generate", content=body, headers=_auth(key))
        assert response.status_code == 413, response.text
        assert response.json()["error"] == {
            "code": "body_too_large",
            "message": f"The request body is larger than the worker accepts ({SMALL_LIMIT:,} bytes).",
        }
        assert reads.count == 0 and engine.calls == 0
        metrics = client.get("/metrics").text
        assert 'outcome="body_too_large"} 1.0' in metrics and 'outcome="ok"' not in metrics


def test_body_at_the_limit_is_read(engine: _CountingEngine, keys: KeyStore) -> None:
    key = keys.create("edge", "standard")
    raw = json.dumps(BODY).encode()
    with _in_process(_app(engine, keys, max_body_bytes=SMALL_LIMIT)) as (client, _):
        exact = raw + b" " * (SMALL_LIMIT - len(raw))  # JSON allows trailing whitespace
        response = client.post("/v1/generate", content=exact, headers=_auth(key))
        assert response.status_code == 200, response.text
        invalid = client.post("/v1/generate", content=b"{not json", headers=_auth(key))
        assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_request"
        assert "JSON" in invalid.json()["error"]["message"]


def test_chunked_body_over_the_limit_is_413(engine: _CountingEngine, keys: KeyStore) -> None:
    key = keys.create("chunked", "standard")

    def chunks(total: int) -> Iterator[bytes]:
        head = json.dumps(BODY).encode()[:-1] + b', "pad": "'
        yield head
        for _ in range(total // 4096):
            yield b"x" * 4096
        yield b'"}'

    with _served(_app(engine, keys, max_body_bytes=SMALL_LIMIT)) as client:
        response = client.post("/v1/generate", content=chunks(2 * SMALL_LIMIT), headers=_auth(key))
        assert response.request.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in response.request.headers
        assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
        small = client.post("/v1/generate", content=chunks(8192), headers=_auth(key))
        assert small.status_code == 422 and "pad" in small.json()["error"]["message"]  # read, parsed, refused
        assert engine.calls == 0


@pytest.mark.asyncio
async def test_body_limit_stops_reading_at_the_first_chunk_past_it() -> None:
    """The middleware alone, on an app that reads its whole body: 10 KB chunks, 64 KiB limit."""

    async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
        body = await Request(scope, receive).body()
        await PlainTextResponse(str(len(body)))(scope, receive, send)

    async def run(chunks: int, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
        pulled, sent = 0, []

        async def receive() -> Message:
            nonlocal pulled
            pulled += 1
            return {"type": "http.request", "body": b"x" * 10_000, "more_body": pulled < chunks}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
        await BodyLimit(echo_length, max_bytes=SMALL_LIMIT)(scope, receive, send)
        return sent[0]["status"], pulled

    assert await run(10, []) == (413, 7)  # 70,000 > 65,536 at the seventh chunk; three never read
    assert await run(6, []) == (200, 6)
    assert await run(10, [(b"content-length", b"100000")]) == (413, 0)


def test_largest_valid_request_fits_the_default_limit() -> None:
    """Why 1 MiB: every field at its maximum length in 4-byte characters, as our client sends it."""
    wide = "😀"
    text = {"question": wide * 500, "sql": wide * 4000}
    request = GenerateRequest.model_validate(
        {
            "question": wide * 500,
            "database": {"name": wide * 63, "dialect": "postgres", "schema_text": wide * MAX_SCHEMA_CHARS},
            "adapter": wide * 64,
            "prompt_format": wide * 64,
            "max_new_tokens": 512,
            "previous": {"sql": wide * 4000, "error": wide * 500},
            "context": text,
            "examples": [text] * 5,
        }
    )
    body = httpx.Request("POST", "http://worker/v1/generate", json=request.model_dump(exclude_none=True)).read()
    assert 900_000 < len(body) < DEFAULT_LIMIT
