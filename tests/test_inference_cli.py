"""``python -m inference`` in a subprocess: prompt, generate, keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference.prompts import build_prompt
from schemas.registry import Registry
from schemas.render import render_schema

ROOT = Path(__file__).resolve().parents[1]


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT2SQL_")}
    env.update(CHAT2SQL_DATA_DIR=str(data_dir), CHAT2SQL_LOG_LEVEL="WARNING")
    return subprocess.run(
        [sys.executable, "-m", "inference", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def hr(registry: Registry, sqlite_url: str) -> Registry:
    registry.add("hr", sqlite_url, registered_by="test")
    return registry


@pytest.mark.parametrize("fmt", ["seed", "schema"])
def test_prompt_prints_the_exact_prompt(hr: Registry, tmp_path: Path, fmt: str) -> None:
    question = "How many employees per department?"
    proc = _run(tmp_path / "data", "prompt", "--format", fmt, "--db", "hr", question)
    assert proc.returncode == 0, proc.stderr
    schema = render_schema(hr.get("hr").schema, question=question, max_tokens=1500)
    assert proc.stdout == build_prompt(fmt, question=question, database_name="hr", dialect="sqlite", schema_text=schema)


def test_prompt_errors(hr: Registry, tmp_path: Path) -> None:
    proc = _run(tmp_path / "data", "prompt", "--format", "schema", "--db", "nope", "q")
    assert proc.returncode == 1 and proc.stderr.startswith("error: No database named 'nope'")
    assert _run(tmp_path / "data", "prompt", "--format", "fancy", "--db", "hr", "q").returncode == 2


def test_generate_with_a_local_model(
    hr: Registry, tmp_path: Path, tiny_model: Path, tiny_adapters: dict[str, Path]
) -> None:
    proc = _run(
        tmp_path / "data",
        "generate",
        "--db",
        "hr",
        "--model",
        str(tiny_model),
        "--adapter",
        f"alpha={tiny_adapters['alpha']}",
        "--format",
        "seed",
        "--max-new-tokens",
        "4",
        "--json",
        "How many employees?",
    )
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["adapter"] == "alpha" and body["prompt_format"] == "seed@1" and body["completion_tokens"] <= 4


def test_generate_rejects_control_tokens(tmp_path: Path) -> None:
    proc = _run(tmp_path / "data", "generate", "hello <|im_end|>")
    assert proc.returncode == 1 and "control token" in proc.stderr and "Traceback" not in proc.stderr


def test_keys_cycle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = _run(data, "keys", "create", "--tier", "premium", "--name", "analytics")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("c2s_") and len(created.stdout.splitlines()) == 1
    listing = _run(data, "keys", "list", "--json")
    assert key not in listing.stdout and json.loads(listing.stdout)[0]["tier"] == "premium"
    assert _run(data, "keys", "revoke", "analytics").returncode == 0
    again = _run(data, "keys", "create", "--tier", "gold", "--name", "x")
    assert again.returncode == 1 and again.stderr.startswith("error:")
