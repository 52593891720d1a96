"""`--format auto`: the built-in format that reads most of the first lines."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from sidecar.formats.base import LineFormat
from sidecar.formats.clf import clf_format
from sidecar.formats.nginx_json import JsonFormat
from sidecar.reject import Rejected

# most specific first: a line read by two formats goes to the earlier one
CANDIDATES: tuple[str, ...] = ("nginx-main", "combined", "vhost_combined", "vhost_common", "common")
SAMPLE_LINES = 50


def detect(lines: Sequence[str]) -> LineFormat | None:
    """The best format for these lines, or None when no built-in format reads any of them."""
    sample = [ln for ln in lines if ln.strip()][:SAMPLE_LINES]
    if not sample:
        return None
    candidates: list[LineFormat] = [clf_format(n) for n in CANDIDATES]
    first_json = next((ln for ln in sample if ln.startswith("{")), None)
    if first_json is not None:
        with contextlib.suppress(ValueError):
            candidates.insert(0, JsonFormat().learn_keys(first_json))
    best, best_score = None, 0
    for fmt in candidates:
        score = 0
        for line in sample:
            try:
                fmt.parse(line)
                score += 1
            except Rejected as rej:
                # a line of the right shape with one bad value still votes for its format
                score += rej.reason in ("bad_timestamp", "bad_ip", "bad_field")
        if score > best_score:
            best, best_score = fmt, score
    return best
