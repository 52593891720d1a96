"""From named log values to a RawRequest: the one table of what each field means.

Formats hand over `{canonical name: text}`. Canonical names are nginx variable names
(`remote_addr`, `time_local`, `request`, ...); `ALIASES` maps other spellings (nginx synonyms,
the keys JSON access logs commonly use) onto them. A name that maps to nothing is ignored: its
value never reaches a RawRequest, so it can never reach a sink (`$remote_user`, `$http_cookie`,
`$http_authorization`, `$upstream_addr`, `$upstream_cache_status`, ...).

`$request_body` is read (as RawRequest.body) so that the privacy stage can take a beacon's
allowlisted keys out of it; the stage never keeps it as it is. A text format's escapes are
undone here, where the format is known (`body_decoder`): nginx's default escaping writes `"`,
`\\`, controls and every byte from 0x7F as `\\xHH` (nginx 1.22: `{\\x22event\\x22:...}`,
`\\xC3\\xA9` for `é`); a JSON format's values are decoded by the JSON parser itself.

Request targets and Host values are read by `sidecar.targets`, which the proxy shares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import orjson

from sidecar.record import RawRequest
from sidecar.reject import BAD_FIELD, BAD_IP, BAD_TIMESTAMP, FORMAT_MISMATCH, Rejected
from sidecar.targets import host_of, split_target

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
    "request_body",
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


_HEX_ESCAPE = re.compile(rb"\\x([0-9A-Fa-f]{2})")


def _hex_byte(m: re.Match[bytes]) -> bytes:
    return bytes((int(m.group(1), 16),))


def unescape_default(text: str) -> str:
    """A value as nginx's default escaping wrote it, unescaped: `\\xHH` -> that byte, the bytes
    read as UTF-8 (an invalid sequence becomes U+FFFD). Linear in the length of the text."""
    if "\\x" not in text:
        return text
    raw = text.encode("utf-8", "surrogatepass")
    return _HEX_ESCAPE.sub(_hex_byte, raw).decode("utf-8", "replace")


def unescape_json(text: str) -> str:
    """A value as `escape=json` wrote it inside a text (not JSON-shaped) template, unescaped;
    a value that is no JSON string content stays as it is."""
    if "\\" not in text:
        return text
    try:
        value = orjson.loads(f'"{text}"')
    except ValueError:  # orjson.JSONDecodeError, also for a lone surrogate
        return text
    return value if isinstance(value, str) else text


def body_decoder(escape: str) -> Callable[[str], str]:
    """How a text format's `$request_body` is unescaped, by its log_format `escape=`."""
    return {"default": unescape_default, "json": unescape_json}.get(escape, str)


def _body(value: str | None, decode: Callable[[str], str]) -> str | None:
    value = _none_if_dash(value)
    return None if value is None else decode(value)


def _is_method(method: str) -> bool:
    """An HTTP method token as servers log it: upper-case ASCII letters, at most 16."""
    return method.isascii() and method.isalpha() and method.isupper() and len(method) <= 16


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
    if not _is_method(method):
        return None, None, None, None, None
    host, path, query = split_target(target)
    if path is None:
        return None, None, None, None, None
    return method, host, path, query, protocol


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _int(value: str | None, default: int) -> int:
    """A count as logs write it: ASCII digits only (int() would take "+5", "1_000", "-5")."""
    if value is None or value == "-" or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 18:  # stays below 2**63
        raise Rejected(BAD_FIELD)
    return int(value)


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


# what a timestamp reader may raise on a bad text: ValueError by contract (sidecar.timestamps);
# the others too, so that a reader given from outside cannot cost the run (OSError: errno 75)
_TS_ERRORS = (ValueError, LookupError, ArithmeticError, OSError)


def _read_time(g: Sequence[str | None], times: tuple) -> str:
    for i, read in times:
        text = g[i]
        if text is not None:
            try:
                return read(text)
            except _TS_ERRORS:
                raise Rejected(BAD_TIMESTAMP) from None
    raise Rejected(BAD_TIMESTAMP)


def _target_parts(g, i_method, i_proto, i_uri, i_path, i_args):
    """(method, host, path, query, protocol) from separate variables (no `$request`)."""
    host = None
    method = _none_if_dash(g[i_method]) if i_method is not None else None
    if method is not None and not _is_method(method):
        method = None
    protocol = _none_if_dash(g[i_proto]) if i_proto is not None else None
    target = g[i_uri] if i_uri is not None else None
    if target is not None and target != "-":
        host, path, query = split_target(target)
    else:
        path, query = (_none_if_dash(g[i_path]) if i_path is not None else None), None
    args = g[i_args] if i_args is not None else None
    if args is not None and args != "-":
        query = args or None
    return method, host, path, query, protocol


def make_builder(
    index: Mapping[str, int],
    read_ts: Mapping[str, Callable[[str], str]],
    decode_body: Callable[[str], str] = str,
) -> Callable[[Sequence[str | None]], RawRequest]:
    """A function from a sequence of values (regex groups, JSON values) to a RawRequest.

    `index` gives the position of each canonical name in the sequence; `read_ts` reads each
    time variable present; `decode_body` undoes the format's escaping of `$request_body`
    (`body_decoder`; JSON values arrive decoded). The function is generated for the names
    present, as dataclasses generates `__init__`: a format without `$http_x_forwarded_for` pays
    nothing for it. This is the hottest code of `sidecar pipe` (about a third of the time per
    line).
    """
    at = {name: index[name] for name in CANONICAL if name in index}
    times = tuple((at[name], read_ts[name]) for name in TIME_VARS if name in at)
    if "remote_addr" not in at or not times or "status" not in at:
        raise ValueError("a format needs remote_addr, a time and status")

    def value(name: str) -> str:
        return f"g[{at[name]}]" if name in at else "None"

    def optional(name: str) -> str:  # a value where "-" and "" mean nothing
        return f"_none_if_dash(g[{at[name]}])" if name in at else "None"

    if len(times) == 1:
        i, _ = times[0]
        read_time = [
            f"    try:\n        ts = _read_ts0(g[{i}])",
            "    except _TS_ERRORS:\n        raise Rejected(BAD_TIMESTAMP) from None",
        ]
    else:
        read_time = ["    ts = _read_time(g, _times)"]
    if "request" in at:
        request = [
            f"    request = g[{at['request']}]",
            "    if request is None:\n        raise Rejected(FORMAT_MISMATCH)",
            "    method, host, path, query, protocol = _split_request(request)",
        ]
    else:
        request = [
            "    method, host, path, query, protocol = _target_parts(g, "
            + ", ".join(
                str(at.get(n))
                for n in ("request_method", "server_protocol", "request_uri", "uri", "args")
            )
            + ")"
        ]
    if "request_time" in at:
        request_time = [f"    request_time = _float(g[{at['request_time']}])"]
        if "request_time_msec" in at:
            request_time.append(
                f"    if request_time is None and g[{at['request_time_msec']}] is not None:\n"
                f"        ms = _float(g[{at['request_time_msec']}])\n"
                "        request_time = None if ms is None else ms / 1000.0"
            )
    elif "request_time_msec" in at:
        request_time = [
            f"    ms = _float(g[{at['request_time_msec']}])",
            "    request_time = None if ms is None else ms / 1000.0",
        ]
    else:
        request_time = ["    request_time = None"]
    host = f"_host_of(g[{at['host']}]) or host" if "host" in at else "host"
    body = f"_body(g[{at['request_body']}], _decode_body)" if "request_body" in at else "None"
    source = "\n".join(
        [
            "def build(g):",
            f"    remote = g[{at['remote_addr']}]",
            "    if not remote:\n        raise Rejected(BAD_IP)",
            *read_time,
            *request,
            f"    status = g[{at['status']}]",
            "    if status is None or not (len(status) <= 3 and _digits(status)):",
            "        raise Rejected(BAD_FIELD)",
            "    status = int(status)",
            *request_time,
            "    return RawRequest(",
            "        remote, ts, method, path, query, protocol, status,",
            f"        _int({value('body_bytes_sent')}, 0), request_time,",
            f"        {optional('http_referer')}, {optional('http_user_agent')}, {host},",
            f"        {optional('http_x_forwarded_for')}, {optional('http_forwarded')},",
            f"        {optional('http_x_real_ip')},",
            f"        {body},",
            "    )",
        ]
    )
    namespace = {
        "RawRequest": RawRequest,
        "Rejected": Rejected,
        "BAD_IP": BAD_IP,
        "BAD_FIELD": BAD_FIELD,
        "BAD_TIMESTAMP": BAD_TIMESTAMP,
        "FORMAT_MISMATCH": FORMAT_MISMATCH,
        "_TS_ERRORS": _TS_ERRORS,
        "_read_ts0": times[0][1],
        "_read_time": _read_time,
        "_times": times,
        "_split_request": split_request,  # not cached: request lines rarely repeat (tokens)
        "_target_parts": _target_parts,
        "_float": _float,
        "_int": _int,
        "_host_of": host_of,
        "_none_if_dash": _none_if_dash,
        "_digits": _digits,
        "_body": _body,
        "_decode_body": decode_body,
    }
    exec(compile(source, "<sidecar.formats.fields.build>", "exec"), namespace)
    build = namespace["build"]
    build.source = source  # type: ignore[attr-defined]
    return build
