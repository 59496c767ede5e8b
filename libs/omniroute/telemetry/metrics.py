"""OpenTelemetry metrics: the meter provider every service installs, and the usage instruments.

OTEL_METRICS_EXPORTER (comma list; default none): `prometheus` serves /metrics on
OMNIROUTE_METRICS_PORT (default 9464; on one machine give each process its own port or leave it
off), `otlp` pushes to OTEL_EXPORTER_OTLP_ENDPOINT, `console` prints. Names follow the contract in
deploy/grafana/README.md (the Prometheus exporter adds the unit suffix and `_total`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from omniroute.settings import Settings
from omniroute.v1 import common_pb2, events_pb2

log = logging.getLogger("omniroute.telemetry")

# Long enough for multi-minute streams (the dashboards' contract).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# The GenAI conventions' advised boundaries for per-operation token histograms.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)

_provider: MeterProvider | None = None


def exporters(config: Settings) -> set[str]:
    return {name.strip() for name in config.metrics_exporter.split(",")
            if name.strip() and name.strip() != "none"}


def setup(service_name: str, config: Settings) -> None:
    """Install the meter provider once per process. Without an exporter, instruments are no-ops
    (the API's default provider), so recording costs nothing."""
    global _provider
    names = exporters(config)
    if _provider is not None or not names:
        return
    readers: list[MetricReader] = []
    if "prometheus" in names:
        readers.extend(_prometheus_reader(config))
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    if "console" in names:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    resource = Resource.create({"service.name": config.otel_service_name or service_name})
    views = [
        View(instrument_name="omniroute.request.duration",
             aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS)),
        View(instrument_name="omniroute.time_to_first_token",
             aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS)),
        View(instrument_name="gen_ai.client.operation.duration",
             aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS)),
        View(instrument_name="gen_ai.client.inference.operation.*",
             aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS)),
    ]
    _provider = MeterProvider(resource=resource, metric_readers=readers, views=views)
    metrics.set_meter_provider(_provider)


def _prometheus_reader(config: Settings) -> list[MetricReader]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    try:
        start_http_server(config.metrics_port, addr=config.bind_host)
    except OSError as exc:  # a taken port must not stop the service: it only loses /metrics
        log.error("cannot serve /metrics on %s:%d (%s); Prometheus export is off",
                  config.bind_host, config.metrics_port, exc)
        return []
    log.info("Prometheus metrics on http://%s:%d/metrics", config.bind_host, config.metrics_port)
    return [PrometheusMetricReader()]


def shutdown() -> None:
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)


# 429s the gateway itself decides (the router's error codes), as the `reason` label; any other
# 429 is the upstream's and is labelled "upstream". A fixed set keeps the label bounded.
REJECTION_REASONS = {
    "rate_limit_exceeded": "key_rate_limit",  # admission.py: the key's RPM / TPM / concurrency
    "budget_exhausted": "budget",             # budget_gate.py: the key's USD budget is spent
    "account_busy": "accounts_busy",          # dispatch.py: every connection is at its limit
}
CACHE_KINDS = {"exact", "semantic", "idempotent"}


def rejection_reason(event: events_pb2.UsageEvent) -> str | None:
    """The `reason` of a rate-limit rejection, or None when the request was not one."""
    if event.status != 429:
        return None
    return REJECTION_REASONS.get(event.error_class, "upstream")


@dataclass
class UsageMetrics:
    """The per-request series, recorded once per request by accounting (which sees each usage
    row exactly once: only rows it actually inserted are recorded)."""

    requests: metrics.Counter
    duration: metrics.Histogram
    ttft: metrics.Histogram
    tokens: metrics.Counter
    cost: metrics.Counter
    cache_hits: metrics.Counter
    fallbacks: metrics.Counter
    fallback_requests: metrics.Counter
    rejections: metrics.Counter
    key_requests: metrics.Counter
    key_tokens: metrics.Counter
    key_cost: metrics.Counter
    unpriced: metrics.Counter
    genai: GenAiMetrics

    @classmethod
    def create(cls, source: metrics.Meter | None = None) -> UsageMetrics:
        m = source or meter("omniroute.usage")
        return cls(
            requests=m.create_counter("omniroute.requests", description="Requests answered, by status"),
            duration=m.create_histogram("omniroute.request.duration", unit="s",
                                        description="Request duration as the client saw it"),
            ttft=m.create_histogram("omniroute.time_to_first_token", unit="s",
                                    description="Time to the first streamed chunk"),
            tokens=m.create_counter("omniroute.tokens", unit="{token}",
                                    description="Tokens by direction (input, output, cached_input)"),
            cost=m.create_counter("omniroute.cost.usd", description="Cost in US dollars"),
            cache_hits=m.create_counter("omniroute.cache.hits",
                                        description="Answers served from cache, by kind"),
            fallbacks=m.create_counter("omniroute.fallbacks",
                                       description="Failed attempts before a successful answer"),
            fallback_requests=m.create_counter(
                "omniroute.fallback.requests",
                description="Successful requests that needed at least one fallback"),
            rejections=m.create_counter("omniroute.rate_limit.rejections",
                                        description="Requests refused with 429, by reason"),
            key_requests=m.create_counter("omniroute.key.requests",
                                          description="Requests per API key, by status"),
            key_tokens=m.create_counter("omniroute.key.tokens", unit="{token}",
                                        description="Tokens per API key, by direction"),
            key_cost=m.create_counter("omniroute.key.cost.usd", description="Cost per API key in USD"),
            unpriced=m.create_counter("omniroute.pricing.unpriced",
                                      description="Requests whose model has no price (charged the "
                                                  "configured default price)"),
            genai=GenAiMetrics.create(m))

    def record(self, event: events_pb2.UsageEvent, cost: Decimal | None, unpriced: bool = False) -> None:
        base = {"provider": event.provider or "unknown", "model": event.model or "unknown"}
        status = str(event.status)
        self.requests.add(1, {**base, "status": status})
        self.duration.record(event.latency_ms / 1000.0, base)
        if event.ttft_ms > 0:
            self.ttft.record(event.ttft_ms / 1000.0, base)
        usage = event.usage
        # Per-key series carry the key id only (not provider/model): keys × models would
        # multiply the series count; the key id is an opaque, admin-created identifier.
        key = {"key": event.key_id or "none"}
        self.key_requests.add(1, {**key, "status": status})
        for direction, count in (("input", usage.input_tokens), ("output", usage.output_tokens),
                                 ("cached_input", usage.cached_tokens)):
            if count:
                self.tokens.add(count, {**base, "direction": direction})
                self.key_tokens.add(count, {**key, "direction": direction})
        if cost is None or unpriced:
            self.unpriced.add(1, base)
        if cost is not None and cost > 0:
            self.cost.add(float(cost), base)
            self.key_cost.add(float(cost), key)
        if event.cache_hit:
            kind = event.cache_kind if event.cache_kind in CACHE_KINDS else "unknown"
            self.cache_hits.add(1, {**base, "kind": kind})
        if event.failed_attempts and event.status < 400:
            # Only answered requests: a request that failed after its fallbacks is an error
            # (counted by status), not a fallback that worked.
            self.fallbacks.add(len(event.failed_attempts), base)
            self.fallback_requests.add(1, base)
        reason = rejection_reason(event)
        if reason is not None:
            self.rejections.add(1, {**key, "reason": reason})
        self.genai.record(event)


@dataclass
class GenAiMetrics:
    """The OpenTelemetry GenAI semantic conventions' client metrics, as their current text names
    them (open-telemetry/semantic-conventions-genai, docs/gen-ai/gen-ai-token-metrics.md and
    gen-ai-metrics.md): token usage as `gen_ai.client.inference.usage.*` counters (by
    `gen_ai.token.modality`; cache-read and reasoning tokens are subsets of input and output),
    per-operation token histograms `gen_ai.client.inference.operation.{input,output}_tokens` (no
    modality: percentiles across modalities do not add up), and `gen_ai.client.operation.duration`.
    They replace the `gen_ai.client.token.usage` histogram (by `gen_ai.token.type`) of v1.36."""

    input_tokens: metrics.Counter
    output_tokens: metrics.Counter
    cache_read_tokens: metrics.Counter
    reasoning_tokens: metrics.Counter
    operation_input_tokens: metrics.Histogram
    operation_output_tokens: metrics.Histogram
    duration: metrics.Histogram

    @classmethod
    def create(cls, m: metrics.Meter) -> GenAiMetrics:
        def counter(name: str, description: str) -> metrics.Counter:
            return m.create_counter(name, unit="{token}", description=description)

        def histogram(name: str, description: str) -> metrics.Histogram:
            return m.create_histogram(name, unit="{token}", description=description)

        prefix = "gen_ai.client.inference."
        return cls(
            input_tokens=counter(prefix + "usage.input_tokens",
                                 "Input tokens used, including cached tokens"),
            output_tokens=counter(prefix + "usage.output_tokens",
                                  "Output tokens used, including reasoning tokens"),
            cache_read_tokens=counter(prefix + "usage.cache_read.input_tokens",
                                      "Input tokens read from the provider's prompt cache"),
            reasoning_tokens=counter(prefix + "usage.reasoning.output_tokens",
                                     "Output tokens spent on reasoning"),
            operation_input_tokens=histogram(prefix + "operation.input_tokens",
                                             "Input tokens per inference operation"),
            operation_output_tokens=histogram(prefix + "operation.output_tokens",
                                              "Output tokens per inference operation"),
            duration=m.create_histogram("gen_ai.client.operation.duration", unit="s",
                                        description="GenAI operation duration"))

    def record(self, event: events_pb2.UsageEvent) -> None:
        operation = _OPERATIONS.get(event.operation, ("chat", "chat"))
        attrs = {"gen_ai.provider.name": event.provider or "unknown",
                 "gen_ai.request.model": event.model or "unknown",
                 "gen_ai.operation.name": operation[0], "omniroute.operation": operation[1]}
        if event.status >= 400:
            attrs["error.type"] = event.error_class or str(event.status)
        self.duration.record(event.latency_ms / 1000.0, attrs)
        usage = event.usage
        # Recorded for every operation, failed ones too (0 without usage), as the text asks.
        self.operation_input_tokens.record(usage.input_tokens, attrs)
        self.operation_output_tokens.record(usage.output_tokens, attrs)
        # Providers do not split usage by modality: the conventions' "unknown".
        by_modality = {**attrs, "gen_ai.token.modality": "unknown"}
        self.input_tokens.add(usage.input_tokens, by_modality)
        self.output_tokens.add(usage.output_tokens, by_modality)
        if usage.cached_tokens:
            self.cache_read_tokens.add(usage.cached_tokens, by_modality)
        if usage.reasoning_tokens:
            self.reasoning_tokens.add(usage.reasoning_tokens, by_modality)


# Operation → (gen_ai.operation.name, omniroute.operation). The conventions' predefined names where
# one applies (chat, embeddings); image generation and transcription are multimodal content
# generation ("generate_content"), told apart by omniroute.operation.
_OPERATIONS: dict[int, tuple[str, str]] = {
    common_pb2.OPERATION_CHAT: ("chat", "chat"),
    common_pb2.OPERATION_EMBEDDINGS: ("embeddings", "embeddings"),
    common_pb2.OPERATION_IMAGES: ("generate_content", "images"),
    common_pb2.OPERATION_TRANSCRIPTION: ("generate_content", "transcription"),
}


@dataclass
class EventBufferMetrics:
    """Events a publisher had to drop (omniroute.bus.publisher): its buffer was full, an event
    waited longer than the age limit while NATS was away, or the process stopped with events
    still buffered. Any value above zero is usage that will never reach accounting."""

    dropped: metrics.Counter

    @classmethod
    def create(cls, source: metrics.Meter | None = None) -> EventBufferMetrics:
        m = source or meter("omniroute.bus")
        return cls(dropped=m.create_counter(
            "omniroute.events.dropped", unit="{event}",
            description="Events dropped unpublished, by reason (buffer_full, too_old, shutdown)"))
