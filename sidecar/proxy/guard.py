"""Rule: what the proxy refuses itself, so that it is no open proxy.

In reverse mode mitmproxy sends every request to the one upstream, but an HTTP/1 request in
absolute form (`GET http://other.example/ HTTP/1.1`) would reach the origin as it came, and an
origin that is itself a forward proxy (a cache, a packager) would then fetch for anyone. So an
absolute-form request is taken only when it names the upstream itself (it then goes on in
origin form); one for any other host gets 421 Misdirected Request (RFC 9110 15.5.20) and
reaches no one. HTTP/2 and HTTP/3 carry `:authority` on every request: it is their Host, not
a target, and passes. CONNECT never gets here: mitmproxy's reverse mode refuses it with 400
before any hook (the addon counts it under `connect`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mitmproxy import http

MISDIRECTED = 421


def _ascii_host(host: str) -> str:
    """A host name as it goes on the wire: lower case, IDNA (punycode), brackets dropped."""
    host = host.strip("[]").lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


class Guard:
    """`refuse(request)` -> True when the request is for another host (the caller answers
    421); an absolute-form request naming the upstream is turned to origin form."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (_ascii_host(upstream_host), upstream_port)

    def refuse(self, request: http.Request) -> bool:
        if not request.authority or request.is_http2 or request.is_http3:
            return False
        # the bytes as they came (`.authority` decodes punycode, which the upstream's name is not)
        authority = request.data.authority.decode("ascii", "replace")
        host, _, port = authority.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()):  # no port: the scheme's
            host, port = authority, "443" if request.scheme == "https" else "80"
        if (_ascii_host(host), int(port)) != self.upstream:
            return True
        request.authority = ""  # the upstream itself: sent on in origin form
        return False
