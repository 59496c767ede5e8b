"""One chat call upstream: the family's URL and headers, the URL's SSRF check, the exchange,
an error status classified for the router, else the `start` event and the answer relayed
(relay.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson

from omniroute import ssrf
from omniroute.shared_state import headroom
from omniroute.v1 import common_pb2, executor_pb2
from omniroute_executor import upstream, upstream_errors
from omniroute_executor.clients import HttpClients
from omniroute_executor.families import type_rules
from omniroute_executor.families.base import (
    Family,
    Json,
    PostJson,
    UpstreamRefused,
    add_caller_headers,
    json_headers,
    with_query_key,
)
from omniroute_executor.provider_body import ProviderBody
from omniroute_executor.relay import error_event, relay_collected, relay_stream, relay_whole, too_slow

_MAX_ERROR_BODY = 65536


@dataclass(frozen=True, slots=True)
class ChatUpstream:
    direct: upstream.DirectClient  # direct calls (upstream.py says why aiohttp)
    proxied: HttpClients           # calls through an outbound proxy
    default_timeout_s: float
    allow_private: bool            # OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS

    async def call(self, family: Family, request: executor_pb2.ExecuteRequest,
                   sent: ProviderBody) -> AsyncIterator[common_pb2.AnswerEvent]:
        target = request.target
        stream, caller_headers = request.chat.stream, request.chat.caller_headers
        limit_s = target.timeout_s or self.default_timeout_s
        if family.find_params is not None:
            try:
                async with asyncio.timeout(limit_s):
                    found = await family.find_params(target, self._post_json(target, limit_s))
            except UpstreamRefused as exc:
                yield error_event(_refusal(family, exc))
                return
            except upstream.Unreachable as exc:
                yield error_event(exc.error)
                return
            except TimeoutError:
                yield error_event(too_slow(limit_s, "answer"))
                return
            target = executor_pb2.Target()
            target.CopyFrom(request.target)
            target.params.update(found)
        rules = type_rules.rules_of(target)
        # An API that only streams is streamed to, and its answer collected for a caller that
        # did not ask to stream (relay_collected).
        collected = rules.stream and not stream and family.collect is not None
        url, headers = family.prepare(target, stream or collected, sent.body)
        type_rules.apply(rules, sent.body)
        if sent.passthrough:  # the caller's own body: the headers that describe it go with it
            add_caller_headers(headers, caller_headers, family.caller_headers)
        url = with_query_key(target, url)
        # The config spec refuses such base URLs already; this also covers rows written around
        # it (an older release, a restore) and URLs a family builds from the request.
        refused = ssrf.refusal(url, allow_private=self.allow_private)
        if refused:
            yield error_event(common_pb2.Error(status=502, type="server_error", code="upstream_address_refused",
                                               message=f"the upstream address is refused: {refused}",
                                               retryable=True))
            return
        # The read timeout bounds each socket read, so an upstream that trickles a byte now and
        # then never trips it. `limit_s` also bounds, as a whole: the wait for the headers, a
        # whole (non-streamed) body, and the wait for each complete stream event.
        try:
            async with asyncio.timeout(limit_s):
                answer = await upstream.post(self.direct, self.proxied, target.proxy_url, url,
                                             orjson.dumps(sent.body), headers, limit_s)
        except upstream.Unreachable as exc:
            yield error_event(exc.error)
            return
        except TimeoutError:
            yield error_event(too_slow(limit_s, "answer"))
            return
        try:
            if answer.status >= 400:
                yield error_event(await _status_error(family, answer, limit_s))
                return
            yield common_pb2.AnswerEvent(start=common_pb2.ResponseStart(
                provider=target.provider_id, connection=target.connection, model=target.model,
                headers=headroom.pick(answer.headers)))
            relay = relay_stream if stream else relay_collected if collected else relay_whole
            async for event in relay(family, answer, sent, limit_s):
                yield event
        except upstream.Unreachable as exc:
            yield error_event(exc.error)
        except TimeoutError:
            yield error_event(too_slow(limit_s, "event" if stream else "body"))
        finally:
            await answer.close()


    def _post_json(self, target: executor_pb2.Target, limit_s: float) -> PostJson:
        """A family's own POST before the chat call, with the target's credential and proxy."""
        async def post(url: str, body: Json) -> tuple[int, Json]:
            if refused := ssrf.refusal(url, allow_private=self.allow_private):
                raise upstream.Unreachable(common_pb2.Error(
                    status=502, type="server_error", code="upstream_address_refused", retryable=True,
                    message=f"the upstream address is refused: {refused}"))
            headers = json_headers(target, {"authorization": f"Bearer {target.api_key}"})
            answer = await upstream.post(self.direct, self.proxied, target.proxy_url, url,
                                         orjson.dumps(body), headers, limit_s)
            try:
                raw = await answer.read()
            finally:
                await answer.close()
            try:
                parsed = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError:
                parsed = {}
            return answer.status, parsed if isinstance(parsed, dict) else {}
        return post


def _refusal(family: Family, exc: UpstreamRefused) -> common_pb2.Error:
    """A family's own call refused: classified as the chat call's status would be (a 401 lets
    the router refresh the OAuth token)."""
    raw = orjson.dumps(exc.answer)
    error_type, message = family.module.parse_error(exc.status, raw)
    return upstream_errors.classify_status(exc.status, error_type, message, httpx.Headers(), raw)


async def _status_error(family: Family, answer: upstream.UpstreamAnswer, limit_s: float) -> common_pb2.Error:
    async with asyncio.timeout(limit_s):
        raw = await _read_bounded(answer, _MAX_ERROR_BODY)
    error_type, message = family.module.parse_error(answer.status, raw)
    error = upstream_errors.classify_status(answer.status, error_type, message, answer.header_map(), raw)
    # The provider's rate-limit headers, for the router to learn headroom from.
    error.headers.update(headroom.pick(answer.headers))
    return error


async def _read_bounded(answer: upstream.UpstreamAnswer, limit: int) -> bytes:
    data = bytearray()
    async for piece in answer.pieces():
        data += piece
        if len(data) >= limit:
            break
    return bytes(data[:limit])
