"""Delivery guarantees, proved against a real ClickHouse 18.16 and a real SQLite file.

Each test drives `sidecar pipe` as a user would (a process, stdin, signals) and counts what
reached the store: nothing acknowledged is lost across outages, restarts, kill -9 and SIGTERM;
the spool holds scrubbed records only; a full spool drops loudly, never silently.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import COUNTRY_TEST_DB, PROJECT, run_sidecar
from tests.e2e.clickhouse import ClickHouse
from tests.sinks import wait_until

pytestmark = pytest.mark.e2e


def lines(start: int, n: int) -> bytes:
    """Unique, well-formed combined lines: request i asks for /seg_i.m4s, from 203.0.113.(i%250+1)."""
    return b"".join(
        f"203.0.113.{i % 250 + 1} - - [24/Nov/2026:10:{i // 60 % 60:02d}:{i % 60:02d} +0100] "
        f'"GET /v/abc/seg_{i}.m4s?token=s3cr3t HTTP/1.1" 200 {i} "https://www.google.com/search?q=me" '
        f'"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"\n'.encode()
        for i in range(start, start + n)
    )


def config(tmp: Path, url: str, **storage: object) -> Path:
    values = {"spool_dir": str(tmp / "spool"), "dead_letter_dir": str(tmp / "dead"),
              "retry_initial_secs": 0.1, "retry_max_secs": 0.5, "shutdown_timeout_secs": 5.0,
              **storage}  # fmt: skip
    text = f'[geoip]\ndatabase = "{COUNTRY_TEST_DB}"\n[input]\nformat = "combined"\n[storage]\n'
    text += "".join(f"{k} = {orjson.dumps(v).decode()}\n" for k, v in values.items())
    text += f'[[sinks]]\nurl = "{url}"\nbatch_max_rows = 500\nbatch_timeout_secs = 0.2\n'
    text += "timeout_secs = 2.0\n"
    path = tmp / "sidecar.toml"
    path.write_text(text)
    return path


def pipe(cfg: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sidecar", "pipe", "--config", str(cfg), "--stats",
         str(cfg.parent / "stats.json"), *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT,
    )  # fmt: skip


def feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.flush()


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()


def stats(cfg: Path) -> dict:
    return orjson.loads((cfg.parent / "stats.json").read_bytes())


def spooled_files(tmp: Path) -> list[Path]:
    return sorted((tmp / "spool").rglob("*.jsonl"))


def spooled_records(tmp: Path) -> int:
    """Records waiting in the spool, counted from the file names (`<seq>-<records>.jsonl`)."""
    return sum(int(p.name.split("-")[1].split(".")[0]) for p in spooled_files(tmp))


@pytest.fixture
def ch(tmp_path: Path) -> Iterator[ClickHouse]:
    yield from ClickHouse.fixture(tmp_path / "clickhouse")


def ch_url(ch: ClickHouse) -> str:
    return f"clickhouse:{ch.http_url}/?database=analytics&table=requests"


def ch_count(ch: ClickHouse) -> int:
    return int(ch.query("SELECT count() FROM analytics.requests"))


def init(url: str) -> None:
    out = run_sidecar("storage", "init", "--sink", url)
    assert out.returncode == 0, out.stderr


def test_insert_and_read_back(ch: ClickHouse, tmp_path: Path) -> None:
    init(ch_url(ch))
    cfg = config(tmp_path, ch_url(ch))
    proc = pipe(cfg)
    feed(proc, lines(0, 3000))
    code, err = finish(proc)
    assert code == 0, err
    assert ch_count(ch) == 3000
    row = ch.query("SELECT client_ip, country, path, query, referrer_host, bytes FROM "
                   "analytics.requests WHERE bytes = 7 FORMAT JSONEachRow")  # fmt: skip
    assert orjson.loads(row) == {"client_ip": "203.0.113.0", "country": None,
                                 "path": "/v/abc/seg_7.m4s", "query": None,
                                 "referrer_host": "www.google.com", "bytes": "7"}  # fmt: skip
    assert stats(cfg)["sinks"]
    assert not spooled_files(tmp_path)


def test_server_stopped_mid_stream_then_restarted(ch: ClickHouse, tmp_path: Path) -> None:
    init(ch_url(ch))
    cfg = config(tmp_path, ch_url(ch))
    proc = pipe(cfg)
    feed(proc, lines(0, 2000))
    time.sleep(1.0)
    ch.stop()
    feed(proc, lines(2000, 2000))  # arrives while the store is down: spooled
    wait_until(
        lambda: bool(spooled_files(tmp_path)),
        timeout=20,
        what="batches to wait on disk while the store is down",
    )
    ch.start()
    feed(proc, lines(4000, 2000))
    code, err = finish(proc)
    assert code == 0, err
    assert ch_count(ch) == 6000  # nothing lost; no duplicates in this run
    assert int(ch.query("SELECT uniqExact(bytes) FROM analytics.requests")) == 6000
    s = next(iter(stats(cfg)["sinks"].values()))
    assert s["delivered"] == 6000 and s["spooled"] > 0 and s["left_in_spool"] == 0
    assert "spooled while unavailable" in err


def test_kill_9_then_restart_replays_the_spool(ch: ClickHouse, tmp_path: Path) -> None:
    init(ch_url(ch))
    ch.stop()
    cfg = config(tmp_path, ch_url(ch))
    proc = pipe(cfg)
    feed(proc, lines(0, 3000))
    wait_until(
        lambda: spooled_records(tmp_path) >= 3000, timeout=20, what="the batches to be spooled"
    )
    proc.kill()  # kill -9: no flush, no goodbye
    proc.wait()
    assert spooled_records(tmp_path) == 3000
    ch.start()
    again = pipe(cfg)  # a new run with no input: replays what the last one left
    code, err = finish(again)
    assert code == 0, err
    assert ch_count(ch) == 3000
    assert not spooled_files(tmp_path)


def test_sigterm_flushes_everything_read(ch: ClickHouse, tmp_path: Path) -> None:
    init(ch_url(ch))
    cfg = config(tmp_path, ch_url(ch))
    proc = pipe(cfg)
    feed(proc, lines(0, 1234))
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 143, err
    assert ch_count(ch) == 1234
    assert stats(cfg)["lines_in"] == 1234


def test_a_store_that_refuses_goes_to_the_dead_letter_file(ch: ClickHouse, tmp_path: Path) -> None:
    ch.query("CREATE DATABASE analytics")
    ch.query(
        "CREATE TABLE analytics.requests (ts DateTime, client_ip String, status Date) "
        "ENGINE = MergeTree ORDER BY ts"
    )  # schema drift: status is not a number
    cfg = config(tmp_path, ch_url(ch))
    proc = pipe(cfg)
    feed(proc, lines(0, 700))
    code, err = finish(proc)
    assert code == 0, err
    dead = [orjson.loads(x) for x in next((tmp_path / "dead").iterdir()).read_bytes().splitlines()]
    assert len(dead) == 700
    assert {d["reason"] for d in dead} <= {"schema", "data"} and "Code:" in dead[0]["message"]
    assert dead[0]["record"]["client_ip"] == "203.0.113.0"
    assert "refused" in err


def test_missing_table_is_spooled_not_dead_lettered(ch: ClickHouse, tmp_path: Path) -> None:
    cfg = config(tmp_path, ch_url(ch), shutdown_timeout_secs=0.5)
    proc = pipe(cfg)
    feed(proc, lines(0, 800))
    code, err = finish(proc)
    assert code == 0, err
    assert not (tmp_path / "dead").exists()
    assert spooled_records(tmp_path) == 800
    init(ch_url(ch))
    code, err = finish(pipe(cfg))
    assert code == 0 and ch_count(ch) == 800


def test_spool_holds_only_scrubbed_records(ch: ClickHouse, tmp_path: Path) -> None:
    ch.stop()
    cfg = config(tmp_path, ch_url(ch), shutdown_timeout_secs=0.2)
    proc = pipe(cfg)
    feed(proc, lines(0, 1000))
    code, err = finish(proc)
    assert code == 0, err
    files = spooled_files(tmp_path)
    assert files
    blob = b"".join(f.read_bytes() for f in files)
    for i in range(1, 251):
        assert f'"203.0.113.{i}"'.encode() not in blob
    assert b"s3cr3t" not in blob and b"q=me" not in blob
    for line in blob.splitlines():
        assert orjson.loads(line)["client_ip"] == "203.0.113.0"


def test_full_spool_drops_loudly(ch: ClickHouse, tmp_path: Path) -> None:
    ch.stop()
    cfg = config(tmp_path, ch_url(ch), spool_max_bytes=100_000, shutdown_timeout_secs=0.2)
    proc = pipe(cfg)
    feed(proc, lines(0, 3000))
    code, err = finish(proc)
    assert code == 0, err
    s = next(iter(stats(cfg)["sinks"].values()))
    assert s["dropped"] > 0
    assert s["dropped"] + s["left_in_spool"] == 3000
    assert "DROPPED (spool full)" in err
    assert sum(f.stat().st_size for f in spooled_files(tmp_path)) <= 100_000


def test_sqlite_locked_by_another_connection(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    url = f"sqlite:{db}"
    cfg = config(tmp_path, url)
    cfg.write_text(cfg.read_text().replace("timeout_secs = 2.0", "timeout_secs = 0.2"))
    init(url)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the database
    proc = pipe(cfg)
    feed(proc, lines(0, 1500))
    wait_until(
        lambda: bool(spooled_files(tmp_path)),
        timeout=20,
        what="batches to wait on disk while locked",
    )
    holder.execute("ROLLBACK")
    holder.close()
    code, err = finish(proc)
    assert code == 0, err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 1500
        total = conn.execute("SELECT requests FROM daily WHERE dimension = 'total'").fetchone()[0]
        assert total == 1500


def test_sqlite_reader_does_not_block_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    cfg = config(tmp_path, f"sqlite:{db}")
    init(f"sqlite:{db}")
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM daily").fetchone()  # a long read transaction (WAL)
    proc = pipe(cfg)
    feed(proc, lines(0, 1000))
    code, err = finish(proc)
    reader.execute("COMMIT")
    assert code == 0, err
    assert not spooled_files(tmp_path)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM requests").fetchone()[0] == 1000


def test_report_over_what_pipe_stored(tmp_path: Path) -> None:
    db = tmp_path / "analytics.db"
    cfg = config(tmp_path, f"sqlite:{db}")
    proc = pipe(cfg)
    feed(proc, lines(0, 500))
    assert finish(proc)[0] == 0
    out = run_sidecar("report", "--sink", f"sqlite:{db}", "--since", "all", "--format", "json")
    assert out.returncode == 0, out.stderr
    report = orjson.loads(out.stdout)
    assert report["requests"] == 500
    assert report["tables"]["per_day"] == [{"day": "2026-11-24", "requests": 500,
                                            "bytes": sum(range(500))}]  # fmt: skip
    assert report["tables"]["referrers"][0]["referrer_host"] == "www.google.com"
    table = run_sidecar("report", "--sink", f"sqlite:{db}", "--since", "all")
    assert table.returncode == 0, table.stderr
    assert b"Top countries" in table.stdout and b"500" in table.stdout
    assert os.environ.get("NO_SUCH_THING") is None


def test_rollups_from_workers_match_a_single_process(tmp_path: Path) -> None:
    """With --workers 2 the rollups are computed in the worker processes: the stored data and
    the report are the same as with one process."""
    log = tmp_path / "big.log"
    log.write_bytes(lines(0, 30000))
    reports = []
    for workers in ("1", "2"):
        db = tmp_path / f"w{workers}.db"
        workdir = tmp_path / f"w{workers}"
        workdir.mkdir()
        cfg = config(workdir, f"sqlite:{db}")
        out = run_sidecar("pipe", "--config", str(cfg), "--workers", workers, str(log))
        assert out.returncode == 0, out.stderr
        report = run_sidecar(
            "report", "--sink", f"sqlite:{db}", "--since", "all", "--format", "json"
        )
        assert report.returncode == 0, report.stderr
        reports.append(orjson.loads(report.stdout))
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 30000
    assert reports[0] == reports[1]
    assert reports[0]["requests"] == 30000
