"""formats.rewrite: a clean record written back in its input's own format."""

from __future__ import annotations

import json

import pytest

from sidecar.formats.base import LineFormat
from sidecar.formats.clf import clf_format
from sidecar.formats.detect import detect
from sidecar.formats.log_format import compile_log_format
from sidecar.formats.nginx_json import JsonFormat
from sidecar.formats.rewrite import WRITERS, Rewriter
from sidecar.privacy.stage import PrivacyStage
from sidecar.record import FIELDS, CleanRecord
from tests.conftest import make_config

UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
REQ = '[24/Nov/2026:10:00:00 +0100] "GET /v/a.mp4?token=s3cr3t HTTP/1.1" 200 5120'
REF = "https://www.google.com/search?q=private"
CDN = (
    'log_format cdn \'$remote_addr - $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" '
    "$request_time $host';"
)
TIMES = (
    "log_format times '$remote_addr $time_iso8601 $msec \"$request_method $request_uri "
    '$server_protocol" $status "$http_forwarded" "$http_x_real_ip" $uri $args\';'
)
TEXT_JSON_ESCAPED = (
    'log_format tj escape=json \'$remote_addr [$time_local] "$request" $status '
    '"$http_referer" "$http_user_agent"\';'
)
JSON_FMT = (
    'log_format j escape=json \'{"ts":"$time_iso8601","ip":"$remote_addr",'
    '"user":"$remote_user","req":"$request","st":$status,"b":$body_bytes_sent,'
    '"rt":$request_time,"ref":"$http_referer","ua":"$http_user_agent","ck":"$http_cookie"}\';'
)
NGINX_JSON = (
    '{"time_iso8601":"2026-11-24T10:00:00+01:00","remote_addr":"81.2.69.160",'
    '"remote_user":"alice","request":"GET /v/a.mp4?token=s3cr3t HTTP/1.1","status":"200",'
    '"body_bytes_sent":5120,"request_time":"0.125","http_referer":"' + REF + '",'
    '"http_user_agent":"' + UA + '","http_cookie":"sid=1","upstream_addr":"10.0.0.5:80"}'
)

# format -> (a line of it, the line written back from its clean record, coarse user agents)
CASES: dict[str, tuple[LineFormat, str, str]] = {
    "common": (
        clf_format("common"),
        f"81.2.69.160 - alice {REQ}",
        '81.2.69.0 - - [24/Nov/2026:09:00:00 +0000] "GET /v/a.mp4 HTTP/1.1" 200 5120',
    ),
    "combined": (
        clf_format("combined"),
        f'81.2.69.160 - - {REQ} "{REF}" "{UA}"',
        '81.2.69.0 - - [24/Nov/2026:09:00:00 +0000] "GET /v/a.mp4 HTTP/1.1" 200 5120 '
        '"https://www.google.com/" "Chrome (Windows; desktop)"',
    ),
    "vhost_combined": (
        clf_format("vhost_combined"),
        f'Video.Example.com:443 2001:218::1 - - {REQ} "-" "{UA}"',
        'video.example.com 2001:218:: - - [24/Nov/2026:09:00:00 +0000] "GET /v/a.mp4 HTTP/1.1"'
        ' 200 5120 "-" "Chrome (Windows; desktop)"',
    ),
    "vhost_common": (
        clf_format("vhost_common"),
        f"198.51.100.7 89.160.20.112 - bob {REQ}",
        '198.51.100.0 89.160.20.0 - - [24/Nov/2026:09:00:00 +0000] "GET /v/a.mp4 HTTP/1.1" '
        "200 5120",
    ),
    "nginx-main": (
        clf_format("nginx-main"),
        f'81.2.69.160 - - {REQ} "{REF}" "{UA}" "203.0.113.9, 198.51.100.1"',
        '81.2.69.0 - - [24/Nov/2026:09:00:00 +0000] "GET /v/a.mp4 HTTP/1.1" 200 5120 '
        '"https://www.google.com/" "Chrome (Windows; desktop)" "81.2.69.0"',
    ),
    "cdn": (
        compile_log_format(CDN),
        f'81.2.69.160 - alice {REQ} "{REF}" "{UA}" "203.0.113.9" 0.125 cdn.example.com',
        '81.2.69.0 - - [24/Nov/2026:09:00:00 +0000] "GET /v/a.mp4 HTTP/1.1" 200 5120 '
        '"https://www.google.com/" "Chrome (Windows; desktop)" "81.2.69.0" 0.125 cdn.example.com',
    ),
    "times": (
        compile_log_format(TIMES),
        '2001:218::1 2026-11-24T10:00:00+01:00 1795510800.125 "GET /a?b=1 HTTP/1.1" 204 '
        '"for=192.0.2.60;proto=https" "192.0.2.8" /a b=1',
        '2001:218:: 2026-11-24T09:00:00+00:00 1795510800.000 "GET /a HTTP/1.1" 204 '
        '"for=\\x22[2001:218::]\\x22" "2001:218::" /a -',
    ),
    "text-escape-json": (
        compile_log_format(TEXT_JSON_ESCAPED),
        f'81.2.69.160 {REQ.split(" 200 ")[0]} 200 "{REF}" "{UA}"',
        '81.2.69.0 [24/Nov/2026:09:00:00 +0000] "GET /v/a.mp4 HTTP/1.1" 200 '
        '"https://www.google.com/" "Chrome (Windows; desktop)"',
    ),
    "json-log-format": (
        compile_log_format(JSON_FMT),
        '{"ts":"2026-11-24T10:00:00+01:00","ip":"81.2.69.160","user":"alice",'
        '"req":"GET /v/a.mp4?token=s3cr3t HTTP/1.1","st":200,"b":5120,"rt":0.125,'
        f'"ref":"{REF}","ua":"{UA}","ck":"sid=1"}}',
        '{"ts":"2026-11-24T09:00:00+00:00","ip":"81.2.69.0","req":"GET /v/a.mp4 HTTP/1.1",'
        '"st":200,"b":5120,"rt":0.125,"ref":"https://www.google.com/",'
        '"ua":"Chrome (Windows; desktop)"}',
    ),
    "nginx-json-detected": (
        detect([NGINX_JSON]),  # type: ignore[dict-item]
        NGINX_JSON,
        '{"time_iso8601":"2026-11-24T09:00:00+00:00","remote_addr":"81.2.69.0",'
        '"request":"GET /v/a.mp4 HTTP/1.1","status":200,"body_bytes_sent":5120,'
        '"request_time":0.125,"http_referer":"https://www.google.com/",'
        '"http_user_agent":"Chrome (Windows; desktop)"}',
    ),
}


def _stage(**sections: dict) -> PrivacyStage:
    return PrivacyStage(make_config(**sections), None)


@pytest.mark.parametrize("name", list(CASES))
def test_rewrite_writes_struck_utc_and_dashes(name: str) -> None:
    fmt, line, written = CASES[name]
    rec = _stage().scrub(fmt.parse(line))
    assert Rewriter(fmt).line(rec) == written


@pytest.mark.parametrize("name", list(CASES))
def test_rewrite_round_trip(name: str) -> None:
    """The written line parses again with the same format, to the same clean record."""
    fmt, line, _ = CASES[name]
    stage = _stage(useragent={"mode": "keep"})  # the agent as it was, so it round-trips too
    rec = stage.scrub(fmt.parse(line))
    written = Rewriter(fmt).line(rec)
    again = stage.scrub(fmt.parse(written))
    assert again == rec
    assert Rewriter(fmt).line(again) == written


@pytest.mark.parametrize("name", list(CASES))
def test_rewritten_line_parses_with_coarse_agents(name: str) -> None:
    fmt, line, _ = CASES[name]
    stage = _stage()
    rec = stage.scrub(fmt.parse(line))
    again = stage.scrub(fmt.parse(Rewriter(fmt).line(rec)))
    skip = {"ua_browser", "ua_os", "ua_device"}  # "Chrome (Windows; desktop)" is no real agent
    assert {k: v for k, v in again.items() if k not in skip} == {
        k: v for k, v in rec.items() if k not in skip
    }


def test_json_rewrite_keeps_known_keys_only_in_input_order() -> None:
    fmt = compile_log_format(JSON_FMT)
    out = json.loads(Rewriter(fmt).line(_stage().scrub(fmt.parse(CASES["json-log-format"][1]))))
    assert list(out) == ["ts", "ip", "req", "st", "b", "rt", "ref", "ua"]  # no user, no ck
    assert isinstance(out["st"], int) and isinstance(out["b"], int)
    assert isinstance(out["rt"], float)


def test_json_rewrite_writes_null_for_missing_values() -> None:
    fmt = compile_log_format(JSON_FMT)
    line = (
        '{"ts":"2026-11-24T10:00:00+01:00","ip":"192.0.2.1","req":"-","st":400,"b":0,'
        '"rt":"-","ref":"-","ua":"-"}'
    )
    out = json.loads(Rewriter(fmt).line(_stage().scrub(fmt.parse(line))))
    assert out == {
        "ts": "2026-11-24T09:00:00+00:00",
        "ip": "192.0.2.0",
        "req": None,
        "st": 400,
        "b": 0,
        "rt": None,
        "ref": None,
        "ua": None,
    }


def test_named_nginx_json_rewrite_is_not_empty() -> None:
    fmt = JsonFormat()
    out = json.loads(Rewriter(fmt).line(_stage().scrub(fmt.parse(NGINX_JSON))))
    assert "81.2.69.0" in out.values()


def _record(**fields: object) -> CleanRecord:
    base: dict[str, object] = dict.fromkeys(FIELDS)
    base.update(ts="2026-11-24T09:00:00.123Z", client_ip="192.0.2.0", status=200, bytes=0)
    base.update(fields)
    return CleanRecord.make(**base)


@pytest.mark.parametrize(
    "variable, fields, written",
    [
        ("remote_addr", {"client_ip": "2001:db8::"}, "2001:db8::"),
        ("http_x_forwarded_for", {}, "192.0.2.0"),
        ("http_x_real_ip", {}, "192.0.2.0"),
        ("http_forwarded", {}, "for=192.0.2.0"),
        ("http_forwarded", {"client_ip": "2001:db8::"}, 'for="[2001:db8::]"'),
        ("time_local", {}, "24/Nov/2026:09:00:00 +0000"),
        ("time_iso8601", {}, "2026-11-24T09:00:00+00:00"),
        ("msec", {}, "1795510800.123"),
        ("time", {}, "2026-11-24T09:00:00.123Z"),
        ("request", {"method": "GET", "path": "/a", "protocol": "HTTP/1.1"}, "GET /a HTTP/1.1"),
        ("request", {"method": "GET", "path": "/a", "query": "lang=en"}, "GET /a?lang=en"),
        ("request", {"method": None, "path": "/a"}, None),
        ("request", {"method": "GET", "path": None}, None),
        ("request_uri", {"path": "/a", "query": "x=1"}, "/a?x=1"),
        ("uri", {"path": "/a", "query": "x=1"}, "/a"),
        ("args", {"query": "x=1"}, "x=1"),
        ("status", {"status": 404}, "404"),
        ("body_bytes_sent", {"bytes": 7}, "7"),
        ("request_time", {"request_time": 0.1234}, "0.123"),
        ("request_time", {}, None),
        ("request_time_msec", {"request_time": 0.25}, "250.000"),
        ("http_referer", {"referrer_host": "ex.example"}, "https://ex.example/"),
        (
            "http_referer",
            {"referrer_host": "video.example.com", "referrer_path": "/watch/1"},
            "https://video.example.com/watch/1",
        ),
        ("http_referer", {"referrer_host": "2001:db8::"}, "https://[2001:db8::]/"),
        (
            "http_referer",
            {"referrer_host": "android-app://com.example.app"},
            "android-app://com.example.app/",
        ),
        ("http_referer", {}, None),
        (
            "http_user_agent",
            {"ua_browser": "Firefox", "ua_os": "Linux", "ua_device": "desktop"},
            "Firefox (Linux; desktop)",
        ),
        ("http_user_agent", {"user_agent": "curl/8", "ua_browser": "curl"}, "curl/8"),  # keep
        ("http_user_agent", {}, None),
        ("host", {"host": "cdn.example"}, "cdn.example"),
    ],
)
def test_writers(variable: str, fields: dict, written: str | None) -> None:
    assert WRITERS[variable](_record(**fields)) == written


def test_text_rewrite_escapes_quotes_and_control_characters() -> None:
    fmt = compile_log_format('$remote_addr [$time_local] "$request" $status $host')
    rec = _record(method="GET", path='/a"b\nc\x7f', protocol="HTTP/1.1", host="h\tx")
    assert Rewriter(fmt).line(rec) == (
        '192.0.2.0 [24/Nov/2026:09:00:00 +0000] "GET /a\\x22b\\x0Ac\\x7F HTTP/1.1" 200 h\\x09x'
    )


def test_text_rewrite_writes_a_dash_for_empty_values() -> None:
    fmt = compile_log_format("$remote_addr [$time_local] $status $host $args $remote_user")
    assert Rewriter(fmt).line(_record(host="", query=None)) == (
        "192.0.2.0 [24/Nov/2026:09:00:00 +0000] 200 - - -"
    )
