"""sources.syslog: the log line in a syslog datagram, RFC 3164 as nginx writes it and RFC 5424."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.sources.syslog import MALFORMED_REASONS, MAX_DATAGRAM_BYTES, message

LINE = (
    b'198.51.100.23 - - [01/Dec/2023:10:49:32 +0000] "GET /v/master.m3u8 HTTP/1.1" 200 612 "-" '
    b'"Mozilla/5.0"'
)
BOM = b"\xef\xbb\xbf"


# --- RFC 3164 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"<190>Dec  1 10:49:32 vm nginx: ",  # exactly nginx: local7.info, space-padded day
        b"<190>Dec 11 10:49:32 vm nginx: ",
        b"<13>Jan  9 00:00:00 cdn-edge-7.example.net nginx: ",
        b"<0>Feb 28 23:59:59 h nginx: ",  # PRI 0
        b"<191>Mar 31 12:00:60 h nginx: ",  # PRI 191, a leap second
        b"<190>Dec  1 10:49:32 vm access_log_2: ",  # any nginx tag name [A-Za-z0-9_]
        b"<190>Dec  1 10:49:32 vm A: ",
        b"<190>Dec  1 10:49:32 vm " + b"t" * 32 + b": ",  # nginx's longest tag
        b"<190>Dec  1 10:49:32 nginx: ",  # nginx's nohostname, syslog(3) on a local socket
        b"<190>Dec  1 10:49:32 nginx[4711]: ",  # relays: TAG[PID]
        b"<190>Dec  1 10:49:32 vm nginx[4711]: ",
        b"<190>Dec  1 10:49:32 vm postfix/smtpd: ",
        b"<190>Dec  1 10:49:32 vm my-app.v2: ",
        b"<190>Dec 01 10:49:32 vm nginx: ",  # a zero-padded day
        b"<190>Dec  1 10:49:32 192.0.2.9 nginx: ",  # an address as hostname
        b"<190>Dec  1 10:49:32 2001:db8::9 nginx: ",
        b"<190>2023-12-01T10:49:32+01:00 vm nginx: ",  # rsyslog RSYSLOG_ForwardFormat
        b"<190>2023-12-01T10:49:32.123456Z vm nginx: ",  # syslog-ng ts-format(iso)
        b"<190>2023-12-01T10:49:32Z nginx: ",
        b"<190>Dec  1 10:49:32 vm nginx:",  # no space after the tag
    ],
)
def test_rfc3164_headers_are_removed(header: bytes) -> None:
    assert message(header + LINE) == LINE


@pytest.mark.parametrize("month", b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())
def test_every_month(month: bytes) -> None:
    assert message(b"<190>" + month + b"  1 10:49:32 vm nginx: " + LINE) == LINE


def test_the_message_keeps_its_own_colons_and_spaces() -> None:
    # the first token ending in ':' after the timestamp is the tag; later ones are the message
    assert message(b"<190>Dec  1 10:49:32 nginx: GET: x") == b"GET: x"
    assert message(b"<190>Dec  1 10:49:32 vm nginx: GET: x") == b"GET: x"
    assert message(b"<190>Dec  1 10:49:32 vm nginx: 2001:db8::1 - -") == b"2001:db8::1 - -"
    assert message(b"<190>Dec  1 10:49:32 vm nginx:  two spaces ") == b" two spaces "


# --- RFC 5424 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 - ",
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - ",
        b"<165>1 - - - - - - ",  # NILVALUE everywhere
        b"<190>1 2023-12-01T10:49:32+00:00 vm nginx 1234 access - ",
        b"<165>1 2003-10-11T22:14:15.003Z host app - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] ',
        b"<165>1 2003-10-11T22:14:15.003Z host app - ID47 "
        b'[exampleSDID@32473 iut="3"][examplePriority@32473 class="high"] ',
        b'<165>1 - host app - - [x@1 a="with \\] and \\" and \\\\"] ',  # escapes in a value
        b'<165>1 - host app - - [x@1 a="] [unescaped" b=""] ',  # lenient: a bare ']' quoted
        b"<165>1 - host app - - [x@1] ",  # an element without parameters
        b"<165>1 - host app - - - " + BOM,  # a BOM before MSG
        b"<165>12 - host app - - - ",  # a later VERSION
    ],
)
def test_rfc5424_headers_are_removed(header: bytes) -> None:
    assert message(header + LINE) == LINE


def test_rfc5424_without_msg_has_no_message() -> None:
    assert message(b"<165>1 2003-10-11T22:14:15.003Z host app - ID47 -") == "no_message"
    assert message(b'<165>1 - host app - - [x@1 a="b"]') == "no_message"
    assert message(b"<165>1 - - - - - - " + BOM) == "no_message"


# --- line ends and newlines ---------------------------------------------------------------------


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\x00", b"\n\x00", b"\r\n\r\n", b"\r"])
def test_trailing_line_ends_and_nuls_are_stripped(end: bytes) -> None:
    assert message(b"<190>Dec  1 10:49:32 vm nginx: " + LINE + end) == LINE
    assert message(b"<165>1 - - - - - - " + LINE + end) == LINE


def test_an_embedded_newline_refuses_the_datagram() -> None:
    # never split into two log lines: the second could be forged
    forged = LINE + b'\n203.0.113.9 - - [01/Dec/2023:10:49:33 +0000] "GET /x HTTP/1.1" 200 1'
    assert message(b"<190>Dec  1 10:49:32 vm nginx: " + forged) == "multiline"
    assert message(b"<165>1 - - - - - - " + forged + b"\n") == "multiline"


def test_other_control_bytes_pass_to_the_parser() -> None:
    # a stray CR or NUL inside a line is the parser's to reject (binary), not a framing matter
    assert message(b"<190>Dec  1 10:49:32 vm nginx: a\rb\x00c") == b"a\rb\x00c"
    assert message(b"<190>Dec  1 10:49:32 vm nginx: caf\xe9") == b"caf\xe9"  # not UTF-8


# --- malformed ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "datagram, reason",
    [
        (b"", "no_priority"),
        (b"\x00\x01\x02", "no_priority"),
        (LINE, "no_priority"),  # a bare log line
        (b"190>Dec  1 10:49:32 vm nginx: x", "no_priority"),
        (b"<>Dec  1 10:49:32 vm nginx: x", "no_priority"),
        (b"<192>Dec  1 10:49:32 vm nginx: x", "no_priority"),  # above 191
        (b"<1900>Dec  1 10:49:32 vm nginx: x", "no_priority"),
        (b"<19a>Dec  1 10:49:32 vm nginx: x", "no_priority"),
        (b"<190", "no_priority"),
        (b"<190>", "bad_header"),
        (b"<190>" + LINE, "bad_header"),  # no timestamp
        (b"<190>Dek  1 10:49:32 vm nginx: x", "bad_header"),
        (b"<190>Dec  1 10:49 vm nginx: x", "bad_header"),
        (b"<190>Dec 1 10:49:32 vm nginx: x", "bad_header"),
        (b"<190>Dec  1 10:49:32 vm " + LINE, "bad_header"),  # no tag
        (b"<190>Dec  1 10:49:32 vm nginx x", "bad_header"),
        (b"<190>Dec  1 10:49:32 vm n\xe9: x", "bad_header"),
        (b"<190>Dec  1 10:49:32 " + b"h" * 300 + b" nginx: x", "bad_header"),  # hostname > 255
        (b"<190>Dec  1 10:49:32 vm " + b"t" * 49 + b": x", "bad_header"),  # tag > 48
        (b"<165>1 - - - - -", "bad_header"),
        (b"<165>1 - - - - - x", "bad_header"),  # SD neither '-' nor an element
        (b'<165>1 - - - - - [x a="b] msg', "bad_header"),  # value never closed
        (b"<165>1 - - - - - [x a=b] msg", "bad_header"),  # value not quoted
        (b'<165>1 - - - - - [x a="b"]msg', "bad_header"),  # no space before MSG
        (b"<165>1 2003-10-11 22:14:15 - - - - - msg", "bad_header"),
        (b"<165>0 - - - - - - msg", "bad_header"),  # VERSION 0
        (b"<190>Dec  1 10:49:32 vm nginx: ", "no_message"),
        (b"<190>Dec  1 10:49:32 vm nginx: \r\n\x00", "no_message"),
        (b"<190>Dec  1 10:49:32 vm nginx: " + BOM + b"\n", "no_message"),
        (b"<190>Dec  1 10:49:32 vm nginx: a\nb", "multiline"),
        (b"<190>Dec  1 10:49:32 vm nginx: \n\nb", "multiline"),
        (b"<190>Dec  1 10:49:32 vm nginx: " + b"x" * MAX_DATAGRAM_BYTES, "too_long"),
    ],
)
def test_malformed_datagrams_name_their_reason(datagram: bytes, reason: str) -> None:
    assert reason in MALFORMED_REASONS
    assert message(datagram) == reason


def test_the_largest_datagram_is_read() -> None:
    header = b"<190>Dec  1 10:49:32 vm nginx: "
    body = b"x" * (MAX_DATAGRAM_BYTES - len(header))
    assert message(header + body) == body


def test_pathological_structured_data_is_refused() -> None:
    # linear work, and a verdict: never left unclosed, never read as a message
    assert message(b'<165>1 - h a p m [x a="' + b"\\" * 60000) == "bad_header"
    assert message(b"<165>1 - h a p m [x" + b' a=""' * 10000) == "bad_header"
    assert message(b"<165>1 - h a p m " + b"[x]" * 20000 + b" ok") == b"ok"


# --- properties ---------------------------------------------------------------------------------


def _verdict_ok(result: bytes | str) -> bool:
    if isinstance(result, str):
        return result in MALFORMED_REASONS
    return isinstance(result, bytes) and result != b"" and b"\n" not in result


@given(st.binary(max_size=600))
def test_any_bytes_get_a_line_or_a_reason(datagram: bytes) -> None:
    assert _verdict_ok(message(datagram))


HEADERS = st.sampled_from(
    [
        b"<190>Dec  1 10:49:32 vm nginx: ",
        b"<190>Dec  1 10:49:32 nginx: ",
        b"<190>2023-12-01T10:49:32Z vm nginx[1]: ",
        b"<165>1 - - - - - - ",
        b'<165>1 - h a p m [x a="\\]"] ',
        b"<",
        b"<1",
        b"<190>",
        b"<190>Dec  1 ",
        b"<165>1 ",
        b'<165>1 - h a p m [x a="',
    ]
)


@given(HEADERS, st.binary(max_size=300))
def test_any_bytes_after_a_header_get_a_line_or_a_reason(header: bytes, rest: bytes) -> None:
    assert _verdict_ok(message(header + rest))


@given(HEADERS, st.lists(st.binary(max_size=40), max_size=4))
def test_a_line_never_holds_a_newline(header: bytes, parts: list[bytes]) -> None:
    assert _verdict_ok(message(header + b"\n".join(parts)))


_TOKEN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
_TAG = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1,
               max_size=32)  # fmt: skip
# a message nginx could send: no newline, no trailing CR/NUL, no leading BOM, not empty
_MESSAGE = (
    st.binary(min_size=1, max_size=300)
    .map(lambda b: b.replace(b"\n", b" ").rstrip(b"\r\x00") or b"x")
    .filter(lambda b: not b.startswith(BOM))
)


@given(
    st.integers(0, 191),
    st.sampled_from([b"Jan", b"Jun", b"Dec"]),
    st.integers(1, 31),
    st.one_of(st.none(), _TOKEN.filter(lambda t: not t.endswith(":"))),
    _TAG,
    _MESSAGE,
)
def test_rfc3164_message_comes_back_exactly(
    pri: int, month: bytes, day: int, host: str | None, tag: str, msg: bytes
) -> None:
    header = b"<%d>%s %2d 10:49:32 " % (pri, month, day)
    if host is not None:
        header += host.encode() + b" "
    assert message(header + tag.encode() + b": " + msg + b"\n") == msg


_SD_NAME = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='=]" '),
    min_size=1,
    max_size=32,
)
_SD_VALUE = st.binary(max_size=30).map(
    lambda b: b.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"]", b"\\]")
)
_SD_ELEMENT = st.builds(
    lambda sd_id, params: b"[" + sd_id.encode() + b"".join(
        b" " + name.encode() + b'="' + value + b'"' for name, value in params
    ) + b"]",
    _SD_NAME,
    st.lists(st.tuples(_SD_NAME, _SD_VALUE), max_size=3),
)  # fmt: skip


@given(
    st.one_of(
        st.just(b"-"), _SD_ELEMENT, st.lists(_SD_ELEMENT, min_size=2, max_size=3).map(b"".join)
    ),
    st.tuples(_TOKEN, _TOKEN, _TOKEN, _TOKEN.filter(lambda t: len(t) <= 32)),
    st.booleans(),
    _MESSAGE,
)
def test_rfc5424_message_comes_back_exactly(
    sd: bytes, fields: tuple[str, str, str, str], bom: bool, msg: bytes
) -> None:
    header = b"<165>1 2003-10-11T22:14:15.003Z " + " ".join(fields).encode() + b" " + sd + b" "
    assert message(header + (BOM if bom else b"") + msg) == msg
