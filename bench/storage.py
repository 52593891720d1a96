"""Storage benchmarks: ClickHouse and SQLite sinks, and reports as data grows.

    .venv/bin/python bench/storage.py [--rows 1000000] [--report-rows 10000000]

1. ClickHouse (a real 18.16 server on loopback, started from a temporary directory):
   rows/s of sidecar's ClickHouse sink (the whole delivery path: batching, JSONEachRow,
   gzip, HTTP keep-alive) loading N clean records, against `clickhouse-client --query
   "INSERT ... FORMAT JSONEachRow"` loading the same records from a JSONL file, in the same run,
   into the same table. Target: >= 0.8x, with bounded memory.
2. SQLite: rows/s of the embedded sink (monthly tables, daily rollups), same records.
   Target: >= 100,000 rows/s.
3. Reports: each report table over 1M and 10M rows in SQLite (copies of the 1M records, one day
   each: 1 and 10 days); target <= 2 s per table; the growth from 1M to 10M is printed.

Clean records come from `sidecar pipe` over the generated log (bench/generate.py), cached in
bench/out/. Run from the repository root with the project's venv.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
OUT = BENCH / "out"
sys.path.insert(0, str(ROOT))

from sidecar import report  # noqa: E402
from sidecar.config import StorageConfig, sink_config  # noqa: E402
from sidecar.metrics import Metrics  # noqa: E402
from sidecar.record import SCHEMA, CleanBatch, CleanRecord  # noqa: E402
from sidecar.sinks.clickhouse import ClickHouseSink, encode  # noqa: E402
from sidecar.sinks.delivery import Delivery  # noqa: E402
from sidecar.sinks.registry import open_sink  # noqa: E402
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
    tmp = path.with_suffix(".tmp")
    gen = subprocess.Popen([sys.executable, str(BENCH / "generate.py"), "--lines", str(rows)],
                           stdout=subprocess.PIPE)  # fmt: skip
    with open(tmp, "wb") as out:
        pipe = subprocess.Popen([sys.executable, "-m", "sidecar", "pipe", "--workers", "2"],
                                stdin=gen.stdout, stdout=out, cwd=ROOT)  # fmt: skip
    gen.stdout.close()  # the pipe holds it now: generate.py gets SIGPIPE if the pipe dies
    if pipe.wait():
        raise SystemExit(f"sidecar pipe failed (exit {pipe.returncode})")
    if gen.wait():
        raise SystemExit("bench/generate.py failed")
    tmp.rename(path)
    return path


def load(path: Path) -> list[CleanRecord]:
    return [CleanRecord(orjson.loads(line)) for line in path.read_bytes().splitlines()]


def spread(records: list[CleanRecord], total: int) -> Iterator[list[CleanRecord]]:
    """`total` records in batches of 10,000: copies of `records`, a day each, over 30 days."""
    n = 0
    copy = 0
    while n < total:
        day = f"2026-10-{(copy % 30) + 1:02d}"
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


def deliver(sink, chunks: Iterable[CleanBatch], scratch: Path) -> float:
    """Seconds to push records through the whole delivery path, until the store confirmed."""
    storage = StorageConfig(spool_dir=str(scratch / "spool"), dead_letter_dir=str(scratch / "dead"))
    delivery = Delivery(sink, sink.config, storage, Metrics())
    started = time.perf_counter()
    delivery.start()
    total = 0
    for chunk in chunks:
        delivery.submit(chunk)
        total += chunk.count
    stats = delivery.close()
    seconds = time.perf_counter() - started
    assert stats.delivered == total and not stats.spooled, stats
    return seconds


def file_chunks(path: Path, summaries: list | None = None) -> Iterator[CleanBatch]:
    """The records file as `sidecar pipe` hands it to a sink: newline-aligned chunks of about
    1 MiB of input (here ~2.5k records), read from disk as they are sent."""
    with open(path, "rb") as fh:
        pending = b""
        i = 0
        while block := fh.read(1 << 20):
            pending += block
            cut = pending.rfind(b"\n") + 1
            data, pending = pending[:cut], pending[cut:]
            yield CleanBatch(data, data.count(b"\n"), summaries[i] if summaries else None)
            i += 1


def feed(url: str, path: Path, with_summaries: bool, scratch: Path) -> None:
    """Child process: load the records file into one sink; print seconds and peak RSS."""
    sink = open_sink(sink_config(url))
    summaries = None
    if with_summaries:  # computed by the pipeline's workers in `sidecar pipe`: ahead of time here
        summaries = [SqliteSink.summarize(c.records()) for c in file_chunks(path)]
    seconds = deliver(sink, file_chunks(path, summaries), scratch)
    print(orjson.dumps({"seconds": seconds, "maxrss_mib": rss_mib()}).decode())


def fed(url: str, path: Path, scratch: Path, with_summaries: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--feed", url, "--file", str(path), "--scratch", str(scratch)]
    out = subprocess.run(cmd + (["--summaries"] if with_summaries else []), capture_output=True,
                         check=True, cwd=ROOT)  # fmt: skip
    return orjson.loads(out.stdout.splitlines()[-1])


def bench_clickhouse(rows: int, path: Path, scratch: Path) -> None:
    print("\n== ClickHouse 18.16 (loopback): load the same clean records")
    with ClickHouse(scratch / "clickhouse") as ch:
        url = f"clickhouse:{ch.http_url}/?database=bench&table=requests"
        ClickHouseSink(sink_config(url)).init()
        table_jsonl = scratch / "rows.jsonl"  # what the table takes: the same bytes the sink sends
        with open(table_jsonl, "wb") as fh:
            for chunk in file_chunks(path):
                fh.write(encode(chunk))
        client = shutil.which("clickhouse-client") or "/usr/bin/clickhouse-client"
        seconds: dict[str, list[float]] = {"clickhouse-client": [], "sidecar clickhouse sink": []}
        rss = []
        for _ in range(3):  # interleaved rounds, fastest kept: the machine is shared and noisy
            ch.query("TRUNCATE TABLE bench.requests")
            started = time.perf_counter()
            with open(table_jsonl, "rb") as fh:
                subprocess.run([client, "--port", str(ch.tcp_port), "--query",
                                "INSERT INTO bench.requests FORMAT JSONEachRow"],
                               stdin=fh, check=True)  # fmt: skip
            seconds["clickhouse-client"].append(time.perf_counter() - started)
            assert int(ch.query("SELECT count() FROM bench.requests")) == rows
            ch.query("TRUNCATE TABLE bench.requests")
            result = fed(url, path, scratch)
            seconds["sidecar clickhouse sink"].append(result["seconds"])
            rss.append(result["maxrss_mib"])
            assert int(ch.query("SELECT count() FROM bench.requests")) == rows
        best = {name: min(times) for name, times in seconds.items()}
        for name, secs in best.items():
            runs = ", ".join(f"{t:.2f}" for t in seconds[name])
            print(f"  {name:26s} {secs:7.2f} s  {rows / secs:>10,.0f} rows/s   (runs {runs} s)")
        ratio = best["clickhouse-client"] / best["sidecar clickhouse sink"]
        print(f"  ratio sink / clickhouse-client: {ratio:.2f}x (target >= 0.8x) "
              f"{'ok' if ratio >= 0.8 else 'MISSED'}")  # fmt: skip
        print(f"  peak RSS of the sink's process: {max(rss):.0f} MiB (batches of up to 100k rows"
              " / 16 MiB, 3 in flight)")  # fmt: skip


def sqlite_cli_import(path: Path, scratch: Path) -> float | None:
    """A peer: the sqlite3 shell's `.import` of the same records as CSV (pure C, no rollups)."""
    shell = shutil.which("sqlite3")
    if shell is None:
        return None
    csv_path = scratch / "rows.csv"
    with open(csv_path, "w", newline="") as fh:
        out = csv.writer(fh)
        for chunk in file_chunks(path):
            for record in chunk.records():
                out.writerow(["" if v is None else v for v in record.values()])
    db = scratch / "cli.db"
    columns = ", ".join(f"{name} {'INTEGER' if kind == 'int' else 'TEXT'}"
                        for name, (kind, _, _) in SCHEMA.items())  # fmt: skip
    script = "\n".join(["PRAGMA journal_mode=WAL;", "PRAGMA synchronous=NORMAL;",
                        f"CREATE TABLE requests ({columns});",
                        f".import --csv {csv_path} requests", ""])  # fmt: skip
    started = time.perf_counter()
    subprocess.run([shell, str(db)], input=script.encode(), check=True, capture_output=True)
    return time.perf_counter() - started


def bench_sqlite(rows: int, path: Path, scratch: Path) -> None:
    print("\n== SQLite sink: load the same clean records")
    cli = sqlite_cli_import(path, scratch)
    if cli is not None:
        label = "sqlite3 shell .import (CSV, C, no rollups)"
        print(f"  {label} {cli:7.2f} s  {rows / cli:>10,.0f} rows/s  (a peer: SQLite alone)")
    for label, summaries in (("rollups from the pipeline", True), ("rollups in the sink", False)):
        results = [fed(f"sqlite:{scratch}/sqlite-{summaries}-{i}.db", path, scratch, summaries)
                   for i in range(2)]  # fmt: skip
        best = min(r["seconds"] for r in results)
        rate = rows / best
        target = f"(target >= 100,000) {'ok' if rate >= 100_000 else 'MISSED'}" if summaries else ""
        print(f"  sqlite sink, {label:27s} {best:7.2f} s  {rate:>10,.0f} rows/s, peak RSS "
              f"{max(r['maxrss_mib'] for r in results):.0f} MiB {target}")  # fmt: skip


def bench_reports(records: list[CleanRecord], sizes: list[int], scratch: Path) -> None:
    print(
        "\n== sidecar report over SQLite: copies of the records, a day each (target <= 2 s a table)"
    )
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
    p.add_argument("--feed", help=argparse.SUPPRESS)  # child mode: load --file into this sink URL
    p.add_argument("--file", help=argparse.SUPPRESS)
    p.add_argument("--scratch", help=argparse.SUPPRESS)
    p.add_argument("--summaries", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.feed:
        feed(args.feed, Path(args.file), args.summaries, Path(args.scratch))
        return 0
    path = clean_records(args.rows)
    rows = sum(c.count for c in file_chunks(path))
    print(f"{rows:,} clean records, {path.stat().st_size / 2**20:,.0f} MiB as JSONL")
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        scratch = Path(tmp)
        if "clickhouse" not in args.skip:
            bench_clickhouse(rows, path, scratch)
        if "sqlite" not in args.skip:
            bench_sqlite(rows, path, scratch)
        if "report" not in args.skip:
            bench_reports(load(path), [args.rows, args.report_rows], scratch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
