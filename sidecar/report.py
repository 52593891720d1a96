"""`sidecar report`: the report queries, SQLite and ClickHouse dialects side by side, and their
rendering as aligned terminal tables or JSON.

SQLite reads the daily rollups the sink maintains at insert time (a few rows per day and key,
whatever the traffic); ClickHouse aggregates the raw table, which is what it is built for.

Beacons (requests to `beacon.paths`, passed in as `beacon_paths`) are counted apart from content
traffic, so that player beacons do not inflate it: the request total, requests and bytes per day
and top content leave them out, and the `beacons` table counts them per day and path. The
content rollup is keyed by path (a media file's folder), so on SQLite the beacons are its rows
for the beacon paths, and content per day is the day's total less those rows: reports follow
`beacon.paths` as it is now, whatever it was when the rows were stored. Countries, referrers,
status classes and browsers are rolled up without the path, so they count every request,
beacons included, and their shares are of all requests (`requests` + `beacons`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sidecar.errors import UsageError
from sidecar.sinks.base import Sink
from sidecar.sinks.sqlite import MEDIA_SUFFIXES, content_of, query


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[str, ...]


TABLES = (
    Table("per_day", "Requests and bytes per day (beacons apart)", ("day", "requests", "bytes")),
    Table("countries", "Top countries (beacons included)", ("country", "requests", "share",
                                                           "bytes")),
    Table("content", "Top content", ("content", "requests", "bytes")),
    Table("referrers", "Top referrer hosts (beacons included)", ("referrer_host", "requests",
                                                                 "share")),
    Table("status", "Status classes (beacons included)", ("status_class", "requests", "share")),
    Table("browsers", "User-agent families (beacons included)", ("ua_browser", "requests",
                                                                 "share")),
    Table("beacons", "Beacons per day", ("day", "path", "beacons")),
)  # fmt: skip
#: table -> the rollup dimension it reads: its first column
_DIMENSION = {t.name: t.columns[0] for t in TABLES if t.name not in ("per_day", "beacons")}
_SINCE = re.compile(r"^(\d+)([hdw])$")


def since_day(text: str, today: date | None = None) -> str:
    """`7d`, `24h`, `2w`, `2026-11-01` or `all` -> the first day (UTC) a report covers."""
    today = today or datetime.now(UTC).date()
    if text.strip() == "all":
        return "0001-01-01"
    m = _SINCE.match(text.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        hours = n * {"h": 1, "d": 24, "w": 168}[unit]
        try:
            return (today - timedelta(days=max(0, (hours + 23) // 24 - 1))).isoformat()
        except OverflowError:  # before year 1: everything
            return "0001-01-01"
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is not 7d, 24h, 2w or a date like 2026-11-01"
        ) from None


# --- SQLite: the daily rollups -------------------------------------------------------------------
def _marks(keys: Sequence[str]) -> str:
    return ", ".join("?" * len(keys))


def _sqlite_table(name: str) -> Query:
    def run(sink: Sink, first_day: str, limit: int, beacons: Sequence[str]) -> list[tuple]:
        if name == "per_day":  # the day's total less its beacon paths' content rows
            if not beacons:
                return query(sink, "SELECT day, requests, bytes FROM daily WHERE dimension = "
                                   "'total' AND day >= ? ORDER BY day", [first_day])  # fmt: skip
            return query(
                sink,
                "SELECT t.day, t.requests - IFNULL(b.n, 0), t.bytes - IFNULL(b.volume, 0) "
                "FROM daily t LEFT JOIN (SELECT day, SUM(requests) AS n, SUM(bytes) AS volume "
                f"FROM daily WHERE dimension = 'content' AND key IN ({_marks(beacons)}) "
                "AND day >= ? GROUP BY day) b ON b.day = t.day "
                "WHERE t.dimension = 'total' AND t.day >= ? "
                "AND t.requests - IFNULL(b.n, 0) > 0 ORDER BY t.day",
                [*beacons, first_day, first_day],
            )
        if name == "beacons":
            if not beacons:
                return []
            return query(
                sink,
                "SELECT day, key, requests FROM daily WHERE dimension = 'content' "
                f"AND key IN ({_marks(beacons)}) AND day >= ? ORDER BY day, key",
                [*beacons, first_day],
            )
        apart = f"AND key NOT IN ({_marks(beacons)}) " if name == "content" and beacons else ""
        return query(
            sink,
            "SELECT key, SUM(requests) AS n, SUM(bytes) FROM daily WHERE dimension = ? "
            f"AND day >= ? {apart}GROUP BY key ORDER BY n DESC, key LIMIT ?",
            [_DIMENSION[name], first_day, *(beacons if apart else ()), limit],
        )

    return run


# --- ClickHouse: the raw table -----------------------------------------------------------------
def _content_sql() -> str:
    suffixes = "|".join(s.lstrip(".") for s in MEDIA_SUFFIXES)
    folder = "substring(path, 1, length(path) - position(reverse(path), '/') + 1)"
    return f"if(match(lower(path), '\\\\.({suffixes})$'), {folder}, path)"


_CONTENT = f"ifNull({_content_sql()}, '')"
_CLICKHOUSE_KEYS = {
    "countries": "ifNull(country, '')",
    "content": _CONTENT,
    "referrers": "ifNull(referrer_host, '')",
    "status": "multiIf(status >= 100 AND status < 600, "
              "concat(toString(intDiv(status, 100)), 'xx'), 'other')",
    "browsers": "ifNull(ua_browser, '')",
}  # fmt: skip


def _literal(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _clickhouse_table(name: str) -> Query:
    def run(sink: Sink, first_day: str, limit: int, beacons: Sequence[str]) -> list[tuple]:
        q = sink.query  # type: ignore[attr-defined]
        table = sink.table_name  # type: ignore[attr-defined]
        where = f"ts >= toDateTime('{first_day} 00:00:00')"
        keys = ", ".join(map(_literal, beacons))
        if name == "beacons":
            if not beacons:
                return []
            return q(f"SELECT toString(toDate(ts)) AS day, {_CONTENT} AS k, count() "
                     f"FROM {table} WHERE {where} AND k IN ({keys}) "
                     "GROUP BY day, k ORDER BY day, k")  # fmt: skip
        if beacons and name in ("per_day", "content"):
            where += f" AND {_CONTENT} NOT IN ({keys})"
        if name == "per_day":
            return q(f"SELECT toString(toDate(ts)) AS day, count() AS n, sum(bytes) FROM {table} "
                     f"WHERE {where} GROUP BY day ORDER BY day")  # fmt: skip
        return q(f"SELECT {_CLICKHOUSE_KEYS[name]} AS k, count() AS n, sum(bytes) FROM {table} "
                 f"WHERE {where} GROUP BY k ORDER BY n DESC, k LIMIT {int(limit)}")  # fmt: skip

    return run


Query = Callable[[Sink, str, int, Sequence[str]], list[tuple]]
#: dialect -> table name -> the query that answers it
DIALECTS: dict[str, dict[str, Query]] = {
    "sqlite": {t.name: _sqlite_table(t.name) for t in TABLES},
    "clickhouse": {t.name: _clickhouse_table(t.name) for t in TABLES},
}


def beacon_keys(beacon_paths: Sequence[str]) -> tuple[str, ...]:
    """The content keys the beacon paths are rolled up under (a path, or a media file's
    folder), sorted, each once."""
    return tuple(sorted({content_of(p) or "" for p in beacon_paths}))


def build(
    sink: Sink,
    since: str = "7d",
    limit: int = 10,
    today: date | None = None,
    beacon_paths: Sequence[str] = ("/beacon",),
) -> dict:
    """The report as plain data: {"since": day, "requests": content requests, "beacons": beacon
    requests, "tables": {name: [row dicts]}}; `beacon_paths` are counted apart (`beacon.paths`).
    """
    if sink.scheme not in DIALECTS:
        raise UsageError(
            f"report: {sink.scheme}: sinks cannot be queried; use sqlite: or clickhouse:"
        )
    first_day = since_day(since, today)
    keys = beacon_keys(beacon_paths)
    raw = {name: run(sink, first_day, limit, keys) for name, run in DIALECTS[sink.scheme].items()}
    total = sum(int(r[1]) for r in raw["per_day"])
    beacons = sum(int(r[2]) for r in raw["beacons"])
    everything = total + beacons  # what the tables with a share count
    tables: dict[str, list[dict]] = {
        "beacons": [{"day": d, "path": k, "beacons": int(n)} for d, k, n in raw["beacons"]]
    }
    for t in TABLES:
        if t.name == "beacons":
            continue
        rows = []
        for key, requests, volume in raw[t.name]:
            row = {t.columns[0]: key if key != "" else None, "requests": int(requests)}
            if "share" in t.columns:
                row["share"] = round(int(requests) / everything, 4) if everything else 0.0
            if "bytes" in t.columns:
                row["bytes"] = int(volume)
            rows.append(row)
        tables[t.name] = rows
    tables = {t.name: tables[t.name] for t in TABLES}
    return {"since": first_day, "requests": total, "beacons": beacons, "tables": tables}


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:,.0f} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


def _cell(column: str, value: object) -> str:
    if value is None:
        return "(none)"
    if column == "bytes":
        return _human_bytes(int(value))  # type: ignore[arg-type]
    if column == "share":
        return f"{float(value) * 100:.1f}%"  # type: ignore[arg-type]
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _aligned(values: Sequence[str], widths: list[int]) -> str:
    """A table row: the first column left, the others right."""
    return "  ".join(
        v.ljust(w) if i == 0 else v.rjust(w)
        for i, (v, w) in enumerate(zip(values, widths, strict=True))
    ).rstrip()


def render_table(report: dict) -> str:
    """Aligned terminal tables: text columns left, numbers right."""
    since = "all time" if report["since"] == "0001-01-01" else f"since {report['since']} (UTC)"
    blocks = [f"{since}: {report['requests']:,} requests, {report['beacons']:,} beacons"]
    for t in TABLES:
        rows = report["tables"][t.name]
        cells = [[_cell(c, row.get(c)) for c in t.columns] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(t.columns)]
        lines = [t.title, "", _aligned(t.columns, widths), "  ".join("-" * w for w in widths)]
        lines.extend(_aligned(r, widths) for r in cells)
        if not cells:
            lines.append("(no data)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
