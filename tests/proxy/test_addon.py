"""The addon: in process on mitmproxy's own test context and flows (options, hooks), and
through a real `sidecar proxy` process in front of a real origin on loopback.

The origin (tests/proxy/origin.py) answers with the headers and target it received, so each
test reads what the origin saw. Records are read back from the SQLite sink. Addresses from the
documentation ranges (RFC 5737, RFC 3849) stand for viewers; none may reach the origin, a
record, a log line or any file whole.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow, tutils

from sidecar import config as config_mod
from sidecar.app import App
from sidecar.proxy.addon import Sidecar, proxy_config
from tests.proxy.origin import Origin
from tests.proxy.running import Proxy, raw_exchange, status_of
from tests.serving import wait_for

pytestmark = pytest.mark.e2e

SPOOFED = ("203.0.113.77", "198.51.100.23", "2001:db8:aaaa:bbbb::1", "192.0.2.55")


def records(db: Path) -> list[dict]:
    if not db.exists():
        return []
    con = apsw.Connection(str(db))
    try:
        cur = con.execute("SELECT * FROM requests ORDER BY ts")
        names = [d[0] for d in cur.getdescription()]  # raises on an empty result
        return [dict(zip(names, row, strict=True)) for row in cur]
    except (apsw.SQLError, apsw.ExecutionCompleteError):  # no batch yet
        return []
    finally:
        con.close()


def wait_records(db: Path, n: int) -> list[dict]:
    wait_for(lambda: len(records(db)) >= n, 15, f"{n} records")
    return records(db)


def get(proxy: Proxy, target: str, headers: dict | list | None = None, method: str = "GET",
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        pairs = headers.items() if isinstance(headers, dict) else headers or []
        for name, value in pairs:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def seen_by_origin(body: bytes) -> dict:
    seen = json.loads(body)
    seen["names"] = [n.lower() for n, _ in seen["headers"]]
    seen["h"] = {n.lower(): v for n, v in seen["headers"]}
    return seen


@pytest.fixture
def origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


@pytest.fixture
def proxy(tmp_path: Path, origin: Origin) -> Iterator[Proxy]:
    p = Proxy(tmp_path, origin.url)
    yield p
    p.stop()


def assert_no_full_address(data: bytes, addresses=SPOOFED) -> None:
    for a in addresses:
        assert a.encode() not in data, a


# --- in process -----------------------------------------------------------------------------
@pytest.fixture
def addon(tmp_path: Path) -> Iterator[Sidecar]:
    cfg = config_mod.override(config_mod.Config(), {
        "geoip.database": "", "storage.spool_dir": str(tmp_path / "spool"),
        "storage.dead_letter_dir": str(tmp_path / "dl")})  # fmt: skip
    app = App(proxy_config(cfg), [config_mod.sink_config(f"jsonl:{tmp_path / 'r.jsonl'}")],
              daemon=True, source="proxy")  # fmt: skip
    yield Sidecar(app, ("127.0.0.1", 8000))
    app.close()


def test_options_are_declared_and_checked_by_the_config(addon: Sidecar) -> None:
    with taddons.context(addon, loadcore=False) as tctx:
        assert tctx.options.sidecar_beacon_paths == ["/beacon"]
        assert tctx.options.sidecar_strip_headers == ["cookie"]
        with pytest.raises(exceptions.OptionsError, match=r"proxy\.strip_headers"):
            tctx.configure(addon, sidecar_strip_headers=["cookie", "Forwarded"])
        with pytest.raises(exceptions.OptionsError, match=r"proxy\.beacon_paths"):
            tctx.configure(addon, sidecar_beacon_paths=["no-slash"])
        tctx.configure(addon, sidecar_beacon_paths=["/b", "/cmcd"])
        assert addon.beacon_paths == {"/b", "/cmcd"}
        assert addon.stage.beacon.paths == {"/b", "/cmcd"}  # the stage cuts their payload too
        tctx.configure(addon, sidecar_strip_headers=["Authorization"])
        assert addon.rule.strip == {"authorization"}


def test_request_headers_are_scrubbed_in_place(addon: Sidecar) -> None:
    with taddons.context(addon, loadcore=False):
        f = tflow.tflow(req=tutils.treq(path=b"/v/203.0.113.77/seg.ts?ip=203.0.113.77"))
        f.client_conn.peername = ("198.51.100.23", 50000)
        f.request.headers["X-Forwarded-For"] = "203.0.113.77"
        f.request.headers["Cookie"] = "s=1"
        addon.requestheaders(f)
        assert f.request.path == "/v/203.0.113.0/seg.ts?ip=203.0.113.0"
        assert f.request.headers["x-forwarded-for"] == "198.51.100.0"
        assert "cookie" not in f.request.headers
        assert f.response is None  # sent on


def test_a_beacon_is_answered_before_the_origin(addon: Sidecar) -> None:
    with taddons.context(addon, loadcore=False):
        f = tflow.tflow(req=tutils.treq(path=b"/beacon?event=play", method=b"GET"))
        addon.requestheaders(f)
        assert f.response is not None and f.response.status_code == 204


# --- toward the origin -----------------------------------------------------------------------
def test_untrusted_peer_spoofed_chain_is_replaced_by_the_truncated_peer(proxy: Proxy) -> None:
    status, _, body = get(proxy, "/echo/192.0.2.55/a?x=203.0.113.77&keep=1", [
        ("X-Forwarded-For", "203.0.113.77, 198.51.100.23"),
        ("X-Forwarded-For", "2001:db8:aaaa:bbbb::1"),
        ("Forwarded", 'for="[2001:db8:aaaa:bbbb::1]";proto=https'),
        ("X-Real-IP", "198.51.100.23"),
        ("True-Client-IP", "203.0.113.77"), ("CF-Connecting-IP", "203.0.113.77"),
        ("Fastly-Client-IP", "203.0.113.77"), ("X-Client-IP", "203.0.113.77"),
        ("X-Cluster-Client-IP", "203.0.113.77"),
        ("X-Debug", "hop 192.0.2.55 and [2001:db8:aaaa:bbbb::1]:443"),
        ("Cookie", "session=abc"), ("Referer", "https://other.example/p/203.0.113.77?q=1"),
    ])  # fmt: skip
    assert status == 200
    seen = seen_by_origin(body)
    h = seen["h"]
    assert seen["target"] == "/echo/192.0.2.0/a?x=203.0.113.0&keep=1"
    assert h["x-forwarded-for"] == "127.0.0.0"
    assert h["x-real-ip"] == "127.0.0.0"
    assert h["forwarded"] == "for=127.0.0.0"
    assert seen["names"].count("x-forwarded-for") == 1
    for name in ("true-client-ip", "cf-connecting-ip", "fastly-client-ip", "x-client-ip",
                 "x-cluster-client-ip", "cookie"):  # fmt: skip
        assert name not in h
    assert h["x-debug"] == "hop 192.0.2.0 and [2001:db8:aaaa::]:443"
    assert h["referer"] == "https://other.example/"
    assert h["host"] == f"127.0.0.1:{proxy.port}"  # unchanged, whatever its value
    assert_no_full_address(body)


def test_host_header_passes_unchanged(proxy: Proxy) -> None:
    _, _, body = get(proxy, "/echo", {"Host": "video.example:8443"})
    assert seen_by_origin(body)["h"]["host"] == "video.example:8443"


def test_trusted_peer_chain_gives_the_rightmost_untrusted_hop(tmp_path: Path,
                                                               origin: Origin) -> None:  # fmt: skip
    p = Proxy(tmp_path, origin.url, "--trusted-proxy", "127.0.0.0/8",
              "--trusted-proxy", "10.0.0.0/8")  # fmt: skip
    try:
        _, _, body = get(p, "/echo", {"X-Forwarded-For": "203.0.113.77, 198.51.100.23, 10.1.2.3"})
        h = seen_by_origin(body)["h"]
        assert h["x-forwarded-for"] == "198.51.100.0"
        assert h["x-real-ip"] == "198.51.100.0"
        assert h["forwarded"] == "for=198.51.100.0"
        assert_no_full_address(body)
        (rec,) = wait_records(p.db, 1)
        assert rec["client_ip"] == "198.51.100.0"
        assert rec["country"] is None or len(rec["country"]) == 2
    finally:
        assert p.stop() == 0
    assert_no_full_address(p.everything_written() + body)


def test_ipv6_client_through_an_ipv6_listener(tmp_path: Path, origin: Origin) -> None:
    p = Proxy(tmp_path, origin.url, listen="::1")
    try:
        _, _, body = get(p, "/echo", {"X-Forwarded-For": "2001:db8:aaaa:bbbb::1"})
        h = seen_by_origin(body)["h"]
        assert h["x-forwarded-for"] == "::"
        assert h["forwarded"] == 'for="[::]"'
        (rec,) = wait_records(p.db, 1)
        assert rec["client_ip"] == "::"
    finally:
        assert p.stop() == 0
    assert_no_full_address(p.everything_written() + body)


# --- records ---------------------------------------------------------------------------------
def test_one_clean_record_per_exchange(proxy: Proxy) -> None:
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    get(proxy, "/echo/v/1.ts?token=secret&x=1", {"User-Agent": ua,
        "Referer": "https://other.example/watch?v=1", "X-Want-Status": "404"})  # fmt: skip
    (rec,) = wait_records(proxy.db, 1)
    assert rec["client_ip"] == "127.0.0.0"
    assert rec["method"] == "GET" and rec["path"] == "/echo/v/1.ts"
    assert rec["query"] is None  # nothing on [query] allow
    assert rec["status"] == 404 and rec["bytes"] > 0
    assert rec["protocol"] == "HTTP/1.1"
    assert 0 <= rec["request_time"] < 10
    assert rec["referrer_host"] == "other.example"
    assert rec["ua_browser"] == "Chrome" and rec["ua_os"] == "Windows"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["ts"])


# --- beacons ---------------------------------------------------------------------------------
def test_beacons_are_answered_stored_and_never_forwarded(proxy: Proxy, origin: Origin) -> None:
    s1, _, _ = get(proxy, "/beacon?event=play&media=m1&secret=203.0.113.77")
    s2, _, _ = get(
        proxy,
        "/beacon",
        {"Content-Type": "application/json"},
        "POST",
        json.dumps({"event": "stall", "stall_secs": 1.5, "email": "a@b"}).encode(),
    )
    s3, _, _ = get(proxy, "/beacon", {"Content-Type": "application/x-www-form-urlencoded"},
                   "POST", b"event=pause&position_secs=12&user=x")  # fmt: skip
    s4, h4, _ = get(proxy, "/beacon", {}, "PUT", b"event=x")
    s5, _, _ = get(proxy, "/beacon", {}, "POST", b"event=" + b"x" * 9000)
    assert (s1, s2, s3, s4, s5) == (204, 204, 204, 405, 413)
    assert h4["allow"] == "GET, POST"
    recs = wait_records(proxy.db, 5)
    assert origin.seen == []
    queries = [r["query"] for r in recs]
    assert queries[:3] == ["event=play&media=m1", "event=stall&stall_secs=1.5",
                           "event=pause&position_secs=12"]  # fmt: skip
    assert [r["status"] for r in recs] == [204, 204, 204, 405, 413]
    m = proxy.metrics()
    assert 'sidecar_proxy_exchanges_total{result="beacon"} 3.0' in m
    assert 'sidecar_proxy_exchanges_total{result="beacon_method"} 1.0' in m
    assert 'sidecar_proxy_exchanges_total{result="beacon_too_large"} 1.0' in m


def test_a_beacon_too_large_for_streaming_is_cut_off_unread(proxy: Proxy, origin: Origin) -> None:
    head = b"POST /beacon HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"
    raw_exchange(proxy.host, proxy.port, head + b"a" * 1000, timeout=3)
    wait_for(lambda: 'result="beacon_too_large"} 1.0' in proxy.metrics(), what="counted")
    assert origin.seen == []


# --- streaming -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/segment.ts", "/chunked.ts"])
def test_a_100_mib_segment_streams_byte_identical_at_flat_memory(tmp_path: Path,
                                                                 path: str) -> None:  # fmt: skip
    with Origin(segment_bytes=100 << 20) as o:
        p = Proxy(tmp_path, o.url)
        try:
            get(p, "/echo")  # warm: the first exchange loads what it loads
            before = p.rss_bytes()
            peak = before
            conn = http.client.HTTPConnection(p.host, p.port, timeout=30)
            conn.request("GET", path)
            r = conn.getresponse()
            digest = hashlib.sha256()
            n = 0
            while chunk := r.read(1 << 20):
                digest.update(chunk)
                n += len(chunk)
                peak = max(peak, p.rss_bytes())
            conn.close()
            assert n == len(o.segment)
            assert digest.digest() == hashlib.sha256(o.segment).digest()
            assert peak - before < 40 << 20, (before, peak)  # never the 100 MiB whole
            recs = wait_records(p.db, 2)
            assert recs[-1]["bytes"] == 100 << 20
        finally:
            assert p.stop() == 0


# --- not an open proxy -----------------------------------------------------------------------
def test_absolute_form_for_another_host_is_refused(proxy: Proxy, origin: Origin) -> None:
    got = raw_exchange(proxy.host, proxy.port,
                       b"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n")  # fmt: skip
    assert status_of(got) == 421
    assert origin.seen == []
    upstream = origin.url.removeprefix("http://")
    got = raw_exchange(proxy.host, proxy.port,
                       f"GET http://{upstream}/echo HTTP/1.1\r\nHost: {upstream}\r\n"
                       "Connection: close\r\n\r\n".encode())  # fmt: skip
    assert status_of(got) == 200
    assert origin.seen[-1]["target"] == "/echo"  # sent on in origin form
    wait_for(lambda: 'result="absolute_form"} 1.0' in proxy.metrics(), what="counted")


def test_connect_is_refused_and_counted(proxy: Proxy, origin: Origin) -> None:
    got = raw_exchange(proxy.host, proxy.port,
                       b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")  # fmt: skip
    assert 400 <= status_of(got) < 500
    assert origin.seen == []
    wait_for(lambda: 'result="connect"} 1.0' in proxy.metrics(), what="counted")


def test_a_malformed_request_gets_400_is_counted_and_never_echoed_in_the_log(
    proxy: Proxy, origin: Origin
) -> None:
    got = raw_exchange(proxy.host, proxy.port, b"GET /x 203.0.113.77 garbage\r\n\r\n")
    assert status_of(got) == 400
    wait_for(lambda: 'result="malformed"} 1.0' in proxy.metrics(), what="counted")
    assert origin.seen == []
    assert proxy.stop() == 0
    assert b"203.0.113.77" not in proxy.everything_written()
    assert b"garbage" not in proxy.stderr_path.read_bytes()


# --- upstream down ---------------------------------------------------------------------------
def test_upstream_down_gives_502_counted_with_a_record(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    p = Proxy(tmp_path, f"http://127.0.0.1:{dead}")
    try:
        status, _, _ = get(p, "/echo/x")
        assert status == 502
        (rec,) = wait_records(p.db, 1)
        assert rec["status"] == 502 and rec["path"] == "/echo/x"
        assert 'sidecar_proxy_exchanges_total{result="upstream_error"} 1.0' in p.metrics()
    finally:
        assert p.stop() == 0


def test_a_chunked_beacon_over_the_stream_size_gets_413_quietly(proxy: Proxy,
                                                                origin: Origin) -> None:  # fmt: skip
    piece = b"a" * 65536
    chunks = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    got = raw_exchange(proxy.host, proxy.port, b"POST /beacon HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n" + chunks)  # fmt: skip
    assert status_of(got) == 413
    wait_for(lambda: 'result="beacon_too_large"} 1.0' in proxy.metrics(), what="counted")
    assert origin.seen == []
    assert proxy.stop() == 0
    assert not [e for e in proxy.log() if e["level"] == "error"]
