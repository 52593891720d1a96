"""privacy.headers: what a request's headers and target carry toward the origin."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.config import from_mapping
from sidecar.privacy.headers import CLIENT_IP_HEADERS, HeaderRule
from sidecar.privacy.stage import PrivacyStage
from sidecar.record import RawRequest
from tests.fuzz.oracle import Identity, leaks
from tests.fuzz.strategies import (
    HypothesisChooser,
    client_address,
    forwarding_hops,
    ipv4_free_text,
    ipv4_host,
    ipv6_text,
    planted_ipv4,
    planted_ipv6,
    v4_identity,
    v6_identity,
)

FIRST_PARTY = "example-video.eu"
TRUSTED_SETTINGS = {
    "none": [],
    "10/8": ["10.0.0.0/8"],
    # everything trusted: the client is the left-most hop that reads as an address
    "all": ["0.0.0.0/0", "::/0"],
}


def _rule(trusted: str = "10/8", strip: tuple[str, ...] = ("cookie",), **sections) -> HeaderRule:
    config = from_mapping(
        {
            "ip": {"trusted_proxies": TRUSTED_SETTINGS[trusted]},
            "referrer": {"first_party_hosts": [FIRST_PARTY]},
            "geoip": {"database": ""},
            **sections,
        }
    )
    return HeaderRule.from_stage(PrivacyStage(config), strip)


RULES = {name: _rule(name) for name in TRUSTED_SETTINGS}
RULE = RULES["10/8"]


def _get(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n.lower() == name]


# --- table tests: one header at a time -----------------------------------------------------------


def test_untrusted_peer_is_the_client_and_its_claims_are_replaced() -> None:
    client, out = RULE.scrub(
        "198.51.100.77",
        [("Host", "cdn.example"), ("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "5.6.7.8")],
    )
    assert client == "198.51.100.0"
    assert out == [
        ("Host", "cdn.example"),
        ("X-Forwarded-For", "198.51.100.0"),
        ("X-Real-IP", "198.51.100.0"),
        ("Forwarded", "for=198.51.100.0"),
    ]


def test_trusted_peer_gives_the_rightmost_untrusted_hop() -> None:
    client, out = RULE.scrub(
        "10.0.0.5",
        [("x-forwarded-for", "192.0.2.200, 203.0.113.99, 10.1.2.3"), ("accept", "*/*")],
    )
    assert client == "203.0.113.0"
    assert out == [
        ("x-forwarded-for", "203.0.113.0"),  # its own place and spelling, one hop only
        ("accept", "*/*"),
        ("X-Real-IP", "203.0.113.0"),
        ("Forwarded", "for=203.0.113.0"),
    ]


def test_duplicate_xff_lines_are_one_chain() -> None:
    client, out = RULE.scrub(
        "10.0.0.5", [("X-Forwarded-For", "192.0.2.200"), ("X-Forwarded-For", "10.9.9.9")]
    )
    assert client == "192.0.2.0"
    assert _get(out, "x-forwarded-for") == ["192.0.2.0"]


def test_forwarded_header_as_the_real_ip_header() -> None:
    rule = _rule("10/8", ip={"trusted_proxies": ["10.0.0.0/8"], "real_ip_header": "forwarded"})
    client, out = rule.scrub(
        "10.0.0.5", [("Forwarded", 'for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.9')]
    )
    assert client == "2001:db8:cafe::"
    assert out == [
        ("Forwarded", 'for="[2001:db8:cafe::]"'),  # RFC 7239: IPv6 quoted and bracketed
        ("X-Forwarded-For", "2001:db8:cafe::"),
        ("X-Real-IP", "2001:db8:cafe::"),
    ]


@pytest.mark.parametrize(
    "peer, expected",
    [
        ("2001:db8:abcd:12::1", "2001:db8:abcd::"),
        ("::ffff:192.0.2.155", "192.0.2.0"),  # IPv4-mapped: the IPv4 it carries
        ("::FFFF:C000:029B", "192.0.2.0"),
        ("64:ff9b::192.0.2.1", "192.0.2.0"),  # NAT64
    ],
)
def test_ipv6_and_mapped_peers(peer: str, expected: str) -> None:
    client, out = RULE.scrub(peer, [])
    assert client == expected
    forwarded = f'for="[{expected}]"' if ":" in expected else f"for={expected}"
    assert out == [
        ("X-Forwarded-For", expected),
        ("X-Real-IP", expected),
        ("Forwarded", forwarded),
    ]


@pytest.mark.parametrize("name", [*CLIENT_IP_HEADERS, "True-Client-IP", "CF-Connecting-IP"])
def test_cdn_client_headers_are_removed(name: str) -> None:
    _, out = RULE.scrub("198.51.100.77", [(name, "198.51.100.77"), ("Accept", "*/*")])
    assert [n for n, _ in out] == ["Accept", "X-Forwarded-For", "X-Real-IP", "Forwarded"]


@pytest.mark.parametrize(
    "referer, expected",
    [
        (f"https://www.{FIRST_PARTY}/watch/42?t=10#x", f"https://www.{FIRST_PARTY}/watch/42"),
        (f"http://{FIRST_PARTY}/a;jsessionid=1/b", f"http://{FIRST_PARTY}/a"),
        (f"https://{FIRST_PARTY}/u/203.0.113.77/p", f"https://{FIRST_PARTY}/u/203.0.113.0/p"),
        ("https://user:pw@search.example/?q=secret", "https://search.example/"),
        ("https://203.0.113.77:8443/x", "https://203.0.113.0/"),
        ("https://[2001:db8:1:2::3]/x", "https://[2001:db8:1::]/"),
        ("android-app://com.example.app/", "android-app://com.example.app/"),
        ("about:blank", None),
        ("-", None),
        ("", None),
    ],
)
def test_referer_is_reduced_as_in_the_logs(referer: str, expected: str | None) -> None:
    _, out = RULE.scrub("198.51.100.77", [("Referer", referer)])
    assert _get(out, "referer") == ([expected] if expected is not None else [])


def test_third_party_drop_removes_the_referer() -> None:
    rule = _rule(referrer={"first_party_hosts": [FIRST_PARTY], "third_party": "drop"})
    _, out = rule.scrub("198.51.100.77", [("Referer", "https://other.example/x")])
    assert _get(out, "referer") == []


def test_cookie_and_configured_headers_are_stripped_case_insensitively() -> None:
    rule = _rule(strip=("Cookie", "AUTHORIZATION", "x-session"))
    headers = [
        ("cookie", "a=1"),
        ("COOKIE", "b=2"),
        ("Authorization", "Bearer x"),
        ("X-Session", "s"),
        ("Accept", "*/*"),
    ]
    _, out = rule.scrub("198.51.100.77", headers)
    assert [n for n, _ in out] == ["Accept", "X-Forwarded-For", "X-Real-IP", "Forwarded"]


def test_cookies_kept_when_strip_is_empty() -> None:
    _, out = _rule(strip=()).scrub("198.51.100.77", [("Cookie", "a=1")])
    assert _get(out, "cookie") == ["a=1"]


@pytest.mark.parametrize("name", ["Host", "x-forwarded-for", "X-Real-IP", "forwarded"])
def test_owned_headers_cannot_be_stripped(name: str) -> None:
    with pytest.raises(ValueError, match=name.lower()):
        _rule(strip=(name,))


@pytest.mark.parametrize("host", ["203.0.113.77", "[2001:db8::1]:8080", "cdn.example", "", "\x00"])
def test_host_passes_unchanged(host: str) -> None:
    _, out = RULE.scrub("198.51.100.77", [("Host", host)])
    assert out[0] == ("Host", host)


def test_other_headers_keep_order_and_duplicates_with_literals_struck() -> None:
    headers = [
        ("Accept", "*/*"),
        ("Via", "1.1 198.51.100.201 (proxy)"),
        ("X-Debug", "peer=[2001:db8:1:2::99]:443"),
        ("Accept", "text/html"),
        ("User-Agent", "Player/1.2.3.4"),  # over-striking a version is accepted
    ]
    _, out = RULE.scrub("198.51.100.77", headers)
    assert out[:5] == [
        ("Accept", "*/*"),
        ("Via", "1.1 198.51.100.0 (proxy)"),
        ("X-Debug", "peer=[2001:db8:1::]:443"),
        ("Accept", "text/html"),
        ("User-Agent", "Player/1.2.3.0"),
    ]


def test_a_client_that_is_no_address_gets_no_forwarding_headers() -> None:
    client, out = RULE.scrub("unix:", [("X-Forwarded-For", "198.51.100.7"), ("Accept", "*/*")])
    assert client is None
    assert out == [("Accept", "*/*")]


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/", "/"),
        ("/v/42/seg-3.m4s?t=1.5&q=a", "/v/42/seg-3.m4s?t=1.5&q=a"),
        ("/v/203.0.113.77/seg?ip=203.0.113.77&x=1", "/v/203.0.113.0/seg?ip=203.0.113.0&x=1"),
        ("/a;ip=2001:db8:1:2::99/b", "/a;ip=2001:db8:1::/b"),
        ("/x?203.0.113.77", "/x?203.0.113.0"),
        ("/x?ip=203%2E0%2E113%2E77", "/x?ip=203.0.113.0"),
        ("/x?ip=0xcb00714d", "/x?ip=0xcb007000"),  # as privacy.literals strikes it
    ],
)
def test_scrub_target(target: str, expected: str) -> None:
    assert RULE.scrub_target(target) == expected


def test_scrub_target_keeps_separators_a_struck_value_decodes_to() -> None:
    out = RULE.scrub_target("/x?ip=203%252E0%252E113%252E200%2526secret%253Dx&k=v")
    assert out.count("&") == 1 and out.count("=") == 2 and out.endswith("&k=v")
    assert not leaks(out, [Identity(4, int(IPv4Address("203.0.113.200")), 32, 24)])


# --- property tests ------------------------------------------------------------------------------


@st.composite
def _free_text(draw: st.DrawFn) -> tuple[str, Identity]:
    """An address as free text may hold it, in a little text."""
    c = HypothesisChooser(draw(st.data()))
    if draw(st.booleans()):
        value = planted_ipv4(c, 24)
        text, ident = ipv4_free_text(c, value)[0], v4_identity(value)
    else:
        value = planted_ipv6(c, 48)
        text, ident = ipv6_text(c, value)[0], v6_identity(value)
    before = draw(st.sampled_from(("", "x=", "1.1 ", "peer ", "/")))
    after = draw(st.sampled_from(("", ";", " (proxy)", ",")))
    return before + text + after, ident


_TRUSTED_HOP = st.sampled_from(("10.0.0.1", "10.20.30.40", "10.255.0.9:8080"))


@st.composite
def _request(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]], list[Identity], str]:
    """(peer, headers, every planted identity, the Host value)."""
    identities: list[Identity] = []
    peer_trusted = draw(st.booleans())
    if peer_trusted:
        peer = draw(_TRUSTED_HOP).partition(":")[0]
    else:
        peer, ident = draw(client_address())
        identities.append(ident)
    hops, hop_identities = draw(forwarding_hops(_TRUSTED_HOP, 4))
    identities += hop_identities
    headers: list[tuple[str, str]] = []
    host = draw(st.sampled_from(("cdn.example", "203.0.113.1", "[2001:db8::1]:8080", "")))
    headers.append((draw(st.sampled_from(("Host", "host"))), host))
    if hops or draw(st.booleans()):
        headers.append(("X-Forwarded-For", ", ".join(hops)))
    if draw(st.booleans()):

        def fwd(hop: str) -> str:
            return f'for="{hop}"' if ":" in hop else f"for={hop}"

        headers.append(("Forwarded", ", ".join(fwd(h) for h in hops) or "for=unknown"))
    for name in draw(st.lists(st.sampled_from(("X-Real-IP", *CLIENT_IP_HEADERS)), max_size=3)):
        value, ident = draw(client_address(decorated=True))
        headers.append((name, value))
        identities.append(ident)
    for name in draw(st.lists(st.sampled_from(("Via", "X-Debug", "User-Agent")), max_size=3)):
        value, ident = draw(_free_text())
        headers.append((name, value))
        identities.append(ident)
    if draw(st.booleans()):
        value, ident = draw(_free_text())
        site = draw(st.sampled_from((FIRST_PARTY, "other.example", "an address")))
        if site == "an address":  # a referrer whose host is an address, as a browser reads one
            c = HypothesisChooser(draw(st.data()))
            if draw(st.booleans()):
                planted = planted_ipv4(c, 24)
                site, planted_ident = ipv4_host(c, planted)[0], v4_identity(planted)
            else:
                planted = planted_ipv6(c, 48)
                site, planted_ident = f"[{ipv6_text(c, planted)[0]}]", v6_identity(planted)
            identities.append(planted_ident)
        headers.append(("Referer", f"https://{site}/p/{value}?ip={value}"))
        identities.append(ident)
    headers = draw(st.permutations(headers))
    return peer, headers, identities, host


def _expected_client(rule: HeaderRule, peer: str, headers: list[tuple[str, str]]) -> str | None:
    """The client as the logs decide it, from the same peer and chains."""
    xff = ",".join(v for n, v in headers if n.lower() == "x-forwarded-for") or None
    fwd = ",".join(v for n, v in headers if n.lower() == "forwarded") or None
    xri = [v for n, v in headers if n.lower() == "x-real-ip"]
    raw = RawRequest(
        peer, "", x_forwarded_for=xff, forwarded=fwd, x_real_ip=xri[-1] if xri else None
    )
    return rule.client(raw)[1]


@settings(max_examples=300, deadline=None)
@given(request=_request(), trusted=st.sampled_from(sorted(TRUSTED_SETTINGS)))
def test_no_full_address_reaches_the_origin(request, trusted: str) -> None:
    peer, headers, identities, host = request
    rule = RULES[trusted]
    client, out = rule.scrub(peer, headers)
    for name, value in out:
        if name.lower() == "host":
            continue
        found = leaks(value, identities, host=name.lower() == "referer")
        assert not found, (name, value, found)
    # one of each forwarding header, carrying only the client as the logs decide it
    assert client == _expected_client(rule, peer, headers)
    assert _get(out, "x-forwarded-for") == [client]
    assert _get(out, "x-forwarded-for")[0].split(",")[-1].strip() == client
    assert _get(out, "x-real-ip") == [client]
    assert _get(out, "forwarded") == [f'for="[{client}]"' if ":" in client else f"for={client}"]
    # Host unchanged, in its place
    assert _get(out, "host") == [host]
    assert [(n, v) for n, v in out if n.lower() == "host"] == [
        (n, v) for n, v in headers if n.lower() == "host"
    ]
    assert not any(n.lower() in CLIENT_IP_HEADERS for n, _ in out)


_NAMED = {"host", "x-forwarded-for", "x-real-ip", "forwarded", "referer", "cookie"}
_NAMED.update(CLIENT_IP_HEADERS)
_HEADER_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    peer=client_address(),
    headers=st.lists(
        st.tuples(
            st.one_of(_HEADER_NAME, st.sampled_from(sorted(_NAMED))),
            st.one_of(st.text(max_size=40), _free_text().map(lambda p: p[0])),
        ),
        max_size=12,
    ),
)
def test_unnamed_headers_pass_unchanged_but_for_struck_literals(peer, headers) -> None:
    _, out = RULE.scrub(peer[0], headers)
    mask = RULE.literals.mask
    unnamed_in = [(n, mask(v)) for n, v in headers if n.lower() not in _NAMED]
    unnamed_out = [(n, v) for n, v in out if n.lower() not in _NAMED]
    assert unnamed_out == unnamed_in


@settings(max_examples=300, deadline=None)
@given(
    peer=st.text(max_size=40),
    headers=st.lists(st.tuples(st.text(max_size=20), st.text(max_size=60)), max_size=8),
    trusted=st.sampled_from(sorted(TRUSTED_SETTINGS)),
)
def test_scrub_never_raises(peer: str, headers, trusted: str) -> None:
    client, out = RULES[trusted].scrub(peer, headers)
    assert client is None or isinstance(client, str)
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in out)


@settings(max_examples=200, deadline=None)
@given(
    segments=st.lists(st.one_of(_free_text(), st.just(("seg", None))), min_size=1, max_size=4),
    target_text=st.text(max_size=30),
)
def test_scrub_target_strikes_and_keeps_structure(segments, target_text: str) -> None:
    path = "/" + "/".join(text for text, _ in segments)
    target = f"{path}?a={segments[0][0]}&b=1"
    identities = [ident for _, ident in segments if ident is not None]
    out = RULE.scrub_target(target)
    assert not leaks(out, identities)
    for sep in "/?&=":
        assert out.count(sep) == target.count(sep)
    RULE.scrub_target(target_text)  # never raises
