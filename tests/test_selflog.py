"""selflog: one JSON object per line on the `sidecar` logger, every free-text part struck."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar import selflog
from sidecar.privacy.ip import Masker
from sidecar.privacy.literals import LiteralMasker
from sidecar.sinks.throttle import ThrottledLog
from tests.conftest import make_config

log = logging.getLogger("sidecar.sinks.delivery")


@contextlib.contextmanager
def json_log(**kwargs: Any) -> Iterator[io.StringIO]:
    """The self-log configured on a fresh stream, then undone. Configured in the test's body,
    not in a fixture: pytest attaches its capture handlers to every logger that does not
    propagate when a test phase starts, and they would then see (and reformat) the records."""
    out = io.StringIO()
    selflog.configure(out, **kwargs)
    try:
        yield out
    finally:
        selflog.reset()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text == "" or text.endswith("\n")
    docs = [json.loads(line) for line in text.split("\n")[:-1]]
    assert all(isinstance(d, dict) for d in docs)
    return docs


def test_one_json_object_per_line_with_the_fixed_keys_first() -> None:
    with json_log() as stream:
        log.warning("sink %s: %d records spooled", "sqlite-analytics.db", 3, extra={"records": 3})
    (doc,) = lines(stream)
    assert list(doc)[:4] == ["ts", "level", "logger", "msg"]
    assert doc["level"] == "warning"
    assert doc["logger"] == "sidecar.sinks.delivery"
    assert doc["msg"] == "sink sqlite-analytics.db: 3 records spooled"
    assert doc["records"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(doc["ts"]))


def test_the_timestamp_is_utc_with_milliseconds() -> None:
    formatter = selflog.JsonFormatter(LiteralMasker(Masker(24, 48)))
    record = logging.makeLogRecord({"msg": "x", "levelname": "INFO", "created": 1796130000.1234})
    assert json.loads(formatter.format(record))["ts"] == "2026-12-01T13:00:00.123Z"


def test_extras_are_keys_scalars_as_they_are_the_rest_as_text() -> None:
    with json_log() as stream:

        class Thing:
            def __str__(self) -> str:
                return "a thing at 198.51.100.23"

        class Unprintable:
            def __str__(self) -> str:
                raise RuntimeError("no")

        extra = {
            "sink": "clickhouse-analytics.requests",
            "records": 3,
            "ratio": 0.5,
            "up": False,
            "none": None,
            "huge": 1 << 70,
            "nan": float("nan"),
            "thing": Thing(),
            "items": ["203.0.113.9", 1, None],
            "pairs": [("a", 1)],
            "bad": Unprintable(),
            "level": "clash",
        }
        log.info("with extras", extra=extra)
    (doc,) = lines(stream)
    assert doc["level"] == "info" and doc["extra.level"] == "clash"
    assert (doc["sink"], doc["records"], doc["ratio"], doc["up"], doc["none"]) == (
        "clickhouse-analytics.requests", 3, 0.5, False, None,
    )  # fmt: skip
    assert doc["huge"] == str(1 << 70) and doc["nan"] == "nan"
    assert doc["thing"] == "a thing at 198.51.100.0"
    assert doc["items"] == ["203.0.113.0", 1, None]  # scalars: an array
    assert doc["pairs"] == "[('a', 1)]"
    assert doc["bad"] == "<Unprintable that cannot be shown>"


def test_addresses_are_struck_in_the_message_extras_and_traceback() -> None:
    with json_log() as stream:
        try:
            try:
                raise OSError("connect to 198.51.100.23:8123 refused")
            except OSError as inner:
                raise RuntimeError(
                    "batch for 2001:db8:85a3:1234:5678:8a2e:370:7334 lost"
                ) from inner
        except RuntimeError:
            log.exception("client %s", "203.0.113.77", extra={"peer": "fe80::1234:5678%eth0"})
    (doc,) = lines(stream)
    line = stream.getvalue()
    for whole in ("203.0.113.77", "198.51.100.23", "2001:db8:85a3:1234", "fe80::1234"):
        assert whole not in line
    assert doc["msg"] == "client 203.0.113.0"
    assert doc["peer"] == "fe80::%eth0"
    assert doc["error"] == "RuntimeError"
    trace = str(doc["traceback"])
    assert trace.startswith("Traceback (most recent call last):")
    assert "OSError: connect to 198.51.100.0:8123 refused" in trace  # the cause, struck
    assert trace.endswith("RuntimeError: batch for 2001:db8:85a3:: lost")


def test_the_prefix_bits_come_from_the_ip_config() -> None:
    with json_log(ip=make_config(ip={"ipv4_prefix_bits": 16}).ip) as out:
        log.warning("from 198.51.100.23")
    assert json.loads(out.getvalue())["msg"] == "from 198.51.0.0"


def test_stack_info_is_struck() -> None:
    with json_log() as stream:
        address = "203.0.113.77"
        log.warning("here", stack_info=True, extra={"address": address})
    (doc,) = lines(stream)
    assert "test_stack_info_is_struck" in str(doc["stack"])
    assert address not in stream.getvalue()


def test_a_long_message_is_cut() -> None:
    with json_log() as stream:
        log.info("x" * 10_000, extra={"long": "y" * 10_000})
    (doc,) = lines(stream)
    assert len(str(doc["msg"])) == selflog.MAX_MSG_CHARS and str(doc["msg"]).endswith("…")
    assert len(str(doc["long"])) == selflog.MAX_MSG_CHARS


def test_a_long_traceback_keeps_its_end() -> None:
    with json_log() as stream:
        try:
            raise ValueError("word " * 8_000 + " 2001:db8:85a3:1234:5678:8a2e:370:7334 " + "z" * 20)
        except ValueError:
            log.exception("failed")
    (doc,) = lines(stream)
    trace = str(doc["traceback"])
    assert len(trace) == selflog.MAX_TRACE_CHARS and trace.startswith("…")
    assert trace.endswith("2001:db8:85a3:: " + "z" * 20)


CONTROLS = "\n\r\t\x00\x07\x0b\x0c\x1b[31m\x1c\x1d\x1e\x7f\x85\x9b\u2028\u2029"


def test_control_characters_are_escaped() -> None:
    with json_log() as stream:
        text = f"a{CONTROLS}b"
        log.warning(text, extra={"detail": text})
    line = stream.getvalue()
    assert len(line.splitlines()) == 1 and line.count("\n") == 1
    assert not any(c in line[:-1] for c in CONTROLS.replace("[31m", ""))
    (doc,) = lines(stream)
    assert doc["msg"] == text and doc["detail"] == text


def test_a_lone_surrogate_still_gives_one_valid_line() -> None:
    with json_log() as stream:
        log.warning("name \udcff from 203.0.113.77", extra={"file": "\ud800"})
    (doc,) = lines(stream)
    assert doc["msg"] == "name \\udcff from 203.0.113.0"
    assert doc["file"] == "\\ud800"


def test_bad_arguments_write_the_template_never_the_arguments() -> None:
    with json_log() as stream:
        log.warning("%d records", "raw line from 203.0.113.77")
    (doc,) = lines(stream)
    assert doc["msg"] == "%d records" and doc["bad_args"] is True
    assert "raw line" not in stream.getvalue()


def test_a_failing_stream_writes_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    class Broken(io.StringIO):
        def write(self, _text: str) -> int:
            raise OSError(28, "No space left on device")

    selflog.configure(Broken())
    try:
        log.warning("secret %s", "203.0.113.77")
    finally:
        selflog.reset()
    assert capfd.readouterr() == ("", "")


def test_levels_below_the_configured_one_are_not_written() -> None:
    with json_log(level=logging.WARNING) as out:
        log.info("not this")
        log.warning("this")
    assert [d["msg"] for d in lines(out)] == ["this"]


def test_configure_twice_leaves_one_handler_and_the_root_logger_alone() -> None:
    root = logging.getLogger()
    root_handlers = list(root.handlers)
    first, second = io.StringIO(), io.StringIO()
    seen_by_root: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen_by_root.append(record)

    catch = Catch()
    root.addHandler(catch)
    try:
        selflog.configure(first)
        selflog.configure(second)
        sidecar_logger = logging.getLogger("sidecar")
        assert len(sidecar_logger.handlers) == 1 and not sidecar_logger.propagate
        log.warning("once")
    finally:
        selflog.reset()
        root.removeHandler(catch)
    assert first.getvalue() == ""
    assert [d["msg"] for d in lines(second)] == ["once"]
    assert seen_by_root == []
    assert root.handlers == root_handlers
    assert logging.getLogger("sidecar").propagate  # reset gives it back


def test_the_default_stream_is_stderr_at_the_call(capsys: pytest.CaptureFixture[str]) -> None:
    selflog.configure()
    try:
        log.error("to stderr")
    finally:
        selflog.reset()
    err = capsys.readouterr().err
    assert json.loads(err)["msg"] == "to stderr"


def test_a_throttled_warning_is_one_line_with_its_count() -> None:
    with json_log() as stream:

        class Clock:
            now = 100.0

            def __call__(self) -> float:
                return self.now

        clock = Clock()
        throttled = ThrottledLog(log, interval_secs=10.0, clock=clock)
        for _ in range(6):
            throttled.warning(
                "down", "sink %s unavailable: %s", "clickhouse-a.b", "203.0.113.9:8123"
            )
            clock.now += 1.0
        clock.now += 5.0
        throttled.warning("down", "sink %s unavailable: %s", "clickhouse-a.b", "203.0.113.9:8123")
    first, last = lines(stream)
    assert first["msg"] == "sink clickhouse-a.b unavailable: 203.0.113.0:8123"
    assert last["msg"] == (
        "sink clickhouse-a.b unavailable: 203.0.113.0:8123 (5 more like this in the last 11 s)"
    )
    assert last["level"] == "warning" and last["logger"] == "sidecar.sinks.delivery"


# --- the property: no whole address, one valid line -----------------------------------------

SEPARATORS = st.sampled_from([" ", "/", "=", "\n", "\t", "\x00", '"', "\\", "\x85", "\u2028", ","])


def _host_bits_zero(addr: IPv4Address | IPv6Address) -> bool:
    n = int(addr)
    if addr.version == 4:
        return n & 0xFF == 0
    if n >> 112 == 0x2002:
        return n & ((1 << 88) - 1) == 0
    return n & ((1 << 80) - 1) == 0


def _whole(addr: IPv4Address | IPv6Address, text: str) -> bool:
    forms = [str(addr)] + ([addr.exploded] if addr.version == 6 else [])
    return any(
        re.search(rf"(?<![0-9A-Fa-f:.]){re.escape(f)}(?![0-9A-Fa-f:.])", text) for f in forms
    )


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


@given(
    st.text(max_size=40),
    SEPARATORS,
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    SEPARATORS,
    st.text(max_size=40),
)
def test_no_whole_address_and_exactly_one_json_line(before, sep1, addr, sep2, after) -> None:
    text = f"{before}{sep1}{addr}{sep2}{after}"
    with json_log() as out:
        log.warning(text, extra={"detail": text})
        try:
            raise ValueError(text)
        except ValueError:
            log.exception("failed: %s", text)
    written = out.getvalue()
    assert written.count("\n") == 2 and written.endswith("\n")
    for line in written.split("\n")[:-1]:
        assert len(line.splitlines()) == 1
        doc = json.loads(line)
        assert isinstance(doc, dict)
        if _host_bits_zero(addr) or (addr.version == 6 and addr.ipv4_mapped is not None):
            continue
        assert not _whole(addr, line), line
        for s in _strings(doc):
            assert not _whole(addr, s), s


def test_asyncio_warnings_are_json_lines_too_with_addresses_struck() -> None:
    with json_log() as out:
        logging.getLogger("asyncio").warning("socket.send() raised for peer ('%s', 5514)",
                                             "198.51.100.23")  # fmt: skip
        logging.getLogger("asyncio").info("not a warning: left out")
    (doc,) = lines(out)
    assert doc["logger"] == "asyncio" and "198.51.100.0" in doc["msg"]
    assert "198.51.100.23" not in out.getvalue()
