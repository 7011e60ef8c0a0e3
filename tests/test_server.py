"""``python -m bot serve``: the real process, its health and metrics, and Slack's route
appearing when Slack is configured."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chat2sql.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHAT2SQL_", "SLACK_"))},
        "CHAT2SQL_DATA_DIR": str(tmp_path / "data"),
        "CHAT2SQL_INFERENCE": "worker",  # no model is loaded to serve health checks
        "CHAT2SQL_WORKER_API_KEY": "test-key",
        **extra_env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        cwd=Path(__file__).parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not come up")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down cleanly, then re-raises the signal it caught.
    assert proc.returncode in (0, -signal.SIGTERM), out.decode()
    assert "Application shutdown complete" in out.decode()
    return out.decode()


def test_serve_without_platforms_has_health_and_metrics(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path, {})
    try:
        health = httpx.get(f"{url}/healthz").json()
        assert health["status"] == "ok" and health["platforms"] == []
        assert "chat2sql_bot_ack_seconds" in httpx.get(f"{url}/metrics").text
        assert httpx.post(f"{url}/slack/events", content="x").status_code == 404
    finally:
        log = _stop(proc)
    assert "no chat platform is configured" in log


@pytest.mark.parametrize("spelling", ["SLACK_", "CHAT2SQL_SLACK_"])
def test_serve_with_slack_settings_serves_slack_events(tmp_path: Path, spelling: str) -> None:
    env = {f"{spelling}BOT_TOKEN": "xoxb-not-used", f"{spelling}SIGNING_SECRET": "s3cret-value"}
    proc, url = _serve(tmp_path, env)
    try:
        assert httpx.get(f"{url}/healthz").json()["platforms"] == ["slack"]
        assert httpx.post(f"{url}/slack/events", content="command=%2Fsql&text=x").status_code == 401
    finally:
        log = _stop(proc)
    assert "s3cret-value" not in log and "xoxb-not-used" not in log


def test_serve_refuses_a_bad_configuration_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT2SQL_", "SLACK_"))}
    env |= {"CHAT2SQL_DATA_DIR": str(tmp_path / "data"), "CHAT2SQL_INFERENCE": "worker"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", str(_free_port())],
        cwd=Path(__file__).parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: the worker needs an API key"


@pytest.mark.asyncio
async def test_start_up_freezes_its_heap_once_the_platforms_are_up(settings: Settings) -> None:
    """What start-up built stays for the process: it is moved out of the collector's sight, so
    a full collection during a question walks only what questions allocated."""
    import gc

    from bot.server import build_app
    from tests.support.assistant import make_assistant
    from tests.support.clients import ScriptedClient

    class Recorder:
        name = "recorder"

        async def start(self) -> None:
            started.append(gc.get_freeze_count())

        def mount(self, app: object) -> None: ...

        async def stop(self) -> None: ...

    started: list[int] = []
    gc.unfreeze()
    assistant = make_assistant(settings, ScriptedClient([]))
    app = build_app(settings, assistant=assistant, platforms=[Recorder()])
    try:
        async with app.router.lifespan_context(app):
            assert started == [0] and gc.get_freeze_count() > 0  # frozen after the platforms started
    finally:
        gc.unfreeze()
