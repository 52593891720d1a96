"""IP literals anywhere in free text (path, query, referrer, host, a rejected line): struck.

- Dotted runs of four or more numbers: every window of four that is a valid IPv4 address has
  its tail struck like a client address (`/v/198.51.100.23/x` -> `/v/198.51.100.0/x`).
- Runs of hex digits and colons (two colons or more): a valid IPv6 address (with zone id,
  embedded IPv4) is struck like a client address; an invalid run with three colons or more (a
  cut-off address, a MAC address) keeps its first three groups only. `10:00:00` stays.
- Percent-encoded text is decoded, struck and encoded again when it held an address.

Over-striking (a version number `1.2.3.4`) is accepted; under-striking is not.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote, unquote

from sidecar.privacy.ip import Masker, parse_ip

_CANDIDATE = re.compile(
    r"(?P<v4>\d+(?:\.\d+){3,})"
    r"|(?P<v6>[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:]*(?:\.\d+){0,3}(?:%[0-9A-Za-z._~-]+)?)"
)
_SAFE = "/:@!$&'()*+,;=-._~?"
_TIME_LIKE = re.compile(r"\d{1,4}(?::\d{2}){1,3}(?:\.\d+)?")  # 2012:16:42:07, 10:00:00.123


class LiteralMasker:
    """Strikes every IP literal in a string; `mask(text)` returns text unchanged when none."""

    def __init__(self, masker: Masker, cache_entries: int = 65536) -> None:
        self.masker = masker
        byte_masks = [(masker.mask_int_v4(0xFFFFFFFF) >> s) & 0xFF for s in (24, 16, 8, 0)]
        self._byte_masks = byte_masks
        self.mask = lru_cache(maxsize=cache_entries)(self.strike) if cache_entries else self.strike

    def strike(self, text: str) -> str:
        """`mask` without the cache (for one-off text such as a rejected line)."""
        if not text:
            return text
        out = _CANDIDATE.sub(self._replace, text) if _maybe(text) else text
        if "%" in out:
            decoded = unquote(out)
            if decoded != out and _maybe(decoded):
                struck = _CANDIDATE.sub(self._replace, decoded)
                if struck != decoded:
                    out = quote(struck, safe=_SAFE)
        return out

    def _replace(self, m: re.Match[str]) -> str:
        v4 = m.group("v4")
        if v4 is not None:
            return self._strike_v4_run(v4)
        return self._strike_v6_run(m.group("v6"))

    def _strike_v4_run(self, run: str) -> str:
        parts = run.split(".")
        struck = list(parts)
        for i in range(len(parts) - 3):
            # A window's edges may be glued to digits (`1198.51.100.23`): read the edge
            # groups by their inner three digits, so a glued address is still struck.
            window = [parts[i][-3:], parts[i + 1], parts[i + 2], parts[i + 3][:3]]
            if any(len(p) > 3 for p in window) or any(int(p) > 255 for p in window):
                continue
            for k, byte_mask in enumerate(self._byte_masks):
                if byte_mask != 0xFF:
                    kept = int(window[k]) & byte_mask & int(_digits(struck[i + k]) or 0)
                    struck[i + k] = str(kept)
        return ".".join(struck)

    def _strike_v6_run(self, run: str) -> str:
        addr = parse_ip(run)
        if addr is not None:
            return self.masker.mask(addr)
        if run.count(":") >= 3 and not _TIME_LIKE.fullmatch(run):
            groups = run.split(":")
            return ":".join(groups[:3]) + "::"
        return run


def _maybe(text: str) -> bool:
    """Whether text can hold a candidate at all (four dotted numbers need three dots, an IPv6
    run two colons): two C-speed counts spare most paths the regex."""
    return text.count(".") >= 3 or text.count(":") >= 2


def _digits(text: str) -> str:
    return text[:3] if len(text) > 3 else text
