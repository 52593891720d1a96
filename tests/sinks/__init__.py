"""Storage-layer tests: record factories, config helpers and a test-double sink.

The double implements the `Sink` interface only, to drive `Delivery`'s logic (failures on
demand, refusals, timing of attempts); every store itself is tested for real.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sidecar.config import SinkConfig, StorageConfig
from sidecar.metrics import Metrics
from sidecar.record import CleanBatch, CleanRecord
from sidecar.sinks.base import Sink, SinkRejected, SinkUnavailable
from sidecar.sinks.delivery import Delivery

_DEFAULTS: dict[str, object] = {
    "ts": "2026-11-24T09:00:00.000Z",
    "client_ip": "203.0.113.0",
    "country": "DE",
    "method": "GET",
    "host": "cdn.example.org",
    "path": "/index.html",
    "query": None,
    "protocol": "HTTP/1.1",
    "status": 200,
    "bytes": 1000,
    "request_time": 0.012,
    "referrer_host": "www.google.com",
    "referrer_path": None,
    "ua_browser": "Firefox",
    "ua_os": "Linux",
    "ua_device": "desktop",
    "user_agent": None,
}


def record(**fields: object) -> CleanRecord:
    """One clean record: plausible defaults, any field overridden by keyword."""
    return CleanRecord.make(**(_DEFAULTS | fields))


def numbered(n: int, start: int = 0, **fields: object) -> list[CleanRecord]:
    """`n` records told apart by `bytes` (= their number), one second apart, in order."""
    t0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)
    return [
        record(
            ts=(t0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            bytes=i,
            **fields,
        )
        for i in range(start, start + n)
    ]


def numbers(records: Sequence[CleanRecord]) -> list[int]:
    return [int(r["bytes"]) for r in records]


_COUNTRIES = ["DE", "FR", "US", None, "BR", "JP"]
_PATHS = [
    "/v/abc/seg-1.m4s",
    "/v/abc/seg-2.m4s",
    "/v/abc/master.M3U8",
    "/v/xyz/init.mp4",
    "/v/xyz/720p/chunk.ts",
    "/index.html",
    "/",
    None,
    "/api/status",
    "/audio/track.mp3",
]
_REFERRERS = ["www.google.com", "t.co", None, "android-app://com.example", "news.example"]
_STATUSES = [200, 200, 200, 206, 304, 404, 500, 503, 301, 99, 600]
_BROWSERS = ["Firefox", "Chrome", "Safari", None, "curl"]


def varied(
    n: int, seed: int = 7, days: Sequence[str] = ("2026-11-22", "2026-11-23", "2026-11-24")
) -> list[CleanRecord]:
    """`n` records spread over `days`, with every dimension taking several values and nulls."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        day = rnd.choice(days)
        out.append(
            record(
                ts=f"{day}T{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}.{rnd.randrange(1000):03d}Z",
                client_ip=f"198.51.{rnd.randrange(256)}.0",
                country=rnd.choice(_COUNTRIES),
                host=rnd.choice(["cdn.example.org", "video.example.org", None]),
                path=rnd.choice(_PATHS),
                status=rnd.choice(_STATUSES),
                bytes=rnd.randrange(0, 5_000_000),
                request_time=rnd.choice([None, round(rnd.random(), 3)]),
                referrer_host=rnd.choice(_REFERRERS),
                ua_browser=rnd.choice(_BROWSERS),
                ua_os=rnd.choice(["Linux", "Windows", "iOS", None]),
                ua_device=rnd.choice(["desktop", "mobile", "tv", None]),
                user_agent=f"agent {i}" if i % 5 == 0 else None,
            )
        )
    return out


def storage(tmp_path: Path, **overrides: object) -> StorageConfig:
    """Spool and dead letters under `tmp_path`; fast retries for tests."""
    base = StorageConfig(
        spool_dir=str(tmp_path / "spool"),
        dead_letter_dir=str(tmp_path / "dead-letter"),
        retry_initial_secs=0.02,
        retry_max_secs=0.1,
        shutdown_timeout_secs=3.0,
    )
    return replace(base, **overrides)


def start(
    sink: Sink,
    store: StorageConfig,
    metrics: Metrics | None = None,
    config: SinkConfig | None = None,
) -> tuple[Delivery, Metrics]:
    """A started Delivery to `sink` (with `sink.config` unless `config`), and its Metrics."""
    metrics = metrics or Metrics()
    delivery = Delivery(sink, config or sink.config, store, metrics)
    delivery.start()
    return delivery, metrics


def wait_until(condition: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.005)


class DoubleSink(Sink):
    """A sink that keeps what it is given, and fails on demand.

    - `fail`: the next `fail` writes raise SinkUnavailable;
    - `up`: while cleared, every write raises SinkUnavailable (an outage you end with `set()`);
    - `reject`: a record -> a reason (or None); a batch holding such a record is refused whole;
    - `open_error`: raised by `open()` (once).
    """

    scheme = "double"

    def __init__(
        self,
        url: str = "double:one",
        *,
        fail: int = 0,
        reject: Callable[[CleanRecord], str | None] | None = None,
        open_error: Exception | None = None,
        **config: object,
    ) -> None:
        super().__init__(SinkConfig(url=url, **config))  # type: ignore[arg-type]
        self.fail = fail
        self.reject = reject
        self.open_error = open_error
        self.up = threading.Event()
        self.up.set()
        self.lock = threading.Lock()
        self.batches: list[list[CleanRecord]] = []
        self.attempts: list[tuple[float, list[CleanRecord]]] = []  # (monotonic time, batch)
        self.opened = 0
        self.closed = 0

    def open(self) -> None:
        self.opened += 1
        if self.open_error is not None:
            error, self.open_error = self.open_error, None
            raise error

    def write_batch(self, records: CleanBatch) -> None:
        batch = records.records()
        with self.lock:
            self.attempts.append((time.monotonic(), batch))
            if self.fail > 0:
                self.fail -= 1
                raise SinkUnavailable("double: down (fail count)")
            if not self.up.is_set():
                raise SinkUnavailable("double: down (outage)")
            if self.reject is not None:
                reasons = [self.reject(r) for r in batch]
                reason = next((x for x in reasons if x), None)
                if reason:
                    raise SinkRejected(f"double: refused a batch ({reason})", reason)
            self.batches.append(batch)

    def close(self) -> None:
        self.closed += 1

    @property
    def delivered(self) -> list[CleanRecord]:
        with self.lock:
            return [r for b in self.batches for r in b]
