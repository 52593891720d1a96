"""User-agent rule: a coarse browser family, OS family and device class; never versions.

Families come from `ua-parser` (the maintained uap-core regexes, through its Rust resolver when
installed); the device class (desktop, mobile, tablet, tv, console, bot, other) is derived here
from ua-parser's device and OS families plus a few well-known tokens, because device models
(`SM-S901B`) are too fine to keep. Modes: `coarse` (default), `drop` (nothing), `keep` (the
families plus the whole user-agent string in `user_agent`: weakens privacy, see docs/privacy.md).

A family must be a family. Many uap-core rules copy part of the user agent into it (`$1`): the
generic bot and CFNetwork rules take up to 200 characters of whatever precedes `bot/` or
`/1.0 CFNetwork`, an IP address or an e-mail address included. So a family is kept only when it
is one of the rules' fixed names (a replacement without `$`, loaded once from the installed
rules) or has the strict shape of a name (`family_shape`); anything else becomes `Other`.

Cost: only the first MAX_PARSED_CHARS characters of a user agent are read. The generic bot
rules (`... crawler`, `... spider`) cost about 3.5 us per character of what precedes the token,
even with the Rust resolver: 0.2-0.4 s for one 64 KiB line, against 2 ms at 1024 characters;
real user agents are a few hundred characters. `device_class` is a fixed list of short
substring searches over that same bounded text. Results are cached only for user agents of at
most MAX_KEY_CHARS characters (`sidecar.cache.bounded`), so the cache is bounded in bytes, not
only in entries; ua-parser's own cache of 2000 parses then holds bounded keys too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import ua_parser
from ua_parser.loaders import load_lazy_builtins

from sidecar.cache import MAX_KEY_CHARS, bounded

DEVICE_CLASSES = ("desktop", "mobile", "tablet", "tv", "console", "bot", "other")

#: the family of a user agent that has none, or whose family is not a name
OTHER = "Other"
#: how much of a user agent is parsed and classified: the rest is never read
MAX_PARSED_CHARS = 1024
#: the longest family kept that is not one of the rules' fixed names
MAX_FAMILY_CHARS = 32


def _fixed_names() -> tuple[frozenset[str], frozenset[str]]:
    """The browser and OS families the rules name outright: replacements without `$`."""
    user_agents, oses, _devices = load_lazy_builtins()  # the data the parser itself loads

    def fixed(matchers: Iterable[Any]) -> frozenset[str]:
        return frozenset(m.family for m in matchers if "$" not in m.family)

    return fixed(user_agents) | {OTHER}, fixed(oses) | {OTHER}


BROWSER_NAMES, OS_NAMES = _fixed_names()

_SHAPE = re.compile(rf"[A-Za-z0-9 _.!+-]{{1,{MAX_FAMILY_CHARS}}}", re.ASCII)
# refused inside that shape: a digit beside a dot (`1.2`, `203.0.113`, `61.`), more than three
# digits in a row, a number that starts a word (`61 crawler`: the last byte of an address)
_NOT_A_NAME = re.compile(r"\d\.|\.\d|\d{4}|(?<![A-Za-z0-9])\d", re.ASCII)


def family_shape(name: str) -> bool:
    """Whether `name` has the shape of a product name (and so cannot hold an address).

    At most MAX_FAMILY_CHARS ASCII letters, digits, spaces and `_.!+-`: no `@`, no colon, no
    bracket; no digit beside a dot, no run of more than three digits, no word that starts with a
    digit. (`Chrome Mobile WebView`, `Web0S`, `S3Gof3r`, `http.rb` pass.)
    """
    return _SHAPE.fullmatch(name) is not None and _NOT_A_NAME.search(name) is None


def family_or_other(name: str | None, fixed: frozenset[str]) -> str:
    """`name` when it is one of the `fixed` names or has the shape of one, else `Other`."""
    if name is None:
        return OTHER
    return name if name in fixed or family_shape(name) else OTHER


_TV = (
    "smart-tv", "smarttv", "smart tv", "tizen", "web0s", "webos", "hbbtv", "appletv",
    "apple tv", "crkey", "roku", "aftb", "aftm", "aftt", "aftk", "googletv", "google tv",
    "android tv", "bravia", "netcast", "viera", "philipstv", "tv safari", " tv ", "tvos",
)  # fmt: skip
_CONSOLE = ("playstation", "xbox", "nintendo")
_BOT = ("bot", "crawler", "spider", "slurp", "facebookexternalhit", "headless")
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "ChromeOS", "Fedora", "FreeBSD",
     "OpenBSD", "NetBSD", "Debian", "Mint", "Arch Linux", "Gentoo", "Solaris", "Red Hat"}
)  # fmt: skip


def device_class(ua: str, result: ua_parser.Result) -> str:
    """One of DEVICE_CLASSES, from ua-parser's device and OS families and well-known tokens.

    Linear in `len(ua)` by construction: one `lower()` and at most a fixed number of plain
    substring searches for short constant tokens (no regex, no search built from the input).
    """
    lower = ua.lower()
    device = result.device.family if result.device else None
    os_family = result.os.family if result.os else None
    if device == "Spider" or any(t in lower for t in _BOT):
        return "bot"
    if any(t in lower for t in _TV):
        return "tv"
    if any(t in lower for t in _CONSOLE):
        return "console"
    if "ipad" in lower or "tablet" in lower:
        return "tablet"
    android = "android" in lower
    if android and "mobile" not in lower and "mozilla/" in lower:
        return "tablet"  # Chrome's convention: Android browsers without "Mobile" are tablets
    if (
        android
        or "iphone" in lower
        or "ipod" in lower
        or "mobile" in lower
        or os_family
        in (
            "iOS",
            "Android",
            "Windows Phone",
        )
    ):
        return "mobile"
    if os_family in _DESKTOP_OS or (os_family and os_family.startswith("Windows")):
        return "desktop"
    return "other"


def coarse(ua: str) -> tuple[str | None, str | None, str | None]:
    """(browser family, OS family, device class) of one user-agent string.

    Read from its first MAX_PARSED_CHARS characters only; a family that is not a name is `Other`.
    """
    if not ua or ua == "-":
        return None, None, None
    head = ua[:MAX_PARSED_CHARS]
    result = ua_parser.parse(head)
    browser = family_or_other(result.user_agent.family if result.user_agent else None,
                              BROWSER_NAMES)  # fmt: skip
    os_family = family_or_other(result.os.family if result.os else None, OS_NAMES)
    return browser, os_family, device_class(head, result)


class UserAgent:
    """Rule: `coarse(ua)` -> (browser, OS, device class), cached per user-agent string.

    Only user agents of at most MAX_KEY_CHARS characters are cached: distinct long ones (30 KB
    each, say) would otherwise fill `cache_entries` entries with that many bytes each.
    """

    def __init__(self, mode: str = "coarse", cache_entries: int = 65536) -> None:
        self.mode = mode
        self.coarse = bounded(coarse, cache_entries, MAX_KEY_CHARS)
