"""The run of `sidecar proxy`: TLS with a user's certificate, HTTP/2, its state and endpoints,
SIGTERM draining what is in flight, and the clear refusals of a start that cannot work."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sidecar import config as config_mod
from sidecar.proxy.master import options_for, upstream_address
from tests.conftest import PROJECT
from tests.proxy.origin import Origin
from tests.proxy.running import Proxy
from tests.proxy.test_addon import records, wait_records
from tests.serving import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


def self_signed(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    """(a PEM with key and certificate, as mitmproxy's --certs takes it; the certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    both, only_cert = folder / "site.pem", folder / "site-cert.pem"
    both.write_bytes(key_pem + cert_pem)
    only_cert.write_bytes(cert_pem)
    return both, only_cert


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, check=False)  # fmt: skip


def test_options_for_a_config() -> None:
    cfg = config_mod.override(config_mod.Config(), {"proxy.upstream": "https://origin:8443",
                                                    "proxy.listen": "[::1]:8080"})  # fmt: skip
    opts = options_for(cfg)
    assert opts["mode"] == ["reverse:https://origin:8443"]
    assert (opts["listen_host"], opts["listen_port"]) == ("::1", 8080)
    assert opts["keep_host_header"] is True
    assert opts["confdir"] == "data/state/mitmproxy"
    assert opts["stream_large_bodies"] == str(1 << 20)
    assert upstream_address("http://origin.internal") == ("origin.internal", 80)
    assert upstream_address("https://[2001:db8::1]") == ("2001:db8::1", 443)


def test_tls_with_a_user_certificate_http1_and_http2(tmp_path: Path, origin: Origin) -> None:
    both, cert = self_signed(tmp_path)
    p = Proxy(tmp_path, origin.url, config=f'[proxy]\ntls_cert = "{both}"\n')
    try:
        base = f"https://localhost:{p.port}"
        resolve = f"localhost:{p.port}:127.0.0.1"
        for flag, version in (("--http1.1", "1.1"), ("--http2", "2")):
            r = curl(flag, "--cacert", str(cert), "--resolve", resolve, "-w", "\n%{http_version}",
                     "-H", "X-Forwarded-For: 203.0.113.77", f"{base}/echo/tls")  # fmt: skip
            assert r.returncode == 0, r.stderr
            body, got_version = r.stdout.rsplit("\n", 1)
            assert got_version == version
            h = {n.lower(): v for n, v in json.loads(body)["headers"]}
            assert h["x-forwarded-for"] == "127.0.0.0"
            assert h["host"] == f"localhost:{p.port}"  # HTTP/2's :authority, as the Host
        recs = wait_records(p.db, 2)
        assert sorted(r["protocol"] for r in recs) == ["HTTP/1.1", "HTTP/2.0"]
    finally:
        assert p.stop() == 0
    assert b"203.0.113.77" not in p.everything_written()


def test_mitmproxy_state_goes_under_the_state_dir_never_home(tmp_path: Path,
                                                             origin: Origin) -> None:  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    os.environ["HOME"], old = str(home), os.environ.get("HOME", "")
    try:
        p = Proxy(tmp_path, origin.url)
        r = curl("-k", f"https://127.0.0.1:{p.port}/echo")  # TLS with the CA made in confdir
        assert r.returncode == 0, r.stderr
        assert p.stop() == 0
    finally:
        os.environ["HOME"] = old
    assert (tmp_path / "data" / "state" / "mitmproxy" / "mitmproxy-ca.pem").is_file()
    assert list(home.iterdir()) == []


def test_endpoints_metrics_use_source_proxy(tmp_path: Path, origin: Origin) -> None:
    p = Proxy(tmp_path, origin.url)
    try:
        assert p.ready() == 200
        urllib.request.urlopen(f"{p.url}/echo", timeout=5).read()
        wait_for(lambda: 'sidecar_records_out_total{source="proxy"} 1.0' in p.metrics(), 5)
        m = p.metrics()
        assert 'sidecar_lines_received_total{source="proxy"} 1.0' in m
        assert 'sidecar_proxy_exchanges_total{result="forwarded"} 1.0' in m
        assert "sidecar_proxy_request_duration_seconds_count 1.0" in m
        assert 'sidecar_sink_up{sink="sqlite-analytics.db"} 1.0' in m
    finally:
        assert p.stop() == 0


def test_sigterm_lets_in_flight_exchanges_finish(tmp_path: Path, origin: Origin) -> None:
    p = Proxy(tmp_path, origin.url)
    got: dict = {}

    def slow() -> None:
        req = urllib.request.Request(f"{p.url}/slow", headers={"X-Delay-Secs": "1.5"})
        with urllib.request.urlopen(req, timeout=10) as r:
            got["status"] = r.status

    t = threading.Thread(target=slow)
    t.start()
    wait_for(lambda: any(s["target"] == "/slow" for s in origin.seen), 5, "in flight")
    p.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert p.stop() == 0
    assert got == {"status": 200}
    assert [r["path"] for r in records(p.db)] == ["/slow"]
    assert p.stats()["exchanges"]["forwarded"] == 1


def _start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sidecar", "proxy", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(PROJECT)})  # fmt: skip


@pytest.mark.parametrize(("args", "says"), [
    ((), "proxy.upstream"),
    (("--upstream", "ftp://x"), "proxy.upstream"),
    (("--upstream", "http://127.0.0.1:1", "--listen", "nowhere"), "proxy.listen"),
    (("--upstream", "http://127.0.0.1:1", "--beacon-path", "beacon"), "proxy.beacon_paths"),
])  # fmt: skip
def test_a_start_that_cannot_work_exits_2_naming_the_key(tmp_path: Path, args, says) -> None:
    r = _start(tmp_path, "--http", "", *args)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr


def test_a_strip_list_naming_an_owned_header_exits_2(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text('[proxy]\nstrip_headers = ["cookie", "X-Forwarded-For"]\n')
    r = _start(tmp_path, "--upstream", "http://127.0.0.1:1", "--http", "", "--config", "s.toml")
    assert r.returncode == 2
    assert "proxy.strip_headers" in r.stderr and "X-Forwarded-For" in r.stderr


def test_a_listen_port_in_use_exits_2(tmp_path: Path, origin: Origin) -> None:
    first = tmp_path / "first"
    first.mkdir()
    p = Proxy(first, origin.url)
    try:
        r = _start(tmp_path, "--upstream", origin.url, "--http", "",
                   "--listen", f"127.0.0.1:{p.port}", "--sink", "jsonl:x.jsonl", "--geoip", "")  # fmt: skip
        assert r.returncode == 2, r.stderr
        assert "--listen" in r.stderr
    finally:
        assert p.stop() == 0


def test_stats_document(tmp_path: Path, origin: Origin) -> None:
    p = Proxy(tmp_path, origin.url, "--sink", f"jsonl:{tmp_path / 'r.jsonl'}")
    urllib.request.urlopen(f"{p.url}/echo", timeout=5).read()
    urllib.request.urlopen(f"{p.url}/beacon?event=play", timeout=5).read()
    assert p.stop() == 0
    doc = p.stats()
    assert doc["lines_in"] == doc["records_out"] == 2
    assert doc["exchanges"]["forwarded"] == 1 and doc["exchanges"]["beacon"] == 1
    assert doc["sinks"]["jsonl-r.jsonl"]["delivered"] == 2
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2


def test_sighup_reloads_rules_and_refuses_a_bad_file(tmp_path: Path, origin: Origin) -> None:
    p = Proxy(tmp_path, origin.url, config="[proxy]\nbeacon_paths = ['/beacon']\n")
    try:
        (tmp_path / "sidecar.toml").write_text(
            "[proxy]\nbeacon_paths = ['/beacon', '/cmcd']\nstrip_headers = ['cookie', 'x-token']\n"
        )
        p.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: p.logged("reloaded"), 10, "reloaded")
        with urllib.request.urlopen(f"{p.url}/cmcd?CMCD=br%3D3200", timeout=5) as r:
            assert r.status == 204
        req = urllib.request.Request(f"{p.url}/echo", headers={"X-Token": "t"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert "x-token" not in {n.lower() for n, _ in json.loads(r.read())["headers"]}
        assert [s["target"] for s in origin.seen] == ["/echo"]
        (tmp_path / "sidecar.toml").write_text("[proxy]\nstrip_headers = ['host']\n")
        p.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: p.logged("reload refused; the running config stays"), 10, "refused")
        assert 'sidecar_config_reloads_total{result="refused"} 1.0' in p.metrics()
        with urllib.request.urlopen(f"{p.url}/cmcd", timeout=5) as r:
            assert r.status == 204  # the running config stayed
    finally:
        assert p.stop() == 0
    recs = records(p.db)
    assert [r["query"] for r in recs if r["path"] == "/cmcd"] == ["CMCD=br%3D3200", None]


def test_the_proxy_runs_python_optimized(tmp_path: Path, origin: Origin) -> None:
    p = Proxy(tmp_path, origin.url)
    try:
        argv = Path(f"/proc/{p.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert argv[1:5] == [b"-O", b"-m", b"sidecar", b"proxy"]  # re-executed, same PID
    finally:
        assert p.stop() == 0


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_a_tls_cert_that_cannot_be_used_exits_2_naming_the_key(tmp_path: Path, content) -> None:
    if content is not None:
        (tmp_path / "bad.pem").write_bytes(content)
    (tmp_path / "s.toml").write_text(f'[proxy]\ntls_cert = "{tmp_path / "bad.pem"}"\n')
    r = _start(tmp_path, "--upstream", "http://127.0.0.1:1", "--http", "", "--config", "s.toml",
               "--geoip", "", "--sink", "jsonl:x.jsonl")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "proxy.tls_cert" in r.stderr
