"""privacy.referrer: first-party pages keep a path, other sites a host, nothing keeps a query."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.privacy.ip import Masker
from sidecar.privacy.literals import LiteralMasker
from sidecar.privacy.referrer import Referrer

FIRST_PARTY = Referrer(["example-video.eu", "player.example.net"])


@pytest.mark.parametrize(
    "referrer, host, path",
    [
        # first party (and subdomains): the path, never the query or fragment
        ("https://www.example-video.eu/watch/42?t=10&uid=7#c", "www.example-video.eu", "/watch/42"),
        ("https://example-video.eu", "example-video.eu", "/"),
        ("https://EXAMPLE-VIDEO.EU./a;jsessionid=XYZ", "example-video.eu", "/a"),
        ("http://player.example.net:8443/embed/1", "player.example.net", "/embed/1"),
        # look-alikes are third parties
        ("https://notexample-video.eu/watch", "notexample-video.eu", None),
        ("https://example-video.eu.evil.com/x", "example-video.eu.evil.com", None),
        # third party: the host only; userinfo, port, search terms never survive
        ("https://user:pw@search.example.org:8443/results?q=my+name", "search.example.org", None),
        ("https://www.google.com/search?q=jane+doe", "www.google.com", None),
        # IP hosts are struck
        ("http://203.0.113.9:8080/p?x=1", "203.0.113.0", None),
        ("http://[2001:db8:85a3::9]/p", "2001:db8:85a3::", None),
        # non-HTTP referrers keep scheme and host
        ("android-app://com.google.android.gm/", "android-app://com.google.android.gm", None),
        # no scheme: read as a host
        ("www.example.com", "www.example.com", None),
        # nothing with no host
        ("-", None, None),
        ("", None, None),
        ("about:blank", None, None),
        ("data:text/html,<b>hi</b>", None, None),
        ("/relative/path", None, None),
        ("http://", None, None),
        ("http://[::1", None, None),
        ("http://exa mple.com/", None, None),
    ],
)
def test_referrer_table(referrer: str, host: str | None, path: str | None) -> None:
    rule = Referrer(["example-video.eu", "player.example.net"], strike=LiteralMasker(Masker()).mask)
    assert rule.reduce(referrer) == (host, path)


@pytest.mark.parametrize(
    "referrer, expected",
    [
        ("https://www.google.com/search?q=x", (None, None)),
        ("https://www.example-video.eu/watch/1?q=x", ("www.example-video.eu", "/watch/1")),
        ("android-app://com.example/", (None, None)),
    ],
)
def test_third_party_drop(referrer: str, expected: tuple) -> None:
    assert Referrer(["example-video.eu"], third_party="drop").reduce(referrer) == expected


@given(st.text(max_size=80))
def test_no_query_or_fragment_ever_survives(text: str) -> None:
    host, path = FIRST_PARTY.reduce("https://www.example-video.eu/" + text)
    assert host == "www.example-video.eu"
    assert path is not None and "?" not in path and "#" not in path and ";" not in path
    host, path = FIRST_PARTY.reduce("https://other.example/" + text)
    assert path is None
