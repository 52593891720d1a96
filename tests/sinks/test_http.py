"""http: NDJSON batches POSTed to a real HTTP server on loopback, run in a thread here.

The server answers what the test tells it (status codes, delays, closing connections) and
keeps what it was sent (headers, bodies) and how many connections it accepted.
"""

from __future__ import annotations

import base64
import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from sidecar.config import SinkConfig
from sidecar.record import CleanRecord
from sidecar.sinks.base import SinkRejected, SinkUnavailable
from sidecar.sinks.http import HttpSink
from tests.e2e.clickhouse import free_ports
from tests.sinks import numbered, numbers, record, start, storage


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def records(self) -> list[CleanRecord]:
        data = (
            gzip.decompress(self.body)
            if self.headers.get("content-encoding") == "gzip"
            else self.body
        )
        assert data.endswith(b"\n")
        return [CleanRecord(orjson.loads(line)) for line in data.splitlines()]


@dataclass
class Behaviour:
    statuses: list[int] = field(default_factory=list)  # answered in turn, then `status`
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    say_close: bool = False  # answer with `Connection: close`
    drop_silently: bool = False  # close the connection after each answer without saying so


class Server:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        self.connections = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive
            disable_nagle_algorithm = True  # headers and body go in two writes

            def setup(self) -> None:
                super().setup()
                with server.lock:
                    server.connections += 1

            def do_POST(self) -> None:
                b = server.behaviour
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with server.lock:
                    server.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = b.statuses.pop(0) if b.statuses else b.status
                if b.delay:
                    time.sleep(b.delay)
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Length", str(len(b.body)))
                if b.say_close:
                    self.send_header("Connection", "close")
                self.end_headers()
                if status != 204:
                    self.wfile.write(b.body)
                if b.drop_silently:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> Server:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server().start()
    yield s
    s.stop()


def http_sink(url: str, **config: object) -> HttpSink:
    return HttpSink(SinkConfig(url=f"http:{url}", **config))  # type: ignore[arg-type]


# --- delivered ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 201, 202, 204])
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_2xx_is_delivered_with_an_ndjson_body(
    server: Server, status: int, compression: str
) -> None:
    server.behaviour.status = status
    sink = http_sink(server.url + "/ingest?source=sidecar", compression=compression)
    recs = [*numbered(3), record(path='/ü/"x"', country=None, request_time=None)]
    sink.write(recs)
    sink.close()
    [got] = server.received
    assert got.path == "/ingest?source=sidecar"
    assert got.headers["content-type"] == "application/x-ndjson"
    if compression == "gzip":
        assert got.headers["content-encoding"] == "gzip" and got.body[:2] == b"\x1f\x8b"
    else:
        assert "content-encoding" not in got.headers and got.body.startswith(b'{"ts":')
    assert got.records() == recs
    assert "authorization" not in got.headers  # no user: no auth header


@pytest.mark.parametrize(
    ("settings", "env", "credentials"),
    [
        ({"user": "ingest", "password": "s3cret"}, None, "ingest:s3cret"),
        ({"user": "ingest", "password_env": "SIDECAR_TEST_HTTP_PW"}, "from-env", "ingest:from-env"),
        (
            {"user": "ingest", "password": "given", "password_env": "SIDECAR_TEST_HTTP_PW"},
            "from-env",
            "ingest:given",
        ),  # password wins
        (
            {"user": "ingest", "password_env": "SIDECAR_TEST_HTTP_PW"},
            None,
            "ingest:",
        ),  # variable unset: empty password
        ({"user": "ingest"}, None, "ingest:"),
        (
            {"user": "ü:ser", "password": "p:ä ss"},
            None,
            "ü:ser:p:ä ss",
        ),  # sent as UTF-8, colons kept
        ({"password": "s3cret"}, None, None),  # no user: no header
    ],
)
def test_basic_auth_header(
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict,
    env: str | None,
    credentials: str | None,
) -> None:
    if env is None:
        monkeypatch.delenv("SIDECAR_TEST_HTTP_PW", raising=False)
    else:
        monkeypatch.setenv("SIDECAR_TEST_HTTP_PW", env)
    sink = http_sink(server.url + "/", **settings)
    sink.write([record()])
    sink.close()
    [got] = server.received
    if credentials is None:
        assert "authorization" not in got.headers
    else:
        assert (
            got.headers["authorization"]
            == "Basic " + base64.b64encode(credentials.encode()).decode()
        )


# --- failures ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, SinkUnavailable),  # server errors: retried
        (502, SinkUnavailable),
        (503, SinkUnavailable),
        (504, SinkUnavailable),
        (429, SinkUnavailable),  # too many requests: retried
        (408, SinkUnavailable),  # request timeout: retried
        (425, SinkUnavailable),  # too early: retried
        (400, SinkRejected),  # the batch is wrong: dead letter
        (404, SinkRejected),
        (409, SinkRejected),
        (413, SinkRejected),
        (422, SinkRejected),
        (301, SinkRejected),  # redirects are not followed
    ],
)
def test_status_codes(server: Server, status: int, error: type[Exception]) -> None:
    server.behaviour.status = status
    server.behaviour.body = b"the server's explanation"
    sink = http_sink(server.url + "/")
    with pytest.raises(error) as err:
        sink.write([record()])
    assert f"status {status}" in str(err.value)
    if error is SinkRejected:
        assert err.value.reason == "other"  # type: ignore[attr-defined]
        assert "the server's explanation" in str(err.value)
    server.behaviour.status = 200
    sink.write([record()])  # the connection is still good after an error answer
    sink.close()
    assert server.connections == 1


def test_connection_refused_is_unavailable() -> None:
    [port] = free_ports(1)  # nothing listens there
    sink = http_sink(f"http://127.0.0.1:{port}/", timeout_secs=2.0)
    t0 = time.monotonic()
    with pytest.raises(SinkUnavailable, match=r"^http: "):
        sink.write([record()])
    assert time.monotonic() - t0 < 2.0
    sink.close()


def test_a_timeout_is_unavailable_and_the_next_write_reconnects(server: Server) -> None:
    server.behaviour.delay = 1.0
    sink = http_sink(server.url + "/", timeout_secs=0.2)
    t0 = time.monotonic()
    with pytest.raises(SinkUnavailable, match=r"^http: "):
        sink.write([record(bytes=1)])
    assert time.monotonic() - t0 < 0.9
    server.behaviour.delay = 0.0
    sink.write([record(bytes=2)])
    sink.close()
    assert [numbers(r.records()) for r in server.received] == [[1], [2]]
    assert server.connections == 2


# --- connections -------------------------------------------------------------------------------
def test_many_writes_reuse_one_keep_alive_connection(server: Server) -> None:
    sink = http_sink(server.url + "/")
    for i in range(25):
        sink.write(numbered(2, start=2 * i))
    sink.close()
    assert server.connections == 1
    assert [n for r in server.received for n in numbers(r.records())] == list(range(50))


@pytest.mark.parametrize("how", ["say_close", "drop_silently"])
def test_a_connection_the_server_closed_is_reopened_and_each_batch_sent_once(
    server: Server, how: str
) -> None:
    setattr(server.behaviour, how, True)
    sink = http_sink(server.url + "/")
    for i in range(5):
        sink.write([record(bytes=i)])
    sink.close()
    assert [numbers(r.records()) for r in server.received] == [
        [0],
        [1],
        [2],
        [3],
        [4],
    ]  # none twice
    assert server.connections == 5


# --- through Delivery ----------------------------------------------------------------------------
def test_delivery_retries_503_and_dead_letters_422(server: Server, tmp_path: Path) -> None:
    server.behaviour.statuses = [503, 503, 200, 422]
    config = SinkConfig(
        url=f"http:{server.url}/", batch_max_rows=2, batch_timeout_secs=60.0, concurrency=1
    )
    delivery, _ = start(HttpSink(config), storage(tmp_path), config=config)
    delivery.submit(numbered(6))
    stats = delivery.close()
    bodies = [numbers(r.records()) for r in server.received]
    # [0, 1] tried three times (503, 503, 200); [2, 3] refused (422); [4, 5] delivered
    assert bodies == [[0, 1], [0, 1], [0, 1], [2, 3], [4, 5]]
    assert stats.delivered == 4 and stats.dead_lettered == 2 and stats.left_in_spool == 0
    lines = [orjson.loads(x) for x in delivery.dead_letter_path.read_bytes().splitlines()]
    assert [x["record"]["bytes"] for x in lines] == [2, 3] and "status 422" in lines[0]["message"]


@pytest.mark.parametrize(
    "url, compression, gzipped",
    [
        ("http://127.0.0.1:8123/", "auto", False),  # loopback: compressing only costs CPU
        ("http://localhost:8123/", "auto", False),
        ("http://[::1]:8123/", "auto", False),
        ("http://db.example:8123/", "auto", True),
        ("https://192.0.2.10/", "auto", True),
        ("http://127.0.0.1:8123/", "gzip", True),
        ("http://db.example:8123/", "none", False),
    ],
)
def test_compression_auto_skips_loopback(url: str, compression: str, gzipped: bool) -> None:
    from sidecar.sinks.httpclient import HttpClient

    assert HttpClient(url, 1.0).gzip(compression) is gzipped
