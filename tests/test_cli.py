"""cli: `sidecar pipe`, `check-config`, `geoip build`, `--version`, as a user runs them.

What each bad input gets: a bad config or flag -> exit 2 and one line naming the key or file;
a bad log line -> counted under its reason, never printed; a closed stdout -> a quiet exit.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import stat
import subprocess
import sys
import time
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
        (
            ("pipe", "--format", "log_format x '$remote_addr $status'"),
            b"--format: log_format x has no time ($time_local",
        ),
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
    assert 'sidecar_lines_received_total{source="stdin"} 4.0' in text
    assert 'sidecar_records_out_total{source="stdin"} 3.0' in text
    assert 'sidecar_lines_rejected_total{reason="format_mismatch",source="stdin"} 1.0' in text
    assert "sidecar_records_delivered_total{sink=" in text and "} 3.0" in text
    assert not SECRETS.search(prom.read_bytes())
    for data in (b"/v/abc", b"seg_1", b"Firefox", b"curl", b"search.example", b"uid"):
        assert data not in prom.read_bytes(), data  # no path, user agent or referrer either


# --- outputs that fail: a full disk, a device or a folder where a file should be -------------

LINE = HOSTILE[: HOSTILE.index(b"\n") + 1]
QUIET = (b"Traceback", b"Exception ignored")


@pytest.mark.parametrize(
    "args, name",
    [((), b"stdout"), (("--rejects", "/dev/full"), b"--rejects"),
     (("--stats", "/dev/full"), b"--stats")],
)  # fmt: skip
def test_a_full_disk_ends_in_one_clear_line(args: tuple[str, ...], name: bytes) -> None:
    full = open("/dev/full", "wb")  # noqa: SIM115 - stdout of the child
    with full:
        out = subprocess.run(
            [sys.executable, "-m", "sidecar", "pipe", *GEO, *args],
            input=LINE * 3 + b"not a log line\n",
            stdout=full if not args else subprocess.DEVNULL,
            stderr=subprocess.PIPE, cwd=PROJECT, timeout=60, check=False,
        )  # fmt: skip
    assert out.returncode == 1, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith(b"sidecar: error:")]
    assert errors == [b"sidecar: error: " + name + b": No space left on device"]
    assert not any(q in out.stderr for q in QUIET), out.stderr
    assert not SECRETS.search(out.stderr)


@pytest.mark.parametrize("command", [("check-config", "config/sidecar.toml"), ("--version",)])
def test_a_full_disk_on_stdout_for_other_commands(command: tuple[str, ...]) -> None:
    with open("/dev/full", "wb") as full:
        out = subprocess.run([sys.executable, "-m", "sidecar", *command], stdout=full,
                             stderr=subprocess.PIPE, cwd=PROJECT, timeout=60, check=False)  # fmt: skip
    if command[0] == "--version":  # argparse prints and exits itself: at least no traceback
        assert b"Traceback" not in out.stderr
        return
    assert out.returncode == 1
    assert out.stderr.strip() == b"sidecar: error: stdout: No space left on device"


def test_metrics_textfile_must_be_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "metrics.fifo"  # a FIFO, not a real device: the old code replaced it
    os.mkfifo(fifo)
    for path in (fifo, tmp_path, tmp_path / "missing" / "x.prom"):
        out = run_sidecar("pipe", *GEO, "--metrics-textfile", str(path), input=HOSTILE)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith(b"sidecar: error: --metrics-textfile: "), out.stderr
        assert out.stdout == b""  # refused before any input is read
    assert stat.S_ISFIFO(fifo.stat().st_mode)


# --- storage folders: checked at start, by pipe and check-config alike -----------------------


@pytest.mark.parametrize("key", ["spool_dir", "dead_letter_dir"])
@pytest.mark.parametrize("where", ["/proc/sidecar-spool", "below-a-file/spool", "a-file"])
def test_an_unwritable_storage_folder_is_refused_at_start(
    tmp_path: Path, key: str, where: str
) -> None:
    (tmp_path / "below-a-file").write_text("")
    (tmp_path / "a-file").write_text("")
    folder = where if where.startswith("/") else str(tmp_path / where)
    db = tmp_path / "a.db"
    cfg = tmp_path / "sidecar.toml"
    cfg.write_text(f'[storage]\n{key} = "{folder}"\n[[sinks]]\nurl = "sqlite:{db}"\n')
    for args in (("pipe", *GEO, "--config", str(cfg)), ("check-config", str(cfg))):
        out = run_sidecar(*args, input=HOSTILE)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith(f"sidecar: error: storage.{key}: ".encode()), out.stderr
        assert str(cfg).encode() in out.stderr and out.stdout == b""
    assert not db.exists()  # nothing opened, nothing read


def test_storage_folders_are_checked_without_leaving_anything(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    cfg = tmp_path / "sidecar.toml"
    cfg.write_text(f'[storage]\nspool_dir = "{tmp_path}/s/spool"\n'
                   f'dead_letter_dir = "{tmp_path}/d"\n')  # fmt: skip
    out = run_sidecar("pipe", *GEO, "--config", str(cfg), "--sink", f"sqlite:{db}", input=LINE)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "d").exists()


def test_stdout_alone_needs_no_storage_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "sidecar.toml"
    cfg.write_text('[storage]\nspool_dir = "/proc/sidecar-spool"\n')
    out = run_sidecar("pipe", *GEO, "--config", str(cfg), input=LINE)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 1


# --- config messages: the key and file, never a secret ---------------------------------------


def test_a_bad_format_names_where_it_came_from(tmp_path: Path) -> None:
    cfg = tmp_path / "sidecar.toml"
    cfg.write_text("[input]\nformat = \"log_format x '$remote_addr $status'\"\n")
    from_file = run_sidecar("pipe", *GEO, "--config", str(cfg), input=b"")
    checked = run_sidecar("check-config", str(cfg))
    for out in (from_file, checked):
        assert out.returncode == 2
        assert out.stderr.startswith(b"sidecar: error: input.format: log_format x has no time")
        assert str(cfg).encode() in out.stderr and b"--format" not in out.stderr
    assert from_file.stderr == checked.stderr
    from_flag = run_sidecar("pipe", *GEO, "--config", str(cfg), "--format", "bogus", input=b"")
    assert from_flag.returncode == 2
    assert from_flag.stderr.startswith(b"sidecar: error: --format: unknown format 'bogus': ")


@pytest.mark.parametrize(
    "toml, key",
    [('[[sinks]]\nurl = "stdout:"\npassword = 12345678\n', b"sinks[0].password"),
     ('[[sinks]]\nurl = "clickhouse:ftp://u:12345678@h/"\n', b"sinks[0].url"),
     ("[storage]\nshutdown_timeout_secs = inf\n", b"storage.shutdown_timeout_secs"),
     ('[[sinks]]\nurl = "stdout:"\ntimeout_secs = nan\n', b"sinks[0].timeout_secs"),
     ("[storage]\nretry_max_secs = 1e308\n", b"storage.retry_max_secs")],
)  # fmt: skip
def test_check_config_refuses_what_pipe_refuses(tmp_path: Path, toml: str, key: bytes) -> None:
    cfg = tmp_path / "sidecar.toml"
    cfg.write_text(toml)
    for args in (("check-config", str(cfg)), ("pipe", *GEO, "--config", str(cfg))):
        out = run_sidecar(*args, input=b"")
        assert out.returncode == 2 and out.stderr.startswith(b"sidecar: error: " + key)
        assert b"12345678" not in out.stderr


# --- a live pipe: junk first, a pause, then the log; the clock starts before the first read --


def _reading_stdin(pid: int, timeout: float = 20) -> None:
    """Wait until the process sleeps reading a pipe (where the kernel tells), else `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "pipe" in Path(f"/proc/{pid}/wchan").read_text():
                return
        except OSError:
            pass
        time.sleep(0.05)


def _live_run(*pieces: bytes, pause: float) -> tuple[bytes, bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "pipe", *GEO],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT,
    )  # fmt: skip
    assert proc.stdin is not None
    for piece in pieces:
        time.sleep(0.2)
        _reading_stdin(proc.pid)
        time.sleep(pause)
        proc.stdin.write(piece)
        proc.stdin.flush()
    proc.stdin.close()
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()  # small: neither pipe fills
    assert proc.wait(timeout=60) == 0, err
    return out, err


@pytest.mark.parametrize("junk", [b"GET /healthz HTTP/1.1\n", b"\n", b"\x16\x03\x01\n"])
def test_a_live_pipe_detects_past_a_junk_first_chunk(junk: bytes) -> None:
    good = [
        f'192.0.2.{i} - - [24/Nov/2026:10:00:0{i} +0100] "GET /v/{i} HTTP/1.1" 200 {i} '
        f'"-" "curl/8"\n'.encode()
        for i in range(1, 6)
    ]
    out, err = _live_run(junk, b"".join(good), pause=0.3)
    assert [orjson.loads(x)["path"] for x in out.splitlines()] == [f"/v/{i}" for i in range(1, 6)]
    assert b"no known log format" not in err and b"6 lines in, 5 records out" in err


def test_the_summary_counts_the_wait_for_the_first_line() -> None:
    _, err = _live_run(LINE, pause=1.5)
    secs = float(re.search(rb", ([0-9.]+) s, ", err).group(1))  # type: ignore[union-attr]
    assert secs >= 1.4, err


def test_metrics_textfile_is_written_during_a_long_run_too(tmp_path: Path) -> None:
    prom = tmp_path / "sidecar.prom"
    cfg = tmp_path / "sidecar.toml"
    cfg.write_text("[pipe]\nmetrics_textfile_interval_secs = 0.05\n")
    line = b'192.0.2.1 - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n'
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "pipe", *GEO, "--config", str(cfg),
         "--metrics-textfile", str(prom)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )  # fmt: skip
    assert proc.stdin is not None
    try:
        deadline = time.monotonic() + 20
        while not (prom.exists() and "sidecar_lines_received_total" in prom.read_text()):
            assert time.monotonic() < deadline, "no textfile while the run goes on"
            proc.stdin.write(line)  # a live stream: each line is a chunk of its own
            proc.stdin.flush()
            time.sleep(0.1)
        assert proc.poll() is None  # still running: written before the end
    finally:
        proc.stdin.close()
        assert proc.wait(30) == 0
