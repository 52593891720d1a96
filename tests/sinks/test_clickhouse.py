"""clickhouse: the production store, against a real ClickHouse 18.16 server on loopback (one per
module, from tests/e2e/clickhouse.py), and its DDL against a current ClickHouse in-process (chdb).

Each test works in a database of its own, so tests do not see each other's rows.
"""

from __future__ import annotations

import gzip
import itertools
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest

from sidecar import report
from sidecar.config import SinkConfig
from sidecar.record import CleanRecord
from sidecar.sinks.base import SinkRejected, SinkUnavailable
from sidecar.sinks.clickhouse import COLUMNS, ClickHouseSink, classify, to_row
from sidecar.sinks.sqlite import SqliteSink
from tests.e2e.clickhouse import WHOAMI, WRITER_PASSWORD, WRITER_USER, ClickHouse
from tests.sinks import numbered, record, start, storage, varied

pytestmark = pytest.mark.e2e

_names = itertools.count(1)


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    yield from ClickHouse.fixture(tmp_path_factory.mktemp("clickhouse"))


@pytest.fixture
def db() -> str:
    """A database name of this test's own."""
    return f"t{next(_names)}"


@pytest.fixture
def make_sink(ch: ClickHouse) -> Iterator[Callable[..., ClickHouseSink]]:
    """ClickHouseSink(url) for this server; every sink is closed after the test (an idle
    keep-alive connection would slow the server's shutdown down)."""
    made: list[ClickHouseSink] = []

    def make(query: str = "", userinfo: str = "", **config: object) -> ClickHouseSink:
        host = f"{userinfo}@" if userinfo else ""
        sink = ClickHouseSink(
            SinkConfig(url=f"clickhouse:http://{host}127.0.0.1:{ch.http_port}/{query}", **config)
        )  # type: ignore[arg-type]
        made.append(sink)
        return sink

    yield make
    for s in made:
        s.close()


def read_back(ch: ClickHouse, table: str) -> list[dict]:
    text = ch.query(
        f"SELECT * FROM {table} ORDER BY ts, bytes FORMAT JSONEachRow",
        output_format_json_quote_64bit_integers=0,
    )
    return [orjson.loads(line) for line in text.splitlines()]


def as_stored(r: CleanRecord) -> dict:
    """What the table holds for a record: DateTime to the second, host '' for none."""
    return dict(r) | {"ts": r["ts"][:10] + " " + r["ts"][11:19], "host": r["host"] or ""}


def create_like(
    ch: ClickHouse, table: str, change: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]
) -> None:
    """A table shaped like the sink's, with columns changed by `change`."""
    columns = ", ".join(f"{n} {t}" for n, t in change(list(COLUMNS)))
    ch.query(f"CREATE DATABASE IF NOT EXISTS {table.split('.')[0]}")
    ch.query(
        f"CREATE TABLE {table} ({columns}) ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (ts, host)",
        allow_experimental_low_cardinality_type=1,
    )


# --- no server: classify, to_row, the URL ------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "error", "reason"),
    [
        (
            404,
            "Code: 60, e.displayText() = DB::Exception: Table a.b doesn't exist.",
            SinkUnavailable,
            None,
        ),
        (
            404,
            "Code: 81, e.displayText() = DB::Exception: Database a doesn't exist",
            SinkUnavailable,
            None,
        ),
        (
            401,
            "Code: 193, e.displayText() = DB::Exception: Wrong password for user writer",
            SinkUnavailable,
            None,
        ),
        (
            500,
            "Code: 192, e.displayText() = DB::Exception: Unknown user nobody",
            SinkUnavailable,
            None,
        ),
        (403, "Code: 516. DB::Exception: default: Authentication failed", SinkUnavailable, None),
        (500, "Code: 241. DB::Exception: Memory limit (total) exceeded", SinkUnavailable, None),
        (500, "Code: 252. DB::Exception: Too many parts (300)", SinkUnavailable, None),
        (500, "Code: 159. DB::Exception: Timeout exceeded", SinkUnavailable, None),
        (500, "Code: 202. DB::Exception: Too many simultaneous queries", SinkUnavailable, None),
        (500, "Code: 242. DB::Exception: Table is in readonly mode", SinkUnavailable, None),
        (
            500,
            "Code: 117, e.displayText() = DB::Exception: Unknown field found while parsing JSONEachRow format: x",
            SinkRejected,
            "schema",
        ),
        (
            500,
            "Code: 16. DB::Exception: No such column user_agent in table",
            SinkRejected,
            "schema",
        ),
        (500, "Code: 8. DB::Exception: Cannot find column", SinkRejected, "schema"),
        (
            500,
            'Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected " before: 200',
            SinkRejected,
            "data",
        ),
        (500, "Code: 53. DB::Exception: Type mismatch", SinkRejected, "data"),
        (500, "Code: 41. DB::Exception: Cannot parse datetime", SinkRejected, "data"),
        (500, "Code: 321. DB::Exception: Value is out of range", SinkRejected, "data"),
        (400, "Code: 62. DB::Exception: Syntax error: failed at position 1", SinkRejected, "other"),
        (500, "Code: 999999. something new", SinkRejected, "other"),
        # no code in the body: the HTTP status decides
        (502, "<html>Bad Gateway</html>", SinkUnavailable, None),
        (503, "", SinkUnavailable, None),
        (500, "Internal error", SinkUnavailable, None),
        (401, "", SinkUnavailable, None),
        (403, "Forbidden", SinkUnavailable, None),
        (408, "", SinkUnavailable, None),
        (429, "slow down", SinkUnavailable, None),
        (400, "Bad request", SinkRejected, "other"),
        (404, "Not found", SinkRejected, "other"),
    ],
)
def test_classify(status: int, body: str, error: type[Exception], reason: str | None) -> None:
    exc = classify(status, body)
    assert type(exc) is error
    assert f"HTTP {status}" in str(exc) and str(exc).startswith("clickhouse: ")
    if reason is not None:
        assert exc.reason == reason  # type: ignore[attr-defined]


def test_classify_keeps_the_message_short() -> None:
    assert len(str(classify(500, "Code: 27. " + "x" * 10_000))) < 1600


def test_to_row() -> None:
    r = record(ts="2026-11-24T09:08:07.654Z", host=None)
    row = to_row(r)
    assert row["ts"] == "2026-11-24 09:08:07" and row["host"] == ""
    assert r["ts"] == "2026-11-24T09:08:07.654Z" and r["host"] is None  # the record is left alone
    assert list(row) == list(r) and to_row(record(host="a.example"))["host"] == "a.example"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("clickhouse:http://h:8123/?database=a;DROP", "database"),
        ("clickhouse:http://h:8123/?table=a.b", "table"),
        ("clickhouse:http://h:8123/?table=1x", "table"),
    ],
)
def test_database_and_table_must_be_plain_names(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ClickHouseSink(SinkConfig(url=url))


def test_percent_encoded_userinfo_is_decoded() -> None:
    sink = ClickHouseSink(SinkConfig(url="clickhouse:http://wr%69ter:p%40ss%3Aw%2Frd@h:8123/"))
    assert sink.headers == {
        "X-ClickHouse-User": "writer",
        "X-ClickHouse-Key": "p@ss:w/rd",
    }  # got 'wr%69ter', 'p%40ss%3Aw%2Frd'


# --- init --------------------------------------------------------------------------------------
def test_init_twice_is_idempotent_and_says_what_it_did(ch: ClickHouse, make_sink, db: str) -> None:
    sink = make_sink(f"?database={db}&table=requests")
    first = sink.init()
    url = sink.url
    assert first == [
        f"{url}: CREATE DATABASE IF NOT EXISTS {db}",
        f"{url}: CREATE TABLE IF NOT EXISTS {db}.requests",
        "ClickHouse 18.16.1: partitioned by month, ordered by (ts, host), no TTL on this version (use `sidecar storage prune`)",
    ]
    sink.write(numbered(3))
    assert (
        make_sink(f"?database={db}&table=requests").init() == first
    )  # again, from a new sink: same, no error
    assert sink.init() == first  # and from the same one
    assert ch.query(f"SELECT count() FROM {db}.requests") == "3\n"  # the data is kept
    assert ch.query(f"SELECT count() FROM system.tables WHERE database = '{db}'") == "1\n"


def test_the_table_is_partitioned_by_month_and_ordered_by_ts_and_host(
    ch: ClickHouse, make_sink, db: str
) -> None:
    make_sink(f"?database={db}").init()
    engine, engine_full = (
        ch.query(
            f"SELECT engine, engine_full FROM system.tables WHERE database = '{db}' AND name = 'requests'"
        )
        .rstrip("\n")
        .split("\t")
    )
    assert engine == "MergeTree"
    assert "PARTITION BY toYYYYMM(ts)" in engine_full and "ORDER BY (ts, host)" in engine_full
    create = ch.query(f"SHOW CREATE TABLE {db}.requests")
    assert "PARTITION BY toYYYYMM(ts) ORDER BY (ts, host)" in create
    columns = ch.query(f"DESCRIBE TABLE {db}.requests")
    assert [tuple(line.split("\t")[:2]) for line in columns.splitlines()] == list(COLUMNS)


def test_init_does_not_show_the_password(ch: ClickHouse, make_sink, db: str) -> None:
    sink = make_sink(f"?database={db}", userinfo=f"{WRITER_USER}:{WRITER_PASSWORD}")
    lines = sink.init()
    assert lines and not any(WRITER_PASSWORD in line for line in lines)
    assert WRITER_PASSWORD not in repr(sink) and WRITER_PASSWORD not in sink.id
    assert "***@" in lines[0]


# --- write -------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_write_reads_back_equal(ch: ClickHouse, make_sink, db: str, compression: str) -> None:
    sink = make_sink(f"?database={db}", compression=compression)
    sink.init()
    everything_null = {f: None for f in ("country", "method", "host", "path", "query", "protocol", "request_time",
                                         "referrer_host", "referrer_path", "ua_browser", "ua_os", "ua_device", "user_agent")}  # fmt: skip
    recs = [
        *numbered(3),
        record(ts="2026-11-24T10:00:00.999Z", bytes=10, **everything_null),
        record(ts="2026-11-24T10:00:01.000Z", bytes=2**64 - 1, path="/ü/\"q\"\\x/'y'", query="a=1&b=%20",
               user_agent="Mozilla/5.0 (X11; Linux x86_64)", request_time=12.5, status=599, referrer_path="/p"),
        record(ts="2026-10-31T23:59:59.000Z", bytes=11, host="a.example"),
        # values that look like the JSON around them
        record(ts="2026-11-24T11:00:00.000Z", bytes=12, host=None, path='/"host":null,/x',
               user_agent='{"ts":"2026-11-24T11:00:00.000Z","host":null,', referrer_path='","host":null,"'),
    ]  # fmt: skip
    sink.write(recs)
    got = read_back(ch, f"{db}.requests")
    assert got == sorted((as_stored(r) for r in recs), key=lambda x: (x["ts"], x["bytes"]))
    null_row = next(r for r in got if r["bytes"] == 10)
    assert (
        null_row["country"] is None and null_row["request_time"] is None and null_row["host"] == ""
    )
    assert (
        ch.query(
            f"SELECT DISTINCT partition FROM system.parts WHERE database = '{db}' AND active ORDER BY partition"
        )
        == "202610\n202611\n"
    )


def test_many_writes_share_one_connection(ch: ClickHouse, make_sink, db: str) -> None:
    sink = make_sink(f"?database={db}")
    sink.init()
    conn = sink.client._connection()
    for i in range(10):
        sink.write(numbered(5, start=5 * i))
        assert sink.client._connection() is conn and len(sink.client._all) == 1  # kept alive
    assert ch.query(f"SELECT count(), sum(bytes) FROM {db}.requests") == f"50\t{sum(range(50))}\n"


# --- failures ----------------------------------------------------------------------------------
def test_a_dropped_table_is_unavailable_not_refused(ch: ClickHouse, make_sink, db: str) -> None:
    sink = make_sink(f"?database={db}")
    sink.init()
    sink.write(numbered(1))
    ch.query(f"DROP TABLE {db}.requests")
    with pytest.raises(SinkUnavailable, match="Code: 60"):  # retried, never dead-lettered
        sink.write(numbered(1))
    sink.init()  # `sidecar storage init` brings it back and the same sink goes on
    sink.write(numbered(2))
    assert ch.query(f"SELECT count() FROM {db}.requests") == "2\n"


def test_an_unknown_database_is_unavailable(make_sink, db: str) -> None:
    with pytest.raises(SinkUnavailable, match="does not exist; run `sidecar storage init`"):
        make_sink(f"?database={db}").write(numbered(1))


def test_a_table_never_created_is_unavailable_for_a_new_sink(
    ch: ClickHouse, make_sink, db: str
) -> None:
    ch.query(f"CREATE DATABASE {db}")
    with pytest.raises(
        SinkUnavailable
    ):  # got SinkRejected: Code: 390 ... no metadata file for table requests
        make_sink(f"?database={db}").write(numbered(1))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_delivery_before_storage_init_keeps_the_records_for_later(
    ch: ClickHouse, make_sink, db: str, tmp_path: Path
) -> None:
    ch.query(f"CREATE DATABASE {db}")
    sink = make_sink(f"?database={db}", batch_max_rows=10, batch_timeout_secs=0.02)
    store = storage(tmp_path, shutdown_timeout_secs=0.3)
    delivery, _ = start(sink, store)
    delivery.submit(numbered(3))
    stats = delivery.close()
    assert (
        stats.dead_lettered == 0 and stats.left_in_spool == 3
    )  # got all zero: the 3 records are gone
    make_sink(f"?database={db}").init()
    again = make_sink(f"?database={db}")
    d2, _ = start(again, store)
    assert d2.close().delivered == 3


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # status as a Date: the server cannot read 200 as a date -> refused ("data" on 18.16)
        pytest.param(
            lambda cols: [(n, "Date" if n == "status" else t) for n, t in cols],
            "data",
            id="status-Date",
        ),
        # a column missing from the table -> refused ("schema")
        pytest.param(
            lambda cols: [(n, t) for n, t in cols if n != "user_agent"],
            "schema",
            id="no-user_agent",
        ),
        # bytes as a String: a JSON number is no string to 18.16 -> refused ("data")
        pytest.param(
            lambda cols: [(n, "String" if n == "bytes" else t) for n, t in cols],
            "data",
            id="bytes-String",
        ),
    ],
)
def test_a_table_of_another_shape_refuses(
    ch: ClickHouse, make_sink, db: str, change, reason: str
) -> None:
    create_like(ch, f"{db}.requests", change)
    sink = make_sink(f"?database={db}")
    with pytest.raises(SinkRejected) as err:
        sink.write(numbered(2))
    assert err.value.reason == reason
    assert "Code: " in str(err.value)


@pytest.mark.parametrize(
    ("userinfo", "config"),
    [
        (
            "",
            {"user": WRITER_USER, "password": "not-the-password-1"},
        ),  # wrong password from the config
        (f"{WRITER_USER}:not-the-password-1", {}),  # wrong password in the URL
        ("", {"user": WRITER_USER}),  # no password at all
        ("", {"user": "nobody", "password": "not-the-password-1"}),  # no such user
    ],
)
def test_bad_credentials_are_unavailable(make_sink, userinfo: str, config: dict) -> None:
    sink = make_sink("", userinfo=userinfo, **config)
    with pytest.raises(SinkUnavailable) as err:  # a credential to fix: retried, never dead-lettered
        sink.write(numbered(1))
    assert "not-the-password-1" not in str(err.value)  # the password is not echoed


@pytest.mark.parametrize(
    ("userinfo", "config", "env"),
    [
        ("", {"user": WRITER_USER, "password": WRITER_PASSWORD}, None),
        ("", {"user": WRITER_USER, "password_env": "SIDECAR_TEST_CH_PW"}, WRITER_PASSWORD),
        (f"{WRITER_USER}:{WRITER_PASSWORD}", {}, None),
        (
            "nobody:wrong",
            {"user": WRITER_USER, "password": WRITER_PASSWORD},
            None,
        ),  # the config wins over the URL
        (
            "",
            {
                "user": WRITER_USER,
                "password": WRITER_PASSWORD,
                "password_env": "SIDECAR_TEST_CH_PW",
            },
            "wrong",
        ),  # password wins over password_env
    ],
)
def test_credentials_from_config_env_and_url(
    ch: ClickHouse,
    make_sink,
    db: str,
    monkeypatch: pytest.MonkeyPatch,
    userinfo: str,
    config: dict,
    env: str | None,
) -> None:
    if env is None:
        monkeypatch.delenv("SIDECAR_TEST_CH_PW", raising=False)
    else:
        monkeypatch.setenv("SIDECAR_TEST_CH_PW", env)
    make_sink(f"?database={db}").init()  # as default
    sink = make_sink(f"?database={db}", userinfo=userinfo, **config)
    assert sink.query(WHOAMI) == [(WRITER_USER,)]
    sink.write(numbered(2))
    assert ch.query(f"SELECT count() FROM {db}.requests") == "2\n"


# --- prune -------------------------------------------------------------------------------------
def test_prune_drops_old_partitions_and_keeps_the_current_ones(
    ch: ClickHouse, make_sink, db: str
) -> None:
    sink = make_sink(f"?database={db}")
    sink.init()
    days = ["2024-01-10", "2024-06-10", "2025-12-31", "2026-01-01", "2026-02-14"]
    for i, day in enumerate(days):
        sink.write([record(ts=f"{day}T12:00:00.000Z", bytes=i)])
    url = f"clickhouse:{ch.http_url}/?database={db}"
    assert sink.prune(2, today=date(2026, 2, 15)) == [
        f"{url}: dropped 3 monthly partitions (202401, 202406, 202512), keeping 2026-01 and later"
    ]
    assert [r["bytes"] for r in read_back(ch, f"{db}.requests")] == [3, 4]
    assert sink.prune(2, today=date(2026, 2, 15)) == [
        f"{url}: dropped 0 monthly partitions (none), keeping 2026-01 and later"
    ]
    sink.write([record(ts="2026-02-15T00:00:00.000Z", bytes=5)])
    assert [r["bytes"] for r in read_back(ch, f"{db}.requests")] == [3, 4, 5]


# --- report ------------------------------------------------------------------------------------
def test_report_over_clickhouse_equals_report_over_sqlite(
    make_sink, db: str, tmp_path: Path
) -> None:
    recs = varied(
        800, seed=11, days=("2026-11-10", "2026-11-18", "2026-11-22", "2026-11-23", "2026-11-24")
    )
    recs += [
        record(path="/v/deep/a/b/seg.M4S", bytes=1),
        record(path="", bytes=2),
        record(path="/x.mp4", status=0),
        # beacons: counted apart (a day of beacons only; a path that needs quoting in SQL)
        *(record(ts=f"2026-11-{d}T08:00:00.000Z", path="/beacon", query="event=play",
                 status=204, bytes=0) for d in ("09", "22", "24", "24")),
        record(ts="2026-11-23T08:00:00.000Z", path="/b'x\\y", status=204, bytes=3),
    ]  # fmt: skip
    chs = make_sink(f"?database={db}")
    chs.init()
    lite = SqliteSink(SinkConfig(url=f"sqlite:{tmp_path / 'a.db'}"))
    for i in range(0, len(recs), 250):
        chs.write(recs[i : i + 250])
        lite.write(recs[i : i + 250])
    today = date(2026, 11, 24)
    for since, limit in [
        ("all", 10),
        ("all", 1000),
        ("7d", 5),
        ("24h", 10),
        ("2026-11-18", 3),
        ("2w", 10),
    ]:
        for beacons in (("/beacon",), ("/beacon", "/b'x\\y"), ()):
            a = report.build(chs, since=since, limit=limit, today=today, beacon_paths=beacons)
            b = report.build(lite, since=since, limit=limit, today=today, beacon_paths=beacons)
            assert a == b, (since, limit, beacons)
    got = report.build(chs, since="all", today=today, beacon_paths=("/beacon", "/b'x\\y"))
    assert got["requests"] + got["beacons"] == len(recs) and got["beacons"] == 5
    lite.close()


# --- a current ClickHouse (chdb) ---------------------------------------------------------------
class ChdbSink(ClickHouseSink):
    """The real ClickHouseSink with its HTTP transport replaced by chdb, an in-process current
    ClickHouse: every statement the sink makes runs there, settings included."""

    def __init__(self, session, database: str) -> None:
        super().__init__(SinkConfig(url=f"clickhouse:http://chdb.invalid/?database={database}"))
        self.session = session
        self.settings_sent: list[dict[str, str]] = []

    def _post(
        self,
        sql_or_query: str,
        body: bytes | None,
        gzipped: bool = False,
        settings: dict[str, str] | None = None,
    ) -> str:
        settings = dict(settings or {})
        self.settings_sent.append(settings)
        sql = sql_or_query
        clause = ", ".join(f"{k} = {v if v.isdigit() else repr(v)}" for k, v in settings.items())
        try:
            if clause and sql.startswith("INSERT"):
                sql = sql.replace(" FORMAT ", f" SETTINGS {clause} FORMAT ", 1)
            elif clause:
                self.session.query(f"SET {clause}")  # a current server refuses unknown settings
            if callable(body):  # a streamed body: its pieces, in order
                body = b"".join(body())
            if body is not None:
                sql += "\n" + (gzip.decompress(body) if gzipped else body).decode()
            return self.session.query(sql).bytes().decode()
        except Exception as exc:  # chdb's error: "Code: NN. DB::Exception: ..."
            raise classify(500, str(exc)) from None

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def chdb_session() -> Iterator[object]:
    from chdb import session

    with tempfile.TemporaryDirectory() as path:
        s = session.Session(path)
        yield s
        s.close()


def test_the_18_16_ddl_runs_on_a_current_clickhouse(make_sink, chdb_session, db: str) -> None:
    statements = make_sink(f"?database={db}").ddl(25)  # as written for the 18.16 server
    assert "TTL" not in statements[1] and "LowCardinality" in statements[1]
    for sql in statements:
        chdb_session.query(re.sub(rf"\b{db}\b", f"{db}_chdb", sql))  # type: ignore[attr-defined]
    create = chdb_session.query(f"SHOW CREATE TABLE {db}_chdb.requests").bytes().decode()  # type: ignore[attr-defined]
    assert "PARTITION BY toYYYYMM(ts)" in create and "ORDER BY (ts, host)" in create


def test_init_write_query_prune_on_a_current_clickhouse(chdb_session, db: str) -> None:
    sink = ChdbSink(chdb_session, f"{db}_cur")
    features = sink.features()
    assert features == {"low_cardinality_setting": False, "dedup_token": True, "ttl": True}
    first = sink.init(1200)  # a TTL far enough out that no test row ever expires
    assert first == sink.init(1200)  # idempotent on a current server too
    assert "TTL 1200 months" in first[-1] and "insert deduplication by batch token" in first[-1]
    # the 18.x-only setting is never sent to a server that does not list it
    assert all("allow_experimental_low_cardinality_type" not in s for s in sink.settings_sent)
    create = sink.query(f"SHOW CREATE TABLE {db}_cur.requests")[0][0]
    assert "PARTITION BY toYYYYMM(ts)" in create and "ORDER BY (ts, host)" in create
    assert (
        "TTL ts + toIntervalMonth(1200)" in create
        and "non_replicated_deduplication_window = 1000" in create
    )

    recs = [
        *numbered(3),
        record(ts="2026-09-15T00:00:00.000Z", bytes=9, host=None, country=None, request_time=None),
    ]
    sink.write(recs)
    sink.write(recs)  # the same batch again (a retry after a crash): stored once
    got = sink.query(
        f"SELECT * FROM {db}_cur.requests ORDER BY ts, bytes SETTINGS output_format_json_quote_64bit_integers = 0"
    )
    expect = sorted((as_stored(r) for r in recs), key=lambda x: (x["ts"], x["bytes"]))
    assert [dict(zip((n for n, _ in COLUMNS), row, strict=True)) for row in got] == expect

    [message] = sink.prune(2, today=date(2026, 11, 24))
    assert "dropped 1 monthly partitions (202609), keeping 2026-10 and later" in message
    assert sink.query(f"SELECT count() FROM {db}_cur.requests") == [(3,)]
    assert report.build(sink, since="all")["requests"] == 3
