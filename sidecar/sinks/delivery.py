"""One sink's way of delivery: batching, the store, the disk spool, retries, dead letters.

A thread per sink takes batches of clean records (CleanBatch: JSON lines) from a bounded queue
and cuts batches by rows,
bytes and age (`batch_max_rows`, `batch_max_bytes`, `batch_timeout_secs`). Each batch is:
- written to the store and, once it confirms, acknowledged (counted as delivered);
- or, when the store is unavailable, written to the disk spool, to be retried oldest first with
  exponential backoff and full jitter; while anything waits in the spool, new batches queue
  behind it, so order is kept;
- or, when the store refuses it, written to the dead-letter file with the store's message.
Two ways in: `submit` (the pipe: blocks while 8 chunks wait, backpressure on the reader) and
`offer` (the daemon: never blocks; at most `handoff_max_bytes` wait in memory, past that a batch
goes straight to the spool, counted as overflowed). Each offered batch may carry an `ack`,
called once every record of it is delivered, spooled, dead-lettered or counted as dropped: what
a file source's checkpoint waits for. `reconfigure` swaps the store (SIGHUP) between batches,
keeping the spool and the batch being filled.
`close()` (end of input, SIGTERM) cuts the last batch and tries the spool once more within
`shutdown_timeout_secs`; what is left stays in the spool, durable, for the next start.

Every record is accounted for, whatever fails: delivered, dead-lettered, left in the spool, or
dropped with a reason (metrics.DROP_REASONS) - the spool is full, the spool or the dead-letter
file cannot be written (the disk is read-only or full, the folder cannot be made), or the store
still held it when `close()` gave up. `close()` returns within `shutdown_timeout_secs` (and a
second) even when a store hangs; a failing disk never makes the loop spin. Repeated warnings
are throttled per sink and kind, and name the sink and the error, never data.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from sidecar.config import SinkConfig, StorageConfig
from sidecar.metrics import Metrics
from sidecar.record import CleanBatch, CleanRecord, as_batch
from sidecar.sinks.base import Sink, SinkRejected, SinkUnavailable, legacy_sink_id
from sidecar.sinks.dead_letter import DeadLetters
from sidecar.sinks.spool import Spool, adopt
from sidecar.sinks.throttle import ThrottledLog

log = logging.getLogger(__name__)
_STOP = object()
_RECONFIGURE = object()
_WAKE = object()  # the spool was written from another thread: look at the retry time again
#: how long `close()` waits past `shutdown_timeout_secs` for an attempt already under way
CLOSE_MARGIN_SECS = 1.0


@dataclass
class DeliveryStats:
    delivered: int = 0
    spooled: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    left_in_spool: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)  # metrics.DROP_REASONS

    def drop(self, records: int, reason: str) -> None:
        self.dropped += records
        self.dropped_by_reason[reason] = self.dropped_by_reason.get(reason, 0) + records


class _Ack:
    """One offered batch's acknowledgement: fired once every batch holding a part of it is
    settled (a batch may be cut across two of the sink's batches)."""

    __slots__ = ("fn", "parts", "sealed")
    lock = threading.Lock()

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.parts = 0
        self.sealed = False  # every part is in some batch: it may fire

    def settle(self, parts: int = 1) -> None:
        with self.lock:
            self.parts -= parts
            due = self.sealed and self.parts == 0
            if due:
                self.sealed = False  # fire once
        if due:
            try:
                self.fn()
            except Exception:
                log.exception("an acknowledgement callback failed")


class Delivery:
    def __init__(
        self,
        sink: Sink,
        sink_config: SinkConfig,
        storage: StorageConfig,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        queue_chunks: int = 8,
        handoff_max_bytes: int | None = None,
    ) -> None:
        self.sink = sink
        self.cfg = sink_config
        self.storage = storage
        self.metrics = metrics
        self.clock = clock
        self.label = sink.id
        _adopt_legacy_spool(Path(storage.spool_dir), sink)
        self.spool = Spool(Path(storage.spool_dir) / sink.id, storage.spool_max_bytes,
                           storage.spool_full)  # fmt: skip
        self.dead_letter_path = Path(storage.dead_letter_dir) / f"{sink.id}.jsonl"
        self.dead_letters = DeadLetters(self.dead_letter_path)
        self.stats = DeliveryStats()
        self.warn = ThrottledLog(log)  # one line per kind of failure per 10 s, not per batch
        # the books: what came in (spooled by a former run, or submitted) must come out
        self._carried_over = self.spool.records
        self._submitted = 0
        self._submit_lock = threading.Lock()
        self._stopping = False  # _STOP was taken from the queue
        self._abandoned = False  # close() gave up waiting: this thread no longer counts
        # `offer` bounds what waits by bytes (and never blocks); `submit` by chunks (and blocks)
        self.handoff_max_bytes = handoff_max_bytes
        self._queue: queue.Queue = queue.Queue(maxsize=0 if handoff_max_bytes else queue_chunks)
        self._queued_bytes = 0
        self._acks: list[_Ack] = []  # the acks of what the batch being filled holds
        self._last_ok: bool | None = None  # whether the store took the last batch tried
        self.overflowed = 0
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.id}", daemon=True)
        self._batch = bytearray()  # JSON lines of clean records (CleanBatch.data)
        self._batch_count = 0
        self._summary: list[tuple] | None = []  # the chunks' rollup rows; None once one lacks
        self._batch_started = 0.0
        self._backoff = 0.0
        self._retry_at = 0.0
        self._deadline: float | None = None
        metrics.add_sink(self.label, storage.spool_max_bytes)
        self.metrics.spool_bytes.labels(self.label).set(self.spool.bytes)
        self._up = metrics.sink_up.labels(self.label)
        self._queued = metrics.queue_bytes.labels(self.label)
        # stores that take several inserts at once (ClickHouse, HTTP) get `concurrency` batches
        # in flight, each on its own connection; the others are written from this thread
        self._lock = threading.RLock()  # stats, metrics, spool pushes, dead letters, retries
        self._use_senders(sink)

    def _use_senders(self, sink: Sink) -> None:
        """`concurrency` sender threads for a store that takes several inserts at once."""
        self._concurrency = max(1, getattr(sink, "concurrency", 1))
        self._slots = threading.BoundedSemaphore(self._concurrency)
        self._senders = (
            ThreadPoolExecutor(self._concurrency, thread_name_prefix=f"send-{sink.id}")
            if self._concurrency > 1
            else None
        )

    # --- the producer side ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: CleanBatch | list[CleanRecord]) -> None:
        """Hand over records (blocks while the queue is full: backpressure)."""
        batch = as_batch(batch)
        if batch.count:
            self._queue.put(batch)
            with self._submit_lock:
                self._submitted += batch.count

    def offer(self, batch: CleanBatch, ack: Callable[[], None] | None = None) -> None:
        """Hand over records without ever waiting on the store: queued in memory while less
        than `handoff_max_bytes` wait, else written to the spool now (on the caller's thread:
        a local fsync, never the store), counted in sidecar_records_overflowed_total."""
        pending = _Ack(ack) if ack is not None else None
        if not batch.count:
            if ack is not None:
                ack()
            return
        size = len(batch.data)
        with self._submit_lock:
            self._submitted += batch.count
            room = self.handoff_max_bytes is None or (
                self._queued_bytes + size <= self.handoff_max_bytes or not self._queued_bytes
            )
            if room:
                self._queued_bytes += size
                self._queued.set(self._queued_bytes)
        if room:
            self._queue.put((batch, pending))
            return
        self.overflowed += batch.count
        self.metrics.records_overflowed.labels(self.label).inc(batch.count)
        self.warn.warning("overflow", "sink %s: %d bytes wait for the store; batches go to the "
                          "spool", self.label, self._queued_bytes)  # fmt: skip
        self._to_spool(batch)
        if pending is not None:
            pending.sealed = True
            pending.settle(0)

    def reconfigure(self, sink: Sink, sink_config: SinkConfig) -> None:
        """Write to `sink` (the same name, a new URL, password or batch settings: SIGHUP)
        from the next batch on; the batch being filled, the queue and the spool carry over."""
        self._queue.put((_RECONFIGURE, (sink, sink_config)))

    def health(self) -> str | None:
        """None while the store took its last batch and the spool is below 90 % of its bound;
        else why not (for /readyz)."""
        if self._last_ok is False:
            return "the store did not take the last batch"
        if self.spool.bytes > 0.9 * self.spool.max_bytes:
            return "the spool is over 90 % of storage.spool_max_bytes"
        return None

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def close(self) -> DeliveryStats:
        """Flush everything; wait at most `shutdown_timeout_secs` for a store that is down
        (and CLOSE_MARGIN_SECS more for an attempt under way), whatever the store or the disk
        does. What is then neither delivered nor spooled is counted as dropped."""
        budget = self.storage.shutdown_timeout_secs
        self._deadline = self.clock() + budget
        give_up = time.monotonic() + budget + CLOSE_MARGIN_SECS
        with contextlib.suppress(queue.Full):  # the thread is stuck and the queue full
            self._queue.put(_STOP, timeout=max(0.0, give_up - time.monotonic()))
        self._thread.join(max(0.0, give_up - time.monotonic()))
        locked = self._lock.acquire(timeout=0.1)  # a thread stuck holding it...
        try:  # ...does not stop the count
            self._abandoned = self._thread.is_alive()
            self._settle()
        finally:
            if locked:
                self._lock.release()
        return replace(self.stats, dropped_by_reason=dict(self.stats.dropped_by_reason))

    def _settle(self) -> None:
        """Close the books: what came in and is neither delivered, dead-lettered, dropped nor
        in the spool is counted as dropped (the store still held it, or a bug lost it)."""
        self.stats.left_in_spool = self.spool.records
        s = self.stats
        missing = (self._carried_over + self._submitted
                   - s.delivered - s.dead_lettered - s.dropped - s.left_in_spool)  # fmt: skip
        if missing <= 0:
            return
        self._count_drop(missing, "shutdown_timeout")
        why = "the store still held them" if self._abandoned else "lost by an unexpected error"
        log.error("sink %s: %d records neither delivered nor spooled at shutdown (%s): dropped",
                  self.label, missing, why)  # fmt: skip

    # --- the delivery thread ----------------------------------------------------------------
    def _run(self) -> None:
        self._open()
        while not self._finished():
            try:
                self._step()
            except Exception:  # a bug must not kill delivery silently: log it, keep the data
                self.warn.exception("bug", "sink %s: unexpected error in delivery", self.label)
                self._schedule_retry()
        if self._senders is not None:
            self._senders.shutdown(wait=True)
        try:
            self.sink.close()
        except Exception:
            log.exception("sink %s: error while closing", self.label)

    def _finished(self) -> bool:
        if self._abandoned:
            return True
        if not self._stopping:
            return False
        if not self.spool or self.clock() >= self._deadline:  # type: ignore[operator]
            return True
        return self._retry_at > self._deadline  # type: ignore[operator]  # the rest stays spooled

    def _open(self) -> None:
        try:
            self.sink.open()
        except Exception as exc:  # unavailable, refused or broken: retry later, lose nothing
            log.warning("sink %s not available at start: %s", self.label, exc)
            self._schedule_retry()

    def _step(self) -> None:
        timeout = self._wait_time()
        try:
            if timeout is None or timeout > 0:
                item = self._queue.get(timeout=timeout)
            else:  # something is due now: look at the queue without waiting, but look
                item = self._queue.get_nowait()
        except queue.Empty:
            item = None
        if item is _WAKE:
            pass
        elif item is _STOP:
            self._stopping = True  # kept on self: an error below must not forget it
        elif type(item) is tuple:  # from offer: (batch, ack) or (_RECONFIGURE, (sink, config))
            batch, pending = item
            if batch is _RECONFIGURE:
                self._swap(*pending)
            else:
                with self._submit_lock:
                    self._queued_bytes -= len(batch.data)
                    self._queued.set(self._queued_bytes)
                self._add(batch, pending)
        elif item is not None:
            self._add(item)
        if self._batch_count and (
            self._stopping or self._batch_age() >= self.cfg.batch_timeout_secs
        ):
            self._cut()
        if self._stopping:
            self._wait_for_senders(self._deadline)  # what failed in flight is spooled now
        self._replay_due()

    def _wait_for_senders(self, deadline: float | None = None) -> None:
        """Until every batch in flight is settled, or `deadline` (on self.clock)."""
        taken = 0
        for _ in range(self._concurrency):
            left = None if deadline is None else max(0.0, deadline - self.clock())
            if not self._slots.acquire(timeout=left):
                break
            taken += 1
        for _ in range(taken):
            self._slots.release()

    def _wait_time(self) -> float | None:
        now = self.clock()
        waits = []
        if self._batch_count:
            waits.append(self._batch_started + self.cfg.batch_timeout_secs - now)
        if self.spool:
            waits.append(self._retry_at - now)
        if self._stopping:
            waits.append(self._deadline - now)  # type: ignore[operator]
        return max(0.0, min(waits)) if waits else None

    def _batch_age(self) -> float:
        return self.clock() - self._batch_started if self._batch_count else 0.0

    def _swap(self, sink: Sink, sink_config: SinkConfig) -> None:
        """reconfigure(), on this thread: what is filled so far goes to the old store (or the
        spool), then the old store is closed and the new one opened."""
        if self._batch_count:
            self._cut()
        self._wait_for_senders()
        with contextlib.suppress(Exception):
            self.sink.close()
        if self._senders is not None:
            self._senders.shutdown(wait=True)
        self.sink, self.cfg = sink, sink_config
        self._use_senders(sink)
        log.info("sink %s reconfigured", self.label)
        self._open()

    def _add(self, batch: CleanBatch, pending: _Ack | None = None) -> None:
        whole = batch.summary is not None  # a chunk with its rollup is never split: kept whole
        data, count = batch.data, batch.count
        while count:
            if not self._batch_count:
                self._batch_started = self.clock()
            if pending is not None and (not self._acks or self._acks[-1] is not pending):
                with _Ack.lock:
                    pending.parts += 1
                self._acks.append(pending)
            room_rows = self.cfg.batch_max_rows - self._batch_count
            room_bytes = self.cfg.batch_max_bytes - len(self._batch)
            if whole or (count <= room_rows and len(data) <= room_bytes):
                end, taken = len(data), count
            else:  # take the lines that fit (at least one), cut, go on with the rest
                end, taken = _lines_fitting(data, room_rows, room_bytes)
            self._batch += data[:end]
            self._batch_count += taken
            data, count = data[end:], count - taken
            if whole and self._summary is not None:
                self._summary.extend(batch.summary)  # type: ignore[arg-type]
            elif not whole:  # the batch now holds lines no rollup covers: the sink sums them
                self._summary = None
            if (
                self._batch_count >= self.cfg.batch_max_rows
                or len(self._batch) >= self.cfg.batch_max_bytes
            ):
                self._cut()
        if pending is not None:
            with _Ack.lock:
                pending.sealed = True
            pending.settle(0)  # fires now if every part was settled already

    def _cut(self) -> None:
        batch = CleanBatch(bytes(self._batch), self._batch_count, self._summary or None)
        acks, self._acks = self._acks, []
        self._batch, self._batch_count, self._summary = bytearray(), 0, []
        if self.spool:  # older batches wait: keep the order
            self._to_spool(batch)
            _settle(acks)
            return
        if self._senders is None:
            self._attempt(batch)
            _settle(acks)
            return
        self._slots.acquire()  # at most `concurrency` in flight: backpressure on the queue
        self._senders.submit(self._send, batch, acks)

    def _send(self, batch: CleanBatch, acks: list[_Ack]) -> None:
        try:
            self._attempt(batch)
        except Exception:
            self.warn.exception("bug", "sink %s: unexpected error in a sender", self.label)
            self._to_spool(batch)
        finally:
            self._slots.release()
            _settle(acks)

    def _attempt(self, batch: CleanBatch, from_spool: Path | None = None) -> bool:
        started = time.perf_counter()
        try:
            self.sink.write(batch)
        except SinkRejected as exc:
            self._dead_letter(batch, exc)
            if from_spool is not None:
                self._pop(from_spool)
            return True
        except Exception as exc:  # SinkUnavailable, or anything unforeseen: keep and retry
            self._last_ok = False
            self._up.set(0)
            self.metrics.sink_retries.labels(self.label).inc()
            if not isinstance(exc, SinkUnavailable):
                self.warn.exception("bug", "sink %s: unexpected error; batch kept for retry",
                                    self.label)  # fmt: skip
            else:
                self.warn.warning("unavailable", "sink %s unavailable (%s); %d records kept for "
                                  "a retry", self.label, exc, batch.count)  # fmt: skip
            if from_spool is None:
                self._to_spool(batch)
            else:
                self._schedule_retry()  # a replay failed: wait longer
            return False
        self._last_ok = True
        self._up.set(1)
        self.metrics.sink_last_success.labels(self.label).set(time.time())
        with self._lock:
            if self._abandoned:
                return True
            self.metrics.batch_seconds.labels(self.label).observe(time.perf_counter() - started)
            self.metrics.records_delivered.labels(self.label).inc(batch.count)
            self.stats.delivered += batch.count
            if from_spool is not None:
                self._pop(from_spool)
            self._backoff = 0.0
        return True

    def _to_spool(self, batch: CleanBatch) -> None:
        with self._lock:
            try:
                stored, dropped = self.spool.push(batch)
            except OSError as exc:  # read-only, full, no such folder: count, never spin
                self._drop(batch.count, "spool_write_failed")
                self.warn.warning("spool", "sink %s: cannot write the spool (%s): %d records "
                                  "dropped", self.label, _os_error(exc), batch.count)  # fmt: skip
                return
            if self._abandoned:
                return
            if dropped:
                self._drop(dropped, "spool_full")
                self.warn.warning("spool_full", "spool of %s full: dropped %d records",
                                  self.label, dropped)  # fmt: skip
            if stored:
                self.metrics.records_spooled.labels(self.label).inc(batch.count)
                self.stats.spooled += batch.count
            self.metrics.spool_bytes.labels(self.label).set(self.spool.bytes)
            if not self._retry_at:
                self._schedule_retry()
        if threading.current_thread() is not self._thread:
            # a sender or offer() spooled it while the delivery thread may be waiting for the
            # queue with no timeout (nothing was due): wake it, or the retry never comes
            with contextlib.suppress(queue.Full):  # a full queue wakes it anyway
                self._queue.put_nowait(_WAKE)

    def _pop(self, path: Path) -> None:
        try:
            self.spool.pop(path)
        except OSError as exc:  # forgotten all the same; on disk it is sent again next start
            self.warn.warning("spool_pop", "sink %s: cannot remove a delivered batch from the "
                              "spool (%s); it may be sent again", self.label,
                              _os_error(exc))  # fmt: skip

    def _drop(self, records: int, reason: str) -> None:
        with self._lock:
            if not self._abandoned:  # once close() gave up, it alone keeps the books
                self._count_drop(records, reason)

    def _count_drop(self, records: int, reason: str) -> None:
        self.metrics.records_dropped.labels(self.label, reason).inc(records)
        self.stats.drop(records, reason)

    def _replay_due(self) -> None:
        while self.spool and self.clock() >= self._retry_at and not self._abandoned:
            try:
                head = self.spool.peek()
            except OSError as exc:  # unreadable for now: try again later, never spin
                self.warn.warning("spool_read", "sink %s: cannot read the spool (%s)",
                                  self.label, _os_error(exc))  # fmt: skip
                self._schedule_retry()
                break
            if head is None:
                break
            path, batch = head
            if not self._attempt(batch, from_spool=path):
                break
            self.metrics.spool_bytes.labels(self.label).set(self.spool.bytes)
        if not self.spool:
            self._retry_at = 0.0

    def _schedule_retry(self) -> None:
        with self._lock:
            initial, ceiling = self.storage.retry_initial_secs, self.storage.retry_max_secs
            self._backoff = min(ceiling, self._backoff * 2 if self._backoff else initial)
            self._retry_at = self.clock() + random.uniform(0.5, 1.0) * self._backoff  # jitter

    def _dead_letter(self, batch: CleanBatch, exc: SinkRejected) -> None:
        message = str(exc)
        with self._lock:
            try:
                self.dead_letters.write(batch, exc.reason, message)
            except OSError as err:
                self._drop(batch.count, "dead_letter_write_failed")
                self.warn.warning("dead_letter", "sink %s: cannot write the dead-letter file "
                                  "(%s): %d refused records dropped", self.label, _os_error(err),
                                  batch.count)  # fmt: skip
                return
            if self._abandoned:
                return
            self.metrics.records_dead_lettered.labels(self.label, exc.reason).inc(batch.count)
            self.stats.dead_lettered += batch.count
        self.warn.error("refused", "sink %s refused %d records (%s): %s", self.label, batch.count,
                        exc.reason, message[:200])  # fmt: skip


def _settle(acks: list[_Ack]) -> None:
    for pending in acks:
        pending.settle()


def _adopt_legacy_spool(spool_dir: Path, sink: Sink) -> None:
    """A spool folder under the sink's former, URL-hashed name is taken over by its name."""
    legacy = legacy_sink_id(sink.url)
    if legacy == sink.id:
        return
    try:
        moved = adopt(spool_dir / legacy, spool_dir / sink.id)
    except OSError as exc:
        log.warning("sink %s: cannot adopt the spool folder %s (%s); it is not replayed",
                    sink.id, legacy, _os_error(exc))  # fmt: skip
        return
    if moved:
        log.info("sink %s: %d spooled batches adopted from %s", sink.id, moved, legacy)


def _os_error(exc: OSError) -> str:
    """`EROFS`, `ENOSPC`, ...: what went wrong, without the paths or data a message may hold."""
    return errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else type(exc).__name__


def _lines_fitting(data: bytes, rows: int, size: int) -> tuple[int, int]:
    """(end offset, lines) of the longest run of whole lines within `rows` and `size`
    (at least one line, so that an oversized record still moves)."""
    end, taken = 0, 0
    while taken < max(rows, 1):
        nl = data.find(b"\n", end)
        if nl < 0 or (taken and nl + 1 > size):
            break
        end, taken = nl + 1, taken + 1
    return end, taken
