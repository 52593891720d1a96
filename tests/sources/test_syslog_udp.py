"""sources.syslog_udp: real UDP sockets on loopback, on the default asyncio loop and on uvloop."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from sidecar.errors import UsageError
from sidecar.formats.detect import detect
from sidecar.metrics import DATAGRAM_RESULTS, Metrics
from sidecar.sources import syslog_udp
from sidecar.sources.syslog import MALFORMED_REASONS
from sidecar.sources.syslog_udp import SyslogUdpSource, kernel_drops
from tests.e2e.nginx import Nginx

LOOPS = ["asyncio", "uvloop"]
NGINX_HEADER = b"<190>Dec  1 10:49:32 vm nginx: "


def line(i: int) -> bytes:
    return (
        b'198.51.100.%d - - [01/Dec/2023:10:49:32 +0000] "GET /v/seg-%05d.ts HTTP/1.1" 200 612 '
        b'"-" "Mozilla/5.0"' % (i % 256, i)
    )


def run(kind: str, main: Callable[[], Awaitable[None]]) -> None:
    if kind == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        await asyncio.sleep(0.005)


class Collector:
    """The daemon's emit: records what it is handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, object]] = []

    def __call__(self, lines: bytes, ack: Callable[[], None] | None) -> None:
        self.calls.append((lines, ack))

    @property
    def lines(self) -> list[bytes]:
        return [lines for lines, _ in self.calls]


def count(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def received(metrics: Metrics) -> float:
    """Every datagram, read or skipped."""
    return sum(malformed(metrics, r) for r in DATAGRAM_RESULTS)


def malformed(metrics: Metrics, reason: str) -> float:
    return count(metrics, "sidecar_syslog_datagrams_total", source="syslog_udp", result=reason)


def sender(family: int = socket.AF_INET) -> socket.socket:
    return socket.socket(family, socket.SOCK_DGRAM)


@pytest.mark.parametrize("kind", LOOPS)
def test_lines_arrive_one_emit_each_and_are_counted(kind: str) -> None:
    metrics, emit = Metrics(), Collector()

    async def main() -> None:
        source = SyslogUdpSource("127.0.0.1:0", 1 << 20, emit, metrics)
        assert not source.ready
        await source.start()
        assert source.ready
        host, port = source.address
        assert host == "127.0.0.1" and port > 0
        with sender() as s:
            s.sendto(NGINX_HEADER + line(1), source.address)
            s.sendto(
                b"<165>1 2003-10-11T22:14:15.003Z vm nginx - - - " + line(2) + b"\n", (host, port)
            )
            s.sendto(b"not syslog", (host, port))
            s.sendto(NGINX_HEADER + line(3) + b"\r\n", (host, port))
            await until(lambda: received(metrics) == 4)
        source.close()
        assert not source.ready

    run(kind, main)
    assert emit.calls == [(line(1) + b"\n", None), (line(2) + b"\n", None), (line(3) + b"\n", None)]
    assert malformed(metrics, "no_priority") == 1
    assert sum(malformed(metrics, r) for r in MALFORMED_REASONS) == 1


@pytest.mark.parametrize("kind", LOOPS)
def test_a_garbage_flood_is_counted_and_valid_lines_still_arrive(kind: str) -> None:
    metrics, emit = Metrics(), Collector()
    rng = random.Random(8)
    garbage = [
        (rng.randbytes(rng.randrange(1, 2000)).replace(b"<", b"("), "no_priority"),  # binary
        (b"\xff\xfe\x00" * 20000, "no_priority"),  # over-long binary, 60 KB
        (b"<190>" + rng.randbytes(500).replace(b"\n", b" "), "bad_header"),
        (b"<190>Dec  1 10:49:32 vm nginx: \n\x00", "no_message"),
        (NGINX_HEADER + line(0) + b"\n" + line(0), "multiline"),
        (b'<165>1 - h a p m [x a="' + b"\\" * 60000, "bad_header"),  # never-closed SD, 60 KB
    ]
    # valid lines that are over-long or not UTF-8 are framed and passed on: the pipeline
    # rejects them by its own reasons (too_long, invalid_utf8)
    odd_lines = [b"x" * (65507 - len(NGINX_HEADER)), b"caf\xe9 \xc3\x28", b"\x00\x01binary"]
    valid = [line(i) for i in range(300)] + odd_lines
    expected: dict[str, int] = dict.fromkeys(MALFORMED_REASONS, 0)

    async def main() -> None:
        source = SyslogUdpSource("127.0.0.1:0", 4 << 20, emit, metrics)
        await source.start()
        sent = 0
        with sender() as s:
            for i, valid_line in enumerate(valid):
                for _ in range(5):  # five garbage datagrams for each valid one
                    datagram, reason = rng.choice(garbage)
                    s.sendto(datagram, source.address)
                    expected[reason] += 1
                s.sendto(NGINX_HEADER + valid_line, source.address)
                sent += 6
                if i % 20 == 19:  # let the reader catch up: the kernel would drop, not us
                    await until(lambda n=sent: received(metrics) == n)
            await until(lambda: received(metrics) == sent)
        source.close()

    run(kind, main)
    assert emit.lines == [v + b"\n" for v in valid]
    for reason in MALFORMED_REASONS:
        assert malformed(metrics, reason) == expected[reason], reason
    assert received(metrics) == len(valid) * 6


@pytest.mark.parametrize("kind", LOOPS)
def test_kernel_drops_are_counted(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syslog_udp, "DROPS_POLL_SECS", 0.05)  # read /proc/net/udp more often
    metrics, emit = Metrics(), Collector()
    sent = 400

    async def main() -> None:
        source = SyslogUdpSource("127.0.0.1:0", 4096, emit, metrics)  # the smallest buffer
        await source.start()
        with sender() as s:
            # the loop is not running while this sends: the small buffer overflows
            for i in range(sent):
                s.sendto(NGINX_HEADER + line(i) + b" " + b"p" * 900, source.address)

        def dropped() -> float:
            return count(metrics, "sidecar_datagrams_kernel_dropped_total", source="syslog_udp")

        # every datagram is read or dropped by the kernel, and each drop is counted once
        await until(lambda: dropped() > 0 and received(metrics) + dropped() == sent)
        source.close()

    run(kind, main)
    assert 0 < len(emit.calls) < sent


def test_kernel_drops_reads_the_socket_row() -> None:
    with sender() as s:
        s.bind(("127.0.0.1", 0))
        assert kernel_drops("/proc/net/udp", os.fstat(s.fileno()).st_ino) == 0
        assert kernel_drops("/proc/net/udp6", os.fstat(s.fileno()).st_ino) is None
    with sender(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        assert kernel_drops("/proc/net/udp6", os.fstat(s.fileno()).st_ino) == 0
    assert kernel_drops("/proc/net/udp", 1) is None  # no socket has inode 1
    assert kernel_drops("/nonexistent/udp", 1) is None


@pytest.mark.parametrize("kind", LOOPS)
def test_ipv6_loopback(kind: str) -> None:
    metrics, emit = Metrics(), Collector()

    async def main() -> None:
        source = SyslogUdpSource("[::1]:0", 1 << 20, emit, metrics)
        await source.start()
        assert source.address[0] == "::1"
        with sender(socket.AF_INET6) as s:
            s.sendto(NGINX_HEADER + line(7), source.address)
            await until(lambda: len(emit.calls) == 1)
        assert source.ready
        source.close()

    run(kind, main)
    assert emit.lines == [line(7) + b"\n"]


@pytest.mark.parametrize("kind", LOOPS)
def test_a_port_in_use_is_a_usage_error(kind: str) -> None:
    async def main() -> None:
        with sender() as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            source = SyslogUdpSource(f"127.0.0.1:{port}", 1 << 20, Collector(), Metrics())
            with pytest.raises(UsageError) as err:
                await source.start()
            assert str(err.value) == (
                f"serve.syslog_udp (--syslog-udp): cannot listen on 127.0.0.1:{port}: "
                "address already in use"
            )
            assert not source.ready
            source.close()  # harmless after a failed start

    run(kind, main)


def test_an_address_not_on_this_machine_is_a_usage_error() -> None:
    async def main() -> None:
        source = SyslogUdpSource("192.0.2.1:5514", 1 << 20, Collector(), Metrics())
        with pytest.raises(UsageError, match=r"^serve\.syslog_udp \(--syslog-udp\): cannot listen "
                           r"on 192\.0\.2\.1:5514: cannot assign requested address$"):  # fmt: skip
            await source.start()
        source = SyslogUdpSource("localhost", 1 << 20, Collector(), Metrics())
        with pytest.raises(UsageError, match="not HOST:PORT"):
            await source.start()

    asyncio.run(main())


def test_the_buffer_size_obtained_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.sources.syslog_udp")
    big = 1 << 30  # far above net.core.rmem_max: capped by the kernel

    async def main() -> None:
        source = SyslogUdpSource("127.0.0.1:0", big, Collector(), Metrics())
        await source.start()
        source.close()

    asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    buffer_line = next(m for m in messages if "receive buffer" in m)
    with open("/proc/sys/net/core/rmem_max") as f:
        rmem_max = int(f.read())
    assert f"receive buffer {2 * rmem_max} bytes (asked {big};" in buffer_line


@pytest.mark.parametrize("kind", LOOPS)
def test_a_failing_emit_loses_its_line_only_and_logs_no_data(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics, emit = Metrics(), Collector()

    def flaky(lines: bytes, ack: Callable[[], None] | None) -> None:
        if b"seg-00001" in lines:
            raise ValueError(f"cannot take {lines!r}")  # a daemon bug with data in its text
        emit(lines, ack)

    async def main() -> None:
        source = SyslogUdpSource("127.0.0.1:0", 1 << 20, flaky, metrics)
        await source.start()
        with sender() as s:
            for i in range(3):
                s.sendto(NGINX_HEADER + line(i), source.address)
            await until(lambda: len(emit.calls) == 2)
        assert source.ready
        source.close()

    run(kind, main)
    assert emit.lines == [line(0) + b"\n", line(2) + b"\n"]
    assert "ValueError" in caplog.text and "198.51.100" not in caplog.text


@pytest.mark.parametrize("kind", LOOPS)
def test_nothing_is_read_after_close(kind: str) -> None:
    metrics, emit = Metrics(), Collector()

    async def main() -> None:
        source = SyslogUdpSource("127.0.0.1:0", 1 << 20, emit, metrics)
        await source.start()
        address = source.address
        source.close()
        source.close()  # idempotent
        await asyncio.sleep(0)
        with sender() as s:
            s.sendto(NGINX_HEADER + line(1), address)  # nobody listens: refused or lost
        await asyncio.sleep(0.05)
        assert not source.ready and source.address == address

    run(kind, main)
    assert emit.calls == []


# --- a real nginx -------------------------------------------------------------------------------


async def get_once_through_nginx(
    tmp_path: Path, access_log: str, target: str, emit: Collector
) -> None:
    """A real nginx logging with `access_log` (a directive) serves `target` once to a probe
    user agent; returns when `emit` has the line."""
    http = f"""
        {access_log}
        server {{ listen 127.0.0.1:PORT; root PREFIX/www; }}
    """
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("hello\n")
    with Nginx(tmp_path, http) as nginx:
        url = f"http://127.0.0.1:{nginx.port}{target}"
        request = urllib.request.Request(url, headers={"User-Agent": "probe/1.0"})
        status = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=5).status)
        assert status == 200
        await until(lambda: len(emit.calls) >= 1)


@pytest.mark.e2e
def test_nginx_lines_arrive_through_the_source_and_parse(tmp_path: Path) -> None:
    metrics, emit = Metrics(), Collector()

    async def main() -> None:
        source = SyslogUdpSource("127.0.0.1:0", 1 << 20, emit, metrics)
        await source.start()
        port = source.address[1]
        await get_once_through_nginx(
            tmp_path, f"access_log syslog:server=127.0.0.1:{port},tag=nginx combined;",
            "/index.html?token=s3cr3t", emit,
        )  # fmt: skip
        source.close()

    asyncio.run(main())
    assert received(metrics) == 1 and len(emit.calls) == 1
    lines, ack = emit.calls[0]
    assert ack is None and lines.endswith(b"\n") and lines.count(b"\n") == 1
    text = lines.decode()[:-1]
    assert text.startswith("127.0.0.1 - - [")
    assert '"GET /index.html?token=s3cr3t HTTP/1.1" 200 6 "-" "probe/1.0"' in text
    fmt = detect([text])
    assert fmt is not None and fmt.name == "combined"
