"""Values from the bus made storable: Postgres text and jsonb refuse the NUL character (a caller
may put one in a model name or a message), and one such value must not fail its whole batch,
which JetStream would then redeliver for ever."""

from __future__ import annotations

from typing import Any


def text(value: str) -> str:
    return value.replace("\x00", "") if "\x00" in value else value


def json_value(value: Any) -> Any:
    """`value` with NUL removed from every string in it (keys included)."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(str(k)): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def row(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row's strings without NUL (other values unchanged)."""
    return tuple(text(v) if isinstance(v, str) else v for v in values)
