"""W3C trace context across hops, exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

The context travels in the envelope's ``headers`` (``traceparent``/``tracestate``), which every
hop already preserves. Spans follow the OpenTelemetry messaging conventions:

- the gateway starts the trace: a root PRODUCER span ``send asya-<first actor>`` per job it creates;
- each sidecar hop records a CONSUMER span ``process asya-<actor>`` whose parent is the incoming
  context, with children ``handler <actor>`` (the runtime call) and ``send asya-<dest>`` (PRODUCER,
  one per publish);
- an outgoing envelope carries the context of *its own publish span*, so a fan-out's children each
  hang under the publish that sent them and all share the trace.

Zero cost when the variable is unset: ``ENABLED`` is decided once at import, the OpenTelemetry SDK
is only imported by ``setup`` (never when disabled), and callers test ``tracing.ENABLED`` before
touching anything here, so the hot path creates no span objects. The SDK reads the standard
``OTEL_*`` variables (endpoint, headers, ``OTEL_BSP_*``); the service name defaults to
``asya-<component>`` and the resource carries ``asya.actor``.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

ENABLED = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
"""Tracing is on only with an OTLP endpoint; decided at import so the disabled check is one global read."""

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_SYSTEMS = {"rabbitmq": "rabbitmq", "sqs": "aws_sqs", "local": "asya-local"}

_tracer: Any = None
_provider: Any = None
_hop: contextvars.ContextVar[Any] = contextvars.ContextVar("asya_hop_span", default=None)
"""The consumer span of the delivery this task works on (fan-out publish tasks inherit it)."""
_received: contextvars.ContextVar[int] = contextvars.ContextVar("asya_received_ns", default=0)


def setup(component: str, actor: str = "") -> None:
    """Install the SDK's tracer provider with the OTLP/HTTP exporter (once per process; only when ENABLED)."""
    global _tracer, _provider
    if not ENABLED or _tracer is not None:
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed: "
            "pip install 'asya[otel]' (or unset the variable to run without traces)"
        ) from exc
    attrs: dict[str, str] = {}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = f"asya-{component}"
    if actor:
        attrs["asya.actor"] = actor
    provider = TracerProvider(resource=Resource.create(attrs))  # merges OTEL_RESOURCE_ATTRIBUTES / service name
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # the SDK flushes it at exit
    _provider, _tracer = provider, provider.get_tracer("asya")


def flush(timeout_ms: int = 5000) -> None:
    """Export the spans still batched (tests; processes flush at exit on their own)."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def system(kind: str) -> str:
    """``messaging.system`` for a transport kind."""
    return _SYSTEMS.get(kind, kind)


def _extract(headers: Any) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = headers if isinstance(headers, dict) else {}
    return TraceContextTextMapPropagator().extract({k: v for k, v in carrier.items() if isinstance(v, str)})


def _inject(span: Any, env: dict[str, Any]) -> None:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    hdrs = env.get("headers")
    if not isinstance(hdrs, dict):
        hdrs = env["headers"] = {}
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    hdrs.pop(TRACESTATE, None)
    hdrs.update(carrier)


def _messaging(kind: str, queue: str, operation: str, env: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging.system": system(kind),
        "messaging.destination.name": queue,
        "messaging.operation": operation,
        "messaging.operation.type": operation,
        "messaging.message.id": str(env.get("id", "")),
    }


def begin() -> None:
    """A delivery was taken (each runs in its own task, so these context variables are per delivery)."""
    _received.set(time.time_ns())
    _hop.set(None)


def hop_span() -> Any:
    return _hop.get()


def start_hop(env: dict[str, Any], kind: str, queue: str) -> Any:
    """Begin this delivery's CONSUMER span under the envelope's incoming context, timed from ``begin``."""
    from opentelemetry.trace import SpanKind

    span = _tracer.start_span(
        f"process {queue}",
        context=_extract(env.get("headers")),
        kind=SpanKind.CONSUMER,
        attributes=_messaging(kind, queue, "process", env),
        start_time=_received.get() or None,
    )
    _hop.set(span)
    return span


def end_hop(span: Any, outcome: str) -> None:
    span.set_attribute("asya.outcome", outcome)
    span.end()


async def within_hop(process: Callable[[], Awaitable[T]], outcome: Callable[[T], str]) -> T:
    """Run one delivery's ``process`` inside its CONSUMER span (started once the envelope is decoded)."""
    begin()
    try:
        result = await process()
    except BaseException as exc:
        span = hop_span()
        if span is not None:
            fail(span, exc)
            end_hop(span, type(exc).__name__)
        raise
    span = hop_span()
    if span is not None:
        end_hop(span, outcome(result))
    return result


def start_handler(actor: str) -> Any:
    """A child of the hop span covering the runtime call (None when there is no hop span)."""
    from opentelemetry import trace

    hop = _hop.get()
    if hop is None:
        return None
    return _tracer.start_span(f"handler {actor}", context=trace.set_span_in_context(hop))


def start_publish(env: dict[str, Any], kind: str, queue: str) -> Any:
    """A PRODUCER span for one publish, its context written into ``env``'s headers (what the next hop continues).

    Under the current hop span in a sidecar; a new root elsewhere (the gateway creating a job).
    """
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind

    hop = _hop.get()
    parent = trace.set_span_in_context(hop) if hop is not None else Context()
    span = _tracer.start_span(
        f"send {queue}", context=parent, kind=SpanKind.PRODUCER, attributes=_messaging(kind, queue, "send", env)
    )
    _inject(span, env)
    return span


def trace_id(span: Any) -> str:
    """The 32-hex trace id of ``span``."""
    return f"{span.get_span_context().trace_id:032x}"


def fail(span: Any, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
