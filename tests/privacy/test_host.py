"""privacy.host: a host read as a browser reads it; addresses in every notation struck."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.privacy.host import HostRule, whatwg_ipv4
from sidecar.privacy.ip import Masker
from sidecar.privacy.literals import LiteralMasker

MASKER = Masker()
HOSTS = HostRule(MASKER, LiteralMasker(MASKER))


@pytest.mark.parametrize(
    "host, kept",
    [
        ("www.example-video.eu", "www.example-video.eu"),
        ("WWW.Example-Video.EU.", "www.example-video.eu"),
        # the WHATWG URL standard's IPv4 notations
        ("203.0.113.7", "203.0.113.0"),
        ("0313.0000.0161.0116", "203.0.113.0"),
        ("3405803855", "203.0.113.0"),
        ("0xcb.0x00.0x71.0x1a", "203.0.113.0"),
        ("0xCB00711A", "203.0.113.0"),
        ("203.0.29447", "203.0.115.0"),
        ("203.7405447", "203.112.255.0"),
        ("0313.0.0x71.7", "203.0.113.0"),
        ("203.0.113.7.", "203.0.113.0"),
        # UTS 46 folding and percent-decoding first
        ("２０３．０．１１３．７", "203.0.113.0"),
        ("203。0。113。7", "203.0.113.0"),
        ("203%2E0%2E113%2E7", "203.0.113.0"),
        ("ex%41mple.com", "example.com"),
        # IPv6, with or without brackets
        ("[2001:db8:85a3::1]", "[2001:db8:85a3::]"),
        ("2001:db8:85a3::1", "[2001:db8:85a3::]"),
        ("[::ffff:203.0.113.7]", "203.0.113.0"),
        # addresses inside labels
        ("203.0.113.7.nip.io", "203.0.113.0.nip.io"),
        ("203-0-113-7.dsl.example.net", "203-0-113-0.dsl.example.net"),
        ("ip-10-1-2-3.internal", "ip-10-1-2-0.internal"),
        # no host: ends in a number that is no address, bad characters, too long, unclosed
        ("1.2.3.256", None),
        ("example.0x", None),
        ("4294967296", None),
        ("exa mple.com", None),
        ("a/b", None),
        ("evil.net\\@x", None),
        ("[::1", None),
        ("[203.0.113.160x]", None),
        ("a" * 254, None),
        ("", None),
    ],
)
def test_host_table(host: str, kept: str | None) -> None:
    assert HOSTS.scrub(host) == kept


def test_prefix_bits_follow_the_config() -> None:
    masker = Masker(16, 32)
    hosts = HostRule(masker, LiteralMasker(masker))
    assert hosts.scrub("3405803855") == "203.0.0.0"
    assert hosts.scrub("[2001:db8:85a3::1]") == "[2001:db8::]"
    assert hosts.scrub("203-0-113-7.example.net") == "203-0-0-0.example.net"


def _notations(addr: IPv4Address) -> list[str]:
    b = addr.packed
    n = int(addr)
    return [
        str(addr),
        str(n),
        f"0x{n:x}",
        ".".join(f"0{o:o}" for o in b),
        ".".join(f"0x{o:x}" for o in b),
        f"{b[0]}.{b[1]}.{(b[2] << 8) | b[3]}",
        f"{b[0]}.{(b[1] << 16) | (b[2] << 8) | b[3]}",
        f"0{b[0]:o}.0x{b[1]:x}.{b[2]}.0{b[3]:o}",
        str(addr) + ".",
        str(addr).translate(str.maketrans("0123456789.", "０１２３４５６７８９．")),
    ]


@given(st.ip_addresses(v=4).filter(lambda a: int(a) & 0xFF))
def test_every_notation_of_an_address_is_struck(addr: IPv4Address) -> None:
    struck = str(IPv4Address(int(addr) & 0xFFFFFF00))
    for form in _notations(addr):
        assert HOSTS.scrub(form) == struck, form
        assert whatwg_ipv4(
            form.translate(str.maketrans("０１２３４５６７８９．", "0123456789."))
        ) == int(addr)


@given(st.text(max_size=80))
def test_any_host_is_read_without_error(text: str) -> None:
    out = HOSTS.scrub(text)
    assert out is None or (out == out.strip() and " " not in out)
