"""The dead-letter file of one sink: the records a store refused, each with the store's message.

`<dead_letter_dir>/<sink id>.jsonl`, one JSON line per refused record:
`{"reason": ..., "message": ..., "record": {...clean record...}}`. A batch is appended whole or
not at all: when the write fails (read-only or full disk, a parent that is no folder), what was
appended is cut off again and the OSError goes to the caller, who counts the records as dropped.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import orjson

from sidecar.record import CleanBatch

MESSAGE_CHARS = 2000


class DeadLetters:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)  # made on the first refusal: no refusals, no file

    def write(self, batch: CleanBatch, reason: str, message: str) -> None:
        """Append the batch's records with `reason` and `message` (cut to MESSAGE_CHARS);
        raises OSError, having appended nothing, when the file cannot take them."""
        message = message[:MESSAGE_CHARS]
        data = b"".join(
            orjson.dumps(
                {"reason": reason, "message": message, "record": record},
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for record in batch.records()
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)  # no half line left for a reader to trip on
                raise
        finally:
            os.close(fd)
