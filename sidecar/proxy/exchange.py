"""One exchange through the proxy -> the raw request the privacy stage takes.

A sibling of the log parsers (sidecar.formats): where they read a log line's fields, this reads
a mitmproxy flow's. `begin` runs when the request's headers arrive, before the header rule
rewrites them for the origin, so the forwarding headers the stage reads to decide the client
(`X-Forwarded-For`, `Forwarded`, `X-Real-IP`) are the ones the client sent: the stage then
decides the same client the origin was told about, truncated. `finish` adds what only the
response knows: status, body bytes sent, and the time from the request's first byte.

The RawRequest (full client address included) lives on the flow's metadata until the response
hook scrubs it; it cannot be pickled, copied or serialized (sidecar.record), so a flow holding
one cannot be saved by mistake either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar.record import RawRequest
from sidecar.targets import host_of, split_target
from sidecar.timestamps import from_epoch

if TYPE_CHECKING:
    from mitmproxy import http


def peer_of(flow: http.HTTPFlow) -> str:
    """The connecting peer's address text (an IPv4-mapped one as mitmproxy gives it)."""
    peer = flow.client_conn.peername
    return str(peer[0]) if peer else ""


def _joined(values: list[str]) -> str | None:
    return ",".join(values) if values else None


def _first(headers: http.Headers, name: str) -> str | None:
    """A header's first value, as nginx's `$http_*` and `$host` read a repeated one (mitmproxy's
    `headers[name]` would join them all)."""
    values = headers.get_all(name)
    return values[0] if values else None


def begin(flow: http.HTTPFlow, peer: str) -> RawRequest:
    """The raw request of a flow whose request headers just arrived (nothing rewritten yet)."""
    req = flow.request
    headers = req.headers
    _, path, query = split_target(req.path)
    real_ip = headers.get_all("x-real-ip")
    return RawRequest(
        peer,
        from_epoch(req.timestamp_start),
        method=req.method,
        path=path,
        query=query,
        protocol=req.http_version,
        referrer=_first(headers, "referer"),
        user_agent=_first(headers, "user-agent"),
        host=host_of(_first(headers, "host") if not req.is_http2 else req.host_header),
        x_forwarded_for=_joined(headers.get_all("x-forwarded-for")),
        forwarded=_joined(headers.get_all("forwarded")),
        x_real_ip=real_ip[-1] if real_ip else None,
    )


def finish(raw: RawRequest, status: int, body_bytes: int, end: float, start: float) -> RawRequest:
    """The raw request with what the answer said: its status, body bytes, seconds taken."""
    raw.status = status
    raw.bytes = body_bytes
    raw.request_time = round(max(end - start, 0.0), 6)
    return raw
