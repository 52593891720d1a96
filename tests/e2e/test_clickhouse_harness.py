"""The ClickHouse harness itself: a real server starts, answers, keeps data across restarts."""

from __future__ import annotations

import base64
import gzip
import http.client
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import clickhouse as clickhouse_mod
from tests.e2e.clickhouse import (
    WHOAMI,
    WRITER_PASSWORD,
    WRITER_USER,
    ClickHouse,
    ClickHouseError,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    """One server for the tests that leave it running as they found it."""
    yield from ClickHouse.fixture(tmp_path_factory.mktemp("clickhouse"))


@pytest.fixture
def own_ch(tmp_path: Path) -> Iterator[ClickHouse]:
    """A server of this test's own, for a test that stops and kills it."""
    yield from ClickHouse.fixture(tmp_path / "clickhouse")


def test_ping_and_version(ch: ClickHouse) -> None:
    with urllib.request.urlopen(ch.http_url + "/ping", timeout=5) as resp:
        assert resp.read() == b"Ok.\n"
    assert ch.query("SELECT version()").startswith("18.16.")
    assert ch.query("SELECT toString(toDateTime(86400))") == "1970-01-02 00:00:00\n"  # UTC
    assert ch.tcp_port != ch.http_port


def test_create_insert_select(ch: ClickHouse) -> None:
    ch.query("CREATE DATABASE IF NOT EXISTS web")
    ch.query(
        "CREATE TABLE IF NOT EXISTS web.t (ts DateTime, host String, status UInt16) "
        "ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (ts, host)"
    )
    rows = b'{"ts":"2026-11-24 09:00:00","host":"a","status":200}\n' * 3
    ch.query(
        "INSERT INTO web.t FORMAT JSONEachRow",
        gzip.compress(rows),
        headers={"Content-Encoding": "gzip"},
    )
    assert ch.query("SELECT count(), sum(status) FROM web.t") == "3\t600\n"
    with pytest.raises(ClickHouseError) as err:
        ch.query("INSERT INTO web.t FORMAT JSONEachRow", b'{"ts":"x","host":"a","status":1}\n')
    assert err.value.status in (400, 500) and "Code: " in err.value.body


def test_stop_start_keeps_data_and_ports(own_ch: ClickHouse) -> None:
    own_ch.query("CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x")
    own_ch.query("INSERT INTO t VALUES", "(1),(2),(3)")
    port = own_ch.http_port
    # a client holding a keep-alive connection slows SIGTERM down; stop() still returns
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/?query=SELECT%201")
    assert conn.getresponse().read() == b"1\n"
    assert own_ch.stop(timeout=5) < 8
    assert not own_ch.running and not own_ch.ping()
    with pytest.raises(OSError):
        own_ch.query("SELECT 1", timeout=2)
    conn.close()
    own_ch.start()
    assert own_ch.http_port == port
    assert own_ch.query("SELECT sum(x) FROM t") == "6\n"
    own_ch.stop(timeout=0)  # SIGKILL: a crash
    own_ch.start()
    assert own_ch.query("SELECT sum(x) FROM t") == "6\n"


def test_writer_user_needs_its_password(ch: ClickHouse) -> None:
    assert ch.query(WHOAMI, user=WRITER_USER, password=WRITER_PASSWORD) == WRITER_USER + "\n"
    basic = base64.b64encode(f"{WRITER_USER}:{WRITER_PASSWORD}".encode()).decode()
    assert ch.query(WHOAMI, headers={"Authorization": f"Basic {basic}"}) == WRITER_USER + "\n"
    assert ch.query(WHOAMI) == "default\n"
    with pytest.raises(ClickHouseError) as err:
        ch.query("SELECT 1", user=WRITER_USER, password="wrong")
    assert "Code: 193" in err.value.body  # Wrong password for user writer


def test_missing_binary_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clickhouse_mod, "CLICKHOUSE_SERVER", str(tmp_path / "nope"))
    with pytest.raises(RuntimeError, match=r"tests/setup\.sh installs Debian.s clickhouse-server"):
        ClickHouse(tmp_path)
