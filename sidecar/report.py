"""`sidecar report`: the report queries, SQLite and ClickHouse dialects side by side, and their
rendering as aligned terminal tables or JSON.

SQLite reads the daily rollups the sink maintains at insert time (a few rows per day and key,
whatever the traffic); ClickHouse aggregates the raw table, which is what it is built for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sidecar.errors import UsageError
from sidecar.sinks.base import Sink
from sidecar.sinks.sqlite import MEDIA_SUFFIXES, query


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[str, ...]


TABLES = (
    Table("per_day", "Requests and bytes per day", ("day", "requests", "bytes")),
    Table("countries", "Top countries", ("country", "requests", "share", "bytes")),
    Table("content", "Top content", ("content", "requests", "bytes")),
    Table("referrers", "Top referrer hosts", ("referrer_host", "requests", "share")),
    Table("status", "Status classes", ("status_class", "requests", "share")),
    Table("browsers", "User-agent families", ("ua_browser", "requests", "share")),
)
#: table -> the rollup dimension it reads: its first column
_DIMENSION = {t.name: t.columns[0] for t in TABLES if t.name != "per_day"}
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
def _sqlite_table(name: str) -> Query:
    def run(sink: Sink, first_day: str, limit: int) -> list[tuple]:
        if name == "per_day":
            return query(sink, "SELECT day, requests, bytes FROM daily WHERE dimension = 'total' "
                               "AND day >= ? ORDER BY day", [first_day])  # fmt: skip
        return query(
            sink,
            "SELECT key, SUM(requests) AS n, SUM(bytes) FROM daily WHERE dimension = ? "
            "AND day >= ? GROUP BY key ORDER BY n DESC, key LIMIT ?",
            [_DIMENSION[name], first_day, limit],
        )

    return run


# --- ClickHouse: the raw table -----------------------------------------------------------------
def _content_sql() -> str:
    suffixes = "|".join(s.lstrip(".") for s in MEDIA_SUFFIXES)
    folder = "substring(path, 1, length(path) - position(reverse(path), '/') + 1)"
    return f"if(match(lower(path), '\\\\.({suffixes})$'), {folder}, path)"


_CLICKHOUSE_KEYS = {
    "countries": "ifNull(country, '')",
    "content": f"ifNull({_content_sql()}, '')",
    "referrers": "ifNull(referrer_host, '')",
    "status": "multiIf(status >= 100 AND status < 600, "
              "concat(toString(intDiv(status, 100)), 'xx'), 'other')",
    "browsers": "ifNull(ua_browser, '')",
}  # fmt: skip


def _clickhouse_table(name: str) -> Query:
    def run(sink: Sink, first_day: str, limit: int) -> list[tuple]:
        q = sink.query  # type: ignore[attr-defined]
        table = sink.table_name  # type: ignore[attr-defined]
        where = f"ts >= toDateTime('{first_day} 00:00:00')"
        if name == "per_day":
            return q(f"SELECT toString(toDate(ts)) AS day, count() AS n, sum(bytes) FROM {table} "
                     f"WHERE {where} GROUP BY day ORDER BY day")  # fmt: skip
        return q(f"SELECT {_CLICKHOUSE_KEYS[name]} AS k, count() AS n, sum(bytes) FROM {table} "
                 f"WHERE {where} GROUP BY k ORDER BY n DESC, k LIMIT {int(limit)}")  # fmt: skip

    return run


Query = Callable[[Sink, str, int], list[tuple]]
#: dialect -> table name -> the query that answers it
DIALECTS: dict[str, dict[str, Query]] = {
    "sqlite": {t.name: _sqlite_table(t.name) for t in TABLES},
    "clickhouse": {t.name: _clickhouse_table(t.name) for t in TABLES},
}


def build(sink: Sink, since: str = "7d", limit: int = 10, today: date | None = None) -> dict:
    """The report as plain data: {"since": day, "tables": {name: [row dicts]}}."""
    if sink.scheme not in DIALECTS:
        raise UsageError(
            f"report: {sink.scheme}: sinks cannot be queried; use sqlite: or clickhouse:"
        )
    first_day = since_day(since, today)
    raw = {name: run(sink, first_day, limit) for name, run in DIALECTS[sink.scheme].items()}
    total = sum(int(r[1]) for r in raw["per_day"])
    tables: dict[str, list[dict]] = {}
    for t in TABLES:
        rows = []
        for key, requests, volume in raw[t.name]:
            row = {t.columns[0]: key if key != "" else None, "requests": int(requests)}
            if "share" in t.columns:
                row["share"] = round(int(requests) / total, 4) if total else 0.0
            if "bytes" in t.columns:
                row["bytes"] = int(volume)
            rows.append(row)
        tables[t.name] = rows
    return {"since": first_day, "requests": total, "tables": tables}


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
    blocks = [f"{since}: {report['requests']:,} requests"]
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
