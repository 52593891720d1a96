"""privacy.literals: IP literals anywhere in free text are struck; nothing else is touched."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.privacy.ip import Masker
from sidecar.privacy.literals import LiteralMasker

STRIKE = LiteralMasker(Masker(24, 48)).mask


@pytest.mark.parametrize(
    "text, struck",
    [
        ("/v/198.51.100.23/seg.ts", "/v/198.51.100.0/seg.ts"),
        ("ip=203.0.113.77&x=1", "ip=203.0.113.0&x=1"),
        ("/a/2001:db8:85a3:1234:5678:8a2e:370:7334/b", "/a/2001:db8:85a3::/b"),
        ("[2001:db8::1]:80", "[2001:db8::]:80"),
        ("::ffff:192.0.2.155", "192.0.2.0"),
        ("fe80::1%eth0 then", "fe80:: then"),
        ("2002:c000:0201::1", "2002:c000:200::"),
        ("ip=2001%3Adb8%3A85a3%3A%3A1", "ip=2001:db8:85a3::"),  # percent-encoded
        ("u=198%2E51%2E100%2E23", "u=198.51.100.0"),
        ("5.198.51.100.23", "5.198.51.0.0"),  # every window of four is an address
        ("1198.51.100.2345", "1198.51.100.0"),  # glued digits do not hide one
        ("00:1a:2b:3c:4d:5e", "00:1a:2b::"),  # a MAC address keeps three groups only
        ("2001:db8:85a3:1234:5678", "2001:db8:85a3::"),  # a cut-off address too
        # left alone: nothing that could be an address
        ("/v/abc/seg_00042.m4s", "/v/abc/seg_00042.m4s"),
        ("10:00:00", "10:00:00"),
        ("2026-11-24T10:00:00+01:00", "2026-11-24T10:00:00+01:00"),
        ("999.1.1.1", "999.1.1.1"),
        ("v1.2.3", "v1.2.3"),
        ("", ""),
    ],
)
def test_strike_table(text: str, struck: str) -> None:
    assert STRIKE(text) == struck


def test_prefix_bits_follow_the_config() -> None:
    assert LiteralMasker(Masker(16, 32)).mask("/198.51.100.23/2001:db8:85a3::9") == (
        "/198.51.0.0/2001:db8::"
    )


SEPARATORS = st.sampled_from(["/", "=", "&", " ", "_", "-", ",", ";", "?", "x", "(", "%20", ""])
FILLER = st.text(alphabet="abcxyz/_-.= ", max_size=12)


def _host_bits_zero(addr: IPv4Address | IPv6Address) -> bool:
    n = int(addr)
    if addr.version == 4:
        return n & 0xFF == 0
    if n >> 112 == 0x2002:
        return n & ((1 << 88) - 1) == 0
    return n & ((1 << 80) - 1) == 0


def _full_forms(addr: IPv4Address | IPv6Address) -> list[str]:
    forms = [str(addr)]
    if addr.version == 6:
        forms.append(addr.exploded)
    return forms


@given(
    st.lists(
        st.tuples(FILLER, SEPARATORS, st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))),
        min_size=1,
        max_size=4,
    ),
    FILLER,
    st.booleans(),
)
def test_no_full_address_survives_in_free_text(parts, tail, encode) -> None:
    text = "".join(f"{fill}{sep}{addr}" for fill, sep, addr in parts) + tail
    if encode:
        text = quote(text, safe="")
    out = STRIKE(text)
    for _, _, addr in parts:
        if _host_bits_zero(addr) or (addr.version == 6 and addr.ipv4_mapped is not None):
            continue
        for form in _full_forms(addr):
            pattern = rf"(?<![0-9A-Fa-f:.]){re.escape(form)}(?![0-9A-Fa-f:.])"
            assert not re.search(pattern, out), (form, out)


@given(st.ip_addresses(v=4))
def test_every_v4_literal_that_survives_is_struck(addr: IPv4Address) -> None:
    out = STRIKE(f"/x/{addr}/y")
    found = re.findall(r"\d+\.\d+\.\d+\.\d+", out)
    assert found and all(_host_bits_zero(ip_address(f)) for f in found)


@given(st.ip_addresses(v=6))
def test_every_v6_literal_that_survives_is_struck(addr: IPv6Address) -> None:
    out = STRIKE(f"/x/{addr}/y")
    inner = out[3:-2]
    parsed = ip_address(inner)
    assert _host_bits_zero(parsed) or (parsed.version == 4 and int(parsed) & 0xFF == 0)


@given(st.text(max_size=60))
def test_any_text_is_handled(text: str) -> None:
    out = STRIKE(text)
    assert isinstance(out, str)
    assert STRIKE(out) == out or "%" in text  # striking is idempotent
