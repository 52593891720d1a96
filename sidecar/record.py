"""The two records of the way of a log line, and the clean schema with its version.

`RawRequest` is what a parser read, full client IP included. It can only go into the privacy
stage: it has no readable repr, cannot be pickled, copied or serialized (orjson and json refuse
it), and `CleanRecord.__init__` never takes one. Sinks, reports, metrics and the rewrite writer
see `CleanRecord` only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import orjson

SCHEMA_VERSION = 1

#: the closed vocabularies of the schema: HTTP methods (the IANA registry, plus PURGE, which
#: CDNs and caches use) and protocols; anything else is null
METHODS = frozenset({
    "ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "CONNECT", "COPY", "DELETE", "GET",
    "HEAD", "LABEL", "LINK", "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL",
    "MKREDIRECTREF", "MKWORKSPACE", "MOVE", "OPTIONS", "ORDERPATCH", "PATCH", "POST", "PRI",
    "PROPFIND", "PROPPATCH", "PURGE", "PUT", "QUERY", "REBIND", "REPORT", "SEARCH", "TRACE",
    "UNBIND", "UNCHECKOUT", "UNLINK", "UNLOCK", "UPDATE", "UPDATEREDIRECTREF", "VERSION-CONTROL",
})  # fmt: skip
PROTOCOLS = frozenset({"HTTP/0.9", "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0", "HTTP/3",
                       "HTTP/3.0"})  # fmt: skip


class RawRequest:
    """One parsed access-log line, before the privacy stage. Never leaves the process.

    Every attribute is a str or None except `status` (int), `bytes` (int) and `request_time`
    (float or None). `ts` is already normalized to RFC 3339 UTC by the parser. `body` is the
    request body as the log held it (`$request_body`, the log's escapes undone), None when the
    log has none: the privacy stage reads a beacon's allowlisted keys out of it and never
    keeps it as it is (privacy/beacon.py).
    """

    __slots__ = (
        "body",
        "bytes",
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
        body: str | None = None,
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
        self.body = body

    def __repr__(self) -> str:
        return "<RawRequest (unscrubbed; contents withheld)>"

    __str__ = __repr__

    def __reduce__(self):  # pickle, copy, multiprocessing
        raise TypeError("RawRequest holds a full client IP and cannot be pickled or copied")

    def __getstate__(self):
        raise TypeError("RawRequest holds a full client IP and cannot be serialized")

    __hash__ = None  # type: ignore[assignment]


class CleanRecord(dict):
    """One scrubbed request: the only record a sink, report or serializer ever sees.

    A dict with exactly the keys of `FIELDS`, in that order (schema version `SCHEMA_VERSION`,
    documented in docs/schema.md): a dict subclass because orjson writes it at dict speed,
    2.5x faster than a dataclass. Built by the privacy stage (or `make`); treat it as immutable.
    """

    __slots__ = ()

    @classmethod
    def make(cls, **fields: object) -> CleanRecord:
        """A record from keyword fields; every field of the schema must be given, no other."""
        missing = [f for f in FIELDS if f not in fields]
        unknown = [f for f in fields if f not in FIELDS]
        if missing or unknown:
            raise TypeError(f"CleanRecord fields: missing {missing}, unknown {unknown}")
        return cls((f, fields[f]) for f in FIELDS)

    def __repr__(self) -> str:
        return f"CleanRecord({dict.__repr__(self)})"


class Field(NamedTuple):
    """One field of the clean schema: its JSON type, its meaning, and what its content may be.

    `content` names where a value may come from, and the privacy stage's record factory
    (privacy/clean.py) applies the matching check to every value, so that no field can skip it:
    `text` (through the one free-text scrubber: IP literals in every notation struck, invisible
    characters removed, bounded length), `host` and `referrer_host` (the host rule), a closed
    vocabulary (`method`, `protocol`, `country`, `family`, `device`), `address` (a struck
    address from the masker), `time` (written by sidecar/timestamps.py), `number`.
    """

    type: str
    meaning: str
    content: str


#: the clean schema, in order: name -> Field, documented again in docs/schema.md
SCHEMA: dict[str, Field] = {
    "ts": Field("string", "request time, RFC 3339 UTC with milliseconds", "time"),
    "client_ip": Field("string", "client address with its tail struck (IPv4 /24, IPv6 /48)",
                       "address"),
    "country": Field("string|null", "ISO 3166-1 alpha-2 country of the full address", "country"),
    "method": Field("string|null", "HTTP method (registered methods only)", "method"),
    "host": Field("string|null", "requested host (virtual host), IP literals struck", "host"),
    "path": Field("string|null", "request path without query or ;params, IP literals struck",
                  "text"),
    "query": Field("string|null", "allowlisted query parameters only", "text"),
    "protocol": Field("string|null", "HTTP protocol: HTTP/0.9 to HTTP/3", "protocol"),
    "status": Field("int", "HTTP status", "number"),
    "bytes": Field("int", "response body bytes", "number"),
    "request_time": Field("float|null", "request processing time in seconds", "number"),
    "referrer_host": Field("string|null", "referrer host (non-HTTP: scheme://host)",
                           "referrer_host"),
    "referrer_path": Field("string|null", "referrer path, first-party referrers only", "text"),
    "ua_browser": Field("string|null", "browser family", "family"),
    "ua_os": Field("string|null", "operating system family", "family"),
    "ua_device": Field("string|null",
                       "device class: desktop, mobile, tablet, tv, console, bot, other", "device"),
    "user_agent": Field("string|null", "the whole user agent, only with useragent.mode = keep",
                        "text"),
}  # fmt: skip
FIELDS: tuple[str, ...] = tuple(SCHEMA)


def to_json(record: CleanRecord) -> bytes:
    """One record as a JSON line (with its newline): the `jsonl` encoding of the schema."""
    if type(record) is not CleanRecord:
        raise TypeError(f"only a CleanRecord can be encoded, not {type(record).__name__}")
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


class CleanBatch:
    """Clean records encoded as JSON lines (`to_json`), and how many there are.

    The form in which records leave the pipeline's worker processes, wait in a sink's batch and
    in the disk spool, and reach a store: compact (about 350 bytes a record, no Python object
    each), and written once. Made from CleanRecords (`of`), from the pipeline's own jsonl
    output, or from a spool file that held one.
    """

    __slots__ = ("count", "data", "summary")

    def __init__(self, data: bytes, count: int, summary: list[tuple] | None = None) -> None:
        self.data = data
        self.count = count
        #: the batch's daily rollup rows, when the pipeline computed them (in its workers)
        self.summary = summary

    @classmethod
    def of(cls, records: Sequence[CleanRecord]) -> CleanBatch:
        return cls(b"".join(to_json(r) for r in records), len(records))

    def records(self) -> list[CleanRecord]:
        return [CleanRecord(orjson.loads(line)) for line in self.data.splitlines()]

    def __iter__(self) -> Iterator[CleanRecord]:
        return iter(self.records())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CleanBatch):
            return self.count == other.count and self.data == other.data
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"<CleanBatch {self.count} records, {len(self.data)} bytes>"


def as_batch(batch: CleanBatch | Sequence[CleanRecord]) -> CleanBatch:
    """A CleanBatch from a batch or a sequence of CleanRecords."""
    return batch if isinstance(batch, CleanBatch) else CleanBatch.of(batch)
