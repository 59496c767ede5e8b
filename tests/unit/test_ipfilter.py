"""The IP filter's matching and client-address rules."""

from __future__ import annotations

import pytest

from omniroute.ipfilter import IpFilter, parse_address, parse_network


def test_no_rules_allows_everyone() -> None:
    assert IpFilter.build().allows("203.0.113.9")
    assert IpFilter.build().allows("not-an-ip")


def test_blocklist_wins_over_allowlist() -> None:
    rules = IpFilter.build(allow=["10.0.0.0/8"], block=["10.1.0.0/16"])
    assert rules.allows("10.2.3.4")
    assert not rules.allows("10.1.2.3")
    assert not rules.allows("192.168.1.1")       # not on the allowlist
    assert not rules.allows("garbage")            # unknown address never matches an allowlist


def test_single_addresses_ipv6_and_mapped_ipv4() -> None:
    rules = IpFilter.build(allow=["127.0.0.1", "2001:db8::/32"])
    assert rules.allows("127.0.0.1")
    assert rules.allows("::ffff:127.0.0.1")
    assert rules.allows("2001:db8::42")
    assert not rules.allows("::1")
    assert IpFilter.build(block=["::1"]).allows("127.0.0.1")   # versions never cross


def test_parse_errors_name_the_entry() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300/8'"):
        parse_network("10.0.0.300/8")
    assert parse_address("[::1]:443") is not None and str(parse_address("[::1]:443")) == "::1"
    assert str(parse_address("1.2.3.4:5678")) == "1.2.3.4"


def test_client_address_uses_the_header_only_when_configured_and_from_a_trusted_proxy() -> None:
    plain = IpFilter.build()
    assert plain.client_address("10.0.0.5", "1.1.1.1") == "10.0.0.5"
    anyone = IpFilter.build(header="X-Forwarded-For")
    # Rightmost hop: the one the nearest proxy wrote; "6.6.6.6" was claimed by the client.
    assert anyone.client_address("10.0.0.5", "6.6.6.6, 198.51.100.7") == "198.51.100.7"
    trusted = IpFilter.build(header="x-forwarded-for", trusted_proxies=["10.0.0.0/8"])
    assert trusted.client_address("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.0.0.9") == "198.51.100.7"
    assert trusted.client_address("203.0.113.1", "198.51.100.7") == "203.0.113.1"  # untrusted peer
    assert trusted.client_address("10.0.0.5", "10.0.0.7, 10.0.0.9") == "10.0.0.7"  # all proxies
    assert trusted.client_address("10.0.0.5", "nonsense") == "10.0.0.5"
    assert trusted.client_address("10.0.0.5", None) == "10.0.0.5"
