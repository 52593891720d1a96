"""Request targets and Host values -> the host, path and query a record keeps.

Shared by the log parsers (sidecar.formats, which read `$request`, `$request_uri` and `$host`)
and the proxy (which reads a flow's request target and Host header), so that a request reads
the same whichever way it arrived. It sits at the top level because the proxy may not import
the log parsers. Parsing only: what the host, path and query may keep is the privacy stage's.
"""

from __future__ import annotations


def split_target(target: str) -> tuple[str | None, str | None, str | None]:
    """A request target -> (host from an absolute URI, path, query)."""
    host = None
    if target[:1] != "/":
        scheme, sep, rest = target.partition("://")
        if sep and scheme.isalpha():
            end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
            authority, rest = rest[:end], rest[end:]
            host = host_of(authority.rpartition("@")[2])  # no userinfo, no port
            target = rest if rest.startswith("/") else "/" + rest
        elif target != "*":
            return None, None, None
    path, _, query = target.partition("?")
    return host, path.partition("#")[0] or "/", query.partition("#")[0] or None


def host_of(value: str | None) -> str | None:
    """A Host value without its port, lower-cased: `[2001:db8::1]:8080` -> `[2001:db8::1]`.

    Two colons or more without brackets make an IPv6 literal (`2001:db8::1`), kept whole: cut
    at its first colon it would pass for a host name (`2001`), and the privacy stage strikes
    addresses it can see whole only. None, empty and `-` (a log's "no value") give None."""
    if value is None or value == "" or value == "-":
        return None
    if value.startswith("["):
        return value[: value.find("]") + 1].lower() if "]" in value else None
    if value.count(":") >= 2:
        return value.lower()
    return value.partition(":")[0].rstrip(".").lower() or None
