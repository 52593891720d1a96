"""A real Prometheus scrapes a real `sidecar serve` fed a known input, and finds its series."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.prometheus import Prometheus
from tests.serving import Serve, rows, wait_for

pytestmark = pytest.mark.e2e

LINE = (
    '81.2.69.142 - - [01/Dec/2026:10:00:00 +0000] "GET /v/{n}.ts HTTP/1.1" 200 512 '
    '"-" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"\n'
)


def test_prometheus_scrapes_the_expected_series(tmp_path: Path) -> None:
    (tmp_path / "serve").mkdir()
    serve = Serve(tmp_path / "serve", "--stdin")
    try:
        serve.write("".join(LINE.format(n=i) for i in range(7)) + "junk\njunk\n")
        wait_for(lambda: len(rows(serve.db)) == 7, what="the records")
        with Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{serve.http}"]) as prom:
            deadline = time.monotonic() + 30
            want = {
                'sidecar_lines_received_total{source="stdin"}': 9,
                'sidecar_lines_rejected_total{source="stdin",reason="format_mismatch"}': 2,
                'sidecar_records_out_total{source="stdin"}': 7,
                'sidecar_records_delivered_total{sink="sqlite-analytics.db"}': 7,
                'sidecar_records_by_country_total{country="GB"}': 7,
                'sidecar_sink_up{sink="sqlite-analytics.db"}': 1,
                'up{job="sidecar"}': 1,
            }
            got: dict[str, float | None] = {}
            while time.monotonic() < deadline:
                got = {q: prom.value(q) for q in want}
                if got == want:
                    break
                time.sleep(0.25)
            assert got == want
            assert prom.value('sidecar_lines_rejected_total{reason="binary"}') == 0  # pre-set
            assert prom.value("sidecar_build_info") == 1
    finally:
        serve.proc.stdin.close()  # type: ignore[union-attr]
        assert serve.stop() == 0
