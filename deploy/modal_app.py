"""chat2sql on Modal (modal 1.6): a GPU class and a CPU class for the model, the chat server on CPU.

    modal deploy deploy/modal_app.py      # deploy (README, "Deploy")
    modal run deploy/modal_app.py         # smoke test against the deployed app: health + one question

Everything tunable comes from the deployment config (``deploy/config.yaml``, or the file
``CHAT2SQL_DEPLOY_CONFIG`` names when deploying): GPU type, CPU cores and threads, scaling,
timeouts, batching, the model and adapters at pinned revisions, business hours, and the
profile (``profile:`` or ``CHAT2SQL_DEPLOY_PROFILE``) that picks which class the bot calls.

- ``Inference`` (GPU): weights and adapters live on a ``modal.Volume``, downloaded or
  converted once; ``@modal.enter(snap=True)`` does that work and the imports before the
  memory snapshot, the post-snapshot ``enter`` puts the weights on the GPU. Up to
  ``batching.max_size`` concurrent inputs per container are merged by the worker's batcher.
- ``CpuInference`` (CPU cores, scale to zero): the same worker code with the ``cpu:``
  profile (llama.cpp on the embedded GGUF, which loads in about a second). Up to
  ``cpu.parallel`` concurrent inputs per container, decoded together.
- ``bot`` (CPU, ``@modal.asgi_app``): ``bot.server`` with an inference client that spawns
  the selected class's ``generate``; Slack's and Teams' acknowledgements never wait on a model.
- ``warm_up`` (optional cron, in the business-hours time zone): starts one container of the
  selected class shortly before business hours.

Importing this module needs no Modal credentials and no network (``modal.Volume.from_name``
and ``modal.Secret.from_name`` are lazy), so the unit tests call the functions with ``.local()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import modal

from deploy.config import (
    DEFAULT_CONFIG,
    PROFILE_ENV,
    DeployConfig,
    Profile,
    apply_to_settings,
    load_config,
    selected_profile,
)

MINUTES = 60
REMOTE_ROOT = "/root"
REMOTE_CONFIG = f"{REMOTE_ROOT}/deploy_config.yaml"
VOLUME_DIR = "/vol"  # data_dir of the GPU containers: the model cache is /vol/models
REPO = Path(__file__).resolve().parents[1]
SOURCE_PACKAGES = ("chat2sql", "migrations", "schemas", "samples", "inference", "bot", "deploy")
CUDA_IMAGE = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
TORCH_INDEX = "https://download.pytorch.org/whl/cu128"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# llama-cpp-python builds llama.cpp from source. Not for the build machine's CPU (-march=native
# can stop with "illegal instruction" on another host) but for any x86-64 with AVX2 and FMA;
# no multimodal library (not used). Dockerfile.worker-cpu builds it the same way.
LLAMA_CMAKE_ARGS = "-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
BOT_REQUIREMENTS_END = "# model worker"  # requirements.txt: what follows is only for the model


def _config_path() -> Path:
    return Path(os.environ.get("CHAT2SQL_DEPLOY_CONFIG") or DEFAULT_CONFIG)


CONFIG_PATH = _config_path()
CONFIG: DeployConfig = load_config(CONFIG_PATH)
PROFILE: Profile = selected_profile(CONFIG, os.environ, path=CONFIG_PATH)  # travels into the images' env


def bot_requirements(text: str) -> list[str]:
    """requirements.txt up to its model-worker section: the bot imports no torch.

    >>> bot_requirements("httpx==1\\n# model worker\\ntorch==2\\n")
    ['httpx==1']
    """
    head = text.split(f"\n{BOT_REQUIREMENTS_END}", 1)[0]
    return [line.split("#", 1)[0].strip() for line in head.splitlines() if line.split("#", 1)[0].strip()]


def _with_sources(image: modal.Image) -> modal.Image:
    # Local files last: Modal adds them at container start, without rebuilding the image.
    return image.add_local_python_source(*SOURCE_PACKAGES, ignore=["**/__pycache__/**"]).add_local_file(
        CONFIG_PATH, REMOTE_CONFIG
    )


_env = {"CHAT2SQL_DEPLOY_CONFIG": REMOTE_CONFIG, PROFILE_ENV: PROFILE, "PYTHONUNBUFFERED": "1"}

gpu_image = _with_sources(
    modal.Image.from_registry(CUDA_IMAGE, add_python="3.11")
    .add_local_file(REPO / "requirements.txt", "/tmp/requirements.txt", copy=True)
    .add_local_file(REPO / "requirements-gpu.txt", "/tmp/requirements-gpu.txt", copy=True)
    .add_local_file(REPO / "requirements-model.txt", "/tmp/requirements-model.txt", copy=True)
    .run_commands(
        f"pip install --no-cache-dir -r /tmp/requirements-gpu.txt --index-url {TORCH_INDEX}"
        " --extra-index-url https://pypi.org/simple",
        "pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements-model.txt",
    )
    .env({**_env, "CHAT2SQL_DATA_DIR": VOLUME_DIR, "HF_HUB_DISABLE_TELEMETRY": "1"})
)

# The CPU worker: torch's CPU build (transformers stays available on CPU) and llama-cpp-python,
# compiled from source (requirements-llamacpp.txt; build-essential and cmake for that).
cpu_image = _with_sources(
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("build-essential", "cmake")
    .add_local_file(REPO / "requirements.txt", "/tmp/requirements.txt", copy=True)
    .add_local_file(REPO / "requirements-llamacpp.txt", "/tmp/requirements-llamacpp.txt", copy=True)
    .add_local_file(REPO / "requirements-model.txt", "/tmp/requirements-model.txt", copy=True)
    .run_commands(
        f"pip install --no-cache-dir -r /tmp/requirements.txt --index-url {TORCH_CPU_INDEX}"
        " --extra-index-url https://pypi.org/simple",
        f'CMAKE_ARGS="{LLAMA_CMAKE_ARGS}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"'
        " pip install --no-cache-dir -r /tmp/requirements-llamacpp.txt",
        "pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements-model.txt",
    )
    .env({**_env, "CHAT2SQL_DATA_DIR": VOLUME_DIR, "HF_HUB_DISABLE_TELEMETRY": "1"})
)

bot_image = _with_sources(
    modal.Image.debian_slim(python_version="3.11")
    .pip_install(*bot_requirements((REPO / "requirements.txt").read_text(encoding="utf-8")))
    .env({**_env, "CHAT2SQL_DATA_DIR": "/tmp/chat2sql"})
)

app = modal.App(CONFIG.app_name)
volume = modal.Volume.from_name(CONFIG.modal.volume, create_if_missing=True)
gpu_secrets = [modal.Secret.from_name(name) for name in CONFIG.modal.secrets.get("gpu", ())]
cpu_secrets = [modal.Secret.from_name(name) for name in CONFIG.modal.secrets.get("cpu", ())]
bot_secrets = [modal.Secret.from_name(name) for name in CONFIG.modal.secrets.get("bot", ())]


def settings(profile: Profile = "gpu") -> Any:
    """Settings from the container's environment (Secrets) with the deployment config applied
    in ``profile`` (each worker class names its own)."""
    from chat2sql.settings import Settings

    return apply_to_settings(Settings(), load_config(_config_path()), profile=profile)


_gpu = CONFIG.gpu


@app.cls(
    image=gpu_image,
    gpu=_gpu.type,
    volumes={VOLUME_DIR: volume},
    secrets=gpu_secrets,
    min_containers=_gpu.min_containers,
    max_containers=_gpu.max_containers,
    scaledown_window=_gpu.scaledown_window_s,
    timeout=_gpu.timeout_s,
    startup_timeout=_gpu.startup_timeout_s,
    cpu=_gpu.cpu,
    memory=_gpu.memory_mib,
    enable_memory_snapshot=_gpu.memory_snapshot,
    experimental_options={"enable_gpu_snapshot": True} if _gpu.gpu_snapshot else None,
)
@modal.concurrent(max_inputs=CONFIG.batching.max_size)
class Inference:
    @modal.enter(snap=True)
    def prepare(self) -> None:
        from deploy.gpu_service import GpuService

        self.service = GpuService(settings=settings("gpu"))
        self.service.prepare()  # downloads/conversion land on the Volume once …
        if not modal.is_local():
            volume.commit()  # … and are kept for every later container
        if CONFIG.gpu.gpu_snapshot:
            self.service.load()

    @modal.enter(snap=False)
    def load(self) -> None:
        self.service.load()

    @modal.method()
    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self.service.health()
        return health

    @modal.method()
    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A ``GenerateRequest`` as JSON in, a ``GpuReply`` as JSON out."""
        reply: dict[str, Any] = await self.service.generate(payload)
        return reply

    @modal.exit()
    async def close(self) -> None:
        await self.service.close()


_cpu = CONFIG.cpu


@app.cls(
    image=cpu_image,
    volumes={VOLUME_DIR: volume},
    secrets=cpu_secrets,
    cpu=_cpu.modal_cpu,  # (reserved, limit): bursts to the limit while answering
    memory=_cpu.memory_mib,
    min_containers=_cpu.min_containers,
    max_containers=_cpu.max_containers,
    scaledown_window=_cpu.scaledown_window_s,
    timeout=_cpu.timeout_s,
    startup_timeout=_cpu.startup_timeout_s,
    enable_memory_snapshot=_cpu.memory_snapshot,
)
@modal.concurrent(max_inputs=_cpu.parallel)
class CpuInference:
    """The CPU worker: the same service as ``Inference`` with the ``cpu:`` profile's settings."""

    @modal.enter(snap=True)
    def prepare(self) -> None:
        from deploy.gpu_service import GpuService

        self.service = GpuService(settings=settings("cpu"))
        self.service.prepare()  # the first container joins the GGUF onto the Volume
        if not modal.is_local():
            volume.commit()

    @modal.enter(snap=False)
    def load(self) -> None:
        self.service.load()  # about a second for llama.cpp: no reason to keep a container warm

    @modal.method()
    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self.service.health()
        return health

    @modal.method()
    async def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A ``GenerateRequest`` as JSON in, a ``GpuReply`` as JSON out (as ``Inference``)."""
        reply: dict[str, Any] = await self.service.generate(payload)
        return reply

    @modal.exit()
    async def close(self) -> None:
        await self.service.close()


WORKERS: dict[Profile, Any] = {"gpu": Inference, "cpu": CpuInference}
TIMEOUT_S: dict[Profile, int] = {"gpu": CONFIG.gpu.timeout_s, "cpu": CONFIG.cpu.timeout_s}
STARTUP_TIMEOUT_S: dict[Profile, int] = {"gpu": CONFIG.gpu.startup_timeout_s, "cpu": CONFIG.cpu.startup_timeout_s}
Serving = WORKERS[PROFILE]  # the class the bot, the warm-up and the smoke test call


_bot = CONFIG.bot


@app.function(
    image=bot_image,
    secrets=bot_secrets,
    min_containers=_bot.min_containers,
    max_containers=_bot.max_containers,
    scaledown_window=_bot.scaledown_window_s,
    timeout=_bot.timeout_s,
    cpu=_bot.cpu,
    memory=_bot.memory_mib,
    enable_memory_snapshot=True,
)
@modal.concurrent(max_inputs=_bot.max_inputs)
@modal.asgi_app(label=f"{CONFIG.app_name}-bot")
def bot() -> Any:
    """Slack posts to ``<url>/slack/events``, Teams to ``<url>/api/messages``."""
    from deploy.modal_client import build_bot_app, modal_spawn

    return build_bot_app(
        settings(PROFILE),
        spawn=modal_spawn(Serving().generate, timeout_s=TIMEOUT_S[PROFILE]),
        notice_after_s=CONFIG.bot.cold_notice_s,
        timeout_s=TIMEOUT_S[PROFILE],
    )


_warmup_cron = CONFIG.business_hours.warmup_cron()


@app.function(
    image=bot_image,
    schedule=modal.Cron(_warmup_cron, timezone=CONFIG.business_hours.timezone) if _warmup_cron else None,
    timeout=STARTUP_TIMEOUT_S[PROFILE] + 5 * MINUTES,
)
def warm_up() -> dict[str, Any]:
    """Start (or keep) one container of the selected worker before business hours; returns its health."""
    health: dict[str, Any] = Serving().health.remote()
    return health


@app.local_entrypoint()
def smoke_test(question: str = "How many employees are there?") -> None:
    """``modal run deploy/modal_app.py``: health and one question against the deployed app."""
    import json

    from inference.protocol import DatabaseInfo, GenerateRequest

    deployed = modal.Cls.from_name(CONFIG.app_name, Serving.__name__)()
    print("health:", json.dumps(deployed.health.remote()))
    request = GenerateRequest(
        question=question,
        database=DatabaseInfo(
            name="hr", dialect="sqlite", schema_text="CREATE TABLE employees (\n  id INTEGER,\n  name TEXT\n);"
        ),
    )
    reply = deployed.generate.remote(request.model_dump(mode="json"))
    print("reply:", json.dumps(reply, indent=2))
    if reply.get("error") is not None or not (reply.get("response") or {}).get("sql"):
        raise SystemExit("smoke test failed: no SQL in the reply")
    print("smoke test passed")
