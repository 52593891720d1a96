"""Files and stdin as newline-aligned chunks of bytes, gzip and bzip2 read transparently.

Chunks end on a line boundary, so they can be handed to worker processes whole. A line longer
than `max_line_bytes` is never held in memory whole: it is skipped while it streams past and
counted (reason `too_long`).
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from sidecar.errors import UsageError

CHUNK_BYTES = 1 << 20


def _kind(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bzip2"
    return "plain"


def _decompressing(stream: io.BufferedReader) -> BinaryIO:
    kind = _kind(stream.peek(3)[:3])
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(stream, mode="rb")  # type: ignore[return-value]
    return stream


def open_input(path: str) -> BinaryIO:
    """A binary stream for a path (`-`: stdin), decompressed when it is gzip or bzip2.

    Compression is told by the first bytes, not the name. Closing the stream closes the file."""
    if path == "-":
        return _decompressing(sys.stdin.buffer)  # type: ignore[arg-type]
    try:
        with open(path, "rb") as fh:
            kind = _kind(fh.read(3))
        if kind == "gzip":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        if kind == "bzip2":
            return bz2.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
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


Input = BinaryIO | tuple[str, BinaryIO]  # a stream, or (name for messages, stream)


def open_inputs(paths: Iterable[str]) -> Iterator[tuple[str, BinaryIO]]:
    """(name, stream) for each path, opened only when its turn comes."""
    for path in paths:
        yield ("stdin" if path == "-" else path), open_input(path)


def _is_live(stream: BinaryIO) -> bool:
    """A pipe, socket or terminal (not a regular file): data arrives over time."""
    try:  # a GzipFile's or BZ2File's fileno() is the file's underneath
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation, AttributeError):
        return False


class Chunks:
    """Newline-aligned chunks of the inputs, read in turn; each stream is closed when read
    (stdin excepted).

    `too_long` counts skipped over-long lines; `warnings` says which compressed inputs ended
    early or were corrupt (what was read before the damage is kept).
    """

    def __init__(
        self, inputs: Iterable[Input], max_line_bytes: int, chunk_bytes: int = CHUNK_BYTES
    ) -> None:
        self.inputs = inputs
        self.max_line_bytes = max_line_bytes
        self.chunk_bytes = chunk_bytes
        self.too_long = 0
        self.warnings: list[str] = []

    def __iter__(self) -> Iterator[bytes]:
        for item in self.inputs:
            name, stream = (
                item if isinstance(item, tuple) else (getattr(item, "name", "input"), item)
            )
            try:
                yield from self._one(stream, str(name), _is_live(stream))
            finally:
                if name != "stdin":
                    stream.close()

    def _read(self, stream: BinaryIO, name: str, live: bool) -> Iterator[bytes]:
        """Pieces of decompressed input, up to a chunk each; stops early on a damaged stream.

        A live stream (a pipe, a terminal) hands on whatever has arrived, so that lines are
        processed as they come; a file is read in whole chunks."""
        while True:
            pieces: list[bytes] = []
            size = 0
            try:
                while size < self.chunk_bytes and not (live and pieces):
                    piece = stream.read1(self.chunk_bytes - size)  # type: ignore[attr-defined]
                    if not piece:
                        break
                    pieces.append(piece)
                    size += len(piece)
            except (EOFError, OSError, ValueError, zlib.error) as exc:  # truncated or corrupt
                self.warnings.append(
                    f"input {name}: compressed stream ends early or is corrupt "
                    f"({type(exc).__name__}); kept what was read before it"
                )
                if pieces:
                    yield b"".join(pieces)
                return
            if not pieces:
                return
            yield b"".join(pieces)

    def _one(self, stream: BinaryIO, name: str, live: bool = False) -> Iterator[bytes]:
        pending = b""
        skipping = False  # inside an over-long line, until its newline
        for data in self._read(stream, name, live):
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
