"""In-process fuzzing of the whole way of a line: planted addresses in every notation and field
of every format, through a real LinePipeline (jsonl and rewrite outputs, rejected lines kept).

No planted address may survive in any output (tests/fuzz/oracle.py decides), `lines_in =
records_out + rejected`, nothing raises; an adversarial line of 16x the length costs no more
than a generous multiple of 16x the time (no quadratic or worse behaviour).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from tests.fuzz.checks import check_case, pipeline
from tests.fuzz.strategies import FORMATS, PRESETS, Case, cases, format_label, make_line
from tests.fuzz.strategies import HypothesisChooser as Chooser

# no `explain` phase: it reruns failing examples under a tracer, slow on 2 shared cores
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


def _assert_clean(case: Case) -> None:
    violations = check_case(case)
    assert not violations, "\n".join(
        [*map(str, violations[:5]), f"case: {case.notes}", *map(repr, case.lines)]
    )


@settings(max_examples=600, phases=PHASES)
@given(cases())
def test_no_planted_address_survives(case: Case) -> None:
    _assert_clean(case)


# One property per format and per field family, so that a failure in one does not hide others
# (hypothesis stops at the first failing example of a test).


@pytest.mark.parametrize("fmt", FORMATS, ids=format_label)
@settings(max_examples=80, phases=PHASES)
@given(data=st.data())
def test_each_format(fmt: str, data: st.DataObject) -> None:
    c = Chooser(data)
    preset = c.choice(tuple(PRESETS))
    line, plant, note = make_line(c, preset, fmt)
    _assert_clean(Case(preset, fmt, [line], plant.identities, [note]))


# --- linear time ---------------------------------------------------------------------------------

# Units repeated into one long field: dotted runs, colon runs, percent escapes, hex runs, ...
ADVERSARIAL = (
    "1.",
    "1.2.3.4.",
    "255.",
    "0x1.",
    "01.",
    "1:",
    "a:",
    "::",
    "1::",
    "ffff:",
    "%25",
    "%2",
    "%2E1",
    "%3A1",
    "1%2E",
    "0xcb00711a",
    "9",
    "f",
    "1-",
    "1.1:",
    "１．",
    "[1:",
    "%25252E1",
)


def _line(fmt: str, where: str, text: str) -> str:
    if where == "path":
        return f'192.0.2.1 - - [24/Nov/2026:10:00:00 +0100] "GET /{text} HTTP/1.1" 200 1 "-" "-"'
    if where == "referrer":
        return (
            '192.0.2.1 - - [24/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 '
            f'"https://www.example-video.eu/{text}" "{text}"'
        )
    if where == "host":
        return f'{text} 192.0.2.1 - - [24/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "-"'
    return f"not a log line {text}"  # rejected, struck for --rejects


_serial = iter(range(1 << 62))


def _seconds(fmt: str, where: str, unit: str, size: int) -> float:
    p = pipeline("default", fmt, "jsonl")
    best = float("inf")
    for _ in range(3):
        # a distinct line each time: the stage's caches must not answer
        text = unit * (size // len(unit.encode())) + f"z{next(_serial)}"  # size in bytes
        chunk = (_line(fmt, where, text) + "\n").encode()
        t0 = time.perf_counter()
        p.process(chunk)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.parametrize("where", ["path", "referrer", "host", "rejected"])
def test_linear_time(where: str) -> None:
    """16x the length may cost at most 64x the time (quadratic would be 256x). Caches are
    bypassed by making each measured line distinct."""
    fmt = "vhost_combined" if where == "host" else "combined"
    slow = []
    for unit in ADVERSARIAL:
        small = _seconds(fmt, where, unit, 2048)
        large = _seconds(fmt, where, unit, 32768)
        if large > 64 * max(small, 5e-4):  # a floor: timer noise on tiny lines
            slow.append(
                f"{unit!r}: {small * 1e3:.2f} ms for 2 KiB, {large * 1e3:.2f} ms for 32 KiB"
            )
    assert not slow, "\n".join(slow)
