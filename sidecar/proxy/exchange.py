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


#: the request headers a record reads, by their wire name (lower case), to their slot in `begin`
_READ = {b"referer": 0, b"user-agent": 1, b"host": 2, b"x-forwarded-for": 3, b"forwarded": 4,
         b"x-real-ip": 5}  # fmt: skip


def begin(flow: http.HTTPFlow, peer: str) -> RawRequest:
    """The raw request of a flow whose request headers just arrived (nothing rewritten yet).

    One pass over the header fields (decoded as mitmproxy decodes them). A repeated Referer,
    User-Agent or Host reads its first value, as nginx's `$http_*` and `$host` do; repeated
    forwarding headers are joined with "," (X-Real-IP: its last), as the log parsers see them."""
    req = flow.request
    found: list[list[str]] = [[], [], [], [], [], []]
    read = _READ
    for name, value in req.headers.fields:
        slot = read.get(name.lower())
        if slot is not None:
            found[slot].append(value.decode("utf-8", "surrogateescape"))
    referer, ua, host, xff, fwd, real_ip = found
    _, path, query = split_target(req.path)
    return RawRequest(
        peer,
        from_epoch(req.timestamp_start),
        method=req.method,
        path=path,
        query=query,
        protocol=req.http_version,
        referrer=referer[0] if referer else None,
        user_agent=ua[0] if ua else None,
        host=host_of(req.host_header if req.is_http2 else host[0] if host else None),
        x_forwarded_for=",".join(xff) if xff else None,
        forwarded=",".join(fwd) if fwd else None,
        x_real_ip=real_ip[-1] if real_ip else None,
    )


def finish(raw: RawRequest, status: int, body_bytes: int, end: float, start: float) -> RawRequest:
    """The raw request with what the answer said: its status, body bytes, seconds taken."""
    raw.status = status
    raw.bytes = body_bytes
    raw.request_time = round(max(end - start, 0.0), 6)
    return raw
