"""Load test of the real chat server process: ``python -m bot serve`` driven with signed Slack
slash commands and Teams 1:1 activities at a given concurrency.

    .venv/bin/python -m bench.load [--concurrency 10,50] [--requests 200] [--teams] [--local]

Around the server process, on 127.0.0.1: a fake Slack Web API (the answers arrive on each
command's ``response_url``), a fake Bot Connector for Teams (anonymous mode, development
only), and for the instant engine a fake model worker (``CHAT2SQL_INFERENCE=worker``); with
``--local`` the server runs the offline model in-process. Each request is one question; the
cache is off. Prints, per platform, acknowledgement p50/p99 and time to answer p50/p99, and per level the
errors (HTTP errors, error replies), lost requests (asked minus answered) and throughput.
Teams' "acknowledgement" is the HTTP response to the activity, which carries the answer
itself when it is ready within the reply window (Teams allows 15 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import web

from tests.support.databases import make_sqlite, sample_script
from tests.support.fake_slack import FakeSlack, signed_headers

SECRET = "load-test-signing-secret"
SQL = "SELECT name FROM employees ORDER BY id"
ROOT = Path(__file__).parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeWorker:
    """An instant model worker: ``POST /v1/generate`` answers at once."""

    async def start(self) -> str:
        async def generate(request: web.Request) -> web.Response:
            body = {"sql": SQL, "raw_output": SQL, "adapter": None, "prompt_format": "schema@1", "prompt_tokens": 120,
                    "completion_tokens": 12, "latency_ms": 1.0, "queue_ms": 0.0, "cold_start": False}  # fmt: skip
            return web.json_response(body)

        app = web.Application()
        app.router.add_post("/v1/generate", generate)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self._runner.cleanup()


class FakeConnector:
    """Records the bot's Teams replies: ``POST /v3/conversations/{id}/activities[/{reply_to}]``."""

    def __init__(self) -> None:
        self.answers: dict[str, float] = {}  # conversation → when its card (or error text) arrived
        self.errors = 0

    async def start(self) -> str:
        async def activities(request: web.Request) -> web.Response:
            body = await request.json()
            conversation = request.match_info["conversation"]
            if body.get("type") == "message" and conversation not in self.answers:
                text = str(body.get("text") or "")
                if body.get("attachments"):
                    self.answers[conversation] = time.perf_counter()
                elif text and "working on it" not in text.lower() and "warming" not in text.lower():
                    self.answers[conversation] = time.perf_counter()
                    self.errors += 1
            return web.json_response({"id": uuid.uuid4().hex})

        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", activities)
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", activities)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/"

    async def stop(self) -> None:
        await self._runner.cleanup()


def _teams_activity(i: int, tag: str) -> dict[str, Any]:
    user = f"aad-{tag}-{i}"
    return {
        "type": "message",
        "id": f"{tag}{i}",
        "channelId": "msteams",
        "serviceUrl": "https://smba.trafficmanager.net/amer/",
        "from": {"id": f"29:{user}", "name": user, "aadObjectId": user},
        "recipient": {"id": "28:bot", "name": "chat2sql"},
        "conversation": {"id": f"a:{tag}-{i}", "conversationType": "personal", "tenantId": "tenant"},
        "text": f"how many employees are there? ({tag} {i})",
        "channelData": {"tenant": {"id": "tenant"}},
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def _drive(url: str, fake: FakeSlack, connector: FakeConnector, n: int, concurrency: int, teams: bool, tag: str):
    http = httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency))
    gate = asyncio.Semaphore(concurrency)
    sent: dict[str, tuple[str, float]] = {}
    acks: dict[str, list[float]] = {"slack": [], "teams": []}
    http_errors = 0

    async def slack(i: int) -> None:
        nonlocal http_errors
        hook = f"{tag}-{i}"
        body = urlencode({"command": "/sql", "text": f"how many employees are there? ({hook})", "team_id": "T1",
                          "channel_id": "C1", "user_id": f"U{i % 50}", "response_url": fake.response_url(hook),
                          "trigger_id": "t", "api_app_id": "A1"})  # fmt: skip
        headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_headers(SECRET, body)}
        async with gate:
            sent[hook] = ("slack", time.perf_counter())
            started = time.perf_counter()
            response = await http.post("/slack/events", content=body, headers=headers)
            acks["slack"].append(time.perf_counter() - started)
            http_errors += response.status_code != 200

    async def team(i: int) -> None:
        nonlocal http_errors
        activity = _teams_activity(i, tag)
        async with gate:
            sent[activity["conversation"]["id"]] = ("teams", time.perf_counter())
            started = time.perf_counter()
            response = await http.post("/api/messages", json=activity)
            acks["teams"].append(time.perf_counter() - started)
            http_errors += response.status_code not in (200, 201, 202)

    jobs = [team(i) if teams and i % 2 else slack(i) for i in range(n)]
    await asyncio.gather(*jobs)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        slack_done = {
            c.path.rsplit("/", 1)[1] for c in fake.of("respond") if c.body.get("response_type") == "in_channel"
        }
        slack_done |= {c.path.rsplit("/", 1)[1] for c in fake.of("respond") if c.body.get("response_type") == "ephemeral"
                       and "warming" not in str(c.body.get("text", ""))}  # fmt: skip
        if all(k in slack_done or k in connector.answers for k in sent):
            break
        await asyncio.sleep(0.05)
    answers: dict[str, list[float]] = {"slack": [], "teams": []}
    error_replies = 0
    responds = {c.path.rsplit("/", 1)[1]: c for c in fake.of("respond") if "warming" not in str(c.body.get("text", ""))}
    for key, (platform, t0) in sent.items():
        if platform == "slack" and key in responds:
            answers["slack"].append(responds[key].at - t0)
            error_replies += responds[key].body.get("response_type") != "in_channel"
        elif platform == "teams" and key in connector.answers:
            answers["teams"].append(connector.answers[key] - t0)
    await http.aclose()
    error_replies += connector.errors
    lost = len(sent) - sum(len(v) for v in answers.values())
    return acks, answers, http_errors, error_replies, lost


async def run(levels: list[int], requests: int, teams: bool, local: bool) -> list[tuple[Any, ...]]:
    fake = await FakeSlack().start()
    connector = FakeConnector()
    connector_url = await connector.start()
    worker = FakeWorker()
    worker_url = await worker.start()
    rows: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        db = make_sqlite(Path(tmp) / "hr.db", sample_script("sqlite"))
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT2SQL_", "SLACK_", "LANGFUSE_"))}
        env |= {
            "CHAT2SQL_DATA_DIR": str(data),
            "CHAT2SQL_LOG_LEVEL": "WARNING",
            "SLACK_BOT_TOKEN": "xoxb-load",
            "SLACK_SIGNING_SECRET": SECRET,
            "CHAT2SQL_SLACK_API_URL": fake.api_url,
            "CHAT2SQL_CACHE_TTL_S": "0",
            "CHAT2SQL_USER_RATE_PER_MINUTE": "100000",
            "CHAT2SQL_USER_BURST": "100000",
            "CHAT2SQL_WORKSPACE_RATE_PER_MINUTE": "100000",
            "CHAT2SQL_WORKSPACE_BURST": "100000",
        }
        if teams:
            env |= {"CHAT2SQL_TEAMS_ALLOW_ANONYMOUS": "true", "CHAT2SQL_TEAMS_SERVICE_URL": connector_url}
        if local:
            env |= {"CHAT2SQL_INFERENCE": "local", "CHAT2SQL_DATA_DIR": str(data)}
        else:
            env |= {"CHAT2SQL_INFERENCE": "worker", "CHAT2SQL_WORKER_URL": worker_url, "CHAT2SQL_WORKER_API_KEY": "k"}
        subprocess.run([sys.executable, "-m", "schemas", "add", "hr", db], cwd=ROOT, env=env, check=True,
                       capture_output=True)  # fmt: skip
        if local:  # share the converted offline model instead of converting it again
            (data / "models").parent.mkdir(parents=True, exist_ok=True)
            shared = ROOT / "data" / "models"
            if shared.exists() and not (data / "models").exists():
                (data / "models").symlink_to(shared)
        server = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", str(port)], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else "server died"
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start"
                await asyncio.sleep(0.2)
            await _drive(url, fake, connector, 2, 1, teams, "warmup")  # Bolt's token check; the model's load
            for concurrency in levels:
                started = time.perf_counter()
                acks, answers, http_errors, error_replies, lost = await _drive(
                    url, fake, connector, requests, concurrency, teams, f"c{concurrency}"
                )
                wall = time.perf_counter() - started
                engine = "local model" if local else "instant"
                for platform in ("slack", "teams"):
                    if acks[platform]:
                        rows.append((engine, platform, concurrency, len(acks[platform]), _pct(acks[platform], 0.5),
                                     _pct(acks[platform], 0.99), _pct(answers[platform], 0.5),
                                     _pct(answers[platform], 0.99)))  # fmt: skip
                rows.append((engine, "all", concurrency, requests, "", "", "", "", http_errors + error_replies, lost,
                             requests / wall))  # fmt: skip
            metrics = httpx.get(f"{url}/metrics").text
            rows_metric = [line for line in metrics.splitlines() if line.startswith("chat2sql_bot_questions_total")]
            print("server /metrics:", json.dumps(rows_metric))
        finally:
            server.terminate()
            server.wait(timeout=60)
            await worker.stop()
            await connector.stop()
            await fake.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="10,50", help="comma-separated levels")
    parser.add_argument("--requests", type=int, default=200, help="requests per level")
    parser.add_argument("--teams", action="store_true", help="half the requests are Teams activities")
    parser.add_argument("--local", action="store_true", help="the offline model instead of the instant engine")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]
    rows = asyncio.run(run(levels, args.requests, args.teams, args.local))
    header = ("engine", "platform", "concurrency", "requests", "ack p50 ms", "ack p99 ms", "answer p50 ms",
              "answer p99 ms", "errors", "lost", "req/s")  # fmt: skip
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in row]
        print(" | ".join(cells + [""] * (len(header) - len(cells))))
    return 0 if all(row[9] == 0 for row in rows if row[1] == "all") else 1


if __name__ == "__main__":
    sys.exit(main())
