"""sources.syslog_unix: a real unix datagram socket, its file's life, its mode and group."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import socket
import stat
from pathlib import Path

import pytest

from sidecar.errors import UsageError
from sidecar.formats.detect import detect
from sidecar.metrics import DATAGRAM_RESULTS, Metrics
from sidecar.sources.syslog import MALFORMED_REASONS
from sidecar.sources.syslog_unix import SyslogUnixSource
from tests.sources.test_syslog_udp import (
    LOOPS,
    NGINX_HEADER,
    Collector,
    count,
    get_once_through_nginx,
    line,
    run,
    until,
)

PREFIX = "serve.syslog_unix (--syslog-unix): cannot listen on "


def received(metrics: Metrics) -> float:
    """Every datagram, read or skipped."""
    return sum(malformed(metrics, r) for r in DATAGRAM_RESULTS)


def malformed(metrics: Metrics, reason: str) -> float:
    return count(metrics, "sidecar_syslog_datagrams_total", source="syslog_unix", result=reason)


def source_at(path: Path, emit=None, metrics=None, mode=0o660, group="") -> SyslogUnixSource:
    return SyslogUnixSource(
        str(path), mode, group, 1 << 20, emit or Collector(), metrics or Metrics()
    )


def sender() -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return s


def start_error(source: SyslogUnixSource) -> str:
    async def main() -> None:
        await source.start()

    with pytest.raises(UsageError) as err:
        asyncio.run(main())
    assert not source.ready
    return str(err.value)


@pytest.mark.parametrize("kind", LOOPS)
def test_lines_arrive_and_the_socket_is_removed_at_close(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "run" / "sidecar" / "syslog.sock"  # folders created
    metrics, emit = Metrics(), Collector()
    header_5424 = b"<165>1 2003-10-11T22:14:15.003Z vm nginx - - - "
    garbage = [
        (b"\x00\xff" * 100, "no_priority"),
        (NGINX_HEADER + b"x" * 70000, "too_long"),  # a unix datagram may exceed 64 KiB
        (b"<190>Dec  1 10:49:32 vm nginx: a\nb", "multiline"),
        (b"<190>Dec  1 10:49:32 vm nginx:", "no_message"),
        (b"<190>Jux  1 10:49:32 vm nginx: x", "bad_header"),
    ]

    async def main() -> None:
        source = source_at(path, emit, metrics)
        await source.start()
        assert source.ready and source.address == str(path)
        assert stat.S_ISSOCK(path.stat().st_mode)
        with sender() as s:
            s.sendto(NGINX_HEADER + line(1), str(path))
            for datagram, _ in garbage:
                s.sendto(datagram, str(path))  # 7 in all: the queue holds 10
            s.sendto(header_5424 + line(2) + b"\n", str(path))
            await until(lambda: received(metrics) == 2 + len(garbage))
        source.close()
        assert not source.ready
        assert not path.exists()
        source.close()  # idempotent

    run(kind, main)
    assert emit.calls == [(line(1) + b"\n", None), (line(2) + b"\n", None)]
    for datagram, reason in garbage:
        assert malformed(metrics, reason) == 1, (len(datagram), reason)
    assert sum(malformed(metrics, r) for r in MALFORMED_REASONS) == len(garbage)


@pytest.mark.parametrize("kind", LOOPS)
def test_a_stale_socket_file_is_replaced(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.sources.syslog_unix")
    path = tmp_path / "syslog.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as old:
        old.bind(str(path))  # closed without unlink: the file stays behind
    assert stat.S_ISSOCK(path.lstat().st_mode)
    emit = Collector()

    async def main() -> None:
        source = source_at(path, emit)
        await source.start()
        assert f"replaced a stale socket file at {path}" in caplog.text
        with sender() as s:
            s.sendto(NGINX_HEADER + line(5), str(path))
        await until(lambda: len(emit.calls) == 1)
        source.close()

    run(kind, main)
    assert emit.lines == [line(5) + b"\n"]


@pytest.mark.parametrize("family", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_a_live_socket_is_refused_and_left_alone(tmp_path: Path, family: int) -> None:
    path = tmp_path / "syslog.sock"
    with socket.socket(socket.AF_UNIX, family) as live:
        live.bind(str(path))
        if family == socket.SOCK_STREAM:
            live.listen()
        inode = path.lstat().st_ino
        assert start_error(source_at(path)) == f"{PREFIX}{path}: in use by another process"
        assert path.lstat().st_ino == inode
        if family == socket.SOCK_DGRAM:  # the other process still gets its datagrams
            with sender() as s:
                s.sendto(b"still yours", str(path))
            assert live.recv(100) == b"still yours"


@pytest.mark.parametrize("kind_of_file", ["file", "folder", "symlink"])
def test_a_path_that_is_not_a_socket_is_refused_never_deleted(
    tmp_path: Path, kind_of_file: str
) -> None:
    path = tmp_path / "syslog.sock"
    if kind_of_file == "file":
        path.write_text("precious\n")
    elif kind_of_file == "folder":
        path.mkdir()
    else:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stale:
            stale.bind(str(tmp_path / "target.sock"))
        path.symlink_to(tmp_path / "target.sock")  # even a link to a stale socket
    message = start_error(source_at(path))
    assert message == f"{PREFIX}{path}: the path exists and is not a socket (left as it is)"
    assert os.path.lexists(path)
    if kind_of_file == "file":
        assert path.read_text() == "precious\n"


@pytest.mark.parametrize("mode", [0o660, 0o600, 0o666])
def test_the_mode_is_applied_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "syslog.sock"
    old_umask = os.umask(0o077)
    try:

        async def main() -> None:
            source = source_at(path, mode=mode)
            await source.start()
            assert stat.S_IMODE(path.stat().st_mode) == mode
            source.close()

        asyncio.run(main())
    finally:
        os.umask(old_umask)


def _groups_to_try() -> list[int]:
    """The current user's primary group, and one other it may give files to when there is one."""
    primary = os.getgid()
    others = [g.gr_gid for g in grp.getgrall()] if os.geteuid() == 0 else os.getgroups()
    return [primary, *[g for g in others if g != primary][:1]]


@pytest.mark.parametrize("by", ["name", "number"])
def test_the_group_is_applied(tmp_path: Path, by: str) -> None:
    for gid in _groups_to_try():
        path = tmp_path / f"syslog-{gid}.sock"
        group = grp.getgrgid(gid).gr_name if by == "name" else str(gid)

        async def main(path: Path = path, group: str = group, gid: int = gid) -> None:
            source = source_at(path, mode=0o620, group=group)
            await source.start()
            assert path.stat().st_gid == gid
            assert stat.S_IMODE(path.stat().st_mode) == 0o620
            source.close()

        asyncio.run(main())


def test_an_unknown_group_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    path = tmp_path / "run" / "syslog.sock"
    message = start_error(source_at(path, group="no-such-group-sidecar"))
    assert message == "serve.unix_socket_group: no group named 'no-such-group-sidecar'"
    assert not path.parent.exists()


def test_a_folder_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    path = tmp_path / "plain" / "syslog.sock"
    message = start_error(source_at(path))
    assert message == f"{PREFIX}{path}: cannot create the folder {tmp_path / 'plain'}: file exists"


def test_a_path_too_long_for_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / ("s" * 120)
    assert start_error(source_at(path)) == f"{PREFIX}{path}: AF_UNIX path too long"
    assert not path.exists()


def test_close_leaves_a_file_someone_else_put_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "syslog.sock"

    async def main() -> None:
        source = source_at(path)
        await source.start()
        path.unlink()
        path.write_text("someone else's\n")
        source.close()

    asyncio.run(main())
    assert path.read_text() == "someone else's\n"


# --- a real nginx -------------------------------------------------------------------------------


@pytest.mark.e2e
def test_nginx_lines_arrive_through_the_socket_and_parse(tmp_path: Path) -> None:
    path = tmp_path / "run" / "syslog.sock"
    metrics, emit = Metrics(), Collector()

    async def main() -> None:
        source = source_at(path, emit, metrics, mode=0o660, group=grp.getgrgid(os.getgid()).gr_name)
        await source.start()
        await get_once_through_nginx(
            tmp_path, f"access_log syslog:server=unix:{path},tag=nginx combined;",
            "/index.html", emit,
        )  # fmt: skip
        source.close()

    asyncio.run(main())
    assert received(metrics) == 1 and len(emit.calls) == 1
    text = emit.calls[0][0].decode()
    assert text.endswith('"GET /index.html HTTP/1.1" 200 6 "-" "probe/1.0"\n')
    fmt = detect([text[:-1]])
    assert fmt is not None and fmt.name == "combined"
