"""OpenTelemetry set-up shared by every service, and W3C context across gRPC and NATS.

Exporters follow the standard OTEL_* variables (OTEL_TRACES_EXPORTER=otlp|console|none,
OTEL_EXPORTER_OTLP_ENDPOINT, …) and are off unless asked for. OMNIROUTE_TRACE_FILE writes
finished spans as JSON lines to a file (used by tests and for local debugging).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

from omniroute import settings

_configured = False


def setup(service_name: str) -> None:
    """Install the tracer provider once per process."""
    global _configured
    if _configured:
        return
    _configured = True
    from omniroute.telemetry import metrics as _metrics  # metrics: OTEL_METRICS_EXPORTER

    config = settings.load()
    _metrics.setup(service_name, config)
    exporter_names = {n.strip() for n in config.traces_exporter.split(",")}
    trace_file = config.trace_file
    if not trace_file and not exporter_names & {"otlp", "console"}:
        # No exporter: keep OpenTelemetry's no-op provider, so spans (ours and FastAPI's) cost
        # next to nothing on the hot path instead of being recorded and thrown away.
        return
    resource = Resource.create({"service.name": config.otel_service_name or service_name})
    provider = TracerProvider(resource=resource)
    if "otlp" in exporter_names:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in exporter_names:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    if trace_file:
        out = open(trace_file, "a", buffering=1)
        exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def shutdown() -> None:
    from omniroute.telemetry import metrics as _metrics

    _metrics.shutdown()
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


@contextlib.contextmanager
def call_span(tracer: trace.Tracer, name: str, parent: context.Context) -> Iterator[trace.Span]:
    """The span of one gRPC call, current for the rest of the call.

    Its context is attached but never detached: a streaming handler is an async generator, which
    grpc closes from another context when the caller cancels, and resetting the context token
    there fails ("Failed to detach context", with a traceback). grpc.aio runs each call in a task
    of its own, whose context ends with the call, so nothing outlives it."""
    span = tracer.start_span(name, context=parent)
    context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
        raise
    finally:
        span.end()


def grpc_metadata() -> list[tuple[str, str]]:
    """The current trace context as gRPC metadata (traceparent / tracestate)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def context_from_metadata(metadata: Iterable[tuple[str, Any]] | None) -> context.Context:
    carrier = {key: value for key, value in (metadata or ()) if isinstance(value, str)}
    return propagate.extract(carrier)


def nats_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_headers(headers: Mapping[str, str] | None) -> context.Context:
    return propagate.extract(dict(headers or {}))


def links_from_messages(messages: Iterable[Any]) -> list[trace.Link]:
    """Span links to the traces whose context NATS messages carry (batch consumers)."""
    links = []
    for message in messages:
        span_context = trace.get_current_span(context_from_headers(message.headers)).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
    return links
