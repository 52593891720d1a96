"""The oracle's own tests: it finds every notation of the spec, and only those."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.oracle import Identity, decodings, leaks, readings, whatwg_ipv4
from tests.fuzz.strategies import HypothesisChooser, client_plant, percent_encode, plant


def v4(text: str, allowed: int = 24) -> Identity:
    return Identity(4, int(IPv4Address(text)), 32, allowed)


def v6(text: str, allowed: int = 48) -> Identity:
    return Identity(6, int(IPv6Address(text)), 128, allowed)


A = v4("203.0.113.200")  # the first struck bit (of /24) is 1: 200 = 0b11001000
A16 = v4("203.0.200.150", 16)
B = v6("2001:db8:abcd:8765:1:2:3:4")


@pytest.mark.parametrize(
    "text",
    [
        "/v/203.0.113.200/x",
        "/v/203.0.0113.200/x",  # leading zeros: decimal
        "/v/0313.0.0161.0310/x",  # octal parts
        "/v/203.0.113.0xc8/x",
        "/v/0xCB.0x0.0x71.0xC8",
        "v203.0.113.200x",
        "12203.0.113.2007",  # glued to digits
        "/live/cam:1:203.0.113.200/",
        "/at/10:00:00.203.0.113.200",
        "a:b:203.0.113.200",
        "/h/0xcb0071c8/",
        "/h/0XCB0071C8",
        "/h/0x00cb0071c8",
        "%32%30%33.0.113.200",
        "203%2E0%2E113%2E200",
        "203%252E0%252e113%252E200",
        "203%25252E0.113.200",
        "203%2525252E0.113.200",
        "/x/::ffff:203.0.113.200/",
        "/x/::FFFF:CB00:71C8/",
        "/x/64:ff9b::203.0.113.200",
        "/x/2002:cb00:71c8::1",
        "?ip=203.0.113.200&x=1",
        "'203.0.113.200'",
    ],
)
def test_free_text_ipv4_notations(text: str) -> None:
    assert leaks(text, [A]), text


@pytest.mark.parametrize(
    "text",
    [
        "/v/2001:db8:abcd:8765:1:2:3:4/",
        "/v/2001:0db8:abcd:8765:0001:0002:0003:0004/",
        "/v/2001:DB8:ABCD:8765:1:2:3:4",
        "/v/2001:db8:abcd:8765:1:2:0.3.0.4",
        "[2001:db8:abcd:8765:1:2:3:4]:443",
        "2001:db8:abcd:8765:1:2:3:4%eth0",
        "2001%3Adb8%3aabcd%3A8765%3A1%3A2%3A3%3A4",
        "/p/2001:db8:abcd:8765/",  # a prefix with more than 48 bits
        "/p/2001:db8:abcd:8765:1",
    ],
)
def test_free_text_ipv6_notations(text: str) -> None:
    assert leaks(text, [B]), text


def test_compressed_ipv6() -> None:
    ident = v6("2001:db8:abcd:8765::1")
    assert leaks("x/2001:db8:abcd:8765::1/y", [ident])
    assert not leaks("x/2001:db8:abcd::/y", [ident])


@pytest.mark.parametrize(
    "text",
    [
        "3405803976",  # 203.0.113.200 as one number
        "0xcb.0x00.0x71.0xc8",
        "0313.0000.0161.0310",
        "203.0.29128",
        "203.29128",
        "203.0.113.200.",
        "２０３．０．１１３．２００",
        "203。0。113。200",
        "203-0-113-200.example.net",
        "%32%30%33.0.113.200",
    ],
)
def test_host_notations(text: str) -> None:
    assert leaks(text, [A], host=True), text


@pytest.mark.parametrize(
    "text",
    ["3405803976", "/v/3405803976", "203.0.29128", "203-0-113-200", "２０３．０．１１３．２００"],
)
def test_host_only_notations_are_not_free_text_addresses(text: str) -> None:
    assert not leaks(text, [A]), text


@pytest.mark.parametrize(
    "text",
    [
        "/v/203.0.113.0/x",
        "/v/203.0.113/x",  # a 3-part prefix: 24 bits, allowed under /24
        "203.0.113.0.200",  # the planted last part is not in any reading of four parts
        "2001:db8:abcd::",
        "2001:db8:abcd::1",
        "/2026-11-24/",
        "MjAzLjAuMTEzLjIwMA==",  # base64 of the address
        "&#50;&#48;&#51;.0.113.200",
        "/v/٢٠٣.٠.١١٣.٢٠٠",  # non-ASCII digits in a path
    ],
)
def test_not_leaks(text: str) -> None:
    assert not leaks(text, [A, B]), (text, leaks(text, [A, B]))


def test_stricter_prefixes() -> None:
    assert leaks("/v/203.0.200/x", [A16])
    assert not leaks("/v/203.0.0/x", [A16])
    assert not leaks("/v/203.0.0.0/x", [A16])
    p32 = Identity(6, int(IPv6Address("2001:db8:abcd:12::")), 64, 32)
    assert leaks("/p/2001:db8:abcd:12/", [p32])
    assert leaks("/p/2001:db8:abcd::/", [p32])
    assert not leaks("/p/2001:db8::/", [p32])
    assert not leaks("/p/2001:db8/", [p32])


def test_identity_refuses_ambiguous_plants() -> None:
    with pytest.raises(ValueError):
        v4("203.0.113.77")  # 77 < 128: a struck 0 would share a bit with it
    with pytest.raises(ValueError):
        Identity(4, 1, 32, 32)


def test_decodings_reach_a_fixed_point() -> None:
    assert decodings("%2525252E") == ["%2525252E", "%25252E", "%252E", "%2E", "."]
    assert decodings("plain") == ["plain"]


def test_whatwg_ipv4() -> None:
    assert whatwg_ipv4("3405803976") == int(IPv4Address("203.0.113.200"))
    assert whatwg_ipv4("0x") == 0
    assert whatwg_ipv4("1.2.3.4.5") is None
    assert whatwg_ipv4("256.0.0.1") is None
    assert whatwg_ipv4("1.2.3.4.") == int(IPv4Address("1.2.3.4"))
    assert whatwg_ipv4("09.1.1.1") is None  # not octal


def test_unrelated_text_after_a_struck_prefix_is_no_leak() -> None:
    """`0` then filler `xaaaa` reads `0xaa` (170 shares two bits with 200): no whole part."""
    assert not leaks("/(203.0.113.0xaaaa", [A])
    six = v6("2002:c5c4:0080::1", 40)
    assert not leaks("2002:c5c4:c400::", [six])  # `c4` of `c400` is not the group 0x00c4
    assert leaks("2002:c5c4:80::", [six])


def test_readings_of_a_struck_address_stay_within_the_prefix() -> None:
    assert all(r.text for r in readings("203.0.113.0"))
    assert not leaks("203.0.113.0 203.0.113.1 203.0.113.127", [A])


# --- the strategies and the oracle agree ---------------------------------------------------------


@settings(max_examples=300)
@given(st.data(), st.sampled_from(["default", "strict"]), st.booleans())
def test_every_plant_is_found_by_the_oracle(data: st.DataObject, preset: str, host: bool) -> None:
    """Each generated notation, percent-encoded or not, is a leak before the sidecar strikes it
    (so a test that sees no leak has seen the address struck, not missed)."""
    c = HypothesisChooser(data)
    p = plant(c, preset, host=host)
    encoded, _ = percent_encode(c, p.text)
    assert leaks(encoded, p.identities, host=host), (p, encoded)


@settings(max_examples=100)
@given(st.data(), st.sampled_from(["default", "strict"]))
def test_every_client_plant_is_found_by_the_oracle(data: st.DataObject, preset: str) -> None:
    p = client_plant(HypothesisChooser(data), preset)
    assert leaks(p.text, p.identities), p
