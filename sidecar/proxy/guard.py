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


class Guard:
    """`refuse(request)` -> True when the request is for another host (the caller answers
    421); an absolute-form request naming the upstream is turned to origin form."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host.lower().strip("[]"), upstream_port)

    def refuse(self, request: http.Request) -> bool:
        if not request.authority or request.is_http2 or request.is_http3:
            return False
        host, _, port = request.authority.rpartition(":")
        if not host or not port.isdigit():  # `http://origin/` names no port: the scheme's
            host, port = request.authority, "443" if request.scheme == "https" else "80"
        if (host.lower().strip("[]"), int(port)) != self.upstream:
            return True
        request.authority = ""  # the upstream itself: sent on in origin form
        return False
