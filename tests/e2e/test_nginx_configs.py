"""The shipped nginx/ configs, included as documented, in a real nginx on loopback.

`include .../*.conf;` inside http {} and `include .../server/beacon.conf;` inside a server {}:
`nginx -t` accepts the files as shipped; then, with the syslog and answerer addresses moved to
ports and paths of the test's own (the one change a user may make), every request and beacon
arrives as one sidecar_json line on a syslog socket the test binds, over UDP and over a unix
datagram socket, and the line is what `--format auto` reads.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from sidecar.formats.detect import detect
from tests.conftest import PROJECT
from tests.e2e.nginx import NGINX_DIR, UDP_LINE, Nginx, free_port, http_conf
from tests.e2e.nginx import install_configs as install

pytestmark = pytest.mark.e2e

KEYS = [
    "time_iso8601", "remote_addr", "host", "request_method", "request_uri", "server_protocol",
    "status", "body_bytes_sent", "request_time", "http_referer", "http_user_agent",
    "http_x_forwarded_for", "upstream_cache_status", "request_body",
]  # fmt: skip
# nginx's RFC 3164 framing: <PRI>Mmm dd hh:mm:ss HOST TAG: MESSAGE
SYSLOG = re.compile(rb"<\d{1,3}>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ nginx: (.*)\Z", re.S)


def request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp
    finally:
        conn.close()


def receive(sock: socket.socket, count: int = 1, within: float = 5.0) -> list[dict]:
    """The next `count` log lines on the syslog socket, unframed and parsed as JSON."""
    lines: list[dict] = []
    deadline = time.monotonic() + within
    while len(lines) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{len(lines)} of {count} log lines arrived within {within} s")
        sock.settimeout(left)
        try:
            datagram = sock.recv(65536)
        except TimeoutError:
            continue
        match = SYSLOG.match(datagram)
        assert match, datagram[:120]
        lines.append(orjson.loads(match.group(1)))
    return lines


def drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)


@pytest.fixture(scope="module")
def udp_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Nginx, socket.socket]]:
    """nginx with the shipped configs, logging over UDP to a socket of the test's."""
    prefix = tmp_path_factory.mktemp("nginx-udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        configs = install(prefix / "sidecar", syslog_port=sock.getsockname()[1],
                          ack_port=free_port())  # fmt: skip
        # an application location that proxies (reads) a body: its body must not be logged
        app = "location /app/ { proxy_pass http://sidecar_beacon_ack; }"
        with Nginx(prefix, http_conf(configs, app)) as nginx:
            (prefix / "www" / "v").mkdir()
            (prefix / "www" / "v" / "seg-1.ts").write_bytes(b"\x47" * 188)
            yield nginx, sock


@pytest.fixture
def udp(udp_nginx: tuple[Nginx, socket.socket]) -> tuple[int, socket.socket]:
    nginx, sock = udp_nginx
    drain(sock)
    return nginx.port, sock


def test_shipped_files_pass_nginx_t(tmp_path: Path) -> None:
    configs = tmp_path / "sidecar"
    shutil.copytree(NGINX_DIR, configs)  # as shipped, not a byte changed
    checked = Nginx(tmp_path, http_conf(configs)).check()
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_every_http_level_file_is_documented_for_the_glob() -> None:
    for conf in NGINX_DIR.glob("*.conf"):
        assert "Level: http {}" in conf.read_text(), conf.name
    for conf in (NGINX_DIR / "server").glob("*.conf"):
        assert "Level: server {}" in conf.read_text(), conf.name


def test_get_beacon_answers_204_and_logs_the_query(udp: tuple[int, socket.socket]) -> None:
    port, sock = udp
    status, _ = request(port, "GET", "/beacon?event=play&media=m-42&position_secs=12.5",
                           headers={"Host": "cdn.example-video.eu", "User-Agent": "player/1"})  # fmt: skip
    assert status == 204
    [line] = receive(sock)
    assert list(line) == KEYS
    assert line["request_method"] == "GET" and line["status"] == "204"
    assert line["request_uri"] == "/beacon?event=play&media=m-42&position_secs=12.5"
    assert line["host"] == "cdn.example-video.eu" and line["http_user_agent"] == "player/1"
    assert line["request_body"] == "" and line["remote_addr"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"event":"stall","stall_secs":2.5,"note":"a \\"quoted\\" word"}'),
        ("text/plain", b'{"event":"play","media":"m-42"}'),
        ("application/x-www-form-urlencoded", b"event=error&error=MEDIA_ERR_DECODE&player=p%201"),
        ("application/json", b'{"pad":"' + b"x" * (8192 - 10) + b'"}'),  # exactly 8 KiB
    ],
    ids=["json", "text-plain", "form", "8KiB"],
)
def test_post_beacon_logs_its_body(
    udp: tuple[int, socket.socket], content_type: str, body: bytes
) -> None:
    port, sock = udp
    assert len(body) <= 8192
    status, _ = request(port, "POST", "/beacon", body, {"Content-Type": content_type})
    assert status == 204
    [line] = receive(sock)
    assert line["request_method"] == "POST" and line["status"] == "204"
    assert line["request_uri"] == "/beacon"
    assert line["request_body"] == body.decode()


def test_post_beacon_over_8k_gets_413(udp: tuple[int, socket.socket]) -> None:
    port, sock = udp
    status, _ = request(port, "POST", "/beacon", b"a" * (9 * 1024), {"Content-Type": "text/plain"})
    assert status == 413
    [line] = receive(sock)
    assert line["status"] == "413" and line["request_body"] == ""


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "HEAD"])
def test_other_methods_get_405(udp: tuple[int, socket.socket], method: str) -> None:
    port, sock = udp
    status, resp = request(port, method, "/beacon")
    assert status == 405 and resp.getheader("Allow") == "GET, POST"
    [line] = receive(sock)
    assert line["request_method"] == method and line["status"] == "405"


def test_content_requests_log_too_without_bodies(udp: tuple[int, socket.socket]) -> None:
    port, sock = udp
    status, _ = request(
        port, "GET", "/v/seg-1.ts?token=abc", headers={"Referer": "https://a.example/p"}
    )
    assert status == 200
    status, _ = request(port, "POST", "/app/login", b"user=jane&password=s3cr3t",
                        {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 204  # the answerer stands in for an application here
    content, app = receive(sock, 2)
    assert content["request_uri"] == "/v/seg-1.ts?token=abc" and content["status"] == "200"
    assert content["body_bytes_sent"] == "188" and content["http_referer"] == "https://a.example/p"
    assert content["request_body"] == ""
    assert app["request_uri"] == "/app/login" and app["request_body"] == ""  # read, not logged


def test_lines_are_detected_as_nginx_json(udp: tuple[int, socket.socket]) -> None:
    port, sock = udp
    body = '{"event":"play","media":"m-42"}'
    request(port, "GET", "/v/seg-1.ts", headers={"User-Agent": 'player "x"'})
    request(port, "POST", "/beacon", body.encode(), {"Content-Type": "application/json"})
    lines = [orjson.dumps(line).decode() for line in receive(sock, 2)]
    fmt = detect(lines)
    assert fmt is not None and fmt.name == "nginx-json"
    content, beacon = (fmt.parse(line) for line in lines)
    assert content.status == 200 and content.method == "GET" and content.path == "/v/seg-1.ts"
    assert content.user_agent == 'player "x"' and content.remote_addr == "127.0.0.1"
    assert beacon.status == 204 and beacon.method == "POST" and beacon.path == "/beacon"
    assert beacon.body == body


def test_unix_socket_variant_delivers(tmp_path: Path) -> None:
    # a short path: unix socket paths are limited to 107 bytes
    with tempfile.TemporaryDirectory(prefix="sc-") as run:
        path = Path(run) / "syslog.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            configs = install(tmp_path / "sidecar", unix_socket=path, ack_port=free_port())
            text = (configs / "syslog.conf").read_text()
            assert f"\naccess_log syslog:server=unix:{path}," in text
            assert f"\n# {UDP_LINE}" in text
            with Nginx(tmp_path, http_conf(configs)) as nginx:
                assert request(nginx.port, "GET", "/beacon?event=play")[0] == 204
                status, _ = request(nginx.port, "POST", "/beacon", b"event=pause",
                                    {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
                assert status == 204
                get, post = receive(sock, 2)
    assert get["request_uri"] == "/beacon?event=play"
    assert post["request_body"] == "event=pause"


def test_real_ip_takes_the_client_from_a_trusted_proxy(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        configs = install(tmp_path / "sidecar", syslog_port=sock.getsockname()[1],
                          ack_port=free_port(), real_ip_from="127.0.0.1/32")  # fmt: skip
        with Nginx(tmp_path, http_conf(configs)) as nginx:
            xff = {"X-Forwarded-For": "198.51.100.23, 127.0.0.1"}
            assert request(nginx.port, "GET", "/beacon?event=play", headers=xff)[0] == 204
            [line] = receive(sock)
    assert line["remote_addr"] == "198.51.100.23"
    assert line["http_x_forwarded_for"] == "198.51.100.23, 127.0.0.1"


def test_container_site_config_delivers_over_the_unix_socket(tmp_path: Path) -> None:
    """deploy/nginx-site.conf (compose and pod), its container paths moved here."""
    configs = install(tmp_path / "sidecar", ack_port=free_port())
    with tempfile.TemporaryDirectory(prefix="sc-") as run:
        path = Path(run) / "syslog.sock"
        site = (PROJECT / "deploy" / "nginx-site.conf").read_text()
        for old, new in [("/etc/nginx/sidecar", str(configs)), ("/run/sidecar/syslog.sock", str(path)),
                         ("listen 80 default_server;", "listen 127.0.0.1:PORT default_server;"),
                         ("/usr/share/nginx/html", "PREFIX/www")]:  # fmt: skip
            assert old in site, old
            site = site.replace(old, new)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            with Nginx(tmp_path, site) as nginx:
                assert request(nginx.port, "GET", "/beacon?event=play")[0] == 204
                status, _ = request(nginx.port, "POST", "/beacon", b'{"event":"end"}')
                assert status == 204
                get, post = receive(sock, 2)
    assert get["request_uri"] == "/beacon?event=play" and post["request_body"] == '{"event":"end"}'
