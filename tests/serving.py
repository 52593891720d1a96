"""A `sidecar serve` process for tests: started in a folder, its JSON self-log read back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import apsw

from tests.conftest import EMBEDDED_DB, PROJECT
from tests.e2e.nginx import free_port


def rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = apsw.Connection(str(db))
    try:
        return list(con.execute("SELECT client_ip, path, query FROM requests ORDER BY path"))
    except apsw.SQLError:  # the table is made with the first batch
        return []
    finally:
        con.close()


def wait_for(condition, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


class Serve:
    """`sidecar serve ARGS` in tmp_path, stdin a pipe, stderr (JSON self-log) kept."""

    def __init__(self, tmp: Path, *args: str, config: str | None = None) -> None:
        self.tmp = tmp
        self.http = free_port()
        self.db = tmp / "analytics.db"
        cmd = [sys.executable, "-m", "sidecar", "serve", "--http", f"127.0.0.1:{self.http}",
               "--geoip", str(EMBEDDED_DB), "--stats", str(tmp / "stats.json")]  # fmt: skip
        if config is not None:
            (tmp / "sidecar.toml").write_text(config)
            cmd += ["--config", str(tmp / "sidecar.toml")]
        if "--sink" not in args:
            cmd += ["--sink", f"sqlite:{self.db}"]
        self.stderr = (tmp / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            [*cmd, *args], cwd=tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, env={**os.environ, "PYTHONPATH": str(PROJECT)},
        )  # fmt: skip
        wait_for(lambda: self.logged("started") or self.proc.poll() is not None, what="start")

    def log(self) -> list[dict]:
        text = (self.tmp / "stderr.log").read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def logged(self, msg: str) -> bool:
        return any(e.get("msg") == msg for e in self.log())

    def write(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.stderr.close()
        return code

    def stats(self) -> dict:
        return json.loads((self.tmp / "stats.json").read_text())
