"""A `sidecar proxy` process for tests, in front of a test origin, and raw HTTP clients."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import EMBEDDED_DB, PROJECT
from tests.e2e.nginx import free_port
from tests.serving import wait_for


class Proxy:
    """`sidecar proxy --upstream URL ARGS` in tmp, records to SQLite, stderr kept."""

    def __init__(self, tmp: Path, upstream: str, *args: str, listen: str = "127.0.0.1",
                 config: str | None = None) -> None:  # fmt: skip
        self.tmp = tmp
        self.port = free_port()
        self.http = free_port()
        self.host = listen
        self.db = tmp / "analytics.db"
        bracketed = f"[{listen}]" if ":" in listen else listen
        cmd = [sys.executable, "-m", "sidecar", "proxy", "--listen", f"{bracketed}:{self.port}",
               "--upstream", upstream, "--http", f"127.0.0.1:{self.http}",
               "--geoip", str(EMBEDDED_DB), "--stats", str(tmp / "stats.json")]  # fmt: skip
        if config is not None:
            (tmp / "sidecar.toml").write_text(config)
            cmd += ["--config", str(tmp / "sidecar.toml")]
        if "--sink" not in args:
            cmd += ["--sink", f"sqlite:{self.db}"]
        self.stderr_path = tmp / "stderr.log"
        self.stderr = self.stderr_path.open("wb")
        self.stdout_path = tmp / "stdout.log"
        self.stdout = self.stdout_path.open("wb")
        self.proc = subprocess.Popen(
            [*cmd, *args], cwd=tmp, stdin=subprocess.DEVNULL, stdout=self.stdout,
            stderr=self.stderr, env={**os.environ, "PYTHONPATH": str(PROJECT)},
        )  # fmt: skip
        wait_for(lambda: self.logged("started") or self.proc.poll() is not None, 30, "start")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def log(self) -> list[dict]:
        text = self.stderr_path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def logged(self, msg: str) -> bool:
        return any(e.get("msg") == msg for e in self.log())

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5) as r:
            return r.read().decode()

    def ready(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/readyz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.stderr.close()
        self.stdout.close()
        return code

    def stats(self) -> dict:
        return json.loads((self.tmp / "stats.json").read_text())

    def everything_written(self) -> bytes:
        """Every byte the process wrote: stdout, stderr and every file under its folder."""
        out = bytearray()
        for path in sorted(self.tmp.rglob("*")):
            if path.is_file():
                out += path.read_bytes()
        return bytes(out)


def raw_exchange(host: str, port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, read until the server closes or answers one response head + body."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(data)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep:
                length = [ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
                          if ln.lower().startswith(b"content-length:")]  # fmt: skip
                if length and len(body) >= int(length[0]):
                    break
        return got


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
