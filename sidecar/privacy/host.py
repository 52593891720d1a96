"""Host rule: a host name (Host header, virtual host, referrer host) read as a browser reads it.

A browser sends whatever the WHATWG URL standard makes of what a user or a page wrote, so a host
is read the same way before anything of it is kept:
- percent-decoded, folded (UTS 46 / NFKC: fullwidth digits and dots, `。`), lower-cased, without
  a trailing dot;
- a host that "ends in a number" is an IPv4 address in one of the standard's notations: one to
  four parts, each decimal, octal (a leading 0) or hex (`0x`), the last filling the remaining
  bytes (`3405803855`, `0xcb.0x00.0x71.0x1a`, `0313.0000.0161.0116`, `203.0.29447`): it is
  struck like a client address; one that ends in a number but is no address is no host (None);
- `[...]` and bare IPv6 literals are struck like client addresses (written in brackets);
- a domain keeps its labels, with IP literals in them struck (`203.0.113.7.nip.io`), and
  dash-separated quads as reverse-DNS names write them (`203-0-113-7.example.net`);
- a host with characters no host may hold (space, `/`, `@`, `\\`, controls, ...) or over 253
  characters is no host (None).
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address

from sidecar.cache import bounded
from sidecar.privacy.ip import Address, Masker, parse_ip
from sidecar.privacy.literals import LiteralMasker, folded, percent_decoded

_FORBIDDEN = frozenset(" \t\n\r#/<>?@[\\]^|%\"'`{}") | frozenset(map(chr, range(0x20))) | {"\x7f"}
# a dash-separated quad in a label, its ends possibly glued to more digits (`55523-56-64-177`)
_DASH_QUAD = re.compile(r"(?<![0-9])(\d++)-(\d{1,3})-(\d{1,3})-(\d++)")
_MAX_HOST = 253
_V4_LIMITS = (1 << 32, 1 << 24, 1 << 16, 1 << 8)
_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"),
           16: frozenset("0123456789abcdefABCDEF")}  # fmt: skip


def _number(part: str) -> int | None:
    """A WHATWG IPv4 number (decimal, 0-octal, 0x-hex), or None when the part is none."""
    radix = 10
    if len(part) >= 2 and part[0] == "0" and part[1] in "xX":
        part, radix = part[2:], 16
    elif len(part) >= 2 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        return 0
    digits = _DIGITS[radix]
    if not all(c in digits for c in part):
        return None
    part = part.lstrip("0") or "0"
    if len(part) > 12:
        return 1 << 40  # larger than any part can be
    return int(part, radix)


def ends_in_number(host: str) -> bool:
    """The standard's "ends in a number" check: then the host must be an IPv4 address."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    if last and last.isascii() and last.isdigit():
        return True
    return _number(last) is not None and last[:2] in ("0x", "0X")


def whatwg_ipv4(host: str) -> int | None:
    """The IPv4 address a browser reads in a host, as an integer, or None."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        n = _number(part) if part else None
        if n is None:
            return None
        numbers.append(n)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= _V4_LIMITS[len(numbers) - 1]:
        return None
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return value


class HostRule:
    """Rule: `scrub(host)` -> the host fit to keep (addresses struck), or None."""

    def __init__(self, masker: Masker, literals: LiteralMasker, cache_entries: int = 8192) -> None:
        self.masker = masker
        self.literals = literals
        self.scrub = bounded(self._scrub, cache_entries, 256)

    def _scrub(self, host: str) -> str | None:
        h = host.strip()
        if not h:
            return None
        if h[0] == "[":
            end = h.find("]")
            addr = parse_ip(h[1:end]) if end > 0 else None
            return None if addr is None else self._address(addr)
        if "%" in h:
            h = percent_decoded(h)
        if not h.isascii():
            h = folded(h)
        h = h.lower()
        if h.count(":") >= 2:  # an IPv6 literal written without brackets
            addr = parse_ip(h)
            return None if addr is None else self._address(addr)
        h = h.partition(":")[0].rstrip(".")  # no port (the parsers drop it already)
        if not h or len(h) > _MAX_HOST or any(c in _FORBIDDEN for c in h):
            return None
        if ends_in_number(h):
            value = whatwg_ipv4(h)
            if value is None:
                return None
            return self.masker.mask(IPv4Address(value))
        if "-" in h:
            h = _DASH_QUAD.sub(self._dash_quad, h)
        return self.literals.mask(h)

    def _address(self, addr: Address) -> str:
        struck = self.masker.mask(addr)
        return f"[{struck}]" if ":" in struck else struck

    def _dash_quad(self, m: re.Match[str]) -> str:
        first, second, third, last = m.groups()
        if int(second) > 255 or int(third) > 255:
            return m.group()
        m0, m1, m2, m3 = self.masker.v4_byte_masks
        return "-".join([
            first if m0 == 0xFF else "0",  # glued digits: which of them the octet is is unknown
            str(int(second) & m1),
            str(int(third) & m2),
            last if m3 == 0xFF else "0",
        ])  # fmt: skip
