"""From named log values to a RawRequest: the one table of what each field means.

Formats hand over `{canonical name: text}`. Canonical names are nginx variable names
(`remote_addr`, `time_local`, `request`, ...); `ALIASES` maps other spellings (nginx synonyms,
the keys JSON access logs commonly use) onto them. A name that maps to nothing is ignored: its
value never reaches a RawRequest, so it can never reach a sink (`$remote_user`, `$http_cookie`,
`$http_authorization`, `$upstream_addr`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sidecar.record import RawRequest
from sidecar.reject import BAD_FIELD, BAD_IP, BAD_TIMESTAMP, Rejected

TIME_VARS = ("time_local", "time_iso8601", "msec", "time")

CANONICAL = (
    "remote_addr",
    "http_x_forwarded_for",
    "http_forwarded",
    "http_x_real_ip",
    *TIME_VARS,
    "request",
    "request_method",
    "request_uri",
    "uri",
    "args",
    "server_protocol",
    "status",
    "body_bytes_sent",
    "request_time",
    "request_time_msec",
    "http_referer",
    "http_user_agent",
    "host",
)

ALIASES: dict[str, str] = {name: name for name in CANONICAL} | {
    # nginx synonyms
    "realip_remote_addr": "remote_addr",
    "binary_remote_addr": "",  # raw bytes: never read
    "bytes_sent": "body_bytes_sent",
    "document_uri": "uri",
    "query_string": "args",
    "http_host": "host",
    "server_name": "host",
    # common JSON access-log keys (Matomo's nginx_json, ELK conventions, ...)
    "ip": "remote_addr",
    "client_ip": "remote_addr",
    "clientip": "remote_addr",
    "remote_ip": "remote_addr",
    "timestamp": "time",
    "@timestamp": "time",
    "date": "time",
    "ts": "time",
    "method": "request_method",
    "path": "request_uri",
    "url": "request_uri",
    "query": "args",
    "protocol": "server_protocol",
    "bytes": "body_bytes_sent",
    "length": "body_bytes_sent",
    "size": "body_bytes_sent",
    "body_bytes": "body_bytes_sent",
    "response_time": "request_time",
    "duration": "request_time",
    "generation_time_milli": "request_time_msec",
    "referer": "http_referer",
    "referrer": "http_referer",
    "user_agent": "http_user_agent",
    "agent": "http_user_agent",
    "ua": "http_user_agent",
    "vhost": "host",
    "x_forwarded_for": "http_x_forwarded_for",
    "forwarded_for": "http_x_forwarded_for",
    "xff": "http_x_forwarded_for",
    "forwarded": "http_forwarded",
    "x_real_ip": "http_x_real_ip",
    "real_ip": "http_x_real_ip",
}


def canonical(name: str) -> str | None:
    """The canonical name of a variable or JSON key, or None when it is not read."""
    return ALIASES.get(name) or ALIASES.get(name.lower().replace("-", "_")) or None


def _none_if_dash(value: str | None) -> str | None:
    return None if value is None or value == "" or value == "-" else value


def split_target(target: str) -> tuple[str | None, str | None, str | None]:
    """A request target -> (host from an absolute URI, path, query)."""
    host = None
    if target[:1] != "/":
        scheme, sep, rest = target.partition("://")
        if sep and scheme.isalpha():
            authority, slash, rest = rest.partition("/")
            host = authority.rpartition("@")[2].lower() or None
            target = slash + rest
        elif target != "*":
            return None, None, None
    path, _, query = target.partition("?")
    return host, path.partition("#")[0] or "/", query.partition("#")[0] or None


def split_request(
    request: str,
) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    """`GET /a?b HTTP/1.1` -> (method, host, path, query, protocol); Nones for a garbled line."""
    parts = request.split(" ")
    if len(parts) == 3:
        method, target, protocol = parts
        if not protocol.startswith("HTTP/"):
            return None, None, None, None, None
    elif len(parts) == 2:  # HTTP/0.9
        method, target = parts
        protocol = None
    else:
        return None, None, None, None, None
    if not (method.isascii() and method.isalpha() and method.isupper() and len(method) <= 16):
        return None, None, None, None, None
    host, path, query = split_target(target)
    if path is None:
        return None, None, None, None, None
    return method, host, path, query, protocol


def _int(value: str | None, default: int | None) -> int | None:
    if value is None or value == "-" or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise Rejected(BAD_FIELD) from None


def _float(value: str | None) -> float | None:
    if value is None or value == "-" or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise Rejected(BAD_FIELD) from None
    if number != number or number < 0 or number == float("inf"):
        raise Rejected(BAD_FIELD)
    return number


def _host(value: str | None) -> str | None:
    value = _none_if_dash(value)
    if value is None:
        return None
    if value.startswith("["):
        return value[: value.find("]") + 1].lower() if "]" in value else None
    return value.partition(":")[0].rstrip(".").lower() or None


def make_builder(
    read_ts: Mapping[str, Callable[[str], str]],
) -> Callable[[Mapping[str, str]], RawRequest]:
    """A function from `{canonical: text}` to RawRequest; `read_ts` reads each time variable."""
    readers = tuple((name, read_ts[name]) for name in TIME_VARS if name in read_ts)

    def build(v: Mapping[str, str]) -> RawRequest:
        remote = v.get("remote_addr")
        if not remote:
            raise Rejected(BAD_IP)
        for name, read in readers:
            text = v.get(name)
            if text is not None:
                try:
                    ts = read(text)
                except (ValueError, KeyError, IndexError, OverflowError):
                    raise Rejected(BAD_TIMESTAMP) from None
                break
        else:
            raise Rejected(BAD_TIMESTAMP)
        host = None
        request = v.get("request")
        if request is not None:
            method, host, path, query, protocol = split_request(request)
        else:
            method = _none_if_dash(v.get("request_method"))
            protocol = _none_if_dash(v.get("server_protocol"))
            target = v.get("request_uri")
            if target is not None and target != "-":
                host, path, query = split_target(target)
            else:
                path = _none_if_dash(v.get("uri"))
                query = None
            args = v.get("args")
            if args is not None and args != "-":
                query = args or None
        status = _int(v.get("status"), None)
        if status is None or not 0 <= status <= 999:
            raise Rejected(BAD_FIELD)
        request_time = _float(v.get("request_time"))
        if request_time is None and "request_time_msec" in v:
            msec = _float(v.get("request_time_msec"))
            request_time = None if msec is None else msec / 1000.0
        return RawRequest(
            remote_addr=remote,
            ts=ts,
            method=method,
            path=path,
            query=query,
            protocol=protocol,
            status=status,
            bytes=_int(v.get("body_bytes_sent"), 0),
            request_time=request_time,
            referrer=_none_if_dash(v.get("http_referer")),
            user_agent=_none_if_dash(v.get("http_user_agent")),
            host=_host(v.get("host")) or host,
            x_forwarded_for=_none_if_dash(v.get("http_x_forwarded_for")),
            forwarded=_none_if_dash(v.get("http_forwarded")),
            x_real_ip=_none_if_dash(v.get("http_x_real_ip")),
        )

    return build
