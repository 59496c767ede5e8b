"""Evals: suites of cases sent through the gateway, each answer checked against what the case
expects, and a run compared with the suite's previous one.

A case goes through the gateway's own OpenAI route (POST <gateway>/v1/chat/completions) with an
OmniRoute key, like any client: the run exercises aliases, combos, policies and fallbacks
exactly as production traffic does, and is counted in usage under that key.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Literal

import httpx
import jsonschema
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

CASE_TIMEOUT_S = 60.0
PARALLEL = 4
KEPT_OUTPUT = 2000   # characters of each answer stored with the run


class Expected(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["exact", "contains", "regex", "json_schema"]
    value: str | dict[str, Any]

    @model_validator(mode="after")
    def _valid(self) -> Expected:
        if self.type == "json_schema":
            if not isinstance(self.value, dict):
                raise ValueError("json_schema expects a JSON Schema object as value")
            try:
                jsonschema.validators.validator_for(self.value).check_schema(self.value)
            except jsonschema.exceptions.SchemaError as exc:
                raise ValueError(f"invalid JSON Schema: {exc.message}") from None
        elif not isinstance(self.value, str):
            raise ValueError(f"{self.type} expects a string value")
        elif self.type == "regex":
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return self


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    model: str | None = Field(default=None, min_length=1, max_length=200)   # else the suite's
    input: str | list[dict[str, Any]] = Field(min_length=1)   # a prompt, or chat messages
    expected: Expected
    max_tokens: int | None = Field(default=None, ge=1, le=32768)


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    description: str = Field(default="", max_length=500)
    model: str | None = Field(default=None, min_length=1, max_length=200)   # a model or combo
    cases: list[Case] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _complete(self) -> Suite:
        ids = [c.id for c in self.cases]
        if len(ids) != len(set(ids)):
            raise ValueError("case ids must be unique within a suite")
        missing = [c.id for c in self.cases if not (c.model or self.model)]
        if missing:
            raise ValueError(f"cases {missing} name no model and the suite has no default model")
        return self


def check(expected: Expected, output: str) -> tuple[bool, str]:
    """(passed, why) for one answer."""
    if expected.type == "exact":
        ok = output.strip() == str(expected.value).strip()
        return ok, "" if ok else "the answer differs from the expected text"
    if expected.type == "contains":
        ok = str(expected.value) in output
        return ok, "" if ok else f"the answer does not contain {str(expected.value)[:80]!r}"
    if expected.type == "regex":
        ok = re.search(str(expected.value), output) is not None
        return ok, "" if ok else "the answer does not match the pattern"
    text = output.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)   # models often fence JSON
    try:
        document = orjson.loads(fenced.group(1) if fenced else text)
    except orjson.JSONDecodeError:
        return False, "the answer is not JSON"
    assert isinstance(expected.value, dict)
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(expected.value)(expected.value).iter_errors(document))
    return (True, "") if error is None else (False, f"schema: {error.message[:200]}")


async def run_case(client: httpx.AsyncClient, suite: Suite, case: Case) -> dict[str, Any]:
    model = case.model or suite.model
    messages = [{"role": "user", "content": case.input}] if isinstance(case.input, str) else case.input
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": False}
    if case.max_tokens:
        body["max_tokens"] = case.max_tokens
    started = time.monotonic()
    result: dict[str, Any] = {"caseId": case.id, "model": model, "passed": False, "output": "",
                              "reason": "", "status": 0}
    try:
        answer = await client.post("/v1/chat/completions", json=body, timeout=CASE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        result.update(reason=f"the gateway cannot be reached: {type(exc).__name__}")
        return result
    finally:
        result["latencyMs"] = round((time.monotonic() - started) * 1000, 1)
    result["status"] = answer.status_code
    try:
        payload = answer.json()
    except ValueError:
        payload = {}
    if answer.status_code != 200:
        message = (payload.get("error") or {}).get("message") if isinstance(payload, dict) else None
        result["reason"] = f"gateway answered {answer.status_code}: {message or answer.text[:200]}"
        return result
    try:
        output = payload["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        result["reason"] = "the answer has no choices[0].message"
        return result
    passed, why = check(case.expected, output)
    result.update(passed=passed, reason=why, output=output[:KEPT_OUTPUT])
    return result


async def run_suite(suite: Suite, base_url: str, api_key: str) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(PARALLEL)

    async def one(case: Case) -> dict[str, Any]:
        async with limit:
            return await run_case(client, suite, case)

    async with httpx.AsyncClient(base_url=base_url, headers={"authorization": f"Bearer {api_key}",
                                                             "x-omniroute-no-cache": "true"}) as client:
        return list(await asyncio.gather(*(one(c) for c in suite.cases)))


def compare(results: list[dict[str, Any]], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Pass-rate delta and per-case change against the previous run of the same suite."""
    rate = sum(r["passed"] for r in results) / len(results) if results else 0.0
    if previous is None:
        return {"previousRunId": None, "passRateDelta": None,
                "cases": {r["caseId"]: "new" for r in results}}
    before = {r["caseId"]: bool(r["passed"]) for r in previous["results"]}
    old_rate = previous["passed"] / previous["total"] if previous["total"] else 0.0
    changes: dict[str, str] = {}
    for r in results:
        was = before.get(r["caseId"])
        changes[r["caseId"]] = ("new" if was is None else "fixed" if r["passed"] and not was
                                else "regressed" if was and not r["passed"] else "same")
    return {"previousRunId": previous["id"], "passRateDelta": round(rate - old_rate, 4), "cases": changes}
