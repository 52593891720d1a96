"""Storage benchmarks: ClickHouse and SQLite sinks, and reports as data grows.

    .venv/bin/python bench/storage.py [--rows 1000000] [--report-rows 10000000]

1. ClickHouse (a real 18.16 server on loopback, started from a temporary directory):
   rows/s of sidecar's ClickHouse sink (the whole delivery path: batching, JSONEachRow,
   gzip, HTTP keep-alive) loading N clean records, against `clickhouse-client --query
   "INSERT ... FORMAT JSONEachRow"` loading the same records from a JSONL file, in the same run,
   into the same table. Target: >= 0.8x, with bounded memory.
2. SQLite: rows/s of the embedded sink (monthly tables, daily rollups), same records.
   Target: >= 100,000 rows/s.
3. Reports: each report table over 1M and 10M rows in SQLite (rows spread over 30 days);
   target <= 2 s per table; the growth from 1M to 10M is printed.

Clean records come from `sidecar pipe` over the generated log (bench/generate.py), cached in
bench/out/. Run from the repository root with the project's venv.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
OUT = BENCH / "out"
sys.path.insert(0, str(ROOT))

from sidecar import report  # noqa: E402
from sidecar.config import StorageConfig, sink_config  # noqa: E402
from sidecar.metrics import Metrics  # noqa: E402
from sidecar.record import CleanBatch, CleanRecord  # noqa: E402
from sidecar.sinks.clickhouse import ClickHouseSink, to_row  # noqa: E402
from sidecar.sinks.delivery import Delivery  # noqa: E402
from sidecar.sinks.sqlite import SqliteSink  # noqa: E402
from tests.e2e.clickhouse import ClickHouse  # noqa: E402


def clean_records(rows: int) -> Path:
    """JSONL of `rows` clean records: `sidecar pipe` over the generated log (cached)."""
    OUT.mkdir(exist_ok=True)
    version = hashlib.sha256((BENCH / "generate.py").read_bytes()).hexdigest()[:8]
    path = OUT / f"records-{rows}-{version}.jsonl"
    if path.exists():
        return path
    print(f"making {rows:,} clean records with sidecar pipe ...", flush=True)
    gen = subprocess.Popen([sys.executable, str(BENCH / "generate.py"), "--lines", str(rows)],
                           stdout=subprocess.PIPE)  # fmt: skip
    with open(path.with_suffix(".tmp"), "wb") as out:
        subprocess.run([sys.executable, "-m", "sidecar", "pipe", "--workers", "2"],
                       stdin=gen.stdout, stdout=out, check=True, cwd=ROOT)  # fmt: skip
    gen.wait()
    path.with_suffix(".tmp").rename(path)
    return path


def load(path: Path) -> list[CleanRecord]:
    return [CleanRecord(orjson.loads(line)) for line in path.read_bytes().splitlines()]


def spread(records: list[CleanRecord], total: int, days: int = 30) -> Iterator[list[CleanRecord]]:
    """`total` records in batches of 10,000: copies of `records` shifted over `days` days."""
    n = 0
    copy = 0
    while n < total:
        day = f"2026-10-{(copy % days) + 1:02d}" if days <= 31 else "2026-10-01"
        for i in range(0, len(records), 10000):
            batch = []
            for r in records[i : i + 10000]:
                if n >= total:
                    break
                shifted = CleanRecord(r)
                shifted["ts"] = day + r["ts"][10:]
                batch.append(shifted)
                n += 1
            if batch:
                yield batch
        copy += 1


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def chunks_of(jsonl: bytes, lines: int = 2500) -> list[CleanBatch]:
    """The records as the pipeline hands them over: CleanBatches of a chunk's lines."""
    rows = jsonl.splitlines(keepends=True)
    return [CleanBatch(b"".join(rows[i : i + lines]), len(rows[i : i + lines]))
            for i in range(0, len(rows), lines)]  # fmt: skip


def deliver(sink, chunks: list[CleanBatch], scratch: Path) -> float:
    """Seconds to push records through the whole delivery path, until the store confirmed."""
    storage = StorageConfig(spool_dir=str(scratch / "spool"), dead_letter_dir=str(scratch / "dead"))
    delivery = Delivery(sink, sink.config, storage, Metrics())
    total = sum(c.count for c in chunks)
    started = time.perf_counter()
    delivery.start()
    for chunk in chunks:
        delivery.submit(chunk)
    stats = delivery.close()
    seconds = time.perf_counter() - started
    assert stats.delivered == total and not stats.spooled, stats
    return seconds


def bench_clickhouse(records: list[CleanRecord], chunks: list[CleanBatch], scratch: Path) -> None:
    print("\n== ClickHouse 18.16 (loopback): load the same clean records")
    ch = ClickHouse(scratch / "clickhouse")
    ch.start()
    try:
        url = f"clickhouse:{ch.http_url}/?database=bench&table=requests"
        sink = ClickHouseSink(sink_config(url))
        sink.init()
        table_jsonl = scratch / "rows.jsonl"  # what the table takes: the same bytes the sink sends
        with open(table_jsonl, "wb") as fh:
            for r in records:
                fh.write(orjson.dumps(to_row(r), option=orjson.OPT_APPEND_NEWLINE))
        client = shutil.which("clickhouse-client") or "/usr/bin/clickhouse-client"
        results = {"clickhouse-client": [], "sidecar clickhouse sink": []}
        for _ in range(2):
            ch.query("TRUNCATE TABLE bench.requests")
            started = time.perf_counter()
            with open(table_jsonl, "rb") as fh:
                subprocess.run([client, "--port", str(ch.tcp_port), "--query",
                                "INSERT INTO bench.requests FORMAT JSONEachRow"],
                               stdin=fh, check=True)  # fmt: skip
            results["clickhouse-client"].append(time.perf_counter() - started)
            assert int(ch.query("SELECT count() FROM bench.requests")) == len(records)
            ch.query("TRUNCATE TABLE bench.requests")
            before = rss_mib()
            results["sidecar clickhouse sink"].append(deliver(ClickHouseSink(sink_config(url)),
                                                             chunks, scratch))  # fmt: skip
            assert int(ch.query("SELECT count() FROM bench.requests")) == len(records)
        best = {name: min(times) for name, times in results.items()}
        for name, seconds in best.items():
            print(f"  {name:26s} {seconds:7.2f} s  {len(records) / seconds:>10,.0f} rows/s")
        ratio = best["clickhouse-client"] / best["sidecar clickhouse sink"]
        print(f"  ratio sink / clickhouse-client: {ratio:.2f}x (target >= 0.8x) "
              f"{'ok' if ratio >= 0.8 else 'MISSED'}")  # fmt: skip
        print(f"  peak RSS of this process: {rss_mib():.0f} MiB (was {before:.0f} MiB before the "
              "sink ran; the records themselves are held in memory by the benchmark)")  # fmt: skip
    finally:
        ch.stop()


def bench_sqlite(records: list[CleanRecord], chunks: list[CleanBatch], scratch: Path) -> None:
    print("\n== SQLite sink: load the same clean records")
    # as `sidecar pipe` hands them over: each chunk with its daily rollup, computed by the
    # pipeline's workers while they scrub (SqliteSink.summarize)
    summed = [
        CleanBatch(
            c.data, c.count, SqliteSink.summarize([orjson.loads(x) for x in c.data.splitlines()])
        )
        for c in chunks
    ]
    for label, feed in (("rollups from the pipeline", summed), ("rollups in the sink", chunks)):
        times = []
        for attempt in range(2):
            db = scratch / f"sqlite-{label[0:4]}-{attempt}.db"
            times.append(deliver(SqliteSink(sink_config(f"sqlite:{db}")), feed, scratch))
        best = min(times)
        rate = len(records) / best
        target = f"(target >= 100,000) {'ok' if rate >= 100_000 else 'MISSED'}"
        print(f"  sqlite sink, {label:27s} {best:7.2f} s  {rate:>10,.0f} rows/s "
              f"{target if feed is summed else ''}")  # fmt: skip


def bench_reports(records: list[CleanRecord], sizes: list[int], scratch: Path) -> None:
    print("\n== sidecar report over SQLite, rows spread over 30 days (target <= 2 s per table)")
    timings: dict[int, dict[str, float]] = {}
    for size in sizes:
        db = scratch / f"report-{size}.db"
        sink = SqliteSink(sink_config(f"sqlite:{db}"))
        started = time.perf_counter()
        for batch in spread(records, size):
            sink.write(CleanBatch.of(batch))
        load_secs = time.perf_counter() - started
        timings[size] = {}
        for name, run in report.DIALECTS["sqlite"].items():
            best = min(_timed(run, sink) for _ in range(3))
            timings[size][name] = best
        sink.close()
        print(f"  {size:>12,} rows loaded in {load_secs:.0f} s ({size / load_secs:,.0f} rows/s), "
              f"database {db.stat().st_size / 2**20:,.0f} MiB")  # fmt: skip
    print("  table          " + "".join(f"{s:>14,}" for s in sizes) + "   growth")
    for name in report.DIALECTS["sqlite"]:
        cells = "".join(f"{timings[s][name] * 1000:>12.1f}ms" for s in sizes)
        growth = timings[sizes[-1]][name] / max(timings[sizes[0]][name], 1e-9)
        ok = all(timings[s][name] <= 2.0 for s in sizes)
        print(f"  {name:14s} {cells}   {growth:5.1f}x {'ok' if ok else 'MISSED'}")


def _timed(run, sink) -> float:
    started = time.perf_counter()
    run(sink, "2026-10-01", 10)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--report-rows", type=int, default=10_000_000)
    p.add_argument(
        "--skip", action="append", default=[], choices=("clickhouse", "sqlite", "report")
    )
    args = p.parse_args(argv)
    path = clean_records(args.rows)
    records = load(path)
    chunks = chunks_of(path.read_bytes())
    size = sum(c.data.__len__() for c in chunks) / 2**20
    print(f"{len(records):,} clean records, {size:,.0f} MiB as JSONL")
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        scratch = Path(tmp)
        if "clickhouse" not in args.skip:
            bench_clickhouse(records, chunks, scratch)
        if "sqlite" not in args.skip:
            bench_sqlite(records, chunks, scratch)
        if "report" not in args.skip:
            bench_reports(records, [args.rows, args.report_rows], scratch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
