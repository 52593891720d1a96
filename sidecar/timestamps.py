"""Times -> RFC 3339 UTC with milliseconds (`2026-11-24T09:00:00.000Z`), and back.

One module for every producer of a record's `ts`, so that they all write the same text: the log
parsers (sidecar.formats) read log timestamps with `make_reader`, the proxy turns a flow's Unix
time into the same text with `from_epoch`, and the rewrite writer goes back with `to_*`. It sits
at the top level (not in formats/) because the proxy may not import the log parsers.

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
_MIN_SECONDS = -62135596800  # 0001-01-01T00:00:00Z, the first


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


_EPOCH_END = _MAX_SECONDS + 1
_NO_EXPONENT = 0.0001  # from here to 1e16, a float's repr is plain digits with one point

# from_epoch's last second, as its repr's digits, and its text up to the milliseconds (one
# tuple, read and replaced whole, so threads sharing it see a matching pair): the proxy's
# requests arrive in time order, many within the same second
_last_second: tuple[str, str] = ("", "")


def from_epoch(seconds: float) -> str:
    """A Unix time in seconds (mitmproxy's `timestamp_start`) -> `2026-12-01T13:00:00.123Z`.

    Truncated to the millisecond the instant falls in (toward the past, before 1970 too), read
    from the float's decimal text (its shortest `repr`, what Python and JSON print), so that
    the text is the one `make_reader("msec")` gives for that decimal: `1795510800.123` ->
    `...00.123Z`, though the nearest binary double lies a little below it. Raises ValueError
    outside years 1..9999 (NaN and the infinities too). Built for the proxy's hot path: the
    text up to the seconds is kept for the last second seen, so a request within that second
    costs a `repr`, a comparison and a few slices.
    """
    global _last_second
    if not _NO_EXPONENT <= seconds < _EPOCH_END:  # also False for NaN
        return _from_epoch_rest(seconds)
    whole, _, frac = repr(seconds).partition(".")
    ms = (frac + "000")[:3]  # an int has no fraction
    last = _last_second
    if last[0] == whole:
        return f"{last[1]}{ms}Z"
    prefix = _second_text(int(whole))
    _last_second = (whole, prefix)
    return f"{prefix}{ms}Z"


def _from_epoch_rest(seconds: float) -> str:
    """`from_epoch` below 0.0001 s (before 1970, or an exponent in the repr) and out of range."""
    if not _MIN_SECONDS <= seconds < _NO_EXPONENT:
        raise ValueError("year out of range")
    if seconds >= 0:  # -0.0 too
        return _second_text(0) + "000Z"
    text = repr(seconds)
    if "e" in text:  # -0.0001 < seconds < 0: the last millisecond before 1970
        ms = -1
    else:
        whole, _, frac = text.partition(".")
        # toward the past: digits beyond the millisecond take it one further back
        ms = int(whole) * 1000 - int((frac + "000")[:3]) - (1 if frac[3:].strip("0") else 0)
    second, ms = divmod(ms, 1000)
    return f"{_second_text(second)}{ms:03d}Z"


def _second_text(second: int) -> str:
    """`2026-12-01T13:00:00.`: a Unix second's RFC 3339 text, up to the milliseconds."""
    t = time.gmtime(second)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
    )


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
