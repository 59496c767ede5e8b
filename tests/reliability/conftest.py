"""Fixtures of the reliability suite: one gateway in front of a well-behaved and a misbehaving
upstream, shared by the fault, bad-input and security tests of one xdist worker.

Every scripted fault gets a provider (and so a connection, a breaker and a cooldown) of its own:
a fault must not be hidden by another one having opened a breaker first. Each fault also has a
combo `fb-<model>` that falls back to the good upstream, with a short per-combo timeout. The
fallback tests use providers of their own per fault and mode (`p-<model>-whole`, `p-<model>-stream`
in the combos `fb-<model>-whole`, `fb-<model>-stream`): a cooldown or breaker left by the whole
test must not let the stream test skip the faulty target, which would hide the fault."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mocks.faults import FAULTS, FaultServer, start_fault_server
from tests.mocks.server import MockServer, start_mock_server
from tests.support import Gateway, running_gateway

API_KEY = "sk-omni-reliab-key-a-0123456789"
OTHER_KEY = "sk-omni-reliab-key-b-9876543210"
#: Upstream timeout of the stack (OMNIROUTE_UPSTREAM_TIMEOUT_S) and of the fallback combos.
UPSTREAM_TIMEOUT_S = 2.0
COMBO_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 4.0
#: Scenarios of the ordinary mock (tests/mocks/README.md) that misbehave.
MOCK_FAULTS = ("mock-429", "mock-500", "mock-503", "mock-drop", "mock-error-mid")
FALLBACK_MODES = ("whole", "stream")
#: Every provider credential of the stack: none may ever show in a log or a response.
UPSTREAM_SECRETS = {f"p-{m}": f"sk-upstream-secret-{m}-7f3a9c" for m in (*FAULTS, *MOCK_FAULTS, "good")} | {
    f"p-{m}-{mode}": f"sk-upstream-secret-{m}-{mode}-7f3a9c" for m in (*FAULTS, *MOCK_FAULTS)
    for mode in FALLBACK_MODES}


def fault_config(mock: MockServer, faults: FaultServer) -> dict[str, object]:
    providers: list[dict[str, object]] = [
        {"id": "good", "type": "openai", "base_url": f"{mock.url}/v1",
         "models": ["mock-text", "mock-echo", "mock-slow"],
         "connections": [{"name": "main", "api_key": UPSTREAM_SECRETS["p-good"]}]}]
    combos: list[dict[str, object]] = []
    for model in (*FAULTS, *MOCK_FAULTS):
        base = f"{faults.url}/v1" if model.startswith("fault-") else f"{mock.url}/v1"
        providers.append({"id": f"p-{model}", "type": "openai", "base_url": base, "models": [model],
                          "connections": [{"name": "main", "api_key": UPSTREAM_SECRETS[f"p-{model}"]}]})
        combos.append({"name": f"fb-{model}", "timeout_s": COMBO_TIMEOUT_S,
                       "models": [f"p-{model}/{model}", "good/mock-text"]})
        for mode in FALLBACK_MODES:
            provider = f"p-{model}-{mode}"
            providers.append({"id": provider, "type": "openai", "base_url": base, "models": [model],
                              "connections": [{"name": "main", "api_key": UPSTREAM_SECRETS[provider]}]})
            combos.append({"name": f"fb-{model}-{mode}", "timeout_s": COMBO_TIMEOUT_S,
                           "models": [f"{provider}/{model}", "good/mock-text"]})
    return {"providers": providers, "combos": combos,
            "keys": [{"name": "alice", "key": API_KEY}, {"name": "bob", "key": OTHER_KEY}]}


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[MockServer]:
    with start_mock_server() as server:
        yield server


@pytest.fixture(scope="session")
def fault_upstream() -> Iterator[FaultServer]:
    with start_fault_server() as server:
        yield server


@pytest.fixture(scope="session")
def gateway(mock_upstream: MockServer, fault_upstream: FaultServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {"OMNIROUTE_UPSTREAM_TIMEOUT_S": str(UPSTREAM_TIMEOUT_S),
           "OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS": "true",
           # Small enough for the 413 tests to be cheap.
           "OMNIROUTE_MAX_BODY_BYTES": str(1024 * 1024),
           # A body that has not arrived after this long is refused (408).
           "OMNIROUTE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}
    with running_gateway(tmp_path_factory.mktemp("reliability"), fault_config(mock_upstream, fault_upstream),
                         api_key=API_KEY, extra_env=env) as running:
        yield running
