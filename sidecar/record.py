"""The two records of the way of a log line, and the clean schema with its version.

`RawRequest` is what a parser read, full client IP included. It can only go into the privacy
stage: it has no readable repr, cannot be pickled, copied or serialized (orjson and json refuse
it), and `CleanRecord.__init__` never takes one. Sinks, reports, metrics and the rewrite writer
see `CleanRecord` only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import orjson

SCHEMA_VERSION = 1


class RawRequest:
    """One parsed access-log line, before the privacy stage. Never leaves the process.

    Every attribute is a str or None except `status` (int), `bytes` (int) and `request_time`
    (float or None). `ts` is already normalized to RFC 3339 UTC by the parser.
    """

    __slots__ = (
        "bytes",
        "client_addr",
        "forwarded",
        "host",
        "method",
        "path",
        "protocol",
        "query",
        "referrer",
        "remote_addr",
        "request_time",
        "status",
        "ts",
        "user_agent",
        "x_forwarded_for",
        "x_real_ip",
    )

    def __init__(
        self,
        remote_addr: str,
        ts: str,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        protocol: str | None = None,
        status: int = 0,
        bytes: int = 0,
        request_time: float | None = None,
        referrer: str | None = None,
        user_agent: str | None = None,
        host: str | None = None,
        x_forwarded_for: str | None = None,
        forwarded: str | None = None,
        x_real_ip: str | None = None,
    ) -> None:
        self.remote_addr = remote_addr
        self.ts = ts
        self.method = method
        self.path = path
        self.query = query
        self.protocol = protocol
        self.status = status
        self.bytes = bytes
        self.request_time = request_time
        self.referrer = referrer
        self.user_agent = user_agent
        self.host = host
        self.x_forwarded_for = x_forwarded_for
        self.forwarded = forwarded
        self.x_real_ip = x_real_ip
        self.client_addr = None  # the resolved full client address, set by privacy.ip

    def __repr__(self) -> str:
        return "<RawRequest (unscrubbed; contents withheld)>"

    __str__ = __repr__

    def __reduce__(self):  # pickle, copy, multiprocessing
        raise TypeError("RawRequest holds a full client IP and cannot be pickled or copied")

    def __getstate__(self):
        raise TypeError("RawRequest holds a full client IP and cannot be serialized")

    __hash__ = None  # type: ignore[assignment]


@dataclass(slots=True, eq=True)
class CleanRecord:
    """One scrubbed request: the only record a sink, report or serializer ever sees.

    Schema version `SCHEMA_VERSION`; documented field by field in docs/schema.md.
    Treat it as immutable (not frozen only because a frozen slots dataclass costs ~3 us to build).
    """

    ts: str
    client_ip: str
    country: str | None
    method: str | None
    host: str | None
    path: str | None
    query: str | None
    protocol: str | None
    status: int
    bytes: int
    request_time: float | None
    referrer_host: str | None
    referrer_path: str | None
    ua_browser: str | None
    ua_os: str | None
    ua_device: str | None
    user_agent: str | None = None


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CleanRecord))


def to_json(record: CleanRecord) -> bytes:
    """One record as a JSON line (with its newline): the `jsonl` encoding of the schema."""
    if type(record) is not CleanRecord:
        raise TypeError(f"only a CleanRecord can be encoded, not {type(record).__name__}")
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
