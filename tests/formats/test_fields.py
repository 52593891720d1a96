"""formats.fields: the request line, and the one table of what a field means."""

from __future__ import annotations

import pytest

from sidecar.formats.clf import clf_format
from sidecar.formats.fields import (
    ALIASES,
    CANONICAL,
    TIME_VARS,
    canonical,
    make_builder,
    split_request,
    unescape_default,
    unescape_json,
)
from sidecar.formats.log_format import TemplateFormat
from sidecar.formats.nginx_json import JsonFormat
from sidecar.record import RawRequest
from sidecar.reject import Rejected
from sidecar.timestamps import make_reader

NONE5 = (None, None, None, None, None)


@pytest.mark.parametrize(
    "request_line, parts",
    [
        ("GET /a?b=1 HTTP/1.1", ("GET", None, "/a", "b=1", "HTTP/1.1")),
        ("GET /a?b=1&c HTTP/1.1", ("GET", None, "/a", "b=1&c", "HTTP/1.1")),
        ("POST /api/events HTTP/2.0", ("POST", None, "/api/events", None, "HTTP/2.0")),
        ("GET / HTTP/1.0", ("GET", None, "/", None, "HTTP/1.0")),
        ("GET /", ("GET", None, "/", None, None)),  # HTTP/0.9: two parts, no protocol
        ("GET /a?q", ("GET", None, "/a", "q", None)),
        # absolute form: the host is read from the URI, lower-cased, userinfo dropped
        ("GET http://Host/p?q HTTP/1.1", ("GET", "host", "/p", "q", "HTTP/1.1")),
        ("GET https://u:pw@Example.COM/x HTTP/2.0", ("GET", "example.com", "/x", None, "HTTP/2.0")),
        ("GET http://host HTTP/1.1", ("GET", "host", "/", None, "HTTP/1.1")),
        ("OPTIONS * HTTP/1.1", ("OPTIONS", None, "*", None, "HTTP/1.1")),
        # fragments never survive
        ("GET /a#frag HTTP/1.1", ("GET", None, "/a", None, "HTTP/1.1")),
        ("GET /a?b#frag HTTP/1.1", ("GET", None, "/a", "b", "HTTP/1.1")),
        ("GET /? HTTP/1.1", ("GET", None, "/", None, "HTTP/1.1")),  # empty query: None
        ("GET /%41%20b HTTP/1.1", ("GET", None, "/%41%20b", None, "HTTP/1.1")),  # kept encoded
        ("GET //other/x HTTP/1.1", ("GET", None, "//other/x", None, "HTTP/1.1")),
        # garbled request lines: all None (the record keeps status, bytes, client)
        ("\x16\x03\x01", NONE5),  # TLS handshake sent to a plain HTTP port
        ("\\x16\\x03\\x01\\x02\\x00", NONE5),  # the same as nginx logs it
        ("-", NONE5),
        ("", NONE5),
        ("GET", NONE5),
        ("get / HTTP/1.1", NONE5),  # lower-case method
        ("Get / HTTP/1.1", NONE5),
        ("G3T / HTTP/1.1", NONE5),
        ("VERYLONGMETHODNAMEX / HTTP/1.1", NONE5),  # over 16 letters
        ("GET /a HTTP/1.1 extra", NONE5),  # four parts
        ("GET  / HTTP/1.1", NONE5),  # double space
        ("GET /a FOO/1.1", NONE5),  # not an HTTP protocol
        ("GET a:b HTTP/1.1", NONE5),  # neither a path nor an absolute URI
        ("GET ? HTTP/1.1", NONE5),
        ("CONNECT example.com:443 HTTP/1.1", NONE5),  # authority form is not read
        ("GET h2c://h/x HTTP/1.1", NONE5),  # scheme with a digit
    ],
)
def test_split_request(request_line: str, parts: tuple) -> None:
    assert split_request(request_line) == parts


# --- make_builder, through formats ------------------------------------------------------------

COMBINED = clf_format("combined")
LINE = (
    '192.0.2.1 - - [10/Feb/2012:16:42:07 -0500] "GET /a?b HTTP/1.1" {status} {bytes} '
    '"https://ex.example/x?y" "Mozilla/5.0"'
)
RAW_FIELDS = RawRequest.__slots__


def _raw(r: RawRequest) -> dict:
    return {name: getattr(r, name) for name in RAW_FIELDS}


def test_builder_reads_a_clean_line() -> None:
    r = COMBINED.parse(LINE.format(status=200, bytes=123))
    assert _raw(r) == {
        "remote_addr": "192.0.2.1",
        "ts": "2012-02-10T21:42:07.000Z",
        "method": "GET",
        "path": "/a",
        "query": "b",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 123,
        "request_time": None,
        "referrer": "https://ex.example/x?y",
        "user_agent": "Mozilla/5.0",
        "host": None,
        "x_forwarded_for": None,
        "forwarded": None,
        "x_real_ip": None,
        "body": None,
    }


@pytest.mark.parametrize(
    "status, nbytes, got",
    [
        ("200", "123", (200, 123)),
        ("200", "-", (200, 0)),  # "-" bytes: 0
        ("0", "0", (0, 0)),
        ("999", "0", (999, 0)),
        ("2x0", "1", "bad_field"),  # bad status
        ("-", "1", "bad_field"),
        ("1000", "1", "bad_field"),  # out of 0..999
        ("-1", "1", "bad_field"),
        ("200", "12x", "bad_field"),  # bad bytes
        ("200", "1.5", "bad_field"),
    ],
)
def test_builder_status_and_bytes(status: str, nbytes: str, got: tuple | str) -> None:
    line = LINE.format(status=status, bytes=nbytes)
    if isinstance(got, str):
        with pytest.raises(Rejected) as exc:
            COMBINED.parse(line)
        assert exc.value.reason == got
    else:
        r = COMBINED.parse(line)
        assert (r.status, r.bytes) == got


@pytest.mark.parametrize(
    "status, nbytes",
    [  # int() takes all of these; they were read as 200, 1000 and -5 bytes
        ("+200", "1"),
        ("2_00", "1"),
        ("200", "1_000"),
        ("200", "-5"),
        ("200", "+5"),
        ("\uff12\uff10\uff10", "1"),
        ("200", "\uff15"),
    ],
)
def test_builder_rejects_lenient_numbers(status: str, nbytes: str) -> None:
    with pytest.raises(Rejected) as exc:
        COMBINED.parse(LINE.format(status=status, bytes=nbytes))
    assert exc.value.reason == "bad_field"


TIMED = '192.0.2.1 - - [{}] "GET / HTTP/1.1" 200 1 "-" "-"'


@pytest.mark.parametrize(
    "line, reason",
    [
        # bad time -> bad_timestamp
        (TIMED.format("32/Feb/2012:16:42:07 -0500"), "bad_timestamp"),
        (TIMED.format("01/Jan/0001:00:30:00 +0100"), "bad_timestamp"),  # before year 1 in UTC
        (TIMED.format("-"), "bad_timestamp"),
        (TIMED.format(""), "bad_timestamp"),
        # empty remote -> bad_ip
        (' - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.1" 200 1 "-" "-"', "bad_ip"),
        # not the shape -> format_mismatch
        ('192.0.2.1 - - [10/Feb/2012:16:42:07 -0500] "GET / HTTP/1.1" 200', "format_mismatch"),
        ("192.0.2.1 - - 10/Feb/2012:16:42:07 -0500", "format_mismatch"),
        ("", "format_mismatch"),
    ],
)
def test_builder_rejects(line: str, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        COMBINED.parse(line)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    "request_line",
    ["\\x16\\x03\\x01", "-", "get / HTTP/1.1", "GET /a b HTTP/1.1"],
)
def test_builder_keeps_a_garbled_request_as_nothing(request_line: str) -> None:
    """A garbled request line is not a reason to drop the hit: method, path etc. are None."""
    r = COMBINED.parse(f'192.0.2.1 - - [10/Feb/2012:16:42:07 -0500] "{request_line}" 400 0 "-" "-"')
    assert (r.method, r.host, r.path, r.query, r.protocol) == NONE5
    assert r.status == 400


@pytest.mark.parametrize(
    "value, got",
    [
        ("0.125", 0.125),
        ("-", None),
        ("", None),
        ("1e-3", 0.001),
        ("abc", "bad_field"),
        ("nan", "bad_field"),
        ("inf", "bad_field"),
        ("-0.5", "bad_field"),
    ],
)
def test_builder_request_time(value: str, got: float | str | None) -> None:
    fmt = TemplateFormat("t", "$remote_addr [$time_local] $status [$request_time]")
    line = f"192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 [{value}]"
    if isinstance(got, str):
        with pytest.raises(Rejected) as exc:
            fmt.parse(line)
        assert exc.value.reason == got
    else:
        assert fmt.parse(line).request_time == got


@pytest.mark.parametrize(
    "value, host",
    [  # every case of reading a Host value: tests/test_targets.py (host_of)
        ("Video.Example.COM.:443", "video.example.com"),
        ("[2001:db8::5]:443", "[2001:db8::5]"),
        ("2001:DB8::5", "2001:db8::5"),
        ("-", None),
    ],
)
def test_builder_host(value: str, host: str | None) -> None:
    fmt = TemplateFormat("t", "$host $remote_addr [$time_local] $status")
    assert fmt.parse(f"{value} 192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200").host == host


def test_builder_host_variable_wins_over_absolute_uri() -> None:
    fmt = TemplateFormat("t", '$host $remote_addr [$time_local] "$request" $status')
    r = fmt.parse(
        'a.example 192.0.2.1 [10/Feb/2012:16:42:07 -0500] "GET http://b.example/ HTTP/1.1" 200'
    )
    assert r.host == "a.example"


@pytest.mark.parametrize(
    "template, line, parts",
    [
        # separate variables instead of $request
        (
            '$remote_addr [$time_local] $status "$request_method $request_uri $server_protocol"',
            '192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 "GET /a?b=1 HTTP/1.1"',
            ("GET", None, "/a", "b=1", "HTTP/1.1"),
        ),
        (
            "$remote_addr [$time_local] $status $request_method $uri $args",
            "192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 GET /a b=1",
            ("GET", None, "/a", "b=1", None),
        ),
        (
            "$remote_addr [$time_local] $status $request_method $uri $args",
            "192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 - - -",
            (None, None, None, None, None),
        ),
        (  # $args wins over the query of $request_uri
            "$remote_addr [$time_local] $status $request_uri $args",
            "192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 http://h.example/a?x=1 y=2",
            (None, "h.example", "/a", "y=2", None),
        ),
    ],
)
def test_builder_target_from_parts(template: str, line: str, parts: tuple) -> None:
    r = TemplateFormat("t", template).parse(line)
    assert (r.method, r.host, r.path, r.query, r.protocol) == parts


def test_builder_forwarded_headers() -> None:
    fmt = TemplateFormat(
        "t",
        '$remote_addr [$time_local] $status "$http_x_forwarded_for" "$http_forwarded" '
        '"$http_x_real_ip"',
    )
    r = fmt.parse(
        '192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 "203.0.113.9, 198.51.100.1" '
        '"for=198.51.100.7" "198.51.100.8"'
    )
    assert (r.x_forwarded_for, r.forwarded, r.x_real_ip) == (
        "203.0.113.9, 198.51.100.1",
        "for=198.51.100.7",
        "198.51.100.8",
    )
    r = fmt.parse('192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 "-" "" "-"')
    assert (r.x_forwarded_for, r.forwarded, r.x_real_ip) == (None, None, None)


def test_builder_first_time_variable_wins() -> None:
    fmt = TemplateFormat("t", "$remote_addr $msec $time_iso8601 $status")
    r = fmt.parse("192.0.2.1 1795510800.5 2000-01-01T00:00:00Z 200")
    assert r.ts == "2000-01-01T00:00:00.000Z"  # time_iso8601 comes before msec
    with pytest.raises(Rejected) as exc:
        fmt.parse("192.0.2.1 1795510800.5 garbage 200")
    assert exc.value.reason == "bad_timestamp"


@pytest.mark.parametrize(
    "names",
    [
        ("time_local", "status"),  # no remote_addr
        ("remote_addr", "status"),  # no time
        ("remote_addr", "time_local"),  # no status
    ],
)
def test_make_builder_needs_remote_time_status(names: tuple[str, ...]) -> None:
    index = {n: i for i, n in enumerate(names)}
    readers = {n: make_reader("auto") for n in TIME_VARS if n in index}
    with pytest.raises(ValueError):
        make_builder(index, readers)


@pytest.mark.parametrize("error", [OverflowError, OSError(75, "too large"), KeyError, IndexError])
@pytest.mark.parametrize("n_times", [1, 2])
def test_a_reader_raising_anything_of_range_is_bad_timestamp(error, n_times: int) -> None:
    """`datetime.fromtimestamp` raises OSError (errno 75) past 1e17 s: a bad time, no crash."""

    def read(text: str) -> str:
        raise error

    names = ("remote_addr", "status", "msec", "time_iso8601")[: 2 + n_times]
    build = make_builder({n: i for i, n in enumerate(names)}, dict.fromkeys(TIME_VARS, read))
    with pytest.raises(Rejected) as exc:
        build(["192.0.2.1", "200", "1e17", "1e17"][: len(names)])
    assert exc.value.reason == "bad_timestamp"


def test_make_builder_direct() -> None:
    index = {"status": 0, "remote_addr": 1, "msec": 2, "request_time_msec": 3}
    build = make_builder(index, {"msec": make_reader("msec")})
    r = build(["204", "192.0.2.1", "1795510800.25", "250"])
    assert (r.status, r.remote_addr, r.ts, r.request_time) == (
        204,
        "192.0.2.1",
        "2026-11-24T09:00:00.250Z",
        0.25,
    )
    assert "http_x_forwarded_for" not in build.source  # code only for the names present


def test_request_time_wins_over_msec_variant() -> None:
    index = {"remote_addr": 0, "msec": 1, "status": 2, "request_time": 3, "request_time_msec": 4}
    build = make_builder(index, {"msec": make_reader("msec")})
    assert build(["192.0.2.1", "1", "200", "0.5", "250"]).request_time == 0.5
    assert build(["192.0.2.1", "1", "200", "-", "250"]).request_time == 0.25


# --- the names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, meaning",
    [
        *[(n, n) for n in CANONICAL],
        ("realip_remote_addr", "remote_addr"),
        ("ip", "remote_addr"),
        ("client_ip", "remote_addr"),
        ("Remote_Addr", "remote_addr"),  # case-insensitive
        ("http-x-forwarded-for", "http_x_forwarded_for"),  # dashes read as underscores
        ("User-Agent", "http_user_agent"),
        ("@timestamp", "time"),
        ("date", "time"),
        ("path", "request_uri"),
        ("url", "request_uri"),
        ("length", "body_bytes_sent"),
        ("bytes_sent", "body_bytes_sent"),
        ("generation_time_milli", "request_time_msec"),
        ("referrer", "http_referer"),
        ("http_host", "host"),
        ("vhost", "host"),
        # never read: their values never reach a RawRequest
        ("binary_remote_addr", None),
        ("remote_user", None),
        ("http_cookie", None),
        ("http_authorization", None),
        ("upstream_addr", None),
        ("remote_port", None),
        ("upstream_cache_status", None),
        ("", None),
    ],
)
def test_canonical(name: str, meaning: str | None) -> None:
    assert canonical(name) == meaning


def test_aliases_map_onto_canonical_names_only() -> None:
    assert set(ALIASES.values()) <= {*CANONICAL, ""}
    assert set(TIME_VARS) <= set(CANONICAL)
    # every canonical name has a reader in the builder: RawRequest carries each one somewhere
    assert len(RAW_FIELDS) == 16


@pytest.mark.parametrize("secret_key", ["remote_user", "http_cookie", "upstream_addr", "x_token"])
def test_unread_json_keys_never_reach_the_raw_request(secret_key: str) -> None:
    r = JsonFormat().parse(
        '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00+01:00","status":200,'
        f'"{secret_key}":"SECRET-VALUE"}}'
    )
    assert all("SECRET-VALUE" not in str(getattr(r, n)) for n in RAW_FIELDS)


@pytest.mark.parametrize("method", ["GET /x?token=secret", "get", "G E T", "\\x16\\x03"])
def test_method_from_its_own_variable_is_checked(method: str) -> None:
    fmt = TemplateFormat("t", '$remote_addr [$time_local] $status "$request_method" $uri')
    r = fmt.parse(f'192.0.2.1 [10/Feb/2012:16:42:07 -0500] 200 "{method}" /a')
    assert r.method is None
    r = JsonFormat().parse(
        '{"ip":"192.0.2.1","date":"2026-11-24T10:00:00Z","status":200,'
        f'"method":"{method.replace(chr(92), chr(92) * 2)}","path":"/a"}}'
    )
    assert r.method is None


# --- $request_body: a beacon's body, the format's escapes undone -------------------------------
@pytest.mark.parametrize(
    "logged, body",
    [
        ("event=play&media=a%20b", "event=play&media=a%20b"),  # no escape: as it is
        # what nginx 1.22 wrote (escape=default) for `{"event":"pause","u":"é\n"}`
        ("{\\x22event\\x22:\\x22pause\\x22,\\x22u\\x22:\\x22\\xC3\\xA9\\x5Cn\\x22}",
         '{"event":"pause","u":"é\\n"}'),
        ("event=\\xFF\\x01z", "event=\ufffd\x01z"),  # a byte that is no UTF-8: U+FFFD
        ("a\\x2", "a\\x2"),  # a cut-off escape stays
        ("\\xe2\\x82\\xac", "€"),  # lower-case hex digits too
    ],
)  # fmt: skip
def test_unescape_default(logged: str, body: str) -> None:
    assert unescape_default(logged) == body


@pytest.mark.parametrize(
    "logged, body",
    [
        ('{\\"event\\":\\"play\\"}', '{"event":"play"}'),
        ("a\\u0001b\\\\c", "a\x01b\\c"),
        ("plain", "plain"),
        ('broken \\" and \\', 'broken \\" and \\'),  # no JSON string content: as it is
        ("\\ud800", "\\ud800"),  # a lone surrogate is no text: as it is
    ],
)
def test_unescape_json(logged: str, body: str) -> None:
    assert unescape_json(logged) == body


BODY_LINE = '192.0.2.1 [10/Feb/2012:16:42:07 -0500] "POST /beacon HTTP/1.1" 204 "{body}"'


@pytest.mark.parametrize(
    "escape, logged, body",
    [
        ("default", "{\\x22event\\x22:\\x22play\\x22}", '{"event":"play"}'),
        ("json", '{\\"event\\":\\"play\\"}', '{"event":"play"}'),
        ("none", "event=play", "event=play"),
        ("default", "-", None),  # nginx writes "-" for no body
        ("json", "", None),
    ],
)
def test_request_body_is_read_with_the_formats_escaping(
    escape: str, logged: str, body: str | None
) -> None:
    fmt = TemplateFormat(
        "t", '$remote_addr [$time_local] "$request" $status "$request_body"', escape
    )
    r = fmt.parse(BODY_LINE.format(body=logged))
    assert (r.path, r.body) == ("/beacon", body)


def test_a_format_without_request_body_reads_none() -> None:
    assert COMBINED.parse(LINE.format(status=200, bytes=1)).body is None
