"""`stdout:`: clean records as JSON lines on standard output (the default of `sidecar pipe`)."""

from __future__ import annotations

import sys

from sidecar.record import CleanBatch
from sidecar.sinks.base import Sink


class StdoutSink(Sink):
    scheme = "stdout"

    def write_batch(self, batch: CleanBatch) -> None:
        out = sys.stdout.buffer
        out.write(batch.data)
        out.flush()
