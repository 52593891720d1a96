"""One sink's way of delivery: batching, the store, the disk spool, retries, dead letters.

A thread per sink takes lists of clean records from a bounded queue and cuts batches by rows,
bytes and age (`batch_max_rows`, `batch_max_bytes`, `batch_timeout_secs`). Each batch is:
- written to the store and, once it confirms, acknowledged (counted as delivered);
- or, when the store is unavailable, written to the disk spool, to be retried oldest first with
  exponential backoff and full jitter; while anything waits in the spool, new batches queue
  behind it, so order is kept;
- or, when the store refuses it, written to the dead-letter file with the store's message.
`close()` (end of input, SIGTERM) cuts the last batch and tries the spool once more within
`shutdown_timeout_secs`; what is left stays in the spool, durable, for the next start.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from sidecar.config import SinkConfig, StorageConfig
from sidecar.metrics import Metrics
from sidecar.record import CleanRecord
from sidecar.sinks.base import Sink, SinkRejected, SinkUnavailable
from sidecar.sinks.spool import Spool

log = logging.getLogger(__name__)
_STOP = object()
_MESSAGE_CHARS = 2000


@dataclass
class DeliveryStats:
    delivered: int = 0
    spooled: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    left_in_spool: int = 0


class Delivery:
    def __init__(
        self,
        sink: Sink,
        sink_config: SinkConfig,
        storage: StorageConfig,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        queue_chunks: int = 8,
    ) -> None:
        self.sink = sink
        self.cfg = sink_config
        self.storage = storage
        self.metrics = metrics
        self.clock = clock
        self.label = sink.id
        self.spool = Spool(Path(storage.spool_dir) / sink.id, storage.spool_max_bytes,
                           storage.spool_full)  # fmt: skip
        self.dead_letter_path = Path(storage.dead_letter_dir) / f"{sink.id}.jsonl"
        self.stats = DeliveryStats()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_chunks)
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.id}", daemon=True)
        self._batch: list[CleanRecord] = []
        self._batch_bytes = 0
        self._batch_started = 0.0
        self._record_bytes = 0  # encoded size of one record, measured on the first
        self._backoff = 0.0
        self._retry_at = 0.0
        self._deadline: float | None = None
        self.metrics.spool_bytes.labels(self.label).set(self.spool.bytes)

    # --- the producer side ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, records: list[CleanRecord]) -> None:
        """Hand over records (blocks while the queue is full: backpressure)."""
        if records:
            self._queue.put(records)

    def close(self) -> DeliveryStats:
        """Flush everything; wait at most `shutdown_timeout_secs` for a store that is down."""
        self._queue.put(_STOP)
        self._thread.join()
        self.stats.left_in_spool = self.spool.records
        return self.stats

    # --- the delivery thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.sink.open()
        except SinkUnavailable as exc:
            log.warning("sink %s not available at start: %s", self.label, exc)
            self._schedule_retry()
        stopping = False
        while True:
            timeout = self._wait_time()
            try:
                item = self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else None
            except queue.Empty:
                item = None
            if item is _STOP:
                stopping = True
                self._deadline = self.clock() + self.storage.shutdown_timeout_secs
            elif item is not None:
                self._add(item)
            if self._batch and (stopping or self._batch_age() >= self.cfg.batch_timeout_secs):
                self._cut()
            self._replay_due()
            if stopping and (not self.spool or self.clock() >= self._deadline):
                break
            if stopping and self._retry_at > self._deadline:  # next try is past the deadline
                break
        self.sink.close()

    def _wait_time(self) -> float | None:
        now = self.clock()
        waits = []
        if self._batch:
            waits.append(self._batch_started + self.cfg.batch_timeout_secs - now)
        if self.spool:
            waits.append(self._retry_at - now)
        if self._deadline is not None:
            waits.append(self._deadline - now)
        return max(0.0, min(waits)) if waits else None

    def _batch_age(self) -> float:
        return self.clock() - self._batch_started if self._batch else 0.0

    def _add(self, records: list[CleanRecord]) -> None:
        if not self._record_bytes:
            self._record_bytes = len(orjson.dumps(records[0])) + 1
        for record in records:
            if not self._batch:
                self._batch_started = self.clock()
            self._batch.append(record)
            self._batch_bytes += self._record_bytes
            if (
                len(self._batch) >= self.cfg.batch_max_rows
                or self._batch_bytes >= self.cfg.batch_max_bytes
            ):
                self._cut()

    def _cut(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if self.spool:  # older batches wait: keep the order
            self._to_spool(batch)
            return
        self._attempt(batch)

    def _attempt(self, batch: list[CleanRecord], from_spool: Path | None = None) -> bool:
        started = time.perf_counter()
        try:
            self.sink.write(batch)
        except SinkUnavailable as exc:
            self.metrics.sink_retries.labels(self.label).inc()
            log.warning(
                "sink %s unavailable (%s); spooling %d records", self.label, exc, len(batch)
            )
            if from_spool is None:
                self._to_spool(batch)
            self._schedule_retry()
            return False
        except SinkRejected as exc:
            self._dead_letter(batch, exc)
            if from_spool is not None:
                self.spool.pop(from_spool)
            return True
        self.metrics.batch_seconds.labels(self.label).observe(time.perf_counter() - started)
        self.metrics.records_delivered.labels(self.label).inc(len(batch))
        self.stats.delivered += len(batch)
        if from_spool is not None:
            self.spool.pop(from_spool)
        self._backoff = 0.0
        return True

    def _to_spool(self, batch: list[CleanRecord]) -> None:
        stored, dropped = self.spool.push(batch)
        if dropped:
            self.metrics.records_dropped.labels(self.label, "spool_full").inc(dropped)
            self.stats.dropped += dropped
            log.warning("spool of %s full: dropped %d records", self.label, dropped)
        if stored:
            self.metrics.records_spooled.labels(self.label).inc(len(batch))
            self.stats.spooled += len(batch)
        self.metrics.spool_bytes.labels(self.label).set(self.spool.bytes)
        if not self._retry_at:
            self._schedule_retry()

    def _replay_due(self) -> None:
        while self.spool and self.clock() >= self._retry_at:
            head = self.spool.peek()
            if head is None:
                break
            path, records = head
            if not self._attempt(records, from_spool=path):
                break
            self.metrics.spool_bytes.labels(self.label).set(self.spool.bytes)
        if not self.spool:
            self._retry_at = 0.0

    def _schedule_retry(self) -> None:
        initial, ceiling = self.storage.retry_initial_secs, self.storage.retry_max_secs
        self._backoff = min(ceiling, self._backoff * 2 if self._backoff else initial)
        self._retry_at = self.clock() + random.uniform(0.5, 1.0) * self._backoff  # jitter

    def _dead_letter(self, batch: list[CleanRecord], exc: SinkRejected) -> None:
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        message = str(exc)[:_MESSAGE_CHARS]
        with open(self.dead_letter_path, "ab") as fh:
            for record in batch:
                fh.write(orjson.dumps({"reason": exc.reason, "message": message, "record": record},
                                      option=orjson.OPT_APPEND_NEWLINE))  # fmt: skip
        self.metrics.records_dead_lettered.labels(self.label, exc.reason).inc(len(batch))
        self.stats.dead_lettered += len(batch)
        log.error("sink %s refused %d records (%s): %s", self.label, len(batch), exc.reason,
                  message[:200])  # fmt: skip
