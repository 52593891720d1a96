"""proxy.guard: an absolute-form request for another host is refused; one for the upstream is
sent on in origin form; origin-form and HTTP/2 requests pass.

Requests are made by mitmproxy's own readers (its HTTP/1 request-head reader, its HTTP/2
pseudo-header parser), then given what its reverse mode sets before the `requestheaders` hook
(the upstream as host and port, the upstream's scheme), so they are in the shapes the addon sees.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.net.http.http1.read import read_request_head
from mitmproxy.proxy.layers.http._http2 import parse_h2_request_headers

from sidecar.proxy.guard import MISDIRECTED, Guard

UPSTREAM = ("origin.internal", 8000)


def _as_reverse(req: http.Request, upstream: tuple[str, int], tls: bool) -> http.Request:
    """What mitmproxy's reverse (transparent HTTP) mode sets before the hook: the upstream as
    the request's host and port, and the upstream's scheme. The authority stays as read."""
    req.data.host, req.data.port = upstream
    req.scheme = "https" if tls else "http"
    return req


def h1(target: str, *headers: str, upstream=UPSTREAM, tls: bool = False) -> http.Request:
    """`GET <target> HTTP/1.1` as mitmproxy's HTTP/1 reader gives it."""
    lines = [f"GET {target} HTTP/1.1".encode(), *(h.encode() for h in headers)]
    return _as_reverse(read_request_head(lines), upstream, tls)


def h2(authority: str, scheme: str = "https", upstream=UPSTREAM) -> http.Request:
    """An HTTP/2 request as mitmproxy's HTTP/2 layer makes it: `:authority` set, no Host."""
    pseudo = [(b":method", b"GET"), (b":scheme", scheme.encode()), (b":path", b"/v/1.ts")]
    if authority:
        pseudo.append((b":authority", authority.encode()))
    host, port, method, scheme_b, auth, path, headers = parse_h2_request_headers(
        [*pseudo, (b"user-agent", b"Player/1")]
    )
    req = http.Request(
        host, port, method, scheme_b, auth, path, b"HTTP/2.0", headers, None, None,
        time.time(), None,
    )  # fmt: skip
    return _as_reverse(req, upstream, tls=scheme == "https")


def test_421_is_misdirected_request() -> None:
    assert MISDIRECTED == 421


# --- what passes untouched ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "req",
    [
        h1("/v/1.ts?a=1", "Host: cdn.example"),
        h1("/", "Host: other.example:9999"),  # the Host header is no target: it passes
        h1("/"),
        h1("*"),
    ],
)
def test_origin_form_passes(req: http.Request) -> None:
    assert req.authority == ""
    assert Guard(*UPSTREAM).refuse(req) is False
    assert req.authority == ""


@pytest.mark.parametrize(
    "authority",
    [
        "other.example",
        "other.example:443",
        "cdn.example:8443",
        "origin.internal:8000",
        "203.0.113.7:80",
        "[2001:db8::1]:443",
        "",
    ],
)
def test_http2_passes_with_any_authority(authority: str) -> None:
    req = h2(authority)
    assert req.is_http2 and "host" not in req.headers
    assert req.authority == authority
    assert Guard(*UPSTREAM).refuse(req) is False
    assert req.authority == authority  # :authority is HTTP/2's Host: left as it came


def test_http3_passes_with_any_authority() -> None:
    req = h2("other.example")
    req.http_version = "HTTP/3"
    assert req.is_http3
    assert Guard(*UPSTREAM).refuse(req) is False
    assert req.authority == "other.example"


# --- absolute form naming the upstream ------------------------------------------------------------


@pytest.mark.parametrize(
    "upstream, target, tls",
    [
        (UPSTREAM, "http://origin.internal:8000/v/1.ts", False),
        (UPSTREAM, "http://ORIGIN.Internal:8000/v/1.ts?a=1", False),  # host: case-insensitive
        (UPSTREAM, "http://origin.internal:08000/x", False),  # the same port number
        (("origin.internal", 80), "http://origin.internal/x", False),  # no port: 80
        (("origin.internal", 80), "http://origin.internal:80/x", False),
        (("origin.internal", 443), "https://origin.internal/x", True),  # https upstream: 443
        (("origin.internal", 443), "http://origin.internal/x", True),  # mitmproxy's scheme
        (("Origin.Internal", 80), "http://origin.internal/x", False),  # upstream's case too
        (("127.0.0.1", 8000), "http://127.0.0.1:8000/x", False),
        (("[2001:db8::1]", 8080), "http://[2001:db8::1]:8080/x", False),  # bracketed upstream
        (("2001:db8::1", 8080), "http://[2001:db8::1]:8080/x", False),  # as urlsplit gives it
        (("[2001:db8::1]", 8080), "http://[2001:DB8::1]:8080/x", False),
        (("2001:db8::1", 80), "http://[2001:db8::1]/x", False),  # bracketed, no port: 80
    ],
)
def test_absolute_form_naming_the_upstream_passes_in_origin_form(
    upstream: tuple[str, int], target: str, tls: bool
) -> None:
    req = h1(target, "Host: cdn.example", upstream=upstream, tls=tls)
    assert req.authority != ""  # absolute form, as the reader read it
    path = req.path
    assert Guard(*upstream).refuse(req) is False
    assert req.authority == ""  # sent on in origin form
    assert req.path == path
    assert req.headers["host"] == "cdn.example"
    assert req.host_header == "cdn.example"


# --- absolute form for anything else --------------------------------------------------------------


@pytest.mark.parametrize(
    "upstream, target, tls",
    [
        (UPSTREAM, "http://other.example/x", False),
        (UPSTREAM, "http://other.example:8000/x", False),  # the port alone is not the upstream
        (UPSTREAM, "http://origin.internal/x", False),  # no port: 80, not 8000
        (UPSTREAM, "http://origin.internal:80/x", False),
        (UPSTREAM, "http://origin.internal:8001/x", False),
        (UPSTREAM, "http://origin.internal.evil.example:8000/x", False),
        (UPSTREAM, "http://evil.origin.internal:8000/x", False),
        (UPSTREAM, "http://origin.internal.:8000/x", False),
        (UPSTREAM, "http://203.0.113.7:8000/x", False),
        (("origin.internal", 443), "https://origin.internal:80/x", True),
        (("origin.internal", 80), "http://origin.internal:443/x", False),
        (("127.0.0.1", 8000), "http://127.1:8000/x", False),  # another spelling: refused
        (("127.0.0.1", 8000), "http://localhost:8000/x", False),
        (("[2001:db8::1]", 8080), "http://[2001:db8::1]/x", False),  # 80, not 8080
        (("[2001:db8::1]", 8080), "http://[2001:db8::2]:8080/x", False),
        (("[2001:db8::1]", 8080), "http://2001.db8:8080/x", False),
    ],
)
def test_absolute_form_for_another_host_or_port_is_refused(
    upstream: tuple[str, int], target: str, tls: bool
) -> None:
    req = h1(target, upstream=upstream, tls=tls)
    authority = req.authority
    assert authority != ""
    assert Guard(*upstream).refuse(req) is True
    assert req.authority == authority  # left as it came: the caller answers 421


def test_a_refusal_does_not_depend_on_the_host_header() -> None:
    req = h1("http://other.example/x", "Host: origin.internal:8000")
    assert Guard(*UPSTREAM).refuse(req) is True


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    host=st.one_of(
        st.sampled_from(("origin.internal", "ORIGIN.INTERNAL", "Origin.internal")),
        st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    ),
    port=st.one_of(st.none(), st.sampled_from((80, 8000)), st.integers(1, 65535)),
    upstream_port=st.sampled_from((80, 8000)),
)
def test_only_the_upstream_host_and_port_pass(host: str, port, upstream_port: int) -> None:
    upstream = ("origin.internal", upstream_port)
    target = f"http://{host}{'' if port is None else f':{port}'}/x"
    req = h1(target, upstream=upstream)
    is_upstream = host.lower() == "origin.internal" and (port or 80) == upstream_port
    assert Guard(*upstream).refuse(req) is (not is_upstream)
    assert (req.authority == "") is is_upstream


def test_absolute_form_naming_a_punycode_upstream_passes() -> None:
    # upstream_address("http://xn--bcher-kva.example") -> ("xn--bcher-kva.example", 80);
    # mitmproxy's .authority decodes the punycode: the guard compares the bytes as they came
    req = read_request_head([b"GET http://xn--bcher-kva.example/x HTTP/1.1", b"Host: cdn.example"])
    req.data.host, req.data.port = "xn--bcher-kva.example", 80
    req.scheme = "http"
    assert Guard("xn--bcher-kva.example", 80).refuse(req) is False
    assert req.authority == ""
    assert (
        Guard("bücher.example", 80).refuse(
            read_request_head([b"GET http://xn--bcher-kva.example/x HTTP/1.1", b"Host: x"])
        )
        is False
    )
