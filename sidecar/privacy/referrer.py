"""Referrer rule: first-party pages keep their path, other sites shrink to their host.

- A host listed in `referrer.first_party_hosts` (or a subdomain of one) keeps the path, without
  query, fragment or `;params`.
- Any other http(s) referrer becomes its host only (`third_party = "drop"`: nothing at all).
- Userinfo, ports, queries (search terms) and fragments never survive.
- A non-HTTP referrer (`android-app://com.example.app/`) keeps scheme and host.
- Anything without a host (`-`, `about:blank`, `data:`) is dropped.
- The URL is split as the WHATWG URL standard (what browsers send) splits it, never by a
  stricter parser that a browser would disagree with: for http(s) a `\\` is a `/`
  (`https://evil.net\\@example.com/` is evil.net's), any number of slashes may follow the scheme,
  tabs and newlines are ignored, `//host/x` is a scheme-relative http(s) URL.
- The host goes through the host rule (privacy.host: IPv4 in every notation a browser reads, IPv6,
  IP literals in labels struck); IP literals left in a kept path are struck (privacy.literals).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from sidecar.cache import bounded

_NOT_HOST = frozenset('<>"\\/?#%@{}|^`[]')
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31}):")
_SPECIAL = frozenset({"http", "https", "ws", "wss", "ftp"})  # the standard's special schemes
_IGNORED = str.maketrans("", "", "\t\n\r")
_C0_AND_SPACE = "".join(map(chr, range(0x21)))


def plain_host(host: str) -> str | None:
    """A host lower-cased, without brackets or a trailing dot, or None when it holds a character
    no host may hold (the default when no host rule is given)."""
    if host.startswith("["):
        host = host[1:-1] if host.endswith("]") else ""
    host = host.rstrip(".").lower()
    if not host or any(c in _NOT_HOST or c.isspace() or not c.isprintable() for c in host):
        return None
    return host


class Referrer:
    """Rule: `reduce(referrer)` -> (`referrer_host`, `referrer_path`), cached per referrer."""

    def __init__(
        self,
        first_party_hosts: Sequence[str] = (),
        third_party: str = "host",
        cache_entries: int = 65536,
        strike: Callable[[str], str] = str,
        host: Callable[[str], str | None] = plain_host,
    ) -> None:
        self.strike = strike  # privacy.literals: IP literals in the kept path
        self.host = host  # privacy.host: the host as a browser reads it, addresses struck
        self.first_party = tuple(h.lower().rstrip(".") for h in first_party_hosts)
        self.keep_third_party = third_party == "host"
        self.reduce = bounded(self._struck, cache_entries)

    def is_first_party(self, host: str) -> bool:
        return any(host == fp or host.endswith("." + fp) for fp in self.first_party)

    def _struck(self, referrer: str) -> tuple[str | None, str | None]:
        host, path = self._reduce(referrer)
        return host, (self.strike(path) if path else path)

    def _reduce(self, referrer: str) -> tuple[str | None, str | None]:
        ref = referrer.strip(_C0_AND_SPACE).translate(_IGNORED)
        if not ref or ref == "-":
            return None, None
        m = _SCHEME.match(ref)
        scheme, rest = (m.group(1).lower(), ref[m.end() :]) if m else ("", ref)
        if scheme in _SPECIAL:
            rest = rest.replace("\\", "/").lstrip("/")
        elif scheme:
            if not rest.startswith("//"):
                return None, None  # about:blank, data:..., mailto:...
            rest = rest[2:]
        elif rest.startswith(("//", "\\\\", "/\\", "\\/")):
            scheme, rest = "https", rest.replace("\\", "/").lstrip("/")  # scheme-relative
        elif "/" in rest.partition("?")[0] or "\\" in rest:
            return None, None  # a bare path
        else:
            scheme = "http"  # `www.example.com` (no scheme)
        end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
        authority, tail = rest[:end], rest[end:]
        host_text = authority.rpartition("@")[2]  # userinfo never survives
        if host_text.startswith("["):
            close = host_text.find("]")
            host_text = host_text[: close + 1] if close > 0 else ""
        else:
            host_text = host_text.partition(":")[0]  # nor the port
        host = self.host(host_text) if host_text else None
        if host is None:
            return None, None
        if host.startswith("["):
            host = host[1:-1]
        if scheme not in ("http", "https"):
            return (f"{scheme}://{host}" if self.keep_third_party else None), None
        if self.first_party and self.is_first_party(host):
            path = tail.partition("?")[0].partition("#")[0].partition(";")[0] or "/"
            return host, path
        return (host if self.keep_third_party else None), None
