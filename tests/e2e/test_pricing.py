"""Everything priced, through the running stack: an image and a transcription get their seeded
per-image and per-second prices in the usage row, a model without a price is charged the
configured default and counted in omniroute.pricing.unpriced, and a budget in a configured time
zone reports that zone's next midnight as its reset (x-budget-reset, /api/usage/budget)."""

from __future__ import annotations

import io
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from omniroute.devstack.stack import ServiceProcess, Stack, free_port
from tests import support
from tests.mocks.server import MockServer

pytestmark = pytest.mark.xdist_group("pricing")

KEY = "sk-omni-pricing-0000000000000000"
ZONE = "Asia/Kolkata"  # +05:30 all year: midnight there is never a UTC midnight
AUDIO = b"RIFF" + b"\x00" * 63996  # the mock transcribes it as 2.0 s


@dataclass
class MeteredStack(Stack):
    """Every service serves Prometheus /metrics on a port of its own."""

    metrics_ports: dict[str, int] = field(default_factory=dict)

    def start_service(self, name: str, module: str, *args: str,
                      env: dict[str, str] | None = None) -> ServiceProcess:
        port = self.metrics_ports.setdefault(name, free_port())
        return super().start_service(name, module, *args, env={
            **(env or {}), "OTEL_METRICS_EXPORTER": "prometheus", "OMNIROUTE_METRICS_PORT": str(port)})


@pytest.fixture(scope="module")
def gateway(mock_upstream: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.Gateway]:
    config = {
        "providers": [{"id": "priced", "type": "openai", "base_url": f"{mock_upstream.url}/v1",
                       "models": ["dall-e-3", "whisper-1", "mock-text"],
                       "connections": [{"name": "only", "api_key": "sk-pricing-upstream"}]}],
        "keys": [{"name": "pricing", "key": KEY, "budget": {"limit": 100, "period": "daily"}}],
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(support, "Stack", MeteredStack)
        with support.running_gateway(tmp_path_factory.mktemp("pricing"), config, api_key=KEY, extra_env={
                "OMNIROUTE_BUDGET_TIMEZONE": ZONE, "OMNIROUTE_DEFAULT_PRICE_INPUT_PER_MTOK": "7",
                "OMNIROUTE_DEFAULT_PRICE_OUTPUT_PER_MTOK": "21"}) as running:
            yield running


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}"}


def test_an_image_is_priced_per_image_by_size_and_quality(gateway: support.Gateway) -> None:
    raw = httpx.post(f"{gateway.url}/v1/images/generations", headers=auth(), timeout=30, json={
        "model": "priced/dall-e-3", "prompt": "a red cat", "n": 2, "size": "1024x1024", "quality": "hd"})
    assert raw.status_code == 200, raw.text
    row = gateway.usage_row(raw.headers["x-request-id"])
    assert row["cost_usd"] == Decimal("0.16")  # 2 x $0.08, DALL-E 3 1024x1024 hd


def test_a_transcription_is_priced_per_audio_second(gateway: support.Gateway) -> None:
    raw = httpx.post(f"{gateway.url}/v1/audio/transcriptions", headers=auth(), timeout=30,
                     files={"file": ("talk.wav", io.BytesIO(AUDIO), "audio/wav")},
                     data={"model": "priced/whisper-1"})
    assert raw.status_code == 200, raw.text
    row = gateway.usage_row(raw.headers["x-request-id"])
    assert row["cost_usd"] == Decimal("0.0002")  # 2.0 s x $0.006 / minute


def test_an_unpriced_model_is_charged_the_default_and_counted(gateway: support.Gateway) -> None:
    raw = httpx.post(f"{gateway.url}/v1/chat/completions", headers=auth(), timeout=30, json={
        "model": "priced/mock-text", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16})
    assert raw.status_code == 200, raw.text
    row = gateway.usage_row(raw.headers["x-request-id"])
    expected = (Decimal(row["input_tokens"]) * 7 + Decimal(row["output_tokens"]) * 21) / 1_000_000
    assert row["input_tokens"] > 0 and row["cost_usd"] == expected
    assert isinstance(gateway.stack, MeteredStack)
    port = gateway.stack.metrics_ports["accounting"]
    # Accounting counts the unpriced request as it prices the batch, which may end just after the
    # row is visible: read the metric until it shows up (a few seconds at most).
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        counted = re.search(r'^omniroute_pricing_unpriced_total\{[^}]*model="mock-text"[^}]*\} (\S+)$',
                            text, re.M)
        if (counted and float(counted.group(1)) >= 1) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert counted and float(counted.group(1)) >= 1, text[:2000]


def test_a_budget_in_a_time_zone_resets_at_its_midnight(gateway: support.Gateway) -> None:
    raw = httpx.post(f"{gateway.url}/v1/chat/completions", headers=auth(), timeout=30, json={
        "model": "priced/mock-text", "messages": [{"role": "user", "content": "when"}], "max_tokens": 8})
    assert raw.status_code == 200, raw.text
    now = datetime.now(ZoneInfo(ZONE))
    midnight = datetime(now.year, now.month, now.day, tzinfo=ZoneInfo(ZONE)) + timedelta(days=1)
    assert raw.headers["x-budget-reset"] == midnight.isoformat()
    assert raw.headers["x-budget-reset"].endswith("+05:30")
    admin = gateway.admin_client()
    try:
        [status] = [b for b in admin.get("/api/usage/budget").json()["budgets"] if b["name"] == "pricing"]
    finally:
        admin.close()
    assert (status["resetsAt"], status["timezone"]) == (midnight.isoformat(), ZONE)
    assert status["held"] >= 0 and status["periodStart"] == (midnight - timedelta(days=1)).isoformat()
