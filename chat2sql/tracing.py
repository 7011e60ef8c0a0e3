"""Tracing behind a small interface: a no-op by default, Langfuse (v5, OpenTelemetry) when
its keys are set.

One trace per question, its id the question's ``trace_id`` (32 hex digits, a valid
OpenTelemetry trace id, also in the audit row and every log line of the request), so a
preview run or a 👎 hours later attaches to the same trace. Spans are exported by
OpenTelemetry's batch processor on its own thread: a Langfuse host that does not answer
never slows a request; only ``close()`` (at shutdown) waits on it, up to
``LANGFUSE_TIMEOUT``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from langfuse import Langfuse
    from opentelemetry.sdk.trace.export import SpanExporter

    from chat2sql.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["span", "generation", "guardrail"]


class Observation(Protocol):
    def update(self, **fields: Any) -> Any: ...


class Tracer(Protocol):
    def observe(
        self, name: str, *, kind: Kind = "span", trace_id: str | None = None, **fields: Any
    ) -> AbstractContextManager[Observation]:
        """A span (a root span of ``trace_id`` when given, else a child of the current one)."""
        ...

    def attributes(self, *, user_id: str, session_id: str | None, **metadata: str) -> AbstractContextManager[Any]:
        """Trace-level attributes for every span opened inside."""
        ...

    def score(self, *, trace_id: str, name: str, value: float, comment: str | None = None) -> None: ...

    def close(self) -> None: ...


class _Nothing:
    def update(self, **fields: Any) -> None:
        pass


class NoopTracer:
    """The default: costs a function call."""

    def observe(
        self, name: str, *, kind: Kind = "span", trace_id: str | None = None, **fields: Any
    ) -> AbstractContextManager[Observation]:
        return nullcontext(_Nothing())

    def attributes(self, *, user_id: str, session_id: str | None, **metadata: str) -> AbstractContextManager[Any]:
        return nullcontext()

    def score(self, *, trace_id: str, name: str, value: float, comment: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class LangfuseTracer:
    def __init__(self, client: Langfuse) -> None:
        self.client = client

    @contextmanager
    def observe(
        self, name: str, *, kind: Kind = "span", trace_id: str | None = None, **fields: Any
    ) -> Iterator[Observation]:
        context: dict[str, Any] = {"trace_context": {"trace_id": trace_id}} if trace_id else {}
        start: Any = self.client.start_as_current_observation  # typed per kind; ours is a runtime value
        with start(name=name, as_type=kind, **context, **fields) as span:
            yield span

    def attributes(self, *, user_id: str, session_id: str | None, **metadata: str) -> AbstractContextManager[Any]:
        from langfuse import propagate_attributes

        # Langfuse keeps propagated values short (200 characters).
        short = {k: v[:200] for k, v in metadata.items()}
        return propagate_attributes(user_id=user_id[:200], session_id=session_id, metadata=short)

    def score(self, *, trace_id: str, name: str, value: float, comment: str | None = None) -> None:
        try:
            self.client.create_score(trace_id=trace_id, name=name, value=value, comment=comment, data_type="NUMERIC")
        except Exception:  # scores are best effort; the feedback row is the record
            log.warning("could not attach a score to the trace", exc_info=True)

    def close(self) -> None:
        self.client.shutdown()


def make_tracer(settings: Settings, *, span_exporter: SpanExporter | None = None) -> Tracer:
    """Langfuse when its keys are set (``LANGFUSE_TRACING_ENABLED=false`` still turns it off),
    else the no-op tracer."""
    if settings.langfuse_public_key is None or settings.langfuse_secret_key is None:
        return NoopTracer()
    from langfuse import Langfuse

    client = Langfuse(
        public_key=settings.langfuse_public_key,
        secret_key=settings.langfuse_secret_key.get_secret_value(),
        base_url=settings.langfuse_host,
        span_exporter=span_exporter,
    )
    return LangfuseTracer(client)
