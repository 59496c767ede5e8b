"""Which upstream URLs the gateway may call: the server-side request forgery guard.

A provider's base URL is chosen by whoever configures providers, and every request then makes
the executor call it with a provider credential attached. Pointed at a cloud metadata service or
at a private address, the gateway would become a way into the network it runs in. So:

- link-local addresses (169.254.0.0/16, fe80::/10), which hold the cloud metadata services, and
  the metadata host names are always refused: no model API lives there;
- private, loopback, carrier-grade NAT, unspecified, multicast and reserved addresses are
  refused unless OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS=true (a self-hosted model on the LAN, the
  mock upstreams of the tests and of `make run`, which listen on 127.0.0.1).

`refusal` is pure (no DNS unless asked): the config spec checks literal addresses and names at
validation time, and the executor checks the URL of each call. A name is judged by itself
there, so the executor also checks the address each direct upstream connection actually goes
to, after DNS (`connect_refusal`, in its socket factory): a public-looking name that resolves to
a private address, or an address spelled so that only the resolver reads it (`127.1`), is
refused before a byte is sent, and so is a name that re-resolves elsewhere (DNS rebinding).
Redirects are never followed, so an upstream cannot bounce a call to a refused address either.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from omniroute import settings

ALLOW_ENV = "OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS"
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                             "instance-data.ec2.internal", "metadata.azure.com"})
# Metadata services outside 169.254/16: AWS over IPv6, Alibaba Cloud.
_METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"),
                                 ipaddress.ip_address("100.100.100.200")})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def private_allowed() -> bool:
    """OMNIROUTE_ALLOW_PRIVATE_UPSTREAMS, read when asked (config validation, executor start)."""
    return settings.load().allow_private_upstreams


def refusal(url: str, *, allow_private: bool, resolve: bool = False) -> str | None:
    """Why `url` must not be called, or None when it may. `resolve` also checks every address
    the host name resolves to (a name is otherwise judged by itself: `localhost`, metadata)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return "the URL cannot be parsed"
    if parts.scheme not in ("http", "https"):
        return f"the scheme {parts.scheme!r} is not http or https"
    if not host:
        return "the URL has no host"
    if host in _METADATA_NAMES:
        return f"{host} is a cloud metadata service"
    addresses = _addresses(host, resolve)
    if addresses is None:
        return f"{host} does not resolve"
    for address in addresses:
        reason = _address_refusal(address, allow_private)
        if reason:
            return f"{host} is {reason}" if str(address) == host else f"{host} ({address}) is {reason}"
    return None


def _addresses(host: str, resolve: bool) -> list[Address] | None:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _address_refusal(address: Address, allow_private: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped   # ::ffff:169.254.169.254 is 169.254.169.254
    if address.is_link_local or address in _METADATA_ADDRESSES:
        return "a link-local or metadata address"
    if allow_private:
        return None
    if address.is_loopback:
        return f"a loopback address (set {ALLOW_ENV}=true to allow)"
    if address.is_private or address in _CGNAT or address.is_unspecified or address.is_multicast \
            or address.is_reserved:
        return f"a private or reserved address (set {ALLOW_ENV}=true to allow)"
    return None


class AddressRefused(OSError):
    """A connection to a refused address was not made (raised where the socket is created)."""


def connect_refusal(ip: str, *, allow_private: bool) -> str | None:
    """Why a connection to the address `ip` (a resolved peer address) must not be made."""
    address = ipaddress.ip_address(ip.split("%")[0])
    reason = _address_refusal(address, allow_private)
    return f"{address} is {reason}" if reason else None
