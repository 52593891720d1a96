"""`serve.syslog_udp`: syslog datagrams on a UDP socket, one log line each, as nginx sends them.

nginx: ``access_log syslog:server=127.0.0.1:5514,tag=nginx combined;``. Each datagram is framed
by `sources.syslog.message`, counted (`sidecar_syslog_datagrams_total{result="ok"}`), and its
line handed to the daemon's ``emit(line + b"\\n", None)`` at once: the daemon micro-batches, so
nothing is held here, and a datagram has nothing to acknowledge. A datagram that carries no line
is counted by reason (`sidecar_syslog_datagrams_total{result=REASON}`) and skipped; it never
stops the next.

Loss: the kernel drops a datagram silently when the socket's receive buffer is full (the reader
fell behind). The buffer is set with SO_RCVBUF to `serve.recv_buffer_bytes` before bind; the
kernel caps the request at ``net.core.rmem_max`` (4 MiB here; often 208 KiB in a container;
raise it with ``sysctl -w net.core.rmem_max=...``) and the size obtained is logged at INFO
(Linux reports twice the request, its bookkeeping included). The kernel's own count of the
drops, the ``drops`` column of /proc/net/udp (udp6 for an IPv6 socket) for this socket's
inode, is read every second into `sidecar_datagrams_kernel_dropped_total{source="syslog_udp"}`.

Privacy: a datagram holds a full client address and its sender's address is a peer's; neither is
ever logged or put in an error message. Only the configured listening address is named.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from sidecar.config import split_host_port
from sidecar.errors import UsageError
from sidecar.metrics import Metrics
from sidecar.sources import Emit
from sidecar.sources.syslog import MALFORMED_REASONS, message

log = logging.getLogger(__name__)

#: the daemon's hand-off: whole raw lines, each ending in b"\n", and an ack (None for datagrams)

DROPS_POLL_SECS = 1.0


class DatagramReceiver(asyncio.DatagramProtocol):
    """Counts, frames and hands over each datagram; shared by the UDP and unix sources."""

    def __init__(self, name: str, emit: Emit, metrics: Metrics) -> None:
        self._name = name
        self._emit = emit
        self._ok = metrics.syslog_datagrams.labels(name, "ok")
        self._malformed = {r: metrics.syslog_datagrams.labels(name, r) for r in MALFORMED_REASONS}
        self.connected = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connected = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.connected = False
        if exc is not None:
            log.error("%s: the socket closed on an error: %s", self._name, errno_text(exc))

    def datagram_received(self, data: bytes, addr: object) -> None:
        line = message(data)
        if type(line) is str:
            self._malformed[line].inc()
            return
        self._ok.inc()
        try:
            self._emit(line + b"\n", None)
        except Exception as exc:  # a daemon bug must not close the socket; its text may hold data
            log.error("%s: the hand-off failed (%s); the line is lost", self._name,
                      type(exc).__name__)  # fmt: skip

    def error_received(self, exc: Exception) -> None:
        # e.g. ECONNREFUSED from an ICMP error: never name the peer
        log.warning("%s: socket error: %s", self._name, errno_text(exc))


def errno_text(exc: BaseException) -> str:
    """An OSError as the user reads it ("address already in use"): its errno, never its text,
    which may name a peer; an OSError without one (Python's own, "AF_UNIX path too long")."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    if type(exc) is OSError and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return type(exc).__name__


def set_recv_buffer(sock: socket.socket, name: str, requested: int) -> int:
    """SO_RCVBUF as asked (the kernel may cap it); the size obtained, logged at INFO."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, requested)
    except OSError as exc:
        log.warning("%s: cannot set the receive buffer: %s", name, errno_text(exc))
    obtained = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    log.info(
        "%s: receive buffer %d bytes (asked %d; the kernel caps it at net.core.rmem_max and "
        "reports twice the size for its bookkeeping)",
        name,
        obtained,
        requested,
    )
    return obtained


def kernel_drops(proc_path: str, inode: int) -> int | None:
    """The `drops` column of /proc/net/udp[6] for the socket with this inode (None if absent)."""
    key = str(inode)
    try:
        with open(proc_path, "rb") as f:
            f.readline()  # the column titles
            for row in f:
                fields = row.split()
                # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
                if len(fields) >= 13 and fields[9] == key.encode():
                    return int(fields[12])
    except (OSError, ValueError):
        return None
    return None


class SyslogUdpSource:
    """Syslog over UDP on `address` ("HOST:PORT"), each line handed to `emit`."""

    name = "syslog_udp"

    def __init__(self, address: str, recv_buffer_bytes: int, emit: Emit, metrics: Metrics) -> None:
        self._configured = address
        self._recv_buffer_bytes = recv_buffer_bytes
        self._emit = emit
        self._metrics = metrics
        self._dropped = metrics.datagrams_kernel_dropped.labels(self.name)
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: DatagramReceiver | None = None
        self._sock: socket.socket | None = None
        self._bound: tuple[str, int] | None = None
        self._proc_path = ""
        self._inode = 0
        self._drops_seen = 0
        self._poll: asyncio.TimerHandle | None = None
        self._closed = False

    def _error(self, why: str) -> UsageError:
        return UsageError(
            f"serve.syslog_udp (--syslog-udp): cannot listen on {self._configured}: {why}"
        )

    async def start(self) -> None:
        """Bind on the running loop; UsageError (exit 2) when the address cannot be had."""
        parsed = split_host_port(self._configured)  # port 0: any free one
        if parsed is None:
            raise self._error("not HOST:PORT")
        host, port = parsed
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                           flags=socket.AI_PASSIVE)  # fmt: skip
        except (socket.gaierror, UnicodeError) as exc:
            raise self._error(f"cannot resolve {host!r}") from exc
        family, _, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        try:
            set_recv_buffer(sock, self.name, self._recv_buffer_bytes)
            sock.bind(sockaddr)
            sock.setblocking(False)
            protocol = DatagramReceiver(self.name, self._emit, self._metrics)
            transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except OSError as exc:
            sock.close()
            raise self._error(errno_text(exc)) from None
        self._sock, self._transport, self._protocol = sock, transport, protocol
        self._bound = sock.getsockname()[:2]
        self._proc_path = "/proc/net/udp6" if family == socket.AF_INET6 else "/proc/net/udp"
        self._inode = os.fstat(sock.fileno()).st_ino
        start_drops = kernel_drops(self._proc_path, self._inode)
        if start_drops is None:
            log.info("%s: %s has no row for the socket: kernel drops are not counted",
                     self.name, self._proc_path)  # fmt: skip
        else:
            self._drops_seen = start_drops
            self._poll = loop.call_later(DROPS_POLL_SECS, self._poll_drops)
        log.info("%s: listening on %s", self.name, self._configured)

    def _count_drops(self) -> None:
        drops = kernel_drops(self._proc_path, self._inode)
        if drops is not None and drops > self._drops_seen:
            self._dropped.inc(drops - self._drops_seen)
            self._drops_seen = drops

    def _poll_drops(self) -> None:
        self._count_drops()
        if not self._closed:
            self._poll = asyncio.get_running_loop().call_later(DROPS_POLL_SECS, self._poll_drops)

    def close(self) -> None:
        """Stop reading (idempotent); the kernel's last drop count is taken first."""
        if self._closed:
            return
        self._closed = True
        if self._poll is not None:
            self._poll.cancel()
            self._count_drops()
        if self._transport is not None:
            self._transport.close()
        elif self._sock is not None:
            self._sock.close()
        log.info("%s: closed", self.name)

    @property
    def ready(self) -> bool:
        """Bound, not closed, and the socket not lost to an error."""
        return not self._closed and self._protocol is not None and self._protocol.connected

    @property
    def address(self) -> tuple[str, int]:
        """The address actually bound (port 0 in the config gives the port the kernel chose)."""
        if self._bound is None:
            raise RuntimeError("syslog_udp: not started")
        return self._bound
