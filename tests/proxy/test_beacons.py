"""proxy.beacons: the answer to a beacon request (204, 405, 413) and its body as text."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.net.http.http1.read import read_request_head

from sidecar.privacy.beacon import MAX_PAYLOAD_BYTES
from sidecar.proxy import beacons

URL = "http://cdn.example/beacon"


def _request(method: str, body: bytes = b"", **headers: str) -> http.Request:
    """A request as a test builds it: the body set (Content-Length follows), then `headers`
    (which may say another Content-Length: what a client declares is not checked here)."""
    req = http.Request.make(method, URL, body)
    for name, value in headers.items():
        req.headers[name.replace("_", "-")] = value
    return req


def _head(*lines: bytes) -> http.Request:
    """A request as mitmproxy's HTTP/1 reader gives it when its headers arrive (no body yet)."""
    return read_request_head(list(lines))


# --- status_for ------------------------------------------------------------------------------


def test_the_limit_is_nginx_client_max_body_size() -> None:
    assert MAX_PAYLOAD_BYTES == 8192


@pytest.mark.parametrize(
    "req",
    [
        _request("GET"),
        _head(b"GET /beacon?event=play&t=1.5 HTTP/1.1", b"Host: cdn.example"),
        # a GET's declared body does not matter: its query is the payload
        _request("GET", content_length="999999"),
    ],
)
def test_get_is_answered_204(req: http.Request) -> None:
    assert beacons.status_for(req) == beacons.NO_CONTENT == 204
    assert beacons.RESULTS[204] == "beacon"


@pytest.mark.parametrize(
    "length, expected",
    [
        (None, 204),  # no Content-Length (chunked): refused later, on the body it sends
        ("0", 204),
        ("1", 204),
        ("8191", 204),
        ("8192", 204),
        ("8193", 413),
        ("10485760", 413),
        ("not a number", 204),  # not one number: not a declared length (mitmproxy refuses it)
        ("-1", 204),
    ],
)
def test_post_is_204_up_to_8_kib_declared_and_413_over(length: str | None, expected: int) -> None:
    req = _head(b"POST /beacon HTTP/1.1", b"Host: cdn.example")
    if length is not None:
        req.headers["Content-Length"] = length
    assert beacons.status_for(req) == expected


def test_the_limit_can_be_given() -> None:
    req = _request("POST", b"x" * 101)
    assert beacons.status_for(req, max_bytes=100) == beacons.TOO_LARGE
    assert beacons.status_for(req, max_bytes=101) == beacons.NO_CONTENT
    assert beacons.RESULTS[413] == "beacon_too_large"


@pytest.mark.parametrize(
    "method", ["PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "PURGE", "CONNECT", "XYZ"]
)
def test_other_methods_are_405(method: str) -> None:
    assert beacons.status_for(_request(method)) == beacons.METHOD_NOT_ALLOWED == 405
    assert beacons.RESULTS[405] == "beacon_method"


def test_every_answer_is_a_result_the_metrics_know() -> None:
    from sidecar.metrics import PROXY_RESULTS

    assert set(beacons.RESULTS.values()) <= set(PROXY_RESULTS)


# --- declared_length -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [("0", 0), ("8192", 8192), ("007", 7), ("", None), ("1.5", None), ("+5", None), ("1e3", None)],
)
def test_declared_length(value: str, expected: int | None) -> None:
    req = _head(b"POST /beacon HTTP/1.1", b"Content-Length: " + value.encode())
    assert beacons.declared_length(req) == expected


def test_no_content_length_is_none() -> None:
    assert beacons.declared_length(_head(b"POST /beacon HTTP/1.1", b"Host: x")) is None


# --- body_text ---------------------------------------------------------------------------------


def test_a_json_body_is_its_text() -> None:
    body = b'{"event": "play", "media": "ep-1", "t": 12.5}'
    assert beacons.body_text(_request("POST", body)) == body.decode()


def test_a_body_of_exactly_8_kib_is_kept() -> None:
    body = b"a=" + b"x" * (MAX_PAYLOAD_BYTES - 2)
    assert beacons.body_text(_request("POST", body)) == body.decode()


@pytest.mark.parametrize(
    "req",
    [
        _request("POST", b""),
        _head(b"POST /beacon HTTP/1.1", b"Content-Length: 10"),  # headers only: no body yet
        _request("POST", b"x" * (MAX_PAYLOAD_BYTES + 1)),
        _request("POST", b"x" * (1 << 20)),
    ],
    ids=["empty", "not-read", "8KiB+1", "1MiB"],
)
def test_no_text_for_an_empty_or_too_large_body(req: http.Request) -> None:
    assert beacons.body_text(req) is None


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity", "x-unknown"])
def test_no_text_for_a_content_encoded_body(encoding: str) -> None:
    req = _request("POST", gzip.compress(b'{"event": "play"}'))
    req.headers["Content-Encoding"] = encoding  # never inflated, whatever it says
    assert beacons.body_text(req) is None


def test_a_small_gzip_body_is_not_inflated() -> None:
    bomb = gzip.compress(b"a" * (64 << 20))  # 64 MiB of text in about 64 KiB
    req = _request("POST", b"")
    req.headers["content-encoding"] = "gzip"
    req.raw_content = bomb[:4096]
    assert beacons.body_text(req) is None


def test_bad_utf8_is_decoded_with_replacement() -> None:
    body = b"event=play&media=\xff\xfeep\xc3(&t=1"
    text = beacons.body_text(_request("POST", body))
    assert text == "event=play&media=\ufffd\ufffdep\ufffd(&t=1"
    assert text == body.decode("utf-8", "replace")


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=MAX_PAYLOAD_BYTES))
def test_any_body_up_to_the_limit_is_text_and_never_raises(body: bytes) -> None:
    text = beacons.body_text(_request("POST", body))
    assert text == body.decode("utf-8", "replace")


def test_declared_length_of_non_ascii_digits_is_none() -> None:
    for value in ("²", "١٢٣"):
        req = read_request_head([b"POST /beacon HTTP/1.1", f"Content-Length: {value}".encode()])
        assert beacons.declared_length(req) is None
