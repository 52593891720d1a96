"""IP literals anywhere in free text (path, query, referrer path, a rejected line): struck.

What counts as an address here (docs/privacy.md says the same for a reader):
- IPv4 as a dotted quad whose parts are decimal (leading zeros allowed), octal (a leading 0) or
  `0x` hex, each at most 255: `203.0.113.7`, `203.0.0113.102`, `203.0.113.0x4d`. A quad may be
  glued to other letters or digits (`v1198.51.100.23x`) or follow a colon-separated prefix
  (`cam:1:203.0.113.11`); in a longer dotted run every window of four parts is one.
- IPv4 as one `0x` number of 7 or 8 significant hex digits (`0xcb00711a`), also when more hex
  digits are glued after them.
- IPv6 in any text form (RFC 4291), with embedded IPv4, 6to4 and zone ids: struck like a client
  address (privacy.ip). A run of hex groups and colons that is no address (a cut-off address, a
  MAC address) keeps as many leading groups as `ipv6_prefix_bits` allows (`a:b:c::` at 48),
  and never a group after `::`; a time of day (`10:00:00`, `2026:10:00:00.5`) is left alone.
- Partial addresses under stricter settings: with `ipv4_prefix_bits` below 24 a three-part
  dotted run (`203.0.113`) keeps only that many bits, below 16 a two-part run too.
- Every form above after percent-decoding to a fixed point (`%2E`, `%252E`, ... up to
  `_MAX_DECODES` levels) and after Unicode compatibility folding (NFKC: fullwidth digits and
  dots): the struck text is then written decoded once and percent-encoded again.
Deliberately not addresses: a bare decimal number (`/v/3405803855` is an id far more often than
an address), dashes (`2026-11-24`), base64, HTML entities, digits of other scripts.

Over-striking (a version number `1.2.3.4`) is accepted; under-striking is not. The scan is
linear in the length of the text: candidate tokens are found by one regex with no backtracking
(a look-behind anchors every match at the start of a token, a possessive run takes it whole),
and each token is read in a single pass.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

from sidecar.cache import bounded
from sidecar.privacy.ip import Masker, parse_ip

# a token: a maximal run of letters, digits, dots and colons that holds a dot, a colon or an x
_TOKEN = re.compile(r"(?<![0-9A-Za-z.:])[0-9A-Za-z.:]*?[.:xX][0-9A-Za-z.:]*+")
_HEX32 = re.compile(r"0[xX]0*+([0-9A-Fa-f]++)")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f:.]++")  # hex groups, colons, dotted IPv4
_TRAIL_HEX = re.compile(r"0[xX][0-9A-Fa-f]*+\Z")
_TIME_LIKE = re.compile(r"\d{1,4}(?::\d{2}){1,3}(?:\.\d+)?")  # 2012:16:42:07, 10:00:00.123
_HEX = frozenset("0123456789abcdefABCDEF")
_OCTAL = frozenset("01234567")
_SAFE = "/:@!$&'()*+,;=-._~?"
_SEPARATORS = re.compile(r"([&=;/?#])")
_PIECE_SAFE = ":@!$'()*,-._~"  # a piece's own separators come back escaped
_MAX_DECODES = 8  # percent-decoding rounds: deeper than any encoding a client or proxy applies
_DOTS = str.maketrans("\u3002\uff61\uff0e", "...")  # full stops UTS 46 reads as dots


def _octet_values(part: str) -> bool:
    """Whether a whole part reads as an IPv4 octet: decimal, octal or 0x hex, at most 255."""
    if not part:
        return False
    if part[0] == "0" and len(part) > 1 and part[1] in "xX":
        digits = part[2:].lstrip("0")
        return all(c in _HEX for c in digits) and len(digits) <= 2
    if not (part.isascii() and part.isdigit()):
        return False
    digits = part.lstrip("0")
    if len(digits) <= 3 and (not digits or int(digits) <= 255):
        return True  # decimal (leading zeros read as decimal)
    return part[0] == "0" and all(c in _OCTAL for c in digits) and int(digits, 8) <= 255


def _is_canonical(part: str) -> bool:
    return part.isdigit() and (part == "0" or part[0] != "0")


def _lead(part: str) -> int:
    """Length of the octet-like text a part starts with (digits, or 0x and hex digits)."""
    if part[:2] in ("0x", "0X"):
        i = 2
        while i < len(part) and part[i] in _HEX:
            i += 1
        return i
    i = 0
    while i < len(part) and part[i].isdigit():
        i += 1
    return i


def _trail(part: str) -> int:
    """Length of the octet-like text a part ends with (0x and hex digits, or digits)."""
    m = _TRAIL_HEX.search(part)
    if m:
        return len(m.group())
    return len(part) - len(part.rstrip("0123456789"))


class LiteralMasker:
    """Strikes every IP literal in a string; `mask(text)` returns text unchanged when none.

    `mask` is cached (short texts only: the cache is bounded in bytes); `strike` is not."""

    def __init__(self, masker: Masker, cache_entries: int = 65536) -> None:
        self.masker = masker
        self._byte_masks = masker.v4_byte_masks
        self._v4_bits = masker.ipv4_bits
        self._v6_groups, rest = divmod(masker.ipv6_bits, 16)
        self._v6_partial = (0xFFFF << (16 - rest)) & 0xFFFF if rest else None
        # windows of parts that can reveal more than the configured bits: 4 always; 3 and 2
        # (an address's leading parts) when the prefix is shorter than they are
        self._windows = [k for k in (4, 3, 2) if k == 4 or k * 8 > self._v4_bits]
        self._min_dots = min(self._windows) - 1
        self.mask = bounded(self.strike, cache_entries, 512)

    # --- the views: as written, NFKC-folded, percent-decoded -------------------------------
    def strike(self, text: str) -> str:
        """`mask` without the cache (for one-off text such as a rejected line)."""
        if not text:
            return text
        out = self._scan(text)
        if not out.isascii():
            fold = folded(out)
            if fold != out:
                struck = self._scan(fold)
                if struck != fold:
                    out = struck
        if "%" in out:
            decoded = percent_decoded(out)
            if decoded != out:
                struck = self._scan(decoded)
                if struck != decoded:
                    out = self._strike_pieces(out) or quote(struck, safe=_SAFE)
        return out

    def _strike_pieces(self, text: str) -> str | None:
        """The decoded view struck piece by piece between the text's own separators (`&`,
        `=`, `;`, `/`, `?`, `#`), each piece encoded again with every separator it decoded to
        (`%2526` -> `&`) escaped: a struck value never splits into new query pairs
        (`ip=203%252E0%252E113%252E7%2526secret%253Dx` is not `ip=203.0.113.0&secret=x`).
        None when no piece alone holds the address (it spans a separator)."""
        pieces = _SEPARATORS.split(text)
        changed = False
        for i in range(0, len(pieces), 2):
            piece = pieces[i]
            if "%" not in piece:
                continue
            decoded = percent_decoded(piece)
            struck = self._scan(decoded)
            if struck != decoded:
                pieces[i] = quote(struck, safe=_PIECE_SAFE)
                changed = True
        return "".join(pieces) if changed else None

    def _maybe(self, text: str) -> bool:
        """Whether text can hold a candidate at all: C-speed counts spare most text the scan."""
        return (
            text.count(".") >= self._min_dots
            or text.count(":") >= 2
            or "0x" in text
            or "0X" in text
        )

    def _scan(self, text: str) -> str:
        return _TOKEN.sub(self._token, text) if self._maybe(text) else text

    # --- one token --------------------------------------------------------------------------
    def _token(self, m: re.Match[str]) -> str:
        token = m.group()
        if token.count(":") >= 2:
            return self._colons(token)
        return self._dotted(token)

    def _colons(self, token: str) -> str:
        groups = token.split(":")
        if any(map(_breaks, groups[1:-1])):
            # groups no address holds split the token (`::x::1`): the IPv4s in its groups
            # struck, then each run of hex groups between them as a token of its own
            text = ":".join(map(self._dotted, groups))
            return _HEX_RUN.sub(self._hex_run, text)
        return self._colon_run(token, groups)

    def _hex_run(self, m: re.Match[str]) -> str:
        run = m.group()
        # a lone colon at an end separates the run from the group beside it; `::` belongs to it
        head = ":" if run[:1] == ":" and run[:2] != "::" else ""
        tail = ":" if run[-1:] == ":" and run[-2:] != "::" and len(run) > 1 else ""
        core = run[len(head) : len(run) - len(tail)]
        if core.count(":") < 2:
            return run
        return head + self._colon_run(core, core.split(":")) + tail

    def _colon_run(self, token: str, groups: list[str]) -> str:
        if len(token) <= 64:
            found = self._glued_v6(token)
            if found is not None:
                return found
        groups = [self._dotted(g) if "." in g or "x" in g or "X" in g else g
                  for g in groups]  # fmt: skip
        if _TIME_LIKE.fullmatch(token):
            return ":".join(groups)
        return ":".join(self._hex_runs(groups))

    def _glued_v6(self, token: str) -> str | None:
        """The token with the IPv6 address in it struck, the address possibly glued to text
        before its first group or after its last (`x::1`, `cafe2001:db8::1`, `::1zz`)."""
        addr = parse_ip(token)
        if addr is not None:
            return self.masker.mask(addr)
        first = token.partition(":")[0]
        last = token.rpartition(":")[2]
        middle = token[len(first) : len(token) - len(last)]
        lefts = [
            k for k in range(min(4, len(first)), -1, -1) if _hex_group(first[len(first) - k :])
        ]
        rights = [k for k in range(min(4, len(last)), -1, -1) if _hex_group(last[:k])]
        if "." in last:
            rights.insert(0, len(last))  # an embedded IPv4 as the last group
        for k in lefts:
            for j in rights:
                if k == len(first) and j == len(last):
                    continue  # the token itself: tried above
                addr = parse_ip(first[len(first) - k :] + middle + last[:j])
                if addr is not None:  # the glued text around it may hold an IPv4 still
                    before, after = first[: len(first) - k], last[j:]
                    return self._dotted(before) + self.masker.mask(addr) + self._dotted(after)
        return None

    def _hex_runs(self, groups: list[str]) -> list[str]:
        """Runs of three or more hex groups keep the groups the configured bits allow."""
        out: list[str] = []
        i, n = 0, len(groups)
        while i < n:
            # a run may start with a group glued to text before it (`x2001`), must go on with
            # whole groups of at most four hex digits (or empty, `::`), and may end glued
            if not groups[i] or groups[i][-1] in _HEX:
                j = i + 1
                while j < n and _hex_group(groups[j]):
                    j += 1
                if j < n and groups[j] and groups[j][0] in _HEX:
                    j += 1  # glued at the end (`7334xyz`)
                if j - i >= 3:
                    out.extend(self._keep_groups(groups[i:j]))
                    i = j
                    continue
            out.append(groups[i])
            i += 1
        return out

    def _keep_groups(self, run: list[str]) -> list[str]:
        kept: list[str] = []
        for k, group in enumerate(run):
            if k >= self._v6_groups or not group:
                if k == self._v6_groups and group and self._v6_partial and _hex_group(group):
                    kept.append(f"{int(group, 16) & self._v6_partial:x}")
                break
            kept.append(group)
        if len(kept) >= 2 and run[0][-4:].lower() == "2002" and all(map(_hex_group, run[1:3])):
            # 6to4: the 32 bits after 2002 are a whole IPv4 address, struck as one
            v4 = self.masker.mask_int_v4(int(run[1] or "0", 16) << 16 | int(run[2] or "0", 16))
            kept[1:3] = [f"{v4 >> 16:x}", f"{v4 & 0xFFFF:x}"][: len(kept) - 1]
        if all(not g for g in run[len(kept) :]) and kept == run[: len(kept)]:
            return run  # nothing but `::` after what is kept: nothing to strike
        return [*kept, "", ""] if len(kept) < len(run) else kept

    def _dotted(self, token: str) -> str:
        out = token
        if "." in token:
            out = self._dotted_windows(token)
        if "0x" in out or "0X" in out:
            out = _HEX32.sub(self._hex32, out)
        return out

    def _hex32(self, m: re.Match[str]) -> str:
        digits = m.group(1)
        if len(digits) < 7:
            return m.group()
        mask = self.masker.mask_int_v4
        if len(digits) == 7:
            return f"0x{mask(int(digits, 16)):07x}"
        # eight digits or more: the first eight, and the first seven (more hex glued after
        # them), are each read as an address
        eight = f"{mask(int(digits[:8], 16)):08x}"
        seven = f"{mask(int(eight[:7], 16)):07x}"
        return f"0x{seven}{eight[7]}{digits[8:]}"

    def _dotted_windows(self, token: str) -> str:
        parts = token.split(".")
        n = len(parts)
        if n < 2:
            return token
        exact = [_octet_values(p) for p in parts]
        # per part, the AND of the byte masks of every window it is in, for its whole text
        # (exact parts), its octet-like start (a window's last part) or end (its first)
        whole = [0xFF] * n
        lead = [0xFF] * n
        trail = [0xFF] * n
        struck = False
        for k in self._windows:
            masks = self._byte_masks[:k]
            if all(m == 0xFF for m in masks):
                continue
            for i in range(n - k + 1):
                first, last = parts[i], parts[i + k - 1]
                if not (exact[i] or _trail(first)):
                    continue
                if not (exact[i + k - 1] or _lead(last)):
                    continue
                if not all(exact[i + 1 : i + k - 1]):
                    continue
                struck = True
                for j, m in enumerate(masks):
                    p = i + j
                    if exact[p]:
                        whole[p] &= m
                    elif j == 0:
                        trail[p] &= m
                    else:
                        lead[p] &= m
        if not struck:
            return token
        out = []
        for p, part in enumerate(parts):
            if exact[p]:
                if whole[p] != 0xFF:
                    part = _struck_octet(part, whole[p])
            else:
                if lead[p] != 0xFF:
                    cut = _lead(part)
                    part = "0" + part[cut:]
                if trail[p] != 0xFF:
                    cut = _trail(part)
                    part = part[: len(part) - cut] + "0"
            out.append(part)
        return ".".join(out)


def _breaks(group: str) -> bool:
    """A group no IPv6 address holds: neither up to four hex digits nor a dotted IPv4."""
    return not _hex_group(group) and "." not in group


def _hex_group(group: str) -> bool:
    return len(group) <= 4 and all(c in _HEX for c in group)


def _struck_octet(part: str, mask: int) -> str:
    if _is_canonical(part):
        return str(int(part) & mask)
    return "0"  # 0113, 0x4d: which reading was meant is unknown, strike the whole octet


def folded(text: str) -> str:
    """Unicode compatibility folding, as browsers read hosts: fullwidth digits and dots."""
    folded = unicodedata.normalize("NFKC", text)
    return folded if folded.isascii() else folded.translate(_DOTS)


def percent_decoded(text: str) -> str:
    """Percent-decoded to a fixed point (bounded), then folded."""
    decoded = text
    for _ in range(_MAX_DECODES):
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
        if "%" not in decoded:
            break
    return folded(decoded) if not decoded.isascii() else decoded
