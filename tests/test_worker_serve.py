"""``python -m inference serve`` as a real process on a real port, called by the real client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from inference.client import WorkerClient, WorkerRejected
from inference.protocol import DatabaseInfo, GenerateRequest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path, tiny_model: Path, tiny_adapters: dict[str, Path]) -> Iterator[tuple[str, str]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT2SQL_")}
    env.update(
        CHAT2SQL_DATA_DIR=str(tmp_path / "data"),
        CHAT2SQL_MODEL=str(tiny_model),
        CHAT2SQL_ADAPTERS=f'{{"alpha": {{"source": "{tiny_adapters["alpha"]}", "prompt_format": "seed"}}}}',
        CHAT2SQL_DEVICE="cpu",
        CHAT2SQL_DTYPE="float32",
        CHAT2SQL_LOG_LEVEL="WARNING",
    )
    key = subprocess.run(
        [sys.executable, "-m", "inference", "keys", "create", "--tier", "standard", "--name", "e2e"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inference", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.2)
        else:
            pytest.fail("the worker did not become ready")
        yield base, key
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.asyncio
async def test_served_worker_answers_the_client(served: tuple[str, str]) -> None:
    base, key = served
    request = GenerateRequest(question="How many employees?", database=DatabaseInfo(name="hr"), max_new_tokens=4)
    client = WorkerClient(base_url=base, api_key=key)
    try:
        response = await client.generate(request)
        assert response.prompt_format == "schema@1" and 0 < response.completion_tokens <= 4
        seeded = await client.generate(request.model_copy(update={"adapter": "alpha"}))
        assert seeded.adapter == "alpha" and seeded.prompt_format == "seed@1"
    finally:
        await client.close()
    wrong = WorkerClient(base_url=base, api_key="c2s_not_a_key")
    with pytest.raises(WorkerRejected):
        await wrong.generate(request)
    await wrong.close()
    health = httpx.get(f"{base}/healthz").json()
    assert health["status"] == "ok" and health["adapters"] == ["alpha"]
    assert "chat2sql_worker_requests_total" in httpx.get(f"{base}/metrics").text
