"""privacy.referrer: first-party pages keep a path, other sites a host, nothing keeps a query."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.privacy.host import HostRule
from sidecar.privacy.ip import Masker
from sidecar.privacy.literals import LiteralMasker
from sidecar.privacy.referrer import Referrer

FIRST_PARTY = Referrer(["example-video.eu", "player.example.net"])
_LITERALS = LiteralMasker(Masker())
STRICT = Referrer(
    ["example-video.eu", "player.example.net"],
    strike=_LITERALS.mask,
    host=HostRule(Masker(), _LITERALS).scrub,
)


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
        # browsers read `\\` as `/` in http(s) URLs: the host is evil.net, not the first party
        ("https://evil.net\\@example-video.eu/secret/page", "evil.net", None),
        ("https:\\\\evil.net\\x@www.example-video.eu/p", "evil.net", None),
        ("https:///www.example-video.eu/a", "www.example-video.eu", "/a"),  # extra slashes
        ("ht\ttps://www.example-video.eu/a\nb", "www.example-video.eu", "/ab"),  # tabs, newlines
        # scheme-relative: an http(s) URL, never `://host`
        ("//203.0.113.9/x", "203.0.113.0", None),
        ("//www.example-video.eu/watch/9", "www.example-video.eu", "/watch/9"),
        # hosts in every notation a browser reads as an address
        ("http://3405803855/p", "203.0.113.0", None),
        ("http://0xcb.0x00.0x71.0x1a/p", "203.0.113.0", None),
        ("http://0313.0000.0161.0116./p", "203.0.113.0", None),
        ("http://２０３．０．１１３．７/p", "203.0.113.0", None),
        ("http://203-0-113-7.dsl.example.net/", "203-0-113-0.dsl.example.net", None),
        ("http://1.2.3.999/", None, None),  # ends in a number, no address: no host
        # a first-party path has its literals struck, in every notation
        (
            "https://www.example-video.eu/at/cam:1:203.0.113.11/x",
            "www.example-video.eu",
            "/at/cam:1:203.0.113.0/x",
        ),
        (
            "https://www.example-video.eu/v/203%252E0%252E113%252E81",
            "www.example-video.eu",
            "/v/203.0.113.0",
        ),
        # what used to crash the run (ValueError from the URL parser)
        ("[203.0.113.160x]", None, None),
        ("[::1", None, None),
        ("a]b", None, None),
        ("http://[203.0.113.160x]/", None, None),
        ("http://a]b/", None, None),
    ],
)
def test_referrer_table(referrer: str, host: str | None, path: str | None) -> None:
    assert STRICT.reduce(referrer) == (host, path)


@given(st.text(max_size=120))
def test_any_referrer_is_reduced_without_error(text: str) -> None:
    host, path = STRICT.reduce(text)
    assert host is None or isinstance(host, str)
    assert path is None or host is not None


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
