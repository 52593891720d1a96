"""A real ClickHouse server on loopback, from a temporary directory: for tests that need one.

Debian's clickhouse-server 18.16.1 (installed by tests/setup.sh) runs in the foreground from a
config written under `root`: its own data, tmp, user_files and format_schema paths, log files,
and two free ports (HTTP and native TCP; no interserver port, as nothing is replicated).

    with ClickHouse(tmp_path) as ch:
        ch.query("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x")
        ch.query("INSERT INTO t FORMAT JSONEachRow", b'{"x": 1}\n')
        assert ch.query("SELECT count() FROM t") == "1\n"
        ch.stop(); ch.start()  # same data directory, same ports

Users: `default` (no password) and `writer` (password `WRITER_PASSWORD`), both allowed from
127.0.0.1 and ::1 only. The server time zone is UTC.

Running as root: 18.16 does not refuse to run as root (checked on Debian 12, uid 0), so the
server runs as whoever runs the tests and owns its files; no `clickhouse` user or chown needed.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

CLICKHOUSE_SERVER = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
WRITER_USER = "writer"
WRITER_PASSWORD = "writer-secret"
#: who runs this query: ClickHouse 18.16 has no currentUser(), so it finds itself in the process list
WHOAMI = "SELECT user FROM system.processes WHERE query LIKE '%whoami%'"


class ClickHouseError(RuntimeError):
    """A query answered with an HTTP error: `status` and ClickHouse's text (`Code: NN, e.displayText() = ...`)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body.strip()}")
        self.status = status
        self.body = body


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports (all held open while choosing, so never twice the same)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _config(root: Path, http_port: int, tcp_port: int, keep_alive_timeout: int) -> str:
    return f"""<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{root}/log/clickhouse-server.log</log>
        <errorlog>{root}/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>1</count>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <keep_alive_timeout>{keep_alive_timeout}</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>{root}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
"""


def _users() -> str:
    networks = "<networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"
    quota = (
        "<interval><duration>3600</duration><queries>0</queries><errors>0</errors>"
        "<result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>"
        "</interval>"
    )
    return f"""<?xml version="1.0"?>
<yandex>
    <profiles>
        <default><max_memory_usage>4000000000</max_memory_usage></default>
    </profiles>
    <users>
        <default>
            <password></password>
            {networks}
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <{WRITER_USER}>
            <password>{escape(WRITER_PASSWORD)}</password>
            {networks}
            <profile>default</profile>
            <quota>default</quota>
        </{WRITER_USER}>
    </users>
    <quotas>
        <default>{quota}</default>
    </quotas>
</yandex>
"""


class ClickHouse:
    """`with ClickHouse(root) as ch:` runs clickhouse-server in the foreground on `ch.http_url`.

    `stop()` then `start()` restarts it on the same data directory and ports, for outage tests.

    Measured here (18.16.1, 2 cores): start to `GET /ping` -> `Ok.` takes ~0.1-0.15 s. SIGTERM
    stops an idle server in ~1.0 s; while a client holds an idle keep-alive HTTP connection, the
    shutdown waits for that connection to time out, i.e. keep_alive_timeout: 3.0 s with 3 (this
    harness's default, as Debian's config.xml), 10.0 s with 10 (18.16's built-in default),
    1.1 s with 1. So `stop()` sends SIGTERM, waits `timeout` s (default 5), then SIGKILLs; a
    SIGKILLed server restarts on the same data directory and ports with its committed data.
    `stop(timeout=0)` is a hard kill on purpose (a crash).
    """

    def __init__(self, root: Path, *, keep_alive_timeout: int = 3) -> None:
        if not Path(CLICKHOUSE_SERVER).exists():
            raise RuntimeError(
                f"clickhouse-server is not installed ({CLICKHOUSE_SERVER} is missing): "
                "tests/setup.sh installs Debian's clickhouse-server"
            )
        self.root = Path(root)
        self.http_port, self.tcp_port = free_ports(2)
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        for d in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "config.xml"
        self.config_path.write_text(
            _config(self.root, self.http_port, self.tcp_port, keep_alive_timeout)
        )
        (self.root / "users.xml").write_text(_users())
        self.log_path = self.root / "log" / "clickhouse-server.log"
        self.errorlog_path = self.root / "log" / "clickhouse-server.err.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> ClickHouse:
        """Starts the server (again) and waits until `GET /ping` answers `Ok.`."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("clickhouse-server is already running")
        with open(self.root / "log" / "stderr.log", "ab") as stderr:
            self.proc = subprocess.Popen(
                [CLICKHOUSE_SERVER, f"--config-file={self.config_path}"],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"clickhouse-server exited with {self.proc.returncode}:\n{self._log_tail()}"
                )
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop(timeout=0)
        raise RuntimeError(
            f"clickhouse-server did not answer /ping in {timeout} s:\n{self._log_tail()}"
        )

    def stop(self, timeout: float = 5) -> float:
        """SIGTERM, wait up to `timeout` s, then SIGKILL; returns the seconds it took."""
        t0 = time.monotonic()
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return 0.0
        if timeout <= 0:
            proc.kill()
        else:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(timeout=10)
        return time.monotonic() - t0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> ClickHouse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def fixture(cls, root: Path) -> Iterator[ClickHouse]:
        """For a pytest fixture: `yield from ClickHouse.fixture(tmp_path / "clickhouse")`."""
        with cls(root) as ch:
            yield ch

    # -- HTTP -----------------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=1)
            try:
                conn.request("GET", "/ping")
                resp = conn.getresponse()
                return resp.status == 200 and resp.read() == b"Ok.\n"
            finally:
                conn.close()
        except OSError:
            return False

    def query(
        self,
        sql: str,
        data: bytes | str | None = None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
        **settings: object,
    ) -> str:
        """Runs `sql` over HTTP POST and returns the response text; raises ClickHouseError.

        Without `data`, `sql` is the request body. With `data` (e.g. rows for
        `INSERT INTO t FORMAT JSONEachRow`), `sql` goes in the `query` URL parameter and `data`
        is the body: pass `headers={"Content-Encoding": "gzip"}` with gzipped bytes.
        `settings` become URL parameters (ClickHouse settings, or user=/password=/database=).
        """
        params = {k: str(v) for k, v in settings.items()}
        if data is None:
            body = sql.encode()
        else:
            params["query"] = sql
            body = data.encode() if isinstance(data, str) else data
        url = self.http_url + "/" + ("?" + urllib.parse.urlencode(params) if params else "")
        req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as err:
            raise ClickHouseError(err.code, err.read().decode(errors="replace")) from None

    def _log_tail(self, n: int = 30) -> str:
        out = []
        for p in (self.root / "log" / "stderr.log", self.errorlog_path):
            if p.exists():
                out += p.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(out)
