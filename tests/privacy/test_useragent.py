"""privacy.useragent: families and a device class, never versions, models or copied text."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.cache import MAX_KEY_CHARS
from sidecar.privacy.useragent import (
    BROWSER_NAMES,
    DEVICE_CLASSES,
    MAX_FAMILY_CHARS,
    MAX_PARSED_CHARS,
    OS_NAMES,
    UserAgent,
    coarse,
    family_shape,
)

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
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
         "Firefox", "Windows", "desktop"),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
         "Firefox", "Ubuntu", "desktop"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0", "Opera", "Windows", "desktop"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36", "Chrome", "Chrome OS", "desktop"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/17.1 Safari/605.1.15", "Safari", "Mac OS X", "desktop"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Mobile Safari", "iOS", "mobile"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1", "Chrome Mobile iOS",
         "iOS", "mobile"),
        ("Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/112.0.0.0 Mobile Safari/537.36", "Chrome Mobile", "Android", "mobile"),
        ("Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) "
         "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", "Samsung Internet",
         "Android", "mobile"),
        ("Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
         "Firefox Mobile", "Android", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/16.0 Mobile/15E148 Safari/604.1", "Mobile Safari", "iOS", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/112.0.0.0 Safari/537.36", "Chrome", "Android", "tablet"),
        ("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/538.1 (KHTML, like Gecko) "
         "Version/6.0 TV Safari/538.1", "Safari", "Tizen", "tv"),
        ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/79.0.3945.79 Safari/537.36 WebAppManager", "Chrome", "Web0S", "tv"),
        ("Mozilla/5.0 (X11; Linux aarch64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/114.0 Safari/537.36 CrKey/1.56.500000", "Chrome", "Chromecast Linux", "tv"),
        ("Roku/DVP-12.0 (12.0.0.4182-88)", "Roku", "Roku", "tv"),
        ("AppleTV11,1/11.1", "Other", "ATV OS X", "tv"),
        ("AppleCoreMedia/1.0.0.20G75 (iPhone; U; CPU OS 16_6 like Mac OS X; en_us)",
         "Mobile Safari UI/WKWebView", "iOS", "mobile"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/16.6]",
         "Facebook", "iOS", "mobile"),
        ("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
         None, None, "console"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, "
         "like Gecko) Chrome/70 Safari/537.36 Edge/18.19041", "Edge", "Windows", "console"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "Googlebot", "Other", "bot"),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bingbot",
         "Other", "bot"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
         "FacebookBot", "Other", "bot"),
        ("curl/8.0.1", "curl", "Other", "other"),
        ("python-requests/2.31.0", "Python Requests", "Other", "other"),
        ("VLC/3.0.18 LibVLC/3.0.18", "VLC", "Other", "other"),
        ("ExoPlayerLib/2.18.1", "Other", "Other", "other"),
        ("Spotify/8.8.96 iOS/17.1 (iPhone15,2)", "Spotify", "iOS", "mobile"),
        ("MyVideoApp/4.2 CFNetwork/1240.0.4 Darwin/20.6.0", "MyVideoApp", "iOS", "mobile"),
    ],
)  # fmt: skip
def test_real_user_agents(ua: str, browser: str | None, os_family: str | None, device: str) -> None:
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


# -- a family must be a family: text the rules copy out of the user agent is refused


@pytest.mark.parametrize(
    "ua, device",
    [
        ("VideoApp 203.0.113.61 jane.doe@example.org/3.2 CFNetwork/1240.0.4 Darwin/20.6.0",
         "mobile"),
        ("Player 198.51.100.7/1.0 CFNetwork/1240.0.4 Darwin/20.6.0", "mobile"),
        ("tv-app [2001:db8:85a3::8a2e:370:7334]-iPhone/1.2 CFNetwork/1 Darwin/20", "mobile"),
        ("Mozilla/5.0 (compatible; [2001:db8::1]bot/1.0)", "bot"),
        ("Mozilla/5.0 (compatible; ::ffff:cb00:7101bot/1.0)", "bot"),
        ("probe ::ffff:c633:6417 spider/2.0", "bot"),
        ("192.0.2.155 crawler/1.0", "bot"),
        ("fetch 10.1.2.3Bot/2.0", "bot"),
        ("jane.doe@example.com/2.0 CFNetwork/1 Darwin/20", "mobile"),
        ("x" * 40 + "bot/1.0", "bot"),
    ],
)  # fmt: skip
def test_copied_text_is_no_family(ua: str, device: str) -> None:
    browser, os_family, got_device = coarse(ua)
    assert browser == "Other"
    assert os_family in OS_NAMES
    assert got_device == device


def test_text_after_an_address_can_stay() -> None:
    """What has the shape of a name is kept: here the end of an e-mail address's host."""
    assert coarse("someone@example.com Bot/1.0")[0] == "com Bot"


def test_fixed_names_are_loaded_from_the_rules() -> None:
    assert {"Mobile Safari", "Samsung Internet", "Edge", "Chrome Mobile"} <= BROWSER_NAMES
    assert {"Windows", "iOS", "Android", "Mac OS X", "Chrome OS"} <= OS_NAMES
    for name in BROWSER_NAMES | OS_NAMES:
        assert "$" not in name and "@" not in name and ":" not in name


@pytest.mark.parametrize(
    "name",
    ["Chrome", "Chrome Mobile WebView", "Firefox", "Tizen", "Web0S", "S3Gof3r", "http.rb",
     "Site24x7", "aws-sdk-go-v2", "MyVideoApp", "x" * MAX_FAMILY_CHARS],
)  # fmt: skip
def test_names_have_the_shape(name: str) -> None:
    assert family_shape(name)


@pytest.mark.parametrize(
    "name",
    ["", "a@b", "203.0.113", "App 1.2", "App 61.", "v.1", "[2001", "::ffff", "cb00:7101",
     "id 12345", "61 crawler", "x-61bot", "x" * (MAX_FAMILY_CHARS + 1), "Seznam prohlížeč",
     "tab\tname", "semi;colon", "slash/name"],
)  # fmt: skip
def test_other_text_has_not(name: str) -> None:
    assert not family_shape(name)


_V4 = st.ip_addresses(v=4)
_PLANTED = st.one_of(
    _V4.map(str),
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    _V4.map(lambda a: f"::ffff:{int(a) >> 16:x}:{int(a) & 0xFFFF:x}"),
    _V4.map(lambda a: f"::ffff:{a}"),
    st.emails(),
)
_FILLER = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=24)
_TEMPLATES = st.sampled_from([
    "{a}{p}{b}/3.2 CFNetwork/1240.0.4 Darwin/20.6.0",
    "{a}{p}{b}-iPhone/1.0 CFNetwork/1 Darwin/20",
    "Mozilla/5.0 (compatible; {a}{p}{b}bot/1.0)",
    "{a}{p}{b} spider/2.0",
    "{a}{p}{b}Crawler/1.0 (+http://example.org)",
    "{a}{p}{b}",
    "{a}{p}{b}/1.0 (Windows NT 10.0; {a})",
    "Mozilla/5.0 (Linux; Android 13; {a}{p}{b}) AppleWebKit/537.36 Chrome/112.0 Mobile Safari/537.36",
    "Mozilla/5.0 ({a}{p}{b}; rv:120.0) Gecko/20100101 Firefox/120.0",
    "{p}/{a} {b}",
])  # fmt: skip


def _is_family(value: str, fixed: frozenset[str]) -> bool:
    return value in fixed or family_shape(value)


@given(_TEMPLATES, _PLANTED, _FILLER, _FILLER)
def test_planted_addresses_never_reach_a_family(
    template: str, planted: str, before: str, after: str
) -> None:
    browser, os_family, device = coarse(template.format(a=before, p=planted, b=after))
    assert device in DEVICE_CLASSES
    for value, fixed in ((browser, BROWSER_NAMES), (os_family, OS_NAMES)):
        assert value is not None and _is_family(value, fixed)
        assert planted.lower() not in value.lower()
        assert "@" not in value


@given(st.text(max_size=300))
def test_any_text_gives_families(ua: str) -> None:
    browser, os_family, device = coarse(ua)
    if ua in ("", "-"):
        return
    assert browser is not None and _is_family(browser, BROWSER_NAMES)
    assert os_family is not None and _is_family(os_family, OS_NAMES)
    assert device in DEVICE_CLASSES


@given(_FILLER, _PLANTED, _FILLER)
def test_the_shape_refuses_any_address(before: str, planted: str, after: str) -> None:
    assert not family_shape(before + planted + after)


@given(_V4)
def test_the_shape_refuses_the_last_byte_of_an_address(address: IPv4Address) -> None:
    last = str(address).rsplit(".", 1)[1]
    assert not family_shape(f"{last} crawler")


# -- the cache is bounded in bytes: long user agents are never cached


def test_results_are_cached() -> None:
    rule = UserAgent("coarse", cache_entries=8)
    rule.coarse(CHROME_LINUX)
    rule.coarse(CHROME_LINUX)
    assert rule.coarse.cache_info().hits == 1


def test_long_user_agents_are_not_cached() -> None:
    rule = UserAgent("coarse", cache_entries=65536)
    filler = "a" * 30_000
    for i in range(2000):  # 60 MB of distinct user agents, each parsed, none kept
        assert rule.coarse(f"Mozilla/5.0 ({i}) {filler}")[2] in DEVICE_CLASSES
    assert rule.coarse.cache_info().currsize == 0
    rule.coarse(CHROME_LINUX)
    rule.coarse(CHROME_LINUX)
    info = rule.coarse.cache_info()
    assert (info.currsize, info.hits) == (1, 1)


def test_the_longest_cached_user_agent() -> None:
    rule = UserAgent("coarse", cache_entries=8)
    longest = CHROME_LINUX + " " * (MAX_KEY_CHARS - len(CHROME_LINUX))
    rule.coarse(longest)
    rule.coarse(longest + " ")
    assert rule.coarse.cache_info().currsize == 1


def test_no_cache() -> None:
    rule = UserAgent("coarse", cache_entries=0)
    assert rule.coarse(CHROME_LINUX) == coarse(CHROME_LINUX)


# -- only the first MAX_PARSED_CHARS characters are read: a 64 KiB user agent costs no more


@pytest.mark.parametrize(
    "ua, device",
    [
        ("a" * 65536, "other"),
        ("/" * 65536, "other"),
        ("1." * 32768, "other"),
        (" " * 65536, "other"),
        ("Mozilla/5.0 (PlayStation; " + "a" * 65500 + ")", "console"),
        ("crawler " + "a" * 65500, "bot"),
        ("Mozilla/5.0 (Linux; Android 13; Mobile) " + "b" * 65000, "mobile"),
    ],
)
def test_device_class_of_a_64_kib_user_agent(ua: str, device: str) -> None:
    browser, os_family, got = coarse(ua)
    assert got == device
    assert browser is not None and _is_family(browser, BROWSER_NAMES)
    assert os_family is not None and _is_family(os_family, OS_NAMES)


@given(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=MAX_PARSED_CHARS),
    st.sampled_from([" crawler", " spider/1.0", " Xbox", " Mobile", " Edg/120.0", "x" * 65000]),
)
def test_only_the_head_is_read(text: str, tail: str) -> None:
    head = (text + " a" * MAX_PARSED_CHARS)[:MAX_PARSED_CHARS]
    assert coarse(head + tail) == coarse(head)


def test_a_bot_token_past_the_head_is_not_parsed() -> None:
    # the generic bot rules scan everything before the token: 0.2-0.4 s for 64 KiB
    assert coarse("a" * (MAX_PARSED_CHARS + 1) + " crawler") == ("Other", "Other", "other")
