"""formats.detect: `--format auto` picks the built-in format that reads most of the first lines."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.formats.base import LineFormat
from sidecar.formats.clf import clf_format
from sidecar.formats.detect import DETECT_CHUNKS, SAMPLE_LINES, detect, fit_format, fit_stream
from sidecar.formats.nginx_json import JsonFormat
from sidecar.record import RawRequest
from tests.conftest import MATOMO_LOGS
from tests.formats.test_nginx_json import SIDECAR_GET, SIDECAR_POST

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


def test_the_sidecar_json_format_is_detected() -> None:
    """nginx/'s JSON log_format: nginx's variable names as keys, `upstream_cache_status` not
    read (never a mismatch), `request_body` read; beacons and content lines alike."""
    content = SIDECAR_GET.replace("/beacon?event=play&x=1", "/v/a/seg_1.m4s").replace(
        '"upstream_cache_status":""', '"upstream_cache_status":"HIT"'
    )
    fmt = detect([content, SIDECAR_GET, SIDECAR_POST])
    assert isinstance(fmt, JsonFormat)
    assert fmt.keys["upstream_cache_status"] is None
    assert fmt.keys["request_body"] == "request_body"
    assert [fmt.parse(line).path for line in (content, SIDECAR_GET, SIDECAR_POST)] == [
        "/v/a/seg_1.m4s",
        "/beacon",
        "/beacon",
    ]
    assert fmt.parse(SIDECAR_POST).body is not None


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


# --- past the first lines: junk ahead of the log, a live pipe, a parser that fails ----------


def test_junk_ahead_of_the_sample_does_not_hide_the_log() -> None:
    lines = ["GET /healthz", ""] * (SAMPLE_LINES + 10) + [SAMPLES["combined"]] * 3
    fmt = detect(lines)
    assert fmt is not None and fmt.name == "combined"


def test_a_broken_json_line_ahead_does_not_hide_the_json_log() -> None:
    broken = SAMPLES["nginx-json"][:-1]  # no closing brace: learns no keys
    fmt = detect(["{oops", broken, SAMPLES["nginx-json"], SAMPLES["nginx-json"]])
    assert fmt is not None and fmt.name == "nginx-json"


def _chunk(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


@pytest.mark.parametrize("junk", ["GET /healthz", "", "\x00\x01", "hello from 192.0.2.9"])
@pytest.mark.parametrize("name", list(SAMPLES))
def test_detection_reads_on_while_nothing_matched(junk: str, name: str) -> None:
    chunks = [_chunk(junk), _chunk(junk, junk), _chunk(SAMPLES[name], SAMPLES[name])]
    fmt, stream, any_input = fit_stream(None, iter(chunks))
    assert fmt is not None and fmt.name == name
    assert list(stream) == chunks and any_input  # every chunk read is handed back, in order


def test_detection_on_a_stream_is_bounded() -> None:
    read: list[int] = []

    def junk_forever():
        for i in itertools.count():
            read.append(i)
            yield _chunk(f"junk {i}")

    fmt, stream, any_input = fit_stream(None, junk_forever())
    assert fmt is None and any_input and len(read) == DETECT_CHUNKS
    assert next(stream) == _chunk("junk 0")


def test_no_input_is_no_format() -> None:
    fmt, stream, any_input = fit_stream(None, iter([]))
    assert fmt is None and not any_input and list(stream) == []


def test_a_named_format_reads_one_chunk_only() -> None:
    named = JsonFormat()
    chunks = [_chunk(SAMPLES["nginx-json"]), _chunk("never read")]
    fmt, stream, _ = fit_stream(named, iter(chunks))
    assert isinstance(fmt, JsonFormat) and "remote_addr" in fmt.keys.values()
    assert list(stream) == chunks


class _Buggy(LineFormat):
    """A parser with a bug: it fails in a way no parser should (a real one did, on `msec=1e17`)."""

    name = "buggy"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def parse(self, line: str) -> RawRequest:
        raise self.exc


@pytest.mark.parametrize("exc", [OverflowError("x"), OSError(75, "x"), ValueError(), KeyError()])
def test_a_failing_parser_is_a_non_match(exc: Exception) -> None:
    combined = clf_format("combined")
    fmt = detect([SAMPLES["combined"]] * 3, [_Buggy(exc), combined])
    assert fmt is combined
    assert detect([SAMPLES["combined"]], [_Buggy(exc)]) is None


@settings(max_examples=300)
@given(st.lists(st.text(max_size=200), max_size=20))
def test_detection_never_raises(lines: list[str]) -> None:
    # log-like pieces around random text, so that parsers get past their first checks
    shaped = [f'192.0.2.1 - - [{t}] "GET /{t} HTTP/1.1" {t} 1 msec={t}' for t in lines]
    detect(lines + shaped + ["{" + t for t in lines])
    fit_stream(None, iter([_chunk(*lines), _chunk(*shaped)]))
