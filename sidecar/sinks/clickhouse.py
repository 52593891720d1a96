"""`clickhouse:http://HOST:8123/?database=analytics&table=requests`: the production store.

Batches go over ClickHouse's HTTP interface as `INSERT ... FORMAT JSONEachRow`, gzip-compressed,
on one keep-alive connection; user and password come from the config (`user`, `password` or
`password_env`) or the URL's userinfo. Works with ClickHouse 18.16 (Debian 12) and current
releases; what a server supports is asked of the server, not assumed:
- `LowCardinality` columns need `allow_experimental_low_cardinality_type=1` on 18.x, a setting
  newer servers no longer know: it is sent only where `system.settings` lists it;
- a table TTL (retention) only where the server has TTL (19.6 and later); `sidecar storage
  prune` drops whole monthly partitions on any version;
- a per-batch `insert_deduplication_token` (with `non_replicated_deduplication_window` on the
  table) only where the server offers it, so a batch retried after a crash is stored once.
A batch stays below `min_insert_block_size_rows` (1,048,576), so the server stores all of it or
none. Failures: no answer, 5xx without a code, or a retryable code (timeouts, too many parts,
a missing table or database, authentication) -> unavailable, spooled and retried; a code for
data or schema the server cannot read -> refused, to the dead-letter file with its message.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import orjson

from sidecar.config import SinkConfig, redact_url
from sidecar.record import CleanBatch, CleanRecord
from sidecar.sinks.base import Sink, SinkRejected, SinkUnavailable
from sidecar.sinks.httpclient import HttpClient, HttpFailure, gzip_packer, retryable
from sidecar.sinks.sqlite import month_cutoff

COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "DateTime"),
    ("client_ip", "String"),
    ("country", "LowCardinality(Nullable(String))"),
    ("method", "LowCardinality(Nullable(String))"),
    ("host", "LowCardinality(String)"),  # in the sorting key: never Nullable ('' for none)
    ("path", "Nullable(String)"),
    ("query", "Nullable(String)"),
    ("protocol", "LowCardinality(Nullable(String))"),
    ("status", "UInt16"),
    ("bytes", "UInt64"),
    ("request_time", "Nullable(Float64)"),
    ("referrer_host", "LowCardinality(Nullable(String))"),
    ("referrer_path", "Nullable(String)"),
    ("ua_browser", "LowCardinality(Nullable(String))"),
    ("ua_os", "LowCardinality(Nullable(String))"),
    ("ua_device", "LowCardinality(Nullable(String))"),
    ("user_agent", "Nullable(String)"),
)
# https://github.com/ClickHouse/ClickHouse/blob/master/src/Common/ErrorCodes.cpp
RETRYABLE_CODES = frozenset({3, 60, 81, 107, 159, 164, 192, 193, 194, 202, 203, 209, 210, 241,
                             242, 252, 285, 319, 390, 425, 516, 999, 1002})  # fmt: skip
SCHEMA_CODES = frozenset({8, 10, 16, 44, 47, 117})
DATA_CODES = frozenset({6, 26, 27, 32, 38, 41, 53, 69, 70, 72, 321})
_CODE = re.compile(r"Code: (\d+)")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def classify(status: int, body: str) -> Exception:
    """A failed HTTP answer -> SinkUnavailable (retry) or SinkRejected (dead letter)."""
    m = _CODE.search(body)
    message = f"clickhouse: HTTP {status}: {body.strip()[:1500]}"
    if m is None:
        return SinkUnavailable(message) if retryable(status) else SinkRejected(message, "other")
    code = int(m.group(1))
    if code in RETRYABLE_CODES:
        return SinkUnavailable(message)
    if code in SCHEMA_CODES:
        return SinkRejected(message, "schema")
    if code in DATA_CODES:
        return SinkRejected(message, "data")
    return SinkRejected(message, "other")


def to_row(record: CleanRecord) -> CleanRecord:
    """The record as the table takes it: DateTime as `YYYY-MM-DD hh:mm:ss`, host never null."""
    row = CleanRecord(record)
    ts = record["ts"]
    row["ts"] = f"{ts[:10]} {ts[11:19]}"
    if row["host"] is None:
        row["host"] = ""
    return row


# A line's `ts` (its first key) becomes what 18.16 parses fastest, `2026-11-24 09:00:00`
# (`...T09:00:00` is read too, but 1.5x slower; `...:00.000Z` not at all). A `{"ts":"` or a
# `","client_ip":` with bare quotes can only be a key boundary (quotes inside strings are
# escaped), so plain bytes.replace passes (C) do the edits: one per distinct day in the batch
# for the `T`, one for the common `.000Z`; other milliseconds (from $msec logs) go by a
# look-ahead pattern whose replacement is a literal (a template with \1 calls Python per row).
_TS_HEAD = re.compile(rb'^\{"ts":"\d{4}-\d\d-\d\dT', re.MULTILINE)
_TS_TAIL = b'","client_ip":'
_MILLIS = re.compile(rb'\.\d{3}Z(?=","client_ip":)')


PIECE_BYTES = 1 << 20


def _stream(data: bytes, gzipped: bool) -> Iterator[bytes]:
    """The request body in pieces of about a MiB, each edited and compressed as it is sent:
    the server parses the first while the next is made, and no whole copy is ever held."""
    packer = gzip_packer() if gzipped else None
    start = 0
    while start < len(data):
        end = data.find(b"\n", start + PIECE_BYTES)
        end = len(data) if end < 0 else end + 1
        piece = encode(CleanBatch(data[start:end], 0))
        start = end
        out = packer.compress(piece) if packer is not None else piece
        if out:
            yield out
    if packer is not None:
        yield packer.flush()


def encode(batch: CleanBatch) -> bytes:
    """JSONEachRow rows for the table from a batch's JSON lines, edited by C-speed passes:
    `{"ts":"YYYY-MM-DDThh:mm:ss.mmmZ"` becomes `{"ts":"YYYY-MM-DD hh:mm:ss"` and `"host":null,`
    becomes `"host":"",` (the table's sorting key is never null). Equal to `to_row` + orjson."""
    out = batch.data
    lines = out.count(b"\n")
    last = out.rfind(b"\n", 0, len(out) - 1) + 1
    edited = 0
    for at in {0, last}:  # batches are in time order: the first and last days are nearly all
        head = out[at : at + 18]
        if head.endswith(b"T") and (n := out.count(head)):
            out = out.replace(head, head[:-1] + b" ")
            edited += n
    while edited < lines and (day := _TS_HEAD.search(out)) is not None:  # days in between
        head = day.group()
        edited += out.count(head)
        out = out.replace(head, head[:-1] + b" ")
    out = out.replace(b".000Z" + _TS_TAIL, _TS_TAIL)
    if b"Z" + _TS_TAIL in out:
        out = _MILLIS.sub(b"", out)
    return out.replace(b'"host":null,', b'"host":"",')


class ClickHouseSink(Sink):
    scheme = "clickhouse"
    queryable = True

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        endpoint = config.url.partition(":")[2]
        parts = urlsplit(endpoint)
        params = dict(parse_qsl(parts.query))
        self.database = params.pop("database", "default")
        self.table = params.pop("table", "requests")
        for what, name in (("database", self.database), ("table", self.table)):
            if not _NAME.match(name):
                raise ValueError(f"clickhouse sink: {what} {name!r} is not a plain name")
        self.table_name = f"{self.database}.{self.table}"
        url_user = params.pop("user", None) or unquote(parts.username or "")
        url_password = params.pop("password", None) or unquote(parts.password or "")
        user = config.user or url_user
        password = config.secret() or url_password
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.client = HttpClient(urlunsplit((parts.scheme, netloc, parts.path or "/", "", "")),
                                 config.timeout_secs)  # fmt: skip
        self.extra = urlencode(params)  # any other setting in the URL is passed on
        self.headers = {"X-ClickHouse-User": user or "default"}
        if password:
            self.headers["X-ClickHouse-Key"] = password
        self._features: dict[str, bool] | None = None
        self.version = ""  # the server's, once `features` asked
        self._dedup = False
        self._ready = False
        self.gzipped = self.client.gzip(config.compression)
        self.concurrency = config.concurrency  # inserts in flight: the server parses in parallel

    # --- talking to the server ---------------------------------------------------------------
    def _post(self, sql_or_query: str, body: bytes | Callable[[], Iterable[bytes]] | None,
              gzipped: bool = False, settings: dict[str, str] | None = None) -> str:  # fmt: skip
        query = [f"query={quote(sql_or_query)}"] if body is not None else []
        if self.extra:
            query.append(self.extra)
        query.extend(f"{k}={quote(v)}" for k, v in (settings or {}).items())
        headers = dict(self.headers)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        data = body if body is not None else sql_or_query.encode()
        try:
            status, text = self.client.request("POST", "&".join(query), data, headers)
        except HttpFailure as exc:
            raise SinkUnavailable(f"clickhouse: {exc}") from None
        if status != 200:
            raise classify(status, text)
        return text

    def query(self, sql: str) -> list[tuple]:
        """Rows of a read-only query (for reports)."""
        text = self._post(sql + " FORMAT JSONCompact", None)
        return [tuple(row) for row in orjson.loads(text)["data"]]

    def features(self) -> dict[str, bool]:
        """What this server offers, asked once."""
        if self._features is None:
            names = {r[0] for r in self.query(
                "SELECT name FROM system.settings WHERE name IN ('insert_deduplication_token', "
                "'allow_experimental_low_cardinality_type')")}  # fmt: skip
            tree = {r[0] for r in self.query(
                "SELECT name FROM system.merge_tree_settings "
                "WHERE name = 'non_replicated_deduplication_window'")}  # fmt: skip
            self.version = self.query("SELECT version()")[0][0]
            major, minor = (int(x) for x in self.version.split(".")[:2])
            self._features = {
                "low_cardinality_setting": "allow_experimental_low_cardinality_type" in names,
                "dedup_token": "insert_deduplication_token" in names
                and "non_replicated_deduplication_window" in tree,
                "ttl": (major, minor) >= (19, 6),
            }
        return self._features

    def open(self) -> None:
        """Ask the server what it offers and whether the table is there. A missing table is
        `SinkUnavailable` (the data waits in the spool until `sidecar storage init`)."""
        if self._ready:
            return
        features = self.features()
        rows = self.query(
            "SELECT engine_full FROM system.tables WHERE "
            f"database = '{self.database}' AND name = '{self.table}'"
        )
        if not rows:
            raise SinkUnavailable(
                f"clickhouse: table {self.table_name} does not exist; run `sidecar storage init`"
            )
        self._dedup = features["dedup_token"] and "deduplication_window" in rows[0][0]
        self._ready = True

    # --- storage commands --------------------------------------------------------------------
    def ddl(self, retention_months: int) -> list[str]:
        f = self.features()
        columns = ",\n  ".join(f"{n} {t}" for n, t in COLUMNS)
        ttl = f"\nTTL ts + INTERVAL {retention_months} MONTH" if f["ttl"] else ""
        dedup = "\nSETTINGS non_replicated_deduplication_window = 1000" if f["dedup_token"] else ""
        return [
            f"CREATE DATABASE IF NOT EXISTS {self.database}",
            f"CREATE TABLE IF NOT EXISTS {self.table_name} (\n  {columns}\n)\n"
            f"ENGINE = MergeTree\nPARTITION BY toYYYYMM(ts)\nORDER BY (ts, host){ttl}{dedup}",
        ]

    def init(self, retention_months: int = 25) -> list[str]:
        f = self.features()
        settings = (
            {"allow_experimental_low_cardinality_type": "1"} if f["low_cardinality_setting"] else {}
        )
        done = []
        for statement in self.ddl(retention_months):
            self._post(statement, None, settings=settings)
            done.append(f"{redact_url(self.url)}: {statement.splitlines()[0].rstrip(' (')}")
        ttl = (f"TTL {retention_months} months" if f["ttl"]
               else "no TTL on this version (use `sidecar storage prune`)")  # fmt: skip
        dedup = ", insert deduplication by batch token" if f["dedup_token"] else ""
        done.append(
            f"ClickHouse {self.version}: partitioned by month, ordered by (ts, host), {ttl}{dedup}"
        )
        self._dedup = f["dedup_token"]
        self._ready = True
        return done

    def prune(self, retention_months: int, today: date | None = None) -> list[str]:
        cutoff = month_cutoff(retention_months, today)
        keep_from = int(cutoff[:4] + cutoff[5:7])
        rows = self.query(
            "SELECT DISTINCT partition FROM system.parts WHERE active AND "
            f"database = '{self.database}' AND table = '{self.table}' ORDER BY partition"
        )
        old = [p for (p,) in rows if p.isdigit() and int(p) < keep_from]
        for partition in old:
            self._post(f"ALTER TABLE {self.table_name} DROP PARTITION {int(partition)}", None)
        return [f"{redact_url(self.url)}: dropped {len(old)} monthly partitions "
                f"({', '.join(old) or 'none'}), keeping {cutoff[:7]} and later"]  # fmt: skip

    # --- writing -----------------------------------------------------------------------------
    def write_batch(self, batch: CleanBatch) -> None:
        self.open()
        settings = {}
        if self._dedup:  # the same batch sent twice (a retry after a crash) is stored once
            settings["insert_deduplication_token"] = hashlib.sha256(batch.data).hexdigest()
        data, gzipped = batch.data, self.gzipped
        self._post(f"INSERT INTO {self.table_name} FORMAT JSONEachRow",
                   lambda: _stream(data, gzipped), gzipped, settings)  # fmt: skip

    def close(self) -> None:
        self.client.close()
