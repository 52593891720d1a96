"""`jsonl:PATH`: clean records appended as JSON lines, the file rotated by size.

When `PATH` reaches `max_file_bytes` it becomes `PATH.1` (the older `PATH.1` becomes `PATH.2`,
up to `PATH.9`; older ones are removed) and a new `PATH` is started. Each batch is written and
fsynced before it counts as delivered.
"""

from __future__ import annotations

import os
from pathlib import Path

from sidecar.config import SinkConfig
from sidecar.record import CleanBatch
from sidecar.sinks.base import Sink, SinkUnavailable

KEEP_ROTATED = 9


class JsonlSink(Sink):
    scheme = "jsonl"

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.path = Path(config.url.partition(":")[2])

    def write_batch(self, batch: CleanBatch) -> None:
        data = batch.data
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(data) > self.config.max_file_bytes:
                self._rotate()
            with open(self.path, "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise SinkUnavailable(f"jsonl: {self.path}: {exc.strerror}") from None

    def _rotate(self) -> None:
        oldest = self.path.with_name(f"{self.path.name}.{KEEP_ROTATED}")
        oldest.unlink(missing_ok=True)
        for n in range(KEEP_ROTATED - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{n}")
            if src.exists():
                src.rename(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.rename(self.path.with_name(f"{self.path.name}.1"))
