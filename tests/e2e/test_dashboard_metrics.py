"""Every query of every shipped Grafana dashboard (deploy/grafana/dashboards) names series that
the running stack really exports: a stack whose services each serve Prometheus /metrics, traffic
that makes every kind of series appear (whole and streamed answers, an exact-cache hit, a
fallback past a failing connection and its breaker, a budget refusal, budgets), then a scrape of
every service compared with the metric names parsed out of each dashboard's expressions."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from omniroute.devstack.stack import ServiceProcess, Stack, free_port
from tests import support
from tests.mocks.common import SCRIPTED
from tests.mocks.server import MockServer

pytestmark = pytest.mark.xdist_group("dashboard-metrics")

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
KEY = "sk-omni-metrics-000000000000000"
BROKE_KEY = "sk-omni-metrics-broke-0000000"  # a budget of $0: every request is refused (429)
FAILING = "sk-metrics-fail-a"

# PromQL words that look like metric names but are not.
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                 "or", "unless", "offset", "inf", "nan", "e"}


def metric_names(expr: str) -> set[str]:
    """The series a PromQL expression selects: identifiers that are neither functions,
    aggregation modifiers, label names nor Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # label values and strings
    text = re.sub(r"\{[^}]*\}", "", text)                         # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                        # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)                       # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        if match.group(2) is None and match.group(1) not in _PROMQL_WORDS:
            names.add(match.group(1))
    return names


def dashboard_queries() -> dict[str, set[str]]:
    """Each expression of each dashboard (panels and query variables) → the series it names."""
    queries: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        dash: dict[str, Any] = json.loads(path.read_text())
        exprs = [target["expr"] for panel in dash["panels"] for target in panel.get("targets", [])]
        for variable in dash["templating"]["list"]:
            if variable.get("type") == "query":
                query = variable.get("query")
                query = query.get("query", "") if isinstance(query, dict) else str(query or "")
                exprs += re.findall(r"label_values\(([^,)]+)", query)
        for expr in exprs:
            queries[f"{path.name}: {expr}"] = metric_names(expr)
    return queries


def test_the_parser_finds_series_and_nothing_else() -> None:
    assert metric_names(
        'sum by (gen_ai_provider_name, error_type) (rate(gen_ai_client_operation_duration_seconds_count'
        '{gen_ai_provider_name=~"$provider", error_type!=""}[$__rate_interval]))') == {
        "gen_ai_client_operation_duration_seconds_count"}
    assert metric_names('count(max by (key) (a_usd{key=~"$key"}) / clamp_min(b_usd, 1e-9) >= 0.8)'
                        ' or vector(0)') == {"a_usd", "b_usd"}
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m])))') == {"x_bucket"}


@dataclass
class MeteredStack(Stack):
    """A stack whose every service serves Prometheus /metrics on a port of its own."""

    metrics_ports: dict[str, int] = field(default_factory=dict)

    def start_service(self, name: str, module: str, *args: str,
                      env: dict[str, str] | None = None) -> ServiceProcess:
        port = self.metrics_ports.setdefault(name, free_port())
        return super().start_service(name, module, *args, env={
            **(env or {}), "OTEL_METRICS_EXPORTER": "prometheus",
            "OMNIROUTE_METRICS_PORT": str(port)})


@pytest.fixture(scope="module")
def gateway(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[support.Gateway]:
    base = f"{mock_upstream.url}/v1"
    config = {
        "providers": [
            {"id": "steady", "type": "openai", "base_url": base, "models": ["gpt-4o-mini"],
             "connections": [{"name": "only", "api_key": "sk-metrics-steady"}]},
            {"id": "shaky", "type": "openai", "base_url": base, "models": ["gpt-4o-mini"],
             "connections": [{"name": "a", "api_key": FAILING, "priority": 0},
                             {"name": "b", "api_key": "sk-metrics-fail-b", "priority": 1}]},
        ],
        "keys": [{"name": "metrics", "key": KEY},
                 {"name": "broke", "key": BROKE_KEY, "budget": {"limit": 0, "period": "daily"}}],
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(support, "Stack", MeteredStack)
        with support.running_gateway(tmp_path_factory.mktemp("metrics"), config,
                                     api_key=KEY) as running:
            yield running


def chat(gateway: support.Gateway, model: str, content: str, *, key: str = KEY,
         stream: bool = False, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream,
            "max_tokens": 32}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}", **(headers or {})})


def scrape(port: int) -> set[str]:
    """The sample names one /metrics page carries (comments and labels left out)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_every_dashboard_query_names_a_series_the_stack_exports(gateway: support.Gateway) -> None:
    assert isinstance(gateway.stack, MeteredStack)
    marker = f"metrics {time.time()}"
    assert chat(gateway, "steady/gpt-4o-mini", marker).status_code == 200
    assert chat(gateway, "steady/gpt-4o-mini", marker + " streamed", stream=True).status_code == 200
    cached = {"cache-control": "max-age=60"}
    for _ in range(2):  # the second is an exact-cache hit
        assert chat(gateway, "steady/gpt-4o-mini", marker + " cached", headers=cached).status_code == 200
    SCRIPTED[FAILING] = "mock-503"  # connection a fails: its breaker counts, b answers
    try:
        for index in range(3):
            assert chat(gateway, "shaky/gpt-4o-mini", f"{marker} fallback {index}").status_code == 200
    finally:
        SCRIPTED.pop(FAILING, None)
    assert chat(gateway, "steady/gpt-4o-mini", marker, key=BROKE_KEY).status_code == 429

    wanted = dashboard_queries()
    assert wanted and all(wanted.values()), [q for q, names in wanted.items() if not names]
    needed = set().union(*wanted.values())
    ports = gateway.stack.metrics_ports
    exported: set[str] = set()
    deadline = time.monotonic() + 45  # the budget gauges are polled every 15 s
    while True:
        exported = set().union(*(scrape(port) for port in ports.values()))
        if needed <= exported or time.monotonic() > deadline:
            break
        time.sleep(1)
    missing = {query: sorted(names - exported) for query, names in wanted.items()
               if names - exported}
    assert not missing, json.dumps(missing, indent=1)
    # The GenAI conventions' current names are exported, the replaced histogram is not.
    assert "gen_ai_client_inference_usage_input_tokens_total" in exported
    assert "gen_ai_client_inference_operation_output_tokens_bucket" in exported
    assert not any(name.startswith("gen_ai_client_token_usage") for name in exported)
    assert "omniroute_budget_remaining_usd" in exported
