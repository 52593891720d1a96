"""privacy.useragent: families and a device class, never versions or models."""

from __future__ import annotations

import pytest

from sidecar.privacy.useragent import DEVICE_CLASSES, UserAgent, coarse

CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    "ua, browser, os_family, device",
    [
        (CHROME_LINUX, "Chrome", "Linux", "desktop"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0 Safari/537.36 Edg/120.0", "Edge", "Windows", "desktop"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/17.1 Safari/605.1.15", "Safari", "Mac OS X", "desktop"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Mobile Safari", "iOS", "mobile"),
        ("Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/112.0.0.0 Mobile Safari/537.36", "Chrome Mobile", "Android", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/16.0 Mobile/15E148 Safari/604.1", "Mobile Safari", "iOS", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/112.0.0.0 Safari/537.36", "Chrome", "Android", "tablet"),
        ("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/538.1 (KHTML, like Gecko) "
         "Version/6.0 TV Safari/538.1", "Safari", "Tizen", "tv"),
        ("Roku/DVP-12.0 (12.0.0.4182-88)", "Roku", "Roku", "tv"),
        ("AppleCoreMedia/1.0.0.20G75 (iPhone; U; CPU OS 16_6 like Mac OS X; en_us)", None, "iOS",
         "mobile"),
        ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
         None, None, "console"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "Googlebot", None, "bot"),
        ("curl/8.0.1", "curl", None, "other"),
        ("ExoPlayerLib/2.18.1", "Other", "Other", "other"),
    ],
)  # fmt: skip
def test_coarse_table(ua: str, browser: str | None, os_family: str | None, device: str) -> None:
    got_browser, got_os, got_device = coarse(ua)
    if browser is not None:
        assert got_browser == browser
    if os_family is not None:
        assert got_os == os_family
    assert got_device == device


@pytest.mark.parametrize("ua", [CHROME_LINUX, "Roku/DVP-12.0 (12.0.0.4182-88)"])
def test_no_versions_or_models_survive(ua: str) -> None:
    for value in coarse(ua):
        assert value is None or not any(ch.isdigit() for ch in value) or value in ("Windows",)
        assert value in DEVICE_CLASSES or value is None or "DVP" not in value


@pytest.mark.parametrize("ua", ["-", ""])
def test_no_user_agent_gives_nothing(ua: str) -> None:
    assert coarse(ua) == (None, None, None)


def test_results_are_cached() -> None:
    rule = UserAgent("coarse", cache_entries=8)
    rule.coarse(CHROME_LINUX)
    rule.coarse(CHROME_LINUX)
    assert rule.coarse.cache_info().hits == 1
