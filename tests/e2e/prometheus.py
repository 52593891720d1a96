"""A real Prometheus (Debian's package) on loopback, from a temporary config: for tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.e2e.nginx import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


class Prometheus:
    """`with Prometheus(root, targets) as p:` scrapes `targets` (HOST:PORT) every 0.5 s."""

    def __init__(self, root: Path, targets: list[str]) -> None:
        if not Path(PROMETHEUS).exists():
            raise RuntimeError("prometheus is not installed: tests/setup.sh installs Debian's")
        self.root = root
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        (root / "prometheus.yml").write_text(
            "global: {scrape_interval: 500ms, evaluation_interval: 500ms}\n"
            "scrape_configs:\n  - job_name: sidecar\n"
            f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        self.log = (self.root / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.root / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=self.log,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited: {(self.root / 'prometheus.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("prometheus was not ready within 30 s")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()

    def query(self, promql: str) -> list[dict]:
        """The instant vector `promql` gives now: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None
