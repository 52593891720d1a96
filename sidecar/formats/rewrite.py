"""Write a CleanRecord back in its input's own format, so GoAccess or Matomo's importer can read
the scrubbed log unchanged.

Each variable is written from the clean record only: the client address (and every forwarded
chain) becomes the struck client IP, times become UTC (`+0000`), referrers become
`https://host/` (first-party: `https://host/path`), the user agent becomes `Browser (OS; device)`
(`keep` mode: the original). Variables the record does not keep (`$remote_user`, cookies,
upstream addresses, anything unknown) are written as `-`; unknown JSON keys are left out.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from sidecar.formats.base import LineFormat, Literal, Variable
from sidecar.record import CleanRecord
from sidecar.timestamps import to_iso8601, to_msec, to_time_local


def _target(r: CleanRecord) -> str | None:
    if r["path"] is None:
        return None
    return r["path"] + ("?" + r["query"] if r["query"] else "")


def _request(r: CleanRecord) -> str | None:
    target = _target(r)
    if r["method"] is None or target is None:
        return None
    return f"{r['method']} {target} {r['protocol']}" if r["protocol"] else f"{r['method']} {target}"


def _referrer(r: CleanRecord) -> str | None:
    host = r["referrer_host"]
    if host is None:
        return None
    if "://" in host:  # a non-HTTP referrer keeps its own scheme
        return host + "/"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}{r['referrer_path'] or '/'}"


def _user_agent(r: CleanRecord) -> str | None:
    if r["user_agent"] is not None:
        return r["user_agent"]
    if r["ua_browser"] is None:
        return None
    return f"{r['ua_browser']} ({r['ua_os']}; {r['ua_device']})"


def _forwarded(r: CleanRecord) -> str:
    ip = r["client_ip"]
    return f'for="[{ip}]"' if ":" in ip else f"for={ip}"


def _request_time(r: CleanRecord) -> str | None:
    return None if r["request_time"] is None else f"{r['request_time']:.3f}"


def _request_time_msec(r: CleanRecord) -> str | None:
    return None if r["request_time"] is None else f"{r['request_time'] * 1000:.3f}"


WRITERS: dict[str, Callable[[CleanRecord], str | None]] = {
    "remote_addr": lambda r: r["client_ip"],
    "http_x_forwarded_for": lambda r: r["client_ip"],
    "http_x_real_ip": lambda r: r["client_ip"],
    "http_forwarded": _forwarded,
    "time_local": lambda r: to_time_local(r["ts"]),
    "time_iso8601": lambda r: to_iso8601(r["ts"]),
    "msec": lambda r: to_msec(r["ts"]),
    "time": lambda r: r["ts"],
    "request": _request,
    "request_method": lambda r: r["method"],
    "request_uri": _target,
    "uri": lambda r: r["path"],
    "args": lambda r: r["query"],
    "server_protocol": lambda r: r["protocol"],
    "status": lambda r: str(r["status"]),
    "body_bytes_sent": lambda r: str(r["bytes"]),
    "request_time": _request_time,
    "request_time_msec": _request_time_msec,
    "http_referer": _referrer,
    "http_user_agent": _user_agent,
    "host": lambda r: r["host"],
}

_JSON_DEFAULT = frozenset({"remote_addr", "time_iso8601", "request", "status", "body_bytes_sent",
                           "request_time", "http_referer", "http_user_agent", "host"})  # fmt: skip
_TEXT_ESCAPES = {i: f"\\x{i:02X}" for i in (*range(0x20), 0x22, 0x7F)}
_NUMBERS = {"status": int, "body_bytes_sent": int, "request_time": float,
            "request_time_msec": float}  # fmt: skip


class Rewriter:
    """`line(record)` -> the record as one line of `fmt` (no newline)."""

    def __init__(self, fmt: LineFormat) -> None:
        self.fmt = fmt
        self.json = fmt.escape == "json" and not any(isinstance(s, Literal) for s in fmt.segments)
        segments = fmt.segments
        if self.json and not segments:  # keys unknown: write nginx's own variable names
            segments = tuple(Variable(name, name) for name in WRITERS if name in _JSON_DEFAULT)
        plan: list[str | Callable[[CleanRecord], str | None]] = []
        for seg in segments:
            if isinstance(seg, Literal):
                plan.append(seg.text)
            elif seg.canonical in WRITERS:
                plan.append(WRITERS[seg.canonical])
            elif not self.json:
                plan.append("-")
        self._plan = plan
        self._keys = [
            (s.name, s.canonical, WRITERS[s.canonical])
            for s in segments
            if not isinstance(s, Literal) and s.canonical in WRITERS
        ]

    def line(self, record: CleanRecord) -> str:
        if self.json:
            return self._json_line(record)
        out = []
        for part in self._plan:
            if isinstance(part, str):
                out.append(part)
            else:
                value = part(record)
                out.append("-" if value is None or value == "" else value.translate(_TEXT_ESCAPES))
        return "".join(out)

    def _json_line(self, record: CleanRecord) -> str:
        obj: dict[str, object] = {}
        for key, name, write in self._keys:
            value = write(record)
            if value is not None and name in _NUMBERS:
                obj[key] = _NUMBERS[name](value)
            else:
                obj[key] = value
        return orjson.dumps(obj).decode()
