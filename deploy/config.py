"""The one deployment config (``deploy/config.yaml``), typed and checked.

Read by the Modal app, by the worker when ``CHAT2SQL_DEPLOY_CONFIG`` names it, and by the cost
model. ``python -m deploy.config [PATH]`` checks a file and prints what it resolved to.

The config holds two worker profiles: ``gpu`` (the A10G class, the default) and ``cpu``
(llama.cpp on a few CPU cores, scale to zero). ``profile:`` picks the one the bot talks to
and that ``python -m inference serve`` becomes; ``CHAT2SQL_DEPLOY_PROFILE`` overrides it.

    >>> config = load_config(DEFAULT_CONFIG)
    >>> config.gpu.type, config.gpu.min_containers, config.profile
    ('A10G', 0, 'gpu')
    >>> config.cpu.engine, config.cpu.min_containers
    ('llamacpp', 0)
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chat2sql import messages
from chat2sql.errors import UserFacingError
from chat2sql.settings import AdapterSpec, Settings
from inference.prompts import FORMATS
from inference.sources import SourceError, parse_source

DEFAULT_CONFIG = Path(__file__).with_name("config.yaml")
_SHA = re.compile(r"[0-9a-f]{40}")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Profile = Literal["gpu", "cpu"]
PROFILES: tuple[Profile, ...] = ("gpu", "cpu")
PROFILE_ENV = "CHAT2SQL_DEPLOY_PROFILE"
THREADS_PER_CORE = 2  # a Modal CPU core is a physical core: two hyperthreads


class DeployConfigError(UserFacingError):
    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(detail)
        self.path, self.detail = path, detail

    @property
    def message(self) -> str:
        return messages.deploy_config_invalid(self.path, self.detail)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _pinned(source: str) -> str:
    parsed = parse_source(source)  # SourceError → a clear message
    if parsed.kind == "hub" and not _SHA.fullmatch(parsed.revision or ""):
        raise ValueError(
            f"'{source}' must pin a 40-character commit SHA (a branch or tag can move); "
            "copy it from the repository's commit history on the hub"
        )
    return source


class ModelConfig(_Strict):
    source: str
    quantization: Literal["auto", "none", "nf4"] = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    max_new_tokens: int = Field(default=128, ge=1, le=512)
    max_input_tokens: int = Field(default=2048, ge=128, le=32_768)

    _source = field_validator("source")(_pinned)


class AdapterConfig(_Strict):
    source: str
    prompt_format: str = "schema"

    _source = field_validator("source")(_pinned)

    @field_validator("prompt_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value.partition("@")[0] not in FORMATS:
            raise ValueError(f"unknown prompt format '{value}' (known: {', '.join(sorted(FORMATS))})")
        return value


class GpuConfig(_Strict):
    type: str = "A10G"
    min_containers: int = Field(default=0, ge=0, le=100)
    max_containers: int = Field(default=5, ge=1, le=1000)
    scaledown_window_s: int = Field(default=60, ge=2, le=3600)  # Modal's bounds
    timeout_s: int = Field(default=300, ge=10, le=86_400)
    startup_timeout_s: int = Field(default=900, ge=10, le=86_400)
    memory_snapshot: bool = True
    gpu_snapshot: bool = False
    cpu: float = Field(default=2.0, gt=0)
    memory_mib: int = Field(default=16_384, ge=256)

    @model_validator(mode="after")
    def _scaling(self) -> GpuConfig:
        if self.min_containers > self.max_containers:
            raise ValueError("min_containers is larger than max_containers")
        if self.gpu_snapshot and not self.memory_snapshot:
            raise ValueError("gpu_snapshot needs memory_snapshot: true")
        return self


def _is_gguf(source: str) -> bool:
    parsed = parse_source(source)
    return parsed.kind == "pypi" or (parsed.kind == "path" and parsed.ref.lower().endswith(".gguf"))


class CpuConfig(_Strict):
    """The CPU worker: the same ``python -m inference serve`` code on llama.cpp.

    A llama.cpp worker loads the GGUF in about a second, so it scales to zero: a container
    lives only while questions come within ``scaledown_window_s`` of each other.
    """

    engine: Literal["llamacpp", "transformers"] = "llamacpp"
    model: str = "pypi:qwen2.5-coder-0.5b"  # llamacpp needs a GGUF source (pypi:… or a .gguf file)
    dtype: Literal["float32", "bfloat16"] = "float32"  # transformers only (llama.cpp runs the GGUF's own)
    cores: float = Field(default=1.0, ge=0.125, le=64)  # Modal physical cores it may use (its CPU limit)
    # The cores reserved (guaranteed, billed even while idle). Modal bills the greater of the
    # reservation and the use, and a container bursts above its reservation while the host has
    # spare cores: a small reservation makes the idle tail after questions cheap.
    reserved_cores: float | None = Field(default=0.25, ge=0.125, le=64)  # None: all of ``cores``
    threads: int = Field(default=2, ge=1, le=256)
    memory_mib: int = Field(default=1536, ge=512, le=262_144)
    parallel: int = Field(default=8, ge=1, le=64)  # questions decoded together = inputs per container
    cache_tokens: int = Field(default=16_384, ge=1024, le=262_144)
    min_containers: int = Field(default=0, ge=0, le=100)
    max_containers: int = Field(default=5, ge=1, le=1000)
    scaledown_window_s: int = Field(default=60, ge=2, le=3600)  # Modal's bounds
    timeout_s: int = Field(default=300, ge=10, le=86_400)
    startup_timeout_s: int = Field(default=300, ge=10, le=86_400)
    memory_snapshot: bool = True  # imports restored from a snapshot; the model loads after it

    _model = field_validator("model")(_pinned)

    @property
    def reservation(self) -> float:
        return self.cores if self.reserved_cores is None else self.reserved_cores

    @property
    def modal_cpu(self) -> float | tuple[float, float]:
        """Modal's ``cpu=``: the cores, or (reservation, limit) when less is reserved."""
        return self.cores if self.reservation >= self.cores else (self.reservation, self.cores)

    @model_validator(mode="after")
    def _consistent(self) -> CpuConfig:
        if self.min_containers > self.max_containers:
            raise ValueError("min_containers is larger than max_containers")
        if self.engine == "llamacpp" and not _is_gguf(self.model):
            raise ValueError(
                f"engine llamacpp needs a GGUF model (pypi:qwen2.5-coder-0.5b or a .gguf file), not '{self.model}'"
            )
        if self.reserved_cores is not None and self.reserved_cores > self.cores:
            raise ValueError(
                f"reserved_cores {self.reserved_cores:g} is more than cores {self.cores:g} (the limit it may burst to)"
            )
        most = math.ceil(self.cores * THREADS_PER_CORE)
        if self.threads > most:
            raise ValueError(
                f"threads {self.threads} is more than the {most} hyperthreads of {self.cores:g} cores "
                f"(a Modal core is a physical core, {THREADS_PER_CORE} threads); raise cores or lower threads"
            )
        return self


class BatchingConfig(_Strict):
    max_size: int = Field(default=8, ge=1, le=64)
    max_wait_ms: float = Field(default=15.0, ge=0, le=1000)


class BotConfig(_Strict):
    min_containers: int = Field(default=1, ge=0, le=100)
    max_containers: int = Field(default=10, ge=1, le=1000)
    scaledown_window_s: int = Field(default=900, ge=2, le=3600)
    timeout_s: int = Field(default=600, ge=10, le=86_400)
    max_inputs: int = Field(default=100, ge=1, le=1000)
    cpu: float = Field(default=0.25, gt=0)
    memory_mib: int = Field(default=1024, ge=128)
    cold_notice_s: float = Field(default=4.0, gt=0, le=60)


class BusinessHours(_Strict):
    timezone: str = "UTC"
    days: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: time = time(9, 0)
    end: time = time(18, 0)
    warmup_minutes_before: int | None = Field(default=10, ge=1, le=180)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (an IANA name such as Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _order(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("business hours must end after they start (same day)")
        if not self.days:
            raise ValueError("business hours need at least one day")
        return self

    @property
    def hours_per_day(self) -> float:
        return (self.end.hour * 60 + self.end.minute - self.start.hour * 60 - self.start.minute) / 60

    def warmup_cron(self) -> str | None:
        """Cron string (in ``timezone``) for the warm-up before business hours, or None.

        >>> BusinessHours(start=time(9, 0), warmup_minutes_before=10).warmup_cron()
        '50 8 * * 1,2,3,4,5'
        """
        if self.warmup_minutes_before is None:
            return None
        minutes = self.start.hour * 60 + self.start.minute - self.warmup_minutes_before
        day_shift = -1 if minutes < 0 else 0
        minutes %= 24 * 60
        days = sorted(((DAYS.index(d) + day_shift) % 7 + 1) % 7 for d in self.days)  # cron: 0 = Sunday
        return f"{minutes % 60} {minutes // 60} * * {','.join(str(d) for d in days)}"


class ModalConfig(_Strict):
    volume: str = "chat2sql-models"
    secrets: dict[Literal["bot", "gpu", "cpu"], tuple[str, ...]] = Field(default_factory=dict)


class GpuPrice(_Strict):
    hour: float = Field(gt=0, description="USD per GPU-hour")
    latency_s: float = Field(gt=0, description="warm seconds of GPU per request")
    cold_start_s: float = Field(ge=0, description="container start to model ready")


class Traffic(_Strict):
    requests_per_month: int = Field(default=25_000, ge=0)
    business_days_per_month: float = Field(default=22, gt=0, le=31)
    business_share: float = Field(default=0.97, ge=0, le=1)
    peak_hours_per_day: float = Field(default=1, ge=0)
    peak_multiplier: float = Field(default=4.0, ge=1)


class Sweep(_Strict):
    min_containers: tuple[int, ...] = (0, 1)
    scaledown_window_s: tuple[int, ...] = (60, 120, 300, 900)


class SeedCostInputs(_Strict):
    """The seed plan's cost inputs (its README's table), reproduced by ``deploy.cost``."""

    requests_per_month: int = Field(default=25_000, ge=0)
    seconds_per_request: float = Field(default=2.0, gt=0)
    gpu_hour: float = Field(default=1.10, gt=0)
    round_compute_hours_up: bool = True
    idle_windows_per_day: float = Field(default=6, ge=0)
    idle_window_s: float = Field(default=120, ge=0)
    business_days_per_month: float = Field(default=22, gt=0)
    storage_month: float = Field(default=2.0, ge=0)
    network_month: float = Field(default=0.5, ge=0)


class CpuCostInputs(_Strict):
    """What the CPU rows of ``deploy.cost`` cannot measure on this machine, and the target."""

    container_start_s: float = Field(default=2.0, ge=0, description="Modal's start of a CPU container (assumed)")
    sweep: Sweep = Sweep(scaledown_window_s=(15, 30, 60, 120, 300))
    target_per_1000: float = Field(default=0.25, gt=0, description="USD per 1,000 requests, the worker's cost")
    target_p50_s: float = Field(default=2.0, gt=0, description="median seconds per question, cold starts included")


class CostConfig(_Strict):
    prices_checked: str = "unknown"
    cpu_core_hour: float = Field(default=0.0472, ge=0)
    memory_gib_hour: float = Field(default=0.008, ge=0)
    gpus: dict[str, GpuPrice] = Field(default_factory=dict)
    cpu: CpuCostInputs = CpuCostInputs()
    traffic: Traffic = Traffic()
    sweep: Sweep = Sweep()
    seed: SeedCostInputs = SeedCostInputs()


class DeployConfig(_Strict):
    app_name: str = Field(default="chat2sql", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    model: ModelConfig
    adapters: dict[str, AdapterConfig] = Field(default_factory=dict)
    default_adapter: str | None = None
    default_prompt_format: str = "schema"
    profile: Profile = "gpu"
    gpu: GpuConfig = GpuConfig()
    cpu: CpuConfig = CpuConfig()
    batching: BatchingConfig = BatchingConfig()
    bot: BotConfig = BotConfig()
    business_hours: BusinessHours = BusinessHours()
    modal: ModalConfig = ModalConfig()
    cost: CostConfig = CostConfig()

    @model_validator(mode="after")
    def _consistent(self) -> DeployConfig:
        if self.default_adapter is not None and self.default_adapter not in self.adapters:
            raise ValueError(
                f"default_adapter '{self.default_adapter}' is not among the adapters "
                f"({', '.join(self.adapters) or 'none'})"
            )
        if self.default_prompt_format.partition("@")[0] not in FORMATS:
            raise ValueError(f"unknown default_prompt_format '{self.default_prompt_format}'")
        if self.cost.gpus and self.gpu.type not in self.cost.gpus:
            raise ValueError(f"gpu.type '{self.gpu.type}' has no price under cost.gpus")
        return self


def load_config(path: Path | str) -> DeployConfig:
    """Read and check a config file; every problem is a DeployConfigError naming the field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployConfigError(path, f"cannot read the file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DeployConfigError(path, f"not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise DeployConfigError(path, "expected a mapping at the top level")
    try:
        return DeployConfig.model_validate(data)
    except ValidationError as exc:
        raise DeployConfigError(path, first_error(exc, where="config")) from None
    except SourceError as exc:
        raise DeployConfigError(path, exc.message) from None


def first_error(exc: ValidationError, *, where: str) -> str:
    """A validation error as one line: the first problem's field and message, and how many more."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or where
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{field}: {message}{more}"


def selected_profile(config: DeployConfig, environ: Mapping[str, str], *, path: Path | str = PROFILE_ENV) -> Profile:
    """The profile ``CHAT2SQL_DEPLOY_PROFILE`` names, or the config's own ``profile:``.

    >>> selected_profile(load_config(DEFAULT_CONFIG), {"CHAT2SQL_DEPLOY_PROFILE": "cpu"})
    'cpu'
    """
    value = environ.get(PROFILE_ENV, "").strip().lower()
    profile = config.profile if not value else next((p for p in PROFILES if p == value), None)
    if profile is None:
        expected = " or ".join(PROFILES)
        raise DeployConfigError(Path(path), f"{PROFILE_ENV}={value!r} is not a profile (expected {expected})")
    if profile == "cpu" and config.cpu.engine == "llamacpp":
        peft = [name for name, a in config.adapters.items() if not _is_gguf(a.source)]
        if peft:
            raise DeployConfigError(
                Path(path),
                f"the cpu profile runs llama.cpp, which serves GGUF adapters only; {', '.join(peft)} "
                "is a peft adapter (set cpu.engine: transformers, or serve it with the gpu profile)",
            )
    return profile


def apply_to_settings(settings: Settings, config: DeployConfig, *, profile: Profile | None = None) -> Settings:
    """Settings whose model, adapters, decoding and batching come from the deployment config.

    ``profile`` (default: the config's ``profile:``) ``gpu`` leaves the engine choice as it
    is; ``cpu`` also sets the engine, the device, threads and llama.cpp's parallel sequences.
    """
    update: dict[str, object] = {
        "model": config.model.source,
        "quantization": config.model.quantization,
        "dtype": config.model.dtype,
        "max_new_tokens": config.model.max_new_tokens,
        "max_input_tokens": config.model.max_input_tokens,
        "adapters": {
            name: AdapterSpec(source=a.source, prompt_format=a.prompt_format) for name, a in config.adapters.items()
        },
        "default_adapter": config.default_adapter,
        "default_prompt_format": config.default_prompt_format,
        "batch_max_size": config.batching.max_size,
        "batch_max_wait_ms": config.batching.max_wait_ms,
    }
    if (profile or config.profile) == "cpu":
        cpu = config.cpu
        update |= {
            "model": cpu.model,
            "engine": cpu.engine,
            "device": "cpu",
            "quantization": "none",  # NF4 on a CPU is slower than float32; llama.cpp runs the GGUF's own
            "dtype": cpu.dtype,
            "threads": cpu.threads,
            "llamacpp_parallel": cpu.parallel,
            "llamacpp_cache_tokens": cpu.cache_tokens,
            "batch_max_size": cpu.parallel,
        }
    return settings.model_copy(update=update)


def settings_with_deploy_config(settings: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    """``settings`` as they are, or with ``CHAT2SQL_DEPLOY_CONFIG`` applied when it is set, in
    the profile ``CHAT2SQL_DEPLOY_PROFILE`` names (default: the file's ``profile:``).

    Called once at the worker's start-up; ``environ`` defaults to the process environment.
    """
    if settings.deploy_config is None:
        return settings
    config = load_config(settings.deploy_config)
    profile = selected_profile(config, os.environ if environ is None else environ, path=settings.deploy_config)
    return apply_to_settings(settings, config, profile=profile)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_CONFIG
    try:
        config = load_config(path)
        profile = selected_profile(config, os.environ, path=path)
    except DeployConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    hours, cpu = config.business_hours, config.cpu
    print(f"{path}: ok")
    print(f"  model {config.model.source}; adapters: {', '.join(config.adapters) or 'none'}")
    print(f"  profile {profile} (the worker the bot asks; {PROFILE_ENV} overrides the file's '{config.profile}')")
    print(
        f"  GPU {config.gpu.type}, {config.gpu.min_containers}-{config.gpu.max_containers} containers, "
        f"scaledown {config.gpu.scaledown_window_s} s, batch ≤ {config.batching.max_size}"
    )
    print(
        f"  CPU {cpu.engine} {cpu.model}, {cpu.cores:g} cores ({cpu.reservation:g} reserved) / {cpu.threads} threads, "
        f"{cpu.memory_mib} MiB, "
        f"{cpu.min_containers}-{cpu.max_containers} containers, scaledown {cpu.scaledown_window_s} s, "
        f"{cpu.parallel} questions at once"
    )
    print(
        f"  business hours {hours.start:%H:%M}-{hours.end:%H:%M} {hours.timezone}; warm-up cron: {hours.warmup_cron()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
