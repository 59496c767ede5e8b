"""A service's ports are its own: a second gRPC server on a served port fails to start (gRPC's
default SO_REUSEPORT would share the port and hand it part of the connections), and the dev stack
reserves every port its services listen on, the TCP session ports included."""

from __future__ import annotations

import grpc
import pytest

from omniroute import runtime
from omniroute.devstack.stack import Ports, Stack


async def test_a_second_server_on_a_served_port_fails_to_start() -> None:
    first = grpc.aio.server(options=runtime.SERVER_OPTIONS)
    port = first.add_insecure_port("127.0.0.1:0")
    await first.start()
    try:
        for options in (runtime.SERVER_OPTIONS, None):   # ours, or any other gRPC server
            with pytest.raises(RuntimeError, match="Failed to bind"):
                grpc.aio.server(options=options).add_insecure_port(f"127.0.0.1:{port}")
    finally:
        await first.stop(None)


async def test_grpc_servers_share_a_port_by_default() -> None:
    """What SERVER_OPTIONS turns off: two servers on gRPC's defaults both bind one port."""
    first = grpc.aio.server()
    port = first.add_insecure_port("127.0.0.1:0")
    await first.start()
    try:
        assert grpc.aio.server().add_insecure_port(f"127.0.0.1:{port}") == port
    finally:
        await first.stop(None)


def test_the_dev_stack_reserves_each_session_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNIROUTE_HOP_TCP_PORT", raising=False)
    stack = Stack(ports=Ports.free(), env={})
    first, second = stack._session_port(), stack._session_port()
    ports = {int(first["OMNIROUTE_HOP_TCP_PORT"]), int(second["OMNIROUTE_HOP_TCP_PORT"])}
    assert len(ports) == 2 and not ports & set(vars(stack.ports).values())
    # A port chosen by whoever runs the stack (-1: no TCP sessions) is left as it is.
    assert Stack(ports=stack.ports, env={"OMNIROUTE_HOP_TCP_PORT": "-1"})._session_port() == {}
