"""The fuzz oracle: every reading of an IP address, or of an address prefix, in a string.

Written to be obviously correct, not fast: it percent-decodes the text to a fixed point, keeps
every level, cuts each level into runs of the characters an address can be written with
(`0-9 a-f A-F x X . :`), and tries every substring of every run against every notation of the
spec (issue 7). A substring that reads as an address (or a prefix of one) is a `Reading`.

A planted address is an `Identity`: its value, how many leading bits it defines (32/128, or
fewer for a planted prefix such as `203.0.113`) and how many may survive (the configured
prefix). `revealed(reading, identity)` is how many leading parts (bytes of IPv4, groups of
IPv6) the reading has exactly as the planted address has them; a reading *leaks* when it
reveals more than the allowed bits.

The strategies plant only addresses whose first struck bit is 1 (`Identity.__post_init__`
refuses any other), so a struck address, zeros from the prefix on, can never equal them.

Free text (path, query values, referrer path, user agent, rejected lines):
  - dotted quads, each part decimal (leading zeros allowed), octal (leading 0) or 0x hex, <= 255
    (a part with a leading 0 is read both ways);
  - a 0x hex number with 7 or 8 significant digits (32 bits);
  - IPv6 in any text form Python's ipaddress reads (compressed, full, leading zeros, any case,
    embedded IPv4), and the IPv4 inside ::ffff:0:0/96, 64:ff9b::/96 and 2002::/16 (6to4);
  - prefixes: three dotted parts (24 bits) and 2 to 7 colon-separated hex groups (16 bits each).
  A bare decimal integer is NOT an address in free text.
Hosts (`host`, `referrer_host`) additionally (`host=True`):
  - the text mapped as UTS 46 maps it (NFKC: fullwidth digits and dots; U+3002 as a dot; lower
    case), read as above, and the whole host (the part after `scheme://` too) read by the WHATWG
    URL host parser's IPv4 parser: 1 to 4 parts, decimal / octal / hex, the last part filling
    the remaining bytes, an optional trailing dot;
  - dash-separated quads in a label (`203-0-113-7.example.net`): read with dashes as dots.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from urllib.parse import unquote

WIDTH = {4: 32, 6: 128}
_RUN = re.compile(r"[0-9A-Fa-fxX.:]+")
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{1,4}")
_HEX32 = re.compile(r"0[xX]([0-9A-Fa-f]+)")
MAX_DECODING_LEVELS = 12  # more than any planted depth (4); a fixed point is reached sooner


@dataclass(frozen=True)
class Identity:
    """A planted address (or prefix) and how much of it may survive."""

    version: int  # 4 or 6
    value: int  # left-aligned in 32 or 128 bits (a prefix has zeros after its defined bits)
    defined: int  # leading bits the planted text defines (32/128; 24 for `a.b.c`, ...)
    allowed: int  # leading bits that may survive (the configured prefix)

    def __post_init__(self) -> None:
        width = WIDTH[self.version]
        if not 0 <= self.allowed < self.defined <= width:
            raise ValueError(f"{self}: nothing to strike")
        if not (self.value >> (width - 1 - self.allowed)) & 1:
            raise ValueError(f"{self}: the first struck bit must be 1 (see the module doc)")


@dataclass(frozen=True)
class Reading:
    version: int
    value: int  # left-aligned, like Identity.value
    defined: int
    text: str  # the substring read (at its decoding level)
    how: str  # which notation read it


UNIT = {4: 8, 6: 16}  # a dotted part, a colon group


def revealed(reading: Reading, identity: Identity) -> int:
    """How many leading bits of `identity` the reading shows, in whole parts (bytes of IPv4,
    16-bit groups of IPv6): a reading shows a part only when it has that part exactly, and
    every part before it. (Bit by bit, unrelated text after a struck prefix would match the
    first struck bit half the time.) 0 for the other IP version."""
    if reading.version != identity.version:
        return 0
    width, unit = WIDTH[identity.version], UNIT[identity.version]
    shown = 0
    for start in range(0, min(reading.defined, identity.defined), unit):
        shift = width - start - unit
        if (reading.value >> shift) & ((1 << unit) - 1) != (identity.value >> shift) & (
            (1 << unit) - 1
        ):
            break
        shown = start + unit
    return shown


def leaks(text: str, identities: list[Identity], host: bool = False) -> list[tuple[Reading, int]]:
    """Every reading of `text` that reveals more of a planted address than allowed."""
    found = []
    for reading in _all_readings(text, host):
        for ident in identities:
            bits = revealed(reading, ident)
            if bits > ident.allowed:
                found.append((reading, bits))
    return found


# --- decoding ----------------------------------------------------------------------------------


def decodings(text: str) -> list[str]:
    """`text` and each level of percent-decoding of it, up to the fixed point."""
    levels = [text]
    while len(levels) <= MAX_DECODING_LEVELS:
        nxt = unquote(levels[-1])
        if nxt == levels[-1]:
            break
        levels.append(nxt)
    return levels


def uts46_map(text: str) -> str:
    """The host as UTS 46 maps it, for the parts that matter to addresses: NFKC (fullwidth
    digits, letters and dots; U+FF61), the ideographic full stop as a dot, lower case."""
    mapped = unicodedata.normalize("NFKC", text)
    return mapped.replace("\u3002", ".").lower()


def _variants(text: str, host: bool) -> list[str]:
    out = []
    for level in decodings(text):
        out.append(level)
        if host:
            mapped = uts46_map(level)
            out.extend([mapped, mapped.replace("-", ".")])
    return list(dict.fromkeys(out))


# --- readings ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 14)
def _all_readings(text: str, host: bool) -> tuple[Reading, ...]:
    """`readings` remembered: the fuzz outputs repeat much of their text (a cache only)."""
    return tuple(readings(text, host))


def readings(text: str, host: bool = False) -> Iterator[Reading]:
    for variant in _variants(text, host):
        for run in _RUN.findall(variant):
            for i in range(len(run)):
                for j in range(i + 1, len(run) + 1):
                    yield from _read(run[i:j])
        if host:  # the WHATWG reading is of a whole host (also after `scheme://`)
            for whole in {variant, variant.rpartition("://")[2]}:
                value = whatwg_ipv4(whole)
                if value is not None:
                    yield Reading(4, value, 32, whole, "whatwg")


@functools.lru_cache(maxsize=1 << 16)
def _read(s: str) -> tuple[Reading, ...]:
    return tuple(_read_uncached(s))


def _read_uncached(s: str) -> Iterator[Reading]:
    if "." in s:
        yield from _dotted(s)
    if ":" in s:
        yield from _ipv6(s)
    if s[:2] in ("0x", "0X"):
        m = _HEX32.fullmatch(s)
        if m and 7 <= len(m.group(1).lstrip("0")) <= 8:
            yield Reading(4, int(m.group(1), 16), 32, s, "hex32")


def part_values(part: str) -> set[int]:
    """Every value a dotted part can be read as in free text (each <= 255)."""
    values = set()
    if part[:2] in ("0x", "0X"):
        if len(part) > 2 and all(c in "0123456789abcdefABCDEF" for c in part[2:]):
            values.add(int(part[2:], 16))
    elif part and all(c in "0123456789" for c in part):
        values.add(int(part, 10))
        if len(part) > 1 and part[0] == "0" and all(c in "01234567" for c in part):
            values.add(int(part, 8))
    return {v for v in values if v <= 255}


def _dotted(s: str) -> Iterator[Reading]:
    parts = s.split(".")
    if len(parts) not in (3, 4):
        return
    choices = [part_values(p) for p in parts]
    for combo in itertools.product(*choices):
        value = 0
        for b in combo:
            value = (value << 8) | b
        if len(parts) == 4:
            yield Reading(4, value, 32, s, "dotted")
        else:
            yield Reading(4, value << 8, 24, s, "dotted-prefix")


def embedded_ipv4(n: int) -> int | None:
    """The IPv4 address an IPv6 address carries: mapped, NAT64 (64:ff9b::/96), 6to4."""
    if n >> 32 == 0xFFFF:
        return n & 0xFFFFFFFF
    if n >> 32 == 0x0064FF9B << 64:
        return n & 0xFFFFFFFF
    if n >> 112 == 0x2002:
        return (n >> 80) & 0xFFFFFFFF
    return None


def _ipv6(s: str) -> Iterator[Reading]:
    try:
        n = int(IPv6Address(s))
    except ValueError:
        pass
    else:
        yield Reading(6, n, 128, s, "ipv6")
        v4 = embedded_ipv4(n)
        if v4 is not None:
            yield Reading(4, v4, 32, s, "ipv6-embedded-ipv4")
        return
    groups = s.split(":")
    if 2 <= len(groups) <= 7 and all(_HEX_GROUP.fullmatch(g) for g in groups):
        value = 0
        for g in groups:
            value = (value << 16) | int(g, 16)
        k = len(groups)
        yield Reading(6, value << (16 * (8 - k)), 16 * k, s, "ipv6-prefix")


def _whatwg_number(part: str) -> int | None:
    """WHATWG URL 'IPv4 number parser' (validation errors ignored, as browsers do)."""
    if part[:2] in ("0x", "0X"):
        digits, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        digits, radix = part[1:], 8
    else:
        digits, radix = part, 10
    if digits == "":
        return 0
    alphabet = {16: "0123456789abcdefABCDEF", 8: "01234567", 10: "0123456789"}[radix]
    if not all(c in alphabet for c in digits):
        return None
    return int(digits, radix)


def whatwg_ipv4(s: str) -> int | None:
    """WHATWG URL 'IPv4 parser': 1 to 4 parts, the last one filling the remaining bytes."""
    parts = s.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4 or any(p == "" for p in parts):
        return None
    numbers = [_whatwg_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return value
