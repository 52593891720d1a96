"""Run counters: lines in, records out, rejected lines by reason (read from the metrics: one
book); the summary and progress lines.

Invariant: lines_in == records_out + sum(rejected.values()).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TextIO

from sidecar.metrics import Metrics, totals
from sidecar.reject import REASONS


class Stats:
    """The run's counters as `--stats`, the stderr summary and the progress line show them:
    lines in, records out, rejected lines by reason. One book: they are read from the metrics
    (sidecar/metrics.py), which `/metrics` and the textfile show too; `add` and `reject` write
    there, per chunk."""

    def __init__(self, metrics: Metrics | None = None, source: str = "file") -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.source = source  # the `source` label of what is added without one
        self.started = time.monotonic()

    def add(
        self, lines_in: int, records_out: int, rejected: dict[str, int], source: str | None = None
    ) -> None:
        m, src = self.metrics, source or self.source
        m.lines_received.labels(src).inc(lines_in)
        m.records_out.labels(src).inc(records_out)
        for reason, n in rejected.items():
            m.lines_rejected.labels(src, reason).inc(n)

    def reject(self, reason: str, n: int = 1, source: str | None = None) -> None:
        self.add(n, 0, {reason: n}, source)

    @property
    def lines_in(self) -> int:
        return sum(totals(self.metrics.lines_received, "source").values())

    @property
    def records_out(self) -> int:
        return sum(totals(self.metrics.records_out, "source").values())

    @property
    def rejected(self) -> Counter[str]:
        by_reason = totals(self.metrics.lines_rejected, "reason")
        return Counter({reason: n for reason, n in by_reason.items() if n})

    def by_source(self) -> dict[str, int]:
        """Lines read per source (the sources that read any)."""
        return {s: n for s, n in totals(self.metrics.lines_received, "source").items() if n}

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict:
        rejected = self.rejected
        ordered = {r: rejected[r] for r in REASONS if rejected.get(r)}
        return {"lines_in": self.lines_in, "records_out": self.records_out, "rejected": ordered}

    def summary(self) -> str:
        secs = max(time.monotonic() - self.started, 1e-9)
        doc = self.as_dict()
        reasons = ", ".join(f"{r} {n}" for r, n in doc["rejected"].items())
        total = sum(doc["rejected"].values())
        return (
            f"sidecar: {doc['lines_in']} lines in, {doc['records_out']} records out, "
            f"{total} rejected{f' ({reasons})' if reasons else ''}, "
            f"{secs:.1f} s, {doc['lines_in'] / secs:,.0f} lines/s"
        )


class Progress:
    """A live `\\r` progress line on a terminal, at most every `every_secs`."""

    def __init__(self, stats: Stats, stream: TextIO, every_secs: float = 0.5) -> None:
        self.stats = stats
        self.stream = stream
        self.every = every_secs
        self.enabled = stream.isatty()
        self._last = time.monotonic()
        self._shown = False

    def tick(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        s = self.stats
        rate = s.lines_in / max(now - s.started, 1e-9)
        self.stream.write(
            f"\r\x1b[K{s.lines_in:,} lines  {rate:,.0f} lines/s  {s.rejected_total:,} rejected"
        )
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
