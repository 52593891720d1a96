"""`serve.syslog_unix`: syslog datagrams on a unix datagram socket that `serve` creates itself.

nginx: ``access_log syslog:server=unix:/run/sidecar/syslog.sock,tag=nginx combined;``. Framing,
counting and the hand-off are those of the UDP source (`syslog_udp.DatagramReceiver`): one line
per datagram to ``emit(line + b"\\n", None)``, malformed datagrams counted by reason.

The socket file: its folder is created when missing; a socket file left at the path by a process
that is gone (a connect() to it is refused) is replaced; a live one, or anything at the path that
is not a socket, is refused at start (UsageError, exit 2) and never removed. The file is given
`serve.unix_socket_mode` and, when set, `serve.unix_socket_group` (a name or a number), so that
nginx workers running as ``www-data`` can write to it; it is removed at close if it is still the
one this source made.

Loss: a unix datagram socket has no kernel drop counter. Its queue holds at most
``net.unix.max_dgram_qlen`` datagrams (10 by default, in containers too; it is read when the
socket is created), whatever SO_RCVBUF says; past that a blocking sender waits and a non-blocking
one gets EAGAIN. nginx sends non-blocking and drops the line without a word (at most an
error-log entry), so nothing on this side can count the loss: raise the sysctl (``sysctl -w
net.unix.max_dgram_qlen=512``, per network namespace, before `serve` starts) or prefer UDP,
whose drops the kernel counts, at high rates. SO_RCVBUF is still set to
`serve.recv_buffer_bytes` and the size obtained logged.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import logging
import os
import socket
import stat

from sidecar.errors import UsageError
from sidecar.metrics import Metrics
from sidecar.sources import Emit
from sidecar.sources.syslog_udp import DatagramReceiver, errno_text, set_recv_buffer

log = logging.getLogger(__name__)


class SyslogUnixSource:
    """Syslog on a unix datagram socket at `path`, each line handed to `emit`."""

    name = "syslog_unix"

    def __init__(
        self, path: str, mode: int, group: str, recv_buffer_bytes: int, emit: Emit,
        metrics: Metrics,
    ) -> None:  # fmt: skip
        self._path = path
        self._mode = mode
        self._group = group
        self._recv_buffer_bytes = recv_buffer_bytes
        self._emit = emit
        self._metrics = metrics
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: DatagramReceiver | None = None
        self._inode: int | None = None  # of the socket file this source made
        self._closed = False

    def _error(self, why: str) -> UsageError:
        where = "serve.syslog_unix (--syslog-unix)"
        return UsageError(f"{where}: cannot listen on {self._path}: {why}")

    def _gid(self) -> int | None:
        if not self._group:
            return None
        if self._group.isdigit():
            return int(self._group)
        try:
            return grp.getgrnam(self._group).gr_gid
        except KeyError:
            raise UsageError(f"serve.unix_socket_group: no group named {self._group!r}") from None

    def _clear_stale(self) -> None:
        """Remove a socket file no process reads; refuse a live socket and any other file."""
        try:
            st = os.lstat(self._path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error(errno_text(exc)) from None
        if not stat.S_ISSOCK(st.st_mode):
            raise self._error("the path exists and is not a socket (left as it is)")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(self._path)
            except ConnectionRefusedError:
                pass  # stale: nobody is bound to it
            except OSError as exc:
                if exc.errno == errno.EPROTOTYPE:  # a live stream socket
                    raise self._error("in use by another process") from None
                raise self._error(errno_text(exc)) from None
            else:
                raise self._error("in use by another process")
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(f"cannot remove the stale socket: {errno_text(exc)}") from None
        log.info("%s: replaced a stale socket file at %s", self.name, self._path)

    async def start(self) -> None:
        """Create, bind and hand the socket to the running loop; UsageError when it cannot."""
        gid = self._gid()
        folder = os.path.dirname(os.path.abspath(self._path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise self._error(f"cannot create the folder {folder}: {errno_text(exc)}") from None
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            set_recv_buffer(sock, self.name, self._recv_buffer_bytes)
            sock.bind(self._path)
        except OSError as exc:
            sock.close()
            raise self._error(errno_text(exc)) from None
        self._inode = os.lstat(self._path).st_ino
        try:
            os.chmod(self._path, self._mode)
            if gid is not None:
                try:
                    os.chown(self._path, -1, gid)
                except OSError as exc:
                    raise UsageError(
                        f"serve.unix_socket_group: cannot give {self._path} to group "
                        f"{self._group!r}: {errno_text(exc)}"
                    ) from None
            sock.setblocking(False)
            protocol = DatagramReceiver(self.name, self._emit, self._metrics)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException as exc:
            sock.close()
            self._unlink()
            if isinstance(exc, OSError):
                raise self._error(errno_text(exc)) from None
            raise
        self._transport, self._protocol = transport, protocol
        log.info("%s: listening on %s (mode %o%s)", self.name, self._path, self._mode,
                 f", group {self._group}" if self._group else "")  # fmt: skip

    def _unlink(self) -> None:
        """Remove the socket file if it is still the one this source bound."""
        if self._inode is None:
            return
        try:
            st = os.lstat(self._path)
            if st.st_ino == self._inode and stat.S_ISSOCK(st.st_mode):
                os.unlink(self._path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.warning("%s: cannot remove %s: %s", self.name, self._path, errno_text(exc))
        self._inode = None

    def close(self) -> None:
        """Stop reading and remove the socket file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        self._unlink()
        log.info("%s: closed", self.name)

    @property
    def ready(self) -> bool:
        """Bound, not closed, and the socket not lost to an error."""
        return not self._closed and self._protocol is not None and self._protocol.connected

    @property
    def address(self) -> str:
        """The socket's path."""
        return self._path
