"""Evals against the running stack: a suite's cases go through the gateway to the mock upstream
(`mock-echo` echoes the prompt, `mock-json` answers a JSON object), each expectation kind passes
and fails where it should, runs are stored and compared (pass-rate delta, per-case change)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import Gateway

pytestmark = pytest.mark.xdist_group("gateway")

SCHEMA = {"type": "object", "required": ["name", "ok"],
          "properties": {"name": {"const": "mock"}, "ok": {"type": "boolean"}}}
STRICT = {"type": "object", "required": ["missing"]}


def _suite(name: str, *, hello_expected: str) -> dict[str, object]:
    return {"name": name, "description": "e2e", "model": "myopenai/mock-echo", "cases": [
        {"id": "exact", "input": "hello world", "expected": {"type": "exact", "value": hello_expected}},
        {"id": "contains", "input": "the quick brown fox",
         "expected": {"type": "contains", "value": "brown"}},
        {"id": "contains-miss", "input": "the quick brown fox",
         "expected": {"type": "contains", "value": "cat"}},
        {"id": "regex", "input": "order 12345 shipped", "expected": {"type": "regex", "value": r"\b\d{5}\b"}},
        {"id": "schema", "model": "myopenai/mock-json", "input": "give json",
         "expected": {"type": "json_schema", "value": SCHEMA}},
        {"id": "schema-miss", "model": "myopenai/mock-json", "input": "give json",
         "expected": {"type": "json_schema", "value": STRICT}},
        {"id": "not-json", "input": "plain words", "expected": {"type": "json_schema", "value": SCHEMA}},
        {"id": "bad-model", "model": "nobody/nothing", "input": "x",
         "expected": {"type": "contains", "value": "x"}},
    ]}


@pytest.fixture
def admin(gateway: Gateway) -> Iterator[httpx.Client]:
    login = httpx.post(f"{gateway.url}/api/auth/login", json={"password": gateway.admin_password})
    assert login.status_code == 200
    with httpx.Client(base_url=gateway.url, timeout=120,
                      headers={"authorization": f"Bearer {login.json()['token']}"}) as client:
        yield client


def test_a_suite_run_through_the_gateway_passes_and_fails_correctly(gateway: Gateway,
                                                                    admin: httpx.Client) -> None:
    saved = admin.post("/api/evals", json={"suite": _suite("e2e-suite", hello_expected="goodbye")})
    assert saved.status_code == 200, saved.text
    assert admin.post("/api/evals", json={"run": "e2e-suite"}).status_code == 400   # no key

    first = admin.post("/api/evals", json={"run": "e2e-suite", "apiKey": gateway.api_key})
    assert first.status_code == 200, first.text
    run = first.json()
    verdicts = {r["caseId"]: r["passed"] for r in run["results"]}
    assert verdicts == {"exact": False, "contains": True, "contains-miss": False, "regex": True,
                        "schema": True, "schema-miss": False, "not-json": False, "bad-model": False}
    reasons = {r["caseId"]: r["reason"] for r in run["results"]}
    assert "not JSON" in reasons["not-json"] and "schema" in reasons["schema-miss"]
    assert reasons["bad-model"].startswith("gateway answered 4")
    assert run["total"] == 8 and run["passed"] == 3 and run["comparison"]["previousRunId"] is None

    # Fix the exact case and run again: +1 case, the others unchanged.
    admin.post("/api/evals", json={"suite": _suite("e2e-suite", hello_expected="hello world")})
    second = admin.post("/api/evals", json={"run": "e2e-suite", "apiKey": gateway.api_key}).json()
    assert second["passed"] == 4
    comparison = second["comparison"]
    assert comparison["previousRunId"] == run["id"] and comparison["passRateDelta"] == 0.125
    assert comparison["cases"]["exact"] == "fixed" and comparison["cases"]["regex"] == "same"

    listed = admin.get("/api/evals").json()["suites"]
    mine = next(s for s in listed if s["name"] == "e2e-suite")
    assert mine["cases"] == 8 and mine["lastRun"]["id"] == second["id"] and mine["lastRun"]["passRate"] == 0.5
    detail = admin.get("/api/evals/e2e-suite").json()
    assert [r["id"] for r in detail["runs"]] == [second["id"], run["id"]]
    back = admin.get("/api/evals/e2e-suite/compare", params={"run": run["id"], "base": second["id"]})
    assert back.status_code == 200 and back.json()["cases"]["exact"] == "regressed"


def test_suites_are_validated(admin: httpx.Client) -> None:
    def refused(suite: dict[str, object]) -> str:
        answer = admin.post("/api/evals", json={"suite": suite})
        assert answer.status_code == 400, answer.text
        return str(answer.json()["error"]["message"])

    case = {"id": "a", "input": "x", "expected": {"type": "regex", "value": "("}}
    assert "regex" in refused({"name": "bad", "model": "m", "cases": [case]})
    case = {"id": "a", "input": "x", "expected": {"type": "json_schema", "value": {"type": 5}}}
    assert "JSON Schema" in refused({"name": "bad", "model": "m", "cases": [case]})
    case = {"id": "a", "input": "x", "expected": {"type": "contains", "value": "x"}}
    assert "no model" in refused({"name": "bad", "cases": [case]})
    assert "unique" in refused({"name": "bad", "model": "m", "cases": [case, case]})
    assert admin.post("/api/evals", json={}).status_code == 400
    assert admin.post("/api/evals", json={"run": "nope", "apiKey": "sk-omni-whatever"}).status_code == 404
    assert admin.delete("/api/evals/nope").status_code == 404
