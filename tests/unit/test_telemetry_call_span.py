"""The span of a streaming gRPC call survives the call being closed from another context (what
grpc does when the caller cancels) without an error in the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

import pytest
from opentelemetry import context

from omniroute import telemetry


async def handler() -> AsyncGenerator[int, None]:
    with telemetry.call_span(telemetry.tracer("test"), "test.call", context.Context()):
        yield 1
        yield 2


async def test_a_call_closed_from_another_context_logs_no_error(caplog: pytest.LogCaptureFixture) -> None:
    calls = handler()
    # The first event is produced in a task (with a context of its own, as a grpc.aio call is),
    # and the generator is closed from here, as grpc does when the caller goes away.
    assert await asyncio.create_task(anext(calls)) == 1
    with caplog.at_level(logging.ERROR):
        await calls.aclose()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

