"""Planted addresses through every output channel of `sidecar pipe`, as a user runs it.

A few bounded subprocess runs over a log of generated lines (the same generators as the
in-process fuzzing, fed from seeded bytes so each run is reproducible), with `--stats`,
`--rejects`, `--metrics-textfile`, a `sqlite:` and a `jsonl:` sink, an `http:` sink on a closed
loopback port (records go to the spool) and one answering 400 (records go to the dead-letter
file), `--output rewrite` and `--workers 2`. Every file written, every SQLite row, stdout and
stderr are read back: no planted address may survive in any of them.
"""

from __future__ import annotations

import http.server
import json
import random
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import COUNTRY_TEST_DB, run_sidecar
from tests.fuzz.checks import HOST_KEYS, Violation, jsonl_leaks, text_leaks
from tests.fuzz.oracle import Identity
from tests.fuzz.strategies import CUSTOM_FORMAT, PRESETS, BytesChooser, make_line

LINES_PER_RUN = 40


def _toml_value(v: object) -> str:
    return json.dumps(v) if not isinstance(v, bool) else str(v).lower()


def write_config(path: Path, preset: str, tmp: Path) -> None:
    sections = {k: dict(v) for k, v in PRESETS[preset].items()}
    sections["geoip"] = {"database": str(COUNTRY_TEST_DB)}
    sections["storage"] = {
        "spool_dir": str(tmp / "spool"),
        "dead_letter_dir": str(tmp / "dead-letter"),
        "shutdown_timeout_secs": 0.5,
        "retry_initial_secs": 0.1,
        "retry_max_secs": 0.2,
    }
    text = ""
    for name, values in sections.items():
        text += f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
    path.write_text(text)


def make_log(seed: int, preset: str, fmt: str) -> tuple[bytes, list[Identity], list[str]]:
    rng = random.Random(seed)
    lines, identities, notes = [], [], []
    for _ in range(LINES_PER_RUN):
        line, plant, note = make_line(BytesChooser(rng.randbytes(160)), preset, fmt)
        lines.append(line)
        identities += plant.identities
        notes.append(note)
    data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
    return data, identities, notes


def _lines_of(data: bytes) -> Iterator[str]:
    yield from data.decode("utf-8", "replace").splitlines()


def file_violations(path: Path, identities: list[Identity]) -> list[Violation]:
    data = path.read_bytes()
    out: list[Violation] = []
    for line in _lines_of(data):
        if line.startswith("{"):
            out += jsonl_leaks(path.name, line, identities)
        else:
            out += text_leaks(path.name, line, identities)
    return out


def sqlite_violations(db: Path, identities: list[Identity]) -> list[Violation]:
    out: list[Violation] = []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cur = con.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cur.description]
            for row in cur:
                for name, value in zip(names, row, strict=True):
                    if isinstance(value, str):
                        out += text_leaks(
                            f"sqlite:{table}.{name}", value, identities, host=name in HOST_KEYS
                        )
    finally:
        con.close()
    return out


class _Refuse(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"refused: schema mismatch"
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ingest"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RUNS = {
    # name: (seed, preset, format, extra flags; {http400} and {closed} filled in)
    "sqlite-jsonl": (
        1,
        "default",
        "vhost_combined",
        ["--sink", "sqlite:{tmp}/a.db", "--sink", "jsonl:{tmp}/out.jsonl"],
    ),
    "spool-dead-letter": (
        2,
        "strict",
        "nginx-main",
        ["--sink", "http:http://127.0.0.1:{closed}/x", "--sink", "http:{http400}"],
    ),
    "rewrite-workers": (3, "default", CUSTOM_FORMAT, ["--output", "rewrite", "--workers", "2"]),
    "json-strict": (4, "strict", "nginx-json", ["--workers", "2"]),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_channels(name: str, tmp_path: Path, refusing_server: str) -> None:
    seed, preset, fmt, extra = RUNS[name]
    data, identities, notes = make_log(seed, preset, fmt)
    log = tmp_path / "input.log"
    log.write_bytes(data)
    assert file_violations(log, identities), "the oracle must see the plants in the input"
    config = tmp_path / "input.toml"
    write_config(config, preset, tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fill = {"tmp": str(out_dir), "closed": closed_port(), "http400": refusing_server}
    args = [a.format(**fill) for a in extra]
    result = run_sidecar(
        "pipe",
        "--config",
        str(config),
        "--format",
        fmt,
        "--stats",
        str(out_dir / "stats.json"),
        "--rejects",
        str(out_dir / "rejects.txt"),
        "--metrics-textfile",
        str(out_dir / "metrics.prom"),
        *args,
        str(log),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")[-2000:]

    violations: list[Violation] = []
    for line in _lines_of(result.stdout):
        if line.startswith("{"):
            violations += jsonl_leaks("stdout", line, identities)
        else:
            violations += text_leaks("stdout", line, identities)
    for line in _lines_of(result.stderr):
        violations += text_leaks("stderr", line, identities)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p not in (log, config))
    for path in written:
        violations += file_violations(path, identities)
        if path.suffix == ".db":
            violations += sqlite_violations(path, identities)

    stats = orjson.loads((out_dir / "stats.json").read_bytes())
    total = stats["records_out"] + sum(stats["rejected"].values())
    assert stats["records_out"] > 0, stats
    if stats["lines_in"] != LINES_PER_RUN or stats["lines_in"] != total:
        violations.append(Violation("counters", "stats", f"{stats}"))
    if name == "spool-dead-letter":  # the channels this run is for were really written
        kinds = {p.parent.name if p.parent.name != "out" else p.name for p in written}
        assert any("spool" in str(p) for p in written), kinds
        assert any("dead-letter" in str(p) for p in written), kinds
    seen = sorted({str(v) for v in violations})
    assert not seen, "\n".join([*seen[:10], f"({len(seen)} distinct) notes: {notes}"])
