"""A real nginx writes an access log in nginx/log_format.conf; `sidecar pipe` reads it."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.conftest import COUNTRY_TEST_DB, PROJECT, run_sidecar
from tests.e2e.nginx import Nginx

pytestmark = pytest.mark.e2e

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    'Gecko) Version/17.0 Mobile/15E148 Safari/604.1 "quoted"'
)


def _get(port: int, path: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_sidecar_reads_what_nginx_writes(tmp_path: Path) -> None:
    http = f"""
        include {PROJECT}/nginx/log_format.conf;
        access_log PREFIX/logs/access.log sidecar;
        server {{
            listen 127.0.0.1:PORT;
            server_name cdn.example-video.eu;
            root PREFIX/www;
        }}
    """
    with Nginx(tmp_path, http) as nginx:
        (tmp_path / "www" / "v").mkdir()
        (tmp_path / "www" / "v" / "master.m3u8").write_text("#EXTM3U\n")
        headers = {
            "Host": "cdn.example-video.eu",
            "X-Forwarded-For": "81.2.69.160, 10.0.0.7",
            "Referer": "https://www.google.com/search?q=jane+doe",
            "User-Agent": IPHONE,
            "Cookie": "session=s3cr3t",
        }
        assert _get(nginx.port, "/v/master.m3u8?token=s3cr3t&ip=198.51.100.23", headers) == 200
        assert (
            _get(nginx.port, "/v/198.51.100.23/missing.ts", {"X-Forwarded-For": "2001:218::99"})
            == 404
        )
    log = tmp_path / "logs" / "access.log"
    config = tmp_path / "sidecar.toml"
    config.write_text(
        f'[geoip]\ndatabase = "{COUNTRY_TEST_DB}"\n'
        '[ip]\ntrusted_proxies = ["127.0.0.1/32", "10.0.0.0/8"]\n'
    )
    out = run_sidecar(
        "pipe", "--config", str(config), "--format", "nginx/log_format.conf", str(log)
    )
    assert out.returncode == 0, out.stderr
    first, second = (orjson.loads(line) for line in out.stdout.splitlines())
    assert first["client_ip"] == "81.2.69.0" and first["country"] == "GB"
    assert first["host"] == "cdn.example-video.eu" and first["path"] == "/v/master.m3u8"
    assert first["query"] is None and first["referrer_host"] == "www.google.com"
    assert first["ua_os"] == "iOS" and first["ua_device"] == "mobile"
    assert isinstance(first["request_time"], float)
    assert second["client_ip"] == "2001:218::" and second["country"] == "JP"
    assert second["path"] == "/v/198.51.100.0/missing.ts" and second["status"] == 404
    for secret in (b"81.2.69.160", b"198.51.100.23", b"s3cr3t", b"jane", b"2001:218::99"):
        assert secret not in out.stdout
    rewrite = run_sidecar("pipe", "--config", str(config), "--format", "nginx/log_format.conf",
                          "--output", "rewrite", str(log))  # fmt: skip
    assert rewrite.stdout.splitlines()[0].startswith(b"81.2.69.0 - - [")
    assert b"81.2.69.160" not in rewrite.stdout and b"s3cr3t" not in rewrite.stdout
