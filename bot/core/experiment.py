"""A/B tests of two adapter configurations in production.

``CHAT2SQL_EXPERIMENT`` (JSON) names two arms, each an adapter and/or prompt format. A
user's arm comes from a stable hash of (experiment, platform, workspace, user), so a person
sees one configuration throughout; ``databases`` pins whole databases to an arm instead.
The arm is recorded in each audit row (``experiment:arm``) and trace, and
``python -m bot report ab`` compares the arms.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.core.types import Where
from chat2sql import messages
from chat2sql.errors import UserFacingError

ArmName = Literal["a", "b"]


class InvalidExperiment(UserFacingError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> str:
        return messages.invalid_experiment(self.reason)


class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str | None = Field(default=None, min_length=1, max_length=64)
    prompt_format: str | None = Field(default=None, min_length=1, max_length=64)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_.-]+$")
    arms: dict[ArmName, Arm]
    percent_b: float = Field(default=50.0, ge=0, le=100)
    databases: dict[str, ArmName] = Field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> Experiment | None:
        """
        >>> Experiment.parse('{"name": "x", "arms": {"a": {}, "b": {"prompt_format": "seed"}}}').percent_b
        50.0
        >>> Experiment.parse("") is None
        True
        """
        if not text or not text.strip():
            return None
        try:
            experiment = cls.model_validate_json(text)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the value"
            raise InvalidExperiment(f"{where}: {first['msg']}") from None
        if set(experiment.arms) != {"a", "b"}:
            raise InvalidExperiment("it needs exactly two arms, 'a' and 'b'")
        return experiment

    def assign(self, where: Where, database: str) -> ArmName:
        if database in self.databases:
            return self.databases[database]
        key = f"{self.name}\x00{where.platform}\x00{where.workspace}\x00{where.user_id}".encode()
        bucket = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 10_000
        return "b" if bucket < self.percent_b * 100 else "a"

    def label(self, arm: ArmName) -> str:
        return f"{self.name}:{arm}"
