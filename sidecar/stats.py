"""Run counters: lines in, records out, rejected lines by reason; the summary and progress lines.

Invariant: lines_in == records_out + sum(rejected.values()).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TextIO

from sidecar.reject import REASONS


class Stats:
    def __init__(self) -> None:
        self.lines_in = 0
        self.records_out = 0
        self.rejected: Counter[str] = Counter()
        self.started = time.monotonic()

    def add(self, lines_in: int, records_out: int, rejected: dict[str, int]) -> None:
        self.lines_in += lines_in
        self.records_out += records_out
        self.rejected.update(rejected)

    def reject(self, reason: str, n: int = 1) -> None:
        self.lines_in += n
        self.rejected[reason] += n

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict:
        ordered = {r: self.rejected[r] for r in REASONS if self.rejected.get(r)}
        return {"lines_in": self.lines_in, "records_out": self.records_out, "rejected": ordered}

    def summary(self) -> str:
        secs = max(time.monotonic() - self.started, 1e-9)
        reasons = ", ".join(f"{r} {n}" for r, n in self.as_dict()["rejected"].items())
        return (
            f"sidecar: {self.lines_in} lines in, {self.records_out} records out, "
            f"{self.rejected_total} rejected{f' ({reasons})' if reasons else ''}, "
            f"{secs:.1f} s, {self.lines_in / secs:,.0f} lines/s"
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
