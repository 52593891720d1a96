"""privacy.ip: reading addresses as logs and headers write them, striking their tails,
and choosing the client behind trusted proxies."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.privacy.ip import ClientIp, Masker, TrustedProxies, forwarded_for, parse_ip
from sidecar.record import RawRequest
from sidecar.reject import Rejected

V4 = st.ip_addresses(v=4)
V6 = st.ip_addresses(v=6)
ZONE = st.from_regex(r"[a-z][a-z0-9._~-]{0,10}", fullmatch=True)
PORT = st.integers(0, 65535)


@pytest.mark.parametrize(
    "token, expected",
    [
        ("203.0.113.77", "203.0.113.77"),
        (" 203.0.113.77 ", "203.0.113.77"),
        ("203.0.113.77:8080", "203.0.113.77"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ('"[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),  # RFC 7239 quoting
        ("fe80::1%eth0", "fe80::1"),
        ("[fe80::1%25eth0]:80", "fe80::1"),
        ("::ffff:192.0.2.155", "192.0.2.155"),  # IPv4-mapped: the IPv4 it carries
        ("::FFFF:C000:029B", "192.0.2.155"),
        ("64:ff9b::192.0.2.1", "192.0.2.1"),  # NAT64
        ("2002:c000:201::1", "2002:c000:201::1"),  # 6to4 stays IPv6 (struck specially)
    ],
)
def test_parse_ip_reads_every_spelling(token: str, expected: str) -> None:
    assert parse_ip(token) == ip_address(expected)


@pytest.mark.parametrize(
    "token",
    [
        "", "-", "unix:", "unix:/run/nginx.sock", "unknown", "localhost", "cdn.example.com",
        "203.0.113", "203.0.113.256", "01.2.3.4", "1.2.3.4:", "1.2.3.4:http", "1.2.3.4:999999",
        "[2001:db8::1", "[2001:db8::1]x", "[203.0.113.7]", "1.2.3.4%eth0", "2001:db8::1::2",
        "_hidden", "::ffff:999.1.1.1", "１.２.３.４",
    ],
)  # fmt: skip
def test_parse_ip_refuses_what_is_not_an_address(token: str) -> None:
    assert parse_ip(token) is None


@pytest.mark.parametrize(
    "address, v4_bits, v6_bits, struck",
    [
        ("203.0.113.77", 24, 48, "203.0.113.0"),
        ("203.0.113.77", 16, 48, "203.0.0.0"),
        ("203.0.113.77", 0, 48, "0.0.0.0"),
        ("203.0.113.77", 32, 48, "203.0.113.77"),
        ("2001:db8:85a3:1234:5678:8a2e:370:7334", 24, 48, "2001:db8:85a3::"),
        ("2001:db8:85a3:1234:5678:8a2e:370:7334", 24, 32, "2001:db8::"),
        ("2001:db8:85a3:1234:5678:8a2e:370:7334", 24, 56, "2001:db8:85a3:1200::"),
        ("2002:c000:0201::1", 24, 48, "2002:c000:200::"),  # 6to4: the IPv4 inside is struck
        ("2002:c000:0201:ffff::1", 24, 64, "2002:c000:200::"),  # ...even with a longer prefix
        ("2002:c000:0201::1", 16, 48, "2002:c000::"),
        ("fe80::1", 24, 48, "fe80::"),
    ],
)
def test_masker_strikes_the_tail(address: str, v4_bits: int, v6_bits: int, struck: str) -> None:
    assert Masker(v4_bits, v6_bits).mask(ip_address(address)) == struck


@given(V4, PORT)
def test_ipv4_with_or_without_port_is_struck_to_its_slash_24(addr: IPv4Address, port: int) -> None:
    expected = str(IPv4Address(int(addr) & 0xFFFFFF00))
    for token in (str(addr), f"{addr}:{port}", f"::ffff:{addr}", f"[::ffff:{addr}]:{port}"):
        parsed = parse_ip(token)
        assert parsed is not None, token
        assert Masker().mask(parsed) == expected


@given(V6, PORT, ZONE)
def test_ipv6_in_every_spelling_is_struck_to_its_slash_48(
    addr: IPv6Address, port: int, zone: str
) -> None:
    n = int(addr)
    if n >> 32 == 0xFFFF or n >> 32 == 0x64FF9B << 64 or n >> 112 == 0x2002:
        return  # mapped, NAT64 and 6to4 have their own rules (tested above and below)
    expected = str(IPv6Address(n & ~((1 << 80) - 1)))
    spellings = (str(addr), addr.exploded, f"[{addr}]", f"[{addr}]:{port}", f"{addr}%{zone}")
    for token in spellings:
        parsed = parse_ip(token)
        assert parsed is not None, token
        assert Masker().mask(parsed) == expected


@given(V4, st.integers(0, (1 << 80) - 1))
def test_6to4_never_keeps_more_than_the_struck_ipv4(v4: IPv4Address, rest: int) -> None:
    addr = IPv6Address((0x2002 << 112) | (int(v4) << 80) | rest)
    struck = ip_address(Masker(24, 128).mask(addr))
    assert int(struck) == (0x2002 << 112) | ((int(v4) & 0xFFFFFF00) << 80)


@given(st.text(max_size=40))
def test_garbage_never_comes_out_as_an_address(text: str) -> None:
    addr = parse_ip(text)
    if addr is not None:  # only when the text really holds an address, in some spelling
        core = text.strip().strip('"').lstrip("[").split("]")[0].split("%")[0]
        assert ip_address(core.rsplit(":", 1)[0] if core.count(":") == 1 else core)


def test_forwarded_header_for_values() -> None:
    header = (
        'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", for=unknown'
    )
    assert forwarded_for(header) == ["192.0.2.60", '"[2001:db8:cafe::17]:4711"', "unknown"]


def raw(remote: str, xff: str | None = None, forwarded: str | None = None, real: str | None = None):
    return RawRequest(
        remote, "2026-11-24T09:00:00.000Z", x_forwarded_for=xff, forwarded=forwarded, x_real_ip=real
    )


PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48", "unix:"]


@pytest.mark.parametrize(
    "trusted, header, req, client",
    [
        # no trusted proxies: the peer address is the client, whatever the headers say
        ([], "x-forwarded-for", raw("203.0.113.9", xff="198.51.100.1"), "203.0.113.0"),
        # an untrusted peer cannot choose its client address
        (PROXIES, "x-forwarded-for", raw("203.0.113.9", xff="198.51.100.1"), "203.0.113.0"),
        # a trusted peer: the right-most untrusted hop is the client (real_ip_recursive on)
        (PROXIES, "x-forwarded-for", raw("10.1.1.1", xff="198.51.100.1, 10.2.2.2"), "198.51.100.0"),
        (PROXIES, "x-forwarded-for", raw("10.1.1.1", xff="192.0.2.1, 198.51.100.1"), "198.51.100.0"),
        # every hop trusted: the left-most
        (PROXIES, "x-forwarded-for", raw("10.1.1.1", xff="10.3.3.3, 10.2.2.2"), "10.3.3.0"),
        # garbage in the chain stops the walk at the last trusted hop
        (PROXIES, "x-forwarded-for", raw("10.1.1.1", xff="198.51.100.1, junk"), "10.1.1.0"),
        (PROXIES, "x-forwarded-for", raw("unix:", xff="198.51.100.1"), "198.51.100.0"),
        (PROXIES, "x-forwarded-for", raw("[2001:db8:ffff::1]:80", xff="2001:db8:1:2::9"), "2001:db8:1::"),
        (PROXIES, "forwarded", raw("10.1.1.1", forwarded='for="[2001:db8:2::1]:1"'), "2001:db8:2::"),
        (PROXIES, "x-real-ip", raw("10.1.1.1", real="198.51.100.7"), "198.51.100.0"),
        (PROXIES, "x-real-ip", raw("10.1.1.1"), "10.1.1.0"),  # no header: the proxy itself
    ],
)  # fmt: skip
def test_client_behind_trusted_proxies(trusted, header, req, client) -> None:
    rule = ClientIp(Masker(), TrustedProxies(trusted), header)
    _, struck = rule(req)
    assert struck == client


@pytest.mark.parametrize("remote", ["unix:", "-", "", "localhost", "garbage"])
def test_a_client_that_is_not_an_address_is_rejected(remote: str) -> None:
    with pytest.raises(Rejected) as exc:
        ClientIp(Masker(), TrustedProxies([]))(raw(remote))
    assert exc.value.reason == "bad_ip"
    assert remote not in str(exc.value) or not remote  # the reason names no input


def test_trusted_proxies_table() -> None:
    table = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])
    assert ip_address("10.9.9.9") in table
    assert ip_address("11.0.0.1") not in table
    assert ip_address("2001:db8:1::1") in table
    assert not table.trusts_token("unix:")
    assert TrustedProxies(["unix:"]).trusts_token("unix:")
    assert TrustedProxies([]).empty
