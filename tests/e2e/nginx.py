"""A real nginx on loopback, from a temporary prefix: for tests that need one."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """`with Nginx(prefix, http_conf) as n:` runs nginx in the foreground on `n.port`."""

    def __init__(self, prefix: Path, http: str) -> None:
        if not Path(NGINX).exists():
            raise RuntimeError("nginx is not installed: tests/setup.sh installs Debian's nginx")
        self.prefix = prefix
        self.port = free_port()
        for d in ("logs", "tmp", "www"):
            (prefix / d).mkdir(parents=True, exist_ok=True)
        temp = " ".join(
            f"{k}_temp_path {prefix}/tmp/{k};"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (prefix / "nginx.conf").write_text(
            f"daemon off; worker_processes 1; pid {prefix}/nginx.pid;\n"
            + (f"user {getpass.getuser()};\n" if os.geteuid() == 0 else "")  # read tmp files
            + f"error_log {prefix}/logs/error.log;\n"
            "events { worker_connections 64; }\n"
            f"http {{ {temp}\n{http.replace('PORT', str(self.port)).replace('PREFIX', str(prefix))}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def check(self) -> subprocess.CompletedProcess[str]:
        """`nginx -t` on the written configuration (binds nothing); never raises."""
        return subprocess.run(
            [NGINX, "-t", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def __enter__(self) -> Nginx:
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("nginx did not listen within 10 s")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=10)
