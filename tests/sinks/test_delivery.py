"""delivery: batching, the disk spool, retries with backoff, dead letters, shutdown, restart.

Delivery's logic is driven with `DoubleSink` (fails or refuses on demand); the same paths are
then run against the real SqliteSink, made unavailable by another connection's lock.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import apsw
import orjson
import pytest

from sidecar.config import SinkConfig
from sidecar.metrics import DROP_REASONS, Metrics
from sidecar.record import CleanBatch, CleanRecord
from sidecar.sinks.base import SinkRejected
from sidecar.sinks.delivery import CLOSE_MARGIN_SECS, Delivery, DeliveryStats
from sidecar.sinks.spool import Spool
from sidecar.sinks.sqlite import SqliteSink
from tests.conftest import PROJECT
from tests.sinks import DoubleSink, numbered, numbers, record, start, storage, wait_until


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def dead_lettered_total(metrics: Metrics, sink_label: str) -> float:
    return sum(
        s.value
        for m in metrics.registry.collect()
        if m.name == "sidecar_records_dead_lettered"
        for s in m.samples
        if s.name.endswith("_total") and s.labels["sink"] == sink_label
    )


def assert_accounted(
    delivery: Delivery, metrics: Metrics, stats: DeliveryStats, submitted: int
) -> None:
    """Every record is delivered, dead-lettered, dropped or still in the spool; and the
    Prometheus counters say what DeliveryStats says."""
    label = delivery.sink.id
    assert (
        stats.delivered + stats.dead_lettered + stats.dropped + stats.left_in_spool == submitted
    ), stats
    assert sample(metrics, "sidecar_records_delivered_total", sink=label) == stats.delivered
    assert sample(metrics, "sidecar_records_spooled_total", sink=label) == stats.spooled
    assert sum(stats.dropped_by_reason.values()) == stats.dropped
    for reason in DROP_REASONS:
        assert sample(
            metrics, "sidecar_records_dropped_total", sink=label, reason=reason
        ) == stats.dropped_by_reason.get(reason, 0), reason
    assert dead_lettered_total(metrics, label) == stats.dead_lettered
    assert sample(metrics, "sidecar_spool_bytes", sink=label) == delivery.spool.bytes
    assert stats.left_in_spool == delivery.spool.records


def encoded_size(r: CleanRecord) -> int:
    return len(orjson.dumps(r)) + 1


# --- cutting batches ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("max_rows", "chunks", "expect_sizes"),
    [
        (3, [10], [3, 3, 3, 1]),  # rows: full batches, the rest cut at close
        (3, [2, 2, 2], [3, 3]),  # a batch spans submitted chunks
        (1, [3], [1, 1, 1]),
        (100, [5, 5], [10]),  # never full: one batch at close
        (4, [0, 4, 0], [4]),  # empty submissions are ignored
    ],
)
def test_batches_are_cut_by_rows(
    tmp_path: Path, max_rows: int, chunks: list[int], expect_sizes: list[int]
) -> None:
    sink = DoubleSink(batch_max_rows=max_rows, batch_timeout_secs=60.0)
    delivery, metrics = start(sink, storage(tmp_path))
    n = 0
    for size in chunks:
        delivery.submit(numbered(size, start=n))
        n += size
    stats = delivery.close()
    assert [len(b) for b in sink.batches] == expect_sizes
    assert numbers(sink.delivered) == list(range(n))
    assert stats == DeliveryStats(delivered=n)
    assert_accounted(delivery, metrics, stats, n)
    assert sample(metrics, "sidecar_sink_batch_seconds_count", sink=sink.id) == len(expect_sizes)


@pytest.mark.parametrize(
    ("per_batch", "n", "expect_sizes"), [(1, 3, [1, 1, 1]), (4, 10, [4, 4, 2]), (10, 10, [10])]
)
def test_batches_are_cut_by_bytes(
    tmp_path: Path, per_batch: int, n: int, expect_sizes: list[int]
) -> None:
    recs = numbered(n, start=100)  # three-digit numbers: every record encodes to the same size
    size = encoded_size(recs[0])
    assert {encoded_size(r) for r in recs} == {size}
    sink = DoubleSink(
        batch_max_rows=1000, batch_max_bytes=per_batch * size, batch_timeout_secs=60.0
    )
    delivery, _ = start(sink, storage(tmp_path))
    delivery.submit(recs)
    delivery.close()
    assert [len(b) for b in sink.batches] == expect_sizes
    assert sink.delivered == recs


def cut_on_reaching(batches: list[list[CleanRecord]], limit: int) -> bool:
    """Each batch but the last was cut by the record with which it reached `limit` bytes of
    JSON ("a batch is sent when it has this many bytes of JSON", config/sidecar.toml)."""
    return all(
        sum(map(encoded_size, b[:-1])) < limit <= sum(map(encoded_size, b)) for b in batches[:-1]
    )


def test_a_batch_is_cut_by_the_record_that_reaches_batch_max_bytes(tmp_path: Path) -> None:
    recs = numbered(10, start=100)  # equal sizes s; limit 4s - 1: reached with the 4th record
    limit = 4 * encoded_size(recs[0]) - 1
    sink = DoubleSink(batch_max_rows=1000, batch_max_bytes=limit, batch_timeout_secs=60.0)
    delivery, _ = start(sink, storage(tmp_path))
    delivery.submit(recs)
    delivery.close()
    assert [len(b) for b in sink.batches] == [4, 4, 2]
    assert cut_on_reaching(sink.batches, limit)


def test_batch_max_bytes_counts_the_records_actual_size(tmp_path: Path) -> None:
    # a small first record (~290 bytes), then records of ~3.3 KB; limit = 4 small records
    recs = [record(bytes=100), *[record(bytes=101, user_agent="x" * 3000) for _ in range(9)]]
    limit = 4 * encoded_size(recs[0]) - 1
    sink = DoubleSink(batch_max_rows=1000, batch_max_bytes=limit, batch_timeout_secs=60.0)
    delivery, _ = start(sink, storage(tmp_path))
    delivery.submit(recs)
    delivery.close()
    assert sink.delivered == recs
    # expected batches of 1-2 records ([1st small + 1 big], then each big one reaches the limit
    # alone); got [4, 4, 2]: ~10 KB batches for a ~1.1 KB limit
    assert cut_on_reaching(sink.batches, limit), [len(b) for b in sink.batches]


def test_batches_are_cut_by_age(tmp_path: Path) -> None:
    sink = DoubleSink(batch_max_rows=1000, batch_timeout_secs=0.1)
    delivery, _ = start(sink, storage(tmp_path))
    t0 = time.monotonic()
    delivery.submit(numbered(2))
    wait_until(lambda: sink.batches, 3.0, "the first batch, cut by age")
    assert time.monotonic() - t0 >= 0.09  # not before batch_timeout_secs
    delivery.submit(numbered(1, start=2))
    wait_until(lambda: len(sink.batches) == 2, 3.0, "the second batch, cut by age")
    stats = delivery.close()
    assert [numbers(b) for b in sink.batches] == [[0, 1], [2]]
    assert stats.delivered == 3


def test_close_flushes_the_last_partial_batch_at_once(tmp_path: Path) -> None:
    sink = DoubleSink(batch_max_rows=100, batch_timeout_secs=60.0)
    delivery, _ = start(sink, storage(tmp_path))
    delivery.submit(numbered(5))
    t0 = time.monotonic()
    stats = delivery.close()
    assert time.monotonic() - t0 < 1.0  # not after batch_timeout_secs
    assert [numbers(b) for b in sink.batches] == [[0, 1, 2, 3, 4]]
    assert stats.delivered == 5 and sink.opened == 1 and sink.closed == 1


# --- an unavailable store -----------------------------------------------------------------------
def test_unavailable_batches_are_spooled_then_delivered_in_order(tmp_path: Path) -> None:
    sink = DoubleSink(fail=3, batch_max_rows=2, batch_timeout_secs=0.02)
    delivery, metrics = start(sink, storage(tmp_path))
    for i in range(0, 12, 3):
        delivery.submit(numbered(3, start=i))
    stats = delivery.close()
    assert numbers(sink.delivered) == list(range(12))  # each record once, in order
    assert stats.delivered == 12 and stats.left_in_spool == 0 and stats.spooled >= 2
    assert sample(metrics, "sidecar_sink_retries_total", sink=sink.id) == 3
    assert_accounted(delivery, metrics, stats, 12)
    assert list(Path(delivery.spool.dir).iterdir()) == []


def test_while_the_spool_holds_batches_new_ones_queue_behind_it(tmp_path: Path) -> None:
    sink = DoubleSink(batch_max_rows=2, batch_timeout_secs=0.02)
    sink.up.clear()  # an outage
    delivery, metrics = start(sink, storage(tmp_path, retry_initial_secs=0.01, retry_max_secs=0.03))
    delivery.submit(numbered(2, start=0))  # batch A: fails, spooled
    wait_until(lambda: delivery.spool.records == 2, what="batch A in the spool")
    delivery.submit(numbered(2, start=2))  # batches B and C go straight behind it
    delivery.submit(numbered(2, start=4))
    wait_until(lambda: delivery.spool.records == 6, what="B and C in the spool")
    wait_until(lambda: len(sink.attempts) >= 3, what="a few retries")
    # only the oldest batch is ever tried while the store is down: nothing overtakes it
    assert {tuple(numbers(b)) for _, b in sink.attempts} == {(0, 1)}
    sink.up.set()
    wait_until(lambda: len(sink.delivered) == 6, what="delivery after the outage")
    stats = delivery.close()
    assert [numbers(b) for b in sink.batches] == [[0, 1], [2, 3], [4, 5]]
    assert stats.spooled == 6 and stats.delivered == 6
    assert_accounted(delivery, metrics, stats, 6)


def test_retries_back_off_exponentially_up_to_the_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "uniform", lambda a, b: b)  # the jitter's upper end: no randomness
    sink = DoubleSink(fail=6, batch_max_rows=1, batch_timeout_secs=0.01)
    initial, ceiling = 0.04, 0.16
    delivery, metrics = start(
        sink, storage(tmp_path, retry_initial_secs=initial, retry_max_secs=ceiling)
    )
    delivery.submit(numbered(1))
    wait_until(lambda: sink.batches, 5.0, "delivery after 6 failures")
    stats = delivery.close()
    times = [t for t, _ in sink.attempts]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 6
    assert gaps[0] >= initial * 0.9
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(gaps)), gaps  # growing
    assert max(gaps) <= ceiling + 0.08, gaps  # capped
    assert gaps[-1] >= ceiling * 0.9, gaps  # and it reaches the ceiling
    assert stats.delivered == 1
    assert sample(metrics, "sidecar_sink_retries_total", sink=sink.id) == 6


def test_the_first_retry_comes_after_retry_initial_secs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        random, "uniform", lambda a, b: b
    )  # jitter at its upper end: exactly the backoff
    sink = DoubleSink(fail=1, batch_max_rows=1, batch_timeout_secs=0.01)
    delivery, _ = start(sink, storage(tmp_path, retry_initial_secs=0.1, retry_max_secs=10.0))
    delivery.submit(numbered(1))
    wait_until(lambda: sink.batches, 5.0, "delivery after one failure")
    delivery.close()
    (t1, _), (t2, _) = sink.attempts
    assert t2 - t1 < 0.15  # expected ~0.1 s (retry_initial_secs); got ~0.2 s


# --- a refusing store ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["fresh", "from_spool"])
def test_refused_batches_go_to_the_dead_letter_file_and_the_rest_continues(
    tmp_path: Path, path: str
) -> None:
    sink = DoubleSink(
        batch_max_rows=2,
        batch_timeout_secs=0.02,
        reject=lambda r: "data" if r["status"] == 999 else None,
    )
    recs = numbered(6)
    recs[3] = record(ts=recs[3]["ts"], bytes=3, status=999)  # refused, and with it the batch [2, 3]
    if path == "from_spool":
        sink.up.clear()
    delivery, metrics = start(sink, storage(tmp_path))
    for r in recs:
        delivery.submit([r])
    if path == "from_spool":
        wait_until(lambda: delivery.spool.records == 6, what="all batches spooled")
        sink.up.set()
    stats = delivery.close()
    assert numbers(sink.delivered) == [0, 1, 4, 5]
    lines = [orjson.loads(x) for x in delivery.dead_letter_path.read_bytes().splitlines()]
    assert [set(x) for x in lines] == [{"reason", "message", "record"}] * 2
    assert [x["reason"] for x in lines] == ["data", "data"]
    assert all(x["message"] == "double: refused a batch (data)" for x in lines)
    assert [CleanRecord(x["record"]) for x in lines] == recs[2:4]
    assert delivery.dead_letter_path.name == f"{sink.id}.jsonl"
    assert stats.dead_lettered == 2 and stats.delivered == 4 and stats.left_in_spool == 0
    assert sample(metrics, "sidecar_records_dead_lettered_total", sink=sink.id, reason="data") == 2
    assert_accounted(delivery, metrics, stats, 6)


def test_dead_letter_messages_are_cut_to_2000_characters(tmp_path: Path) -> None:
    class Loud(DoubleSink):
        def write_batch(self, batch):
            raise SinkRejected("x" * 5000, "other")

    sink = Loud(batch_max_rows=10, batch_timeout_secs=0.02)
    delivery, metrics = start(sink, storage(tmp_path))
    delivery.submit(numbered(2))
    stats = delivery.close()
    lines = [orjson.loads(x) for x in delivery.dead_letter_path.read_bytes().splitlines()]
    assert [len(x["message"]) for x in lines] == [2000, 2000]
    assert stats.dead_lettered == 2
    assert_accounted(delivery, metrics, stats, 2)


# --- shutdown and restart -----------------------------------------------------------------------
@pytest.mark.parametrize("shutdown", [0.0, 0.5])
def test_a_store_that_stays_down_does_not_hold_up_close_and_the_spool_survives(
    tmp_path: Path, shutdown: float
) -> None:
    store = storage(
        tmp_path, retry_initial_secs=0.05, retry_max_secs=0.1, shutdown_timeout_secs=shutdown
    )
    sink = DoubleSink(batch_max_rows=4, batch_timeout_secs=60.0)
    sink.up.clear()
    delivery, metrics = start(sink, store)
    delivery.submit(numbered(10))
    t0 = time.monotonic()
    stats = delivery.close()
    elapsed = time.monotonic() - t0
    assert elapsed < shutdown + 0.5, elapsed
    assert stats.delivered == 0 and stats.spooled == 10 and stats.left_in_spool == 10
    assert len(delivery.spool) == 3 and sink.closed == 1
    assert_accounted(delivery, metrics, stats, 10)

    # the next start replays the spool first, then what it is given, in order
    again = DoubleSink(batch_max_rows=4, batch_timeout_secs=60.0)
    assert again.id == sink.id
    delivery2, metrics2 = start(again, store)
    delivery2.submit(numbered(2, start=10))
    stats2 = delivery2.close()
    assert [numbers(b) for b in again.batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [10, 11]]
    assert stats2.delivered == 12 and stats2.left_in_spool == 0
    assert list(Path(delivery2.spool.dir).iterdir()) == []
    assert sample(metrics2, "sidecar_records_delivered_total", sink=again.id) == 12


def test_a_restart_with_nothing_new_still_replays_the_spool(tmp_path: Path) -> None:
    store = storage(tmp_path, shutdown_timeout_secs=0.0)
    sink = DoubleSink(batch_max_rows=3, batch_timeout_secs=60.0)
    sink.up.clear()
    d1, _ = start(sink, store)
    d1.submit(numbered(5))
    assert d1.close().left_in_spool == 5
    again = DoubleSink(batch_max_rows=3, batch_timeout_secs=60.0)
    d2, m2 = start(again, storage(tmp_path))
    stats = d2.close()
    assert numbers(again.delivered) == [0, 1, 2, 3, 4]
    assert stats.delivered == 5 and stats.left_in_spool == 0
    assert sample(m2, "sidecar_spool_bytes", sink=again.id) == 0


# --- a full spool -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        ("drop_oldest", [6, 7, 8, 9]),  # the two newest batches are kept
        ("drop_newest", [0, 1, 2, 3]),  # the two oldest are kept, the rest refused
    ],
)
def test_a_full_spool_drops_records_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, policy: str, kept: list[int]
) -> None:
    recs = numbered(10)
    size = encoded_size(recs[0])
    store = storage(
        tmp_path, spool_max_bytes=4 * size, spool_full=policy, shutdown_timeout_secs=0.0
    )
    sink = DoubleSink(batch_max_rows=2, batch_timeout_secs=60.0)
    sink.up.clear()
    delivery, metrics = start(sink, store)
    with caplog.at_level(logging.WARNING, logger="sidecar.sinks.delivery"):
        delivery.submit(recs)
        stats = delivery.close()
    assert stats.dropped == 6 and stats.left_in_spool == 4 and stats.delivered == 0
    assert sample(metrics, "sidecar_records_dropped_total", sink=sink.id, reason="spool_full") == 6
    assert "full: dropped" in caplog.text  # never silent
    assert_accounted(delivery, metrics, stats, 10)
    again = DoubleSink(batch_max_rows=2, batch_timeout_secs=60.0)
    start(again, store)[0].close()
    assert numbers(again.delivered) == kept


def test_a_batch_larger_than_the_whole_spool_is_dropped_and_counted(tmp_path: Path) -> None:
    recs = numbered(10)
    store = storage(tmp_path, spool_max_bytes=encoded_size(recs[0]) * 3, shutdown_timeout_secs=0.0)
    sink = DoubleSink(batch_max_rows=5, batch_timeout_secs=60.0)
    sink.up.clear()
    delivery, metrics = start(sink, store)
    delivery.submit(recs)
    stats = delivery.close()
    assert stats.dropped == 10 and stats.spooled == 0 and stats.left_in_spool == 0
    assert_accounted(delivery, metrics, stats, 10)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_sink_whose_open_refuses_loses_nothing_silently(tmp_path: Path) -> None:
    sink = DoubleSink(
        batch_max_rows=10,
        batch_timeout_secs=0.02,
        open_error=SinkRejected("double: no such table", "schema"),
    )
    delivery, metrics = start(sink, storage(tmp_path, shutdown_timeout_secs=0.5))
    delivery.submit(numbered(3))
    stats = delivery.close()
    assert_accounted(delivery, metrics, stats, 3)  # got: DeliveryStats() all zero, 3 records gone


def test_a_sink_unavailable_at_open_is_retried(tmp_path: Path) -> None:
    from sidecar.sinks.base import SinkUnavailable

    sink = DoubleSink(
        batch_max_rows=10, batch_timeout_secs=0.02, open_error=SinkUnavailable("double: not yet")
    )
    delivery, metrics = start(sink, storage(tmp_path))
    delivery.submit(numbered(3))
    stats = delivery.close()
    assert numbers(sink.delivered) == [0, 1, 2]
    assert_accounted(delivery, metrics, stats, 3)


# --- the same with the real SQLite sink -----------------------------------------------------------
def sqlite_rows(db: Path) -> list[int]:
    conn = apsw.Connection(str(db))
    try:
        return [r[0] for r in conn.execute("SELECT bytes FROM requests_2026_11 ORDER BY rowid")]
    finally:
        conn.close()


def test_sqlite_locked_then_released_delivers_everything_in_order(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    config = SinkConfig(
        url=f"sqlite:{db}", batch_max_rows=5, batch_timeout_secs=0.02, timeout_secs=0.02
    )
    warm = SqliteSink(config)
    warm.write(numbered(1, start=1000))  # the database exists, in WAL mode, with its month table
    warm.close()
    locker = apsw.Connection(str(db))  # the sink's own SQLite: one library per process
    locker.execute("BEGIN EXCLUSIVE")
    delivery, metrics = start(
        SqliteSink(config),
        storage(tmp_path, retry_initial_secs=0.02, retry_max_secs=0.05),
        config=config,
    )
    for i in range(0, 15, 5):
        delivery.submit(numbered(5, start=i))
    wait_until(lambda: delivery.stats.spooled == 15, what="all batches spooled while locked")
    locker.execute("ROLLBACK")
    locker.close()
    stats = delivery.close()
    assert sqlite_rows(db) == [1000, *range(15)]
    assert stats.delivered == 15 and stats.spooled == 15 and stats.left_in_spool == 0
    assert sample(metrics, "sidecar_sink_retries_total", sink=delivery.sink.id) >= 1
    assert_accounted(delivery, metrics, stats, 15)


def test_sqlite_locked_through_shutdown_is_replayed_at_the_next_start(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    config = SinkConfig(
        url=f"sqlite:{db}", batch_max_rows=4, batch_timeout_secs=60.0, timeout_secs=0.02
    )
    SqliteSink(config).open()
    store = storage(tmp_path, shutdown_timeout_secs=0.2, retry_initial_secs=0.05)
    locker = apsw.Connection(str(db))  # the sink's own SQLite: one library per process
    locker.execute("BEGIN EXCLUSIVE")
    d1, m1 = start(SqliteSink(config), store, config=config)
    d1.submit(numbered(6))
    stats = d1.close()
    assert stats.left_in_spool == 6 and stats.delivered == 0
    assert_accounted(d1, m1, stats, 6)
    locker.execute("ROLLBACK")
    locker.close()
    d2, m2 = start(SqliteSink(config), store, config=config)
    stats2 = d2.close()
    assert sqlite_rows(db) == [0, 1, 2, 3, 4, 5]
    assert stats2.delivered == 6 and stats2.left_in_spool == 0
    assert_accounted(d2, m2, stats2, 6)


def test_sqlite_refusal_is_dead_lettered_and_the_rest_stored(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    config = SinkConfig(url=f"sqlite:{db}", batch_max_rows=2, batch_timeout_secs=60.0)
    sink = SqliteSink(config)
    sink.open()
    # schema drift: December's table made by hand, without most columns
    assert sink.conn is not None
    sink.conn.execute("CREATE TABLE requests_2026_12 (ts TEXT, client_ip TEXT)")
    sink.close()
    recs = [
        *numbered(2),
        record(ts="2026-12-01T00:00:00.000Z", bytes=2),
        record(ts="2026-12-01T00:00:01.000Z", bytes=3),
        *numbered(2, start=4),
    ]
    delivery, metrics = start(SqliteSink(config), storage(tmp_path), config=config)
    delivery.submit(recs)
    stats = delivery.close()
    assert sqlite_rows(db) == [0, 1, 4, 5]
    lines = [orjson.loads(x) for x in delivery.dead_letter_path.read_bytes().splitlines()]
    assert [(x["reason"], x["record"]["bytes"]) for x in lines] == [("schema", 2), ("schema", 3)]
    assert "no column" in lines[0]["message"]
    assert stats.dead_lettered == 2 and stats.delivered == 4
    assert_accounted(delivery, metrics, stats, 6)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_sqlite_an_unstorable_value_does_not_stop_delivery(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    config = SinkConfig(url=f"sqlite:{db}", batch_max_rows=2, batch_timeout_secs=60.0)
    recs = numbered(6)
    recs[2] = record(ts=recs[2]["ts"], bytes=2**63)  # valid JSON, a valid UInt64 for ClickHouse
    delivery, metrics = start(SqliteSink(config), storage(tmp_path), config=config)
    delivery.submit(recs)
    stats = delivery.close()
    # expected: [2**63, 3] dead-lettered (reason "data"), [0, 1] and [4, 5] stored
    assert sqlite_rows(db) == [0, 1, 4, 5]  # got [0, 1]: the thread died at the second batch
    assert stats.dead_lettered == 2
    assert_accounted(delivery, metrics, stats, 6)


def test_concurrent_sends_lose_nothing_and_count_everything(tmp_path: Path) -> None:
    """With several batches in flight (ClickHouse, HTTP), failures still land in the spool and
    every record is accounted for once."""
    sink = DoubleSink(batch_max_rows=5, batch_timeout_secs=0.01, fail=3)
    sink.concurrency = 3
    delivery, metrics = start(sink, storage(tmp_path))
    delivery.submit(numbered(100))
    stats = delivery.close()
    assert stats.delivered == 100 and stats.left_in_spool == 0
    assert sorted(n for b in sink.batches for n in numbers(b)) == list(range(100))
    assert_accounted(delivery, metrics, stats, 100)


# --- an unusable disk, a store that hangs ----------------------------------------------------------
# Root is not stopped by permission bits: a folder under /proc (nothing can be made there) or
# below a regular file is what a read-only or broken disk looks like to the spool.
def unusable(tmp_path: Path, kind: str) -> str:
    if kind == "proc":
        return f"/proc/sidecar-test-{os.getpid()}/spool"
    (tmp_path / "a-file").write_bytes(b"")
    return str(tmp_path / "a-file" / "spool")


def close_within(delivery: Delivery, limit: float) -> DeliveryStats:
    """`delivery.close()`, failing (not hanging) when it takes longer than `limit` seconds."""
    result: list[DeliveryStats] = []
    closer = threading.Thread(target=lambda: result.append(delivery.close()), daemon=True)
    t0 = time.monotonic()
    closer.start()
    closer.join(limit + 5.0)
    elapsed = time.monotonic() - t0
    assert result, f"close() did not return within {limit + 5.0} s"
    assert elapsed < limit, f"close() took {elapsed:.2f} s, more than {limit} s"
    return result[0]


PRIVATE = ("cdn.example.org", "203.0.113", "www.google.com", "Firefox")  # record contents


@pytest.mark.parametrize("concurrency", [1, 3])
@pytest.mark.parametrize("kind", ["proc", "below_a_file"])
def test_an_unwritable_spool_counts_the_records_as_dropped_and_close_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, concurrency: int
) -> None:
    # before: the OSError escaped the step that took _STOP, the loop forgot it was stopping
    # and spun at 100 % CPU forever; close() never returned and the records were not counted
    sink = DoubleSink(batch_max_rows=2, batch_timeout_secs=60.0)
    sink.concurrency = concurrency
    sink.up.clear()
    store = storage(tmp_path, spool_dir=unusable(tmp_path, kind), shutdown_timeout_secs=0.3)
    with caplog.at_level(logging.WARNING, logger="sidecar.sinks.delivery"):
        delivery, metrics = start(sink, store)
        for i in range(0, 10, 2):
            delivery.submit(numbered(2, start=i))
        cpu0 = time.process_time()
        stats = close_within(delivery, 0.3 + 1.5)
    assert time.process_time() - cpu0 < 1.0  # no busy loop while closing
    assert stats.delivered == 0 and stats.left_in_spool == 0 and stats.spooled == 0
    assert stats.dropped_by_reason == {"spool_write_failed": 10}
    assert_accounted(delivery, metrics, stats, 10)
    spool_warnings = [r for r in caplog.records if "cannot write the spool" in r.getMessage()]
    assert len(spool_warnings) == 1  # throttled: not one per batch
    text = spool_warnings[0].getMessage()
    assert sink.id in text and ("ENOENT" in text or "ENOTDIR" in text), text
    assert not any(p in caplog.text for p in PRIVATE)
    if kind == "below_a_file":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no temp file left


def test_a_spool_that_fails_mid_run_keeps_what_it_holds_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    sink = DoubleSink(batch_max_rows=2, batch_timeout_secs=0.01)
    sink.up.clear()
    store = storage(tmp_path, shutdown_timeout_secs=0.2, retry_initial_secs=10.0)
    delivery, metrics = start(sink, store)
    delivery.submit(numbered(4))
    wait_until(lambda: delivery.spool.records == 4, what="two batches spooled")
    # the disk goes away under the spool: its folder can no longer take a file
    spool_dir = Path(delivery.spool.dir)
    moved = tmp_path / "moved"
    spool_dir.rename(moved)
    spool_dir.write_bytes(b"")  # a file where the folder was
    delivery.submit(numbered(6, start=4))
    wait_until(lambda: delivery.stats.dropped == 6, what="the new batches dropped")
    stats = close_within(delivery, 0.2 + 1.5)
    assert stats.dropped_by_reason == {"spool_write_failed": 6}
    assert stats.spooled == 4 and stats.left_in_spool == 4  # still known, still on disk
    assert_accounted(delivery, metrics, stats, 10)
    assert sorted(p.suffix for p in moved.iterdir()) == [".jsonl", ".jsonl"]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_an_unwritable_dead_letter_file_counts_the_refused_records_as_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, concurrency: int
) -> None:
    sink = DoubleSink(
        batch_max_rows=2,
        batch_timeout_secs=60.0,
        reject=lambda r: "data" if r["status"] == 999 else None,
    )
    sink.concurrency = concurrency
    recs = numbered(6)
    recs[3] = record(ts=recs[3]["ts"], bytes=3, status=999)  # the batch [2, 3] is refused
    store = storage(tmp_path, dead_letter_dir=unusable(tmp_path, "below_a_file"))
    with caplog.at_level(logging.WARNING, logger="sidecar.sinks.delivery"):
        delivery, metrics = start(sink, store)
        delivery.submit(recs)
        stats = close_within(delivery, 3.0 + 1.5)
    assert sorted(numbers(sink.delivered)) == [0, 1, 4, 5]  # delivery went on
    assert stats.dropped_by_reason == {"dead_letter_write_failed": 2}
    assert stats.dead_lettered == 0
    assert_accounted(delivery, metrics, stats, 6)
    assert "cannot write the dead-letter file (ENOTDIR)" in caplog.text
    assert not any(p in caplog.text for p in PRIVATE)


class HangingSink(DoubleSink):
    """A store that takes the connection and never answers (until `release` is set)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.release = threading.Event()
        self.entered = threading.Event()

    def write_batch(self, records: CleanBatch) -> None:
        self.entered.set()
        self.release.wait(30.0)
        super().write_batch(records)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_close_returns_in_time_when_the_store_hangs_and_counts_what_it_held(
    tmp_path: Path, concurrency: int
) -> None:
    # before: close() joined the delivery thread with no timeout: it hung as long as the store
    sink = HangingSink(batch_max_rows=2, batch_timeout_secs=0.01)
    sink.concurrency = concurrency
    shutdown = 0.3
    delivery, metrics = start(sink, storage(tmp_path, shutdown_timeout_secs=shutdown))
    delivery.submit(numbered(2))
    assert sink.entered.wait(5.0)
    for i in range(2, 12, 2):  # queued behind the write that hangs (the queue holds 8)
        delivery.submit(numbered(2, start=i))
    stats = close_within(delivery, shutdown + CLOSE_MARGIN_SECS + 0.5)
    try:
        assert stats.delivered == 0
        assert stats.dropped_by_reason.get("shutdown_timeout", 0) > 0
        assert_accounted(delivery, metrics, stats, 12)
    finally:
        sink.release.set()
    # what the store finally takes after close() gave up changes neither the stats returned
    # nor the counters: they were final
    wait_until(lambda: not delivery._thread.is_alive(), 10.0, "the delivery thread to end")
    assert sample(metrics, "sidecar_records_delivered_total", sink=sink.id) == 0
    assert_accounted(delivery, metrics, stats, 12)


def test_repeated_warnings_are_throttled_per_sink(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = DoubleSink(batch_max_rows=1, batch_timeout_secs=0.01)
    sink.up.clear()
    store = storage(tmp_path, spool_dir=unusable(tmp_path, "below_a_file"))
    with caplog.at_level(logging.WARNING, logger="sidecar.sinks.delivery"):
        delivery, metrics = start(sink, store)
        for i in range(30):
            delivery.submit(numbered(1, start=i))
        stats = delivery.close()
    assert stats.dropped_by_reason == {"spool_write_failed": 30}
    assert_accounted(delivery, metrics, stats, 30)
    # before: 30 "unavailable" lines and 30 tracebacks; now one line of each kind per 10 s
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("cannot write the spool" in m for m in messages) == 1


def test_the_spool_is_not_summed_per_replayed_batch(tmp_path: Path) -> None:
    """Replaying n batches costs O(n), not O(n**2): the spool keeps running totals."""
    # the next retry falls past the deadline: close() spools the rest and ends at once
    store = storage(tmp_path, retry_initial_secs=30.0, retry_max_secs=30.0)
    sink = DoubleSink(batch_max_rows=1, batch_timeout_secs=60.0)
    sink.up.clear()
    d1, _ = start(sink, store)
    d1.submit(numbered(200))
    assert d1.close().left_in_spool == 200
    spool = Spool(store.spool_dir + "/" + sink.id, 1 << 30, "drop_oldest")
    files = list(spool._files)
    spool._files = CountingDeque(files)  # counts full walks over the spool's files
    again = DoubleSink(batch_max_rows=1, batch_timeout_secs=60.0)
    d2 = Delivery(again, again.config, storage(tmp_path), Metrics())
    d2.spool = spool
    d2.start()
    stats = d2.close()
    assert stats.delivered == 200
    assert spool._files.walks < 10, spool._files.walks  # before: one walk per batch (and more)


class CountingDeque(collections.deque):
    walks = 0

    def __iter__(self):  # type: ignore[override]
        CountingDeque.walks += 1
        return super().__iter__()


# --- end to end: `sidecar pipe` with a store down and a spool that stops working ---------------
def test_pipe_with_an_unreachable_store_and_a_broken_spool_exits_on_sigterm(
    tmp_path: Path,
) -> None:
    """The spool folder is writable at start (the start check passes) and turned into a file
    once delivery runs; then SIGTERM: the process ends in time, the stats count every record."""
    spool = tmp_path / "spool"
    stats_path = tmp_path / "stats.json"
    config = tmp_path / "sidecar.toml"
    config.write_text(
        f'[storage]\nspool_dir = "{spool}"\ndead_letter_dir = "{tmp_path / "dl"}"\n'
        "shutdown_timeout_secs = 1.0\nretry_initial_secs = 0.05\n"
        '[geoip]\ndatabase = ""\n'
        '[[sinks]]\nurl = "clickhouse:http://127.0.0.1:9/?database=a&table=b"\nbatch_timeout_secs = 60.0\n'
        "timeout_secs = 1.0\n"
    )
    lines = b"".join(
        b'203.0.113.%d - - [24/Nov/2026:09:00:00 +0000] "GET /v/a/%d.ts HTTP/1.1" 200 10 '
        b'"-" "Mozilla/5.0"\n' % (i, i)
        for i in range(1, 41)
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "pipe", "--config", str(config),
         "--format", "combined", "--stats", str(stats_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=PROJECT,
    )  # fmt: skip
    try:
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write(lines)
        proc.stdin.flush()
        # the delivery thread is running once it reports the store down (ClickHouse's open()
        # connects at start)
        first = proc.stderr.readline()
        assert b"not available at start" in first, first
        if spool.is_dir():
            shutil.rmtree(spool)
        spool.write_bytes(b"")  # no folder can be made there any more
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert elapsed < 1.0 + CLOSE_MARGIN_SECS + 3.0, elapsed  # before: never (spinning)
    assert proc.returncode != 0  # terminated
    [sink_stats] = orjson.loads(stats_path.read_bytes())["sinks"].values()
    assert sink_stats["dropped_by_reason"] == {"spool_write_failed": 40}
    assert sink_stats["delivered"] == 0 and sink_stats["left_in_spool"] == 0
    assert b"DROPPED (spool write failed)" in err
    assert b"203.0.113" not in err and b"/v/a/" not in err


# --- offer: the daemon's hand-off (never blocks), acks, health, reconfigure -----------------
def offering(sink: DoubleSink, store, handoff_max_bytes: int = 1 << 20) -> tuple[Delivery, Metrics]:
    metrics = Metrics()
    delivery = Delivery(sink, sink.config, store, metrics, handoff_max_bytes=handoff_max_bytes)
    delivery.start()
    return delivery, metrics


@pytest.mark.parametrize("concurrency", [1, 3])
def test_offer_never_waits_on_a_hung_store_and_overflows_to_the_spool(
    tmp_path: Path, concurrency: int
) -> None:
    # before: submit() put into a queue of 8 chunks; a store that sleeps stalled the caller
    sink = HangingSink(batch_max_rows=10, batch_timeout_secs=0.01)
    sink.concurrency = concurrency
    one = CleanBatch.of(numbered(10))
    delivery, metrics = offering(sink, storage(tmp_path), handoff_max_bytes=3 * len(one.data))
    acked: list[int] = []
    delivery.offer(one, lambda: acked.append(0))
    assert sink.entered.wait(5.0)
    done = threading.Event()

    def offer_many() -> None:
        for i in range(1, 40):
            delivery.offer(CleanBatch.of(numbered(10, start=10 * i)), lambda i=i: acked.append(i))
        done.set()

    threading.Thread(target=offer_many, daemon=True).start()
    assert done.wait(10.0), "offer() waited on the hung store"
    assert delivery.overflowed > 0
    assert sample(metrics, "sidecar_records_overflowed_total", sink=sink.id) == delivery.overflowed
    assert delivery.spool.records >= delivery.overflowed  # overflow is spooled, not dropped
    overflowed_acks = len(acked)
    assert overflowed_acks > 0  # an overflowed batch is acked once it is in the spool
    sink.release.set()
    stats = delivery.close()
    assert stats.dropped == 0
    assert sorted(numbers(r for b in sink.batches for r in b)) == list(range(400))
    assert sorted(acked) == list(range(40))  # every ack fires, once


def test_an_ack_fires_once_its_records_are_delivered(tmp_path: Path) -> None:
    sink = DoubleSink(batch_max_rows=4, batch_timeout_secs=0.05)
    delivery, _ = offering(sink, storage(tmp_path))
    fired: list[str] = []
    delivery.offer(CleanBatch.of(numbered(3)), lambda: fired.append("a"))  # cut with b's first
    delivery.offer(CleanBatch.of(numbered(6, start=3)), lambda: fired.append("b"))  # two cuts
    wait_until(lambda: len(fired) == 2, what="both acks")
    assert fired == ["a", "b"]
    assert sum(map(len, sink.batches)) == 9  # b is acked only after its second part is stored
    delivery.offer(CleanBatch(b"", 0), lambda: fired.append("empty"))
    assert fired[-1] == "empty"  # nothing to deliver: acked at once
    delivery.close()


def test_an_ack_fires_when_its_records_are_spooled_and_health_says_why(tmp_path: Path) -> None:
    sink = DoubleSink(batch_max_rows=5, batch_timeout_secs=0.01)
    sink.up.clear()
    delivery, _ = offering(sink, storage(tmp_path, retry_initial_secs=5.0, retry_max_secs=5.0))
    assert delivery.health() is None
    fired = threading.Event()
    delivery.offer(CleanBatch.of(numbered(5)), fired.set)
    assert fired.wait(5.0)
    assert delivery.spool.records == 5
    assert delivery.health() == "the store did not take the last batch"
    delivery.close()


def test_health_flags_a_spool_over_90_percent(tmp_path: Path) -> None:
    batch = CleanBatch.of(numbered(50))
    store = storage(tmp_path, spool_max_bytes=max(1024, int(len(batch.data) / 0.95)))
    Spool(Path(store.spool_dir) / DoubleSink().id, 1 << 30, "drop_oldest").push(batch)
    sink = DoubleSink()
    sink.up.clear()
    delivery = Delivery(sink, sink.config, store, Metrics(), handoff_max_bytes=1 << 20)
    assert delivery.health() == "the spool is over 90 % of storage.spool_max_bytes"


def test_reconfigure_swaps_the_store_and_loses_nothing(tmp_path: Path) -> None:
    old = DoubleSink(batch_max_rows=1000, batch_timeout_secs=30.0)
    delivery, _ = offering(old, storage(tmp_path))
    delivery.offer(CleanBatch.of(numbered(5)))
    new = DoubleSink(batch_max_rows=1000, batch_timeout_secs=0.01)
    delivery.reconfigure(new, new.config)
    delivery.offer(CleanBatch.of(numbered(5, start=5)))
    wait_until(lambda: sum(map(len, new.batches)) == 5, what="the new store")
    assert numbers(old.batches[0]) == list(range(5)) and old.closed == 1 and new.opened == 1
    stats = delivery.close()
    assert stats.delivered == 10 and stats.dropped == 0


def test_a_spool_under_the_legacy_name_is_adopted_and_replayed(tmp_path: Path) -> None:
    from sidecar.sinks.base import legacy_sink_id

    store = storage(tmp_path)
    sink = DoubleSink(url="double:legacy")
    legacy = Spool(Path(store.spool_dir) / legacy_sink_id(sink.url), 1 << 30, "drop_oldest")
    legacy.push(CleanBatch.of(numbered(3)))
    assert sink.id != legacy_sink_id(sink.url)
    delivery, _ = start(sink, store)
    stats = delivery.close()
    assert stats.delivered == 3 and numbers(sink.batches[0]) == [0, 1, 2]
    assert not (Path(store.spool_dir) / legacy_sink_id(sink.url)).exists()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_batch_spooled_by_a_sender_is_retried_with_nothing_more_coming(
    tmp_path: Path, concurrency: int
) -> None:
    # before: with concurrency > 1 the failed batch was spooled on a sender thread while the
    # delivery thread waited on an empty queue with no timeout: the retry never came
    sink = DoubleSink(fail=1, batch_max_rows=5, batch_timeout_secs=0.01)
    sink.concurrency = concurrency
    delivery, _ = offering(sink, storage(tmp_path))
    delivery.offer(CleanBatch.of(numbered(5)))
    wait_until(lambda: sum(map(len, sink.batches)) == 5, what="the retry from the spool")
    assert delivery.health() is None
    delivery.close()


def test_sink_up_and_last_success_follow_the_store(tmp_path: Path) -> None:
    sink = DoubleSink(batch_max_rows=5, batch_timeout_secs=0.01)
    sink.up.clear()
    delivery, metrics = offering(sink, storage(tmp_path, retry_initial_secs=0.05))
    label = {"sink": sink.id}
    assert metrics.registry.get_sample_value("sidecar_sink_up", label) == 1  # until it fails
    assert metrics.registry.get_sample_value("sidecar_spool_max_bytes", label) > 0
    delivery.offer(CleanBatch.of(numbered(5)))
    wait_until(lambda: metrics.registry.get_sample_value("sidecar_sink_up", label) == 0)
    assert sample(metrics, "sidecar_sink_last_success_timestamp_seconds", **label) == 0
    before = time.time()
    sink.up.set()
    wait_until(lambda: metrics.registry.get_sample_value("sidecar_sink_up", label) == 1)
    assert sample(metrics, "sidecar_sink_last_success_timestamp_seconds", **label) >= before
    assert sample(metrics, "sidecar_queue_bytes", **label) == 0
    delivery.close()
