"""proxy.exchange: the raw request read from a mitmproxy flow, finished with the answer, and the
clean record the privacy stage makes of it.

Requests come from mitmproxy's own readers (its HTTP/1 request-head reader; its HTTP/2
pseudo-header parser, whose requests carry `:authority` and no Host header), in the flows of
mitmproxy's test factories (`tflow`, `tclient_conn`), with the peer as a listening socket gives
it (IPv6 as a 4-tuple, an IPv4 client of a dual-stack listener as `::ffff:a.b.c.d`).
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import time
from datetime import UTC, datetime
from ipaddress import IPv6Address, ip_address, ip_network

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy import io as mitm_io
from mitmproxy.net.http.http1.read import read_request_head
from mitmproxy.proxy.layers.http._http2 import parse_h2_request_headers
from mitmproxy.test.tflow import tclient_conn, tflow

from sidecar.config import Config, from_mapping
from sidecar.privacy.headers import HeaderRule
from sidecar.privacy.stage import PrivacyStage
from sidecar.proxy.exchange import begin, finish, peer_of
from sidecar.record import CleanRecord, RawRequest
from sidecar.reject import Rejected
from sidecar.timestamps import from_epoch
from tests.fuzz.oracle import Identity, leaks
from tests.fuzz.strategies import client_address, forwarding_hops

PEER = ("198.51.100.77", 50000)
T0 = 1795510800.123  # a request's first byte, as mitmproxy's readers stamp it (time.time())

STAGES = {
    "none": PrivacyStage(Config()),
    "10/8": PrivacyStage(
        from_mapping({"ip": {"trusted_proxies": ["10.0.0.0/8"]}, "geoip": {"database": ""}})
    ),
    "all": PrivacyStage(
        from_mapping({"ip": {"trusted_proxies": ["0.0.0.0/0", "::/0"]}, "geoip": {"database": ""}})
    ),
}
STAGE = STAGES["none"]


def h1(target: str, *headers: str | bytes, method: str = "GET") -> http.Request:
    """`<method> <target> HTTP/1.1` and its header lines, as mitmproxy's HTTP/1 reader reads
    them (origin-form: authority ""; absolute-form: the authority as written)."""
    lines = [f"{method} {target} HTTP/1.1".encode()]
    lines += [h if isinstance(h, bytes) else h.encode() for h in headers]
    req = read_request_head(lines)
    req.timestamp_start = T0
    return req


def h2(authority: str, path: str, *headers: tuple[str, str], method: str = "GET") -> http.Request:
    """An HTTP/2 request as mitmproxy's HTTP/2 layer makes it: `:authority`, no Host header."""
    pseudo = [(b":method", method.encode()), (b":scheme", b"https"), (b":path", path.encode())]
    if authority:
        pseudo.append((b":authority", authority.encode()))
    fields = [(n.encode(), v.encode()) for n, v in headers]
    host, port, method_b, scheme, auth, path_b, hdrs = parse_h2_request_headers(pseudo + fields)
    return http.Request(
        host, port, method_b, scheme, auth, path_b, b"HTTP/2.0", hdrs, None, None, T0, None
    )


def flow(req: http.Request, peer: tuple | None = PEER) -> http.HTTPFlow:
    client = tclient_conn()
    client.peername = peer
    return tflow(client_conn=client, req=req)


def raw_of(req: http.Request, peer: tuple | None = PEER) -> RawRequest:
    f = flow(req, peer)
    return begin(f, peer_of(f))


def struck(address: str) -> str:
    """The address as the stage must keep it: IPv4 /24, IPv6 /48, IPv4-mapped as its IPv4."""
    ip = ip_address(address)
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 48
    return str(ip_network(f"{ip}/{bits}", strict=False).network_address)


# --- begin: the fields read from the flow ------------------------------------------------------


def test_an_origin_form_request() -> None:
    req = h1(
        "/v/42/seg-3.m4s?t=1.5&session=abc",
        "Host: CDN.Example:8080",
        "User-Agent: Player/2.1 (SmartTV)",
        "Referer: https://www.example-video.eu/watch/42",
        "X-Forwarded-For: 192.0.2.200, 203.0.113.99",
        "x-forwarded-for: 10.1.2.3",
        "X-Real-IP: 192.0.2.1",
        "X-Real-IP: 192.0.2.2",
        'Forwarded: for="[2001:db8::1]"',
        "forwarded: for=192.0.2.3",
    )
    assert req.authority == "" and req.http_version == "HTTP/1.1"
    raw = raw_of(req)
    assert raw.remote_addr == "198.51.100.77"
    assert raw.ts == from_epoch(T0)
    assert raw.method == "GET"
    assert raw.path == "/v/42/seg-3.m4s"
    assert raw.query == "t=1.5&session=abc"
    assert raw.protocol == "HTTP/1.1"
    assert raw.host == "cdn.example"  # host_of: lower case, no port
    assert raw.user_agent == "Player/2.1 (SmartTV)"
    assert raw.referrer == "https://www.example-video.eu/watch/42"
    # the forwarding headers as the log parsers see them: lines of one name joined by ","
    assert raw.x_forwarded_for == "192.0.2.200, 203.0.113.99,10.1.2.3"
    assert raw.forwarded == 'for="[2001:db8::1]",for=192.0.2.3'
    assert raw.x_real_ip == "192.0.2.2"  # the last one, as nginx's $http_x_real_ip
    # what only the answer knows is not there yet
    assert (raw.status, raw.bytes, raw.request_time, raw.body) == (0, 0, None, None)


def test_no_headers_give_none() -> None:
    raw = raw_of(h1("/"))
    assert raw.path == "/" and raw.query is None
    assert (raw.host, raw.user_agent, raw.referrer) == (None, None, None)
    assert (raw.x_forwarded_for, raw.forwarded, raw.x_real_ip) == (None, None, None)


@pytest.mark.parametrize(
    "target, path, query",
    [
        ("/", "/", None),
        ("/a/b", "/a/b", None),
        ("/a?", "/a", None),
        ("/a?x=1&y=2", "/a", "x=1&y=2"),
        ("/a;jsessionid=1?x", "/a;jsessionid=1", "x"),  # ;params: the stage's to cut
        ("/a?b?c", "/a", "b?c"),
        ("*", "*", None),  # OPTIONS *
    ],
)
def test_path_and_query_split(target: str, path: str, query: str | None) -> None:
    raw = raw_of(h1(target, "Host: cdn.example", method="OPTIONS" if target == "*" else "GET"))
    assert (raw.path, raw.query) == (path, query)


def test_an_absolute_form_request() -> None:
    """The path is the reader's (no scheme or authority); the host is the Host header's."""
    req = h1("http://other.example:80/v/1.ts?a=1", "Host: cdn.example")
    assert req.authority == "other.example:80"
    raw = raw_of(req)
    assert (raw.path, raw.query, raw.host) == ("/v/1.ts", "a=1", "cdn.example")


@pytest.mark.parametrize(
    "host, expected",
    [
        ("cdn.example", "cdn.example"),
        ("CDN.EXAMPLE.:443", "cdn.example"),
        ("[2001:DB8::1]:8080", "[2001:db8::1]"),
        ("203.0.113.7:8080", "203.0.113.7"),  # the stage strikes it, not the reader
        ("", None),
    ],
)
def test_host_from_the_host_header(host: str, expected: str | None) -> None:
    assert raw_of(h1("/", f"Host: {host}")).host == expected


def test_an_http2_request() -> None:
    req = h2(
        "CDN.example:8443",
        "/v/1.ts?a=1",
        ("user-agent", "Player/3"),
        ("x-forwarded-for", "192.0.2.200"),
        ("x-forwarded-for", "192.0.2.201"),
        ("referer", "https://www.example-video.eu/"),
    )
    assert req.is_http2 and "host" not in req.headers
    raw = raw_of(req)
    assert raw.protocol == "HTTP/2.0"
    assert raw.host == "cdn.example"  # from :authority
    assert (raw.method, raw.path, raw.query) == ("GET", "/v/1.ts", "a=1")
    assert raw.user_agent == "Player/3"
    assert raw.x_forwarded_for == "192.0.2.200,192.0.2.201"
    assert raw.referrer == "https://www.example-video.eu/"


def test_an_http2_request_without_authority_takes_the_host_header() -> None:
    raw = raw_of(h2("", "/x", ("host", "cdn.example:443")))
    assert raw.host == "cdn.example"


@pytest.mark.parametrize(
    "seconds", [T0, 1795510800.0, 1795510800.9999, 946681200, time.time(), 0.5]
)
def test_ts_is_the_first_byte_as_rfc3339_ms(seconds: float) -> None:
    req = h1("/", "Host: cdn.example")
    req.timestamp_start = seconds
    ts = raw_of(req).ts
    assert ts == from_epoch(seconds)
    whole = datetime.fromtimestamp(int(seconds), UTC)
    assert ts.startswith(whole.strftime("%Y-%m-%dT%H:%M:%S."))
    assert ts.endswith("Z") and len(ts) == len("2026-12-01T13:00:00.123Z")


def test_ts_of_a_known_instant() -> None:
    req = h1("/", "Host: cdn.example")
    req.timestamp_start = 1795510800.123
    assert raw_of(req).ts == "2026-11-24T09:00:00.123Z"


@pytest.mark.parametrize(
    "peer, expected",
    [
        (("198.51.100.77", 50000), "198.51.100.77"),
        (("2001:db8:abcd:12::1", 50000, 0, 0), "2001:db8:abcd:12::1"),
        (("::ffff:203.0.113.7", 50000, 0, 0), "::ffff:203.0.113.7"),  # as mitmproxy gives it
        (None, ""),
    ],
)
def test_peer_of(peer: tuple | None, expected: str) -> None:
    f = flow(h1("/"), peer)
    assert peer_of(f) == expected
    assert begin(f, peer_of(f)).remote_addr == expected


def test_begin_reads_the_headers_as_they_came() -> None:
    """The raw request is taken before the header rule rewrites the request: changing the
    request afterwards changes nothing of it."""
    req = h1("/a?b=1", "Host: cdn.example", "X-Forwarded-For: 192.0.2.200")
    raw = raw_of(req)
    req.headers["X-Forwarded-For"] = "198.51.100.0"
    req.path = "/other"
    assert raw.x_forwarded_for == "192.0.2.200"
    assert raw.path == "/a"


# --- finish --------------------------------------------------------------------------------------


def test_finish_adds_status_bytes_and_time() -> None:
    raw = raw_of(h1("/", "Host: cdn.example"))
    out = finish(raw, 206, 1 << 20, T0 + 0.25, T0)
    assert out is raw
    assert (raw.status, raw.bytes) == (206, 1 << 20)
    assert raw.request_time == pytest.approx(0.25, abs=1e-6)
    assert raw.request_time == round(raw.request_time, 6)


@pytest.mark.parametrize("end", [T0 - 1.0, T0 - 1e-9, T0])
def test_request_time_is_never_negative(end: float) -> None:
    raw = finish(raw_of(h1("/")), 200, 0, end, T0)
    assert raw.request_time == 0.0


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(1e9, 4e9, allow_nan=False),
    elapsed=st.floats(-100.0, 1e4, allow_nan=False),
    status=st.integers(100, 599),
    sent=st.integers(0, 1 << 40),
)
def test_finish_property(start: float, elapsed: float, status: int, sent: int) -> None:
    raw = finish(RawRequest("192.0.2.1", "x"), status, sent, start + elapsed, start)
    assert (raw.status, raw.bytes) == (status, sent)
    assert raw.request_time is not None and raw.request_time >= 0.0
    assert raw.request_time == pytest.approx(max(elapsed, 0.0), abs=1e-5)


# --- the raw request cannot leave the process -----------------------------------------------------


def _raw_with_address() -> RawRequest:
    req = h1("/v/1.ts", "Host: cdn.example", "X-Forwarded-For: 192.0.2.200")
    return finish(raw_of(req, ("198.51.100.77", 50000)), 200, 10, T0 + 1, T0)


def test_the_raw_request_holds_the_full_address_and_shows_none() -> None:
    raw = _raw_with_address()
    assert raw.remote_addr == "198.51.100.77"  # full: the stage needs it (country, trust)
    for text in (repr(raw), str(raw), f"{raw}", f"{raw!r}", repr([raw]), repr({"r": raw})):
        assert "198.51.100" not in text and "192.0.2" not in text
        assert "withheld" in text or "RawRequest" in text


@pytest.mark.parametrize(
    "how",
    [
        pickle.dumps,
        lambda r: pickle.dumps(r, protocol=0),
        copy.copy,
        copy.deepcopy,
        orjson.dumps,
        json.dumps,
    ],
    ids=["pickle", "pickle-0", "copy", "deepcopy", "orjson", "json"],
)
def test_the_raw_request_cannot_be_pickled_copied_or_serialized(how) -> None:
    raw = _raw_with_address()
    with pytest.raises(TypeError) as info:
        how(raw)
    assert "198.51.100" not in str(info.value)


def test_a_flow_holding_a_raw_request_cannot_be_saved_or_copied() -> None:
    f = flow(h1("/", "Host: cdn.example"))
    f.metadata["sidecar"] = raw_of(f.request)
    for how in (f.get_state, f.copy, lambda: mitm_io.FlowWriter(io.BytesIO()).add(f)):
        with pytest.raises(TypeError):
            how()


# --- the clean record the stage makes of it ------------------------------------------------------


@pytest.mark.parametrize(
    "peer, client_ip",
    [
        (("198.51.100.77", 50000), "198.51.100.0"),
        (("203.0.113.255", 1), "203.0.113.0"),
        (("2001:db8:abcd:12::1", 50000, 0, 0), "2001:db8:abcd::"),
        (("2001:db8:abcd:ffff:ffff:ffff:ffff:ffff", 443, 0, 0), "2001:db8:abcd::"),
        (("::ffff:203.0.113.7", 50000, 0, 0), "203.0.113.0"),  # IPv4-mapped: the IPv4 /24
        (("::FFFF:198.51.100.77", 50000, 0, 0), "198.51.100.0"),
    ],
)
def test_the_stage_truncates_the_client(peer: tuple, client_ip: str) -> None:
    req = h1("/v/1.ts?a=1", "Host: cdn.example", "User-Agent: Player/1")
    raw = finish(raw_of(req, peer), 200, 1234, T0 + 0.5, T0)
    record = STAGE.scrub(raw)
    assert type(record) is CleanRecord
    assert record["client_ip"] == client_ip
    assert record["ts"] == from_epoch(T0)
    assert (record["method"], record["path"], record["protocol"]) == ("GET", "/v/1.ts", "HTTP/1.1")
    assert (record["status"], record["bytes"], record["request_time"]) == (200, 1234, 0.5)
    assert record["host"] == "cdn.example"
    text = orjson.dumps(record).decode()
    assert peer[0] not in text and peer[0].lower() not in text


def test_an_http2_record() -> None:
    raw = finish(raw_of(h2("cdn.example", "/v/1.ts")), 200, 0, T0, T0)
    record = STAGE.scrub(raw)
    assert (record["protocol"], record["host"], record["client_ip"]) == (
        "HTTP/2.0",
        "cdn.example",
        "198.51.100.0",
    )


def test_a_spoofed_chain_from_an_untrusted_peer_is_ignored() -> None:
    req = h1("/", "Host: cdn.example", "X-Forwarded-For: 192.0.2.200", "X-Real-IP: 192.0.2.201")
    record = STAGE.scrub(finish(raw_of(req), 200, 0, T0, T0))
    assert record["client_ip"] == "198.51.100.0"


def test_a_trusted_peer_gives_the_rightmost_untrusted_hop() -> None:
    req = h1(
        "/",
        "Host: cdn.example",
        "X-Forwarded-For: 192.0.2.200, 203.0.113.99",
        "X-Forwarded-For: 10.1.2.3",
    )
    raw = finish(raw_of(req, ("10.0.0.5", 50000)), 200, 0, T0, T0)
    assert STAGES["10/8"].scrub(raw)["client_ip"] == "203.0.113.0"


def test_a_peer_that_is_no_address_is_rejected() -> None:
    raw = finish(raw_of(h1("/", "Host: cdn.example"), None), 200, 0, T0, T0)
    with pytest.raises(Rejected):
        STAGE.scrub(raw)


# --- property: the record's client is the one the origin was told about, truncated -------------


_TRUSTED = st.sampled_from(("10.0.0.1", "10.20.30.40", "10.255.0.9"))


@st.composite
def _exchange(draw: st.DrawFn) -> tuple[tuple, list[str], list[Identity]]:
    """(the peer as a socket gives it, the request's header lines, every planted identity)."""
    identities: list[Identity] = []
    if draw(st.integers(0, 2)) == 0:  # a proxy of ours (on a dual-stack listener or not)
        proxy = draw(_TRUSTED)
        peer = (f"::ffff:{proxy}", 50000, 0, 0) if draw(st.booleans()) else (proxy, 50000)
    else:
        text, ident = draw(client_address())
        identities.append(ident)
        peer = (text, 50000) if "." in text and ":" not in text else (text, 50000, 0, 0)
    hops, hop_identities = draw(forwarding_hops(_TRUSTED, 5))
    identities += hop_identities
    lines = [f"Host: {draw(st.sampled_from(('cdn.example', 'CDN.example:8080')))}"]
    if hops:  # the chain, on one header line or several
        cuts = sorted(draw(st.sets(st.integers(1, max(len(hops) - 1, 1)), max_size=3)))
        for lo, hi in zip([0, *cuts], [*cuts, len(hops)], strict=True):
            if hops[lo:hi]:
                name = draw(st.sampled_from(("X-Forwarded-For", "x-forwarded-for")))
                lines.append(f"{name}: {', '.join(hops[lo:hi])}")
    if draw(st.booleans()):
        text, ident = draw(client_address(decorated=True))
        lines.append(f"X-Real-IP: {text}")
        identities.append(ident)
    if hops and draw(st.booleans()):
        quoted = (f'for="{h}"' if ":" in h else f"for={h}" for h in hops)
        lines.append(f"Forwarded: {', '.join(quoted)}")
    lines.append(draw(st.sampled_from(("User-Agent: Player/1", "Accept: */*"))))
    return peer, draw(st.permutations(lines)), identities


@settings(max_examples=300, deadline=None)
@given(exchange=_exchange(), trusted=st.sampled_from(sorted(STAGES)))
def test_the_record_has_the_client_the_header_rule_sends_truncated(exchange, trusted) -> None:
    peer, lines, identities = exchange
    stage = STAGES[trusted]
    req = h1("/v/1.ts?a=1", *lines)
    f = flow(req, peer)
    raw = finish(begin(f, peer_of(f)), 200, 100, T0 + 0.01, T0)
    client, _ = HeaderRule.from_stage(stage).scrub(peer_of(f), req.headers.items(multi=True))
    assert client is not None  # the peer is an address: there is always a client
    record = stage.scrub(raw)
    assert record["client_ip"] == client
    assert client == struck(client)  # truncated: nothing after /24 or /48
    if trusted == "none":  # nothing trusted: always the peer
        assert client == struck(peer[0])
    text = orjson.dumps(record).decode()
    found = leaks(text, identities)
    assert not found, (text, found)


def test_a_repeated_header_reads_its_first_value_as_nginx_does() -> None:
    raw = raw_of(h1("/x", "Host: a.example", "Host: 203.0.113.7", "User-Agent: first",
                    "User-Agent: second", "Referer: https://r.example/", "Referer: x"))  # fmt: skip
    rec = PrivacyStage(Config()).scrub(raw)
    assert rec["host"] == "a.example"
    assert rec["referrer_host"] == "r.example"
