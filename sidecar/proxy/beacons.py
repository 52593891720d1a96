"""Rule: how the proxy answers a player beacon itself, as nginx/server/beacon.conf does.

    GET  /beacon?event=play&...        204 (the query is the payload)
    POST /beacon, body <= 8 KiB        204 (the JSON or form body is the payload too)
    POST with a body over 8 KiB        413, and the connection is closed
    any other method                   405, with `Allow: GET, POST`

The answer is made when the request's headers arrive (so a beacon never opens a connection to
the origin, and a too-large body is refused on its Content-Length alone). A body of unknown
length is read up to `proxy.stream_min_bytes` at most (mitmproxy's buffer); over 8 KiB it is
refused with 413 all the same. The payload is cut to `[beacon] allow` by the privacy stage
(privacy.beacon), as for the beacons nginx logs; nothing else of the body is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.privacy.beacon import MAX_PAYLOAD_BYTES

if TYPE_CHECKING:
    from mitmproxy import http

NO_CONTENT, METHOD_NOT_ALLOWED, TOO_LARGE = 204, 405, 413
#: the result each answer is counted under (metrics.PROXY_RESULTS)
RESULTS = {NO_CONTENT: "beacon", METHOD_NOT_ALLOWED: "beacon_method", TOO_LARGE: "beacon_too_large"}


def declared_length(request: http.Request) -> int | None:
    """The request's Content-Length, None when absent or not one number."""
    value = request.headers.get("content-length")
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


def status_for(request: http.Request, max_bytes: int = MAX_PAYLOAD_BYTES) -> int:
    """The status a beacon request is answered with, from its method and headers."""
    if request.method == "GET":
        return NO_CONTENT
    if request.method != "POST":
        return METHOD_NOT_ALLOWED
    length = declared_length(request)
    return TOO_LARGE if length is not None and length > max_bytes else NO_CONTENT


def body_text(request: http.Request, max_bytes: int = MAX_PAYLOAD_BYTES) -> str | None:
    """A beacon's body as text, for the privacy stage to cut: None when there is none, it is
    over `max_bytes`, or it is content-encoded (never inflated: a small gzip body can hold
    gigabytes)."""
    raw = request.raw_content
    if not raw or len(raw) > max_bytes or "content-encoding" in request.headers:
        return None
    return raw.decode("utf-8", "replace")
