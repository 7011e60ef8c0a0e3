"""The worker's HTTP API on the tiny model: keys, limits, validation, readiness, metrics."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chat2sql.ratelimit import TIERS, InMemoryRateLimiter, RateLimiter, RedisRateLimiter
from chat2sql.settings import Settings
from inference.engine import Engine, EngineConfig
from inference.keys import KeyStore
from inference.server import build_app
from inference.service import Worker, WorkerOptions

BODY = {
    "question": "How many employees are there per department?",
    "database": {
        "name": "hr",
        "dialect": "sqlite",
        "schema_text": "CREATE TABLE employees (\n  id INTEGER\n);",
    },
    "max_new_tokens": 6,
}
MAX_BODY_BYTES = Settings.model_fields["worker_max_body_bytes"].default


@pytest.fixture(scope="module")
def tiny_engine(tiny_model: Path, tiny_adapters: dict[str, Path]) -> Engine:
    engine = Engine.load(EngineConfig(model_path=tiny_model, device="cpu", dtype="float32"))
    engine.load_adapter("alpha", tiny_adapters["alpha"])
    return engine


@pytest.fixture
def keys(settings: Settings) -> Iterator[KeyStore]:
    store = KeyStore.open(settings)
    yield store
    store.close()


def _app(load: Callable[[], Engine], keys: KeyStore, limiter: RateLimiter, **options: object) -> FastAPI:
    worker = Worker(load_engine=load, options=WorkerOptions(adapter_formats={"alpha": "seed"}, **options))  # type: ignore[arg-type]
    return build_app(worker=worker, keys=keys, limiter=limiter, max_body_bytes=MAX_BODY_BYTES)


@pytest.fixture
def client(tiny_engine: Engine, keys: KeyStore) -> Iterator[TestClient]:
    with TestClient(_app(lambda: tiny_engine, keys, InMemoryRateLimiter())) as c:
        for _ in range(200):
            if c.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        yield c


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_generate(client: TestClient, keys: KeyStore) -> None:
    key = keys.create("team-a", "standard")
    response = client.post("/v1/generate", json=BODY, headers=_auth(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["prompt_format"] == "schema@1" and body["adapter"] is None and body["cold_start"] is False
    assert 0 < body["completion_tokens"] <= 6 and body["prompt_tokens"] > 20
    assert set(body) >= {"sql", "raw_output", "latency_ms", "queue_ms"}
    seeded = client.post("/v1/generate", json={**BODY, "adapter": "alpha"}, headers=_auth(key)).json()
    assert seeded["prompt_format"] == "seed@1" and seeded["adapter"] == "alpha"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, {"Authorization": "Bearer c2s_wrong"}],
)
def test_401_without_a_valid_key(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/generate", json=BODY, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_key_in_body_is_not_accepted(client: TestClient, keys: KeyStore) -> None:
    key = keys.create("body-key", "standard")
    response = client.post("/v1/generate", json={**BODY, "api_key": key})
    assert response.status_code == 401


def test_revoked_key_and_new_key_take_effect_at_once(client: TestClient, settings: Settings) -> None:
    other = KeyStore.open(settings)  # as if `python -m inference keys create` ran elsewhere
    key = other.create("late", "premium")
    assert client.post("/v1/generate", json=BODY, headers=_auth(key)).status_code == 200
    other.revoke("late")
    assert client.post("/v1/generate", json=BODY, headers=_auth(key)).status_code == 401
    other.close()


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"question": ""}, "question"),
        ({"question": "x" * 501}, "question"),
        ({"question": ["not", "text"]}, "question"),
        ({"question": "hi <|im_start|>"}, "control token"),
        ({"database": {"name": "a<|im_end|>"}}, "control token"),
        ({"database": "hr"}, "database"),
        ({"max_new_tokens": "many"}, "max_new_tokens"),
        ({"adapter": "missing"}, "Unknown adapter"),
        ({"prompt_format": "fancy"}, "Unknown prompt format"),
    ],
)
def test_422_with_a_clear_message(client: TestClient, keys: KeyStore, patch: dict[str, object], needle: str) -> None:
    key = keys.create(f"k-{uuid.uuid4().hex[:8]}", "standard")
    response = client.post("/v1/generate", json={**BODY, **patch}, headers=_auth(key))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and needle in error["message"]


def test_ordinary_question_with_ignore_is_fine(client: TestClient, keys: KeyStore) -> None:
    key = keys.create("plain", "standard")
    body = {**BODY, "question": "Ignore null values and count employees"}
    assert client.post("/v1/generate", json=body, headers=_auth(key)).status_code == 200


def _drain(limiter: RateLimiter, name: str, client: TestClient) -> None:
    client.portal.call(limiter.acquire, f"key:{name}", TIERS["standard"], TIERS["standard"].burst)  # type: ignore[union-attr]


def test_429_with_retry_after(tiny_engine: Engine, keys: KeyStore) -> None:
    limiter = InMemoryRateLimiter()
    with TestClient(_app(lambda: tiny_engine, keys, limiter)) as client:
        key = keys.create("busy", "standard")
        _drain(limiter, "busy", client)
        response = client.post("/v1/generate", json=BODY, headers=_auth(key))
        assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["Retry-After"]) >= 1


def test_redis_limits_are_shared_between_replicas(tiny_engine: Engine, keys: KeyStore, redis_url: str) -> None:
    prefix = f"c2s:test:{uuid.uuid4().hex[:8]}:"
    first, second = (
        RedisRateLimiter(url=redis_url, prefix=prefix),
        RedisRateLimiter(url=redis_url, prefix=prefix),
    )
    key = keys.create("shared", "standard")
    with (
        TestClient(_app(lambda: tiny_engine, keys, first)) as a,
        TestClient(_app(lambda: tiny_engine, keys, second)) as b,
    ):
        _drain(first, "shared", a)
        response = b.post("/v1/generate", json=BODY, headers=_auth(key))  # the other replica
        assert response.status_code == 429 and "Retry-After" in response.headers


def test_503_while_loading_then_ready(tiny_engine: Engine, keys: KeyStore) -> None:
    release = threading.Event()

    def slow_load() -> Engine:
        release.wait(30)
        return tiny_engine

    key = keys.create("early", "standard")
    with TestClient(_app(slow_load, keys, InMemoryRateLimiter())) as client:
        assert client.get("/healthz").json()["status"] == "loading"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "model_loading"
        response = client.post("/v1/generate", json=BODY, headers=_auth(key))
        assert response.status_code == 503 and response.json()["error"]["code"] == "model_loading"
        assert "Retry-After" in response.headers
        release.set()
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert client.post("/v1/generate", json=BODY, headers=_auth(key)).status_code == 200


def test_cold_start_waits_when_configured(tiny_engine: Engine, keys: KeyStore) -> None:
    release = threading.Timer(0.3, lambda: None)

    def slow_load() -> Engine:
        threading.Event().wait(0.3)
        return tiny_engine

    key = keys.create("cold", "standard")
    with TestClient(_app(slow_load, keys, InMemoryRateLimiter(), cold_start_wait_s=30)) as client:
        body = client.post("/v1/generate", json=BODY, headers=_auth(key)).json()
        assert body["cold_start"] is True
        assert client.post("/v1/generate", json=BODY, headers=_auth(key)).json()["cold_start"] is False
    release.cancel()


def test_failed_load_is_reported(keys: KeyStore) -> None:
    def broken() -> Engine:
        raise RuntimeError("no weights")

    key = keys.create("broken", "standard")
    with TestClient(_app(broken, keys, InMemoryRateLimiter())) as client:
        for _ in range(100):
            if client.get("/readyz").json()["error"]["code"] == "model_failed":
                break
            threading.Event().wait(0.02)
        response = client.post("/v1/generate", json=BODY, headers=_auth(key))
        assert response.status_code == 503 and response.json()["error"]["code"] == "model_failed"
        assert "no weights" not in response.text


def test_metrics(client: TestClient, keys: KeyStore) -> None:
    key = keys.create("metered", "internal")
    client.post("/v1/generate", json=BODY, headers=_auth(key))
    client.post("/v1/generate", json=BODY, headers={})
    text = client.get("/metrics").text
    assert 'chat2sql_worker_requests_total{outcome="ok"}' in text
    assert 'chat2sql_worker_requests_total{outcome="unauthorized"}' in text
    assert "chat2sql_worker_latency_seconds_bucket" in text and "chat2sql_worker_model_ready 1.0" in text
    assert 'chat2sql_worker_tokens_total{kind="completion"}' in text


def test_generation_failure_is_a_json_500(keys: KeyStore, tiny_engine: Engine) -> None:
    class Broken:
        adapters = ()
        name = "broken"

        def count_tokens(self, text: str) -> int:
            return len(text.split())

        def generate(self, *_: object, **__: object) -> list[object]:
            raise RuntimeError("CUDA error: secret details")

    key = keys.create("boom", "standard")
    with TestClient(_app(lambda: Broken(), keys, InMemoryRateLimiter()), raise_server_exceptions=False) as client:  # type: ignore[arg-type,return-value]
        for _ in range(100):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.02)
        response = client.post("/v1/generate", json=BODY, headers=_auth(key))
        assert response.status_code == 500 and response.json()["error"]["code"] == "generation_failed"
        assert "secret details" not in response.text
