"""cli: `sidecar pipe`, `check-config`, `geoip build`, `--version`, as a user runs them.

What each bad input gets: a bad config or flag -> exit 2 and one line naming the key or file;
a bad log line -> counted under its reason, never printed; a closed stdout -> a quiet exit.
"""

from __future__ import annotations

import bz2
import gzip
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from sidecar import __version__
from tests.conftest import COUNTRY_TEST_DB, PROJECT, run_sidecar

GEO = ("--geoip", str(COUNTRY_TEST_DB))

# the before-stop hook's smoke test, kept here as a test
HOSTILE = b"""\
203.0.113.77 - - [24/Nov/2026:10:00:00 +0100] "GET /v/abc/seg_1.m4s?token=s3cr3t&ip=198.51.100.23 HTTP/1.1" 200 1234 "https://search.example.org/results?q=my+name&uid=42" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
2001:db8:85a3:1234:5678:8a2e:370:7334 - - [24/Nov/2026:10:00:01 +0100] "GET /v/abc/master.m3u8 HTTP/1.1" 200 512 "-" "curl/8.0"
::ffff:192.0.2.155 - - [24/Nov/2026:10:00:02 +0100] "GET / HTTP/1.1" 404 0 "-" "-"
this is not a log line from 192.0.2.201
"""
SECRETS = re.compile(
    rb"203\.0\.113\.77|198\.51\.100\.23|2001:db8:85a3:1234|192\.0\.2\.155|192\.0\.2\.201|s3cr3t"
    rb"|my\+name"
)


def test_version() -> None:
    out = run_sidecar("--version")
    assert out.returncode == 0 and out.stdout.decode().strip() == f"sidecar {__version__}"


@pytest.mark.parametrize("output", ["jsonl", "rewrite"])
def test_pipe_lets_nothing_private_through(tmp_path: Path, output: str) -> None:
    rejects = tmp_path / "rejects.txt"
    out = run_sidecar("pipe", *GEO, "--output", output, "--rejects", str(rejects), input=HOSTILE)
    assert out.returncode == 0, out.stderr
    for stream in (out.stdout, out.stderr, rejects.read_bytes()):
        assert not SECRETS.search(stream), stream
    assert len(out.stdout.splitlines()) == 3
    assert b"192.0.2.0" in rejects.read_bytes()


def test_stats_file_and_summary(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    out = run_sidecar("pipe", *GEO, "--stats", str(stats), input=HOSTILE + b"\n\x00\x01\n")
    assert orjson.loads(stats.read_bytes()) == {
        "lines_in": 6,
        "records_out": 3,
        "rejected": {"empty": 1, "binary": 1, "format_mismatch": 1},
    }
    assert b"6 lines in, 3 records out, 3 rejected" in out.stderr
    assert b"\r" not in out.stderr  # no progress line when stderr is not a terminal


def test_files_as_arguments_gz_and_bz2(tmp_path: Path) -> None:
    plain = tmp_path / "access.log"
    plain.write_bytes(HOSTILE)
    (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(HOSTILE))
    (tmp_path / "rotated.bz2").write_bytes(bz2.compress(HOSTILE))
    out = run_sidecar("pipe", *GEO, str(plain), str(tmp_path / "access.log.1.gz"),
                      str(tmp_path / "rotated.bz2"))  # fmt: skip
    assert out.returncode == 0
    assert len(out.stdout.splitlines()) == 9
    gz_stdin = run_sidecar("pipe", *GEO, input=gzip.compress(HOSTILE))
    assert len(gz_stdin.stdout.splitlines()) == 3


def test_workers_keep_input_order(tmp_path: Path) -> None:
    lines = [
        f"192.0.2.{i % 250} - - [24/Nov/2026:10:{i // 60 % 60:02d}:{i % 60:02d} +0100] "
        f'"GET /seg_{i}.m4s HTTP/1.1" 200 {i} "-" "curl/8"\n'
        for i in range(60000)
    ]
    log = tmp_path / "big.log"
    log.write_text("".join(lines))
    one = run_sidecar("pipe", *GEO, str(log))
    two = run_sidecar("pipe", *GEO, "--workers", "2", str(log))
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout
    assert [orjson.loads(x)["bytes"] for x in two.stdout.splitlines()] == list(range(60000))


def test_closed_stdout_exits_quietly(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(HOSTILE[: HOSTILE.index(b"\n") + 1] * 200000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "pipe", *GEO, str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert b"Traceback" not in err and b"Error" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (("pipe", "--geoip", "/nonexistent/country.mmdb"), b"geoip.database: '/nonexistent"),
        (("pipe", "--format", "apache_fancy"), b"--format: unknown format 'apache_fancy'"),
        (("pipe", "--format", "log_format x '$remote_addr $status'"), b"no a time"),
        (("pipe", "--workers", "0"), b"pipe.workers: must be an integer from 1 to 64"),
        (("pipe", "missing.log"), b"input file 'missing.log' not found"),
        (("pipe", "--config", "missing.toml"), b"config file 'missing.toml' not found"),
        (("pipe", "--stats", "/nonexistent/dir/stats.json"), b"--stats: cannot write"),
        (("pipe", "--rejects", "/nonexistent/dir/r.txt"), b"--rejects: cannot write"),
        (("bogus",), b"invalid choice"),
        ((), b"usage"),
    ],
)
def test_usage_and_config_errors_exit_2(args: tuple[str, ...], message: bytes) -> None:
    out = run_sidecar(*args, input=b"")
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert b"Traceback" not in out.stderr


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "sidecar.toml"
    cfg.write_text("[referrer]\nfirst_party = ['example.eu']\n")
    out = run_sidecar("pipe", "--config", str(cfg), input=HOSTILE)
    assert out.returncode == 2
    assert b"unknown key 'referrer.first_party'" in out.stderr and not out.stdout


def test_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(f'[geoip]\ndatabase = "{COUNTRY_TEST_DB}"\n')
    out = run_sidecar("check-config", str(good))
    assert out.returncode == 0 and b"ok" in out.stdout
    documented = run_sidecar("check-config", str(PROJECT / "config" / "sidecar.toml"))
    assert documented.returncode in (0, 2)  # 2 only when data/country.mmdb is not built
    bad = tmp_path / "bad.toml"
    bad.write_text("[ip]\nipv4_prefix_bits = 40\n")
    out = run_sidecar("check-config", str(bad))
    assert out.returncode == 2 and b"ip.ipv4_prefix_bits" in out.stderr


def test_undetectable_format_rejects_every_line(tmp_path: Path) -> None:
    stats = tmp_path / "s.json"
    out = run_sidecar("pipe", *GEO, "--stats", str(stats), input=b"hello 10.1.2.3\nworld\n")
    assert out.returncode == 0 and out.stdout == b""
    assert b"no known log format matched" in out.stderr
    assert b"10.1.2.3" not in out.stderr
    assert orjson.loads(stats.read_bytes())["rejected"] == {"format_mismatch": 2}


def test_metrics_textfile(tmp_path: Path) -> None:
    prom = tmp_path / "sidecar.prom"
    db = tmp_path / "a.db"
    out = run_sidecar("pipe", *GEO, "--sink", f"sqlite:{db}", "--metrics-textfile", str(prom),
                      input=HOSTILE)  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = prom.read_text()
    assert "sidecar_lines_total 4.0" in text
    assert 'sidecar_lines_rejected_total{reason="format_mismatch"} 1.0' in text
    assert "sidecar_records_delivered_total{sink=" in text and "} 3.0" in text
    assert not SECRETS.search(prom.read_bytes())
