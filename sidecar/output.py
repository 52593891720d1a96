"""Where `sidecar pipe` writes besides the stores: stdout, `--rejects`, `--stats`.

Writes go straight to the file descriptor (no Python buffer), so a failure such as a full disk
shows at the write that caused it, as one `OutputError` naming the output (`stdout: No space
left on device`), and nothing is left buffered for the interpreter to fail on again at exit.
A closed pipe on stdout stays a BrokenPipeError: the CLI leaves quietly on it (`| head`).
"""

from __future__ import annotations

import io
import logging
import select

import orjson

from sidecar.errors import OutputError, UsageError

log = logging.getLogger(__name__)


class Output:
    """An unbuffered binary output named for messages (`stdout`, `--rejects`)."""

    def __init__(self, raw: io.FileIO, name: str) -> None:
        self.raw = raw
        self.name = name

    @classmethod
    def stdout(cls, fd: int = 1) -> Output:
        return cls(io.FileIO(fd, "wb", closefd=False), "stdout")

    @classmethod
    def open(cls, path: str, name: str) -> Output:
        """A file opened for writing (truncated), at start: a UsageError naming `name` (exit 2)
        if it cannot be."""
        try:
            return cls(io.FileIO(path, "wb"), name)
        except OSError as exc:
            raise UsageError(f"{name}: cannot write {path!r}: {exc.strerror}") from None

    def write(self, data: bytes) -> None:
        """All of `data`, or an OutputError (BrokenPipeError on a closed pipe)."""
        view = memoryview(data)
        while view:
            try:
                n = self.raw.write(view)
            except BrokenPipeError:
                raise
            except OSError as exc:
                raise OutputError(f"{self.name}: {exc.strerror or type(exc).__name__}") from None
            if n is None:  # a non-blocking descriptor that is full: wait until it drains
                select.select([], [self.raw.fileno()], [])
                continue
            view = view[n:]

    def close(self) -> None:
        """Close the file (not stdout's descriptor, which the interpreter owns)."""
        try:
            self.raw.close()
        except OSError as exc:  # nothing is buffered; only a file system's own close fails
            raise OutputError(f"{self.name}: {exc.strerror}") from None


def write_json_document(path: str, doc: dict, name: str = "--stats") -> None:
    """One JSON document (and a newline) written to `path` at a daemon's exit; a failure is
    logged (the run's records are safe already), never raised."""
    try:
        out = Output.open(path, name)
        out.write(orjson.dumps(doc) + b"\n")
        out.close()
    except (OutputError, UsageError) as exc:
        log.error(f"cannot write {name}", extra={"reason": str(exc)})
