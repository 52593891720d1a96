"""formats.detect: `--format auto` picks the built-in format that reads most of the first lines."""

from __future__ import annotations

import pytest

from sidecar.formats.detect import SAMPLE_LINES, detect
from sidecar.formats.nginx_json import JsonFormat
from sidecar.pipeline import fit_format
from tests.conftest import MATOMO_LOGS

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36"
REQ = '[10/Feb/2012:16:42:07 -0500] "GET /a?b HTTP/1.1" 200 368'

SAMPLES = {
    "common": f"192.0.2.1 - - {REQ}",
    "combined": f'192.0.2.1 - - {REQ} "https://ref.example/" "{UA}"',
    "vhost_combined": f'www.example.com 192.0.2.1 - - {REQ} "-" "{UA}"',
    "vhost_common": f"www.example.com 192.0.2.1 - - {REQ}",
    "nginx-main": f'192.0.2.1 - - {REQ} "-" "{UA}" "203.0.113.9"',
    "nginx-json": (
        '{"time_iso8601":"2026-11-24T10:00:00+01:00","remote_addr":"192.0.2.1",'
        '"request":"GET / HTTP/1.1","status":200,"body_bytes_sent":12}'
    ),
}
GARBAGE = [
    "hello world",
    "#Fields: date time c-ip cs-method",
    "\\x16\\x03\\x01",
    "2015-05-13T23:39:43.945958Z my-loadbalancer 1.2.3.4:2817 10.0.0.1:80 0.000086",
]


@pytest.mark.parametrize("name", list(SAMPLES))
def test_detects_each_built_in_format(name: str) -> None:
    fmt = detect([SAMPLES[name]] * 3)
    assert fmt is not None and fmt.name == name


@pytest.mark.parametrize("name", list(SAMPLES))
def test_detects_a_single_line(name: str) -> None:
    fmt = detect([SAMPLES[name]])
    assert fmt is not None and fmt.name == name


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [""],
        ["", "   ", "\t"],
        GARBAGE,
        ["[1, 2, 3]", "{not json"],  # JSON-ish but no object
    ],
)
def test_none_for_lines_of_no_known_format(lines: list[str]) -> None:
    assert detect(lines) is None


@pytest.mark.parametrize(
    "line",
    [
        '{"a": 1}',
        '{"level":"info","msg":"handled request","request":{"remote_ip":"1.2.3.4"}}',  # Caddy
    ],
)
def test_none_for_json_objects_of_unknown_keys(line: str) -> None:
    # was: any JSON object was nginx-json (a missing client voted as a "bad value"), and
    # every line was then rejected bad_ip
    assert detect([line] * 3) is None


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_few_bad_lines_do_not_change_the_choice(name: str) -> None:
    lines = [*GARBAGE[:2], SAMPLES[name], "", SAMPLES[name], GARBAGE[2], SAMPLES[name]]
    fmt = detect(lines)
    assert fmt is not None and fmt.name == name


@pytest.mark.parametrize(
    "bad, name",
    [
        (SAMPLES["combined"].replace("10/Feb", "32/Feb"), "combined"),  # bad time still votes
        (SAMPLES["combined"].replace(" 200 ", " 2x0 "), "combined"),  # bad status still votes
        (SAMPLES["vhost_common"].replace("192.0.2.1", ""), "vhost_common"),  # bad ip still votes
    ],
)
def test_lines_with_one_bad_value_still_vote(bad: str, name: str) -> None:
    fmt = detect([bad, bad, bad, GARBAGE[0]])
    assert fmt is not None and fmt.name == name


def test_majority_wins() -> None:
    lines = [SAMPLES["common"]] * 2 + [SAMPLES["vhost_common"]] * 5
    fmt = detect(lines)
    assert fmt is not None and fmt.name == "vhost_common"


def test_only_the_first_sample_lines_count() -> None:
    lines = [SAMPLES["vhost_common"]] * SAMPLE_LINES + [SAMPLES["common"]] * (SAMPLE_LINES * 2)
    fmt = detect(lines)
    assert fmt is not None and fmt.name == "vhost_common"


def test_ties_go_to_the_more_specific_format() -> None:
    # combined reads nginx-main lines too (trailing field tolerated): a tie, nginx-main comes first
    fmt = detect([SAMPLES["nginx-main"]] * 2)
    assert fmt is not None and fmt.name == "nginx-main"
    # a combined line among them: combined reads all three, nginx-main two
    fmt = detect([SAMPLES["nginx-main"], SAMPLES["combined"], SAMPLES["nginx-main"]])
    assert fmt is not None and fmt.name == "combined"


def test_json_detection_learns_the_first_lines_keys() -> None:
    fmt = detect([SAMPLES["nginx-json"]])
    assert isinstance(fmt, JsonFormat)
    assert list(fmt.keys) == [
        "time_iso8601",
        "remote_addr",
        "request",
        "status",
        "body_bytes_sent",
    ]


def test_json_detection_with_a_broken_first_json_line() -> None:
    broken = SAMPLES["nginx-json"][:-1]  # no closing brace
    fmt = detect([broken, SAMPLES["combined"], SAMPLES["combined"]])
    assert fmt is not None and fmt.name == "combined"


def test_detect_format_on_a_chunk_with_crlf_and_invalid_utf8() -> None:
    chunk = (SAMPLES["combined"] + "\r\n").encode() * 3 + b"\xff\xfe junk\r\n"
    fmt = fit_format(None, chunk)
    assert fmt is not None and fmt.name == "combined"


@pytest.mark.parametrize(
    "file, name",
    [
        ("common.log", "common"),
        ("common_vhost.log", "vhost_common"),
        ("common_complete.log", "vhost_combined"),
        ("ncsa_extended.log", "combined"),
        ("icecast2.log", "combined"),  # combined plus a trailing field
        ("logs_to_tests.log", "combined"),
        ("static_ignores.log", "vhost_combined"),
        ("nginx_json.log", "nginx-json"),
        ("iis.log", None),
        ("amazon_cloudfront_web.log", None),
        ("haproxy.log", None),
        ("shoutcast.log", None),
    ],
)
def test_matomo_samples(file: str, name: str | None) -> None:
    fmt = fit_format(None, (MATOMO_LOGS / file).read_bytes())
    assert (fmt.name if fmt is not None else None) == name
