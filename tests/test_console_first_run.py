"""The first run: no database yet says how to get one; the in-process model starts loading at
start-up (console and server), so the first question waits only for what is left of the load."""

from __future__ import annotations

import asyncio
import io
import json
import threading

import pytest

from bot.console import ask, chat, start_model_when_useful
from bot.core.assistant import Assistant
from bot.server import build_app
from bot.wiring import background_load, build_assistant
from chat2sql import errors, messages
from chat2sql.settings import Settings
from inference.client import InferenceClient, WorkerUnavailable, make_client
from inference.engine import Engine
from inference.local import LocalInferenceClient
from inference.protocol import DatabaseInfo, GenerateRequest, GenerateResponse
from inference.service import Worker, WorkerOptions
from tests.support.assistant import console_assistant
from tests.support.clients import ScriptedClient

SQL = "SELECT name FROM departments ORDER BY id"


class SlowLoad:
    """A model load that takes until the test releases it, then fails (no model in tests)."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Engine:
        self.calls += 1
        self.started.set()
        self.release.wait(10)
        raise RuntimeError("no model in tests")

    def client(self) -> LocalInferenceClient:
        return LocalInferenceClient(worker=Worker(load_engine=self, options=WorkerOptions()), load_timeout_s=10)


class Starter:
    """A ``start_model`` that records whether a database was registered when it was called."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.seen: list[tuple[str, ...]] = []

    def __call__(self) -> None:
        self.seen.append(self.assistant.registry.names())


class OrderedClient(ScriptedClient):
    """Answers like ScriptedClient, noting whether the model had been started by then."""

    def __init__(self, starter: list[bool]) -> None:
        super().__init__([SQL])
        self.started_before: list[bool] = []
        self._starter = starter

    async def generate(self, request: GenerateRequest) -> GenerateResponse:
        self.started_before.append(bool(self._starter))
        return await super().generate(request)


# --- no database yet ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ask_with_no_database_says_how_to_get_one_and_loads_nothing(settings: Settings) -> None:
    bot = console_assistant(settings, [SQL])
    starter = Starter(bot)
    for database in (None, "sales"):
        out = io.StringIO()
        code = await ask(bot, "how many?", database=database, run=True, as_json=False, out=out, start_model=starter)
        assert code == 1 and out.getvalue() == messages.CONSOLE_NO_DATABASES + "\n"
    out = io.StringIO()
    assert await ask(bot, "how many?", database=None, run=False, as_json=True, out=out, start_model=starter) == 1
    assert json.loads(out.getvalue()) == {"error": messages.CONSOLE_NO_DATABASES, "error_kind": "NoDatabases"}
    assert starter.seen == []  # nothing would be asked of the model: no load to wait for at exit
    await bot.close()


def test_the_console_text_names_the_commands_that_exist() -> None:
    text = messages.CONSOLE_NO_DATABASES
    assert text.startswith("No database is registered yet.")
    for command in ("make demo", "python -m bot demo", "python -m schemas add NAME URL", "admin register NAME URL"):
        assert f"`{command}`" in text
    # The chat platforms keep their own wording (`/sql admin register`, `@chat2sql admin register`).
    assert "python -m" not in messages.user_message(errors.NoDatabases())


@pytest.mark.asyncio
async def test_chat_says_so_at_start_and_loads_the_model_once_a_database_is_registered(
    settings: Settings, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = console_assistant(settings, [SQL])
    starter = Starter(bot)
    script = "\n".join(["databases", "how many?", f"admin register hr {sqlite_url}", "departments?", "quit"]) + "\n"
    out = io.StringIO()
    assert await chat(bot, stdin=io.StringIO(script), out=out, start_model=starter) == 0
    text = out.getvalue()
    assert text.splitlines()[1] == messages.CONSOLE_NO_DATABASES  # right under the banner
    assert text.count(messages.CONSOLE_NO_DATABASES) == 3  # at start, `databases`, the question
    assert "Registered `hr`" in text and "SELECT name FROM departments ORDER BY id LIMIT 50" in text
    assert starter.seen == [("hr",)]  # once, after the registration
    assert capsys.readouterr().err == messages.CONSOLE_LOADING_MODEL + "\n"
    await bot.close()


# --- warm start -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ask_starts_the_model_before_the_question_reaches_it(
    settings: Settings, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[bool] = []
    client = OrderedClient(started)
    bot = build_assistant(settings, client=client)
    bot.registry.add("hr", sqlite_url, registered_by="t")
    out = io.StringIO()
    code = await ask(
        bot, "departments?", database="hr", run=False, as_json=True, out=out, start_model=lambda: started.append(True)
    )
    assert code == 0 and json.loads(out.getvalue())["sql"].startswith(SQL)
    assert client.started_before == [True] and started == [True]
    assert capsys.readouterr().err == messages.CONSOLE_LOADING_MODEL + "\n"  # stderr: --json keeps stdout to itself
    await bot.close()


@pytest.mark.asyncio
async def test_the_local_model_loads_in_the_background_and_the_first_question_joins_that_load(
    settings: Settings,
) -> None:
    load = SlowLoad()
    client = load.client()
    start = background_load(client)
    assert start is not None
    start()
    await asyncio.sleep(0)
    assert await asyncio.to_thread(load.started.wait, 5)  # loading before any question
    request = GenerateRequest(
        question="how many?", database=DatabaseInfo(name="hr", dialect="sqlite", schema_text="CREATE TABLE t (id INT);")
    )
    asking = asyncio.create_task(client.generate(request))
    await asyncio.sleep(0.05)
    assert not asking.done()  # the question waits for the load under way…
    load.release.set()
    with pytest.raises(WorkerUnavailable):
        await asking
    assert load.calls == 1  # …and does not start another
    await client.close()


@pytest.mark.asyncio
async def test_console_start_waits_for_a_running_loop_and_a_database(settings: Settings, sqlite_url: str) -> None:
    bot = console_assistant(settings, [SQL])
    starter = Starter(bot)
    note = io.StringIO()
    assert await start_model_when_useful(bot, starter, note=note) is starter and starter.seen == []
    bot.registry.add("hr", sqlite_url, registered_by="t")
    assert await start_model_when_useful(bot, starter, note=note) is None and starter.seen == [("hr",)]
    assert await start_model_when_useful(bot, None, note=note) is None
    assert note.getvalue() == messages.CONSOLE_LOADING_MODEL + "\n"
    await bot.close()


def test_remote_backends_have_nothing_to_load() -> None:
    remote: InferenceClient = make_client(kind="worker", base_url="http://127.0.0.1:9", api_key="k", timeout_s=1)
    assert background_load(remote) is None


@pytest.mark.asyncio
async def test_serve_starts_loading_the_model_at_start_up(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    load = SlowLoad()
    monkeypatch.setattr("bot.wiring.inference_client", lambda _settings: load.client())
    app = build_app(settings, platforms=[])
    assert load.calls == 0  # building the app loads nothing…
    try:
        async with app.router.lifespan_context(app):
            assert await asyncio.to_thread(load.started.wait, 5)  # …starting it does, before any question
    finally:
        load.release.set()
    assert load.calls == 1
