"""sqlite: monthly tables behind a view, daily rollups in the same transaction, WAL, retention."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import apsw
import orjson
import pytest

from sidecar.config import SinkConfig
from sidecar.record import FIELDS, SCHEMA_VERSION, CleanBatch, CleanRecord
from sidecar.sinks.base import SinkRejected, SinkUnavailable
from sidecar.sinks.sqlite import (
    DIMENSIONS,
    SqliteSink,
    content_of,
    month_cutoff,
    month_table,
    query,
    status_class,
)
from tests.sinks import numbered, record, varied


def open_sink(path: Path, **config: object) -> SqliteSink:
    sink = SqliteSink(SinkConfig(url=f"sqlite:{path}", **config))  # type: ignore[arg-type]
    sink.open()
    return sink


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SqliteSink]:
    s = open_sink(tmp_path / "analytics.db")
    yield s
    s.close()


def names(db: Path, kind: str) -> list[str]:
    conn = apsw.Connection(str(db))
    try:
        return sorted(
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (kind,))
        )
    finally:
        conn.close()


def rows(sink: SqliteSink, sql: str, params: tuple = ()) -> list[tuple]:
    return query(sink, sql, params)


def as_records(sink: SqliteSink, source: str) -> list[CleanRecord]:
    return [
        CleanRecord(zip(FIELDS, r, strict=True))
        for r in rows(sink, f"SELECT {', '.join(FIELDS)} FROM {source} ORDER BY ts, bytes")
    ]


def by_ts(records: list[CleanRecord]) -> list[CleanRecord]:
    return sorted(records, key=lambda r: (r["ts"], r["bytes"]))


# --- open -------------------------------------------------------------------------------------
def test_open_creates_the_tables_and_an_empty_view(sink: SqliteSink) -> None:
    db = sink.path
    assert names(db, "table") == ["daily", "meta"]
    assert names(db, "view") == ["requests"]
    assert rows(sink, "SELECT * FROM requests") == []
    assert [r[1] for r in rows(sink, "PRAGMA table_info(requests)")] == list(FIELDS)
    assert rows(sink, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert rows(sink, "PRAGMA journal_mode") == [("wal",)]


def test_a_missing_parent_directory_is_created(tmp_path: Path) -> None:
    db = tmp_path / "not" / "yet" / "there.db"
    s = open_sink(db)
    s.write([record()])
    s.close()
    assert db.is_file() and names(db, "table") == ["daily", "meta", "requests_2026_11"]


def test_init_is_idempotent_and_says_what_it_made(tmp_path: Path) -> None:
    s = open_sink(tmp_path / "a.db")
    s.write([record()])
    first = s.init()
    assert first == s.init()
    assert all(line.startswith(f"{s.path}: ") for line in first)
    assert any("daily" in line for line in first) and any("view requests" in line for line in first)
    assert rows(s, "SELECT count(*) FROM requests") == [(1,)]  # init keeps the data
    s.close()


def test_an_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a directory")
    s = SqliteSink(SinkConfig(url=f"sqlite:{tmp_path / 'file' / 'a.db'}"))
    with pytest.raises(SinkUnavailable, match="cannot open"):
        s.open()
    with pytest.raises(SinkUnavailable):
        s.write([record()])


# --- write -------------------------------------------------------------------------------------
def test_write_lands_in_the_month_table_and_reads_back_equal(sink: SqliteSink) -> None:
    recs = [
        *numbered(3),
        record(ts="2026-11-30T23:59:59.999Z", country=None, method=None, host=None, path=None, protocol=None,
               request_time=None, referrer_host=None, ua_browser=None, ua_os=None, ua_device=None, bytes=7),
        record(path="/ü/\"q\"/'x'", query="a=1&b=%20", user_agent="Mozilla/5.0 (X11)", request_time=1.5, bytes=9),
    ]  # fmt: skip
    sink.write(recs)
    assert names(sink.path, "table") == ["daily", "meta", "requests_2026_11"]
    assert as_records(sink, "requests_2026_11") == by_ts(recs)
    assert as_records(sink, "requests") == by_ts(recs)


@pytest.mark.parametrize(
    ("timestamps", "tables"),
    [
        (
            ["2026-10-31T23:59:59.999Z", "2026-11-01T00:00:00.000Z"],
            ["requests_2026_10", "requests_2026_11"],
        ),
        (
            ["2025-12-31T23:59:59.000Z", "2026-01-01T00:00:00.000Z"],
            ["requests_2025_12", "requests_2026_01"],
        ),
        (["2026-02-28T12:00:00.000Z", "2026-02-01T00:00:00.000Z"], ["requests_2026_02"]),
    ],
)
def test_a_batch_spanning_months_lands_in_one_table_per_month(
    sink: SqliteSink, timestamps: list[str], tables: list[str]
) -> None:
    recs = [record(ts=ts, bytes=i) for i, ts in enumerate(timestamps)]
    sink.write(recs)
    assert [t for t in names(sink.path, "table") if t.startswith("requests_")] == tables
    for table in tables:
        expect = [r for r in recs if month_table(r["ts"]) == table]
        assert as_records(sink, table) == by_ts(expect)
    assert as_records(sink, "requests") == by_ts(recs)  # the view shows every month


def test_a_new_sink_sees_every_month_in_the_view(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    a = open_sink(db)
    a.write(
        [
            record(ts="2026-10-01T00:00:00.000Z", bytes=1),
            record(ts="2026-11-01T00:00:00.000Z", bytes=2),
        ]
    )
    a.close()
    b = open_sink(db)
    assert [r["bytes"] for r in as_records(b, "requests")] == [1, 2]
    b.close()


def test_the_view_follows_months_created_by_another_sink(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    a, b = open_sink(db), open_sink(db)  # two writers on one database (two processes, say)
    a.write([record(ts="2026-10-01T00:00:00.000Z", bytes=1)])  # a creates October
    b.write(
        [record(ts="2026-11-01T00:00:00.000Z", bytes=2)]
    )  # b creates November, rebuilds the view
    got = [r["bytes"] for r in as_records(b, "requests")]
    a.close()
    b.close()
    assert got == [1, 2]  # got [2]: October's row is stored but missing from the view


def test_a_failed_batch_stores_nothing(sink: SqliteSink) -> None:
    sink.write([record(ts="2026-10-05T00:00:00.000Z")])
    sink.conn.execute("CREATE TABLE requests_2026_12 (ts TEXT, client_ip TEXT)")  # type: ignore[union-attr]
    before = rows(sink, "SELECT * FROM daily ORDER BY day, dimension, key")
    batch = [record(ts="2026-11-05T00:00:00.000Z"), record(ts="2026-12-05T00:00:00.000Z")]
    with pytest.raises(SinkRejected):
        sink.write(batch)
    assert rows(sink, "SELECT * FROM daily ORDER BY day, dimension, key") == before
    assert "requests_2026_11" not in names(sink.path, "table")  # November's insert rolled back too
    sink.write([record(ts="2026-11-06T00:00:00.000Z")])  # and the sink goes on
    assert rows(sink, "SELECT count(*) FROM requests_2026_11") == [(1,)]


# --- rollups -----------------------------------------------------------------------------------
def expected_rollups(records: list[CleanRecord]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """The `daily` table computed here, in Python, from the records."""
    out: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in records:
        day = r["ts"][:10]
        keys = {
            "total": "",
            "country": r["country"] or "",
            "content": content_of(r["path"]) or "",
            "referrer_host": r["referrer_host"] or "",
            "status_class": status_class(r["status"]),
            "ua_browser": r["ua_browser"] or "",
        }
        for dim, key in keys.items():
            cell = out[day, dim, key]
            cell[0] += 1
            if dim in ("total", "country", "content"):
                cell[1] += r["bytes"]
    return {k: (n, b) for k, (n, b) in out.items()}


def test_rollups_equal_counts_computed_from_the_records(sink: SqliteSink) -> None:
    recs = varied(700)
    for i in range(0, len(recs), 123):  # several batches: the upserts add up
        sink.write(recs[i : i + 123])
    got = {
        (d, dim, k): (n, b)
        for d, dim, k, n, b in rows(sink, "SELECT day, dimension, key, requests, bytes FROM daily")
    }
    assert got == expected_rollups(recs)
    assert {dim for _, dim, _ in got} == set(DIMENSIONS)
    # the same numbers from the raw rows, by SQL
    per_day = rows(
        sink, "SELECT substr(ts, 1, 10), count(*), sum(bytes) FROM requests GROUP BY 1 ORDER BY 1"
    )
    assert per_day == sorted((d, n, b) for (d, dim, _), (n, b) in got.items() if dim == "total")
    # counted-only dimensions carry no bytes
    assert all(
        b == 0
        for (_, dim, _), (_, b) in got.items()
        if dim in ("referrer_host", "status_class", "ua_browser")
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (200, "2xx"),
        (206, "2xx"),
        (304, "3xx"),
        (404, "4xx"),
        (599, "5xx"),
        (100, "1xx"),
        (99, "other"),
        (600, "other"),
        (0, "other"),
        (999, "other"),
    ],
)
def test_status_class(status: int, cls: str) -> None:
    assert status_class(status) == cls


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/v/abc/seg-1.m4s", "/v/abc/"),  # media segment -> its folder
        ("/v/abc/master.m3u8", "/v/abc/"),
        ("/v/abc/MASTER.M3U8", "/v/abc/"),  # suffix case does not matter
        ("/v/abc/720p/chunk-00001.ts", "/v/abc/720p/"),
        ("/v/abc/init.mp4", "/v/abc/"),
        ("/v/abc/manifest.mpd", "/v/abc/"),
        ("/v/abc/subs.vtt", "/v/abc/"),
        ("/audio/track.mp3", "/audio/"),
        ("/clip.webm", "/"),  # media at the root -> "/"
        ("seg.ts", "/"),  # no slash at all -> "/"
        ("/index.html", "/index.html"),  # other paths unchanged
        ("/v/abc/", "/v/abc/"),
        ("/v/abc/player.js", "/v/abc/player.js"),
        ("/v/abc/file.tsx", "/v/abc/file.tsx"),  # not a media suffix, though it starts like one
        ("/v/abc/seg.ts.json", "/v/abc/seg.ts.json"),
        ("/", "/"),
        ("", ""),
        (None, None),
    ],
)
def test_content_of(path: str | None, content: str | None) -> None:
    assert content_of(path) == content


def test_content_rollup_groups_segments_by_folder(sink: SqliteSink) -> None:
    sink.write([
        record(path="/v/abc/seg-1.m4s", bytes=10),
        record(path="/v/abc/seg-2.m4s", bytes=20),
        record(path="/v/abc/master.m3u8", bytes=1),
        record(path="/index.html", bytes=5),
    ])  # fmt: skip
    got = rows(
        sink, "SELECT key, requests, bytes FROM daily WHERE dimension = 'content' ORDER BY key"
    )
    assert got == [("/index.html", 1, 5), ("/v/abc/", 3, 31)]


# --- retention -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("months", "today", "cutoff"),
    [
        (1, date(2026, 3, 15), "2026-03-01"),
        (2, date(2026, 3, 1), "2026-02-01"),
        (3, date(2026, 1, 31), "2025-11-01"),  # across the year
        (12, date(2026, 12, 31), "2026-01-01"),
        (13, date(2026, 1, 1), "2025-01-01"),
        (25, date(2026, 3, 15), "2024-03-01"),
    ],
)
def test_month_cutoff(months: int, today: date, cutoff: str) -> None:
    assert month_cutoff(months, today) == cutoff


def test_prune_drops_old_months_and_rollups_and_keeps_the_current_ones(sink: SqliteSink) -> None:
    months = ["2024-01-10", "2024-06-10", "2025-12-31", "2026-01-01", "2026-02-14"]
    for i, day in enumerate(months):
        sink.write([record(ts=f"{day}T12:00:00.000Z", bytes=i)])
    today = date(2026, 2, 15)
    assert month_cutoff(2, today) == "2026-01-01"
    [message] = sink.prune(2, today=today)
    assert (
        "dropped 3 monthly tables (requests_2024_01, requests_2024_06, requests_2025_12)" in message
    )
    assert "keeping 2026-01 and later" in message
    assert [t for t in names(sink.path, "table") if t.startswith("requests_")] == [
        "requests_2026_01",
        "requests_2026_02",
    ]
    assert [r["bytes"] for r in as_records(sink, "requests")] == [3, 4]
    assert {d for (d,) in rows(sink, "SELECT DISTINCT day FROM daily")} == {
        "2026-01-01",
        "2026-02-14",
    }
    # nothing more to drop the second time; writing goes on
    assert (
        "dropped 0 monthly tables (none) and 0 daily rollup rows" in sink.prune(2, today=today)[0]
    )
    sink.write([record(ts="2026-02-15T00:00:00.000Z", bytes=5)])
    assert [r["bytes"] for r in as_records(sink, "requests")] == [3, 4, 5]


# --- concurrency ---------------------------------------------------------------------------------
@pytest.mark.parametrize("opened_before_the_lock", [True, False])
def test_a_database_locked_by_another_connection_is_unavailable(
    tmp_path: Path, opened_before_the_lock: bool
) -> None:
    db = tmp_path / "a.db"
    open_sink(db).close()  # created, in WAL mode
    s = (
        open_sink(db, timeout_secs=0.05)
        if opened_before_the_lock
        else SqliteSink(SinkConfig(url=f"sqlite:{db}", timeout_secs=0.05))
    )
    locker = apsw.Connection(str(db))  # the sink's own SQLite: one library per process
    locker.execute("BEGIN EXCLUSIVE")
    t0 = time.monotonic()
    with pytest.raises(SinkUnavailable, match="locked"):
        s.write([record()])
    assert time.monotonic() - t0 < 2.0  # timeout_secs, not forever
    locker.execute("ROLLBACK")
    locker.close()
    s.write([record()])  # the same sink works once the lock is gone
    assert rows(s, "SELECT count(*) FROM requests") == [(1,)]
    s.close()


def test_a_long_reader_does_not_block_writes(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    s = open_sink(db, timeout_secs=0.05)
    s.write([record(bytes=1)])
    reader = apsw.Connection(str(db))  # the sink's own SQLite: one library per process
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM requests").fetchone() == (1,)  # holds a snapshot
    s.write([record(bytes=2)])  # within timeout_secs=0.05: not blocked
    s.write([record(ts="2026-12-01T00:00:00.000Z", bytes=3)])  # even creating a new month table
    assert reader.execute("SELECT count(*) FROM requests_2026_11").fetchone() == (
        1,
    )  # still its snapshot
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM requests").fetchone() == (3,)
    reader.close()
    s.close()


# --- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE requests_2026_11 (ts TEXT, client_ip TEXT)",  # most columns missing
        "CREATE TABLE requests_2026_11 ({columns})",  # user_agent renamed
    ],
)
def test_schema_drift_is_refused_with_reason_schema(tmp_path: Path, ddl: str) -> None:
    from sidecar.sinks.sqlite import _columns

    s = open_sink(tmp_path / "a.db")
    s.conn.execute(ddl.format(columns=_columns().replace("user_agent TEXT", "agent TEXT")))  # type: ignore[union-attr]
    with pytest.raises(SinkRejected) as err:
        s.write([record()])
    assert err.value.reason == "schema"
    assert "no column" in str(err.value)
    s.close()


@pytest.mark.parametrize("value", [2**63, 2**64 - 1])
def test_a_value_sqlite_cannot_store_is_refused_as_data(sink: SqliteSink, value: int) -> None:
    with pytest.raises(
        SinkRejected
    ) as err:  # got: OverflowError: Python int too large to convert to SQLite INTEGER
        sink.write([record(bytes=1), record(bytes=value)])
    assert err.value.reason == "data"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b'{"ts":"2026-11-02T10:00:00.000Z"}', "without the field"),  # fields missing
        (b'{"ts":"2026-11-02T10:00:00.000Z","client_ip":', "JSONDecodeError"),  # cut short
        (orjson.dumps(record(ts="x; DROP TABLE daily; --")), "YYYY-MM"),  # refused, not spliced
        (orjson.dumps(record(ts="2026-1x-01T00:00:00.000Z")), "YYYY-MM"),
        (orjson.dumps({**record(), "host": {"a": 1}}), "TypeError"),  # a value of no column type
        (b"[1,2]", "TypeError"),
    ],
)
@pytest.mark.parametrize("summed_by", ["pipeline", "sink"])
def test_a_line_that_is_no_clean_record_is_refused_as_data_and_nothing_stored(
    sink: SqliteSink, line: bytes, says: str, summed_by: str
) -> None:
    good = orjson.dumps(record()) + b"\n"
    batch = CleanBatch(good + line + b"\n", 2, [] if summed_by == "pipeline" else None)
    with pytest.raises(SinkRejected) as err:
        sink.write_batch(batch)
    assert err.value.reason == "data"
    if summed_by == "pipeline":  # the sink's own rollup may trip over the line first
        assert says in str(err.value)
    assert rows(sink, "SELECT count(*) FROM requests") == [(0,)]
    assert rows(sink, "SELECT count(*) FROM daily") == [(0,)]
    assert names(sink.path, "table") == ["daily", "meta"]  # no month table left behind


def test_query_of_a_missing_table_is_refused(sink: SqliteSink) -> None:
    with pytest.raises(SinkRejected) as err:
        query(sink, "SELECT * FROM requests_1999_01")
    assert err.value.reason == "schema"


def test_rollups_for_a_large_batch_match(sink: SqliteSink) -> None:
    recs = varied(5000, seed=3)
    sink.write(recs)
    assert rows(sink, "SELECT count(*) FROM requests") == [(5000,)]
    totals = Counter(r["ts"][:10] for r in recs)
    assert dict(rows(sink, "SELECT day, requests FROM daily WHERE dimension = 'total'")) == dict(
        totals
    )
