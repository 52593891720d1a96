"""report: --since, the report built from SQLite's rollups, its table and JSON renderings."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest

from sidecar import report
from sidecar.config import SinkConfig
from sidecar.errors import UsageError
from sidecar.sinks.jsonl import JsonlSink
from sidecar.sinks.sqlite import SqliteSink, query
from tests.conftest import run_sidecar
from tests.formats.test_nginx_json import SIDECAR_GET, SIDECAR_POST
from tests.sinks import record, varied

TODAY = date(2026, 11, 24)


@pytest.mark.parametrize(
    ("text", "first_day"),
    [
        ("7d", "2026-11-18"),  # today and the six days before
        ("1d", "2026-11-24"),
        ("0d", "2026-11-24"),
        ("24h", "2026-11-24"),
        ("1h", "2026-11-24"),
        ("25h", "2026-11-23"),
        ("48h", "2026-11-23"),
        ("49h", "2026-11-22"),
        ("1w", "2026-11-18"),
        ("2w", "2026-11-11"),
        ("30d", "2026-10-26"),
        ("365d", "2025-11-25"),
        ("all", "0001-01-01"),
        (" all ", "0001-01-01"),
        (" 7d\n", "2026-11-18"),
        ("2026-11-01", "2026-11-01"),
        ("2024-02-29", "2024-02-29"),
    ],
)
def test_since_day(text: str, first_day: str) -> None:
    assert report.since_day(text, TODAY) == first_day


@pytest.mark.parametrize(
    "text",
    [
        "",  # nothing
        "yesterday",  # a word
        "7",  # no unit
        "d",  # no number
        "7x",  # an unknown unit
        "7D",  # units are lower case
        "-7d",  # negative
        "1.5d",  # not a whole number
        "7 d",  # a space inside
        "7d2h",  # two units
        "2026-13-01",  # no such month
        "2026-02-30",  # no such day
        "2026-11-01T00:00:00",  # a time, not a day
        "ALL",
    ],
)
def test_since_garbage_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--since"):
        report.since_day(text, TODAY)


@pytest.mark.parametrize("text", ["1000000d", "99999999999999999999h"])
def test_since_too_far_back_is_a_usage_error_or_all(text: str) -> None:
    with contextlib.suppress(UsageError):  # a UsageError is as good an answer; got OverflowError
        assert report.since_day(text, TODAY) == "0001-01-01"


def test_since_defaults_to_today_utc() -> None:
    from datetime import UTC, datetime

    assert report.since_day("1d") == datetime.now(UTC).date().isoformat()


# --- build -------------------------------------------------------------------------------------
@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteSink]:
    sink = SqliteSink(SinkConfig(url=f"sqlite:{tmp_path / 'a.db'}"))
    sink.write([
        record(ts="2026-11-22T10:00:00.000Z", country="DE", path="/v/a/1.ts", bytes=100, status=200, referrer_host="t.co", ua_browser="Firefox"),
        record(ts="2026-11-23T10:00:00.000Z", country="DE", path="/v/a/2.ts", bytes=200, status=200, referrer_host="t.co", ua_browser="Chrome"),
        record(ts="2026-11-23T11:00:00.000Z", country="FR", path="/index.html", bytes=50, status=404, referrer_host=None, ua_browser="Chrome"),
        record(ts="2026-11-24T09:00:00.000Z", country=None, path="/v/b/x.m4s", bytes=1000, status=206, referrer_host="t.co", ua_browser=None),
        record(ts="2026-11-24T09:30:00.000Z", country="DE", path="/v/a/3.ts", bytes=300, status=503, referrer_host="news.example", ua_browser="Chrome"),
    ])  # fmt: skip
    yield sink
    sink.close()


def test_build_over_sqlite_with_known_records(sqlite: SqliteSink) -> None:
    got = report.build(sqlite, since="all", limit=10, today=TODAY)
    assert got == {
        "since": "0001-01-01",
        "requests": 5,
        "beacons": 0,
        "tables": {
            "per_day": [
                {"day": "2026-11-22", "requests": 1, "bytes": 100},
                {"day": "2026-11-23", "requests": 2, "bytes": 250},
                {"day": "2026-11-24", "requests": 2, "bytes": 1300},
            ],
            "countries": [
                {"country": "DE", "requests": 3, "share": 0.6, "bytes": 600},
                {
                    "country": None,
                    "requests": 1,
                    "share": 0.2,
                    "bytes": 1000,
                },  # '' sorts before 'FR'
                {"country": "FR", "requests": 1, "share": 0.2, "bytes": 50},
            ],
            "content": [
                {"content": "/v/a/", "requests": 3, "bytes": 600},
                {"content": "/index.html", "requests": 1, "bytes": 50},
                {"content": "/v/b/", "requests": 1, "bytes": 1000},
            ],
            "referrers": [
                {"referrer_host": "t.co", "requests": 3, "share": 0.6},
                {"referrer_host": None, "requests": 1, "share": 0.2},
                {"referrer_host": "news.example", "requests": 1, "share": 0.2},
            ],
            "status": [
                {"status_class": "2xx", "requests": 3, "share": 0.6},
                {"status_class": "4xx", "requests": 1, "share": 0.2},
                {"status_class": "5xx", "requests": 1, "share": 0.2},
            ],
            "browsers": [
                {"ua_browser": "Chrome", "requests": 3, "share": 0.6},
                {"ua_browser": None, "requests": 1, "share": 0.2},
                {"ua_browser": "Firefox", "requests": 1, "share": 0.2},
            ],
            "beacons": [],
        },
    }


@pytest.mark.parametrize(
    ("since", "limit", "requests", "days", "countries"),
    [
        (
            "all",
            10,
            5,
            ["2026-11-22", "2026-11-23", "2026-11-24"],
            [("DE", 3), (None, 1), ("FR", 1)],
        ),
        ("2026-11-23", 10, 4, ["2026-11-23", "2026-11-24"], [("DE", 2), (None, 1), ("FR", 1)]),
        ("2d", 10, 4, ["2026-11-23", "2026-11-24"], [("DE", 2), (None, 1), ("FR", 1)]),
        ("24h", 10, 2, ["2026-11-24"], [(None, 1), ("DE", 1)]),
        (
            "all",
            1,
            5,
            ["2026-11-22", "2026-11-23", "2026-11-24"],
            [("DE", 3)],
        ),  # the limit cuts top-N tables only
        ("2026-11-25", 10, 0, [], []),  # nothing yet
    ],
)
def test_build_since_and_limit(
    sqlite: SqliteSink, since: str, limit: int, requests: int, days: list[str], countries: list
) -> None:
    got = report.build(sqlite, since=since, limit=limit, today=TODAY)
    assert got["requests"] == requests
    assert [r["day"] for r in got["tables"]["per_day"]] == days
    assert [(r["country"], r["requests"]) for r in got["tables"]["countries"]] == countries
    assert all(len(rows) <= limit for name, rows in got["tables"].items() if name != "per_day")


def test_shares_add_up(tmp_path: Path) -> None:
    sink = SqliteSink(SinkConfig(url=f"sqlite:{tmp_path / 'a.db'}"))
    sink.write(varied(997))
    got = report.build(sink, since="all", limit=1000, today=TODAY)
    for name in ("countries", "referrers", "status", "browsers"):
        assert sum(r["requests"] for r in got["tables"][name]) == 997
        assert sum(r["share"] for r in got["tables"][name]) == pytest.approx(1.0, abs=0.001)
    sink.close()


def test_build_refuses_a_sink_that_cannot_be_queried(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="jsonl"):
        report.build(JsonlSink(SinkConfig(url=f"jsonl:{tmp_path / 'x.jsonl'}")))


# --- rendering ---------------------------------------------------------------------------------
def blocks(text: str) -> dict[str, list[str]]:
    """Each table's lines (header, rule, rows), by title: "summary", then "title", "table", ..."""
    parts = text.rstrip("\n").split("\n\n")
    titles, tables = parts[1::2], parts[2::2]
    assert len(titles) == len(tables) == len(report.TABLES)
    return {title: table.split("\n") for title, table in zip(titles, tables, strict=True)}


def test_render_table_aligns_columns(sqlite: SqliteSink) -> None:
    sqlite.write(
        [
            record(
                country="XX", path="/a/very/long/path/name/that/is/wide.html", bytes=123_456_789_012
            ),
            record(path="/beacon", query="event=play", status=204, bytes=0),
        ]
    )
    text = report.render_table(report.build(sqlite, since="all", today=TODAY))
    assert text.startswith("all time: 6 requests, 1 beacons\n\n") and text.endswith("\n")
    tables = blocks(text)
    assert list(tables) == [t.title for t in report.TABLES]
    for title, lines in tables.items():
        header, rule, *rows = lines
        assert set(rule) <= {"-", " "}
        widths = {len(line.rstrip()) for line in lines}
        assert widths == {len(rule)}, (title, lines)  # every line as wide as the rule
        # columns start where the rule's dashes start
        starts = [i for i, c in enumerate(rule) if c == "-" and (i == 0 or rule[i - 1] == " ")]
        for line in [header, *rows]:
            for s in starts[1:]:
                assert line[s - 2 : s] == "  ", (title, line)  # two spaces between columns
    assert "(none)" in "\n".join(
        tables["Top countries (beacons included)"]
    )  # the empty key is shown as (none)
    assert "115.0 GiB" in text  # bytes in binary units


# --- beacons, apart from content traffic -------------------------------------------------------
def beacon(ts: str, path: str = "/beacon", **fields: object):
    return record(**({"query": "event=play", "status": 204, "bytes": 0} | fields), ts=ts, path=path)


@pytest.fixture
def with_beacons(sqlite: SqliteSink) -> SqliteSink:
    sqlite.write([
        beacon("2026-11-23T10:00:01.000Z"),
        beacon("2026-11-23T10:00:02.000Z", country="FR"),
        beacon("2026-11-24T09:00:01.000Z", path="/collect", bytes=7),
        beacon("2026-11-24T09:00:02.000Z"),
        beacon("2026-11-21T09:00:00.000Z"),  # a day of beacons only
        record(ts="2026-11-24T09:40:00.000Z", path="/beacon/", bytes=5),  # no beacon path
    ])  # fmt: skip
    return sqlite


def test_beacons_are_counted_apart(with_beacons: SqliteSink) -> None:
    got = report.build(with_beacons, since="all", today=TODAY, beacon_paths=("/beacon", "/collect"))
    assert (got["requests"], got["beacons"]) == (6, 5)
    assert got["tables"]["per_day"] == [  # the content traffic of the known records, and /beacon/
        {"day": "2026-11-22", "requests": 1, "bytes": 100},
        {"day": "2026-11-23", "requests": 2, "bytes": 250},
        {"day": "2026-11-24", "requests": 3, "bytes": 1305},
    ]  # 2026-11-21 had beacons only: no content row
    assert got["tables"]["beacons"] == [
        {"day": "2026-11-21", "path": "/beacon", "beacons": 1},
        {"day": "2026-11-23", "path": "/beacon", "beacons": 2},
        {"day": "2026-11-24", "path": "/beacon", "beacons": 1},
        {"day": "2026-11-24", "path": "/collect", "beacons": 1},
    ]
    content = [r["content"] for r in got["tables"]["content"]]
    assert "/beacon" not in content and "/collect" not in content and "/beacon/" in content
    # the tables with a share count every request, beacons included: shares of all 11
    for name in ("countries", "referrers", "status", "browsers"):
        assert sum(r["requests"] for r in got["tables"][name]) == 11
        assert sum(r["share"] for r in got["tables"][name]) == pytest.approx(1.0, abs=0.001)
    assert {"status_class": "2xx", "requests": 9, "share": 0.8182} in got["tables"]["status"]


def test_beacon_paths_are_read_as_configured_now(with_beacons: SqliteSink) -> None:
    """Stored rows do not know which paths were beacons: the report asks the paths it is given."""
    only = report.build(with_beacons, since="all", today=TODAY, beacon_paths=("/beacon",))
    assert (only["requests"], only["beacons"]) == (7, 4)
    assert {"content": "/collect", "requests": 1, "bytes": 7} in only["tables"]["content"]
    none = report.build(with_beacons, since="all", today=TODAY, beacon_paths=())
    assert (none["requests"], none["beacons"], none["tables"]["beacons"]) == (11, 0, [])
    default = report.build(with_beacons, since="all", today=TODAY)
    assert default == only  # the default is `beacon.paths`' default, ("/beacon",)


def test_beacons_since_a_day(with_beacons: SqliteSink) -> None:
    got = report.build(with_beacons, since="24h", today=TODAY, beacon_paths=("/beacon", "/collect"))
    assert (got["requests"], got["beacons"]) == (3, 2)
    assert [r["day"] for r in got["tables"]["beacons"]] == ["2026-11-24", "2026-11-24"]


def test_beacon_keys_are_content_keys() -> None:
    assert report.beacon_keys(["/b", "/a", "/b", "/x/beacon.ts"]) == ("/a", "/b", "/x/")


def test_render_table_shows_the_beacons(with_beacons: SqliteSink) -> None:
    text = report.render_table(report.build(with_beacons, since="all", today=TODAY))
    assert text.startswith("all time: 7 requests, 4 beacons\n\n")
    lines = blocks(text)["Beacons per day"]
    assert lines[0].split() == ["day", "path", "beacons"]
    assert lines[2].split() == ["2026-11-21", "/beacon", "1"]


def test_render_table_for_an_empty_report(tmp_path: Path) -> None:
    sink = SqliteSink(SinkConfig(url=f"sqlite:{tmp_path / 'empty.db'}"))
    text = report.render_table(report.build(sink, since="7d", today=TODAY))
    sink.close()
    assert text.startswith("since 2026-11-18 (UTC): 0 requests")
    for title, lines in blocks(text).items():
        assert lines[-1] == "(no data)", title


@pytest.mark.parametrize(
    ("column", "value", "cell"),
    [
        ("country", None, "(none)"),
        ("country", "DE", "DE"),
        ("requests", 1234567, "1,234,567"),
        ("share", 0.1234, "12.3%"),
        ("share", 0.0, "0.0%"),
        ("bytes", 0, "0 B"),
        ("bytes", 1023, "1,023 B"),
        ("bytes", 1024, "1.0 KiB"),
        ("bytes", 1536, "1.5 KiB"),
        ("bytes", 5 * 1024**3, "5.0 GiB"),
        ("bytes", 3 * 1024**5, "3,072.0 TiB"),  # no unit above TiB
    ],
)
def test_cells(column: str, value: object, cell: str) -> None:
    assert report._cell(column, value) == cell


def is_plain(value: object) -> bool:
    if type(value) is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    if type(value) is list:
        return all(is_plain(v) for v in value)
    return value is None or type(value) in (str, int, float)


def test_the_report_is_plain_data(sqlite: SqliteSink) -> None:
    got = report.build(sqlite, since="all", today=TODAY)
    assert is_plain(got)
    assert json.loads(json.dumps(got)) == got


def test_cli_json_output_is_the_built_report(sqlite: SqliteSink) -> None:
    url = f"sqlite:{sqlite.path}"
    result = run_sidecar(
        "report", "--sink", url, "--since", "all", "--format", "json", "--limit", "2"
    )
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == report.build(sqlite, since="all", limit=2)


def test_pipe_then_report_counts_beacons_apart(tmp_path: Path) -> None:
    """nginx/'s JSON log lines, content and beacons, through `sidecar pipe` into SQLite: the
    report counts the beacons apart, and their payload is kept allowlisted in `query`."""
    content = SIDECAR_GET.replace("/beacon?event=play&x=1", "/v/a/seg_1.m4s").replace(
        '"status":"204","body_bytes_sent":"0"', '"status":"200","body_bytes_sent":"1000"'
    )
    db = tmp_path / "analytics.db"
    lines = "\n".join([content, content, SIDECAR_GET, SIDECAR_POST, SIDECAR_GET]) + "\n"
    piped = run_sidecar("pipe", "--sink", f"sqlite:{db}", input=lines.encode())
    assert piped.returncode == 0, piped.stderr
    out = run_sidecar("report", "--sink", f"sqlite:{db}", "--since", "all", "--format", "json")
    assert out.returncode == 0, out.stderr
    got = orjson.loads(out.stdout)
    assert (got["requests"], got["beacons"]) == (2, 3)
    assert got["tables"]["per_day"] == [{"day": "2026-12-01", "requests": 2, "bytes": 2000}]
    assert got["tables"]["content"] == [{"content": "/v/a/", "requests": 2, "bytes": 2000}]
    assert got["tables"]["beacons"] == [{"day": "2026-12-01", "path": "/beacon", "beacons": 3}]
    sink = SqliteSink(SinkConfig(url=f"sqlite:{db}"))
    stored = query(sink, "SELECT query FROM requests WHERE path = '/beacon' ORDER BY query")
    sink.close()
    assert stored == [("event=pause",), ("event=play",), ("event=play",)]  # `x`, `u`: not allowed
