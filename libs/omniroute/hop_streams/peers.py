"""Every session stream to one target: per address it names (a list, or a name's DNS answers: a
headless Service's pods) a set of N streams; requests go to the stream with the fewest in flight;
a broken stream is re-opened with backoff; a name is resolved again every few seconds."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import grpc

from omniroute import runtime
from omniroute.hop_streams.client import OPEN_TIMEOUT_S, ClientStream, NotStarted, Pending
from omniroute.hop_streams.frames import rpc_error
from omniroute.hop_streams.server import PORT_HEADER
from omniroute.hop_streams.tcp import TcpCall
from omniroute.v1 import common_pb2

log = logging.getLogger("omniroute.hop_streams")

#: A lost stream is opened again after 100 ms, then at most every 250 ms (+/- 20 %) while its
#: address refuses: a restarted peer is used as soon as it listens (executor_pool's reasoning).
BACKOFF_S = (0.1, 0.25)


def split_target(target: str) -> tuple[list[str], str | None, int]:
    """A gRPC target → (fixed addresses, or [] and a host name to resolve, its port)."""
    if target.startswith(("ipv4:", "ipv6:")):
        return [f"{target[:5]}{part}" for part in target[5:].split(",") if part], None, 0
    if target.startswith("unix:"):
        return [target], None, 0
    name = target.removeprefix("dns:").lstrip("/")
    host, _, port = name.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return [name], None, 0
    except ValueError:
        return [], host, int(port)


def tcp_host(address: str) -> str | None:
    """The host part of one resolved address (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`, `1.2.3.4:5`), to
    reach its TCP session port; None for a unix socket."""
    if address.startswith("unix:"):
        return None
    host = address.removeprefix("ipv4:").removeprefix("ipv6:").rpartition(":")[0]
    return host.strip("[]")


class AddressStreams:
    """N streams to one address, over one channel (its own HTTP/2 connection); with `tcp`, over
    plain TCP connections to the port the server names in its `Session` stream's headers (one
    gRPC stream opened once to learn it), or on gRPC if it names none."""

    def __init__(self, address: str, count: int, method: str, frame_type: Any, message_type: Any,
                 tcp: bool = False) -> None:
        self.address = address
        self._count = count
        self._channel = runtime.channel(address, [("grpc.initial_reconnect_backoff_ms", 100),
                                                   ("grpc.max_reconnect_backoff_ms", 250)])
        self._method = method
        self._session = self._channel.stream_stream(method, request_serializer=message_type.SerializeToString,
                                                    response_deserializer=common_pb2.SessionOut.FromString)
        self._args = (frame_type, message_type)
        self._tcp_host = tcp_host(address) if tcp else None
        self._tcp_port: int | None = None   # learnt from the server; 0: it serves no TCP sessions
        self.streams: list[ClientStream] = []
        self._attempt: asyncio.Task[ClientStream] | None = None
        self._backoff_s = BACKOFF_S[0]
        self._retry: asyncio.TimerHandle | None = None
        self.retired = False

    def open_one(self) -> asyncio.Task[ClientStream]:
        """One more stream (or the attempt under way)."""
        if self._attempt is None or self._attempt.done():
            self._attempt = asyncio.create_task(self._open())
            self._attempt.add_done_callback(self._opened)
        return self._attempt

    def _grpc_call(self) -> Any:
        return self._session(wait_for_ready=False)

    async def _opener(self) -> Callable[[], Any]:
        """What opens one stream: a gRPC call, or a TCP connection to the port the server names."""
        if self._tcp_host is None:
            return self._grpc_call
        if self._tcp_port is None:
            call = self._grpc_call()
            try:
                headers = await asyncio.wait_for(call.initial_metadata(), OPEN_TIMEOUT_S)
            finally:
                call.cancel()
            named = next((value for key, value in headers or () if key == PORT_HEADER), "")
            self._tcp_port = int(named) if str(named).isdigit() else 0
        if not self._tcp_port:
            return self._grpc_call
        host, port = self._tcp_host, self._tcp_port
        return lambda: TcpCall(host, port, self._method)

    async def _open(self) -> ClientStream:
        stream = ClientStream(await self._opener(), *self._args, address=self.address, on_closed=self._lost)
        await stream.open()
        self.streams.append(stream)
        return stream

    def _opened(self, attempt: asyncio.Task[ClientStream]) -> None:
        if attempt.cancelled() or self.retired:
            return
        if attempt.exception() is not None:
            self._tcp_port = None   # a restarted server may listen elsewhere: ask again
            self._schedule(self._backoff_s)
            self._backoff_s = min(BACKOFF_S[1], self._backoff_s * 2)
            return
        self._backoff_s = BACKOFF_S[0]
        self._top_up()

    def _top_up(self) -> None:
        live = sum(1 for stream in self.streams if not stream.draining)
        if live < self._count and not self.retired:
            self.open_one()

    def _schedule(self, delay_s: float) -> None:
        if self._retry is None or self._retry.cancelled() or self._retry.when() < asyncio.get_running_loop().time():
            self._retry = asyncio.get_running_loop().call_later(delay_s * random.uniform(0.8, 1.2), self._top_up)

    def _lost(self, stream: ClientStream) -> None:
        if stream in self.streams:
            self.streams.remove(stream)
        if not self.retired:
            self._schedule(self._backoff_s)

    def retire(self) -> None:
        """The address went away (DNS): no new requests; streams close once idle."""
        self.retired = True
        for stream in self.streams:
            stream.drain()

    async def close(self) -> None:
        self.retired = True
        if self._retry is not None:
            self._retry.cancel()
        if self._attempt is not None:
            self._attempt.cancel()
        await asyncio.gather(*(stream.close() for stream in self.streams), return_exceptions=True)
        await self._channel.close()


class PeerStreams:
    """All session streams to one target (`host:port`, `dns:///name:port`, `ipv4:a:p,b:p`)."""

    def __init__(self, target: str, method: str, frame_type: Any, message_type: Any, *, streams_per_address: int,
                 window: int, dns_refresh_s: float, tcp: bool = False) -> None:
        self.target = target
        self._args = (method, frame_type, message_type)
        self._tcp = tcp
        self._count = max(1, streams_per_address)
        self.window = window
        self._fixed, self._host, self._port = split_target(target)
        self._refresh_s = dns_refresh_s
        self._resolved_at = 0.0
        self._resolving: asyncio.Task[None] | None = None
        self.addresses: dict[str, AddressStreams] = {}
        self._retired: list[AddressStreams] = []
        self._turn = 0

    def _use(self, addresses: list[str]) -> None:
        for address in addresses:
            if address not in self.addresses:
                self.addresses[address] = AddressStreams(address, self._count, *self._args, tcp=self._tcp)
        for address in [known for known in self.addresses if known not in addresses]:
            gone = self.addresses.pop(address)
            gone.retire()
            self._retired.append(gone)
            log.info("%s: %s is no longer listed; its streams close once idle", self.target, address)

    async def _resolve(self) -> None:
        assert self._host is not None
        try:
            answers = await asyncio.get_running_loop().getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        except OSError as exc:
            log.warning("%s: resolving %s failed (%s); keeping %d address(es)", self.target, self._host, exc,
                        len(self.addresses))
            return
        found = sorted({(family, sockaddr[0]) for family, _, _, _, sockaddr in answers})
        self._use([f"ipv6:[{ip}]:{self._port}" if family == socket.AF_INET6 else f"ipv4:{ip}:{self._port}"
                   for family, ip in found])

    async def _addresses(self) -> list[AddressStreams]:
        if not self.addresses and self._fixed:
            self._use(self._fixed)
        elif self._host is not None:
            now = time.monotonic()
            if not self.addresses:
                await self._resolve()
                self._resolved_at = now
            elif now - self._resolved_at >= self._refresh_s and (self._resolving is None or self._resolving.done()):
                self._resolved_at = now
                self._resolving = asyncio.create_task(self._resolve())   # in the background
        return list(self.addresses.values())

    def _best(self, addresses: list[AddressStreams], avoid: ClientStream | None) -> ClientStream | None:
        """The ready stream with the fewest requests in flight; ties go round the addresses."""
        best: ClientStream | None = None
        self._turn += 1
        count = len(addresses)
        for index in range(count):
            for stream in addresses[(self._turn + index) % count].streams:
                if stream.ready and not stream.draining and stream is not avoid and \
                        (best is None or stream.in_flight < best.in_flight):
                    best = stream
        return best

    async def pick(self, avoid: ClientStream | None = None) -> ClientStream:
        addresses = await self._addresses()
        best = self._best(addresses, avoid)
        if best is not None:
            return best
        if not addresses:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, f"{self.target} resolves to no address")
        # Nothing open: try every address now (not after its backoff), take the first that opens.
        attempts = {address.open_one() for address in addresses}
        while attempts:
            done, attempts = await asyncio.wait(attempts, return_when=asyncio.FIRST_COMPLETED)
            for attempt in done:
                if not attempt.cancelled() and attempt.exception() is None:
                    return self._best(addresses, None) or attempt.result()
        best = self._best(addresses, None)
        if best is not None:
            return best
        raise rpc_error(grpc.StatusCode.UNAVAILABLE, f"no session stream to {self.target} could be opened")

    async def start(self, request: Any, options: common_pb2.SessionStart,
                    on_pending: Callable[[Pending], None] | None = None) -> tuple[Pending, common_pb2.SessionEvents]:
        """Start a request and wait for its first frame; a request the stream lost before that is
        started again on another stream (another replica when there is one). `on_pending` learns
        each attempt's request, so that the caller can cancel it before its first frame."""
        attempts = 2 + 2 * max(1, len(self.addresses))
        avoid: ClientStream | None = None
        for attempt in range(1, attempts + 1):
            stream = await self.pick(avoid)
            pending = stream.start(request, options)
            if on_pending is not None:
                on_pending(pending)
            try:
                first = await pending.next()
            except NotStarted as exc:
                if attempt == attempts:
                    raise rpc_error(grpc.StatusCode.UNAVAILABLE, f"{self.target}: {exc}") from None
                log.info("%s: request %s, lost by the stream to %s before its answer began, goes to another",
                         self.target, getattr(request, "request_id", "?"), stream.address)
                avoid = stream
                continue
            except BaseException:
                pending.cancel()
                raise
            assert first is not None   # a frame, or the failure it says (raised)
            return pending, first
        raise AssertionError("not reached")

    async def close(self) -> None:
        await asyncio.gather(*(address.close() for address in [*self.addresses.values(), *self._retired]),
                             return_exceptions=True)
        self.addresses.clear()
