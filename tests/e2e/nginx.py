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


# --- the shipped nginx/ configs, as a user installs them ------------------------------------
NGINX_DIR = Path(__file__).resolve().parents[2] / "nginx"
UDP_LINE = "access_log syslog:server=127.0.0.1:5514,tag=nginx sidecar_json;"
UNIX_LINE = "access_log syslog:server=unix:/run/sidecar/syslog.sock,tag=nginx sidecar_json;"


def install_configs(
    dest: Path,
    *,
    syslog_port: int | None = None,
    ack_port: int | None = None,
    unix_socket: Path | None = None,
    real_ip_from: str | None = None,
) -> Path:
    """Copy nginx/ to dest, changing only what a user changes: addresses, transport, real_ip."""
    shutil.copytree(NGINX_DIR, dest)
    syslog = (dest / "syslog.conf").read_text()
    assert UDP_LINE in syslog and f"# {UNIX_LINE}" in syslog
    if unix_socket is not None:  # the documented switch: comment one line, uncomment the other
        syslog = syslog.replace(UDP_LINE, f"# {UDP_LINE}", 1).replace(f"# {UNIX_LINE}", UNIX_LINE)
        syslog = syslog.replace("unix:/run/sidecar/syslog.sock", f"unix:{unix_socket}")
    if syslog_port is not None:
        syslog = syslog.replace("127.0.0.1:5514", f"127.0.0.1:{syslog_port}")
    (dest / "syslog.conf").write_text(syslog)
    if ack_port is not None:
        ack = (dest / "beacon_ack.conf").read_text()
        assert ack.count("127.0.0.1:8204") >= 2  # the upstream and the listen
        (dest / "beacon_ack.conf").write_text(
            ack.replace("127.0.0.1:8204", f"127.0.0.1:{ack_port}")
        )
    if real_ip_from is not None:
        text = (dest / "real_ip.conf").read_text()
        for directive in ("real_ip_header X-Forwarded-For;", "real_ip_recursive on;"):
            assert f"# {directive}" in text
            text = text.replace(f"# {directive}", directive)
        text = text.replace("# set_real_ip_from 10.0.0.0/8;", f"set_real_ip_from {real_ip_from};")
        (dest / "real_ip.conf").write_text(text)
    return dest


def http_conf(configs: Path, extra: str = "") -> str:
    """http {} content as the docs say: the glob, then a server including the beacon location."""
    return f"""
        include {configs}/*.conf;
        server {{
            listen 127.0.0.1:PORT;
            server_name cdn.example-video.eu;
            root PREFIX/www;
            include {configs}/server/beacon.conf;
            {extra}
        }}
    """
