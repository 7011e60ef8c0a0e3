"""The async clients the bot uses to get SQL for a question.

One protocol (``InferenceClient``) and one set of errors (``inference.client.errors``), several
implementations: ``WorkerClient`` (our worker over HTTP, ``inference.client.http``),
``OpenAICompatibleClient`` (any OpenAI-compatible server, ``inference.client.openai_compatible``),
``LocalInferenceClient`` (the worker's engine in this process, ``inference.local``) and the Modal
client (``deploy.modal_client``). ``make_client`` (``inference.client.factory``) picks the HTTP
one the settings name.
"""

from inference.client.errors import (
    GENERATION_FAILED,
    MODEL_LOADING,
    WORKER_ERRORS,
    InferenceClient,
    WorkerCode,
    WorkerColdStarting,
    WorkerError,
    WorkerOverloaded,
    WorkerRejected,
    WorkerTimeout,
    WorkerUnavailable,
    code_for,
    error_for,
)
from inference.client.factory import make_client
from inference.client.http import (
    CONNECT_TIMEOUT_S,
    DEFAULT_RETRY,
    MAX_DETAIL_CHARS,
    TIMEOUT_S,
    Clock,
    RetryPolicy,
    Sleep,
    WorkerClient,
)
from inference.client.openai_compatible import DEFAULT_MAX_NEW_TOKENS, STOP, OpenAICompatibleClient

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_RETRY",
    "GENERATION_FAILED",
    "MAX_DETAIL_CHARS",
    "MODEL_LOADING",
    "STOP",
    "TIMEOUT_S",
    "WORKER_ERRORS",
    "Clock",
    "InferenceClient",
    "OpenAICompatibleClient",
    "RetryPolicy",
    "Sleep",
    "WorkerClient",
    "WorkerCode",
    "WorkerColdStarting",
    "WorkerError",
    "WorkerOverloaded",
    "WorkerRejected",
    "WorkerTimeout",
    "WorkerUnavailable",
    "code_for",
    "error_for",
    "make_client",
]
