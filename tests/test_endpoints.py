"""endpoints: /metrics, /healthz, /readyz over real HTTP on loopback; 404, 405, HEAD; silent."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from sidecar import endpoints as endpoints_mod
from sidecar.endpoints import Endpoints
from sidecar.errors import UsageError


class Readiness:
    """What the daemon would report: {} when ready; the test changes it between requests."""

    def __init__(self) -> None:
        self.not_ready: dict[str, str] = {}

    def __call__(self) -> dict[str, str]:
        return dict(self.not_ready)


@pytest.fixture
def registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("sidecar_test_lines", "Lines.", ["source"], registry=r).labels("stdin").inc(3)
    Counter("sidecar_test_other", "Other.", registry=r).inc()
    return r


@pytest.fixture
def ready() -> Readiness:
    return Readiness()


@pytest.fixture
def endpoints(registry: CollectorRegistry, ready: Readiness) -> Iterator[Endpoints]:
    e = Endpoints("127.0.0.1:0", registry, ready)
    e.start()
    yield e
    e.close()


def request(
    e: Endpoints, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_metrics_in_the_classic_text_format_without_accept(endpoints: Endpoints) -> None:
    status, headers, body = request(endpoints, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'sidecar_test_lines_total{source="stdin"} 3.0' in body.decode()
    assert int(headers["content-length"]) == len(body)


def test_metrics_in_openmetrics_when_asked(endpoints: Endpoints) -> None:
    status, headers, body = request(
        endpoints, "GET", "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b'sidecar_test_lines_total{source="stdin"} 3.0' in body


def test_metrics_gzipped_when_asked(endpoints: Endpoints) -> None:
    status, headers, body = request(endpoints, "GET", "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert b"sidecar_test_lines_total" in gzip.decompress(body)


def test_metrics_query_filters_pass_through(endpoints: Endpoints) -> None:
    _, _, body = request(endpoints, "GET", "/metrics?name[]=sidecar_test_other_total")
    assert b"sidecar_test_other_total 1.0" in body
    assert b"sidecar_test_lines" not in body


def test_healthz(endpoints: Endpoints) -> None:
    status, headers, body = request(endpoints, "GET", "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["content-type"].startswith("text/plain")


def test_readyz_turns_503_with_what_is_not_ready_and_back(
    endpoints: Endpoints, ready: Readiness
) -> None:
    status, headers, body = request(endpoints, "GET", "/readyz")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"ready": True}

    ready.not_ready = {
        "sink sqlite-analytics.db": "last batch failed",
        "source syslog_udp": "not bound",
    }
    status, _, body = request(endpoints, "GET", "/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "not_ready": ready.not_ready}

    ready.not_ready = {}
    status, _, body = request(endpoints, "GET", "/readyz")
    assert (status, json.loads(body)) == (200, {"ready": True})


def test_a_failing_readiness_check_is_not_ready(registry: CollectorRegistry) -> None:
    def broken() -> dict[str, str]:
        raise RuntimeError("a bug")

    e = Endpoints("127.0.0.1:0", registry, broken)
    e.start()
    try:
        status, _, body = request(e, "GET", "/readyz")
    finally:
        e.close()
    assert status == 503 and json.loads(body)["ready"] is False


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_head_has_the_headers_and_no_body(endpoints: Endpoints, path: str) -> None:
    _, got_headers, got_body = request(endpoints, "GET", path)
    status, headers, body = request(endpoints, "HEAD", path)
    assert status == 200 and body == b""
    assert headers["content-type"] == got_headers["content-type"]
    if path != "/metrics":  # a scrape's length moves with the process's own counters
        assert int(headers["content-length"]) == len(got_body)


@pytest.mark.parametrize("path", ["/", "/metrics/", "/metricsx", "/favicon.ico", "/readyz/x"])
def test_any_other_path_is_404(endpoints: Endpoints, path: str) -> None:
    assert request(endpoints, "GET", path)[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_other_methods_are_405_with_allow(endpoints: Endpoints, path: str, method: str) -> None:
    status, headers, _ = request(endpoints, method, path)
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_the_server_header_names_no_version(endpoints: Endpoints) -> None:
    for path in ("/metrics", "/healthz", "/readyz", "/nope"):
        assert request(endpoints, "GET", path)[1]["server"] == "sidecar"


def test_requests_write_nothing_on_stderr(
    endpoints: Endpoints, capfd: pytest.CaptureFixture[str]
) -> None:
    for method, path in [("GET", "/metrics"), ("GET", "/nope"), ("POST", "/readyz")]:
        request(endpoints, method, path)
    with socket.create_connection(("127.0.0.1", endpoints.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/x\r\n\r\n")  # a malformed request line: an error page
        assert b"Error code: 400" in s.recv(4096)
    with socket.create_connection(("127.0.0.1", endpoints.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n")
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.0 431") and b"\r\nServer: sidecar\r\n" in answer
    with socket.create_connection(("127.0.0.1", endpoints.port), timeout=10) as s:
        s.sendall(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")  # over-long: 414
        assert s.recv(1024).startswith(b"HTTP/1.0 414")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_a_stuck_client_does_not_stop_other_scrapes(endpoints: Endpoints) -> None:
    with socket.create_connection(("127.0.0.1", endpoints.port), timeout=10) as stuck:
        stuck.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never ends its headers
        for _ in range(3):
            assert request(endpoints, "GET", "/metrics")[0] == 200


def test_connections_over_the_bound_are_closed_and_slots_come_back(
    registry: CollectorRegistry, ready: Readiness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoints_mod, "MAX_CLIENTS", 2)
    e = Endpoints("127.0.0.1:0", registry, ready)
    e.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", e.port), timeout=10) for _ in range(2)]
        for s in idle:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")  # headers never ended: a slot held
        deadline = time.monotonic() + 10
        while True:  # once both are accepted, the next connection is closed unanswered
            with socket.create_connection(("127.0.0.1", e.port), timeout=10) as extra:
                extra.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                try:
                    if extra.recv(1024) == b"":
                        break
                except ConnectionResetError:  # closed with the request unread
                    break
            assert time.monotonic() < deadline
        for s in idle:
            s.close()  # their threads end and give the slots back
        while True:
            try:
                if request(e, "GET", "/healthz")[0] == 200:
                    break
            except (ConnectionError, http.client.RemoteDisconnected):
                pass
            assert time.monotonic() < deadline
    finally:
        e.close()


def test_readiness_keys_need_not_be_strings(registry: CollectorRegistry) -> None:
    e = Endpoints("127.0.0.1:0", registry, lambda: {1: 2})  # type: ignore[arg-type, dict-item]
    e.start()
    try:
        status, _, body = request(e, "GET", "/readyz")
    finally:
        e.close()
    assert (status, json.loads(body)) == (503, {"ready": False, "not_ready": {"1": 2}})


def test_an_address_in_use_is_a_usage_error_naming_the_key(
    registry: CollectorRegistry, ready: Readiness
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        e = Endpoints(f"127.0.0.1:{port}", registry, ready)
        with pytest.raises(UsageError) as err:
            e.start()
    assert str(err.value) == (
        f"serve.http (--http): cannot listen on 127.0.0.1:{port}: address already in use"
    )
    e.close()  # nothing started: nothing to do


@pytest.mark.parametrize("address", ["127.0.0.1", "nohost:x", ":9187", "1.2.3.4:70000"])
def test_a_bad_address_is_a_usage_error(
    registry: CollectorRegistry, ready: Readiness, address: str
) -> None:
    with pytest.raises(UsageError, match=r"^serve\.http \(--http\): "):
        Endpoints(address, registry, ready).start()


def test_close_releases_the_port_and_is_idempotent(
    registry: CollectorRegistry, ready: Readiness
) -> None:
    e = Endpoints("127.0.0.1:0", registry, ready)
    e.close()  # before start: nothing to do
    e.start()
    port = e.port
    assert request(e, "GET", "/healthz")[0] == 200
    e.close()
    e.close()
    with pytest.raises(OSError):
        request(e, "GET", "/healthz")  # nothing listens any more
    again = Endpoints(f"127.0.0.1:{port}", registry, ready)
    again.start()  # the same port binds again
    try:
        assert request(again, "GET", "/healthz")[0] == 200
    finally:
        again.close()


def test_ipv6_loopback(registry: CollectorRegistry, ready: Readiness) -> None:
    e = Endpoints("[::1]:0", registry, ready)
    e.start()
    try:
        conn = http.client.HTTPConnection("::1", e.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        e.close()
