"""The GenAI semantic-convention series (omniroute.telemetry.metrics.GenAiMetrics): the
`gen_ai.client.inference.*` names of the conventions' current text, their attributes, and the
advised token buckets; and the pieces of a budget alert that need no server (omniroute.alerts)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from decimal import Decimal

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from omniroute import alerts
from omniroute.shared_state.budget import DEFAULT_ALERT_AT, Budget, parse_alert_at
from omniroute.telemetry.metrics import TOKEN_BUCKETS, GenAiMetrics
from omniroute.v1 import common_pb2, events_pb2


def test_token_usage_follows_the_inference_family() -> None:
    reader = InMemoryMetricReader()
    view = View(instrument_name="gen_ai.client.inference.operation.*",
                aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS))
    genai = GenAiMetrics.create(MeterProvider(metric_readers=[reader], views=[view]).get_meter("t"))
    genai.record(events_pb2.UsageEvent(
        request_id="a", provider="openai", model="gpt-4o", status=200, latency_ms=250,
        usage=common_pb2.Usage(input_tokens=100, output_tokens=30, cached_tokens=40,
                               reasoning_tokens=10)))
    genai.record(events_pb2.UsageEvent(request_id="b", provider="openai", model="gpt-4o",
                                       status=502, error_class="upstream_error", latency_ms=90))
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert "gen_ai.client.token.usage" not in metrics  # replaced by the inference family
    ok = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
          "gen_ai.operation.name": "chat", "omniroute.operation": "chat"}
    failed = {**ok, "error.type": "upstream_error"}

    def sums(name: str) -> dict[frozenset[tuple[str, object]], object]:
        return {frozenset((p.attributes or {}).items()): getattr(p, "value", None)
                for p in metrics[name].data.data_points}

    unknown = {"gen_ai.token.modality": "unknown"}
    prefix = "gen_ai.client.inference.usage."
    assert sums(prefix + "input_tokens") == {frozenset({**ok, **unknown}.items()): 100,
                                             frozenset({**failed, **unknown}.items()): 0}
    assert sums(prefix + "output_tokens")[frozenset({**ok, **unknown}.items())] == 30
    assert sums(prefix + "cache_read.input_tokens") == {frozenset({**ok, **unknown}.items()): 40}
    assert sums(prefix + "reasoning.output_tokens") == {frozenset({**ok, **unknown}.items()): 10}
    for name in ("gen_ai.client.inference.operation.input_tokens",
                 "gen_ai.client.inference.operation.output_tokens"):
        points = metrics[name].data.data_points
        assert metrics[name].unit == "{token}"
        assert all(isinstance(p, HistogramDataPoint) for p in points)
        # No modality on the histograms: percentiles across modalities do not add up.
        assert {frozenset((p.attributes or {}).items()) for p in points} == {
            frozenset(ok.items()), frozenset(failed.items())}
        assert all(tuple(p.explicit_bounds) == TOKEN_BUCKETS for p in points)  # type: ignore[union-attr]
    assert TOKEN_BUCKETS[-1] == 67108864
    assert metrics["gen_ai.client.operation.duration"].unit == "s"


def test_each_operation_is_named_by_the_conventions() -> None:
    reader = InMemoryMetricReader()
    genai = GenAiMetrics.create(MeterProvider(metric_readers=[reader]).get_meter("t"))
    for operation in (common_pb2.OPERATION_CHAT, common_pb2.OPERATION_EMBEDDINGS,
                      common_pb2.OPERATION_IMAGES, common_pb2.OPERATION_TRANSCRIPTION):
        genai.record(events_pb2.UsageEvent(request_id="r", provider="openai", model="m", status=200,
                                           latency_ms=10, operation=operation))
    data = reader.get_metrics_data()
    assert data is not None
    [duration] = [m for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
                  if m.name == "gen_ai.client.operation.duration"]
    named = {((p.attributes or {})["gen_ai.operation.name"], (p.attributes or {})["omniroute.operation"])
             for p in duration.data.data_points}
    assert named == {("chat", "chat"), ("embeddings", "embeddings"), ("generate_content", "images"),
                     ("generate_content", "transcription")}


def test_alert_thresholds_parse_and_store() -> None:
    assert parse_alert_at([1, 0.5, "0.8", 0.5, 0, 1.5, "x", None]) == (0.5, 0.8, 1.0)
    assert parse_alert_at("0.5") == ()
    assert Budget.parse({"limit": 5}) == Budget(limit_usd=Decimal(5))
    assert Budget.parse({"limit": 5}).alert_at == DEFAULT_ALERT_AT  # type: ignore[union-attr]
    none = Budget.parse({"limit": 5, "alertAt": []})
    assert none is not None and none.alert_at == () and none.as_json()["alertAt"] == []
    assert "alertAt" not in Budget(limit_usd=Decimal(5)).as_json()  # the default goes unsaid


def test_alert_body_and_signature() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    alert = alerts.Alert(key_id="k1", key_name="team-a", period="monthly", period_start=start,
                         period_end=datetime(2027, 1, 1, tzinfo=UTC), threshold=0.8,
                         limit_usd=Decimal(50), spent_usd=Decimal("40.1"))
    body = alert.as_json()
    assert body["text"].startswith("OmniRoute budget alert: API key team-a (k1) has spent $40.10 "
                                   "of its $50.00 monthly budget (80% threshold reached")
    assert body["alertId"] == "k1:monthly:20261201:0.8" and body["spentUsd"] == 40.1
    expected = hmac.new(b"s", b"1700000000." + b"{}", hashlib.sha256).hexdigest()
    assert alerts.signature("s", "1700000000", b"{}") == "sha256=" + expected
    assert alerts.claim_key("e", "k1", "daily", start, 1.0) == "e:budget:alerted:k1:daily:20261201:1"
