"""stdin as a `serve` source (`nginx ... | sidecar serve --stdin`, and tests).

A thread reads stdin as `pipe` does (sources/files.py's Chunks: whole lines, gzip too, lines
over `max_line_bytes` skipped and counted) and hands each chunk to the event loop; at most
`in_flight` chunks wait there, so a fast producer is slowed rather than held in memory. Lines
that arrive one a minute are handed on as they come (a live stream is read as it arrives).
Unlike `pipe`, serve reads stdin as plain text (no gzip or bzip2).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import BinaryIO

from sidecar.sources import Emit
from sidecar.sources.files import Chunks

log = logging.getLogger(__name__)


class FdReader:
    """stdin read with os.read: a thread blocked in it holds no lock of `sys.stdin.buffer`, so
    the interpreter can exit while it waits (a blocked BufferedReader aborts the exit)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def read1(self, n: int) -> bytes:
        return os.read(self.fd, n)


class StdinSource:
    name = "stdin"

    def __init__(
        self,
        emit: Emit,
        max_line_bytes: int,
        chunk_bytes: int,
        on_end: Callable[[], None],
        stream: BinaryIO | None = None,
        in_flight: int = 8,
    ) -> None:
        self.emit = emit
        self.on_end = on_end
        self.chunks = Chunks([("stdin", stream or FdReader(sys.stdin.fileno()))], max_line_bytes,
                             chunk_bytes)  # fmt: skip
        self._credits = threading.Semaphore(in_flight)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read, name="stdin", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ended = False

    @property
    def too_long(self) -> int:
        return self.chunks.too_long

    @property
    def ready(self) -> bool:
        return self._loop is not None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def close(self) -> None:
        """Stop handing on lines (the reading thread may stay blocked in read: a daemon)."""
        self._stopping.set()

    def _read(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            for chunk in self.chunks:
                self._credits.acquire()
                if self._stopping.is_set():
                    return
                loop.call_soon_threadsafe(self._hand_on, chunk)
        except Exception as exc:  # an unreadable stdin: the type, never the data
            log.error("stdin: cannot be read (%s)", type(exc).__name__)
        finally:
            for warning in self.chunks.warnings:
                log.warning("%s", warning)
            if not self._stopping.is_set():
                loop.call_soon_threadsafe(self._end)

    def _hand_on(self, chunk: bytes) -> None:
        self._credits.release()
        if not self._stopping.is_set():
            self.emit(chunk, None)

    def _end(self) -> None:
        self.ended = True
        self.on_end()
