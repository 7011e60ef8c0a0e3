"""``make_client``: the HTTP client for the configured server (``CHAT2SQL_INFERENCE``)."""

from __future__ import annotations

from typing import Literal, assert_never

from inference.client.errors import InferenceClient
from inference.client.http import TIMEOUT_S, WorkerClient
from inference.client.openai_compatible import OpenAICompatibleClient


def make_client(
    *,
    kind: Literal["worker", "openai"],
    base_url: str,
    api_key: str | None,
    model: str | None = None,
    timeout_s: float = TIMEOUT_S,
) -> InferenceClient:
    """The client for the configured server. For ``worker`` the key is required and ``model``
    is the default adapter; for ``openai`` the key is optional and ``model`` is required."""
    match kind:
        case "worker":
            if not api_key:
                raise ValueError("the worker needs an API key")
            return WorkerClient(base_url=base_url, api_key=api_key, default_adapter=model, timeout_s=timeout_s)
        case "openai":
            if not model:
                raise ValueError("an OpenAI-compatible server needs a model name")
            return OpenAICompatibleClient(base_url=base_url, api_key=api_key, model=model, timeout_s=timeout_s)
    assert_never(kind)
