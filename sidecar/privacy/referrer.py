"""Referrer rule: first-party pages keep their path, other sites shrink to their host.

- A host listed in `referrer.first_party_hosts` (or a subdomain of one) keeps the path, without
  query, fragment or `;params`.
- Any other http(s) referrer becomes its host only (`third_party = "drop"`: nothing at all).
- Userinfo, ports, queries (search terms) and fragments never survive.
- A non-HTTP referrer (`android-app://com.example.app/`) keeps scheme and host.
- Anything without a host (`-`, `about:blank`, `data:`) is dropped.
- IP literals left in the kept host or path are struck (privacy.literals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from urllib.parse import urlsplit

_NOT_HOST = frozenset('<>"\\/?#%@{}|^`')


def _host_of(netloc: str) -> str | None:
    host = netloc.partition(";")[0].rpartition("@")[2]  # userinfo never survives
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    else:
        host = host.partition(":")[0]  # nor the port
    host = host.strip().rstrip(".").lower()
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
    ) -> None:
        self.strike = strike  # privacy.literals: IP literals in the kept host and path
        self.first_party = tuple(h.lower().rstrip(".") for h in first_party_hosts)
        self.keep_third_party = third_party == "host"
        self.reduce = (
            lru_cache(maxsize=cache_entries)(self._struck) if cache_entries else self._struck
        )

    def is_first_party(self, host: str) -> bool:
        return any(host == fp or host.endswith("." + fp) for fp in self.first_party)

    def _struck(self, referrer: str) -> tuple[str | None, str | None]:
        host, path = self._reduce(referrer)
        strike = self.strike
        return (strike(host) if host else host), (strike(path) if path else path)

    def _reduce(self, referrer: str) -> tuple[str | None, str | None]:
        ref = referrer.strip()
        if not ref or ref == "-":
            return None, None
        try:
            parts = urlsplit(ref)
        except ValueError:  # e.g. an unbalanced IPv6 bracket
            return None, None
        scheme = parts.scheme.lower()
        if not parts.netloc:
            if scheme or "/" in ref.partition("?")[0]:
                return None, None  # about:blank, data:..., a bare path
            parts = urlsplit("http://" + ref)  # `www.example.com` (no scheme)
            scheme = "http"
        host = _host_of(parts.netloc)
        if host is None:
            return None, None
        if scheme not in ("http", "https"):
            return (f"{scheme}://{host}" if self.keep_third_party else None), None
        if self.first_party and self.is_first_party(host):
            path = parts.path.partition(";")[0] or "/"
            return host, path
        return (host if self.keep_third_party else None), None
