"""The per-request gateway series accounting records (omniroute.telemetry.metrics.UsageMetrics):
names, labels and values, read back through an in-memory OpenTelemetry reader."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from omniroute.telemetry.metrics import UsageMetrics, rejection_reason
from omniroute.v1 import common_pb2, events_pb2


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """name → [(attributes, value or histogram (count, sum))]."""
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = ((point.count, point.sum) if isinstance(point, HistogramDataPoint)
                             else getattr(point, "value", None))
                    out.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return out


def event(request_id: str, **fields: Any) -> events_pb2.UsageEvent:
    fields.setdefault("usage", common_pb2.Usage(input_tokens=100, output_tokens=20))
    return events_pb2.UsageEvent(request_id=request_id, key_id=fields.pop("key", "k1"),
                                 provider="openai", model="gpt-4o-mini", latency_ms=500, **fields)


def test_gateway_series() -> None:
    reader = InMemoryMetricReader()
    usage = UsageMetrics.create(MeterProvider(metric_readers=[reader]).get_meter("test"))
    usage.record(event("a", status=200, ttft_ms=250, stream=True), Decimal("0.5"))
    usage.record(event("b", status=200, cache_hit=True, cache_kind="semantic"), Decimal(0))
    usage.record(event("c", status=200, cache_hit=True, cache_kind="exact"), Decimal(0))
    usage.record(event("d", status=200, failed_attempts=["anthropic/c1:503", "openai/c2:429"]),
                 Decimal("0.25"))
    usage.record(event("e", status=502, failed_attempts=["openai/c2:502"]), Decimal(0))
    for request_id, error_class in (("f", "budget_exhausted"), ("g", "rate_limit_exceeded"),
                                    ("h", "account_busy"), ("i", "rate_limited")):
        usage.record(event(request_id, status=429, error_class=error_class, key="k2",
                           usage=common_pb2.Usage()), Decimal(0))
    got = points(reader)

    ttft = got["omniroute.time_to_first_token"]
    assert ttft == [({"provider": "openai", "model": "gpt-4o-mini"}, (1, 0.25))]
    assert sorted((a["kind"], v) for a, v in got["omniroute.cache.hits"]) == [("exact", 1), ("semantic", 1)]
    # Fallbacks only on the answered request: 2 failed attempts, 1 request.
    assert [v for _, v in got["omniroute.fallbacks"]] == [2]
    assert [v for _, v in got["omniroute.fallback.requests"]] == [1]
    assert sorted((a["reason"], a["key"], v) for a, v in got["omniroute.rate_limit.rejections"]) == [
        ("accounts_busy", "k2", 1), ("budget", "k2", 1), ("key_rate_limit", "k2", 1), ("upstream", "k2", 1)]
    key_requests = {(a["key"], a["status"]): v for a, v in got["omniroute.key.requests"]}
    assert key_requests == {("k1", "200"): 4, ("k1", "502"): 1, ("k2", "429"): 4}
    assert {a["key"]: v for a, v in got["omniroute.key.cost.usd"]} == {"k1": 0.75}
    key_tokens = {(a["key"], a["direction"]): v for a, v in got["omniroute.key.tokens"]}
    assert key_tokens == {("k1", "input"): 500, ("k1", "output"): 100}
    statuses = {a["status"]: v for a, v in got["omniroute.requests"]}
    assert statuses == {"200": 4, "502": 1, "429": 4}


def test_rejection_reason_only_for_429() -> None:
    assert rejection_reason(event("x", status=503, error_class="account_busy")) is None
    assert rejection_reason(event("y", status=429, error_class="budget_exhausted")) == "budget"
    assert rejection_reason(event("z", status=429)) == "upstream"


def test_a_request_charged_the_default_price_counts_as_unpriced_and_its_cost() -> None:
    reader = InMemoryMetricReader()
    usage = UsageMetrics.create(MeterProvider(metric_readers=[reader]).get_meter("test"))
    usage.record(event("a", status=200), Decimal("0.001"), unpriced=True)
    usage.record(event("b", status=200), Decimal("0.002"))
    got = points(reader)
    assert got["omniroute.pricing.unpriced"] == [({"provider": "openai", "model": "gpt-4o-mini"}, 1)]
    assert [v for _, v in got["omniroute.cost.usd"]] == [0.003]
