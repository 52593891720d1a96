"""User-agent rule: a coarse browser family, OS family and device class; never versions.

Families come from `ua-parser` (the maintained uap-core regexes, through its Rust resolver when
installed); the device class (desktop, mobile, tablet, tv, console, bot, other) is derived here
from ua-parser's device and OS families plus a few well-known tokens, because device models
(`SM-S901B`) are too fine to keep. Modes: `coarse` (default), `drop` (nothing), `keep` (the
families plus the whole user-agent string in `user_agent`: weakens privacy, see docs/privacy.md).
"""

from __future__ import annotations

from functools import lru_cache

import ua_parser

DEVICE_CLASSES = ("desktop", "mobile", "tablet", "tv", "console", "bot", "other")

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
    """(browser family, OS family, device class) of one user-agent string."""
    if not ua or ua == "-":
        return None, None, None
    result = ua_parser.parse(ua)
    browser = result.user_agent.family if result.user_agent else "Other"
    os_family = result.os.family if result.os else "Other"
    return browser, os_family, device_class(ua, result)


class UserAgent:
    """Rule: `coarse(ua)` -> (browser, OS, device class), cached per user-agent string."""

    def __init__(self, mode: str = "coarse", cache_entries: int = 65536) -> None:
        self.mode = mode
        self.coarse = lru_cache(maxsize=cache_entries)(coarse) if cache_entries else coarse
