"""formats.nginx_json: one JSON object per line, keys read through the aliases or a key map."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.formats.base import Variable
from sidecar.formats.nginx_json import JsonFormat
from sidecar.record import RawRequest
from sidecar.reject import Rejected
from tests.conftest import MATOMO_LOGS
from tests.formats import set_fields
from tests.formats.fuzzing import lines, parses_or_rejects

BASE = {"ip": "192.0.2.1", "date": "2026-11-24T10:00:00+01:00", "status": 200}
TS = "2026-11-24T09:00:00.000Z"


def _line(obj: dict) -> str:
    return json.dumps(obj)


@pytest.mark.parametrize(
    "obj, fields",
    [
        # nginx's own variable names
        (
            {
                "remote_addr": "192.0.2.1",
                "time_iso8601": "2026-11-24T10:00:00+01:00",
                "request": "GET /a?b HTTP/1.1",
                "status": 200,
                "body_bytes_sent": 12,
                "request_time": 0.25,
                "http_referer": "https://ex.example/",
                "http_user_agent": "curl/8",
                "http_x_forwarded_for": "203.0.113.9",
                "host": "video.example.com",
            },
            {
                "remote_addr": "192.0.2.1",
                "ts": TS,
                "method": "GET",
                "path": "/a",
                "query": "b",
                "protocol": "HTTP/1.1",
                "status": 200,
                "bytes": 12,
                "request_time": 0.25,
                "referrer": "https://ex.example/",
                "user_agent": "curl/8",
                "x_forwarded_for": "203.0.113.9",
                "host": "video.example.com",
            },
        ),
        # Matomo's keys: ip, date, path + method, status as a string, length,
        # generation_time_milli (milliseconds -> request_time in seconds)
        (
            {
                "ip": "192.0.2.1",
                "date": "2026-11-24T10:00:00+01:00",
                "path": "/a?b=1",
                "method": "POST",
                "status": "404",
                "length": 12,
                "generation_time_milli": 250,
                "referrer": "http://ex.example/",
                "user_agent": "curl/8",
            },
            {
                "remote_addr": "192.0.2.1",
                "ts": TS,
                "method": "POST",
                "path": "/a",
                "query": "b=1",
                "status": 404,
                "bytes": 12,
                "request_time": 0.25,
                "referrer": "http://ex.example/",
                "user_agent": "curl/8",
            },
        ),
        # status as int or string, bytes as string, time as $msec number
        (
            {"client_ip": "2001:db8::1", "ts": 1795510800.25, "status": 301, "bytes": "7"},
            {
                "remote_addr": "2001:db8::1",
                "ts": "2026-11-24T09:00:00.250Z",
                "status": 301,
                "bytes": 7,
            },
        ),
        # time as a $time_local string, url with an absolute URI
        (
            {
                "ip": "192.0.2.1",
                "@timestamp": "24/Nov/2026:10:00:00 +0100",
                "url": "https://Cdn.Example/v.mp4?tok=1",
                "status": "200",
            },
            {
                "remote_addr": "192.0.2.1",
                "ts": TS,
                "host": "cdn.example",
                "path": "/v.mp4",
                "query": "tok=1",
                "status": 200,
                "bytes": 0,
            },
        ),
        # $uri and $args
        (
            {**BASE, "uri": "/p", "args": "a=1"},
            {
                "remote_addr": "192.0.2.1",
                "ts": TS,
                "path": "/p",
                "query": "a=1",
                "status": 200,
                "bytes": 0,
            },
        ),
        # request_time wins over generation_time_milli; duration is an alias
        (
            {**BASE, "request_time": 0.1, "generation_time_milli": 250},
            {"remote_addr": "192.0.2.1", "ts": TS, "status": 200, "bytes": 0, "request_time": 0.1},
        ),
        (
            {**BASE, "duration": "1.5"},
            {"remote_addr": "192.0.2.1", "ts": TS, "status": 200, "bytes": 0, "request_time": 1.5},
        ),
        # nested values, lists and nulls are ignored; the first of two spellings is read
        (
            {
                **BASE,
                "user_agent": {"family": "Firefox"},
                "referrer": ["https://a.example/"],
                "host": None,
                "request": {"uri": "/nested"},
                "remote_ip": "198.51.100.99",
            },
            {"remote_addr": "192.0.2.1", "ts": TS, "status": 200, "bytes": 0},
        ),
        (
            {"ip": None, "remote_addr": "192.0.2.7", "date": BASE["date"], "status": 200},
            {"remote_addr": "192.0.2.7", "ts": TS, "status": 200, "bytes": 0},
        ),
        # unknown keys (cookies, users, upstreams) are not read
        (
            {**BASE, "remote_user": "alice", "http_cookie": "sid=1", "upstream_addr": "10.0.0.1"},
            {"remote_addr": "192.0.2.1", "ts": TS, "status": 200, "bytes": 0},
        ),
    ],
)
def test_generic_keys(obj: dict, fields: dict) -> None:
    assert set_fields(JsonFormat().parse(_line(obj))) == fields


@pytest.mark.parametrize(
    "line, reason",
    [
        ("[1, 2]", "format_mismatch"),  # not an object
        ('"a string"', "format_mismatch"),
        ("42", "format_mismatch"),
        ("null", "format_mismatch"),
        ("{bad json", "format_mismatch"),  # invalid JSON
        ('{"ip": "192.0.2.1",}', "format_mismatch"),
        (' {"ip": "192.0.2.1"}', "format_mismatch"),  # leading blank: not an object line
        ("", "format_mismatch"),
        ('192.0.2.1 - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.1" 200 1', "format_mismatch"),
        # an object without a client, a time or a status is no access-log line
        (_line({"date": BASE["date"], "status": 200}), "format_mismatch"),  # missing ip
        (_line({**BASE, "ip": None}), "format_mismatch"),
        (_line({**BASE, "ip": {"v4": "192.0.2.1"}}), "format_mismatch"),  # nested: not read
        (_line({"ip": "192.0.2.1", "status": 200}), "format_mismatch"),  # missing time
        (_line({"ip": "192.0.2.1", "date": BASE["date"]}), "format_mismatch"),  # no status
        (_line({"a": 1}), "format_mismatch"),
        # the keys are there, a value is bad
        (_line({**BASE, "ip": ""}), "bad_ip"),
        (_line({**BASE, "date": "yesterday"}), "bad_timestamp"),
        (_line({**BASE, "date": "2026-11-24T10:00:00"}), "bad_timestamp"),  # no offset
        (_line({**BASE, "date": ""}), "bad_timestamp"),
        (_line({**BASE, "status": "OK"}), "bad_field"),
        (_line({**BASE, "status": True}), "bad_field"),
        (_line({**BASE, "status": 200.0}), "bad_field"),
        (_line({**BASE, "status": 1000}), "bad_field"),
        (_line({**BASE, "bytes": 1.5}), "bad_field"),
        (_line({**BASE, "generation_time_milli": "abc"}), "bad_field"),
    ],
)
def test_rejects(line: str, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        JsonFormat().parse(line)
    assert exc.value.reason == reason


def test_key_map_overrides_aliases() -> None:
    fmt = JsonFormat("mine", {"addr": "remote_addr", "when": "msec", "code": "status", "ip": None})
    r = fmt.parse('{"addr":"192.0.2.1","when":"1795510800","code":"204","ip":"198.51.100.1"}')
    assert (r.remote_addr, r.ts, r.status) == ("192.0.2.1", "2026-11-24T09:00:00.000Z", 204)
    assert fmt.segments == (
        Variable("addr", "remote_addr"),
        Variable("when", "msec"),
        Variable("code", "status"),
        Variable("ip", None),
    )
    assert fmt.escape == "json"


def test_builders_stay_bounded_for_ever_changing_keys() -> None:
    fmt = JsonFormat()
    optional = ["bytes", "uri", "args", "host", "referrer", "user_agent", "duration"]
    for mask in range(1 << len(optional)):  # 128 different sets of keys
        obj = BASE | {k: "1" for i, k in enumerate(optional) if mask >> i & 1}
        assert fmt.parse(_line(obj)).status == 200
    assert 0 < len(fmt._builders) <= 64


def test_learn_keys_keeps_the_first_lines_order() -> None:
    fmt = JsonFormat().learn_keys(
        '{"time_iso8601":"t","remote_addr":"a","remote_user":"u","status":1,"ip":"b"}'
    )
    assert fmt.name == "nginx-json"
    assert fmt.keys == {
        "time_iso8601": "time_iso8601",
        "remote_addr": "remote_addr",
        "remote_user": None,
        "status": "status",
        "ip": "remote_addr",
    }


def test_learn_keys_refuses_invalid_json() -> None:
    with pytest.raises(ValueError):
        JsonFormat().learn_keys("{not json")


def test_matomo_sample() -> None:
    lines = (MATOMO_LOGS / "nginx_json.log").read_text().splitlines()
    for line in lines:
        r = JsonFormat().parse(line)
        assert (r.remote_addr, r.ts, r.status, r.bytes, r.host, r.path) == (
            "1.2.3.4",
            "2013-10-10T14:52:00.000Z",
            200,
            192,
            "www.piwik.org",
            "/piwik.php",
        )
        assert r.request_time == pytest.approx(0.000008)
        assert r.query is not None and r.query.startswith("action_name=")


# --- control characters in decoded values (issue 7, item 19) ---------------------------------------

FULL = {
    "remote_addr": "192.0.2.1",
    "time_iso8601": "2026-11-24T10:00:00+01:00",
    "request": "GET /a?b HTTP/1.1",
    "status": 200,
    "http_referer": "https://ex.example/",
    "http_user_agent": "curl/8",
    "host": "video.example.com",
}
CONTROLS = ["\x00", "\x01", "\x1b", "\n", "\r", "\x0b", "\x7f", "\x80", "\x85", "\x9f"]
CONTROLS += ["\u2028", "\u2029"]


@pytest.mark.parametrize("key", ["request", "http_referer", "http_user_agent", "host"])
@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["escaped", "raw"])
def test_a_control_character_in_a_value_is_binary(key: str, char: str, ensure_ascii: bool) -> None:
    """`"\\u0000"` or `"\\u2028"` decoded into a path, a referrer, ... is what raw control bytes
    are in a text line (the pipeline's byte check never sees them): the line is `binary`."""
    obj = dict(FULL)
    obj[key] = obj[key].replace("/", "/x" + char, 1) if "/" in obj[key] else obj[key] + char
    line = json.dumps(obj, ensure_ascii=ensure_ascii)
    if not ensure_ascii and char <= "\x7f":
        # raw C0 is no JSON (escaped all the same); raw DEL is a raw control byte, rejected by
        # the pipeline's byte check before any format sees the line
        line = json.dumps(obj)
    with pytest.raises(Rejected) as exc:
        JsonFormat().parse(line)
    assert exc.value.reason == "binary"


@pytest.mark.parametrize(
    "value",
    [
        "/a\tb",  # a tab is read in text lines too
        '/say"hi"',  # escaped quote
        "/back\\slash",
        "/vid\u00e9o/\u65e5\u672c",  # non-ASCII text, escaped or not
        "/\u00a0nbsp",
    ],
)
@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["escaped", "raw"])
def test_other_escapes_are_read(value: str, ensure_ascii: bool) -> None:
    line = json.dumps({**FULL, "request": f"GET {value} HTTP/1.1"}, ensure_ascii=ensure_ascii)
    assert JsonFormat().parse(line).path == value


def test_an_unread_value_may_hold_control_characters() -> None:
    line = json.dumps({**FULL, "http_cookie": "a\x00b", "upstream_addr": "\u2028"})
    assert JsonFormat().parse(line).path == "/a"


# --- the sidecar JSON log_format (nginx/): a beacon's body -------------------------------------
#: lines as nginx 1.22 writes them with the sidecar log_format (escape=json): its keys are the
#: variable names, an empty variable is "", `$request_body` of a GET is ""
SIDECAR_GET = (
    '{"time_iso8601":"2026-12-01T13:20:20+00:00","remote_addr":"192.0.2.1","host":"cdn.example",'
    '"request_method":"GET","request_uri":"/beacon?event=play&x=1","server_protocol":"HTTP/1.1",'
    '"status":"204","body_bytes_sent":"0","request_time":"0.000","http_referer":"",'
    '"http_user_agent":"curl/7.88.1","http_x_forwarded_for":"","upstream_cache_status":"",'
    '"request_body":""}'
)
SIDECAR_POST = (
    SIDECAR_GET.replace('"GET"', '"POST"')
    .replace("?event=play&x=1", "")
    .replace(
        '"request_body":""', '"request_body":"{\\"event\\":\\"pause\\",\\n \\"u\\":\\"\u00e9\\"}"'
    )
)


def test_the_sidecar_format_reads_a_beacon_body() -> None:
    get = JsonFormat().parse(SIDECAR_GET)
    assert (get.method, get.path, get.query, get.body) == ("GET", "/beacon", "event=play&x=1", None)
    assert (get.status, get.bytes, get.request_time, get.host) == (204, 0, 0.0, "cdn.example")
    post = JsonFormat().parse(SIDECAR_POST)
    assert (post.method, post.path, post.query) == ("POST", "/beacon", None)
    # a body may hold a newline (pretty-printed JSON): it is no reason to reject the line
    assert post.body == '{"event":"pause",\n "u":"\u00e9"}'


@pytest.mark.parametrize("char", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_a_control_character_in_the_body_is_read(char: str) -> None:
    line = json.dumps({**FULL, "request_body": f"event=a{char}b"})
    assert JsonFormat().parse(line).body == f"event=a{char}b"
    with pytest.raises(Rejected):  # in any other value read: binary, as before
        JsonFormat().parse(json.dumps({**FULL, "request_body": "x", "host": f"a{char}"}))


# --- fuzz: a RawRequest or Rejected, nothing else (issue 7) -------------------------------------

_VALID_JSON = (
    json.dumps(FULL),
    json.dumps({**FULL, "msec": "1795510800.123", "time_iso8601": None}),
    json.dumps({**BASE, "path": "/a", "method": "GET", "length": 12, "generation_time_milli": 5}),
    json.dumps({**FULL, "request_time": 0.25, "http_x_forwarded_for": "203.0.113.9"}),
    '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00+01:00","status":200,"ua":"a\\"b\\\\c\\u00e9"}',
    '{"ip":"192.0.2.1","msec":1795510800.5,"status":"200","body_bytes_sent":1e3,"x":[[1]]}',
)
_KEYED = JsonFormat("mine", {k: k for k in FULL} | {"msec": "msec"})


@pytest.mark.parametrize("fmt", [JsonFormat(), _KEYED], ids=["aliases", "key-map"])
@given(data=st.data())
def test_any_line_parses_or_is_rejected(fmt: JsonFormat, data: st.DataObject) -> None:
    parses_or_rejects(fmt, data.draw(lines(_VALID_JSON)))


@pytest.mark.parametrize(
    "line",
    [
        '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00Z","status":200,"path":"/\\ud800"}',
        '{"ip":"192.0.2.1","msec":100000000000000000,"status":200}',
        '{"ip":"192.0.2.1","msec":1e17,"status":200}',
        '{"ip":"192.0.2.1","msec":"' + "9" * 5000 + '","status":200}',
        '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00Z","status":200,"bytes":1' + "0" * 400 + "}",
        '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00Z","status":1' + "0" * 30 + "}",
        '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00Z","status":200,"x":' + "[" * 5000,
        '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00Z","status":200,"x":'
        + "[" * 1000
        + "]" * 1000
        + "}",
        '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00Z","status":200,"request_time":1e308}',
        '{"ip":"192.0.2.1","date":"9999-12-31T23:59:59-23:59","status":200}',
        '{"ip":["192.0.2.1"],"date":"2026-11-24T10:00:00Z","status":200}',
        '{"ip":true,"date":false,"status":null}',
    ],
)
def test_lines_that_crashed_or_might(line: str) -> None:
    parses_or_rejects(JsonFormat(), line)


def test_lines_read_through_the_cached_key_plan_equal_the_first() -> None:
    # the second line of the same keys takes the cached plan; a null value takes the slow way
    fmt = JsonFormat()
    first = '{"remote_addr":"192.0.2.1","time_iso8601":"2026-12-01T10:00:00+00:00","status":"200","request_uri":"/a?x=1"}'
    one, two = fmt.parse(first), fmt.parse(first)
    assert all(getattr(one, k) == getattr(two, k) for k in RawRequest.__slots__)
    nulled = fmt.parse(first.replace('"/a?x=1"', "null"))
    assert nulled.path is None and nulled.status == 200
