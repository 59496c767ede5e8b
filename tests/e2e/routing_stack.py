"""A stack with three router replicas (separate processes, one Redis), and a small gRPC client
to call any replica directly: what the routing tests build on."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import orjson

from omniroute.answers import CHUNK_KINDS, chunks_of
from omniroute.devstack.backing import wait_listening
from omniroute.devstack.stack import Stack, free_port
from omniroute.v1 import common_pb2, router_pb2, router_pb2_grpc
from tests.mocks.server import MockServer
from tests.support import Gateway, running_gateway

REPLICAS = 3


@dataclass
class Answer:
    """A router's answer, gathered: the start headers, the body or chunks, the final error."""

    start: common_pb2.ResponseStart | None = None
    response: dict[str, Any] | None = None
    chunks: list[dict[str, Any]] = field(default_factory=list)
    error: common_pb2.Error | None = None
    usage: common_pb2.Usage | None = None

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.start.headers) if self.start else {}

    @property
    def text(self) -> str:
        if self.response is not None:
            return str(self.response["choices"][0]["message"]["content"])
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.chunks if c.get("choices"))


@dataclass
class RoutingStack:
    gateway: Gateway
    router_addrs: list[str]
    key_ids: dict[str, str]

    async def chat(self, replica: int, model: str, content: str, *, key: str = "default",
                   stream: bool = False, options: dict[str, str] | None = None,
                   **body: Any) -> Answer:
        payload = {"model": model, "messages": [{"role": "user", "content": content}],
                   "stream": stream, **body}
        request = router_pb2.ChatRequest(
            request_id=uuid.uuid4().hex, key_id=self.key_ids[key], client_format=common_pb2.OPENAI_CHAT,
            body=orjson.dumps(payload), stream=stream, model=model, options=options or {})
        answer = Answer()
        async with grpc.aio.insecure_channel(self.router_addrs[replica % len(self.router_addrs)]) as channel:
            async for event in router_pb2_grpc.RouterStub(channel).Chat(request, timeout=30):
                kind = event.WhichOneof("kind")
                if kind == "start":
                    answer.start = event.start
                elif kind == "response":
                    answer.response = orjson.loads(event.response)
                elif kind in CHUNK_KINDS:
                    answer.chunks.extend(orjson.loads(chunk.data) for chunk in chunks_of(event))
                elif kind == "usage":
                    answer.usage = event.usage
                elif kind == "error":
                    answer.error = event.error
        return answer

    async def models(self, replica: int = 0) -> list[str]:
        async with grpc.aio.insecure_channel(self.router_addrs[replica]) as channel:
            listing = await router_pb2_grpc.RouterStub(channel).ListModels(router_pb2.ListModelsRequest())
        return [m.id for m in listing.models]


def upstream_calls(mock: MockServer, marker: str) -> list[Any]:
    """Requests the mock upstream received whose prompt carries `marker`."""
    return [r for r in mock.requests(path="/v1/chat/completions") if marker in r.raw_body.decode()]


@contextlib.contextmanager
def routing_stack(tmp_dir: Path, config: dict[str, Any], key_names: list[str],
                  replicas: int = REPLICAS, extra_env: dict[str, str] | None = None) -> Iterator[RoutingStack]:
    first_key = config["keys"][0]["key"]
    with running_gateway(tmp_dir, config, api_key=first_key, extra_env=extra_env) as gateway:
        extra = Stack(ports=dataclasses.replace(gateway.stack.ports), env=gateway.stack.env,
                      log_dir=gateway.log_dir)
        addrs = [f"127.0.0.1:{gateway.stack.ports.router}"]
        try:
            for index in range(1, replicas):
                extra.ports.router = free_port()
                service = extra.start_service(f"router{index + 1}", "omniroute_router")
                wait_listening("127.0.0.1", extra.ports.router, f"router{index + 1}", 60, service.process)
                addrs.append(f"127.0.0.1:{extra.ports.router}")
            rows = gateway.rows("SELECT name, id FROM api_keys")
            key_ids = {name: key_id for name, key_id in rows}
            key_ids["default"] = key_ids[key_names[0]]
            yield RoutingStack(gateway=gateway, router_addrs=addrs, key_ids=key_ids)
        finally:
            extra.stop()
