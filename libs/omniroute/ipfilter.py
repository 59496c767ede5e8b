"""IP allowlist / blocklist matching and client-address resolution behind proxies. Pure: the edge
middleware and the admin API (validation, lock-out guard) both use it.

Rules: a blocked address is refused; when an allowlist is given, only addresses on it pass.
Entries are CIDRs or single addresses, IPv4 or IPv6 (an IPv4-mapped IPv6 address matches its
IPv4 entry).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_network(entry: str) -> Network:
    """'10.0.0.0/8', '192.168.1.7', '2001:db8::/32' → a network; ValueError with the entry named."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{entry!r} is not an IP address or CIDR") from None


def parse_address(text: str) -> Address | None:
    value = text.strip()
    if value.startswith("[") and "]" in value:          # "[::1]:443"
        value = value[1:value.index("]")]
    elif value.count(":") == 1:                          # "1.2.3.4:5678"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _contains(networks: Iterable[Network], address: Address) -> bool:
    return any(address.version == net.version and address in net for net in networks)


@dataclass(frozen=True, slots=True)
class IpFilter:
    allow: tuple[Network, ...] = ()
    block: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    header: str = ""          # e.g. "x-forwarded-for", "x-real-ip"; "" = use the socket peer

    @classmethod
    def build(cls, allow: Sequence[str] = (), block: Sequence[str] = (),
              trusted_proxies: Sequence[str] = (), header: str = "") -> IpFilter:
        return cls(allow=tuple(parse_network(e) for e in allow),
                   block=tuple(parse_network(e) for e in block),
                   trusted_proxies=tuple(parse_network(e) for e in trusted_proxies),
                   header=header.strip().lower())

    def allows(self, client: str) -> bool:
        address = parse_address(client)
        if address is None:
            # An unknown address can match no allowlist; without rules there is nothing to refuse.
            return not self.allow
        if _contains(self.block, address):
            return False
        return not self.allow or _contains(self.allow, address)

    def client_address(self, peer: str, header_value: str | None) -> str:
        """The address the rules apply to. The header is believed only when it is configured and
        the peer is a trusted proxy (any peer when no trusted proxies are listed). In a
        comma-separated chain the rightmost hop that is not itself a trusted proxy is the client:
        hops further left were written by the client and can be forged."""
        if not self.header or not header_value:
            return peer
        peer_address = parse_address(peer)
        if self.trusted_proxies and (peer_address is None
                                     or not _contains(self.trusted_proxies, peer_address)):
            return peer
        hops = [h.strip() for h in header_value.split(",") if h.strip()]
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                return peer  # a garbled chain: fall back to what the socket says
            if not self.trusted_proxies or not _contains(self.trusted_proxies, address):
                return str(address)
        return str(parse_address(hops[0])) if hops else peer
