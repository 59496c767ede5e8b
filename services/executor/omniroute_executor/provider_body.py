"""What goes upstream for a chat call, passthrough or translated: decided here, once.

Passthrough: when the caller's format is the family's, the caller's own body goes upstream
untouched but for the model name, so that fields OmniRoute does not know survive, and the
answer comes back in that format. Translated: the canonical body is translated into the
family's format, and the answer comes back canonical (the edge encodes it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from omniroute.formats.canonical import ext
from omniroute.v1 import common_pb2
from omniroute_executor.families.base import Family, Json

log = logging.getLogger("omniroute.executor")


@dataclass(frozen=True, slots=True)
class CallerBody:
    """ExecuteRequest's body and its format: a format the family speaks goes through;
    API_FORMAT_UNSPECIFIED is the canonical (OpenAI chat) body, translated."""
    body: bytes
    format: common_pb2.ApiFormat


@dataclass(frozen=True, slots=True)
class ProviderBody:
    body: Json
    passthrough: bool
    out_format: common_pb2.ApiFormat  # the format of the answer's chunks and response
    # Whether the caller asked for usage in the stream (passthrough: the family asks for it
    # anyway, for accounting, and hides it from a caller that did not).
    caller_wants_usage: bool


def provider_body(family: Family, caller: CallerBody, model: str) -> ProviderBody:
    """Raises orjson.JSONDecodeError or ValueError on a body that is not a JSON object."""
    if caller.format == family.native_format:
        body = orjson.loads(caller.body)
        if not isinstance(body, dict):
            raise ValueError("the request body is not a JSON object")
        wants_usage = family.caller_wants_usage(body)  # before prepare() asks for it anyway
        family.put_model(body, model)
        return ProviderBody(body, passthrough=True, out_format=family.native_format,
                            caller_wants_usage=wants_usage)
    canonical = orjson.loads(caller.body)
    if log.isEnabledFor(logging.DEBUG):
        _log_dropped_fields(family, canonical)
    return ProviderBody(family.module.canonical_to_request(canonical, model), passthrough=False,
                        out_format=common_pb2.OPENAI_CHAT, caller_wants_usage=True)


def _log_dropped_fields(family: Family, canonical: Json) -> None:
    """The caller's untranslated top-level fields (x_omniroute.native_fields) reach only an
    upstream of the caller's own format; any other drops them, and says which."""
    carried = ext(canonical).get("native_fields")
    if isinstance(carried, dict) and carried.get("format") != family.module.FORMAT \
            and isinstance(carried.get("fields"), dict) and carried["fields"]:
        log.debug("not sent to the %s upstream (only %s upstreams take them): %s", family.name,
                  carried.get("format"), sorted(carried["fields"]))
