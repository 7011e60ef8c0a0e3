"""The one typed settings object, read once at start-up and passed in.

Every setting comes from the environment with the ``CHAT2SQL_`` prefix or from a
``.env`` file; ``.env.example`` documents each one.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REGISTRY_FILE = "registry.db"
SECRET_KEY_FILE = "secret.key"
SAMPLES_DIR = "samples"
_HOST_ENTRY = re.compile(r"[A-Za-z0-9:.\[\]_-]{1,253}")


def _host_entries(value: str) -> tuple[str, ...]:
    return tuple(e.strip() for e in value.split(",") if e.strip())


def _env(name: str) -> AliasChoices:
    """A platform's standard variable name, with the CHAT2SQL_-prefixed spelling as well."""
    return AliasChoices(name, f"CHAT2SQL_{name}")


class AdapterSpec(BaseModel):
    """A LoRA adapter the worker serves: where it comes from and how it was prompted."""

    source: str
    prompt_format: str = "schema"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHAT2SQL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    data_dir: Path = Field(default=Path("data"), description="Where all local state lives.")
    registry_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry; default: an SQLite file in data_dir.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts database URLs at rest.",
    )
    preview_max_rows: int = Field(default=50, ge=1, le=10_000)
    preview_timeout_s: float = Field(default=5.0, gt=0, le=300)
    sample_values: int = Field(default=5, ge=0, le=50, description="Distinct sample values kept per text column.")
    introspect_timeout_s: float = Field(default=30.0, gt=0)
    log_level: str = Field(default="INFO")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: short lines on a terminal, JSON lines otherwise (servers, files)."
    )
    allowed_db_hosts: str = Field(
        default="",
        description="Comma-separated host names and CIDR networks (10.0.0.0/8, db.internal) a registered "
        "database must resolve into; empty: any host.",
    )

    # --- inference worker -------------------------------------------------------------
    model: str = Field(
        default="pypi:qwen2.5-coder-0.5b",
        description="Base model source: hub:OWNER/NAME@REVISION, a local folder or .gguf, or pypi:…",
    )
    adapters: dict[str, AdapterSpec] = Field(
        default_factory=dict, description='JSON: {"seed": {"source": "hub:…@rev", "prompt_format": "seed"}}'
    )
    default_adapter: str | None = None
    default_prompt_format: str = "schema"
    engine: Literal["auto", "llamacpp", "transformers"] = Field(
        default="auto",
        description="auto: llama.cpp for a GGUF source (pypi:…, a .gguf file) on a CPU, transformers otherwise",
    )
    threads: int | None = Field(default=None, ge=1, le=256, description="CPU threads for the engine; unset: all cores")
    llamacpp_parallel: int = Field(
        default=8, ge=1, le=64, description="llama.cpp: questions decoded together in one batch (parallel sequences)"
    )
    llamacpp_cache_tokens: int = Field(
        default=16_384,
        ge=1024,
        le=262_144,
        description="llama.cpp: key/value cells shared by the cached schema prefixes and the running questions "
        "(about 12 KiB each for the 0.5B model)",
    )
    device: str = "auto"
    quantization: Literal["auto", "none", "nf4"] = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    max_new_tokens: int = Field(default=128, ge=1, le=512)
    max_input_tokens: int = Field(default=2048, ge=128, le=32_768)
    batch_max_size: int = Field(default=8, ge=1, le=64)
    batch_max_wait_ms: float = Field(default=15.0, ge=0, le=1000)
    cold_start_wait_s: float = Field(default=0.0, ge=0, le=600)
    worker_host: str = "127.0.0.1"
    worker_port: int = Field(default=8001, ge=1, le=65535)
    worker_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="Largest /v1/generate body (413 above; checked after the API key, before parsing). "
        "1 MiB holds the largest valid request: about 232,000 characters at most, 4 bytes each in UTF-8 JSON.",
    )
    redis_url: str | None = Field(default=None, description="Shared rate limits/cache; in memory when unset.")
    hf_token: SecretStr | None = None

    # --- clients of the worker (the bot) ----------------------------------------------
    inference: Literal["local", "worker", "openai"] = Field(
        default="local",
        description="local: the model in-process; worker: our HTTP worker; openai: any OpenAI-compatible server",
    )
    worker_url: str = "http://127.0.0.1:8001"
    worker_api_key: SecretStr | None = None
    openai_model: str | None = Field(
        default=None, description="Model (or LoRA module) name on an OpenAI-compatible server"
    )
    inference_timeout_s: float = Field(default=60.0, gt=0, le=600)

    # --- the bot ------------------------------------------------------------------------
    admins: str = Field(
        default="console:*",
        description="platform:id pairs allowed to run admin commands; '*' = everyone on that platform",
    )
    user_rate_per_minute: float = Field(default=20.0, gt=0)
    user_burst: int = Field(default=10, ge=1)
    workspace_rate_per_minute: float = Field(default=300.0, gt=0)
    workspace_burst: int = Field(default=200, ge=1)
    cache_ttl_s: float = Field(default=3600.0, ge=0)
    schema_budget_tokens: int = Field(default=1500, ge=100, le=30_000)
    examples_per_prompt: int = Field(default=3, ge=0, le=5, description="Verified examples shown to the model.")
    examples_min_similarity: float = Field(
        default=0.75, ge=0, le=1, description="How alike (word overlap) an example's question must be to be shown."
    )
    clarify_unmatched: bool = Field(
        default=True, description="Ask which data is meant when a question matches nothing in the schema."
    )
    candidates: int = Field(
        default=4,
        ge=0,
        le=8,
        description="Sampled candidates beside the greedy answer, chosen among by their results (0: greedy only).",
    )
    candidate_temperature: float = Field(default=0.7, gt=0, le=2.0, description="Sampling temperature of candidates.")
    value_links: bool = Field(
        default=True, description="Tell the model which columns hold the values a question names."
    )
    schema_repairs: bool = Field(
        default=True,
        description="When every candidate names a table or column the schema lacks, try the schema's mended versions.",
    )
    grouping_repairs: bool = Field(
        default=True,
        description="Also try each candidate that aggregates without GROUP BY grouped by its plain select items.",
    )
    warmup_wait_s: float = Field(default=240.0, ge=0, le=900, description="How long a question waits on a cold worker.")

    # --- the chat server (python -m bot serve) -------------------------------------------
    mcp_http: bool = Field(default=True, description="Serve the MCP tools at /mcp (API keys required).")
    server_host: str = "127.0.0.1"
    server_port: int = Field(default=3000, ge=1, le=65535)

    # --- Slack (Slack's own variable names; CHAT2SQL_-prefixed ones work too) -------------
    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_SIGNING_SECRET"))
    slack_client_id: str | None = Field(default=None, validation_alias=_env("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_CLIENT_SECRET"))
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        description="Slack Web API base URL (tests point it at a local fake).",
    )

    # --- tracing (Langfuse's own variable names) -------------------------------------------
    langfuse_public_key: str | None = Field(default=None, validation_alias=_env("LANGFUSE_PUBLIC_KEY"))
    langfuse_secret_key: SecretStr | None = Field(default=None, validation_alias=_env("LANGFUSE_SECRET_KEY"))
    langfuse_host: str = Field(default="https://cloud.langfuse.com", validation_alias=_env("LANGFUSE_HOST"))

    # --- A/B test of two adapter configurations (bot/core/experiment.py) ------------------
    experiment: str | None = Field(
        default=None,
        description='JSON: {"name": "…", "arms": {"a": {"adapter": …, "prompt_format": …}, "b": {…}}, '
        '"percent_b": 50, "databases": {"sales": "b"}}',
    )

    # --- Microsoft Teams (bot/teams) ------------------------------------------------------
    teams_app_id: str | None = Field(
        default=None, description="Microsoft App ID of the Azure Bot (the Entra app or managed identity client id)."
    )
    teams_app_password: SecretStr | None = Field(default=None, description="Client secret (auth type client_secret).")
    teams_tenant_id: str | None = Field(default=None, description="Entra tenant of a single-tenant bot.")
    teams_auth_type: Literal["client_secret", "user_managed_identity"] = Field(
        default="client_secret", description="How the bot gets its Bot Connector tokens."
    )
    teams_allow_anonymous: bool = Field(
        default=False,
        description="DEVELOPMENT ONLY: accept /api/messages without a Bot Connector token (loud warning).",
    )
    teams_service_url: str | None = Field(
        default=None,
        description="Send every reply to this Bot Connector URL instead of the activity's (tests, emulators).",
    )
    teams_reply_window_s: float = Field(
        default=10.0, gt=0, le=14, description="Answer within the turn if ready this soon (Teams allows 15 s)."
    )
    teams_streaming: bool = Field(
        default=True,
        description="In 1:1 chats, show progress as a Teams stream (informative updates, the card last).",
    )

    # --- deployment (deploy/) ---------------------------------------------------------------
    deploy_config: Path | None = Field(
        default=None,
        description="deploy/config.yaml: when set, the worker takes model, adapters and batching from it.",
    )

    @field_validator("deploy_config", "threads", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # CHAT2SQL_DEPLOY_CONFIG= (as in .env.example)

    @field_validator("allowed_db_hosts")
    @classmethod
    def _valid_host_entries(cls, value: str) -> str:
        for entry in _host_entries(value):
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)  # ValueError: not a CIDR network
            elif not _HOST_ENTRY.fullmatch(entry):
                raise ValueError(f"not a host name, address or CIDR network: {entry!r}")
        return value

    @property
    def allowed_db_host_entries(self) -> tuple[str, ...]:
        return _host_entries(self.allowed_db_hosts)

    @property
    def effective_registry_url(self) -> str:
        return self.registry_url or f"sqlite:///{self.data_dir / REGISTRY_FILE}"

    @property
    def uses_embedded_registry(self) -> bool:
        return self.registry_url is None

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / SECRET_KEY_FILE

    @property
    def samples_dir(self) -> Path:
        """Where ``make demo`` builds the sample databases (``samples``): registrable."""
        return self.data_dir / SAMPLES_DIR

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"
