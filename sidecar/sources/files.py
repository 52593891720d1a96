"""Files and stdin as newline-aligned chunks of bytes, gzip and bzip2 read transparently.

Chunks end on a line boundary, so they can be handed to worker processes whole. A line longer
than `max_line_bytes` is never held in memory whole: it is skipped while it streams past and
counted (reason `too_long`).
"""

from __future__ import annotations

import bz2
import gzip
import io
import sys
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from sidecar.errors import UsageError

CHUNK_BYTES = 1 << 20

_MAGIC = {b"\x1f\x8b": gzip.GzipFile, b"BZ": bz2.BZ2File}


def _decompressing(stream: BinaryIO) -> BinaryIO:
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)
    head = buffered.peek(3)[:3]
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if head == b"BZh":
        return bz2.BZ2File(buffered, mode="rb")  # type: ignore[return-value]
    return buffered


def open_input(path: str) -> BinaryIO:
    """A binary stream for a path (`-`: stdin), decompressed when it is gzip or bzip2."""
    if path == "-":
        return _decompressing(sys.stdin.buffer)
    try:
        return _decompressing(open(path, "rb"))
    except FileNotFoundError:
        raise UsageError(f"input file {path!r} not found") from None
    except IsADirectoryError:
        raise UsageError(f"input {path!r} is a directory") from None
    except OSError as exc:
        raise UsageError(f"input file {path!r} cannot be read: {exc.strerror}") from None


def check_inputs(paths: Iterable[str]) -> None:
    """Fail at start, before any output, when an input file is missing or unreadable."""
    for path in paths:
        if path != "-":
            open_input(path).close()


class Chunks:
    """Iterates newline-aligned chunks over streams; `too_long` counts skipped long lines."""

    def __init__(
        self, streams: Iterable[BinaryIO], max_line_bytes: int, chunk_bytes: int = CHUNK_BYTES
    ):
        self.streams = streams
        self.max_line_bytes = max_line_bytes
        self.chunk_bytes = chunk_bytes
        self.too_long = 0
        self.warnings: list[str] = []

    def __iter__(self) -> Iterator[bytes]:
        for stream in self.streams:
            yield from self._one(stream)

    def _one(self, stream: BinaryIO) -> Iterator[bytes]:
        pending = b""
        skipping = False  # inside an over-long line, until its newline
        while True:
            try:
                data = stream.read(self.chunk_bytes)
            except (EOFError, OSError, ValueError) as exc:  # a truncated or corrupt .gz/.bz2
                name = getattr(stream, "name", None) or "stdin"
                self.warnings.append(
                    f"input {name}: compressed stream ends early or is corrupt "
                    f"({type(exc).__name__}); kept what was read before it"
                )
                break
            if not data:
                break
            if skipping:
                nl = data.find(b"\n")
                if nl < 0:
                    continue
                data, skipping = data[nl + 1 :], False
            pending += data
            cut = pending.rfind(b"\n")
            if cut < 0:
                if len(pending) > self.max_line_bytes:
                    self.too_long += 1
                    pending, skipping = b"", True
                continue
            chunk, pending = pending[: cut + 1], pending[cut + 1 :]
            if len(pending) > self.max_line_bytes:
                self.too_long += 1
                pending, skipping = b"", True
            yield chunk
        if pending and not skipping:
            yield pending + b"\n"
