"""OpenTelemetry tracing across HTTP and the bus.

One trace follows a write from the gateway to every consumer of its events:

* HTTP: each service's server span continues the caller's ``traceparent``
  (the gateway starts a trace when the client sent none, and passes its own
  span on to the service it forwards to).
* The event: the service records its current ``traceparent`` in the
  CloudEvents envelope when the event is written to the outbox. That value is
  the CloudEvents distributed-tracing extension's *starting* context: it never
  changes as the event travels.
* The hops: the outbox relay publishes each event in a producer span (a child
  of the envelope's context) and puts that span's ``traceparent`` in the AMQP
  message headers; every consumer processes the message in a consumer span
  continued from those headers (from the envelope when a publisher set none).

Request spans are always made, so trace ids propagate and appear in log
lines; spans leave the process only when an OTLP endpoint is configured (off
by default). Without one, events travel with their envelope's context in the
headers and make no spans of their own: on the bus's hot path a span costs
more than the rest of a message's handling by the library, for nobody.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("agenthq")

_lock = threading.Lock()
_provider: TracerProvider | None = None
_exporting_to: set[str] = set()


def configure_tracing(service: str, otlp_endpoint: str | None = None) -> TracerProvider:
    """Install this process's tracer provider (once) and, if ``otlp_endpoint``
    is given, export spans there over OTLP/HTTP (``<endpoint>/v1/traces``).

    Once per process because OpenTelemetry's global provider can be set only
    once; the first service in a process names it (tests run several services
    in one process and share it)."""
    global _provider
    with _lock:
        if _provider is None:
            _provider = TracerProvider(
                resource=Resource.create({"service.name": f"agenthq-{service}"}),
                sampler=ParentBased(ALWAYS_ON),
            )
            trace.set_tracer_provider(_provider)
        if otlp_endpoint and otlp_endpoint not in _exporting_to:
            # Imported here: a process that exports nothing never loads protobuf.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            _exporting_to.add(otlp_endpoint)
        return _provider


def flush_spans(timeout_ms: int = 5000) -> None:
    """Send what is buffered (at shutdown: the last spans are the interesting ones)."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, None outside any trace."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def inject(headers: dict[str, Any]) -> dict[str, Any]:
    """Add the current span's trace context to ``headers`` (and return them)."""
    _propagator.inject(headers)
    return headers


def context_from(carrier: Mapping[str, Any] | None, traceparent: str | None = None) -> Any:
    """The trace context in ``carrier`` (headers), else the one ``traceparent``
    names, else none (a new trace starts)."""
    if carrier and carrier.get(TRACEPARENT):
        return _propagator.extract({k: str(v) for k, v in carrier.items()})
    if traceparent:
        return _propagator.extract({TRACEPARENT: traceparent})
    return otel_context.Context()


def exporting() -> bool:
    return bool(_exporting_to)


def start_producer_span(event_type: str, traceparent: str | None) -> Span | None:
    """The span of one event's publication, a child of the event's own context
    (None when no span is exported)."""
    if not _exporting_to:
        return None
    return tracer.start_span(
        f"publish {event_type}",
        context=context_from(None, traceparent),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "publish",
            "messaging.rabbitmq.destination.routing_key": event_type,
        },
    )


def start_consumer_span(
    queue: str, routing_key: str | None, message_id: str | None, headers: Mapping[str, Any] | None
) -> Span | None:
    """The span of one message's processing by the consumer of ``queue`` (None
    when no span is exported)."""
    if not _exporting_to:
        return None
    return tracer.start_span(
        f"process {queue}",
        context=context_from(headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.rabbitmq.destination.routing_key": routing_key or "",
            "messaging.message.id": message_id or "",
        },
    )


def message_headers(span: Span | None, traceparent: str | None) -> dict[str, str]:
    """The trace headers of a message: ``span`` its parent, or without a span,
    the event's own context."""
    if span is None:
        return {TRACEPARENT: traceparent} if traceparent else {}
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def log_trace_ids(_: Any, __: str, event_dict: Any) -> Any:
    """structlog processor: the trace and span ids of the line's context, so a
    log line leads to its trace."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


def instrument(app: Any) -> None:
    """A server span around every request of ``app`` (named by its route),
    continuing the caller's ``traceparent``. Probes and metrics scrapes make none."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="/healthz,/readyz,/metrics",
        # One span a request: the ASGI send/receive spans only add cost.
        exclude_spans=["receive", "send"],
    )


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id a W3C ``traceparent`` names (``00-<trace id>-<span id>-<flags>``)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else None
