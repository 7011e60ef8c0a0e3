"""The deployment config: the committed file loads, mistakes are named, the worker reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chat2sql.settings import Settings
from deploy.config import (
    DEFAULT_CONFIG,
    BusinessHours,
    DeployConfigError,
    apply_to_settings,
    load_config,
    main,
    settings_with_deploy_config,
)
from inference.wiring import build_worker_app, worker_options

SHA = "0123456789abcdef0123456789abcdef01234567"


def _write(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_committed_config_loads_with_the_seed_figures() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.gpu.type == "A10G" and config.gpu.min_containers == 0 and config.gpu.max_containers == 5
    assert config.gpu.timeout_s == 300 and config.cost.traffic.requests_per_month == 25_000
    assert config.gpu.type in config.cost.gpus
    assert main([str(DEFAULT_CONFIG)]) == 0


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (
            {"model__source": "hub:Qwen/Qwen1.5-1.8B-Chat@main"},
            "model.source: 'hub:Qwen/Qwen1.5-1.8B-Chat@main' must pin",
        ),
        ({"model__source": "hub:Qwen/Qwen1.5-1.8B-Chat"}, "pinned revision"),
        ({"adapters": {"seed": {"source": f"hub:a/b@{SHA}", "prompt_format": "fancy"}}}, "unknown prompt format"),
        ({"default_adapter": "seed"}, "default_adapter 'seed' is not among the adapters"),
        ({"gpu__min_containers": 6}, "min_containers is larger than max_containers"),
        ({"gpu__type": "B200"}, "no price under cost.gpus"),
        ({"gpu__scaledown_window_s": 1}, "gpu.scaledown_window_s"),
        ({"business_hours__timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"business_hours__end": "08:00"}, "end after they start"),
        ({"gpu__gpus": 2}, "gpu.gpus: Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, changes: dict[str, object], needle: str) -> None:
    with pytest.raises(DeployConfigError) as caught:
        load_config(_write(tmp_path, **changes))
    assert needle in caught.value.message and str(tmp_path) in caught.value.message


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(DeployConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpu: [unclosed\n")
    with pytest.raises(DeployConfigError, match="not valid YAML at line"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(DeployConfigError, match="mapping"):
        load_config(bad)
    assert main([str(bad)]) == 1


def test_pinned_adapters_are_accepted(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            model__source=f"hub:Qwen/Qwen1.5-1.8B-Chat@{SHA}",
            adapters={"seed": {"source": f"hub:faltooz123/qwen1.5-sql-qlora-spider@{SHA}", "prompt_format": "seed"}},
            default_adapter="seed",
        )
    )
    assert config.adapters["seed"].prompt_format == "seed"


def test_warmup_cron_in_the_business_time_zone() -> None:
    from datetime import time

    assert BusinessHours(start=time(8, 30), warmup_minutes_before=45).warmup_cron() == "45 7 * * 1,2,3,4,5"
    # Before midnight: the day before each business day (Sunday for Monday).
    early = BusinessHours(start=time(0, 5), days=("mon", "sun"), warmup_minutes_before=10)
    assert early.warmup_cron() == "55 23 * * 0,6"
    assert BusinessHours(warmup_minutes_before=None).warmup_cron() is None


def test_settings_take_model_adapters_and_batching_from_the_config(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        adapters={"seed": {"source": f"hub:faltooz123/qwen1.5-sql-qlora-spider@{SHA}", "prompt_format": "seed"}},
        default_adapter="seed",
        batching__max_size=3,
        model__max_new_tokens=64,
    )
    base = Settings(data_dir=tmp_path, model="elsewhere", _env_file=None)  # type: ignore[call-arg]
    assert settings_with_deploy_config(base) is base  # no CHAT2SQL_DEPLOY_CONFIG: untouched
    applied = settings_with_deploy_config(base.model_copy(update={"deploy_config": path}))
    assert applied.model == "pypi:qwen2.5-coder-0.5b" and applied.default_adapter == "seed"
    assert applied.adapters["seed"].prompt_format == "seed" and applied.batch_max_size == 3
    options = worker_options(applied)
    assert options.adapter_formats == {"seed": "seed"} and options.max_new_tokens == 64
    assert apply_to_settings(base, load_config(path)).data_dir == tmp_path  # the rest is kept


def test_worker_app_refuses_a_broken_config(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path, deploy_config=_write(tmp_path, gpu__min_containers=9), _env_file=None
    )
    with pytest.raises(DeployConfigError, match="min_containers"):
        build_worker_app(settings)


def test_empty_env_value_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT2SQL_DEPLOY_CONFIG", "")
    assert Settings(_env_file=None).deploy_config is None  # type: ignore[call-arg]
