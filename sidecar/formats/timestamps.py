"""Log timestamps -> RFC 3339 UTC with milliseconds (`2026-11-24T09:00:00.000Z`), and back.

Readers for nginx's `$time_local` (`24/Nov/2026:10:00:00 +0100`), `$time_iso8601`, `$msec`
(`1732442400.123`) and ISO 8601 in general. Each raises ValueError, and only ValueError, on
any text it cannot read (out of range too: years outside 1..9999 in UTC, `$msec` past 9999);
the parser turns that into the `bad_timestamp` reason, and anything else would cost the run.
Work stays linear in the text (digits are counted before int() sees them). Results are cached
per distinct text (access logs repeat the same second many times).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_ABBR, 1)}
_MONTH_NAMES = {i: m for m, i in _MONTHS.items()}
_CACHE_ENTRIES = 4096
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the last second an RFC 3339 year holds


def rfc3339(dt: datetime) -> str:
    """A UTC datetime as `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z"
    )


def _time_local(text: str) -> str:
    s = text
    if len(s) != 26 or s[2] != "/" or s[6] != "/" or s[11] != ":" or s[20] != " ":
        raise ValueError("not a $time_local")
    sign = s[21]
    digits = s[0:2] + s[7:11] + s[12:14] + s[15:17] + s[18:20] + s[22:26]
    if sign not in "+-" or not (digits.isascii() and digits.isdigit()):
        raise ValueError("not a $time_local")  # int() would take " 1", "+1", non-ASCII digits
    off_hours, off_minutes = int(s[22:24]), int(s[24:26])
    if off_hours > 23 or off_minutes > 59:
        raise ValueError("bad offset")
    hh, mm, ss = int(s[12:14]), int(s[15:17]), int(s[18:20])
    if hh > 23 or mm > 59 or ss > 59:
        raise ValueError("not a time of day")
    seconds = _day_start(s[0:11]) + hh * 3600 + mm * 60 + ss
    offset = (off_hours * 3600 + off_minutes * 60) * (1 if sign == "+" else -1)
    t = time.gmtime(seconds - offset)
    if not 1 <= t.tm_year <= 9999:
        raise ValueError("year out of range")
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.000Z"
    )


@lru_cache(maxsize=1024)
def _day_start(day: str) -> int:
    """`24/Nov/2026` -> seconds since the epoch at its midnight, as if it were UTC."""
    month = _MONTHS.get(day[3:6], 0)
    return calendar.timegm(datetime(int(day[7:11]), month, int(day[0:2])).timetuple())


def _iso8601(text: str) -> str:
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        raise ValueError("no UTC offset")
    try:
        return rfc3339(dt.astimezone(UTC))
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise ValueError("year out of range") from None


def _msec(text: str) -> str:
    seconds, _, frac = text.strip().partition(".")
    if not (seconds.isascii() and seconds.isdigit()):
        raise ValueError("not a $msec")
    if frac and not (frac.isascii() and frac.isdigit()):
        raise ValueError("not a $msec")
    # 12 digits reach past year 9999: more are never read (fromtimestamp would overflow)
    if len(seconds.lstrip("0")) > 12 or int(seconds) > _MAX_SECONDS:
        raise ValueError("after year 9999")
    ms = int((frac + "000")[:3]) if frac else 0
    dt = datetime.fromtimestamp(int(seconds), UTC) + timedelta(milliseconds=ms)
    return rfc3339(dt)


def _cached(read: Callable[[str], str]) -> Callable[[str], str]:
    cache: dict[str, str] = {}

    def parse(text: str) -> str:
        try:
            return cache[text]
        except KeyError:
            pass
        try:
            value = read(text)  # ValueError propagates: never cached
        except (ArithmeticError, OSError, LookupError):  # a platform's own range limits
            raise ValueError("not a time") from None
        if len(cache) >= _CACHE_ENTRIES:
            cache.clear()
        cache[text] = value
        return value

    return parse


def make_reader(kind: str) -> Callable[[str], str]:
    """A cached reader for one timestamp kind: time_local, time_iso8601, msec or auto."""
    readers = {"time_local": _time_local, "time_iso8601": _iso8601, "msec": _msec, "auto": _auto}
    return _cached(readers[kind])


def _auto(text: str) -> str:
    t = text.strip()
    if len(t) == 26 and t[2] == "/":
        return _time_local(t)
    if t.replace(".", "", 1).isdigit():
        return _msec(t)
    return _iso8601(t)


def parse_rfc3339(ts: str) -> datetime:
    """The datetime of a `ts` written by `rfc3339` (for writers and sinks)."""
    return datetime.fromisoformat(ts)


def to_time_local(ts: str) -> str:
    """`2026-11-24T09:00:00.000Z` -> `24/Nov/2026:09:00:00 +0000`."""
    return f"{ts[8:10]}/{_MONTH_NAMES[int(ts[5:7])]}/{ts[0:4]}:{ts[11:19]} +0000"


def to_iso8601(ts: str) -> str:
    """`2026-11-24T09:00:00.000Z` -> `2026-11-24T09:00:00+00:00` (nginx's $time_iso8601)."""
    return ts[:19] + "+00:00"


def to_msec(ts: str) -> str:
    """`2026-11-24T09:00:00.123Z` -> `1795510800.123` (nginx's $msec)."""
    return f"{int(parse_rfc3339(ts).timestamp())}.{ts[20:23]}"
