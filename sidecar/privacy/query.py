"""Query rule: only parameters named in `query.allow` survive (a trailing `*` is a prefix).

The default allowlist is empty: tokens, session ids, search terms and e-mail addresses in
query strings are dropped with everything else. Names are compared after percent-decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import unquote_plus


class Query:
    """Rule: `filter(query)` -> the allowlisted `name=value` pairs, or None."""

    def __init__(self, allow: Sequence[str] = (), strike: Callable[[str], str] = str) -> None:
        self.strike = strike  # privacy.literals: IP literals in the kept values
        self.exact = frozenset(a for a in allow if not a.endswith("*"))
        self.prefixes = tuple(a[:-1] for a in allow if a.endswith("*"))
        self.enabled = bool(allow)

    def allowed(self, name: str) -> bool:
        if name in self.exact or (name.startswith(self.prefixes) and self.prefixes):
            return True
        if "%" in name or "+" in name:
            decoded = unquote_plus(name)
            return decoded in self.exact or (
                bool(self.prefixes) and decoded.startswith(self.prefixes)
            )
        return False

    def filter(self, query: str | None) -> str | None:
        if not query or not self.enabled:
            return None
        kept = [p for p in query.split("&") if p and self.allowed(p.partition("=")[0])]
        return self.strike("&".join(kept)) if kept else None
