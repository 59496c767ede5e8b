"""Errors that mean a backing store (Postgres, Redis) is away for now: a restart, a failover, a
dropped connection. Background loops that retry later log these in one line; anything else is a
bug and keeps its traceback (the test suite's log scan fails on those)."""

from __future__ import annotations

import psycopg
import redis

STORE_OUTAGES: tuple[type[Exception], ...] = (
    psycopg.OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def describe(exc: BaseException) -> str:
    """One line for a log: the error's class and its first line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
