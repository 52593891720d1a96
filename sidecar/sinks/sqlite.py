"""`sqlite:PATH`: the embedded default store. No server, no setup: tables are created on open.

- Raw records go to one table per month, `requests_YYYY_MM` (a view `requests` unites them), so
  retention drops whole months at once (`DROP TABLE`), as ClickHouse drops partitions.
- WAL mode (a reader never blocks the writer), one transaction per batch, rows bound from
  a generator by `apsw`'s `executemany` (C): 1.7x the rows/s of the standard library's
  `sqlite3` with SQLite 3.40 filling the columns by `json_extract` (bench/README.md). apsw also
  brings a current SQLite of its own, whatever the system has.
- Daily rollups (`daily`: day, dimension, key -> requests, bytes) are maintained in the same
  transaction, so every report reads a few thousand rollup rows, never the raw tables.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path

import apsw
import orjson

from sidecar.config import SinkConfig
from sidecar.record import FIELDS, SCHEMA, SCHEMA_VERSION, CleanBatch, CleanRecord
from sidecar.sinks.base import Sink, SinkRejected, SinkUnavailable

_TYPES = {"int": "INTEGER NOT NULL", "float|null": "REAL", "string": "TEXT NOT NULL"}
MEDIA_SUFFIXES = (".m4s", ".ts", ".mp4", ".m4a", ".m4v", ".aac", ".vtt", ".webvtt", ".cmfv",
                  ".cmfa", ".mpd", ".m3u8", ".key", ".init", ".fmp4", ".webm", ".mp3")  # fmt: skip
#: the rollup dimensions, as `rollup` writes them; the first three also sum bytes
DIMENSIONS = ("total", "country", "content", "referrer_host", "status_class", "ua_browser")
_MONTH_TABLE = re.compile(r"^requests_(\d{4})_(\d{2})$")


@lru_cache(maxsize=65536)
def content_of(path: str | None) -> str | None:
    """The content a request belongs to: a media file's folder (`/v/abc/`), else the path."""
    if not path:
        return path
    if path.lower().endswith(MEDIA_SUFFIXES):
        return path[: path.rfind("/") + 1] or "/"
    return path


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def rollup(records: Sequence[CleanRecord]) -> list[tuple[str, str, str, int, int]]:
    """The daily rollup rows of a batch: (day, dimension, key, requests, bytes)."""
    days = [r["ts"][:10] for r in records]
    sizes = [r["bytes"] for r in records]
    out: list[tuple[str, str, str, int, int]] = []

    def summed(dimension: str, keys: list[str]) -> None:
        pairs = list(zip(days, keys, strict=True))
        volume: defaultdict[tuple[str, str], int] = defaultdict(int)
        for pair, size in zip(pairs, sizes, strict=True):
            volume[pair] += size
        out.extend((d, dimension, k, n, volume[d, k]) for (d, k), n in Counter(pairs).items())

    def counted(dimension: str, keys: list[str]) -> None:  # counting only runs in C
        out.extend(
            (d, dimension, k, n, 0) for (d, k), n in Counter(zip(days, keys, strict=True)).items()
        )

    summed("total", [""] * len(records))
    summed("country", [r["country"] or "" for r in records])
    summed("content", [content_of(r["path"]) or "" for r in records])
    counted("referrer_host", [r["referrer_host"] or "" for r in records])
    counted("status_class", [status_class(r["status"]) for r in records])
    counted("ua_browser", [r["ua_browser"] or "" for r in records])
    return out


def month_table(ts: str) -> str:
    """The table of the month `ts` starts with; one that names no month is refused, never
    spliced into SQL."""
    table = f"requests_{ts[:4]}_{ts[5:7]}"
    if not _MONTH_TABLE.match(table):
        raise ValueError(f"ts does not start with YYYY-MM: {ts[:7]!r}")
    return table


def _of_month(month: str, first: dict, rest: Iterator[dict], later: list[dict]) -> Iterator[dict]:
    """`first` and the records of `rest` in `month`; the others are put aside in `later`."""
    yield first
    for r in rest:
        if r["ts"][:7] == month:
            yield r
        else:
            later.append(r)


#: a record's values in column order; a record without a field raises KeyError
_ROW = itemgetter(*FIELDS)


def _columns() -> str:
    return ",\n  ".join(f"{name} {_TYPES.get(f.type, 'TEXT')}" for name, f in SCHEMA.items())


_DDL = (
    "CREATE TABLE IF NOT EXISTS daily (day TEXT NOT NULL, dimension TEXT NOT NULL, "
    "key TEXT NOT NULL, requests INTEGER NOT NULL, bytes INTEGER NOT NULL, "
    "PRIMARY KEY (day, dimension, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_UPSERT = (
    "INSERT INTO daily (day, dimension, key, requests, bytes) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (day, dimension, key) DO UPDATE SET requests = requests + excluded.requests, "
    "bytes = bytes + excluded.bytes"
)


#: the store cannot take anything now: retried, spooled meanwhile
_UNAVAILABLE = (
    apsw.BusyError, apsw.LockedError, apsw.CantOpenError, apsw.IOError,
    apsw.ReadOnlyError, apsw.FullError, apsw.PermissionsError, apsw.NoMemError,
)  # fmt: skip
#: the store refused these rows: dead-lettered
_DATA = (apsw.ConstraintError, apsw.MismatchError, apsw.TooBigError, apsw.BindingsError,
         apsw.RangeError, KeyError, TypeError, OverflowError, ValueError)  # fmt: skip


def _classify(exc: Exception) -> Exception:
    text = str(exc) if not isinstance(exc, KeyError) else f"a record without the field {exc}"
    message = f"sqlite: {type(exc).__name__}: {text}"
    if isinstance(exc, _UNAVAILABLE):
        return SinkUnavailable(message)
    if "no column" in text or "no such table" in text:  # also "has no column named"
        return SinkRejected(message, "schema")
    if isinstance(exc, _DATA):
        return SinkRejected(message, "data")
    return SinkRejected(message, "other")


class SqliteSink(Sink):
    scheme = "sqlite"
    queryable = True

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.path = Path(config.url.partition(":")[2])
        self.conn: apsw.Connection | None = None
        self._months: set[str] = set()
        marks = ", ".join("?" * len(FIELDS))
        self._insert = f"INSERT INTO {{table}} ({', '.join(FIELDS)}) VALUES ({marks})"

    summarize = staticmethod(rollup)  # the pipeline's workers may compute it ahead

    # --- connection and schema ---------------------------------------------------------------
    def open(self) -> None:
        if self.conn is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = apsw.Connection(str(self.path))  # autocommit; transactions are explicit
            conn.set_busy_timeout(int(self.config.timeout_secs * 1000))
            conn.execute("PRAGMA page_size=16384")  # a new file only; fewer pages per batch
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: a 100k-row batch stays in cache
            self._create(conn)
        except (apsw.Error, OSError) as exc:
            raise SinkUnavailable(f"sqlite: cannot open {self.path}: {exc}") from None
        self.conn = conn

    def _create(self, conn: apsw.Connection) -> None:
        for statement in _DDL:
            conn.execute(statement)
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))  # fmt: skip
        self._months = _month_tables(conn)
        self._create_view(conn)

    def _create_view(self, conn: apsw.Connection) -> None:
        conn.execute("DROP VIEW IF EXISTS requests")
        if self._months:
            union = " UNION ALL ".join(f"SELECT * FROM {t}" for t in sorted(self._months))
        else:  # no data yet: an empty view of the right shape
            union = "SELECT " + ", ".join(f"NULL AS {f}" for f in FIELDS) + " WHERE 0"
        conn.execute(f"CREATE VIEW requests AS {union}")

    def _month(self, conn: apsw.Connection, table: str) -> None:
        if table not in self._months:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (\n  {_columns()}\n)")
            # months another writer added count too: the view is built from the file itself
            self._months = _month_tables(conn) | {table}
            self._create_view(conn)

    def init(self, retention_months: int = 25) -> list[str]:
        """Create the tables (done on open); retention is applied by `prune`."""
        self.open()
        return [f"{self.path}: {what}" for what in ("table daily (rollups)", "table meta",
                                                     "view requests")]  # fmt: skip

    # --- writing -----------------------------------------------------------------------------
    def write_batch(self, batch: CleanBatch) -> None:
        self.open()
        conn = self.conn
        assert conn is not None
        lines = batch.data.splitlines()
        try:
            if batch.summary is not None:  # rows are parsed as SQLite takes them: no list of dicts
                summary, records = batch.summary, map(orjson.loads, lines)
            else:
                records = [orjson.loads(line) for line in lines]
                summary = rollup(records)
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._insert_by_month(conn, records)
                conn.executemany(_UPSERT, summary)
            except BaseException:
                conn.execute("ROLLBACK")
                self._months = _month_tables(conn)
                raise
            conn.execute("COMMIT")
        except (apsw.Error, *_DATA) as exc:  # _DATA: also a line that is no record of ours
            raise _classify(exc) from None

    def _insert_by_month(self, conn: apsw.Connection, records: Iterable[dict]) -> None:
        """Each record into its month's table: one pass per month in the batch (nearly always
        one); records of other months wait in a list for the next pass."""
        while True:
            it = iter(records)
            first = next(it, None)
            if first is None:
                return
            month, later = first["ts"][:7], []
            table = month_table(month)
            self._month(conn, table)
            rows = map(_ROW, _of_month(month, first, it, later))
            conn.executemany(self._insert.format(table=table), rows)
            records = later

    # --- retention ---------------------------------------------------------------------------
    def prune(self, retention_months: int, today: date | None = None) -> list[str]:
        """Drop whole months past retention (the current month counts as one)."""
        self.open()
        conn = self.conn
        assert conn is not None
        cutoff = month_cutoff(retention_months, today)
        old = sorted(t for t in self._months if t < month_table(cutoff))
        with conn:
            for table in old:
                conn.execute(f"DROP TABLE {table}")
            self._months -= set(old)
            self._create_view(conn)
            conn.execute("DELETE FROM daily WHERE day < ?", (cutoff,))
            d = conn.changes()
        kept = f"keeping {cutoff[:7]} and later"
        return [f"{self.path}: dropped {len(old)} monthly tables ({', '.join(old) or 'none'}) "
                f"and {d} daily rollup rows, {kept}"]  # fmt: skip

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _month_tables(conn: apsw.Connection) -> set[str]:
    """The monthly tables in the file, whoever created them."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows if _MONTH_TABLE.match(name)}


def month_cutoff(retention_months: int, today: date | None = None) -> str:
    """The first day kept: the first of the month `retention_months - 1` months ago."""
    today = today or datetime.now(UTC).date()
    months = today.year * 12 + (today.month - 1) - (retention_months - 1)
    return f"{months // 12:04d}-{months % 12 + 1:02d}-01"


def query(sink: SqliteSink, sql: str, params: Sequence[object] = ()) -> list[tuple]:
    """Rows of a read-only query (for reports)."""
    sink.open()
    assert sink.conn is not None
    try:
        return sink.conn.execute(sql, tuple(params)).fetchall()
    except apsw.Error as exc:
        raise _classify(exc) from None
