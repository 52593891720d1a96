"""serve: the daemon as a user runs it (a real process, real sockets, SQLite), from stdin.

Syslog, follow and nginx end to end: tests/e2e/test_serve_nginx.py.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serving import Serve, rows, wait_for

LINE = (
    '203.0.113.77 - - [01/Dec/2026:10:00:00 +0000] "GET /v/{n}.m3u8?token=x HTTP/1.1" 200 512 '
    '"-" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"\n'
)


def test_stdin_alone_flushes_and_exits_0_at_its_end(tmp_path: Path) -> None:
    s = Serve(tmp_path, "--stdin")
    s.write("".join(LINE.format(n=i) for i in range(50)) + "garbage\n")
    s.proc.stdin.close()  # type: ignore[union-attr]
    assert s.proc.wait(30) == 0
    got = rows(s.db)
    assert len(got) == 50
    assert {r[0] for r in got} == {"203.0.113.0"} and all(r[2] is None for r in got)
    stats = s.stats()
    assert stats["lines_in"] == 51 and stats["records_out"] == 50
    assert stats["rejected"] == {"format_mismatch": 1}
    assert stats["sources"] == {"stdin": {"lines": 51}}
    assert stats["sinks"]["sqlite-analytics.db"]["delivered"] == 50
    assert "203.0.113.77" not in (tmp_path / "stderr.log").read_text()


def test_a_trickle_reaches_storage_within_the_batch_timeout(tmp_path: Path) -> None:
    s = Serve(tmp_path, "--stdin")
    try:
        s.write(LINE.format(n=1))
        wait_for(lambda: len(rows(s.db)) == 1, timeout=10, what="one line, stdin still open")
    finally:
        s.proc.stdin.close()  # type: ignore[union-attr]
        assert s.stop() == 0


def test_endpoints_healthz_readyz_metrics_and_404(tmp_path: Path) -> None:
    s = Serve(tmp_path, "--stdin")
    try:
        s.write(LINE.format(n=1))
        wait_for(lambda: len(rows(s.db)) == 1, what="a record")
        assert s.get("/healthz")[0] == 200
        status, body = s.get("/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        status, body = s.get("/metrics")
        assert status == 200
        assert b'sidecar_lines_received_total{source="stdin"} 1.0' in body
        assert b'sidecar_records_delivered_total{sink="sqlite-analytics.db"} 1.0' in body
        assert s.get("/")[0] == 404 and s.get("/metrics/x")[0] == 404
    finally:
        assert s.stop() == 0


def test_sigterm_flushes_what_was_read_and_exits_0(tmp_path: Path) -> None:
    config = "[serve]\nflush_interval_secs = 60.0\n[[sinks]]\nurl = 'sqlite:analytics.db'\n"
    config += "batch_timeout_secs = 60.0\n"
    s = Serve(tmp_path, "--stdin", "--sink", "sqlite:analytics.db", config=config)
    s.write("".join(LINE.format(n=i) for i in range(20)))
    time.sleep(0.3)  # read, held in a batch that would wait a minute
    assert rows(s.db) == []
    assert s.stop() == 0
    assert len(rows(s.db)) == 20
    assert s.logged("stopped")


def test_sighup_reloads_a_good_config_and_refuses_a_bad_one(tmp_path: Path) -> None:
    s = Serve(tmp_path, "--stdin", config="[query]\nallow = []\n")
    try:
        s.write(LINE.format(n=1))
        wait_for(lambda: len(rows(s.db)) == 1, what="first record")
        (tmp_path / "sidecar.toml").write_text('[query]\nallow = ["token"]\n')
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: s.logged("reloaded"), what="reload")
        s.write(LINE.format(n=2))
        wait_for(lambda: len(rows(s.db)) == 2, what="second record")
        assert rows(s.db)[1][2] == "token=x"  # the new rule
        (tmp_path / "sidecar.toml").write_text("[query]\nallow = 3\n")
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: s.logged("reload refused; the running config stays"), what="refusal")
        refusal = next(e for e in s.log() if e["msg"].startswith("reload refused"))
        assert "query.allow" in refusal["reason"]
        s.write(LINE.format(n=3))
        wait_for(lambda: len(rows(s.db)) == 3, what="third record")
        assert rows(s.db)[2][2] == "token=x"  # the good config still runs
        body = s.get("/metrics")[1]
        assert b'sidecar_config_reloads_total{result="ok"} 1.0' in body
        assert b'sidecar_config_reloads_total{result="refused"} 1.0' in body
    finally:
        s.proc.stdin.close()  # type: ignore[union-attr]
        assert s.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "serve: no source"),
        (("--stdin", "--http", "nonsense"), "serve.http"),
        (("--syslog-udp", "127.0.0.1:99999"), "serve.syslog_udp"),
    ],
)
def test_bad_start_exits_2_naming_the_key(tmp_path: Path, args: tuple, message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--geoip", "", *args],
        cwd=tmp_path, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert message in out.stderr.decode()


def test_a_port_in_use_exits_2_naming_it(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "sidecar", "serve", "--geoip", "", "--stdin",
             "--http", f"127.0.0.1:{port}"],
            cwd=tmp_path, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert out.returncode == 2
    assert "serve.http" in out.stderr.decode()


def test_metrics_pass_promtool_and_hold_no_input_data(tmp_path: Path) -> None:
    import shutil

    hostile = (
        '198.51.100.77 - - [01/Dec/2026:10:00:00 +0000] "GET /secret-path/v.m3u8?token=tok123'
        '&uid=jane HTTP/1.1" 200 5 "https://ref.example/p?q=search" "EvilAgent/1.0 (x=1)"\n'
        "\x00binary 198.51.100.78\n"
    )
    s = Serve(tmp_path, "--stdin")
    try:
        s.write(hostile * 5)
        wait_for(lambda: len(rows(s.db)) == 5, what="the records")
        status, body = s.get("/metrics")
        assert status == 200
    finally:
        s.proc.stdin.close()  # type: ignore[union-attr]
        assert s.stop() == 0
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: tests/setup.sh installs Debian's prometheus"
    out = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr
    log = (tmp_path / "stderr.log").read_bytes()
    for secret in (b"198.51.100.77", b"198.51.100.78", b"secret-path", b"tok123", b"jane",
                   b"search", b"EvilAgent", b"ref.example"):  # fmt: skip
        assert secret not in body and secret not in log, secret
    assert b'sidecar_lines_rejected_total{reason="binary",source="stdin"} 5.0' in body
