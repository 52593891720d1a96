"""formats.log_format: nginx log_format directives and templates compiled to parsers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import UsageError
from sidecar.formats.base import Literal, Variable
from sidecar.formats.log_format import (
    TemplateFormat,
    compile_log_format,
    parse_directive,
    tokenize,
)
from sidecar.formats.nginx_json import JsonFormat
from sidecar.formats.rewrite import Rewriter
from sidecar.privacy.stage import PrivacyStage
from sidecar.record import RawRequest
from sidecar.reject import Rejected
from tests.conftest import make_config
from tests.formats import set_fields
from tests.formats.fuzzing import lines, parses_or_rejects

RAW_FIELDS = RawRequest.__slots__


@pytest.mark.parametrize(
    "text, parsed",
    [
        (
            "log_format main '$remote_addr [$time_local] $status';",
            ("main", "default", "$remote_addr [$time_local] $status"),
        ),
        (  # several quoted parts are joined; whitespace between them is not kept
            "log_format main '$remote_addr - $remote_user [$time_local] '\n"
            "                '\"$request\" $status';",
            ("main", "default", '$remote_addr - $remote_user [$time_local] "$request" $status'),
        ),
        (
            'log_format j escape=json \'{"ip":"$remote_addr"}\';',
            ("j", "json", '{"ip":"$remote_addr"}'),
        ),
        (
            "log_format n escape=none '$remote_addr $msec $status'",  # no trailing ;
            ("n", "none", "$remote_addr $msec $status"),
        ),
        (
            '  log_format   combo   "$remote_addr $status $msec"  ;  ',  # double quotes, blanks
            ("combo", "default", "$remote_addr $status $msec"),
        ),
        (
            "log_format d escape=default '$remote_addr' ' ' '$msec $status';",
            ("d", "default", "$remote_addr $msec $status"),
        ),
        # a bare template: named custom, kept as it is
        (
            '$remote_addr - [$time_local] "$request" $status',
            ("custom", "default", '$remote_addr - [$time_local] "$request" $status'),
        ),
        ("  $remote_addr $msec $status  ", ("custom", "default", "$remote_addr $msec $status")),
    ],
)
def test_parse_directive(text: str, parsed: tuple[str, str, str]) -> None:
    assert parse_directive(text) == parsed


@pytest.mark.parametrize(
    "text, message",
    [
        ("log_format", "needs a name and a format string"),
        ("log_format x", "needs a name and a format string"),
        ("log_format x;", "needs a name and a format string"),
        ("log_format x escape=foo '$remote_addr'", "escape=foo is not default, json or none"),
        ("log_format x '$remote_addr", "cannot read the log_format directive"),  # no closing '
    ],
)
def test_parse_directive_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_directive(text)


@pytest.mark.parametrize(
    "template, segments",
    [
        (
            "$remote_addr [$time_local]",
            (
                Variable("remote_addr", "remote_addr"),
                Literal(" ["),
                Variable("time_local", "time_local"),
                Literal("]"),
            ),
        ),
        (
            "${status}ms",  # braces end a name glued to text
            (Variable("status", "status"), Literal("ms")),
        ),
        (
            "$status.$msec",
            (Variable("status", "status"), Literal("."), Variable("msec", "msec")),
        ),
        (
            "$remote_user$http_cookie",  # unknown names: canonical None
            (Variable("remote_user", None), Variable("http_cookie", None)),
        ),
        (
            "$http_host$realip_remote_addr",  # synonyms: their canonical name
            (Variable("http_host", "host"), Variable("realip_remote_addr", "remote_addr")),
        ),
        ("plain text", (Literal("plain text"),)),
        ("$ alone", (Literal("$ alone"),)),
        ("", ()),
    ],
)
def test_tokenize(template: str, segments: tuple) -> None:
    assert tokenize(template) == segments


@pytest.mark.parametrize(
    "template, missing",
    [
        ("$remote_addr $time_local", "no $status"),
        ("[$time_local] $status", "no $remote_addr"),
        ("$remote_addr $status", "no time ($time_local, $time_iso8601 or $msec)"),
        ("$remote_user [$time_local] $status", "no $remote_addr"),  # an unread name is no client
        ("$host $request", "no $remote_addr, no time ("),
        ("just text", "no $remote_addr, no time ($time_local, $time_iso8601 or $msec) and no $st"),
    ],
)
def test_missing_required_variables(template: str, missing: str) -> None:
    with pytest.raises(UsageError, match=re.escape(f"log_format custom has {missing}")):
        compile_log_format(template)


CDN = (
    'log_format cdn \'$remote_addr - $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" '
    "$request_time $host';"
)


@pytest.mark.parametrize(
    "fmt, line, fields",
    [
        (
            CDN,
            '192.0.2.1 - bob [10/Feb/2012:16:42:07 -0500] "GET /a?b HTTP/1.1" 200 5 '
            '"https://ex.example/x?y" "curl/8" "203.0.113.9, 198.51.100.1" 0.123 '
            "Video.Example.com:443",
            {
                "remote_addr": "192.0.2.1",
                "ts": "2012-02-10T21:42:07.000Z",
                "method": "GET",
                "path": "/a",
                "query": "b",
                "protocol": "HTTP/1.1",
                "status": 200,
                "bytes": 5,
                "request_time": 0.123,
                "referrer": "https://ex.example/x?y",
                "user_agent": "curl/8",
                "x_forwarded_for": "203.0.113.9, 198.51.100.1",
                "host": "video.example.com",
            },
        ),
        (
            CDN,
            '192.0.2.1 - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.1" 304 0 "-" "-" "-" - -',
            {
                "remote_addr": "192.0.2.1",
                "ts": "2012-02-10T21:42:07.000Z",
                "method": "GET",
                "path": "/",
                "protocol": "HTTP/1.1",
                "status": 304,
                "bytes": 0,
            },
        ),
        (  # $time_iso8601 and $request_time, unbracketed
            '$remote_addr $time_iso8601 "$request" $status $request_time',
            '2001:db8::1 2026-11-24T10:00:00+01:00 "GET /x HTTP/2.0" 200 0.5',
            {
                "remote_addr": "2001:db8::1",
                "ts": "2026-11-24T09:00:00.000Z",
                "method": "GET",
                "path": "/x",
                "protocol": "HTTP/2.0",
                "status": 200,
                "bytes": 0,
                "request_time": 0.5,
            },
        ),
        (  # $msec
            "$msec $remote_addr $status $body_bytes_sent",
            "1795510800.123 192.0.2.1 206 10",
            {
                "remote_addr": "192.0.2.1",
                "ts": "2026-11-24T09:00:00.123Z",
                "status": 206,
                "bytes": 10,
            },
        ),
        (  # $time_local unquoted, followed by a space: it holds a space itself
            "$remote_addr $time_local $request $status",
            "192.0.2.1 10/Feb/2012:16:42:07 -0500 GET /a HTTP/1.1 200",
            {
                "remote_addr": "192.0.2.1",
                "ts": "2012-02-10T21:42:07.000Z",
                "method": "GET",
                "path": "/a",
                "protocol": "HTTP/1.1",
                "status": 200,
                "bytes": 0,
            },
        ),
        (  # an unquoted HTTP/0.9 request
            "$remote_addr $time_local $request $status",
            "192.0.2.1 10/Feb/2012:16:42:07 -0500 GET /a 200",
            {
                "remote_addr": "192.0.2.1",
                "ts": "2012-02-10T21:42:07.000Z",
                "method": "GET",
                "path": "/a",
                "status": 200,
                "bytes": 0,
            },
        ),
        (  # escape=json text format: a value may hold \" and stay one value
            "log_format j escape=json '$remote_addr [$time_local] \"$http_user_agent\" $status';",
            '192.0.2.1 [10/Feb/2012:16:42:07 -0500] "a \\"quoted\\" agent" 200',
            {
                "remote_addr": "192.0.2.1",
                "ts": "2012-02-10T21:42:07.000Z",
                "user_agent": 'a \\"quoted\\" agent',
                "status": 200,
                "bytes": 0,
            },
        ),
        (  # the same variable twice: the first one is read
            "$remote_addr $remote_addr [$time_local] $status",
            "192.0.2.1 198.51.100.1 [10/Feb/2012:16:42:07 -0500] 200",
            {
                "remote_addr": "192.0.2.1",
                "ts": "2012-02-10T21:42:07.000Z",
                "status": 200,
                "bytes": 0,
            },
        ),
    ],
)
def test_custom_formats(fmt: str, line: str, fields: dict) -> None:
    assert set_fields(compile_log_format(fmt).parse(line)) == fields


@pytest.mark.parametrize(
    "fmt, line, reason",
    [
        (CDN, "192.0.2.1 - - [10/Feb/2012:16:42:07 -0500]", "format_mismatch"),
        (
            CDN,
            '192.0.2.1 - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.1" 200 0 "-" "-" "-" x h',
            "bad_field",  # $request_time x
        ),
        (
            '$remote_addr $time_iso8601 "$request" $status',
            '192.0.2.1 2026-11-24T10:00:00 "GET / HTTP/1.1" 200',  # no offset
            "bad_timestamp",
        ),
        ("$msec $remote_addr $status", "yesterday 192.0.2.1 200", "bad_timestamp"),
        ("$msec $remote_addr $status", "1795510800.123 192.0.2.1 200 extra", "bad_field"),
        ("$msec $remote_addr $status", "1795510800.123  200", "bad_ip"),
    ],
)
def test_custom_format_rejects(fmt: str, line: str, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        compile_log_format(fmt).parse(line)
    assert exc.value.reason == reason


def test_template_format_without_tail_tolerance() -> None:
    fmt = TemplateFormat("t", '$remote_addr [$time_local] "$request" $status')
    with pytest.raises(Rejected) as exc:
        fmt.parse('192.0.2.1 [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.1" 200 more')
    assert exc.value.reason == "bad_field"  # the tail is read into $status


JSON_FMT = (
    'log_format j escape=json \'{"ip":"$remote_addr","t":"$time_iso8601",'
    '"req":"$request","st":$status,"user":"$remote_user","ck":"$http_cookie",'
    '"up":"$upstream_addr","rt":$request_time,"b":${body_bytes_sent}}\';'
)


def test_json_shaped_log_format_is_a_json_format() -> None:
    fmt = compile_log_format(JSON_FMT)
    assert isinstance(fmt, JsonFormat)
    assert fmt.name == "j"
    assert fmt.keys == {
        "ip": "remote_addr",
        "t": "time_iso8601",
        "req": "request",
        "st": "status",
        "user": None,
        "ck": None,
        "up": None,
        "rt": "request_time",
        "b": "body_bytes_sent",
    }
    r = fmt.parse(
        '{"ip":"192.0.2.1","t":"2026-11-24T10:00:00+01:00","req":"GET /x?y HTTP/1.1",'
        '"st":200,"user":"bob","ck":"sid=1","up":"10.0.0.1:80","rt":0.5,"b":12}'
    )
    assert set_fields(r) == {
        "remote_addr": "192.0.2.1",
        "ts": "2026-11-24T09:00:00.000Z",
        "method": "GET",
        "path": "/x",
        "query": "y",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 12,
        "request_time": 0.5,
    }


def test_json_shaped_log_format_keys_override_aliases() -> None:
    # the key "ip" holds $http_x_real_ip here, not the client address
    fmt = compile_log_format(
        '{"client":"$remote_addr","ip":"$http_x_real_ip","time":"$msec","status":"$status"}'
    )
    r = fmt.parse('{"client":"192.0.2.1","ip":"198.51.100.1","time":"1795510800","status":"200"}')
    assert (r.remote_addr, r.x_real_ip) == ("192.0.2.1", "198.51.100.1")


def test_json_shaped_log_format_without_variables() -> None:
    with pytest.raises(UsageError, match='no "key":"\\$variable"'):
        compile_log_format('log_format j escape=json \'{"a":"b"}\';')


def test_json_value_with_two_variables_keeps_no_query() -> None:
    # was: the key took its first variable, so the unchecked method carried the whole target
    fmt = compile_log_format(
        'log_format j escape=json \'{"ip":"$remote_addr","t":"$time_iso8601",'
        '"st":$status,"req":"$request_method $request_uri"}\';'
    )
    rec = PrivacyStage(make_config(), None).scrub(
        fmt.parse(
            '{"ip":"192.0.2.1","t":"2026-11-24T10:00:00+01:00","st":200,'
            '"req":"GET /x?token=secret"}'
        )
    )
    assert all("secret" not in str(v) for v in rec.values())


UNREAD = (
    '$remote_addr $remote_user [$time_local] "$request" $status "$http_cookie" '
    '"$http_authorization" $upstream_addr'
)
UNREAD_LINE = (
    '192.0.2.1 alice [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.1" 200 "sid=SECRET1" '
    '"Basic SECRET2" 10.9.8.7:8080'
)


def test_unknown_variables_are_matched_but_never_read() -> None:
    fmt = compile_log_format(UNREAD)
    raw = fmt.parse(UNREAD_LINE)
    text = repr([getattr(raw, n) for n in RAW_FIELDS])
    for secret in ("alice", "SECRET1", "SECRET2", "10.9.8.7"):
        assert secret not in text
    rec = PrivacyStage(make_config(), None).scrub(raw)
    assert all(secret not in str(rec) for secret in ("alice", "SECRET", "10.9.8"))


def test_unknown_variables_are_rewritten_as_dashes() -> None:
    fmt = compile_log_format(UNREAD)
    rec = PrivacyStage(make_config(), None).scrub(fmt.parse(UNREAD_LINE))
    assert Rewriter(fmt).line(rec) == (
        '192.0.2.0 - [10/Feb/2012:21:42:07 +0000] "GET / HTTP/1.1" 200 "-" "-" -'
    )


# --- fuzz: a RawRequest or Rejected, nothing else (issue 7) -------------------------------------

FUZZED = {
    "cdn": (
        CDN,
        '192.0.2.1 - bob [10/Feb/2012:16:42:07 -0500] "GET /a?b HTTP/1.1" 200 5 '
        '"https://ex.example/x?y" "curl/8" "203.0.113.9, 198.51.100.1" 0.123 '
        "Video.Example.com:443",
    ),
    "iso": (
        '$remote_addr $time_iso8601 "$request" $status $request_time',
        '2001:db8::1 2026-11-24T10:00:00+01:00 "GET /x HTTP/2.0" 200 0.5',
    ),
    "msec": (
        "$msec $remote_addr $status $body_bytes_sent $request_time_msec",
        "1795510800.123 192.0.2.1 206 10 250",
    ),
    "parts": (
        '$remote_addr [$time_local] $status "$request_method $request_uri $server_protocol" $args',
        '192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 "GET http://[2001:db8::1]:80/a?b=1 HTTP/1.1" -',
    ),
    "unquoted": (
        "$remote_addr $time_local $request $status $host",
        "192.0.2.1 10/Feb/2012:16:42:07 -0500 GET /a HTTP/1.1 200 2001:db8::1",
    ),
    "escape-json": (
        "log_format j escape=json '$remote_addr [$time_local] \"$http_user_agent\" $status';",
        '192.0.2.1 [10/Feb/2012:16:42:07 -0500] "a \\"quoted\\" agent" 200',
    ),
    "json-shaped": (
        'log_format j escape=json \'{"ip":"$remote_addr","t":"$msec","s":$status,'
        '"r":"$request","h":"$http_host","rt":$request_time}\';',
        '{"ip":"192.0.2.1","t":"1795510800.5","s":200,"r":"GET / HTTP/1.1","h":"a:1","rt":0.1}',
    ),
}
_FUZZED = {name: compile_log_format(fmt) for name, (fmt, _) in FUZZED.items()}
_FUZZ_LINES = tuple(line for _, line in FUZZED.values())


def test_the_fuzzed_formats_read_their_lines() -> None:
    for name, (_, line) in FUZZED.items():
        assert isinstance(_FUZZED[name].parse(line), RawRequest), name


@pytest.mark.parametrize("name", sorted(FUZZED))
@given(data=st.data())
def test_any_line_parses_or_is_rejected(name: str, data: st.DataObject) -> None:
    parses_or_rejects(_FUZZED[name], data.draw(lines(_FUZZ_LINES)))
