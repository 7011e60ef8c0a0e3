"""The deployment config: the committed file loads, mistakes are named, the worker reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chat2sql.settings import Settings
from deploy.config import (
    DEFAULT_CONFIG,
    PROFILE_ENV,
    BusinessHours,
    DeployConfigError,
    apply_to_settings,
    load_config,
    main,
    selected_profile,
    settings_with_deploy_config,
)
from inference.sources import parse_source
from inference.wiring import build_worker_app, choose_engine, worker_options

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


def test_committed_config_has_a_cpu_profile_that_scales_to_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    config = load_config(DEFAULT_CONFIG)
    cpu = config.cpu
    assert config.profile == "gpu"  # the GPU stays the default
    assert (cpu.engine, cpu.model) == ("llamacpp", "pypi:qwen2.5-coder-0.5b")
    assert (cpu.cores, cpu.threads, cpu.memory_mib, cpu.parallel) == (1.0, 2, 1536, 8)
    assert (cpu.min_containers, cpu.max_containers, cpu.scaledown_window_s) == (0, 5, 60)
    assert (cpu.reservation, cpu.modal_cpu) == (0.25, (0.25, 1.0))  # a quarter core reserved, bursts to one
    assert config.cost.cpu.target_per_1000 == 0.25 and config.cost.cpu.target_p50_s == 2.0
    assert main([str(DEFAULT_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert (
        "profile gpu" in out
        and "CPU llamacpp pypi:qwen2.5-coder-0.5b, 1 cores (0.25 reserved) / 2 threads, 1536 MiB" in out
    )


def test_a_config_without_a_cpu_section_gets_the_cpu_defaults(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    del data["cpu"], data["profile"], data["cost"]["cpu"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    assert config.profile == "gpu" and config.cpu == load_config(DEFAULT_CONFIG).cpu


def test_the_profile_comes_from_the_file_or_the_environment(tmp_path: Path) -> None:
    config = load_config(DEFAULT_CONFIG)
    assert selected_profile(config, {}) == "gpu"
    assert selected_profile(config, {PROFILE_ENV: "CPU "}) == "cpu"
    assert selected_profile(config, {PROFILE_ENV: ""}) == "gpu"  # empty = unset, as in .env.example
    assert selected_profile(load_config(_write(tmp_path, profile="cpu")), {PROFILE_ENV: "gpu"}) == "gpu"
    with pytest.raises(DeployConfigError) as caught:
        selected_profile(config, {PROFILE_ENV: "tpu"}, path=DEFAULT_CONFIG)
    assert caught.value.message.endswith("CHAT2SQL_DEPLOY_PROFILE='tpu' is not a profile (expected gpu or cpu)")
    # A peft adapter (the seed's) is fine on the GPU and refused for llama.cpp, wherever cpu is chosen.
    seeded = load_config(
        _write(tmp_path, adapters={"seed": {"source": f"hub:faltooz123/qwen1.5-sql-qlora-spider@{SHA}"}})
    )
    assert selected_profile(seeded, {}) == "gpu"
    with pytest.raises(DeployConfigError, match=r"llama\.cpp, which serves GGUF adapters only; seed is a peft"):
        selected_profile(seeded, {PROFILE_ENV: "cpu"})
    transformers = seeded.model_copy(update={"cpu": seeded.cpu.model_copy(update={"engine": "transformers"})})
    assert selected_profile(transformers, {PROFILE_ENV: "cpu"}) == "cpu"


def test_the_cpu_profile_maps_to_the_engine_settings(tmp_path: Path) -> None:
    path = _write(tmp_path, cpu__threads=1, cpu__parallel=4, cpu__cache_tokens=8192, cpu__cores=0.5)
    base = Settings(data_dir=tmp_path, model="elsewhere", threads=7, _env_file=None)  # type: ignore[call-arg]
    gpu = settings_with_deploy_config(base.model_copy(update={"deploy_config": path}), environ={})
    assert (gpu.engine, gpu.threads, gpu.device, gpu.batch_max_size) == ("auto", 7, "auto", 8)  # as before
    assert gpu.model == "pypi:qwen2.5-coder-0.5b" and gpu.llamacpp_parallel == 8
    cpu = settings_with_deploy_config(base.model_copy(update={"deploy_config": path}), environ={PROFILE_ENV: "cpu"})
    assert (cpu.engine, cpu.threads, cpu.llamacpp_parallel, cpu.llamacpp_cache_tokens) == ("llamacpp", 1, 4, 8192)
    assert (cpu.device, cpu.quantization, cpu.dtype, cpu.batch_max_size) == ("cpu", "none", "float32", 4)
    assert cpu.model == "pypi:qwen2.5-coder-0.5b" and cpu.data_dir == tmp_path  # the rest is kept
    assert worker_options(cpu).batch_max_size == 4
    # The worker's own engine choice agrees, with or without the explicit engine.
    assert choose_engine(cpu, parse_source(cpu.model), {}) == "llamacpp"
    auto = cpu.model_copy(update={"engine": "auto"})
    assert choose_engine(auto, parse_source(auto.model), {}) == "llamacpp"
    # profile: cpu in the file does the same without the variable.
    from_file = apply_to_settings(base, load_config(_write(tmp_path, profile="cpu")))
    assert from_file.engine == "llamacpp" and from_file.threads == 2
    transformers = apply_to_settings(
        base, load_config(_write(tmp_path, cpu__engine="transformers", cpu__dtype="bfloat16")), profile="cpu"
    )
    assert (transformers.engine, transformers.dtype, transformers.device) == ("transformers", "bfloat16", "cpu")


def test_a_bad_profile_variable_stops_the_worker_and_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path, deploy_config=DEFAULT_CONFIG, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(DeployConfigError, match="is not a profile"):
        settings_with_deploy_config(settings, environ={PROFILE_ENV: "gpu2"})
    monkeypatch.setenv(PROFILE_ENV, "gpu2")
    assert main([str(DEFAULT_CONFIG)]) == 1
    captured = capsys.readouterr()
    assert "CHAT2SQL_DEPLOY_PROFILE='gpu2' is not a profile" in captured.err and captured.out == ""


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
        # the CPU profile
        ({"profile": "tpu"}, "profile: Input should be 'gpu' or 'cpu'"),
        ({"cpu__engine": "vllm"}, "cpu.engine: Input should be 'llamacpp' or 'transformers'"),
        ({"cpu__model": f"hub:Qwen/Qwen2.5-Coder-0.5B-Instruct@{SHA}"}, "engine llamacpp needs a GGUF model"),
        ({"cpu__model": "hub:Qwen/Qwen2.5-Coder-0.5B-Instruct@main"}, "must pin a 40-character commit SHA"),
        ({"cpu__threads": 3}, "threads 3 is more than the 2 hyperthreads of 1 cores"),
        ({"cpu__cores": 0.1}, "cpu.cores: Input should be greater than or equal to 0.125"),
        ({"cpu__reserved_cores": 2.0}, "reserved_cores 2 is more than cores 1"),
        ({"cpu__reserved_cores": 0.1}, "cpu.reserved_cores: Input should be greater than or equal to 0.125"),
        ({"cpu__memory_mib": 256}, "cpu.memory_mib"),
        ({"cpu__min_containers": 6}, "cpu: min_containers is larger than max_containers"),
        ({"cpu__scaledown_window_s": 1}, "cpu.scaledown_window_s"),
        ({"cpu__parallel": 0}, "cpu.parallel"),
        ({"cpu__cache_tokens": 512}, "cpu.cache_tokens"),
        ({"cost__cpu__target_p50_s": 0}, "cost.cpu.target_p50_s"),
        ({"cost__cpu__container_start_s": -1}, "cost.cpu.container_start_s"),
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
    applied = settings_with_deploy_config(base.model_copy(update={"deploy_config": path}), environ={})
    assert applied.model == "pypi:qwen2.5-coder-0.5b" and applied.default_adapter == "seed"
    assert applied.adapters["seed"].prompt_format == "seed" and applied.batch_max_size == 3
    options = worker_options(applied)
    assert options.adapter_formats == {"seed": "seed"} and options.max_new_tokens == 64
    assert apply_to_settings(base, load_config(path)).data_dir == tmp_path  # the rest is kept


def test_worker_app_refuses_a_broken_config(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path, deploy_config=_write(tmp_path, gpu__min_containers=9), _env_file=None
    )
    from deploy.worker import build

    with pytest.raises(DeployConfigError, match="min_containers"):
        build(settings)
    assert build_worker_app(settings) is not None  # inference's own builder takes settings as they come


def test_empty_env_value_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT2SQL_DEPLOY_CONFIG", "")
    assert Settings(_env_file=None).deploy_config is None  # type: ignore[call-arg]


def test_the_deployment_file_is_applied_by_the_deploy_layer_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m inference serve`` refuses to run with the file named rather than ignore it;
    ``python -m deploy.worker`` applies it, and refuses a broken one before anything starts."""
    from deploy import worker
    from inference.cli import main as inference_main

    path = _write(tmp_path, gpu__min_containers=9)
    settings = Settings(data_dir=tmp_path, deploy_config=path, _env_file=None)  # type: ignore[call-arg]
    assert inference_main(["serve"], settings=settings) == 2
    assert "python -m deploy.worker" in capsys.readouterr().err
    monkeypatch.setenv("CHAT2SQL_DEPLOY_CONFIG", str(path))
    monkeypatch.setenv("CHAT2SQL_DATA_DIR", str(tmp_path))
    served: list[object] = []
    monkeypatch.setattr(worker, "serve_worker", lambda app, *a, **k: served.append(app))
    assert worker.main([]) == 1 and served == []
    assert "min_containers" in capsys.readouterr().err
