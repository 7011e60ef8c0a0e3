"""Traces (Langfuse v5 over OpenTelemetry, captured in memory), Prometheus metrics, JSON
logs with the trace id, and A/B arms with their report."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from bot.core.experiment import Experiment, InvalidExperiment
from bot.core.types import Where
from bot.report import summarize
from bot.server import build_app
from chat2sql.log import JsonFormatter
from chat2sql.ratelimit import Limit
from chat2sql.settings import Settings
from chat2sql.tracing import LangfuseTracer, NoopTracer, make_tracer
from tests.support.assistant import ADMIN, ALICE, make_assistant
from tests.support.clients import ScriptedClient

GOOD = "SELECT name FROM employees ORDER BY id"
BAD = "SELECT headcount FROM departments"  # unknown column: the guard refuses, one retry follows


def _langfuse(settings: Settings, host: str = "http://127.0.0.1:9") -> tuple[Settings, InMemorySpanExporter]:
    # Langfuse keeps one client per public key: a fresh key per test keeps the exporters apart.
    keyed = settings.model_copy(
        update={
            "langfuse_public_key": f"pk-lf-{uuid.uuid4().hex[:8]}",
            "langfuse_secret_key": SecretStr("sk-lf-test"),
            "langfuse_host": host,
        }
    )
    return keyed, InMemorySpanExporter()


def _spans(tracer: LangfuseTracer, exporter: InMemorySpanExporter) -> list[object]:
    tracer.client.flush()
    return list(exporter.get_finished_spans())


@pytest.mark.asyncio
async def test_one_trace_per_question_with_every_step(settings: Settings, sqlite_url: str) -> None:
    keyed, exporter = _langfuse(settings)
    tracer = make_tracer(keyed, span_exporter=exporter)
    assert isinstance(tracer, LangfuseTracer)
    bot = make_assistant(settings, ScriptedClient([BAD, GOOD]), tracer=tracer)
    await bot.handle(f"admin register hr {sqlite_url}", ADMIN)
    reply = await bot.handle("who works here?", ALICE)
    assert reply.answer is not None
    trace_id = reply.answer.trace_id
    assert len(trace_id) == 32 and bot.store.get(reply.answer.audit_id).trace_id == trace_id  # type: ignore[union-attr]
    preview = await bot.preview(reply.answer.audit_id, ALICE)
    assert preview.ok
    spans = _spans(tracer, exporter)
    ours = [s for s in spans if format(s.context.trace_id, "032x") == trace_id]  # type: ignore[attr-defined]
    names = [s.name for s in ours]  # type: ignore[attr-defined]
    for step in ("question", "resolution", "schema_lookup", "generation", "guard", "retry", "validation", "preview"):
        assert step in names, names
    assert names.count("generation") == 2 and names.count("guard") == 2  # the refused answer and the retry
    root = next(s for s in ours if s.name == "question")  # type: ignore[attr-defined]
    attrs = dict(root.attributes)  # type: ignore[attr-defined]
    assert attrs["user.id"] == "slack:U-alice" or attrs.get("langfuse.user.id") == "slack:U-alice"
    assert any("C-general" in str(v) for v in attrs.values())  # platform, workspace, channel as attributes
    generation = next(s for s in ours if s.name == "generation")  # type: ignore[attr-defined]
    gen_attrs = dict(generation.attributes)  # type: ignore[attr-defined]
    assert gen_attrs["langfuse.observation.type"] == "generation"
    assert json.loads(gen_attrs["langfuse.observation.usage_details"]) == {"input": 10, "output": 5}
    assert "schema@1" in gen_attrs["langfuse.observation.metadata.prompt_format"]
    await bot.close()


@pytest.mark.asyncio
async def test_feedback_becomes_a_score_on_the_trace(settings: Settings, sqlite_url: str) -> None:
    scores: list[dict[str, object]] = []

    class Recording(NoopTracer):
        def score(self, *, trace_id: str, name: str, value: float, comment: str | None = None) -> None:
            scores.append({"trace_id": trace_id, "name": name, "value": value, "comment": comment})

    bot = make_assistant(settings, ScriptedClient([GOOD]), tracer=Recording())
    await bot.handle(f"admin register hr {sqlite_url}", ADMIN)
    reply = await bot.handle("who works here?", ALICE)
    assert reply.answer is not None
    await bot.feedback(reply.answer.audit_id, ALICE, "down", "SELECT 1")
    assert scores == [{"trace_id": reply.answer.trace_id, "name": "user_feedback", "value": 0.0, "comment": "SELECT 1"}]
    await bot.close()


class SilentHost:
    """A server that accepts connections and never answers, the worst Langfuse outage, until
    ``answer()``; it sees when a client gives up on a connection (closes it unanswered)."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"

    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.connected = threading.Event()  # a client is waiting on the host
        self.given_up: list[bool] = []  # per connection, in order: closed by the client unanswered
        self._answering, self._stop = threading.Event(), threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def waiting(self, connection: int = 0) -> bool:
        """Whether the client of that connection is still waiting for an answer."""
        return len(self.given_up) > connection and not self.given_up[connection]

    def answer(self) -> None:
        """From now on answer every request (so that the exporter can flush at shutdown)."""
        self._answering.set()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self._server.close()

    def _accept(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            self.given_up.append(False)
            thread = threading.Thread(target=self._hold, args=(conn, len(self.given_up) - 1), daemon=True)
            self._threads.append(thread)
            thread.start()
            self.connected.set()

    def _hold(self, conn: socket.socket, index: int) -> None:
        request = b""
        with conn:
            conn.settimeout(0.1)
            while not self._stop.is_set():
                if self._answering.is_set() and _complete(request):
                    conn.sendall(self.ANSWER)
                    return
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    self.given_up[index] = True
                    return
                request += chunk


def _complete(request: bytes) -> bool:
    head, sep, body = request.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    return len(body) >= length


@pytest.fixture
def silent_host() -> Iterator[SilentHost]:
    host = SilentHost()
    yield host
    host.close()


@pytest.mark.asyncio
async def test_a_langfuse_host_that_does_not_answer_never_slows_a_question(
    settings: Settings, sqlite_url: str, silent_host: SilentHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every question is answered while a request to Langfuse still waits on the silent host."""
    monkeypatch.setenv("LANGFUSE_TIMEOUT", "60")  # the exporter waits far longer than the questions take
    keyed, _ = _langfuse(settings, host=silent_host.url)
    tracer = make_tracer(keyed)  # the real OTLP exporter, pointed at the silent host
    bot = make_assistant(settings, ScriptedClient([GOOD]), cache_ttl_s=0, tracer=tracer)
    await bot.handle(f"admin register hr {sqlite_url}", ADMIN)
    assert (await bot.handle("who works here?", ALICE)).kind == "answer"  # its spans go to the host
    assert await asyncio.to_thread(silent_host.connected.wait, 60), "nothing was sent to Langfuse"
    answered_while_waiting = []
    for i in range(20):
        reply = await bot.handle(f"who works here, take {i}?", ALICE)
        assert reply.kind == "answer"
        await bot.feedback(reply.answer.audit_id, ALICE, "up")  # type: ignore[union-attr]
        answered_while_waiting.append(silent_host.waiting(0))
    # No question waited on the exporter: the first request to the host was still unanswered.
    assert answered_while_waiting == [True] * 20
    silent_host.answer()
    await bot.close()


@pytest.mark.asyncio
async def test_core_metrics_are_served_at_metrics(settings: Settings, sqlite_url: str) -> None:
    bot = make_assistant(settings, ScriptedClient([BAD, GOOD, GOOD]), user_limit=Limit(60, 3))
    await bot.handle(f"admin register hr {sqlite_url}", ADMIN)
    for question in ("who works here?", "who works here?", "again?", "and again?"):
        await bot.handle(question, ALICE)
    app = build_app(settings, assistant=bot, platforms=[])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as client:
        text = (await client.get("/metrics")).text
    for sample in (
        'chat2sql_bot_questions_total{outcome="answer"} 3.0',  # the second is a cache hit
        'chat2sql_bot_questions_total{outcome="RateLimited"} 1.0',  # burst of 3
        'chat2sql_bot_rate_limited_total{scope="user"} 1.0',
        'chat2sql_bot_errors_total{kind="RateLimited"} 1.0',
        'chat2sql_bot_guard_verdicts_total{verdict="known_columns"} 1.0',
        'chat2sql_bot_guard_verdicts_total{verdict="accepted"} 2.0',
        'chat2sql_bot_cache_lookups_total{result="hit"} 1.0',
        'chat2sql_bot_cache_lookups_total{result="miss"} 2.0',
        "chat2sql_bot_retries_total 1.0",
        'chat2sql_bot_tokens_total{kind="prompt"} 30.0',
        "chat2sql_bot_generations_total 3.0",
        "chat2sql_bot_tokens_per_request_count 3.0",
        "chat2sql_bot_question_seconds_count 4.0",
        "chat2sql_bot_generation_seconds_count 3.0",
    ):
        assert sample in text, sample
    await bot.close()


@pytest.mark.asyncio
async def test_log_lines_carry_the_trace_id(settings: Settings, sqlite_url: str) -> None:
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(JsonFormatter().format(record))

    handler = Capture(level=logging.WARNING)
    core = logging.getLogger("bot.core")  # the question flow logs under it
    core.addHandler(handler)
    try:
        # A notice that cannot be delivered is logged from inside the question.
        from inference.client import WorkerColdStarting

        bot = make_assistant(settings, ScriptedClient([WorkerColdStarting(retry_after_s=0.01), GOOD]))
        await bot.handle(f"admin register hr {sqlite_url}", ADMIN)

        async def broken_notify(text: str) -> None:
            raise RuntimeError("chat platform down")

        reply = await bot.handle("who works here?", ALICE, notify=broken_notify)
    finally:
        core.removeHandler(handler)
    assert reply.answer is not None
    (line,) = [json.loads(r) for r in records]
    assert line["request_id"] == reply.answer.trace_id
    await bot.close()


# --- A/B ------------------------------------------------------------------------------------

EXPERIMENT = (
    '{"name": "fmt", "arms": {"a": {"prompt_format": "schema"}, "b": {"prompt_format": "seed"}},'
    ' "percent_b": 50, "databases": {"pinned": "b"}}'
)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "Invalid JSON"),
        ('{"name": "x", "arms": {"a": {}}}', "exactly two arms"),
        ('{"name": "x", "arms": {"a": {}, "c": {}}}', "arms.c"),
        ('{"name": "x y", "arms": {"a": {}, "b": {}}}', "name"),
        ('{"name": "x", "arms": {"a": {}, "b": {}}, "percent_b": 120}', "percent_b"),
    ],
)
def test_invalid_experiments_are_refused_with_a_reason(text: str, needle: str) -> None:
    with pytest.raises(InvalidExperiment) as caught:
        Experiment.parse(text)
    assert needle in caught.value.message and caught.value.message.startswith("CHAT2SQL_EXPERIMENT is not valid")


def test_assignment_is_stable_split_and_pinnable() -> None:
    experiment = Experiment.parse(EXPERIMENT)
    assert experiment is not None
    users = [Where(platform="slack", workspace="T1", channel="C", user_id=f"U{i}") for i in range(2000)]
    arms = [experiment.assign(u, "shop") for u in users]
    assert arms == [experiment.assign(u, "shop") for u in users]  # stable
    assert 900 < arms.count("b") < 1100  # about half
    assert {experiment.assign(u, "pinned") for u in users[:50]} == {"b"}
    assert experiment.model_copy(update={"percent_b": 0}).assign(users[0], "shop") == "a"


@pytest.mark.asyncio
async def test_arms_reach_the_model_the_audit_and_the_report(
    settings: Settings, sqlite_url: str, tmp_path: Path
) -> None:
    experiment = Experiment.parse(EXPERIMENT)
    client = ScriptedClient([GOOD])
    bot = make_assistant(settings, client, experiment=experiment, cache_ttl_s=0)
    await bot.handle(f"admin register hr {sqlite_url}", ADMIN)
    users = [Where(platform="slack", workspace="T1", channel="C-general", user_id=f"U{i}") for i in range(40)]
    for user in users:
        reply = await bot.handle("who works here?", user)
        assert reply.answer is not None
        if user.user_id == "U0":
            await bot.feedback(reply.answer.audit_id, user, "up")
            await bot.preview(reply.answer.audit_id, user)
    formats = {r.prompt_format for r in client.requests}
    assert formats == {"schema", "seed"}
    for user, request in zip(users, client.requests, strict=True):
        expected = "seed" if experiment.assign(user, "hr") == "b" else "schema"  # type: ignore[union-attr]
        assert request.prompt_format == expected
    audit = bot.store.audit(limit=100)
    assert {a.arm for a in audit if a.question == "who works here?"} == {"fmt:a", "fmt:b"}
    summary = summarize(bot.store.experiment_rows())
    assert set(summary["arms"]) == {"fmt:a", "fmt:b"}
    total = sum(a["questions"] for a in summary["arms"].values())
    assert total == 40 and sum(a["up"] for a in summary["arms"].values()) == 1
    assert sum(a["previews"] for a in summary["arms"].values()) == 1
    assert all(a["valid_rate"] == 1.0 for a in summary["arms"].values())
    assert summary["valid_rate_p_value"] == 1.0
    await bot.close()

    env = {"CHAT2SQL_DATA_DIR": str(settings.data_dir), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "report", "ab", "--json"],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (
        json.loads(done.stdout)["arms"]["fmt:a"]["questions"] + json.loads(done.stdout)["arms"]["fmt:b"]["questions"]
        == 40
    )
    table = subprocess.run(
        [sys.executable, "-m", "bot", "report", "ab", "--since", "1d"],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0 and "| fmt:a |" in table.stdout and "p =" in table.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bot", "report", "ab", "--since", "yesterday-ish"],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_no_tracer_by_default(settings: Settings) -> None:
    assert isinstance(make_tracer(settings), NoopTracer)
    asyncio.run(asyncio.sleep(0))
