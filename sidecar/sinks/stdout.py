"""`stdout:`: clean records as JSON lines on standard output (the default of `sidecar pipe`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import orjson

from sidecar.record import CleanRecord
from sidecar.sinks.base import Sink


class StdoutSink(Sink):
    scheme = "stdout"

    def write(self, records: Sequence[CleanRecord]) -> None:
        out = sys.stdout.buffer
        out.write(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records))
        out.flush()
