"""stats: the counters add up; the summary and the live progress line."""

from __future__ import annotations

import io

from sidecar.stats import Progress, Stats


def test_counters_add_up() -> None:
    s = Stats()
    s.add(10, 7, {"empty": 1, "bad_ip": 2})
    s.reject("too_long", 3)
    assert s.as_dict() == {
        "lines_in": 13,
        "records_out": 7,
        "rejected": {"empty": 1, "too_long": 3, "bad_ip": 2},
    }
    assert s.lines_in == s.records_out + s.rejected_total
    assert "13 lines in, 7 records out, 6 rejected" in s.summary()


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal() -> None:
    s = Stats()
    s.add(5000, 5000, {})
    pipe = io.StringIO()
    Progress(s, pipe, every_secs=0).tick()
    assert pipe.getvalue() == ""
    tty = Tty()
    p = Progress(s, tty, every_secs=0)
    p.tick()
    assert "5,000 lines" in tty.getvalue() and "lines/s" in tty.getvalue()
    p.clear()
    assert tty.getvalue().endswith("\r\x1b[K")


def test_one_book_the_stats_are_the_metrics() -> None:
    s = Stats(source="stdin")
    s.add(4, 3, {"binary": 1})
    s.add(2, 2, {}, source="follow")
    value = s.metrics.registry.get_sample_value
    assert value("sidecar_lines_received_total", {"source": "stdin"}) == 4
    assert value("sidecar_lines_rejected_total", {"source": "stdin", "reason": "binary"}) == 1
    assert s.lines_in == 6 and s.records_out == 5 and s.by_source() == {"stdin": 4, "follow": 2}
    s.metrics.lines_received.labels("syslog_udp").inc(5)  # counted there: the stats see it
    assert s.lines_in == 11
