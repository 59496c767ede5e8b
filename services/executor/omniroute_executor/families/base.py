"""What the executor needs to know about a provider family's wire protocol.

A family is data plus a few small functions: where to send the request (URL, headers), which
wire format its body and stream are in (`omniroute.formats.registry.family_format`, by the
family's name: translator module and framing), and how a complete stream ends. Everything else
(relaying, usage, errors) is generic (`chat.py`, `relay.py`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

from omniroute.formats.registry import WireFormat, family_format
from omniroute.v1 import common_pb2, executor_pb2

Json = dict[str, Any]
# (url, JSON body) → (status, JSON answer): a POST the executor makes for a family before the call.
PostJson = Callable[[str, Json], Awaitable[tuple[int, Json]]]


class UpstreamRefused(Exception):
    """A family's own call before the chat call was refused: status and answer, classified as
    the chat call's own error would be."""

    def __init__(self, status: int, answer: Json) -> None:
        super().__init__(f"the upstream answered {status}")
        self.status, self.answer = status, answer


def put_model_field(body: Json, model: str) -> None:
    """Most APIs name the model in the body."""
    body["model"] = model


def never(event: str, data: Json) -> bool:
    return False


def always(body: Json) -> bool:
    return True


def auth_headers(target: executor_pb2.Target, default: dict[str, str]) -> dict[str, str]:
    """The credential headers in the target's auth style (catalog.yaml); the family's own
    style (`default`) when the router named none. Query-key auth goes in the URL instead
    (`with_query_key`)."""
    key = target.api_key
    if not key:
        return {}
    style = target.auth
    if not style:
        return dict(default)
    if style in ("bearer", "oauth"):
        return {"authorization": f"Bearer {key}"}
    if style == "token":
        return {"authorization": f"Token {key}"}
    if style == "raw":
        return {"authorization": key}
    if style in ("x-api-key", "x-goog-api-key", "api-key"):
        return {style: key}
    return {}  # query-key, none


def with_query_key(target: executor_pb2.Target, url: str) -> str:
    if target.auth != "query-key" or not target.api_key:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'key': target.api_key})}"


def openai_url(target: executor_pb2.Target, path: str) -> str:
    """`{base}/{path}` for OpenAI-shaped APIs; Azure OpenAI names a deployment (the model) in
    the path and pins the API version in the query."""
    if target.params.get("url_style") == "azure":
        version = target.params.get("api_version") or "2024-10-21"
        deployment = quote(target.model, safe="")
        return f"{target.base_url}/openai/deployments/{deployment}/{path}?api-version={version}"
    return f"{target.base_url}/{path}"


def json_headers(target: executor_pb2.Target, auth: dict[str, str]) -> dict[str, str]:
    """Content type, the credential headers when there is a key, then the provider's own
    configured headers (which win, e.g. a pinned API version)."""
    headers = {"content-type": "application/json"}
    headers.update(auth_headers(target, auth))
    headers.update(dict(target.headers))
    return headers


def add_caller_headers(headers: dict[str, str], caller_headers: Any, names: tuple[str, ...]) -> None:
    """The caller's headers of `names` added to `headers`. They are lists of flags (Anthropic's
    beta features): one the target sends already (a subscription preset's anthropic-beta) keeps
    its flags and gains the caller's, comma-joined, each once."""
    for name in names:
        given = caller_headers.get(name)
        if not given:
            continue
        key = next((k for k in headers if k.lower() == name), name)
        flags = [f.strip() for f in f"{headers.get(key, '')},{given}".split(",") if f.strip()]
        headers[key] = ",".join(dict.fromkeys(flags))


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    # (target, stream, provider body) → (url, headers). The body may be adjusted in place
    # (the stream flag, asking for usage in the stream …).
    prepare: Callable[[executor_pb2.Target, bool, Json], tuple[str, dict[str, str]]]
    # Where the provider's model name goes in a passthrough body (Gemini: in the URL instead).
    put_model: Callable[[Json, str], None] = put_model_field
    end_marker: str = ""           # a non-JSON SSE data line that ends the stream ([DONE])
    # (event name, data) → True for the event that completes a stream. A stream that stops
    # before it is an error: the caller must not take a truncated answer for a whole one.
    ends_stream: Callable[[str, Json], bool] = never
    # Passthrough streams: events the gateway asked for only for accounting, hidden from a
    # caller that did not ask for them (OpenAI's usage-only chunk).
    accounting_only: Callable[[Json], bool] | None = None
    caller_wants_usage: Callable[[Json], bool] = always
    # Request headers of the caller (ExecuteRequest.caller_headers) that go upstream with a
    # passthrough body, because they say how to read it (Anthropic's beta features): lists of
    # flags, merged with the target's own (add_caller_headers).
    caller_headers: tuple[str, ...] = ()
    # The whole answer built from a complete stream's (event name, data), for an API that only
    # streams (catalog RequestRules.stream) and a caller that did not ask to; None: not possible.
    collect: Callable[[list[tuple[str, Json]]], Json] | None = None
    # An API whose answers (each stream event too) wrap the format's: the inner one, which every
    # other hook, the decoder and a passthrough caller see (Code Assist's {"response": …}).
    unwrap: Callable[[Json], Json] | None = None
    # Target params the upstream itself must be asked for first (Code Assist's project), merged
    # into target.params before prepare; may raise UpstreamRefused.
    find_params: Callable[[executor_pb2.Target, PostJson], Awaitable[dict[str, str]]] | None = None
    # The upstream API's wire format, the one omniroute.formats.registry says the family of this
    # name speaks (the router reads the same map): its translator, framing and proto value.
    wire_format: WireFormat = field(init=False)
    native_format: common_pb2.ApiFormat = field(init=False)  # the wire format's proto value

    def __post_init__(self) -> None:
        wire = family_format(self.name)
        if wire is None:
            raise ValueError(f"omniroute.formats.registry names no format for the family {self.name!r}")
        object.__setattr__(self, "wire_format", wire)
        object.__setattr__(self, "native_format", common_pb2.ApiFormat.Value(wire.proto_name))

    @property
    def module(self) -> ModuleType:
        """The pure translator of the family's format: canonical_to_request,
        response_to_canonical, StreamDecoder (also used in passthrough, for usage, errors and
        the end of the stream) and parse_error."""
        return self.wire_format.module

    @property
    def framing(self) -> str:
        return self.wire_format.framing
