"""The one typed settings object, read once at start-up and passed in.

Every setting comes from the environment with the ``CHAT2SQL_`` prefix or from a
``.env`` file; ``.env.example`` documents each one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REGISTRY_FILE = "registry.db"
SECRET_KEY_FILE = "secret.key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHAT2SQL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
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
    sample_values: int = Field(
        default=5, ge=0, le=50, description="Distinct sample values kept per text column."
    )
    introspect_timeout_s: float = Field(default=30.0, gt=0)
    log_level: str = Field(default="INFO")

    @property
    def effective_registry_url(self) -> str:
        return self.registry_url or f"sqlite:///{self.data_dir / REGISTRY_FILE}"

    @property
    def uses_embedded_registry(self) -> bool:
        return self.registry_url is None

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / SECRET_KEY_FILE
