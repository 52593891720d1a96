"""throttle: one warning per kind per interval, with a count of those held back."""

from __future__ import annotations

import logging

import pytest

from sidecar.sinks.throttle import ThrottledLog

log = logging.getLogger("tests.throttle")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_message_per_kind_per_interval_then_a_count_of_the_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttled = ThrottledLog(log, interval_secs=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="tests.throttle"):
        assert throttled.warning("spool", "sink %s: cannot write the spool", "a")
        for _ in range(5):
            clock.now += 1.0
            assert not throttled.warning("spool", "sink %s: cannot write the spool", "a")
        assert throttled.warning("down", "sink %s unavailable", "a")  # another kind: its own
        clock.now += 5.0  # 10 s after the first
        assert throttled.warning("spool", "sink %s: cannot write the spool", "a")
    assert [r.getMessage() for r in caplog.records] == [
        "sink a: cannot write the spool",
        "sink a unavailable",
        "sink a: cannot write the spool (5 more like this in the last 10 s)",
    ]


def test_exception_keeps_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(log)
    with caplog.at_level(logging.ERROR, logger="tests.throttle"):
        try:
            raise ValueError("boom")
        except ValueError:
            throttled.exception("bug", "sink %s: unexpected error", "a")
            throttled.exception("bug", "sink %s: unexpected error", "a")
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None
