"""`sidecar serve` beside a real nginx running the shipped nginx/ configs, on loopback.

nginx serves small files and the beacon location and logs every request through syslog (UDP,
then the unix socket) to a real `sidecar serve`, which writes SQLite. Every request and beacon
is stored exactly once, scrubbed. A followed access log survives rotation by rename and by
copytruncate, and a restart after SIGTERM or kill -9 resumes from its checkpoint. A garbage
flood is counted while valid lines still arrive. /readyz turns 503 while ClickHouse is down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import apsw
import pytest

from tests.e2e.clickhouse import ClickHouse
from tests.e2e.nginx import Nginx, free_port, http_conf, install_configs
from tests.e2e.test_nginx_configs import request
from tests.serving import Serve, wait_for

pytestmark = pytest.mark.e2e

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


def stored(db: Path) -> list[dict]:
    if not db.exists():
        return []
    con = apsw.Connection(str(db))
    try:
        names = [r[1] for r in con.execute("PRAGMA table_info(requests)")]
        rows = con.execute("SELECT * FROM requests ORDER BY ts, path, query")
        return [dict(zip(names, row, strict=True)) for row in rows]
    except apsw.SQLError:
        return []
    finally:
        con.close()


def www(prefix: Path) -> None:
    (prefix / "www" / "v").mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (prefix / "www" / "v" / f"seg-{i}.ts").write_bytes(b"\x47" * 188)


def traffic(port: int, n: int = 10) -> Counter[str]:
    """n content requests, n GET beacons, n POST beacons (JSON and form): what nginx answered."""
    answered: Counter[str] = Counter()
    headers = {"User-Agent": UA, "X-Forwarded-For": "198.51.100.23"}
    for i in range(n):
        status, _ = request(port, "GET", f"/v/seg-{i % 3}.ts?token=secret{i}", headers=headers)
        answered[f"content {status}"] += 1
        status, _ = request(port, "GET", f"/beacon?event=play&media=m{i}&session=s{i}",
                            headers=headers)  # fmt: skip
        answered[f"beacon {status}"] += 1
        body = json.dumps({"event": "stall", "stall_secs": i, "user_id": "u1"}).encode()
        if i % 2:
            body = urllib.parse.urlencode(
                {"event": "stall", "stall_secs": i, "email": "x"}
            ).encode()
        status, _ = request(port, "POST", "/beacon", body=body, headers={
            **headers, "Content-Type": "application/json" if not i % 2 else
            "application/x-www-form-urlencoded"})  # fmt: skip
        answered[f"beacon {status}"] += 1
    return answered


def check_scrubbed(records: list[dict], n: int) -> None:
    assert len(records) == 3 * n, f"{len(records)} records for {3 * n} requests"
    assert {r["client_ip"] for r in records} == {"127.0.0.0"}
    content = [r for r in records if r["path"].startswith("/v/")]
    beacons = [r for r in records if r["path"] == "/beacon"]
    assert len(content) == n and len(beacons) == 2 * n
    assert all(r["query"] is None for r in content)  # token=... never stored
    for r in beacons:
        keys = {k for k, _ in urllib.parse.parse_qsl(r["query"] or "")}
        assert keys and keys <= {"event", "media", "stall_secs"}, r["query"]
    text = repr(records)
    for secret in ("secret", "session", "user_id", "email", "u1", "127.0.0.1"):
        assert secret not in text


@pytest.mark.parametrize("transport", ["udp", "unix"])
def test_every_request_and_beacon_is_stored_once_scrubbed(tmp_path: Path, transport: str) -> None:
    syslog_port = free_port()
    sock = tmp_path / "run" / "syslog.sock"
    configs = install_configs(
        tmp_path / "nginx-conf", syslog_port=syslog_port, ack_port=free_port(),
        unix_socket=sock if transport == "unix" else None,
    )  # fmt: skip
    source = (["--syslog-unix", str(sock)] if transport == "unix"
              else ["--syslog-udp", f"127.0.0.1:{syslog_port}"])  # fmt: skip
    serve = Serve(tmp_path, *source)
    try:
        www(tmp_path / "nginx")
        with Nginx(tmp_path / "nginx", http_conf(configs)) as nginx:
            answered = traffic(nginx.port)
        assert answered == {"content 200": 10, "beacon 204": 20}
        wait_for(lambda: len(stored(serve.db)) >= 30, what="30 records")
        time.sleep(0.5)  # nothing more comes
        check_scrubbed(stored(serve.db), 10)
    finally:
        assert serve.stop() == 0
    stats = serve.stats()
    assert stats["sources"][f"syslog_{transport}"] == {"lines": 30, "datagrams": 30,
                                                        "malformed": 0}  # fmt: skip
    assert "127.0.0.1" not in (tmp_path / "stderr.log").read_text()
    if transport == "unix":
        assert not sock.exists()  # removed at exit


def test_a_garbage_flood_is_counted_while_valid_lines_arrive(tmp_path: Path) -> None:
    syslog_port = free_port()
    configs = install_configs(tmp_path / "nginx-conf", syslog_port=syslog_port,
                              ack_port=free_port())  # fmt: skip
    serve = Serve(tmp_path, "--syslog-udp", f"127.0.0.1:{syslog_port}")
    garbage = [b"\x00\xff" * 700, b"not syslog at all", b"<13>" + b"x" * 60000,
               b"<13>Dec  1 10:00:00 h nginx: \xc3\x28 invalid utf-8", b""]  # fmt: skip
    try:
        www(tmp_path / "nginx")
        with Nginx(tmp_path / "nginx", http_conf(configs)) as nginx, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:  # fmt: skip
            for i in range(10):
                for _ in range(100):
                    flood.sendto(garbage[i % len(garbage)], ("127.0.0.1", syslog_port))
                request(nginx.port, "GET", f"/v/seg-{i % 3}.ts", headers={"User-Agent": UA})
        wait_for(lambda: len(stored(serve.db)) >= 10, what="the valid lines")
        assert serve.get("/healthz")[0] == 200
    finally:
        assert serve.stop() == 0
    stats = serve.stats()
    udp = stats["sources"]["syslog_udp"]
    assert len(stored(serve.db)) == 10
    assert udp["datagrams"] == 1010
    assert udp["malformed"] + stats["lines_in"] - 10 >= 1000 - 200  # empty ones may be dropped
    assert stats["records_out"] == 10


# --- file follow with a real nginx writing the log ------------------------------------------
def follow_nginx(tmp_path: Path) -> tuple[Nginx, Path]:
    log = tmp_path / "logs" / "access.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    configs = install_configs(tmp_path / "nginx-conf", syslog_port=free_port(),
                              ack_port=free_port())  # fmt: skip
    www(tmp_path / "nginx")
    conf = http_conf(configs).replace(
        "server {", f"access_log {log} sidecar_json;\n        server {{", 1
    )
    return Nginx(tmp_path / "nginx", conf), log


def follow_config(tmp_path: Path) -> str:
    return (
        '[serve]\nread_from = "beginning"\nrotate_wait_secs = 1.0\nglob_interval_secs = 0.2\n'
        "poll_interval_secs = 0.05\ncheckpoint_interval_secs = 0.2\n"
        f'[[sinks]]\nurl = "sqlite:{tmp_path / "analytics.db"}"\nbatch_timeout_secs = 0.05\n'
    )


def contents(db: Path) -> Counter[str]:
    return Counter(r["path"] for r in stored(db))


def get_all(port: int, paths: list[str]) -> None:
    for p in paths:
        status, _ = request(port, "GET", p, headers={"User-Agent": UA})
        assert status in (200, 404)


def test_follow_survives_rotation_by_rename_and_by_copytruncate(tmp_path: Path) -> None:
    nginx, log = follow_nginx(tmp_path)
    with nginx:
        serve = Serve(tmp_path, "--follow", str(log.parent / "*.log"),
                      config=follow_config(tmp_path))  # fmt: skip
        try:
            get_all(nginx.port, [f"/a{i}" for i in range(20)])
            wait_for(lambda: len(stored(serve.db)) == 20, what="before rotation")
            log.rename(log.with_name("access.log.1"))  # logrotate's rename, then reopen
            get_all(nginx.port, [f"/b{i}" for i in range(10)])  # still into the renamed file
            os.kill(nginx.proc.pid, signal.SIGUSR1)  # type: ignore[union-attr]
            wait_for(log.exists, what="nginx reopened")
            get_all(nginx.port, [f"/c{i}" for i in range(10)])
            wait_for(lambda: len(stored(serve.db)) == 40, what="after rename")
            copy = log.with_name("access.log.2")  # copytruncate: copy, then truncate in place
            copy.write_bytes(log.read_bytes())
            os.truncate(log, 0)
            get_all(nginx.port, [f"/d{i}" for i in range(10)])
            wait_for(lambda: len(stored(serve.db)) >= 50, what="after copytruncate")
            time.sleep(1.0)
        finally:
            assert serve.stop() == 0
    got = contents(serve.db)
    # the copy (access.log.2) matches the glob: its lines are the truncated file's, already
    # read under its fingerprint, so it is not read again
    assert set(got.values()) == {1}, {k: v for k, v in got.items() if v != 1}
    assert len(got) == 50


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_a_restart_resumes_from_the_checkpoint(tmp_path: Path, how: str) -> None:
    nginx, log = follow_nginx(tmp_path)
    with nginx:
        args = ("--follow", str(log))
        serve = Serve(tmp_path, *args, config=follow_config(tmp_path))
        get_all(nginx.port, [f"/a{i}" for i in range(30)])
        wait_for(lambda: len(stored(serve.db)) == 30, what="first run")
        time.sleep(0.5)  # a checkpoint after the acknowledgement
        if how == "sigterm":
            assert serve.stop() == 0
        else:
            serve.proc.kill()
            serve.proc.wait(10)
            serve.stderr.close()
        get_all(nginx.port, [f"/b{i}" for i in range(20)])  # while sidecar is down
        again = Serve(tmp_path, *args, config=follow_config(tmp_path))
        try:
            get_all(nginx.port, [f"/c{i}" for i in range(10)])
            wait_for(lambda: len(contents(again.db)) == 60, what="after restart")
            time.sleep(0.5)
        finally:
            assert again.stop() == 0
    got = contents(again.db)
    assert len(got) == 60  # nothing skipped
    repeated = {k: v for k, v in got.items() if v > 1}
    if how == "sigterm":
        assert repeated == {}  # nothing repeated
    else:  # at-least-once: at most the last unacknowledged batch (all of it was acked here)
        assert sum(repeated.values()) <= 30


def test_readyz_turns_503_while_clickhouse_is_down(tmp_path: Path) -> None:
    ch = ClickHouse(tmp_path / "clickhouse").start()
    try:
        url = f"clickhouse:{ch.http_url}/?database=analytics&table=requests"
        from tests.conftest import run_sidecar

        assert run_sidecar("storage", "init", "--sink", url).returncode == 0
        config = (f'[[sinks]]\nurl = "{url}"\nbatch_timeout_secs = 0.05\n'
                  "[storage]\nretry_initial_secs = 0.1\nretry_max_secs = 0.3\n")  # fmt: skip
        serve = Serve(tmp_path, "--stdin", "--sink", url, config=config)
        try:
            line = ('203.0.113.7 - - [01/Dec/2026:10:00:00 +0000] "GET /{} HTTP/1.1" 200 5 '
                    '"-" "curl/8"\n')  # fmt: skip
            serve.write(line.format("up"))
            wait_for(lambda: serve.get("/readyz")[0] == 200, what="ready")
            ch.stop()
            serve.write(line.format("down"))
            wait_for(lambda: serve.get("/readyz")[0] == 503, what="503 while down")
            body = json.loads(serve.get("/readyz")[1])
            assert body["ready"] is False
            assert "sink clickhouse-analytics.requests" in body["not_ready"]
            wait_for(lambda: serve.logged("sink down"), what="the self-log saying so")
            ch.start()
            wait_for(lambda: serve.get("/readyz")[0] == 200, timeout=30, what="ready again")
            serve.proc.stdin.close()  # type: ignore[union-attr]
        finally:
            assert serve.stop() == 0
        rows = ch.query("SELECT path FROM analytics.requests ORDER BY path FORMAT TSV")
        assert rows.split() == ["/down", "/up"]
    finally:
        ch.stop()
