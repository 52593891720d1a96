"""formats.clf: the Common Log Format family, each reading its own lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.formats.clf import TEMPLATES, clf_format
from sidecar.privacy.stage import PrivacyStage
from sidecar.reject import Rejected
from tests.conftest import make_config
from tests.formats import set_fields
from tests.formats.fuzzing import lines, parses_or_rejects

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
REQ = '[10/Feb/2012:16:42:07 -0500] "GET /a?b=1 HTTP/1.1" 200 368'

SAMPLES = {
    "common": f"192.0.2.1 - theuser {REQ}",
    "combined": f'192.0.2.1 - - {REQ} "https://ref.example/p?q" "{UA}"',
    "vhost_combined": f'www.example.com 192.0.2.1 - - {REQ} "https://ref.example/p?q" "{UA}"',
    "vhost_common": f"www.example.com 192.0.2.1 - - {REQ}",
    "nginx-main": f'192.0.2.1 - - {REQ} "https://ref.example/p?q" "{UA}" "203.0.113.9, 10.0.0.1"',
}

COMMON_FIELDS = {
    "remote_addr": "192.0.2.1",
    "ts": "2012-02-10T21:42:07.000Z",
    "method": "GET",
    "path": "/a",
    "query": "b=1",
    "protocol": "HTTP/1.1",
    "status": 200,
    "bytes": 368,
}
EXPECTED = {
    "common": COMMON_FIELDS,
    "combined": {**COMMON_FIELDS, "referrer": "https://ref.example/p?q", "user_agent": UA},
    "vhost_combined": {
        **COMMON_FIELDS,
        "referrer": "https://ref.example/p?q",
        "user_agent": UA,
        "host": "www.example.com",
    },
    "vhost_common": {**COMMON_FIELDS, "host": "www.example.com"},
    "nginx-main": {
        **COMMON_FIELDS,
        "referrer": "https://ref.example/p?q",
        "user_agent": UA,
        "x_forwarded_for": "203.0.113.9, 10.0.0.1",
    },
}


def test_the_family() -> None:
    assert list(TEMPLATES) == list(SAMPLES)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_each_format_reads_its_own_sample(name: str) -> None:
    fmt = clf_format(name)
    assert fmt.name == name
    assert set_fields(fmt.parse(SAMPLES[name])) == EXPECTED[name]


@pytest.mark.parametrize(
    "name, tail",
    [
        # common and vhost_common end on an unquoted value, which read the tail (bad_field)
        ("common", ' "-" "agent"'),  # a combined line read as common
        ("common", " 0.001"),
        ("combined", " 1807"),  # Icecast: listening seconds
        ("combined", ' "-" 0.001 extra'),
        ("combined", "\t0.5"),
        ("vhost_combined", " 12345"),
        ("vhost_common", " +"),
        ("nginx-main", " 0.042 upstream"),
    ],
)
def test_trailing_fields_are_tolerated_and_dropped(name: str, tail: str) -> None:
    assert set_fields(clf_format(name).parse(SAMPLES[name] + tail)) == EXPECTED[name]


@pytest.mark.parametrize(
    "name, line, reason",
    [
        ("combined", SAMPLES["common"], "format_mismatch"),  # no referrer and agent
        ("common", SAMPLES["vhost_common"], "format_mismatch"),  # one field too many up front
        ("vhost_common", SAMPLES["common"], "format_mismatch"),
        ("nginx-main", SAMPLES["combined"], "format_mismatch"),  # no X-Forwarded-For
        ("combined", SAMPLES["combined"] + "extra", "format_mismatch"),  # tail not after a blank
        ("common", "", "format_mismatch"),
        ("common", "192.0.2.1 - - [10/Feb/2012:16:42:07 -0500] GET / 200 1", "format_mismatch"),
        ("common", " - - " + REQ, "bad_ip"),  # no client at all
        ("common", "192.0.2.1 - - " + REQ.replace("10/Feb", "10/Fev"), "bad_timestamp"),
        ("common", "192.0.2.1 - - " + REQ.replace("200", "OK"), "bad_field"),
    ],
)
def test_rejects(name: str, line: str, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        clf_format(name).parse(line)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    "remote",
    ["2001:db8::1", "[2001:db8::1]", "192.0.2.1:54321", "::ffff:192.0.2.1", "unix:"],
)
def test_client_is_passed_on_as_written(remote: str) -> None:
    """The parser hands the client over as text; reading and striking it is privacy's job."""
    assert clf_format("common").parse(f"{remote} - - {REQ}").remote_addr == remote


def test_user_names_with_spaces_do_not_match() -> None:
    with pytest.raises(Rejected) as exc:
        clf_format("common").parse(f"192.0.2.1 - the user {REQ}")
    assert exc.value.reason == "format_mismatch"


def test_matomo_common_sample() -> None:
    line = '1.2.3.4 - theuser [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.0" 301 368'
    r = clf_format("common").parse(line)
    assert (r.remote_addr, r.ts, r.status, r.bytes) == (
        "1.2.3.4",
        "2012-02-10T21:42:07.000Z",
        301,
        368,
    )


def test_a_dash_client_is_read_then_refused_by_the_privacy_stage() -> None:
    raw = clf_format("common").parse("- - - " + REQ)
    assert raw.remote_addr == "-"
    with pytest.raises(Rejected) as exc:
        PrivacyStage(make_config(), None).scrub(raw)
    assert exc.value.reason == "bad_ip"


# --- fuzz: a RawRequest or Rejected, nothing else (issue 7) -------------------------------------


_FORMATS = {name: clf_format(name) for name in TEMPLATES}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@given(data=st.data())
def test_any_line_parses_or_is_rejected(name: str, data: st.DataObject) -> None:
    """Any text, and every format's samples mutated, read by each format of the family."""
    parses_or_rejects(_FORMATS[name], data.draw(lines(tuple(SAMPLES.values()))))
