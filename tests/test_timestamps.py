"""sidecar.timestamps: log and Unix times -> RFC 3339 UTC with milliseconds, and back."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.timestamps import (
    from_epoch,
    make_reader,
    parse_rfc3339,
    rfc3339,
    to_iso8601,
    to_msec,
    to_time_local,
)


@pytest.mark.parametrize(
    "text, utc",
    [
        ("24/Nov/2026:10:00:00 +0100", "2026-11-24T09:00:00.000Z"),
        ("10/Feb/2012:16:42:07 -0500", "2012-02-10T21:42:07.000Z"),
        ("10/Feb/2012:16:42:07 +0000", "2012-02-10T16:42:07.000Z"),
        ("10/Feb/2012:16:42:07 +0530", "2012-02-10T11:12:07.000Z"),  # minutes in the offset
        ("10/Feb/2012:16:42:07 -0930", "2012-02-11T02:12:07.000Z"),
        ("24/Nov/2026:00:30:00 +0100", "2026-11-23T23:30:00.000Z"),  # back over a day
        ("01/Mar/2027:00:30:00 +0100", "2027-02-28T23:30:00.000Z"),  # over a month, no leap
        ("01/Mar/2028:00:30:00 +0100", "2028-02-29T23:30:00.000Z"),  # over a month, leap
        ("01/Jan/2027:00:30:00 +0100", "2026-12-31T23:30:00.000Z"),  # over a year, back
        ("31/Dec/2026:23:59:59 -0500", "2027-01-01T04:59:59.000Z"),  # over a year, forward
        ("29/Feb/2024:23:00:00 -0200", "2024-03-01T01:00:00.000Z"),
        ("24/Nov/2026:18:30:15 +0900", "2026-11-24T09:30:15.000Z"),
    ],
)
def test_time_local(text: str, utc: str) -> None:
    assert make_reader("time_local")(text) == utc


@pytest.mark.parametrize(
    "text, why",
    [
        ("32/Feb/2012:16:42:07 -0500", "day 32"),
        ("30/Feb/2012:16:42:07 -0500", "30 February"),
        ("29/Feb/2023:16:42:07 -0500", "29 February of a common year"),
        ("10/Foo/2012:16:42:07 -0500", "month Foo"),
        ("10/feb/2012:16:42:07 -0500", "month in lower case"),
        ("10/Feb/2012:23:59:60 +0000", "leap second"),
        ("10/Feb/2012:24:00:00 +0000", "hour 24"),
        ("10/Feb/2012:16:60:00 +0000", "minute 60"),
        ("10/Feb/2012:16:42:07 0500", "offset without sign"),
        ("10/Feb/2012:16:42:07 +05:0", "offset with a colon"),
        ("10/Feb/2012:16:42:07 +05a0", "offset with a letter"),
        ("10/Feb/2012:16:42:07", "no offset"),
        ("10/Feb/2012 16:42:07 -0500", "space for colon"),
        ("1x/Feb/2012:16:42:07 -0500", "day 1x"),
        ("February - 10, 2012:16:42:07", "another layout (Matomo's custom date)"),
        ("garbage", "garbage"),
        ("", "empty"),
        ("-", "a dash"),
    ],
)
def test_time_local_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError):
        make_reader("time_local")(text)


@pytest.mark.parametrize(
    "text, why",
    [
        # impossible offsets (were accepted and applied: +9999 moved the time by 4 days)
        ("10/Feb/2012:16:42:07 +0099", "offset minutes 99"),
        ("10/Feb/2012:16:42:07 +9999", "offset hours 99"),
        ("10/Feb/2012:16:42:07 -2460", "offset hours 24, minutes 60"),
        # numbers int() would take (were accepted: '10/Feb/+012' became year 12)
        (" 1/Feb/2012:16:42:07 -0500", "day with a leading blank"),
        ("+1/Feb/2012:16:42:07 -0500", "day with a sign"),
        ("10/Feb/+012:16:42:07 -0500", "year with a sign"),
        ("10/Feb/2012:+6:42:07 -0500", "hour with a sign"),
        ("\u0661\u0660/Feb/2012:16:42:07 -0500", "Arabic-Indic digits"),
        ("10/Feb/2012:16:42:07 +\uff10\uff15\uff10\uff10", "full-width offset digits"),
    ],
)
def test_time_local_rejects_impossible_offsets_and_lenient_numbers(text: str, why: str) -> None:
    with pytest.raises(ValueError):
        make_reader("time_local")(text)


@pytest.mark.parametrize(
    "text",
    [
        "01/Jan/0001:00:30:00 +0100",  # before year 1 in UTC
        "31/Dec/9999:23:30:00 -0100",  # after year 9999 in UTC
    ],
)
def test_time_local_out_of_range_raises(text: str) -> None:
    with pytest.raises(ValueError):
        make_reader("time_local")(text)


@pytest.mark.parametrize(
    "text, utc",
    [
        ("2026-11-24T10:00:00+01:00", "2026-11-24T09:00:00.000Z"),
        ("2026-11-24T10:00:00Z", "2026-11-24T10:00:00.000Z"),
        ("2026-11-24T10:00:00+00:00", "2026-11-24T10:00:00.000Z"),
        ("2026-11-24T04:00:00-05:00", "2026-11-24T09:00:00.000Z"),
        ("2026-12-31T20:00:00-05:00", "2027-01-01T01:00:00.000Z"),  # over a year
        ("2026-11-24T10:00:00.123456+00:00", "2026-11-24T10:00:00.123Z"),  # ms, truncated
        ("2026-11-24T10:00:00.5+00:00", "2026-11-24T10:00:00.500Z"),
        ("2026-11-24 10:00:00+01:00", "2026-11-24T09:00:00.000Z"),  # space separator
        (" 2026-11-24T10:00:00+01:00 ", "2026-11-24T09:00:00.000Z"),  # surrounding blanks
    ],
)
def test_time_iso8601(text: str, utc: str) -> None:
    assert make_reader("time_iso8601")(text) == utc


@pytest.mark.parametrize(
    "text, why",
    [
        ("2026-11-24T10:00:00", "no UTC offset"),
        ("2026-11-24", "a date only: no offset"),
        ("2026-02-30T10:00:00Z", "30 February"),
        ("2016-12-31T23:59:60Z", "leap second"),
        ("2026-13-01T00:00:00Z", "month 13"),
        ("24/Nov/2026:10:00:00 +0100", "a $time_local"),
        ("garbage", "garbage"),
        ("", "empty"),
    ],
)
def test_time_iso8601_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError):
        make_reader("time_iso8601")(text)


@pytest.mark.parametrize(
    "text, utc",
    [
        ("1795510800.123", "2026-11-24T09:00:00.123Z"),
        ("1795510800", "2026-11-24T09:00:00.000Z"),
        ("1795510800.1", "2026-11-24T09:00:00.100Z"),
        ("1795510800.9999", "2026-11-24T09:00:00.999Z"),  # truncated to ms
        ("0.000", "1970-01-01T00:00:00.000Z"),
        (" 1795510800.5 ", "2026-11-24T09:00:00.500Z"),
    ],
)
def test_msec(text: str, utc: str) -> None:
    assert make_reader("msec")(text) == utc


@pytest.mark.parametrize(
    "text, why",
    [
        ("-1", "negative"),
        ("1e9", "exponent"),
        ("1795510800.12x", "letter in the fraction"),
        ("\uff11\uff12\uff13", "full-width digits"),
        ("abc", "garbage"),
        ("", "empty"),
        ("99999999999999", "after year 9999"),
    ],
)
def test_msec_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError):
        make_reader("msec")(text)


@pytest.mark.parametrize(
    "text, utc",
    [
        ("10/Feb/2012:16:42:07 -0500", "2012-02-10T21:42:07.000Z"),  # $time_local
        ("2026-11-24T10:00:00+01:00", "2026-11-24T09:00:00.000Z"),  # ISO 8601
        ("2013-10-10T16:52:00+02:00", "2013-10-10T14:52:00.000Z"),  # Matomo's nginx_json
        ("1795510800.25", "2026-11-24T09:00:00.250Z"),  # $msec
        ("1795510800", "2026-11-24T09:00:00.000Z"),
    ],
)
def test_auto(text: str, utc: str) -> None:
    assert make_reader("auto")(text) == utc


@pytest.mark.parametrize(
    "text, why",
    [
        ("2026-11-24T10:00:00", "ISO without offset"),
        ("1.2.3", "not a number, not a date"),
        ("32/Feb/2012:16:42:07 -0500", "bad $time_local"),
        ("", "empty"),
    ],
)
def test_auto_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError):
        make_reader("auto")(text)


def test_reader_errors_are_not_cached() -> None:
    read = make_reader("time_local")
    for _ in range(2):
        with pytest.raises(ValueError):
            read("32/Feb/2012:16:42:07 -0500")
    assert read("10/Feb/2012:16:42:07 -0500") == read("10/Feb/2012:16:42:07 -0500")


def test_unknown_reader_kind() -> None:
    with pytest.raises(KeyError):
        make_reader("strftime")


@pytest.mark.parametrize(
    "ts, time_local, iso8601, msec",
    [
        (
            "2026-11-24T09:00:00.000Z",
            "24/Nov/2026:09:00:00 +0000",
            "2026-11-24T09:00:00+00:00",
            "1795510800.000",
        ),
        (
            "2026-11-24T09:00:00.123Z",
            "24/Nov/2026:09:00:00 +0000",
            "2026-11-24T09:00:00+00:00",
            "1795510800.123",
        ),
        (
            "2028-02-29T23:59:59.999Z",
            "29/Feb/2028:23:59:59 +0000",
            "2028-02-29T23:59:59+00:00",
            "1835481599.999",
        ),
        (
            "1970-01-01T00:00:00.000Z",
            "01/Jan/1970:00:00:00 +0000",
            "1970-01-01T00:00:00+00:00",
            "0.000",
        ),
    ],
)
def test_writers(ts: str, time_local: str, iso8601: str, msec: str) -> None:
    assert to_time_local(ts) == time_local
    assert to_iso8601(ts) == iso8601
    assert to_msec(ts) == msec


_TIMES = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30))


@given(_TIMES)
def test_writers_round_trip(dt: datetime) -> None:
    """Each writer's text reads back to the same instant (whole seconds for the text forms)."""
    ts = rfc3339(dt)
    whole = ts[:20] + "000Z"
    assert make_reader("time_local")(to_time_local(ts)) == whole
    assert make_reader("time_iso8601")(to_iso8601(ts)) == whole
    assert make_reader("msec")(to_msec(ts)) == ts
    assert make_reader("auto")(to_time_local(ts)) == whole
    assert make_reader("auto")(to_iso8601(ts)) == whole
    assert make_reader("auto")(to_msec(ts)) == ts
    assert rfc3339(parse_rfc3339(ts).replace(tzinfo=None)) == ts


# --- any text: an RFC 3339 string or ValueError, nothing else (issue 7, item 12) ------------------

KINDS = ("time_local", "time_iso8601", "msec", "auto")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "text",
    [
        "100000000000000000",  # 1e17 s: datetime.fromtimestamp raised OverflowError / OSError
        "253402300800",  # the first second of year 10000
        "9" * 400 + ".5",
        "1" * 5000,  # past int()'s digit limit
        "1795510800." + "1" * 10_000,  # read cheaply, truncated to ms
        "9999-12-31T23:59:59-23:59",  # past year 9999 in UTC: astimezone raised OverflowError
        "0001-01-01T00:00:00+23:59",  # before year 1 in UTC
        "01/Jan/0000:00:00:00 +0000",  # year 0
        "01/Jan/0001:00:30:00 +0100",
        "31/Dec/9999:23:30:00 -0100",
        "01/Jan/99999:00:00:00 +0000",
        "2026-11-24T10:00:00." + "1" * 10_000 + "+00:00",
        "+12026-11-24T10:00:00Z",
    ],
)
def test_out_of_range_raises_value_error_only(kind: str, text: str) -> None:
    read = make_reader(kind)
    try:
        out = read(text)
    except ValueError:
        return
    assert _RFC3339.fullmatch(out)


_VALID = (
    "24/Nov/2026:10:00:00 +0100",
    "2026-11-24T10:00:00.123+01:00",
    "1795510800.123",
    "31/Dec/9999:23:59:59 +0000",
    "9999-12-31T23:59:59Z",
)


@st.composite
def _near_valid(draw: st.DrawFn) -> str:
    """A valid time text with a few characters replaced, inserted, dropped or repeated."""
    text = draw(st.sampled_from(_VALID))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        c = draw(st.sampled_from("0123456789+-:./TZ Ee\u0661\uff11\x00"))
        op = draw(st.sampled_from(("replace", "insert", "drop", "repeat")))
        if op == "replace":
            text = text[:i] + c + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + c + text[i:]
        elif op == "drop":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + "9" * draw(st.integers(1, 40)) + text[i:]
    return text


@pytest.mark.parametrize("kind", KINDS)
@given(text=st.one_of(st.text(), _near_valid(), st.from_regex(r"\A[0-9]{1,40}(\.[0-9]*)?\Z")))
def test_any_text_reads_to_rfc3339_or_raises_value_error(kind: str, text: str) -> None:
    """The parsers turn ValueError into bad_timestamp; anything else would crash the run."""
    try:
        out = make_reader(kind)(text)
    except ValueError:
        return
    assert _RFC3339.fullmatch(out), out


# --- from_epoch: a Unix time (a proxied flow's timestamp_start) -> the same text ---------------

_LAST = 253402300799  # 9999-12-31T23:59:59Z
_FIRST = -62135596800  # 0001-01-01T00:00:00Z


def _decimal(seconds: float) -> str:
    """The decimal text of a float as `$msec` would carry it: its repr, without an exponent."""
    text = repr(seconds)
    return text if "e" not in text else f"{seconds:.20f}"


@given(st.floats(min_value=0, max_value=_LAST + 0.999))
def test_from_epoch_agrees_with_the_msec_reader(seconds: float) -> None:
    """The proxy's time and a log's `$msec` for the same decimal give the same text."""
    assert from_epoch(seconds) == make_reader("msec")(_decimal(seconds))


@given(st.integers(0, _LAST), st.integers(0, 999))
def test_from_epoch_of_a_millisecond_is_that_millisecond(second: int, ms: int) -> None:
    text = f"{second}.{ms:03d}"
    assert from_epoch(float(text)) == make_reader("msec")(text)
    assert from_epoch(float(text)).endswith(f".{ms:03d}Z")


@given(st.floats(min_value=_FIRST, max_value=_LAST + 0.999))
def test_from_epoch_is_the_millisecond_its_decimal_falls_in(seconds: float) -> None:
    """Over the whole range, before 1970 too: truncation goes toward the past (the floor)."""
    ms = math.floor(Decimal(repr(seconds)) * 1000)
    assert from_epoch(seconds) == rfc3339(datetime(1970, 1, 1) + timedelta(milliseconds=ms))


@pytest.mark.parametrize(
    "seconds, utc",
    [
        (1795510800.123, "2026-11-24T09:00:00.123Z"),  # the double lies below .123: not .122
        (1795510800.9999, "2026-11-24T09:00:00.999Z"),  # truncated, not rounded up
        (1795510800.1239, "2026-11-24T09:00:00.123Z"),
        (1795510800.0005, "2026-11-24T09:00:00.000Z"),
        (1795510800.5, "2026-11-24T09:00:00.500Z"),
        (1795510800, "2026-11-24T09:00:00.000Z"),  # an int
        (1796130000.123, "2026-12-01T13:00:00.123Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (0.0, "1970-01-01T00:00:00.000Z"),
        (-0.0, "1970-01-01T00:00:00.000Z"),
        (5e-05, "1970-01-01T00:00:00.000Z"),  # a repr with an exponent
        (0.0001, "1970-01-01T00:00:00.000Z"),
        (0.001, "1970-01-01T00:00:00.001Z"),
        (-5e-05, "1969-12-31T23:59:59.999Z"),  # before 1970: toward the past
        (-0.001, "1969-12-31T23:59:59.999Z"),
        (-0.0015, "1969-12-31T23:59:59.998Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
        (-1, "1969-12-31T23:59:59.000Z"),
        (_FIRST, "0001-01-01T00:00:00.000Z"),
        (_FIRST + 0.5, "0001-01-01T00:00:00.500Z"),
        (_LAST + 0.999, "9999-12-31T23:59:59.999Z"),
        (_LAST + 0.9999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_from_epoch(seconds: float, utc: str) -> None:
    assert from_epoch(seconds) == utc


@pytest.mark.parametrize(
    "seconds",
    [_FIRST - 0.001, _FIRST - 1, _LAST + 1, 1e16, 1e300, float("nan"), float("inf"), -float("inf")],
)
def test_from_epoch_out_of_range_raises_value_error(seconds: float) -> None:
    with pytest.raises(ValueError):
        from_epoch(seconds)


def test_from_epoch_in_and_out_of_the_same_second() -> None:
    """The kept text of the last second is never used for another one."""
    times = [1795510800.25, 1795510800.75, 1795510801.0, 1795510800.5, 5.5, 5.25, -5.5, 1795510800]
    expected = [rfc3339(datetime.fromtimestamp(t, UTC)) for t in times]
    assert [from_epoch(t) for t in times] == expected
